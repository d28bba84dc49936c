//! Syscall-to-alert latency, seen from outside the agent: a process in a container (a
//! runtime-shaped cgroup and its own mount namespace) opens /proc/kallsyms, which raises
//! `kernel-debug-recon`, and waits (inotify) until the alert line is in the alert log.
//! The figure is the time from just before the open to the moment the line is readable.

use std::{
    ffi::CString,
    fs,
    io::{Read as _, Seek as _, SeekFrom},
    time::Duration,
};

use anyhow::{Context as _, Result};

use crate::{check, mono_ns};

const NEEDLE: &[u8] = b"\"kernel-debug-recon\"";

struct Tail {
    file: fs::File,
    pos: u64,
    partial: Vec<u8>,
}

impl Tail {
    /// Complete new lines holding the needle.
    fn hits(&mut self) -> Result<usize> {
        self.file.seek(SeekFrom::Start(self.pos))?;
        let mut buf = Vec::new();
        self.file.read_to_end(&mut buf)?;
        self.pos += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let Some(last_nl) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(0);
        };
        let hits = self.partial[..=last_nl]
            .split(|&b| b == b'\n')
            .filter(|l| l.windows(NEEDLE.len()).any(|w| w == NEEDLE))
            .count();
        self.partial.drain(..=last_nl);
        Ok(hits)
    }
}

pub fn run(alert_log: &str, cgroup: &str, reps: usize, gap_us: u64) -> Result<()> {
    fs::write(
        format!("{cgroup}/cgroup.procs"),
        std::process::id().to_string(),
    )
    .with_context(|| format!("joining cgroup {cgroup}"))?;
    // SAFETY: a private mount namespace for this process: it becomes a container candidate.
    check(
        unsafe { libc::unshare(libc::CLONE_NEWNS) } as libc::c_long,
        "unshare(CLONE_NEWNS)",
    )?;
    let file = fs::File::open(alert_log).with_context(|| format!("opening {alert_log}"))?;
    let pos = file.metadata()?.len();
    let mut tail = Tail {
        file,
        pos,
        partial: Vec::new(),
    };
    // SAFETY: inotify descriptors owned by this process.
    let ino = check(
        unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) } as libc::c_long,
        "inotify_init1",
    )? as i32;
    let c_log = CString::new(alert_log)?;
    // SAFETY: as above.
    check(
        unsafe { libc::inotify_add_watch(ino, c_log.as_ptr(), libc::IN_MODIFY) } as libc::c_long,
        "inotify_add_watch",
    )?;
    let kallsyms = CString::new("/proc/kallsyms")?;
    let mut drain = [0u8; 4096];
    let mut missed = 0;
    for _ in 0..reps {
        std::thread::sleep(Duration::from_micros(gap_us));
        // Alerts of an earlier, timed-out rep are not this rep's.
        while unsafe { libc::read(ino, drain.as_mut_ptr().cast(), drain.len()) } > 0 {}
        tail.hits()?;
        let t0 = mono_ns();
        // SAFETY: open/close of a path we own.
        let fd = unsafe { libc::open(kallsyms.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        check(fd as libc::c_long, "open /proc/kallsyms")?;
        // SAFETY: our fd.
        unsafe { libc::close(fd) };
        let deadline = t0 + 2_000_000_000;
        let seen = loop {
            // SAFETY: draining our non-blocking inotify fd before reading the file, so a write
            // after the read wakes the poll below.
            while unsafe { libc::read(ino, drain.as_mut_ptr().cast(), drain.len()) } > 0 {}
            if tail.hits()? > 0 {
                break Some(mono_ns());
            }
            let now = mono_ns();
            if now >= deadline {
                break None;
            }
            let mut pfd = libc::pollfd {
                fd: ino,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = ((deadline - now) / 1_000_000).max(1) as i32;
            // SAFETY: one pollfd we own.
            unsafe { libc::poll(&mut pfd, 1, ms) };
        };
        match seen {
            Some(t1) => println!("lat_us\t{:.1}", (t1 - t0) as f64 / 1e3),
            None => missed += 1,
        }
    }
    println!("missed\t{missed}");
    Ok(())
}
