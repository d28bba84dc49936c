//! `procfs-mount-in-container`: a container process mounts a fresh procfs of its own pid
//! namespace, which shows none of the runtime's masks.

use escapewatch_common::kind::EventKind;
use serde_json::json;

use super::{
    Check, Fixtures, Input, RuleInfo,
    simple::{Finding, who, workload},
};
use crate::{
    detect::Severity,
    model::{Event, Payload},
};

pub struct ProcfsMount;

impl Check for ProcfsMount {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "procfs-mount-in-container",
        severity: Severity::Medium,
        mitre: "T1611",
        title: "Container mounted a fresh procfs, without the runtime's masks",
        scope: "a container mounts a new procfs of its own pid namespace, shedding the runtime's masked and read-only /proc paths",
        explanation: "A process in a container mounted a new instance of procfs. The runtime \
            gives a container a /proc with dangerous entries masked (kcore, sysrq-trigger, \
            timer_list) and /proc/sys read-only; a fresh procfs mounted from inside has none of \
            that, so /proc/sys/kernel/core_pattern, /proc/sysrq-trigger and the rest become \
            writable to a privileged container: the usual first step of a core_pattern or \
            sysrq escape, and what the runc masked-path CVEs (CVE-2019-19921, CVE-2025-31133) \
            are about. Nested container runtimes (docker-in-docker, podman in a CI container) \
            mount procfs for their own containers: allowlist those images. Check what the \
            process wrote under the new mount next.",
        inputs: &[Input::Kind(EventKind::Mount)],
        fixtures: Fixtures::Recorded(&["procfs-mount"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Payload::Mount {
            call,
            ret,
            source,
            target,
            fstype,
            host_pid_ns,
            ..
        } = &e.data
        else {
            return None;
        };
        // A procfs of the host's pid namespace is `mount-host-device`'s.
        if fstype != "proc" || *ret < 0 || *host_pid_ns {
            return None;
        }
        let c = workload(e)?;
        Some(Finding::new(
            format!(
                "{} mounted a fresh procfs at {target}: the runtime's masked and read-only /proc paths are open there; check what it wrote under it.",
                who(e, c)
            ),
            json!({ "call": call, "source": source, "target": target, "fstype": fstype, "ret": ret }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, in_container, on_host};
        use crate::model::MountCall;
        let mount = |fstype: &str, host_pid_ns| Payload::Mount {
            call: MountCall::Mount,
            ret: 0,
            flags: 0,
            source: fstype.into(),
            target: "/tmp/p".into(),
            fstype: fstype.into(),
            host_pid_ns,
            host_cgroup_ns: false,
            source_owner: None,
            device: None,
            bound: None,
        };
        vec![
            Example::alert(
                "mount -t proc proc /tmp/p",
                vec![in_container("mount", mount("proc", false))],
                |a| {
                    assert_eq!(a.details["target"], "/tmp/p");
                    assert_eq!(a.details["fstype"], "proc");
                    assert_eq!(a.details["call"], "mount");
                },
            ),
            Example::silent(
                "runc mounting the container's /proc, the host, a tmpfs, and the host's procfs (another rule's)",
                vec![
                    by_runtime(mount("proc", false)),
                    on_host("mount", mount("proc", false)),
                    in_container("mount", mount("tmpfs", false)),
                    in_container("mount", mount("proc", true)),
                ],
            ),
        ]
    }
}
