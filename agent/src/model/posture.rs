//! A container's security posture as its runtime configured it: what the runtime was asked to
//! give it (every capability, the host's namespaces, no seccomp filter, host paths bind-mounted)
//! and so what turns a primitive inside it into an escape. Read from the runtime's own state
//! (`enrich::workload::posture`) when the agent first learns of the container, recorded with
//! its events, and shown in every alert of it and by `escapewatch audit`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Basenames of container runtime and orchestrator API sockets: whoever reaches one can start
/// a privileged container or exec into any. One list for the posture (a socket bind-mounted
/// into a container) and for `runtime-socket-access` (a connect to one).
pub const RUNTIME_SOCKET_NAMES: [&str; 9] = [
    "docker.sock",
    "containerd.sock",
    "crio.sock",
    "podman.sock",
    "cri-dockerd.sock",
    "dockershim.sock",
    "buildkitd.sock",
    "containerd-shim.sock",
    "kubelet.sock",
];

/// The posture of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Posture {
    /// Started privileged: `docker run --privileged`, or an OCI bounding set holding every
    /// capability the kernel has.
    pub privileged: bool,
    /// The namespaces it shares with the host (the type missing from the OCI config's
    /// `linux.namespaces`, or a path to a host namespace; Docker's `--pid/--net/--ipc/--uts
    /// host`).
    pub host_namespaces: Vec<HostNamespace>,
    /// Capabilities in its bounding or effective set beyond the runtime's default set
    /// (Docker's and containerd's 14), `CAP_` names, sorted.
    pub capabilities_added: Vec<String>,
    pub seccomp: Seccomp,
    /// The AppArmor profile (`process.apparmorProfile`, Docker's `apparmor=`); empty when
    /// none was set, `unconfined` when it was turned off.
    pub apparmor: String,
    /// Bind mounts whose host-side source is a sensitive host path.
    pub sensitive_mounts: Vec<SensitiveMount>,
}

/// A namespace type a container can share with the host.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HostNamespace {
    Pid,
    Network,
    Ipc,
    Uts,
    Mount,
    Cgroup,
}

impl HostNamespace {
    pub const ALL: [HostNamespace; 6] = [
        HostNamespace::Pid,
        HostNamespace::Network,
        HostNamespace::Ipc,
        HostNamespace::Uts,
        HostNamespace::Mount,
        HostNamespace::Cgroup,
    ];

    /// The OCI `linux.namespaces[].type`.
    pub fn oci_name(self) -> &'static str {
        match self {
            HostNamespace::Pid => "pid",
            HostNamespace::Network => "network",
            HostNamespace::Ipc => "ipc",
            HostNamespace::Uts => "uts",
            HostNamespace::Mount => "mount",
            HostNamespace::Cgroup => "cgroup",
        }
    }

    /// The name under `/proc/PID/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            HostNamespace::Network => "net",
            HostNamespace::Mount => "mnt",
            other => other.oci_name(),
        }
    }
}

/// Whether a seccomp filter was configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Seccomp {
    /// A profile (the runtime's default or the operator's).
    Filtered,
    /// No filter (`seccomp=unconfined`, `--privileged`, an OCI config without `linux.seccomp`).
    #[default]
    Unconfined,
}

/// What a sensitive host path gives the container.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MountClass {
    /// The host's root directory, or a directory above a sensitive path (`/var`, `/run`).
    HostRoot,
    /// `/etc` or under it: passwd, shadow, sudoers, cron, systemd units.
    HostEtc,
    /// `/root` or under it: root's keys and shell start-up files.
    HostRootHome,
    /// A container runtime's API socket (docker.sock, containerd.sock, crio.sock, …).
    RuntimeSocket,
    /// The host's /proc (or a file under it).
    HostProc,
    /// The host's /sys (or a file under it).
    HostSys,
    /// The host's /dev, /boot or kernel modules.
    HostDevices,
    /// A runtime's state directory (/var/lib/docker, /run/containerd, /run/runc, …).
    RuntimeState,
}

