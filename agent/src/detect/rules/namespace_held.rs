//! `foreign-namespace-held`: a container's process holds a namespace of the host or of another
//! container that its container did not have at start, and no setns the hooks saw explains it.
//! The effect of an escape rather than its primitive: it holds for the 32-bit syscall entry,
//! io_uring, a lost event or a kernel exploit's switch_task_namespaces alike.

use std::collections::{HashSet, VecDeque};

use escapewatch_common::kind::EventKind;
use serde_json::json;

use super::{
    Declared, Fixtures, Input, Rule, RuleInfo, alert,
    simple::{short, who, workload},
};
use crate::{
    detect::{Alert, Severity},
    model::{Event, JoinedNamespace, NsOwner, NsSyscall, NsType, Payload},
};

/// (container, namespace type, inode) pairs remembered as alerted or explained.
const REMEMBERED: usize = 16_384;

/// Every kind: the post-condition is checked on whatever event a process makes next.
pub(super) const EVERY_KIND: &[Input] = &[
    Input::Kind(EventKind::ProcessExec),
    Input::Kind(EventKind::ProcessFork),
    Input::Kind(EventKind::ProcessExit),
    Input::Kind(EventKind::Setns),
    Input::Kind(EventKind::Unshare),
    Input::Kind(EventKind::CloneNewNamespace),
    Input::Kind(EventKind::Mount),
    Input::Kind(EventKind::FileOpen),
    Input::Kind(EventKind::SysctlWrite),
    Input::Kind(EventKind::Madvise),
    Input::Kind(EventKind::MemWrite),
    Input::Kind(EventKind::Syscall),
    Input::Kind(EventKind::PipeWrite),
    Input::Kind(EventKind::UnixConnect),
    Input::Kind(EventKind::CowFault),
    Input::Kind(EventKind::TaskChanged),
];

pub static INFO: RuleInfo = RuleInfo {
    id: "foreign-namespace-held",
    severity: Severity::Critical,
    mitre: "T1611",
    title: "Container process holds a host or foreign namespace no setns explains",
    scope: "a container process is seen holding a namespace of the host or another container that its container did not have at start, however it got there (32-bit syscalls, io_uring, kernel exploits)",
    explanation: "A process that belongs to a container was seen (at its next exec, fork, exit \
        or any other event) holding a namespace owned by the host or by another container, \
        which its container did not have when escapewatch first saw it, and no setns call the \
        agent watched moved it there. The process left its isolation by a path the syscall \
        hooks do not see: the 32-bit syscall entry (int 0x80), io_uring, events lost to a \
        full buffer, or a kernel exploit switching its namespaces. Containers configured to \
        share a host namespace from the start (host network, host PID) are not reported. Treat \
        the host as compromised: check the process tree and command lines around the event \
        (`escapewatch timeline`) and what the process did in the namespace it reached.",
    inputs: EVERY_KIND,
    // Recorded from a real 32-bit setns into the host before the 32-bit entry had programs:
    // the join no hook saw. That entry is watched now (`compat-setns` is namespace-join-host's),
    // so no live scenario here can make a join unseen; the recording keeps the rule proven.
    fixtures: Fixtures::Recorded(&["namespace-held-compat"]),
    ..RuleInfo::BASE
};

type Key = (String, NsType, u32);

#[derive(Default)]
pub struct ForeignNamespaceHeld {
    remembered: HashSet<Key>,
    order: VecDeque<Key>,
}

impl ForeignNamespaceHeld {
    /// Remember `key`; false when it was known.
    fn remember(&mut self, key: Key) -> bool {
        if self.remembered.contains(&key) {
            return false;
        }
        if self.order.len() >= REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.remembered.remove(&old);
        }
        self.order.push_back(key.clone());
        self.remembered.insert(key);
        true
    }
}

pub(super) fn whose(owner: &NsOwner) -> String {
    match owner {
        NsOwner::Host => "the host".to_owned(),
        NsOwner::Container { id, runtime } => {
            format!("{} container {}", runtime.as_str(), short(id))
        }
        NsOwner::Unknown => "unknown".to_owned(),
    }
}

