//! `mount-host-device`: a container mounts a block device, the host's procfs, sysfs or cgroupfs,
//! or a host path reached through /proc/PID/root.

use serde_json::json;

use super::{
    RuleInfo,
    simple::{Finding, who, workload},
};
use crate::{
    detect::Severity,
    model::{Event, NsOwner, Payload},
};

pub static MOUNT_HOST_DEVICE: RuleInfo = RuleInfo {
    id: "mount-host-device",
    severity: Severity::High,
    mitre: "T1611",
    title: "Container mounted a host device, host kernel filesystem or host path",
    explanation: "A process in a container mounted something that belongs to the host: a block \
        device (the host's disk: every file on it becomes readable and writable), cgroupfs (the \
        first step of the release_agent escape), sysfs, a procfs that shows the host's \
        processes, or a host directory reached through /proc/PID/root of a process outside the \
        container. Only privileged containers can do this. Check why the container is \
        privileged, what was mounted where (details), and what the container read or wrote \
        through the mount afterwards.",
    event_kinds: &["mount"],
};

/// Filesystems that are not backed by a device path even when their source looks like one.
const VIRTUAL_FS: [&str; 12] = [
    "tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "overlay", "devtmpfs",
    "bind", "none", "shm",
];

const MS_BIND: u64 = 0x1000;
const ENOENT: i64 = 2;
const ENODEV: i64 = 19;

fn why(
    call: &str,
    fstype: &str,
    source: &str,
    flags: u64,
    p: (bool, bool, Option<&NsOwner>),
) -> Option<&'static str> {
    let (host_pid_ns, host_cgroup_ns, source_owner) = p;
    match fstype {
        "cgroup" => return Some("cgroup v1 filesystem (release_agent escape)"),
        "cgroup2" if host_cgroup_ns => return Some("the host's cgroup2 hierarchy"),
        "sysfs" => return Some("sysfs"),
        "proc" if host_pid_ns => return Some("a procfs of the host's pid namespace"),
        _ => {}
    }
    if let Some(owner) = source_owner
        && !matches!(owner, NsOwner::Unknown)
        && (flags & MS_BIND != 0 || call != "mount")
    {
        return Some("a path reached through /proc/PID/root of a process outside the container");
    }
    // A bind mount of a device node (runc masks /proc paths with /dev/null) mounts no
    // filesystem; a block device needs a filesystem type.
    let device_source = source.starts_with("/dev/") && !source.starts_with("/dev/shm");
    let bind = flags & MS_BIND != 0 || fstype.is_empty() || fstype == "bind";
    if device_source
        && !bind
        && !VIRTUAL_FS.contains(&fstype)
        && (call == "mount" || call == "fsconfig")
    {
        return Some("a block device");
    }
    None
}

pub fn mount_host_device(e: &Event) -> Option<Finding> {
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
    } = &e.data
    else {
        return None;
    };
    let c = workload(e)?;
    let bits = u64::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or(0);
    let what = why(
        call,
        fstype,
        source,
        bits,
        (*host_pid_ns, *host_cgroup_ns, source_owner.as_ref()),
    )?;
    // mount/move_mount return 0; fsopen, open_tree and fsconfig a descriptor or 0. A block
    // device mount that failed (refused by the device cgroup or an LSM, busy because the host
    // has it mounted) still shows the intent; a missing one does not.
    let outcome = match *ret {
        r if r >= 0 => "mounted",
        r if r != -ENOENT && r != -ENODEV && what == "a block device" => "tried to mount",
        _ => return None,
    };
    Some(Finding::new(
        format!(
            "{} {outcome} {what} ({call} {source} {target} type {fstype}); find out why it is privileged and what it did through the mount.",
            who(e, c)
        ),
        json!({
            "what": what,
            "call": call,
            "source": source,
            "target": target,
            "fstype": fstype,
            "flags": flags,
            "source_owner": source_owner,
            "ret": ret,
        }),
    ))
}
