//! The detector's own integrity: programs detached behind its back, and runs that ended
//! without a clean stop.
//!
//! These rules read no kernel event. The daemon reports what it finds about itself as a
//! synthetic event of the agent's own process (as it does for kernel losses, see
//! `detect::overload`): the event log records the report and the rule judges it, so replay of
//! a log gives exactly the live alert.

use serde_json::json;

use super::{Check, Fixtures, Input, RuleInfo, simple::Finding};
use crate::{
    detect::Severity,
    model::{Event, Payload},
};

pub struct DetectorTampered;

impl Check for DetectorTampered {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "detector-tampered",
        severity: Severity::Critical,
        mitre: "T1562.001",
        title: "An escapewatch eBPF program was detached while the agent ran",
        scope: "a program the agent attached is no longer attached (link gone or detached)",
        explanation: "escapewatch checks every few seconds that each eBPF program it attached \
            at start is still attached, and one no longer is: its kernel link was detached (for \
            example with `bpftool link detach`) or has gone. The \
            agent does not do that itself while it runs, so someone with CAP_SYS_ADMIN or \
            CAP_BPF on the host did, and from now on the rules served by that program (see \
            `escapewatch rules`) are blind. Disabling a detector is a usual step before an \
            escape or after one. Find who ran bpftool or the bpf() syscall at that time (audit \
            log, shell histories), treat the host as compromised \
            until shown otherwise, and restart the agent to attach the program again.",
        inputs: &[Input::DetachReport],
        fixtures: Fixtures::Recorded(&["detector-tampered"]),
        agent_warning: true,
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Payload::ProgramsDetached { programs } = &e.data else {
            return None;
        };
        if programs.is_empty() {
            return None;
        }
        Some(Finding::new(
            format!(
                "eBPF program(s) {} of escapewatch were detached while it ran: the rules they serve are blind until the agent restarts; someone on the host disabled part of the detector.",
                programs.join(", ")
            ),
            json!({ "programs": programs }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, on_host};
        let report = |programs: &[&str]| {
            on_host(
                "escapewatch",
                Payload::ProgramsDetached {
                    programs: programs.iter().map(|p| (*p).to_owned()).collect(),
                },
            )
        };
        vec![
            Example::alert(
                "the setns tracepoint program detached",
                vec![report(&["sys_enter_setns", "sysctl_write"])],
                |a| {
                    assert_eq!(
                        a.details["programs"],
                        json!(["sys_enter_setns", "sysctl_write"])
                    );
                    assert_eq!(a.process.comm, "escapewatch");
                    assert!(a.container.is_none());
                    assert!(
                        a.summary.contains("sys_enter_setns, sysctl_write"),
                        "{}",
                        a.summary
                    );
                },
            ),
            Example::silent(
                "the agent's other self-report, and an empty check",
                vec![
                    on_host(
                        "escapewatch",
                        Payload::EventsLost {
                            lost: [("process_fork".to_owned(), 3)].into(),
                        },
                    ),
                    report(&[]),
                ],
            ),
        ]
    }
}

pub struct DetectorRestarted;

impl Check for DetectorRestarted {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "detector-restarted",
        severity: Severity::High,
        mitre: "T1562.001",
        title: "escapewatch started after a run that did not stop cleanly",
        scope: "the previous run on this event log was killed or crashed (no clean stop)",
        explanation: "escapewatch started and found that its previous run on the same event \
            log did not stop cleanly: it did not get to drain and flush after SIGTERM, because \
            it was killed (SIGKILL), crashed, was killed by the OOM killer, or the host went \
            down under it (`host_rebooted`). Nothing was watching between the previous run's \
            last event and this start, and a kill followed by a quick restart stays under the \
            AgentDown alert's window. Check the service manager's journal for how the previous \
            run ended (signal, OOM, crash), who could send it a signal, and what happened on \
            the host in the gap (the end of the previous event-log session).",
        inputs: &[Input::RestartReport],
        fixtures: Fixtures::Recorded(&["detector-restarted"]),
        agent_warning: true,
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Payload::AgentRestarted {
            previous_pid,
            previous_start,
            host_rebooted,
        } = &e.data
        else {
            return None;
        };
        let previous = match (*previous_pid, previous_start.as_str()) {
            (0, _) => "its previous run".to_owned(),
            (pid, "") => format!("its previous run (pid {pid})"),
            (pid, t) => format!("its previous run (pid {pid}, ready at {t})"),
        };
        let how = if *host_rebooted {
            "went down with the host"
        } else {
            "was killed or crashed"
        };
        Some(Finding::new(
            format!(
                "escapewatch (pid {}) started after {previous} {how} without a clean stop: nothing watched the host in between.",
                e.process.pid
            ),
            json!({
                "previous_pid": previous_pid,
                "previous_start": previous_start,
                "host_rebooted": host_rebooted,
            }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, on_host};
        let restarted = |host_rebooted| {
            on_host(
                "escapewatch",
                Payload::AgentRestarted {
                    previous_pid: 777,
                    previous_start: "2026-11-23T01:00:00Z".into(),
                    host_rebooted,
                },
            )
        };
        vec![
            Example::alert("a SIGKILL and a restart", vec![restarted(false)], |a| {
                assert_eq!(a.details["previous_pid"], 777);
                assert_eq!(a.details["previous_start"], "2026-11-23T01:00:00Z");
                assert_eq!(a.details["host_rebooted"], false);
                assert!(a.container.is_none());
                assert!(a.summary.contains("pid 777"), "{}", a.summary);
                assert!(a.summary.contains("killed or crashed"), "{}", a.summary);
            }),
            Example::alert(
                "the host went down under the agent",
                vec![restarted(true)],
                |a| {
                    assert_eq!(a.details["host_rebooted"], true);
                    assert!(
                        a.summary.contains("went down with the host"),
                        "{}",
                        a.summary
                    );
                },
            ),
            Example::silent(
                "the agent's other self-reports",
                vec![
                    on_host(
                        "escapewatch",
                        Payload::ProgramsDetached { programs: vec![] },
                    ),
                    on_host(
                        "escapewatch",
                        Payload::EventsLost {
                            lost: [("process_exit".to_owned(), 1)].into(),
                        },
                    ),
                ],
            ),
        ]
    }
}
