//! Reading processes from /proc: the initial scan and processes first seen mid-life.

use std::path::Path;

use super::{cgroup::proc_cgroup_path, host::process_namespaces, process::ProcSnapshot};

/// Clock ticks per second for /proc/PID/stat start times.
fn ticks_per_second() -> u64 {
    procfs::ticks_per_second().max(1)
}

/// One process from /proc, or None if it is gone or unreadable.
pub fn snapshot(proc_root: &Path, pid: u32) -> Option<ProcSnapshot> {
    let p = procfs::process::Process::new_with_root(proc_root.join(pid.to_string())).ok()?;
    let stat = p.stat().ok()?;
    let exe = p
        .exe()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args = p.cmdline().unwrap_or_default();
    let cgroup = proc_cgroup_path(proc_root, pid).unwrap_or_else(|| "/".into());
    let namespaces = process_namespaces(proc_root, &pid.to_string()).unwrap_or_default();
    let exe_id = std::fs::metadata(proc_root.join(pid.to_string()).join("exe"))
        .ok()
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        });
    Some(ProcSnapshot {
        pid,
        // Same clock as the kernel's start_boottime, at tick resolution.
        start_time: stat.starttime * (1_000_000_000 / ticks_per_second()),
        exe,
        exe_id,
        args,
        cgroup,
        namespaces,
    })
}

/// Real uid and capability bounding set of `pid`, from its status file.
pub fn creds(proc_root: &Path, pid: u32) -> Option<(u32, u64)> {
    let status = std::fs::read_to_string(proc_root.join(pid.to_string()).join("status")).ok()?;
    parse_creds(&status)
}

fn parse_creds(status: &str) -> Option<(u32, u64)> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let uid = field("Uid:")?.split_whitespace().next()?.parse().ok()?;
    let bounding = u64::from_str_radix(field("CapBnd:")?, 16).ok()?;
    Some((uid, bounding))
}

/// Every process in /proc (threads excluded).
pub fn scan(proc_root: &Path) -> Vec<ProcSnapshot> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter()
        .filter_map(|pid| snapshot(proc_root, pid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_of_self_matches_std() {
        let me = std::process::id();
        let s = snapshot(Path::new("/proc"), me).expect("own /proc entry");
        assert_eq!(s.pid, me);
        assert_eq!(s.exe, std::env::current_exe().unwrap().to_string_lossy());
        assert!(s.start_time > 0);
        assert!(!s.args.is_empty());
        assert!(scan(Path::new("/proc")).iter().any(|p| p.pid == me));
        let (uid, bounding) = creds(Path::new("/proc"), me).expect("own status");
        // SAFETY: getuid has no preconditions.
        assert_eq!(uid, unsafe { libc::getuid() });
        assert_ne!(bounding, 0);
    }

    #[test]
    fn status_creds_are_the_real_uid_and_the_bounding_set() {
        let status = "Name:\tsh\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\n";
        assert_eq!(parse_creds(status), Some((1000, 0xa804_25fb)));
        assert_eq!(parse_creds("Uid:\t0\t0\t0\t0\n"), None);
    }
}
