//! Load generators: namespace events at a set rate, and many idle processes.

use std::{
    ffi::CString,
    io::{Read as _, Write as _},
};

use anyhow::{Context as _, Result};

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
    report(done, start);
    Ok(())
}

/// The figures of a load run: calls made, seconds, rate, and the generator's own CPU time.
fn report(done: u64, start: u64) {
    let secs = (mono_ns() - start) as f64 / 1e9;
    let cpu = crate::self_cpu_secs();
    println!("emitted\t{done}");
    println!("seconds\t{secs:.3}");
    println!("rate\t{:.0}", done as f64 / secs);
    println!("cpu_seconds\t{cpu:.4}");
    println!("cpu_ns_per_call\t{:.1}", cpu * 1e9 / done.max(1) as f64);
}

fn setns_thread(rate: f64, secs: f64) -> Result<u64> {
    let uts = CString::new("/proc/self/ns/uts")?;
    // SAFETY: plain open of a path we own.
    let fd = check(
        unsafe { libc::open(uts.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) } as libc::c_long,
        "open /proc/self/ns/uts",
    )? as i32;
    let done = paced(rate, secs, || {
        // SAFETY: re-joining our own uts namespace changes nothing.
        check(
            unsafe { libc::setns(fd, libc::CLONE_NEWUTS) } as libc::c_long,
            "setns",
        )
        .map(drop)
    })?;
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
    Ok(done)
}

/// The cheapest recorded event: process_vm_writev(2) aimed at this very process with no
/// iovecs, from a container-shaped process (a docker-shaped cgroup, its own mount namespace).
/// The agent records every process_vm_writev of a container candidate that succeeds
/// (unbudgeted, through the critical ring), and this one succeeds at once: with no iovecs the
/// kernel returns 0 before looking the target up, so the syscall costs about what getppid
/// does, and the generator leaves the agent its core. The rule that reads these
/// (proc-mem-write) stays silent: a process writing its own memory is no injection.
/// setns into its own uts namespace, the other event every process records, costs about
/// 1 µs off and several with the programs attached: one core cannot offer 1M/s with it.
pub fn pvw_load(rate: f64, secs: f64, cgroup: &str) -> Result<()> {
    std::fs::write(
        format!("{cgroup}/cgroup.procs"),
        std::process::id().to_string(),
    )
    .with_context(|| format!("joining cgroup {cgroup}"))?;
    // SAFETY: a private mount namespace for this process: it becomes a container candidate.
    check(
        unsafe { libc::unshare(libc::CLONE_NEWNS) } as libc::c_long,
        "unshare(CLONE_NEWNS)",
    )?;
    // SAFETY: no arguments.
    let me = unsafe { libc::getpid() };
    let start = mono_ns();
    let done = paced(rate, secs, || {
        // SAFETY: no iovecs: nothing is read or written.
        check(
            unsafe { libc::process_vm_writev(me, std::ptr::null(), 0, std::ptr::null(), 0, 0) }
                as libc::c_long,
            "process_vm_writev",
        )
        .map(drop)
    })?;
    report(done, start);
    Ok(())
}

/// Call `call` `rate` times a second for `secs` seconds (as fast as it goes when the rate
/// cannot be reached); the calls made.
fn paced(rate: f64, secs: f64, mut call: impl FnMut() -> Result<()>) -> Result<u64> {
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
        // Catch up in bursts of at most 1 ms worth of calls (and at most 10,000, so that an
        // unreachable rate still ends on time).
        let burst = (due - done).min((rate / 1000.0).clamp(1.0, 10_000.0) as u64);
        for _ in 0..burst {
            call()?;
        }
        done += burst;
    }
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
