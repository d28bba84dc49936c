//! `container-root-outside`: a container's process starts a program with its cwd or root in a
//! mount of another mount namespace: a directory of the host (or of another container) kept
//! open across the move into the container, the CVE-2024-21626 class.

use escapewatch_common::kind::EventKind;
use serde_json::json;

use super::{
    Declared, Fixtures, Input, Rule, RuleInfo, alert,
    creds_escalated::Once,
    namespace_held::whose,
    simple::{who, workload},
};
use crate::{
    detect::{Alert, Severity},
    model::{Event, Payload},
};

pub static INFO: RuleInfo = RuleInfo {
    id: "container-root-outside",
    severity: Severity::Critical,
    mitre: "T1611",
    title: "Container process runs with its cwd or root outside the container's mounts",
    scope: "a container process execs with its working directory or root in a mount of the host's (or another) mount namespace: a leaked host directory fd, the CVE-2024-21626 class",
    explanation: "A process that belongs to a container started a program (exec) while its \
        working directory or its root directory lay in a mount that belongs to another mount \
        namespace than its own, as the kernel's `task->fs` showed at that exec. Every mount a \
        container can reach by path, bind-mounted volumes included, is in its own mount \
        namespace; a directory of another one is reached only through a file descriptor \
        opened outside and kept across the move into the container: runc's leaked \
        /sys/fs/cgroup fd used as `process.cwd` = /proc/self/fd/N (CVE-2024-21626), a \
        directory fd passed in by a host process, or fchdir after setns. From there `..` \
        walks the host's filesystem. Working directories inside the container's own mounts \
        (`docker exec -w`, volumes) and the runtime's own work are not reported. Check the \
        runtime's version (runc >= 1.1.12 closes the leaked fd), the exec's parent, and \
        what the process read or wrote through its cwd.",
    inputs: &[Input::Kind(EventKind::ProcessExec)],
    fixtures: Fixtures::Recorded(&["cwd-leak"]),
    ..RuleInfo::BASE
};

#[derive(Default)]
pub struct RootOutside {
    alerted: Once,
}

impl Rule for RootOutside {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn process(&mut self, e: &Event, out: &mut Vec<Alert>) {
        let Payload::ProcessExec {
            filename,
            outside_mount,
            ..
        } = &e.data
        else {
            return;
        };
        let Some(c) = workload(e) else {
            return;
        };
        let Some(first) = outside_mount.first() else {
            return;
        };
        if !self.alerted.first(e) {
            return;
        }
        let which: Vec<&str> = outside_mount.iter().map(|p| p.which.name()).collect();
        let summary = format!(
            "{} ran {filename} with its {} in a mount of {}'s mount namespace (inode {}), not its container's: it holds a directory of the outside; isolate the container and inspect the host.",
            who(e, c),
            which.join(" and "),
            whose(&first.owner),
            first.mnt_ns,
        );
        let details = json!({
            "which": which,
            "mnt_ns": first.mnt_ns,
            "owner": whose(&first.owner),
            "container_mnt_ns": e.process.namespaces.mnt,
            "filename": filename,
            "outside": outside_mount,
        });
        out.push(alert(&INFO, e, summary, details));
    }
}

impl Declared for RootOutside {
    const INFO: &'static RuleInfo = &INFO;

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, in_container, on_host, other_container};
        use crate::model::{FsPath, NsOwner, PathOutside};
        const HOST_MNT: u32 = 4026531841;
        let exec = |outside_mount| Payload::ProcessExec {
            filename: "/bin/cat".into(),
            truncated: false,
            usermode_helper: false,
            binary_container: None,
            outside_mount,
            image: None,
        };
        let outside = |which, owner| PathOutside {
            which,
            mnt_ns: HOST_MNT,
            owner,
        };
        let other = other_container();
        vec![
            Example::alert(
                "cwd on a host directory fd kept across setns (CVE-2024-21626)",
                vec![
                    in_container("cat", exec(vec![outside(FsPath::Cwd, NsOwner::Host)])),
                    in_container("cat", exec(vec![outside(FsPath::Cwd, NsOwner::Host)])),
                ],
                |a| {
                    assert_eq!(a.details["which"], json!(["cwd"]));
                    assert_eq!(a.details["mnt_ns"], HOST_MNT);
                    assert_eq!(a.details["owner"], "the host");
                    assert_eq!(a.details["container_mnt_ns"], 4026532300u32);
                    assert_eq!(a.details["filename"], "/bin/cat");
                    assert_eq!(a.event_ids, vec![1]);
                },
            ),
            Example::alert(
                "cwd and root in another container's mounts",
                vec![in_container(
                    "cat",
                    exec(vec![
                        outside(
                            FsPath::Cwd,
                            NsOwner::Container {
                                id: other.id.clone(),
                                runtime: other.runtime,
                            },
                        ),
                        outside(
                            FsPath::Root,
                            NsOwner::Container {
                                id: other.id,
                                runtime: other.runtime,
                            },
                        ),
                    ]),
                )],
                |a| {
                    assert_eq!(a.details["which"], json!(["cwd", "root"]));
                    assert_eq!(a.details["owner"], "containerd container bbbbbbbbbbbb");
                },
            ),
            Example::silent(
                "docker exec -w into a volume; the runtime; a host shell in /proc/PID/root",
                vec![
                    in_container("cat", exec(Vec::new())),
                    by_runtime(exec(vec![outside(FsPath::Cwd, NsOwner::Host)])),
                    on_host("cat", exec(vec![outside(FsPath::Cwd, NsOwner::Unknown)])),
                ],
            ),
        ]
    }
}
