//! `exec-host-binary`: a container runs a program that lives on the host: on the host's root
//! filesystem mounted whole inside the container (a `/` volume, the host disk mounted again,
//! then chroot: Atomic Red Team T1611 "volume mapping"), or in a mount of the host's (or
//! another container's) mount namespace reached through /proc/PID/root or a kept fd. Judged at
//! every exec from the mount the kernel loaded the file through (`bprm->file->f_path`), so the
//! path, the exec entry and a chroot change nothing.

use serde_json::json;

use super::{
    Fixtures, Input, RuleInfo,
    drift::container_exec,
    namespace_held::whose,
    simple::{Check, Finding, who},
};
use crate::{
    detect::Severity,
    model::{Event, NsOwner},
};
use escapewatch_common::kind::EventKind;

pub struct HostBinary;

impl Check for HostBinary {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "exec-host-binary",
        severity: Severity::High,
        mitre: "T1611",
        title: "Container ran a program from the host's filesystem",
        scope: "a container process execs a file of the host's root filesystem mounted whole in the container (a `/` volume, the host disk mounted, chroot), or of a mount in the host's or another container's mount namespace (/proc/PID/root)",
        explanation: "A process of a container started a program that is the host's, not its \
            image's, as the kernel loaded it (the mount of `bprm->file` at sched_process_exec): \
            either the file lies on the host's root filesystem (the superblock of PID 1's root) \
            through a mount that shows that whole filesystem — the host's `/` bind-mounted as a \
            volume (`-v /:/host`) or its disk mounted again from a privileged container, \
            typically followed by `chroot` — or the mount belongs to the host's (or another \
            container's) mount namespace, reached through /proc/PID/root of a host process or a \
            directory fd kept from outside. Running the host's programs with the host's \
            configuration from a container is the step after most escapes (T1611). Bind mounts \
            of single files or of host subdirectories (docker-init, a tools volume) and an \
            image's own programs are not reported. The facts are the kernel's: whatever path, \
            chroot or exec entry was used. Check the container's mounts (posture: \
            sensitive_mounts), its capabilities, and what the program did on the host.",
        inputs: &[Input::Kind(EventKind::ProcessExec)],
        fixtures: Fixtures::Recorded(&["host-binary-chroot", "host-binary-proc-root"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (filename, image) = container_exec(e)?;
        let c = e.container.as_ref()?;
        let (reason, owner) = match &image.foreign_mnt_ns {
            Some(f) => match &f.owner {
                NsOwner::Host => ("host-mount-namespace", "the host".to_owned()),
                o @ NsOwner::Container { id, .. } if *id != c.id => {
                    ("other-container-mount-namespace", whose(o))
                }
                _ => return None,
            },
            None if image.host_root_fs && image.whole_fs => {
                ("host-root-filesystem", "the host".to_owned())
            }
            None => return None,
        };
        let how = match reason {
            "host-root-filesystem" => {
                "a file of the host's root filesystem, mounted whole in the container".to_owned()
            }
            _ => format!("a file in a mount of {owner}'s mount namespace"),
        };
        Some(Finding::new(
            format!(
                "{} ran {filename}, {how} (inode {} on {}): it runs {owner}'s programs; check the container's mounts and what the program did.",
                who(e, c),
                image.inode,
                image.dev,
            ),
            json!({
                "filename": filename,
                "reason": reason,
                "owner": owner,
                "inode": image.inode,
                "dev": image.dev,
                "root_dev": image.root_dev,
                "whole_fs": image.whole_fs,
                "host_root_fs": image.host_root_fs,
                "mnt_ns": image.foreign_mnt_ns.as_ref().map(|f| f.inode),
            }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        examples()
    }
}

#[cfg(test)]
fn examples() -> Vec<super::examples::Example> {
    use escapewatch_common::{abi, event::NsType};

    use super::drift::tests::exec;
    use super::examples::{Example, by_runtime, in_container, on_host, other_container};
    use crate::model::{ExecImage, JoinedNamespace};

    const HOST_MNT: u32 = 4026531841;
    let image = |dev: &str, whole_fs, host_root_fs, owner: Option<NsOwner>| ExecImage {
        inode: 777,
        dev: dev.into(),
        fs_magic: abi::EXT4_SUPER_MAGIC,
        nlink: 1,
        ctime_unix_ns: 1,
        root_dev: "0:50".into(),
        container_start_unix_ns: Some(2),
        whole_fs,
        host_root_fs,
        foreign_mnt_ns: owner.map(|owner| JoinedNamespace {
            ns_type: NsType::Mnt,
            inode: HOST_MNT,
            previous: 4026532300,
            owner,
        }),
    };
    let other = other_container();
    vec![
        Example::alert(
            "chroot into the host's / mounted as a volume, then run its shell",
            vec![in_container(
                "sh",
                exec("/bin/sh", image("8:1", true, true, None)),
            )],
            |a| {
                assert_eq!(a.details["reason"], "host-root-filesystem");
                assert_eq!(a.details["owner"], "the host");
                assert_eq!(a.details["filename"], "/bin/sh");
                assert_eq!(a.details["dev"], "8:1");
                assert_eq!(a.details["whole_fs"], true);
                assert_eq!(a.details["mnt_ns"], serde_json::Value::Null);
                assert_eq!(a.event_ids, vec![1]);
            },
        ),
        Example::alert(
            "a host program run through /proc/1/root (host PID namespace shared)",
            vec![in_container(
                "x",
                exec(
                    "/proc/1/root/usr/bin/id",
                    image("8:1", false, true, Some(NsOwner::Host)),
                ),
            )],
            |a| {
                assert_eq!(a.details["reason"], "host-mount-namespace");
                assert_eq!(a.details["mnt_ns"], HOST_MNT);
            },
        ),
        Example::alert(
            "another container's program through /proc/PID/root",
            vec![in_container(
                "x",
                exec(
                    "/proc/77/root/bin/sh",
                    image(
                        "0:61",
                        true,
                        false,
                        Some(NsOwner::Container {
                            id: other.id.clone(),
                            runtime: other.runtime,
                        }),
                    ),
                ),
            )],
            |a| {
                assert_eq!(a.details["reason"], "other-container-mount-namespace");
                assert_eq!(a.details["owner"], "containerd container bbbbbbbbbbbb");
            },
        ),
        Example::silent(
            "the image's programs (overlay root, whole); a host subtree or single-file bind (docker-init, a tools volume, a bundle rootfs directory on the host's disk); the runtime; a host process; an fd kept from the container's own namespace",
            vec![
                in_container("sh", exec("/bin/sh", image("0:50", true, false, None))),
                in_container(
                    "docker-init",
                    exec("/sbin/docker-init", image("8:1", false, true, None)),
                ),
                in_container("tool", exec("/tools/x", image("8:1", false, true, None))),
                by_runtime(exec(
                    "/bin/sh",
                    image("8:1", true, true, Some(NsOwner::Host)),
                )),
                on_host("sh", exec("/bin/sh", image("8:1", true, true, None))),
                in_container(
                    "x",
                    exec(
                        "/proc/self/fd/3",
                        image("0:50", true, false, Some(super::examples::own_container())),
                    ),
                ),
            ],
        ),
    ]
}