impl Rule for ForeignNamespaceHeld {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn process(&mut self, e: &Event, out: &mut Vec<Alert>) {
        let Some(c) = workload(e) else {
            return;
        };
        // A setns the tracepoint saw is namespace-join-host's: what it joined is explained.
        if let Payload::Namespace {
            syscall: NsSyscall::Setns,
            ret: 0,
            joined,
            ..
        } = &e.data
        {
            for j in joined {
                self.remember((c.id.clone(), j.ns_type, j.inode));
            }
            for j in &e.process.foreign_namespaces {
                self.remember((c.id.clone(), j.ns_type, j.inode));
            }
            return;
        }
        let fresh: Vec<&JoinedNamespace> = e
            .process
            .foreign_namespaces
            .iter()
            .filter(|j| self.remember((c.id.clone(), j.ns_type, j.inode)))
            .collect();
        let Some(first) = fresh.first() else {
            return;
        };
        let types: Vec<&str> = fresh.iter().map(|j| j.ns_type.name()).collect();
        let summary = format!(
            "{} holds {}'s {} namespace{} (inode {}), which its container did not have at start, and no setns was seen: it left the container by an unwatched path; isolate the container and inspect the host.",
            who(e, c),
            whose(&first.owner),
            types.join("+"),
            if types.len() > 1 { "s" } else { "" },
            first.inode,
        );
        let details = json!({
            "namespace_type": first.ns_type,
            "inode": first.inode,
            "owner": whose(&first.owner),
            "container_namespace": first.previous,
            "seen_at": e.kind_name(),
            "held": fresh,
        });
        out.push(alert(&INFO, e, summary, details));
    }
}

impl Declared for ForeignNamespaceHeld {
    const INFO: &'static RuleInfo = &INFO;

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, in_container, other_container};
        use crate::model::testing::{container_process, setns_event};
        const HOST_MNT: u32 = 4026531832;
        let held = |owner| JoinedNamespace {
            ns_type: NsType::Mnt,
            inode: HOST_MNT,
            previous: 4026532300,
            owner,
        };
        let holding = |data, owner| {
            let mut e = in_container("sh", data);
            e.process.foreign_namespaces = vec![held(owner)];
            e.process.namespaces.mnt = HOST_MNT;
            e
        };
        let exec = || Payload::ProcessExec {
            filename: "/bin/sh".into(),
            truncated: false,
            usermode_helper: false,
            binary_container: None,
            outside_mount: Vec::new(),
            image: None,
        };
        let exit = || Payload::ProcessExit { exit_code: 0 };
        let seen_setns = {
            let mut e = setns_event(container_process(), 0, vec![held(NsOwner::Host)]);
            e.process.foreign_namespaces = vec![held(NsOwner::Host)];
            e
        };
        let other = other_container();
        vec![
            Example::alert(
                "exec after a 32-bit setns into the host's mount namespace",
                vec![
                    holding(exec(), NsOwner::Host),
                    holding(exit(), NsOwner::Host),
                ],
                |a| {
                    assert_eq!(a.details["namespace_type"], "mnt");
                    assert_eq!(a.details["inode"], HOST_MNT);
                    assert_eq!(a.details["owner"], "the host");
                    assert_eq!(a.details["container_namespace"], 4026532300u32);
                    assert_eq!(a.details["seen_at"], "process_exec");
                    assert_eq!(a.event_ids, vec![1]);
                },
            ),
            Example::alert(
                "another container's namespace",
                vec![holding(
                    exit(),
                    NsOwner::Container {
                        id: other.id,
                        runtime: other.runtime,
                    },
                )],
                |a| assert_eq!(a.details["owner"], "containerd container bbbbbbbbbbbb"),
            ),
            Example::silent(
                "a setns the hooks saw (namespace-join-host's), then its exec; and runc",
                vec![seen_setns, holding(exec(), NsOwner::Host), {
                    let mut runc = by_runtime(exec());
                    runc.process.foreign_namespaces = vec![held(NsOwner::Host)];
                    runc
                }],
            ),
            Example::silent(
                "a container sharing the host's network from the start holds nothing foreign",
                vec![in_container("nginx", exec())],
            ),
        ]
    }
}
