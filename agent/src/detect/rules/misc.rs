//! Runtime API sockets and usermode helpers.

use serde_json::json;

use super::{
    RuleInfo,
    simple::{Finding, short, who, workload},
};
use crate::{
    detect::Severity,
    model::{Event, Payload},
};

pub static RUNTIME_SOCKET: RuleInfo = RuleInfo {
    id: "runtime-socket-access",
    severity: Severity::High,
    mitre: "T1610",
    title: "Container connected to a container runtime API socket",
    explanation: "A process in a container connected to the API socket of Docker, containerd, \
        CRI-O or podman (usually bind-mounted into it). Whoever talks to that socket can start \
        a privileged container with the host's root filesystem: it is root on the host. Check \
        why the socket is mounted into the container and what the process asked the runtime \
        to do (the runtime's logs).",
    event_kinds: &["unix_connect"],
};

const RUNTIME_SOCKETS: [&str; 7] = [
    "docker.sock",
    "containerd.sock",
    "crio.sock",
    "podman.sock",
    "cri-dockerd.sock",
    "dockershim.sock",
    "containerd-shim.sock",
];

pub fn runtime_socket(e: &Event) -> Option<Finding> {
    let Payload::UnixConnect { ret, path } = &e.data else {
        return None;
    };
    let c = workload(e)?;
    let name = path.rsplit('/').next().unwrap_or(path);
    if *ret != 0 || !RUNTIME_SOCKETS.contains(&name) {
        return None;
    }
    Some(Finding::new(
        format!(
            "{} connected to runtime API socket {path}: it can start privileged containers on the host; find out why the socket is mounted in.",
            who(e, c)
        ),
        json!({ "socket": path }),
    ))
}

pub static USERMODE_HELPER: RuleInfo = RuleInfo {
    id: "usermode-helper-from-container",
    severity: Severity::Critical,
    mitre: "T1611",
    title: "The host kernel ran a program from a container's filesystem",
    explanation: "The kernel itself started a program (a usermode helper: a core_pattern pipe, a \
        cgroup release_agent, kernel.modprobe, the uevent helper) whose binary lies inside a \
        container's filesystem. It runs as root in the host's namespaces: whatever the \
        container put there just executed on the host. This is the outcome every \
        core_pattern/release_agent/modprobe escape shares, so it also catches variants no other \
        rule knows. Check the binary (details), the host's core_pattern, release_agent and \
        modprobe settings, and treat the host as compromised.",
    event_kinds: &["process_exec"],
};

pub fn usermode_helper(e: &Event) -> Option<Finding> {
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