impl MountClass {
    pub fn as_str(self) -> &'static str {
        match self {
            MountClass::HostRoot => "host_root",
            MountClass::HostEtc => "host_etc",
            MountClass::HostRootHome => "host_root_home",
            MountClass::RuntimeSocket => "runtime_socket",
            MountClass::HostProc => "host_proc",
            MountClass::HostSys => "host_sys",
            MountClass::HostDevices => "host_devices",
            MountClass::RuntimeState => "runtime_state",
        }
    }
}

/// One bind mount of a sensitive host path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SensitiveMount {
    /// The host-side path, as the runtime's config names it (resolved on the host when it
    /// could be).
    pub source: String,
    /// Where it appears in the container.
    pub destination: String,
    pub class: MountClass,
    pub read_only: bool,
}

/// One finding of `escapewatch audit`, with the CIS Docker Benchmark (v1.3.1) item it maps to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `5.4`.
    pub cis: &'static str,
    pub title: &'static str,
    /// What in the posture made it (a capability, a mount source).
    pub detail: String,
}

/// Capabilities whose presence turns common container primitives into escapes (mount,
/// release_agent, ptrace of host processes, open_by_handle_at, module and eBPF loading).
pub const DANGEROUS_CAPABILITIES: [&str; 7] = [
    "CAP_SYS_ADMIN",
    "CAP_SYS_PTRACE",
    "CAP_SYS_MODULE",
    "CAP_DAC_READ_SEARCH",
    "CAP_BPF",
    "CAP_SYS_RAWIO",
    "CAP_NET_ADMIN",
];

impl Posture {
    pub fn has_capability(&self, cap: &str) -> bool {
        self.privileged || self.capabilities_added.iter().any(|c| c == cap)
    }

    pub fn shares_host(&self, ns: HostNamespace) -> bool {
        self.host_namespaces.contains(&ns)
    }

    /// Any finding at all (the posture differs from the runtime's defaults).
    pub fn is_default(&self) -> bool {
        self.findings().is_empty()
    }

    /// The CIS Docker Benchmark items this posture fails, in item order.
    pub fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut add = |cis, title, detail: String| out.push(Finding { cis, title, detail });
        if self.apparmor.is_empty() || self.apparmor == "unconfined" {
            let d = if self.apparmor.is_empty() {
                "no profile set"
            } else {
                "unconfined"
            };
            add("5.1", "AppArmor profile not applied", d.to_owned());
        }
        if !self.capabilities_added.is_empty() && !self.privileged {
            add(
                "5.3",
                "Linux kernel capabilities added beyond the default set",
                self.capabilities_added.join(","),
            );
        }
        if self.privileged {
            add("5.4", "privileged container", "every capability".into());
        }
        for m in &self.sensitive_mounts {
            if m.class == MountClass::RuntimeSocket {
                continue;
            }
            add(
                "5.5",
                "sensitive host system directory mounted",
                format!("{} -> {} ({})", m.source, m.destination, m.class.as_str()),
            );
        }
        for (ns, cis, title) in [
            (
                HostNamespace::Network,
                "5.9",
                "host network namespace shared",
            ),
            (HostNamespace::Pid, "5.15", "host PID namespace shared"),
            (HostNamespace::Ipc, "5.16", "host IPC namespace shared"),
            (HostNamespace::Uts, "5.20", "host UTS namespace shared"),
        ] {
            if self.shares_host(ns) {
                add(cis, title, ns.oci_name().to_owned());
            }
        }
        if self.seccomp == Seccomp::Unconfined {
            add("5.21", "seccomp profile disabled", "unconfined".into());
        }
        // The host's cgroup namespace has no CIS item (and runc 1.1's default spec shares it).
        if self.shares_host(HostNamespace::Mount) {
            add("-", "host mount namespace shared", "mount".into());
        }
        for m in &self.sensitive_mounts {
            if m.class == MountClass::RuntimeSocket {
                add(
                    "5.31",
                    "container runtime socket mounted",
                    format!("{} -> {}", m.source, m.destination),
                );
            }
        }
        out
    }
}
