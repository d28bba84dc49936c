//! A container's posture from its runtime's configuration: the OCI `config.json` of its
//! bundle (runc, crun, containerd) or Docker's inspect `HostConfig`.
//!
//! Every fact comes from the runtime's side: the capability sets it was told to give, the
//! namespaces it was told to create, and the HOST-side source of each bind mount, which the
//! container cannot choose (a name inside the container means nothing here).

use std::{
    collections::BTreeSet,
    path::{Component, Path, PathBuf},
};

use serde::Deserialize;

use crate::model::posture::{HostNamespace, MountClass, Posture, Seccomp, SensitiveMount};

/// Docker's and containerd's default capability set (moby `oci/caps/defaults.go`,
/// containerd `oci/spec.go`): what a container gets without `--cap-add`.
pub const RUNTIME_DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability of Linux 5.9+ (CAP_CHOWN = 0 … CAP_CHECKPOINT_RESTORE = 40): a bounding
/// set holding them all is `--privileged`.
pub const ALL_CAPS: [&str; 41] = crate::model::bits::CAP_NAMES;

/// Host directories whose content (at or below them) is a way out, with what they give.
const SENSITIVE_TREES: [(&str, MountClass); 20] = [
    ("/etc", MountClass::HostEtc),
    ("/root", MountClass::HostRootHome),
    ("/proc", MountClass::HostProc),
    ("/sys", MountClass::HostSys),
    ("/dev", MountClass::HostDevices),
    ("/boot", MountClass::HostDevices),
    ("/lib/modules", MountClass::HostDevices),
    ("/usr/lib/modules", MountClass::HostDevices),
    ("/var/lib/docker", MountClass::RuntimeState),
    ("/var/lib/containerd", MountClass::RuntimeState),
    ("/var/lib/containers", MountClass::RuntimeState),
    ("/var/lib/kubelet", MountClass::RuntimeState),
    ("/run/containerd", MountClass::RuntimeState),
    ("/run/docker", MountClass::RuntimeState),
    ("/run/runc", MountClass::RuntimeState),
    ("/run/crun", MountClass::RuntimeState),
    ("/run/crio", MountClass::RuntimeState),
    ("/run/podman", MountClass::RuntimeState),
    ("/run/containers", MountClass::RuntimeState),
    ("/run/docker.sock", MountClass::RuntimeSocket),
];

/// `path` without `.`, `..` (lexically), repeated or trailing slashes; `/var/run` is `/run`.
fn normalize(path: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    if parts.first().is_some_and(|p| p == "var") && parts.get(1).is_some_and(|p| p == "run") {
        parts.remove(0);
    }
    format!("/{}", parts.join("/"))
}

fn at_or_below(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// What a bind mount of host path `source` gives, if it is sensitive. `source` is the path
/// as resolved on the host (symlinks followed where the file exists).
pub fn classify_source(source: &str) -> Option<MountClass> {
    let p = normalize(source);
    if p == "/" {
        return Some(MountClass::HostRoot);
    }
    let base = p.rsplit('/').next().unwrap_or_default();
    if crate::model::posture::RUNTIME_SOCKET_NAMES.contains(&base) {
        return Some(MountClass::RuntimeSocket);
    }
    if let Some((_, class)) = SENSITIVE_TREES.iter().find(|(d, _)| at_or_below(&p, d)) {
        return Some(*class);
    }
    // A directory above a sensitive one (`/var`, `/run`, `/var/lib`, `/usr`) holds it.
    SENSITIVE_TREES
        .iter()
        .any(|(d, _)| at_or_below(d, &p))
        .then_some(MountClass::HostRoot)
}

/// The host's view of a bind source: symlinks resolved where the path exists on the host (the
/// runtime followed them too), else as written.
fn host_path(source: &str) -> String {
    std::fs::canonicalize(source)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| source.to_owned())
}

/// The sensitive mounts among `(source, destination, read_only)` bind mounts.
pub fn sensitive_mounts<'a>(
    binds: impl IntoIterator<Item = (&'a str, &'a str, bool)>,
    resolve: bool,
) -> Vec<SensitiveMount> {
    let mut out = Vec::new();
    for (source, destination, read_only) in binds {
        let host = if resolve {
            host_path(source)
        } else {
            source.to_owned()
        };
        // The path as written and as resolved: either naming a sensitive place counts.
        let class = classify_source(&host).or_else(|| classify_source(source));
        if let Some(class) = class {
            out.push(SensitiveMount {
                source: host,
                destination: destination.to_owned(),
                class,
                read_only,
            });
        }
    }
    out
}

/// The host's capability bounding set (`CapBnd` of the agent, which runs as host root): a
/// runtime cannot give a container more, so `--privileged` is "all of these".
pub fn host_bounding() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// Capabilities beyond the runtime default set, sorted; and whether the set is every one
/// the host has.
fn caps_posture(sets: &[&[String]]) -> (bool, Vec<String>) {
    caps_posture_on(sets, host_bounding())
}

