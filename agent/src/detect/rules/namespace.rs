//! `namespace-unshare-user`: a container process creates a user namespace.

use serde_json::json;

use super::{
    RuleInfo,
    simple::{Finding, who, workload},
};
use crate::{
    detect::Severity,
    model::{Event, NsSyscall, Payload},
};

pub static UNSHARE_USER: RuleInfo = RuleInfo {
    id: "namespace-unshare-user",
    severity: Severity::Medium,
    mitre: "T1611",
    title: "Container process created a user namespace",
    explanation: "A process inside a container created a new user namespace (unshare or clone \
        with CLONE_NEWUSER). Inside it the process holds every capability, which unlocks kernel \
        code paths normally reserved to root: mounting cgroupfs to reach release_agent \
        (CVE-2022-0492), and a long list of kernel bugs reachable only with namespaced \
        CAP_SYS_ADMIN or CAP_NET_ADMIN. Few workloads need it (some sandboxing browsers and \
        build tools do). Check what the process ran next (mounts, cgroup writes), and block \
        unprivileged user namespaces in the runtime's seccomp profile if the workload does not \
        need them.",
    event_kinds: &["unshare", "clone_new_namespace"],
};

pub fn unshare_user(e: &Event) -> Option<Finding> {
    let Payload::Namespace {
        syscall,
        ret,
        flag_types,
        flags,
        ..
    } = &e.data
    else {
        return None;
    };
    let ok = match syscall {
        NsSyscall::Unshare => *ret == 0,
        NsSyscall::Clone => *ret > 0,
        NsSyscall::Setns => false,
    };
    if !ok || !flag_types.iter().any(|t| t == "user") {
        return None;
    }
    let c = workload(e)?;
    let call = if *syscall == NsSyscall::Unshare {
        "unshare"
    } else {
        "clone"
    };
    Some(Finding::new(
        format!(
            "{} created a user namespace with {call}; check what it does with the capabilities it now holds there.",
            who(e, c)
        ),
        json!({ "syscall": call, "flags": flags, "namespace_types": flag_types, "ret": ret }),
    ))
}
