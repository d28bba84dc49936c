//! `mount-host-device`: a container mounts a block device, the host's procfs, sysfs or cgroupfs,
//! or a host path reached through /proc/PID/root.

use escapewatch_common::{
    abi::{ENODEV, ENOENT, MS_BIND},
    kind::EventKind,
};
use serde_json::json;

use super::{
    Check, Fixtures, Input, RuleInfo,
    simple::{Finding, who, workload},
};
use crate::{
    detect::Severity,
    model::{Event, MountCall, NsOwner, Payload},
};

/// Filesystems that are not backed by a device path even when their source looks like one.
const VIRTUAL_FS: [&str; 12] = [
    "tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "overlay", "devtmpfs",
    "bind", "none", "shm",
];

/// Filesystems that live on a block device (`/proc/filesystems` lists them without `nodev`):
/// mounting one mounts a disk, whatever path names the device. The type is the kernel driver's
/// name; a container cannot make another driver answer to it.
const DEVICE_FS: [&str; 24] = [
    "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "msdos", "fat", "exfat", "ntfs", "ntfs3",
    "f2fs", "jfs", "reiserfs", "hfs", "hfsplus", "udf", "iso9660", "squashfs", "erofs", "minix",
    "nilfs2", "gfs2", "bcachefs",
];

/// What of the host a mount exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exposed {
    CgroupV1,
    HostCgroup2,
    Sysfs,
    HostProcfs,
    HostPath,
    BlockDevice,
}

impl Exposed {
    fn describe(self) -> &'static str {
        match self {
            Exposed::CgroupV1 => "cgroup v1 filesystem (release_agent escape)",
            Exposed::HostCgroup2 => "the host's cgroup2 hierarchy",
            Exposed::Sysfs => "sysfs",
            Exposed::HostProcfs => "a procfs of the host's pid namespace",
            Exposed::HostPath => {
                "a path reached through /proc/PID/root of a process outside the container"
            }
            Exposed::BlockDevice => "a block device",
        }
    }
}

/// The facts of a mount a judgement needs.
struct Mount<'a> {
    call: MountCall,
    fstype: &'a str,
    source: &'a str,
    flags: u64,
    host_pid_ns: bool,
    host_cgroup_ns: bool,
    source_owner: Option<&'a NsOwner>,
    /// The superblock's device as the kernel reported it (`major:minor`).
    device: Option<&'a str>,
}

fn exposed(m: &Mount) -> Option<Exposed> {
    match m.fstype {
        "cgroup" => return Some(Exposed::CgroupV1),
        "cgroup2" if m.host_cgroup_ns => return Some(Exposed::HostCgroup2),
        "sysfs" => return Some(Exposed::Sysfs),
        "proc" if m.host_pid_ns => return Some(Exposed::HostProcfs),
        _ => {}
    }
    let bind = m.flags & MS_BIND != 0;
    if let Some(owner) = m.source_owner
        && !matches!(owner, NsOwner::Unknown)
        && (bind || m.call != MountCall::Mount)
    {
        return Some(Exposed::HostPath);
    }
    // fsmount: the kernel made the superblock; a real device number (major not 0) or a disk
    // filesystem is a disk mounted, attached to the tree or not.
    if m.call == MountCall::Fsmount {
        let real_device = m.device.is_some_and(|d| !d.starts_with("0:"));
        return (real_device || DEVICE_FS.contains(&m.fstype)).then_some(Exposed::BlockDevice);
    }
    // A bind mount of a device node (runc masks /proc paths with /dev/null) mounts no
    // filesystem; a block device needs a filesystem type. A disk filesystem needs a device,
    // however its path is spelled (a node made under /tmp, a symlink).
    let device_source = m.source.starts_with("/dev/") && !m.source.starts_with("/dev/shm");
    let bind = bind || m.fstype.is_empty() || m.fstype == "bind";
    let block = (device_source && !VIRTUAL_FS.contains(&m.fstype)) || DEVICE_FS.contains(&m.fstype);
    if block && !bind && matches!(m.call, MountCall::Mount | MountCall::Fsconfig) {
        return Some(Exposed::BlockDevice);
    }
    None
}

pub struct MountHostDevice;

