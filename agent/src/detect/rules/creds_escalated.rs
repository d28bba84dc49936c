//! `container-creds-escalated`: a container's process holds capabilities beyond the bounding
//! set its container started with, or the kernel's own credentials. The effect of a kernel
//! privilege escalation (`commit_creds(prepare_kernel_cred(0))`) whatever exploit led there.

use std::collections::{HashSet, VecDeque};

use serde_json::json;

use super::{
    Declared, Fixtures, Rule, RuleInfo, alert,
    namespace_held::EVERY_KIND,
    simple::{who, workload},
};
use crate::{
    detect::{Alert, Severity},
    model::{Event, bits::cap_names},
};

/// Processes remembered as alerted; the oldest is forgotten beyond that.
const REMEMBERED: usize = 16_384;

pub static INFO: RuleInfo = RuleInfo {
    id: "container-creds-escalated",
    severity: Severity::Critical,
    mitre: "T1068",
    title: "Container process holds capabilities beyond its container's start",
    scope: "a container process holds effective capabilities outside its container's bounding set at start, or the kernel's init_cred (host root, every capability), however it got them (kernel exploits)",
    explanation: "A process that belongs to a container was seen (at its exec, fork, exit or \
        any other event) with effective capabilities its container could not give it: bits \
        outside the capability bounding set of the container's first workload process, as \
        /proc showed it when escapewatch first saw the container (or at agent start for a \
        container already running); in the host's user namespace, every capability of a \
        container that started in a user namespace of its own. No process can raise its \
        capabilities above its bounding set, and no process can widen that set: a kernel \
        exploit's commit_creds did it, or the runtime was asked to (`runc exec --cap`, \
        `docker exec --privileged`) by someone with the runtime's powers. `init_cred` in the \
        details means the credentials are the kernel's own: uid and gid 0 and every \
        capability in the initial user namespace. A container started privileged (every \
        capability in its bounding set) and setuid-root programs inside a container (which \
        gain capabilities within the bounding set) are not reported, nor is the runtime \
        doing its own work. Treat the host as compromised: find who ran the process \
        (`escapewatch timeline`), whether a runtime exec explains it, and what it did next.",
    inputs: EVERY_KIND,
    fixtures: Fixtures::Recorded(&["creds-escalated"]),
    ..RuleInfo::BASE
};

/// Process identities (pid, start time) remembered, bounded, oldest forgotten first.
#[derive(Default)]
pub(super) struct Once {
    seen: HashSet<(u32, u64)>,
    order: VecDeque<(u32, u64)>,
}

impl Once {
    /// True the first time the event's process asks.
    pub(super) fn first(&mut self, e: &Event) -> bool {
        let key = (e.process.pid, e.process.start_time);
        if !self.seen.insert(key) {
            return false;
        }
        if self.order.len() >= REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.order.push_back(key);
        true
    }
}

#[derive(Default)]
pub struct CredsEscalated {
    alerted: Once,
}

impl Rule for CredsEscalated {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn process(&mut self, e: &Event, out: &mut Vec<Alert>) {
        let Some(c) = workload(e) else {
            return;
        };
        let Some(beyond) = e.process.creds_beyond_start else {
            return;
        };
        if !self.alerted.first(e) {
            return;
        }
        let gained = cap_names(beyond.gained);
        let uid = e.process.uid;
        let uid_change = if uid == beyond.start_uid {
            format!("uid {uid}")
        } else {
            format!("uid {} -> {uid}", beyond.start_uid)
        };
        let summary = format!(
            "{} holds {} beyond its container's start bounding set ({uid_change}{}): its credentials were raised past what the container allows; isolate the container and inspect the host.",
            who(e, c),
            gained.join(", "),
            if beyond.init_cred {
                ", the kernel's init_cred"
            } else {
                ""
            },
        );
        let details = json!({
            "gained": gained,
            "gained_mask": format!("{:#x}", beyond.gained),
            "cap_effective": e.process.cap_effective.map(|c| format!("{c:#x}")),
            "start_bounding": format!("{:#x}", beyond.start_bounding),
            "uid": uid,
            "start_uid": beyond.start_uid,
            "init_cred": beyond.init_cred,
            "seen_at": e.kind_name(),
        });
        out.push(alert(&INFO, e, summary, details));
    }
}

impl Declared for CredsEscalated {
    const INFO: &'static RuleInfo = &INFO;

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, in_container};
        use crate::model::{CredsBeyondStart, Payload};
        // Docker's default bounding set, and that plus CAP_SYS_MODULE | CAP_SYS_ADMIN.
        const DOCKER: u64 = 0xa804_25fb;
        const MODULE: u64 = 1 << 16;
        let exec = || Payload::ProcessExec {
            filename: "/bin/sh".into(),
            truncated: false,
            usermode_helper: false,
            binary_container: None,
            outside_mount: Vec::new(),
            image: None,
        };
        let with = |data, uid, caps: u64, beyond: Option<CredsBeyondStart>| {
            let mut e = in_container("sh", data);
            e.process.uid = uid;
            e.process.cap_effective = Some(caps);
            e.process.creds_beyond_start = beyond;
            e
        };
        let beyond = |gained, init_cred| CredsBeyondStart {
            gained,
            start_bounding: DOCKER,
            start_uid: 1000,
            init_cred,
        };
        let full = crate::enrich::FULL_CAPS;
        vec![
            Example::alert(
                "a kernel exploit's commit_creds: uid 1000 becomes init_cred",
                vec![
                    with(exec(), 0, full, Some(beyond(full & !DOCKER, true))),
                    with(
                        Payload::ProcessExit { exit_code: 0 },
                        0,
                        full,
                        Some(beyond(full & !DOCKER, true)),
                    ),
                ],
                |a| {
                    let gained = a.details["gained"].as_array().unwrap();
                    assert!(gained.iter().any(|g| g == "CAP_SYS_MODULE"), "{gained:?}");
                    assert!(gained.iter().any(|g| g == "CAP_SYS_ADMIN"), "{gained:?}");
                    assert!(!gained.iter().any(|g| g == "CAP_CHOWN"), "{gained:?}");
                    assert_eq!(a.details["init_cred"], true);
                    assert_eq!(a.details["uid"], 0);
                    assert_eq!(a.details["start_uid"], 1000);
                    assert_eq!(a.details["start_bounding"], "0xa80425fb");
                    assert_eq!(a.details["seen_at"], "process_exec");
                    assert!(a.summary.contains("uid 1000 -> 0"), "{}", a.summary);
                    assert_eq!(a.event_ids, vec![1]);
                },
            ),
            Example::alert(
                "runc exec --cap CAP_SYS_MODULE into a container started without it",
                vec![with(
                    exec(),
                    0,
                    DOCKER | MODULE,
                    Some(CredsBeyondStart {
                        start_uid: 0,
                        ..beyond(MODULE, false)
                    }),
                )],
                |a| {
                    assert_eq!(a.details["gained"], json!(["CAP_SYS_MODULE"]));
                    assert_eq!(a.details["gained_mask"], "0x10000");
                    assert_eq!(a.details["init_cred"], false);
                    assert!(a.summary.contains("(uid 0)"), "{}", a.summary);
                },
            ),
            Example::silent(
                "a setuid-root program in an unprivileged container, and a privileged container",
                vec![with(exec(), 0, DOCKER, None), with(exec(), 0, full, None)],
            ),
            Example::silent("the runtime doing its own work", {
                let mut runc = by_runtime(exec());
                runc.process.creds_beyond_start = Some(beyond(MODULE, false));
                vec![runc]
            }),
        ]
    }
}