fn caps_posture_on(sets: &[&[String]], host: u64) -> (bool, Vec<String>) {
    let held: BTreeSet<String> = sets
        .iter()
        .flat_map(|s| s.iter())
        .map(|c| format!("CAP_{}", c.to_ascii_uppercase().trim_start_matches("CAP_")))
        .collect();
    let privileged = ALL_CAPS
        .iter()
        .enumerate()
        .all(|(bit, c)| held.contains(*c) || host & (1 << bit) == 0);
    let added = held
        .into_iter()
        .filter(|c| !RUNTIME_DEFAULT_CAPS.contains(&c.as_str()))
        .collect();
    (privileged, added)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct OciConfig {
    process: OciProcess,
    linux: OciLinux,
    mounts: Vec<OciMount>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct OciProcess {
    capabilities: OciCaps,
    apparmor_profile: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OciCaps {
    bounding: Vec<String>,
    effective: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OciLinux {
    namespaces: Vec<OciNamespace>,
    seccomp: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OciNamespace {
    #[serde(rename = "type")]
    kind: String,
    path: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OciMount {
    destination: String,
    #[serde(rename = "type")]
    kind: String,
    source: String,
    options: Vec<String>,
}

/// The posture an OCI runtime config gives. `is_host_ns(type, path)` says whether a
/// namespace path names the host's namespace of that type (the caller compares inodes).
pub fn from_oci(
    config: &OciConfig,
    resolve_mounts: bool,
    is_host_ns: impl Fn(HostNamespace, &str) -> bool,
) -> Posture {
    let caps = &config.process.capabilities;
    let (privileged, capabilities_added) = caps_posture(&[&caps.bounding, &caps.effective]);
    let host_namespaces = HostNamespace::ALL
        .into_iter()
        .filter(|ns| {
            match config
                .linux
                .namespaces
                .iter()
                .find(|n| n.kind == ns.oci_name())
            {
                None => true,
                Some(n) if !n.path.is_empty() => is_host_ns(*ns, &n.path),
                Some(_) => false,
            }
        })
        .collect();
    let binds = config
        .mounts
        .iter()
        .filter(|m| m.kind == "bind" || m.options.iter().any(|o| o == "bind" || o == "rbind"));
    let sensitive = sensitive_mounts(
        binds.map(|m| {
            (
                m.source.as_str(),
                m.destination.as_str(),
                m.options.iter().any(|o| o == "ro"),
            )
        }),
        resolve_mounts,
    );
    Posture {
        privileged,
        host_namespaces,
        capabilities_added,
        seccomp: if config.linux.seccomp.is_some() {
            Seccomp::Filtered
        } else {
            Seccomp::Unconfined
        },
        apparmor: config.process.apparmor_profile.clone(),
        sensitive_mounts: sensitive,
    }
}

/// Whether namespace file `path` is the host's (init's) namespace of type `ns`, by inode.
pub fn is_host_namespace(ns: HostNamespace, path: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let host = PathBuf::from("/proc/1/ns").join(ns.proc_name());
    match (std::fs::metadata(path), std::fs::metadata(host)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// Docker inspect's `HostConfig` (the fields the posture reads).
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct HostConfig {
    privileged: bool,
    cap_add: Option<Vec<String>>,
    security_opt: Option<Vec<String>>,
    pid_mode: String,
    network_mode: String,
    ipc_mode: String,
    #[serde(rename = "UTSMode")]
    uts_mode: String,
    cgroupns_mode: String,
}

/// Docker inspect's `Mounts[]`.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct InspectMount {
    #[serde(rename = "Type")]
    kind: String,
    source: String,
    destination: String,
    #[serde(rename = "RW")]
    rw: bool,
}

/// The posture of a Docker inspect's `HostConfig` and `Mounts` (and `AppArmorProfile`).
pub fn from_docker(h: &HostConfig, mounts: &[InspectMount], apparmor: &str) -> Posture {
    let opts = h.security_opt.clone().unwrap_or_default();
    let opt = |key: &str| {
        opts.iter().find_map(|o| {
            o.strip_prefix(key)
                .and_then(|r| r.strip_prefix(['=', ':']))
                .map(str::to_owned)
        })
    };
    let added = h.cap_add.clone().unwrap_or_default();
    let (all, mut capabilities_added) = caps_posture(&[&added]);
    if added.iter().any(|c| c.eq_ignore_ascii_case("ALL")) || all {
        capabilities_added = ALL_CAPS
            .iter()
            .filter(|c| !RUNTIME_DEFAULT_CAPS.contains(c))
            .map(|c| (*c).to_owned())
            .collect();
        capabilities_added.sort();
    }
    let privileged = h.privileged;
    if privileged {
        capabilities_added = caps_posture(&[&ALL_CAPS.map(str::to_owned)]).1;
    }
    let mut host_namespaces = Vec::new();
    for (mode, ns) in [
        (&h.pid_mode, HostNamespace::Pid),
        (&h.network_mode, HostNamespace::Network),
        (&h.ipc_mode, HostNamespace::Ipc),
        (&h.uts_mode, HostNamespace::Uts),
        (&h.cgroupns_mode, HostNamespace::Cgroup),
    ] {
        if mode == "host" {
            host_namespaces.push(ns);
        }
    }
    host_namespaces.sort();
    let seccomp = if privileged || opt("seccomp").is_some_and(|s| s == "unconfined") {
        Seccomp::Unconfined
    } else {
        Seccomp::Filtered
    };
    let apparmor = match opt("apparmor") {
        Some(p) => p,
        None if privileged => "unconfined".to_owned(),
        None => apparmor.to_owned(),
    };
    let binds = mounts.iter().filter(|m| m.kind == "bind");
    Posture {
        privileged,
        host_namespaces,
        capabilities_added,
        seccomp,
        apparmor,
        sensitive_mounts: sensitive_mounts(
            binds.map(|m| (m.source.as_str(), m.destination.as_str(), !m.rw)),
            false,
        ),
    }
}