impl Check for MountHostDevice {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "mount-host-device",
        severity: Severity::High,
        mitre: "T1611",
        title: "Container mounted a host device, host kernel filesystem or host path",
        scope: "a container mounts a block device, cgroupfs, sysfs, the host's procfs, or a host path via /proc/PID/root (block-device attempts count)",
        explanation: "A process in a container mounted something that belongs to the host: a \
            block device (the host's disk: every file on it becomes readable and writable), \
            cgroupfs (the first step of the release_agent escape), sysfs, a procfs that shows \
            the host's processes, or a host directory reached through /proc/PID/root of a \
            process outside the container. Only privileged containers can do this. Check why \
            the container is privileged, what was mounted where (details), and what the \
            container read or wrote through the mount afterwards.",
        inputs: &[Input::Kind(EventKind::Mount)],
        fixtures: Fixtures::Recorded(&[
            "mount-sysfs",
            "mount-block",
            "release-agent",
            "compat-mount",
            "fsmount-block",
        ]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Payload::Mount {
            call,
            ret,
            flags,
            source,
            target,
            fstype,
            host_pid_ns,
            host_cgroup_ns,
            source_owner,
            device,
            ..
        } = &e.data
        else {
            return None;
        };
        let c = workload(e)?;
        let what = exposed(&Mount {
            call: *call,
            fstype,
            source,
            flags: *flags,
            host_pid_ns: *host_pid_ns,
            host_cgroup_ns: *host_cgroup_ns,
            source_owner: source_owner.as_ref(),
            device: device.as_deref(),
        })?;
        // mount/move_mount return 0; fsopen, open_tree and fsconfig a descriptor or 0. A block
        // device mount that failed (refused by the device cgroup or an LSM, busy because the
        // host has it mounted) still shows the intent; a missing one does not.
        let outcome = match *ret {
            r if r >= 0 => "mounted",
            r if r != -ENOENT && r != -ENODEV && what == Exposed::BlockDevice => "tried to mount",
            _ => return None,
        };
        let how = match (call, device) {
            (MountCall::Fsmount, Some(dev)) => {
                format!("fsmount of device {dev} type {fstype}, readable without being attached")
            }
            _ => format!("{} {source} {target} type {fstype}", call.name()),
        };
        let (call, what) = (call.name(), what.describe());
        let mut details = json!({
            "what": what,
            "call": call,
            "source": source,
            "target": target,
            "fstype": fstype,
            "flags": format!("{flags:#x}"),
            "source_owner": source_owner,
            "ret": ret,
        });
        // Only where the kernel said (fsmount, open_tree): the other calls' alerts stay as they were.
        if let Some(device) = device {
            details["device"] = json!(device);
        }
        Some(Finding::new(
            format!(
                "{} {outcome} {what} ({how}); find out why it is privileged and what it did through the mount.",
                who(e, c)
            ),
            details,
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, in_container};
        let mount = |call, ret, flags, source: &str, fstype: &str, host_pid_ns| Payload::Mount {
            call,
            ret,
            flags,
            source: source.into(),
            target: "/mnt".into(),
            fstype: fstype.into(),
            host_pid_ns,
            host_cgroup_ns: false,
            source_owner: None,
            device: None,
            bound: None,
        };
        let fsmount = |fstype: &str, device: &str| {
            let mut m = mount(MountCall::Fsmount, 3, 0, "", fstype, false);
            if let Payload::Mount { device: d, .. } = &mut m {
                *d = Some(device.into());
            }
            m
        };
        let mut via_root = mount(MountCall::Mount, 0, MS_BIND, "/proc/1/root/etc", "", false);
        if let Payload::Mount { source_owner, .. } = &mut via_root {
            *source_owner = Some(NsOwner::Host);
        }
        vec![
            Example::alert(
                "the host's disk, refused as busy",
                vec![in_container(
                    "mount",
                    mount(MountCall::Mount, -16, 0, "/dev/vda1", "ext4", false),
                )],
                |a| {
                    assert_eq!(a.details["what"], "a block device");
                    assert_eq!(a.details["ret"], -16);
                    assert_eq!(a.details["flags"], "0x0");
                    assert!(
                        a.summary.contains("tried to mount a block device"),
                        "{}",
                        a.summary
                    );
                },
            ),
            Example::alert(
                "cgroupfs v1",
                vec![in_container(
                    "mount",
                    mount(MountCall::Mount, 0, 0, "cgroup", "cgroup", false),
                )],
                |a| {
                    assert_eq!(
                        a.details["what"],
                        "cgroup v1 filesystem (release_agent escape)"
                    );
                    assert_eq!(a.details["call"], "mount");
                },
            ),
            Example::alert(
                "a host path through /proc/1/root",
                vec![in_container("mount", via_root)],
                |a| {
                    assert_eq!(a.details["flags"], "0x1000");
                    assert_eq!(a.details["source_owner"]["kind"], "host");
                },
            ),
            Example::alert(
                "fsconfig source of a block device",
                vec![in_container(
                    "mount",
                    mount(MountCall::Fsconfig, 0, 0, "/dev/sda", "xfs", false),
                )],
                |a| assert_eq!(a.details["call"], "fsconfig"),
            ),
            Example::alert(
                "fsmount of the host's disk, never attached (the kernel's superblock decides)",
                vec![in_container("mount", fsmount("ext4", "254:0"))],
                |a| {
                    assert_eq!(a.details["what"], "a block device");
                    assert_eq!(a.details["call"], "fsmount");
                    assert_eq!(a.details["device"], "254:0");
                    assert_eq!(a.details["fstype"], "ext4");
                    assert!(
                        a.summary.contains(
                            "mounted a block device (fsmount of device 254:0 type ext4, readable"
                        ),
                        "{}",
                        a.summary
                    );
                },
            ),
            Example::alert(
                "a disk filesystem from a device node made outside /dev",
                vec![in_container(
                    "mount",
                    mount(MountCall::Mount, 0, 0, "/tmp/x", "ext4", false),
                )],
                |a| assert_eq!(a.details["source"], "/tmp/x"),
            ),
            Example::silent(
                "fsmount of a tmpfs (a virtual device, major 0), as container tooling does",
                vec![in_container("mount", fsmount("tmpfs", "0:63"))],
            ),
            Example::silent(
                "tmpfs, its own procfs, a /dev/null mask, a missing device, and runc's sysfs",
                vec![
                    in_container(
                        "mount",
                        mount(MountCall::Mount, 0, 0, "tmpfs", "tmpfs", false),
                    ),
                    in_container(
                        "mount",
                        mount(MountCall::Mount, 0, 0, "proc", "proc", false),
                    ),
                    in_container(
                        "mount",
                        mount(MountCall::Mount, 0, MS_BIND, "/dev/null", "", false),
                    ),
                    in_container(
                        "mount",
                        mount(MountCall::Mount, -ENOENT, 0, "/dev/sdz", "ext4", false),
                    ),
                    by_runtime(mount(MountCall::Mount, 0, 0, "sysfs", "sysfs", false)),
                ],
            ),
        ]
    }
}
