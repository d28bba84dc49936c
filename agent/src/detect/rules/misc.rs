//! Runtime API sockets and usermode helpers.

use escapewatch_common::kind::EventKind;
use serde_json::json;

use super::{
    Check, Fixtures, Input, RuleInfo,
    simple::{Finding, short, who, workload},
};
use crate::{
    detect::Severity,
    model::{Event, Payload, posture::RUNTIME_SOCKET_NAMES},
};

pub struct RuntimeSocket;

impl Check for RuntimeSocket {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "runtime-socket-access",
        severity: Severity::High,
        mitre: "T1610",
        title: "Container connected to a container runtime API socket",
        scope: "connect to a docker/containerd/cri-o/podman/buildkit/kubelet API socket, by the name the container used, the name its listener bound, or the host socket's device and inode (`runtime_api.sockets`; symlinks and renamed bind mounts included)",
        // Recorded alerts carry the explanation: it stays as it was, the scope says the rest.
        explanation: "A process in a container connected to the API socket of Docker, \
            containerd, CRI-O or podman (usually bind-mounted into it). Whoever talks to that \
            socket can start a privileged container with the host's root filesystem: it is root \
            on the host. Check why the socket is mounted into the container and what the process \
            asked the runtime to do (the runtime's logs).",
        inputs: &[Input::Kind(EventKind::UnixConnect)],
        fixtures: Fixtures::Recorded(&[
            "runtime-socket",
            "runtime-socket-renamed",
            "iouring-runtime-socket",
            "runtime-socket-inode",
        ]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Payload::UnixConnect {
            ret,
            path,
            peer,
            abstract_name: false,
            runtime_socket,
            ..
        } = &e.data
        else {
            return None;
        };
        let c = workload(e)?;
        let name = path.rsplit('/').next().unwrap_or(path);
        // The name the listener bound (only the host chose it), when the container's differs.
        let bound = peer
            .as_ref()
            .map(|p| p.name.as_str())
            .filter(|b| *b != name && RUNTIME_SOCKET_NAMES.contains(b));
        // The host runtime socket the peer is, by device and inode (enrichment): whatever
        // name the listener or the container gave it.
        let same_inode = runtime_socket.as_deref();
        if *ret != 0
            || !(RUNTIME_SOCKET_NAMES.contains(&name) || bound.is_some() || same_inode.is_some())
        {
            return None;
        }
        let (via, mut details) = match bound {
            // An io_uring connect passes no path: only the bound name is known.
            Some(b) if path.is_empty() => (
                format!("bound as {b} (by io_uring)"),
                json!({ "socket": path, "bound_as": b }),
            ),
            Some(b) => (
                format!("{path} (bound as {b})"),
                json!({ "socket": path, "bound_as": b }),
            ),
            None => match same_inode {
                Some(host) if host != path => (
                    format!("{path} (the host's {host})"),
                    json!({ "socket": path }),
                ),
                _ => (path.clone(), json!({ "socket": path })),
            },
        };
        if let Some(host) = same_inode {
            details["host_socket"] = json!(host);
        }
        Some(Finding::new(
            format!(
                "{} connected to runtime API socket {via}: it can start privileged containers on the host; find out why the socket is mounted in.",
                who(e, c)
            ),
            details,
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, in_container, on_host};
        let connect = |ret, path: &str| Payload::UnixConnect {
            ret,
            path: path.into(),
            peer: None,
            abstract_name: false,
            host_net_ns: false,
            runtime_socket: None,
        };
        let reaching = |path: &str, bound: &str| Payload::UnixConnect {
            ret: 0,
            path: path.into(),
            peer: Some(crate::model::FileRef {
                ino: 77,
                dev: "0:25".into(),
                name: bound.into(),
                parent: String::new(),
            }),
            abstract_name: false,
            host_net_ns: false,
            runtime_socket: None,
        };
        let same_inode = |path: &str, host: &str| {
            let mut p = reaching(path, "x.sock");
            if let Payload::UnixConnect { runtime_socket, .. } = &mut p {
                *runtime_socket = Some(host.into());
            }
            p
        };
        vec![
            Example::alert(
                "the docker socket, bind-mounted",
                vec![in_container("curl", connect(0, "/var/run/docker.sock"))],
                |a| assert_eq!(a.details["socket"], "/var/run/docker.sock"),
            ),
            Example::alert(
                "the docker socket reached through a symlink the container made",
                vec![in_container(
                    "curl",
                    reaching("/tmp/innocent", "docker.sock"),
                )],
                |a| {
                    assert_eq!(a.details["socket"], "/tmp/innocent");
                    assert_eq!(a.details["bound_as"], "docker.sock");
                },
            ),
            Example::alert(
                "a runtime socket bound under another name, reached by its inode",
                vec![in_container(
                    "curl",
                    same_inode("/tmp/notdocker", "/run/ewtest/x.sock"),
                )],
                |a| {
                    assert_eq!(a.details["socket"], "/tmp/notdocker");
                    assert_eq!(a.details["host_socket"], "/run/ewtest/x.sock");
                },
            ),
            Example::silent(
                "a socket of the container's own named like nothing special",
                vec![in_container(
                    "app",
                    reaching("/run/app/api.sock", "api.sock"),
                )],
            ),
            Example::silent(
                "syslog, a refused connect, and the docker CLI on the host",
                vec![
                    in_container("logger", connect(0, "/dev/log")),
                    in_container("curl", connect(-111, "/run/containerd/containerd.sock")),
                    on_host("docker", connect(0, "/var/run/docker.sock")),
                ],
            ),
        ]
    }
}

pub struct UsermodeHelper;

impl Check for UsermodeHelper {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "usermode-helper-from-container",
        severity: Severity::Critical,
        mitre: "T1611",
        title: "The host kernel ran a program from a container's filesystem",
        scope: "the kernel runs a usermode helper whose binary lies in a container's filesystem",
        explanation: "The kernel itself started a program (a usermode helper: a core_pattern \
            pipe, a cgroup release_agent, kernel.modprobe, the uevent helper) whose binary lies \
            inside a container's filesystem. It runs as root in the host's namespaces: whatever \
            the container put there just executed on the host. This is the outcome every \
            core_pattern/release_agent/modprobe escape shares, so it also catches variants no \
            other rule knows. Check the binary (details), the host's core_pattern, release_agent \
            and modprobe settings, and treat the host as compromised.",
        inputs: &[Input::Kind(EventKind::ProcessExec)],
        fixtures: Fixtures::Recorded(&["release-agent", "core-pattern"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Payload::ProcessExec {
            filename,
            usermode_helper: true,
            binary_container: Some(c),
            ..
        } = &e.data
        else {
            return None;
        };
        let mut f = Finding::new(
            format!(
                "The host kernel ran {filename} as a usermode helper (pid {}) from the filesystem of {} container {}; the container's code runs as root on the host.",
                e.process.pid,
                c.runtime.as_str(),
                short(&c.id)
            ),
            json!({ "binary": filename, "args": e.process.args, "helper_pid": e.process.pid }),
        );
        f.container = Some(c.clone());
        Some(f)
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, OTHER_CONTAINER, on_host, other_container};
        let exec = |filename: &str, helper, container| Payload::ProcessExec {
            filename: filename.into(),
            truncated: false,
            usermode_helper: helper,
            binary_container: container,
            outside_mount: Vec::new(),
            image: None,
        };
        let helper = on_host(
            "helper.sh",
            exec("/proc/77/root/helper.sh", true, Some(other_container())),
        );
        vec![
            // The kernel's helper is a host process: the alert names the container whose
            // filesystem held the binary.
            Example::alert(
                "a release_agent script from a container",
                vec![helper],
                |a| {
                    assert_eq!(a.container.as_ref().unwrap().id, OTHER_CONTAINER);
                    assert_eq!(a.details["binary"], "/proc/77/root/helper.sh");
                    assert_eq!(a.details["helper_pid"], 4242);
                },
            ),
            Example::silent(
                "modprobe from the host's own disk, and a container exec'ing its own binary",
                vec![
                    on_host("modprobe", exec("/sbin/modprobe", true, None)),
                    on_host(
                        "sh",
                        exec("/proc/77/root/bin/sh", false, Some(other_container())),
                    ),
                ],
            ),
        ]
    }
}
