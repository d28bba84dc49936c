//! Reading processes from /proc: the initial scan and processes first seen mid-life.

use std::{
    io::{self, Read as _},
    path::Path,
};

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
    // Not procfs's cmdline(): it reads the whole argument vector, which a container chooses
    // (1.5 MB copied into every event of every child).
    let args = read_cmdline(&proc_root.join(pid.to_string()).join("cmdline")).unwrap_or_default();
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

/// Bytes of a process's argument vector kept from /proc (the kernel's exec record keeps less).
pub const CMDLINE_MAX: usize = 4096;
/// Bytes past [`CMDLINE_MAX`] counted for the marker; beyond that the count says "at least".
const CMDLINE_COUNT_MAX: u64 = 8 << 20;

/// The arguments in `path` (a /proc/PID/cmdline), at most [`CMDLINE_MAX`] bytes of them: a
/// longer vector is cut (an argument cut in the middle keeps its start) and ends with a
/// marker argument `…[truncated N bytes]`.
pub fn read_cmdline(path: &Path) -> io::Result<Vec<String>> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(CMDLINE_MAX.min(1024));
    (&mut file).take(CMDLINE_MAX as u64).read_to_end(&mut buf)?;
    let rest = if buf.len() == CMDLINE_MAX {
        io::copy(&mut file.take(CMDLINE_COUNT_MAX), &mut io::sink())?
    } else {
        0
    };
    if buf.last() == Some(&0) {
        buf.pop();
    }
    let mut args: Vec<String> = if buf.is_empty() {
        Vec::new()
    } else {
        buf.split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    };
    if rest > 0 {
        let at_least = if rest >= CMDLINE_COUNT_MAX {
            "at least "
        } else {
            ""
        };
        args.push(format!("\u{2026}[truncated {at_least}{rest} bytes]"));
    }
    Ok(args)
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
    fn a_huge_argument_vector_is_cut_with_a_marker() {
        // 12 arguments of 128 KiB - 1 (the kernel's per-argument limit): 1.5 MB of argv.
        let big = "A".repeat(128 * 1024 - 1);
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("sleep 30")
            .args(std::iter::repeat_n(&big, 12))
            .spawn()
            .expect("spawn sh with a 1.5 MB argv");
        // Until the child has exec'd, /proc shows the test's own argv.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let s = loop {
            let s = snapshot(Path::new("/proc"), child.id()).expect("the child's /proc entry");
            if s.args.first().is_some_and(|a| a == "sh") || std::time::Instant::now() > deadline {
                break s;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let _ = child.kill();
        let _ = child.wait();
        let total: usize = s.args.iter().map(String::len).sum();
        assert!(total <= CMDLINE_MAX + 64, "{total} bytes of args kept");
        assert_eq!(&s.args[..2], ["sh", "-c"]);
        assert_eq!(s.args[2], "sleep 30");
        // sh\0-c\0sleep 30\0 is 15 bytes; the rest of the 4096 is the first big argument.
        assert_eq!(s.args[3], "A".repeat(CMDLINE_MAX - 15));
        let full = 15 + 12 * (big.len() + 1);
        assert_eq!(
            s.args.last().unwrap(),
            &format!("\u{2026}[truncated {} bytes]", full - CMDLINE_MAX)
        );
    }

    #[test]
    fn a_short_argument_vector_is_kept_whole() {
        let d = std::env::temp_dir().join(format!("ew-cmdline-{}", std::process::id()));
        std::fs::write(&d, b"/bin/sh\0-c\0\0x\0").unwrap();
        assert_eq!(read_cmdline(&d).unwrap(), ["/bin/sh", "-c", "", "x"]);
        std::fs::write(&d, b"").unwrap();
        assert!(read_cmdline(&d).unwrap().is_empty(), "a kernel thread");
        std::fs::write(&d, vec![b'x'; CMDLINE_MAX]).unwrap();
        assert_eq!(
            read_cmdline(&d).unwrap(),
            ["x".repeat(CMDLINE_MAX)],
            "exactly the cap"
        );
        std::fs::remove_file(&d).unwrap();
    }

    #[test]
    fn status_creds_are_the_real_uid_and_the_bounding_set() {
        let status = "Name:\tsh\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\n";
        assert_eq!(parse_creds(status), Some((1000, 0xa804_25fb)));
        assert_eq!(parse_creds("Uid:\t0\t0\t0\t0\n"), None);
    }
}
