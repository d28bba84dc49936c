//! Load generators: namespace events at a set rate, and many idle processes.

use std::{
    ffi::CString,
    io::{Read as _, Write as _},
};

use anyhow::Result;

use crate::{check, mono_ns};

/// setns(2) into the uts namespace we are already in, `rate` times a second in total over
/// `threads` threads for `secs` seconds (as fast as possible when the rate cannot be
/// reached). The agent records every setns, host processes included, and takes each through
/// the whole pipeline.
pub fn setns_load(rate: f64, secs: f64, threads: usize) -> Result<()> {
    let threads = threads.max(1);
    let start = mono_ns();
    let workers: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || setns_thread(rate / threads as f64, secs)))
        .collect();
    let mut done = 0;
    for w in workers {
        done += w
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
    }
    let secs = (mono_ns() - start) as f64 / 1e9;
    println!("emitted\t{done}");
    println!("seconds\t{secs:.3}");
    println!("rate\t{:.0}", done as f64 / secs);
    Ok(())
}

fn setns_thread(rate: f64, secs: f64) -> Result<u64> {
    let uts = CString::new("/proc/self/ns/uts")?;
    // SAFETY: plain open of a path we own.
    let fd = check(
        unsafe { libc::open(uts.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) } as libc::c_long,
        "open /proc/self/ns/uts",
    )? as i32;
    let start = mono_ns();
    let end = start + (secs * 1e9) as u64;
    let mut done: u64 = 0;
    loop {
        let now = mono_ns();
        if now >= end {
            break;
        }
        let due = ((now - start) as f64 * rate / 1e9) as u64;
        if done >= due {
            // Ahead of schedule: yield the core for a tick rather than spin.
            std::thread::sleep(std::time::Duration::from_micros(200));
            continue;
        }
        // Catch up in bursts of at most 1 ms worth of calls.
        let burst = (due - done).min((rate / 1000.0).max(1.0) as u64);
        for _ in 0..burst {
            // SAFETY: re-joining our own uts namespace changes nothing.
            check(
                unsafe { libc::setns(fd, libc::CLONE_NEWUTS) } as libc::c_long,
                "setns",
            )?;
        }
        done += burst;
    }
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
    Ok(done)
}

/// Fork `count` children that sleep; print `ready`, wait for stdin to close, kill and reap them.
pub fn procs(count: usize) -> Result<()> {
    let mut pids = Vec::with_capacity(count);
    for _ in 0..count {
        // SAFETY: single-threaded; the child only calls pause/_exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            break;
        }
        if pid == 0 {
            loop {
                // SAFETY: async-signal-safe; SIGKILL ends it.
                unsafe { libc::pause() };
            }
        }
        pids.push(pid);
    }
    println!("ready\t{}", pids.len());
    std::io::stdout().flush()?;
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    for &pid in &pids {
        // SAFETY: our own children.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for &pid in &pids {
        let mut status = 0;
        // SAFETY: reaping our own children.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    Ok(())
}
