//! Escape by configuration: a container started with a sensitive host path bind-mounted, or
//! started privileged. Judged on the agent's `container_started` report, made when the
//! runtime's state first names the container; the posture it carries was read from the
//! runtime's own configuration (the OCI config.json, Docker's inspect), whose host-side mount
//! sources the container cannot choose.

use serde_json::json;

use super::{Check, Fixtures, Input, RuleInfo, simple::Finding, simple::short};
use crate::{
    detect::Severity,
    model::{Event, Payload, posture::Posture},
};

/// The posture of a `container_started` report about its own container.
fn started(e: &Event) -> Option<(&crate::model::Container, &Posture)> {
    let Payload::ContainerStarted { .. } = &e.data else {
        return None;
    };
    let c = e.container.as_ref()?;
    let w = e.workload.as_ref().filter(|w| w.container_id == c.id)?;
    Some((c, w.posture.as_ref()?))
}

pub struct SensitiveMount;

impl Check for SensitiveMount {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "container-sensitive-mount",
        severity: Severity::High,
        mitre: "T1611",
        title: "A container was started with a sensitive host path mounted",
        scope: "a container started with `/`, `/etc`, `/root`, a runtime socket, the host's /proc or /sys, /dev or a runtime state directory bind-mounted",
        explanation: "The container's runtime configuration (its OCI config.json or Docker's \
            inspect data, read by the agent when the container started) bind-mounts a \
            sensitive host path into it: the host's root directory or a directory above a \
            sensitive one, /etc, /root, a container runtime's API socket (docker.sock, \
            containerd.sock, crio.sock, podman.sock, …), the host's /proc, /sys or /dev, or a \
            runtime's state directory (/var/lib/docker, /run/containerd, /run/runc, …). The \
            path is the host-side source the runtime was given, which nothing inside the \
            container can choose. Such a container needs no exploit to leave: it can write \
            the host's cron, sudoers or root's keys, chroot into the host, or ask the runtime \
            to start a privileged container. This is an escape by configuration (Falco's \
            'Launch Sensitive Mount Container', CIS Docker Benchmark 5.5 and 5.31). Check who \
            started it (the runtime's audit or event log, the orchestrator's manifest), \
            whether the mount is needed (node agents, CSI drivers and monitoring do this; \
            allowlist them by image or name), and what the container did with it. Read-only \
            mounts are reported too: a read-only socket still connects. Severity is critical \
            for the host root and a runtime socket.",
        inputs: &[Input::StartReport],
        fixtures: Fixtures::Recorded(&["container-sensitive-mount", "host-binary-chroot"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (c, p) = started(e)?;
        let first = p.sensitive_mounts.first()?;
        let list: Vec<String> = p
            .sensitive_mounts
            .iter()
            .map(|m| format!("{} at {}", m.source, m.destination))
            .collect();
        Some(Finding::new(
            format!(
                "{} container {} was started with sensitive host path(s) mounted: {} ({}): it can reach the host without an exploit.",
                c.runtime.as_str(),
                short(&c.id),
                list.join(", "),
                first.class.as_str(),
            ),
            json!({ "mounts": p.sensitive_mounts }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{CONTAINER, Example};
        use crate::model::posture::{MountClass, SensitiveMount as M};
        let mount = |source: &str, destination: &str, class| M {
            source: source.into(),
            destination: destination.into(),
            class,
            read_only: false,
        };
        vec![
            Example::alert(
                "the host root bind-mounted at /host",
                vec![report(Posture {
                    sensitive_mounts: vec![mount("/", "/host", MountClass::HostRoot)],
                    ..default_posture()
                })],
                |a| {
                    let c = a.container.as_ref().unwrap();
                    assert_eq!(c.id, CONTAINER);
                    assert_eq!(a.details["mounts"][0]["source"], "/");
                    assert_eq!(a.details["mounts"][0]["destination"], "/host");
                    assert_eq!(a.details["mounts"][0]["class"], "host_root");
                    assert!(c.posture.is_some());
                    assert!(a.summary.contains("/ at /host"), "{}", a.summary);
                },
            ),
            Example::alert(
                "docker.sock bind-mounted",
                vec![report(Posture {
                    sensitive_mounts: vec![mount(
                        "/run/docker.sock",
                        "/var/run/docker.sock",
                        MountClass::RuntimeSocket,
                    )],
                    ..default_posture()
                })],
                |a| assert_eq!(a.details["mounts"][0]["class"], "runtime_socket"),
            ),
            Example::silent(
                "a container with only ordinary data volumes (no sensitive mount)",
                vec![report(default_posture())],
            ),
        ]
    }
}

pub struct StartedPrivileged;

impl Check for StartedPrivileged {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "container-started-privileged",
        severity: Severity::Low,
        mitre: "T1611",
        title: "A container was started privileged (off by default)",
        scope: "a container started privileged (every capability); off by default",
        explanation: "The container's runtime configuration gives it every capability \
            (`docker run --privileged`, or an OCI bounding set with all of them), usually with \
            no seccomp filter, no AppArmor profile and the host's devices. Inside it, mounting \
            the host's disk, writing a cgroup release_agent or loading a kernel module is an \
            escape, not an attempt; the other rules raise their severity one step for such a \
            container. Many hosts run a few privileged containers on purpose (CNI plugins, \
            storage drivers), so this rule is off by default: turn it on with \
            `[rules.container-started-privileged] enabled = true` to inventory them, or use \
            `escapewatch audit` (CIS Docker Benchmark 5.4).",
        inputs: &[Input::StartReport],
        fixtures: Fixtures::Unavailable(
            "off by default: the recorded sessions run the default policy, under which it gives no alert; the posture test checks it live with the rule turned on",
        ),
        off_by_default: true,
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (c, p) = started(e)?;
        if !p.privileged {
            return None;
        }
        Some(Finding::new(
            format!(
                "{} container {} was started privileged (every capability, seccomp {}).",
                c.runtime.as_str(),
                short(&c.id),
                match p.seccomp {
                    crate::model::posture::Seccomp::Filtered => "on",
                    crate::model::posture::Seccomp::Unconfined => "off",
                },
            ),
            json!({ "host_namespaces": p.host_namespaces, "seccomp": p.seccomp }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{CONTAINER, Example};
        vec![
            Example::alert(
                "docker run --privileged",
                vec![report(Posture {
                    privileged: true,
                    seccomp: crate::model::posture::Seccomp::Unconfined,
                    ..default_posture()
                })],
                |a| {
                    assert_eq!(a.container.as_ref().unwrap().id, CONTAINER);
                    assert_eq!(a.details["seccomp"], "unconfined");
                },
            ),
            Example::silent(
                "a container with two capabilities added, not privileged",
                vec![report(Posture {
                    capabilities_added: vec!["CAP_NET_ADMIN".into(), "CAP_SYS_PTRACE".into()],
                    ..default_posture()
                })],
            ),
        ]
    }
}

/// The runtime defaults: seccomp on, an AppArmor profile, nothing added.
#[cfg(test)]
fn default_posture() -> Posture {
    Posture {
        seccomp: crate::model::posture::Seccomp::Filtered,
        apparmor: "docker-default".into(),
        ..Posture::default()
    }
}

/// The agent's `container_started` report of the examples' container with `posture`.
#[cfg(test)]
fn report(posture: Posture) -> Event {
    use super::examples::{CONTAINER, in_container};
    let mut e = in_container(
        "escapewatch",
        Payload::ContainerStarted {
            source: "docker".into(),
        },
    );
    e.workload = Some(crate::model::Workload {
        container_id: CONTAINER.into(),
        source: "docker".into(),
        name: "web".into(),
        posture: Some(posture),
        ..crate::model::Workload::default()
    });
    e
}
