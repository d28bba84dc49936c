//! `namespace-unshare-user`: a container process creates a user namespace.

use escapewatch_common::kind::EventKind;
use serde_json::json;

use super::{
    Check, Fixtures, Input, RuleInfo,
    simple::{Finding, who, workload},
};
use crate::{
    detect::Severity,
    model::{Event, NsSyscall, NsType, Payload},
};

pub struct UnshareUser;

impl Check for UnshareUser {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "namespace-unshare-user",
        severity: Severity::Medium,
        mitre: "T1611",
        title: "Container process created a user namespace",
        scope: "a container process creates a user namespace",
        explanation: "A process inside a container created a new user namespace (unshare or \
            clone with CLONE_NEWUSER). Inside it the process holds every capability, which \
            unlocks kernel code paths normally reserved to root: mounting cgroupfs to reach \
            release_agent (CVE-2022-0492), and a long list of kernel bugs reachable only with \
            namespaced CAP_SYS_ADMIN or CAP_NET_ADMIN. Few workloads need it (some sandboxing \
            browsers and build tools do). Check what the process ran next (mounts, cgroup \
            writes), and block unprivileged user namespaces in the runtime's seccomp profile if \
            the workload does not need them.",
        inputs: &[
            Input::Kind(EventKind::Unshare),
            Input::Kind(EventKind::CloneNewNamespace),
        ],
        fixtures: Fixtures::Recorded(&["unshare-user"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
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
        let call = match syscall {
            NsSyscall::Unshare if *ret == 0 => "unshare",
            NsSyscall::Clone if *ret > 0 => "clone",
            _ => return None,
        };
        if !flag_types.contains(&NsType::User) {
            return None;
        }
        let c = workload(e)?;
        Some(Finding::new(
            format!(
                "{} created a user namespace with {call}; check what it does with the capabilities it now holds there.",
                who(e, c)
            ),
            json!({ "syscall": call, "flags": format!("{flags:#x}"), "namespace_types": flag_types, "ret": ret }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, in_container, on_host};
        use crate::model::Namespaces;

        let ns = |syscall, ret, flags: u64| Payload::Namespace {
            syscall,
            ret,
            flags,
            flag_types: NsType::ALL
                .into_iter()
                .filter(|t| flags & t.clone_flag() != 0)
                .collect(),
            fd: None,
            before: Namespaces::default(),
            joined: Vec::new(),
        };
        let user = NsType::User.clone_flag();
        let mnt = NsType::Mnt.clone_flag();
        vec![
            Example::alert(
                "unshare -U",
                vec![in_container(
                    "unshare",
                    ns(NsSyscall::Unshare, 0, user | mnt),
                )],
                |a| {
                    assert_eq!(a.details["syscall"], "unshare");
                    assert_eq!(a.details["flags"], "0x10020000");
                    assert_eq!(a.details["namespace_types"], json!(["mnt", "user"]));
                },
            ),
            Example::alert(
                "clone(CLONE_NEWUSER) returning the child",
                vec![in_container("chrome", ns(NsSyscall::Clone, 77, user))],
                |a| assert_eq!(a.details["ret"], 77),
            ),
            Example::silent(
                "a mount namespace only, a refused call, runc, and the host",
                vec![
                    in_container("unshare", ns(NsSyscall::Unshare, 0, mnt)),
                    in_container("unshare", ns(NsSyscall::Unshare, -1, user)),
                    by_runtime(ns(NsSyscall::Unshare, 0, user | mnt)),
                    on_host("podman", ns(NsSyscall::Unshare, 0, user)),
                ],
            ),
        ]
    }
}
