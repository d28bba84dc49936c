//! The kernel struct offsets the eBPF programs read come from the running kernel's BTF: what
//! they report for real processes must equal what /proc says on this kernel (run on every
//! kernel of `cargo xtask vm-test`, where the layouts differ from the host's).

use std::{fs, os::unix::fs::MetadataExt, path::PathBuf, time::Duration};

use escapewatch_integration::{
    agent::{Agent, ns_inode, work_dir},
    runc::{Bundle, unique_id},
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

/// /proc/PID/ns names for the event's `namespaces` keys (the pid and time slots are the
/// namespaces the task's children are created in).
const NS: [(&str, &str); 8] = [
    ("mnt", "mnt"),
    ("pid", "pid_for_children"),
    ("net", "net"),
    ("uts", "uts"),
    ("ipc", "ipc"),
    ("user", "user"),
    ("cgroup", "cgroup"),
    ("time", "time"),
];

/// The cgroup2 directory of `pid` (the `0::` line of /proc/PID/cgroup under the cgroup2 mount).
fn cgroup2_dir(pid: u32) -> PathBuf {
    let mounts = fs::read_to_string("/proc/self/mounts").expect("mounts");
    let root = mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1].to_owned())
        })
        .expect("a cgroup2 mount");
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup file");
    let path = cg
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("0:: line");
    PathBuf::from(root).join(path.trim_start_matches('/'))
}

/// /proc/PID/stat field 22: start time in clock ticks since boot.
fn start_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_comm = &stat[stat.rfind(')').expect("comm") + 2..];
    after_comm
        .split_whitespace()
        .nth(19)
        .and_then(|v| v.parse().ok())
        .expect("starttime")
}

/// Compare what the kernel side reported about `pid` with /proc.
fn check_process(event: &Value, pid: u32) {
    let p = &event["process"];
    assert_eq!(p["pid"], pid, "{event:#}");
    for (key, proc_name) in NS {
        let path = format!("/proc/{pid}/ns/{proc_name}");
        if fs::symlink_metadata(&path).is_err() {
            continue; // time namespaces need 5.6+
        }
        assert_eq!(
            p["namespaces"][key].as_u64(),
            Some(ns_inode(pid, proc_name)),
            "namespace {key} read by eBPF vs {path}: {event:#}"
        );
    }
    let dir = cgroup2_dir(pid);
    let ino = fs::metadata(&dir).expect("stat cgroup dir").ino();
    assert_eq!(
        p["cgroup_id"].as_u64(),
        Some(ino),
        "cgroup id read by eBPF vs inode of {}: {event:#}",
        dir.display()
    );
    // CLOCK_BOOTTIME ns vs clock ticks (USER_HZ 100 on every Linux ABI).
    let ticks = start_ticks(pid);
    let ns = p["start_time"].as_u64().expect("start_time");
    assert!(
        ns / 10_000_000 == ticks || ns / 10_000_000 + 1 == ticks,
        "start time {ns} ns read by eBPF vs {ticks} ticks in /proc/{pid}/stat"
    );
}

#[test]
fn kernel_offsets_match_proc() {
    escapewatch_integration::agent::require_root();
    let dir = work_dir("kernel-offsets");
    let agent = Agent::start(&dir);
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();

    // A container: its own namespaces and cgroup.
    let c = Bundle::busybox("kernel-offsets")
        .expect("bundle")
        .args(&["sleep", "60"])
        .run_detached(&unique_id("ewo"))
        .expect("run container");
    let exec = agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "process_exec" && e["process"]["pid"] == c.pid()
    });
    check_process(&exec, c.pid());
    assert_ne!(
        exec["process"]["namespaces"]["mnt"].as_u64(),
        Some(ns_inode(std::process::id(), "mnt")),
        "the container has its own mount namespace"
    );

    // A host process: the host's namespaces and cgroup.
    let mut host = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    let host_pid = host.id();
    let exec = agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "process_exec" && e["process"]["pid"] == host_pid
    });
    check_process(&exec, host_pid);
    let _ = host.kill();
    let _ = host.wait();
    eprintln!("kernel {}: offsets from BTF match /proc", release.trim());
    drop(c);
}
