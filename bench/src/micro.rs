//! Microbenchmarks of the paths escapewatch hooks, as an ordinary host process makes them.
//!
//! Each op runs a warm-up, then N iterations; the figure is wall ns per iteration. The xtask
//! runs this binary alternately with the agent off and on and compares medians.

use std::ffi::CString;

use anyhow::{Context as _, Result};

use crate::{check, mono_ns};

struct Op {
    name: &'static str,
    iters: u64,
    body: Box<dyn FnMut() -> Result<()>>,
}

fn fork_exec() -> Result<()> {
    let prog = CString::new("/bin/true")?;
    let argv = [prog.as_ptr(), std::ptr::null()];
    // SAFETY: single-threaded process; the child only calls async-signal-safe execv/_exit.
    let pid = unsafe { libc::fork() };
    check(pid as libc::c_long, "fork")?;
    if pid == 0 {
        // SAFETY: argv is NUL-terminated and outlives the call.
        unsafe {
            libc::execv(prog.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    check(
        unsafe { libc::waitpid(pid, &mut status, 0) } as libc::c_long,
        "waitpid",
    )?;
    Ok(())
}

fn ops(scale: f64) -> Result<Vec<Op>> {
    let n = |base: f64| ((base * scale) as u64).max(10);
    let path = CString::new("/etc/hostname")?;
    let uts = CString::new("/proc/self/ns/uts")?;
    // SAFETY: plain open of a path we own as a CString.
    let uts_fd = check(
        unsafe { libc::open(uts.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) } as libc::c_long,
        "open /proc/self/ns/uts",
    )? as i32;
    let null = CString::new("/dev/null")?;
    // SAFETY: as above.
    let null_fd = check(
        unsafe { libc::open(null.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) } as libc::c_long,
        "open /dev/null",
    )? as i32;
    const PAGE: usize = 4096;
    // SAFETY: anonymous private mapping owned by this process for its whole life.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    anyhow::ensure!(page != libc::MAP_FAILED, "mmap");
    let page = page as usize;
    let mut ring = io_uring::IoUring::new(8).context("io_uring_setup")?;
    Ok(vec![
        Op {
            name: "fork_exec",
            iters: n(400.0),
            body: Box::new(fork_exec),
        },
        Op {
            name: "open_close",
            iters: n(200_000.0),
            body: Box::new(move || {
                // SAFETY: open/close of a path we own.
                let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                check(fd as libc::c_long, "open")?;
                // SAFETY: our fd.
                unsafe { libc::close(fd) };
                Ok(())
            }),
        },
        Op {
            name: "setns",
            iters: n(50_000.0),
            body: Box::new(move || {
                // SAFETY: re-joining the uts namespace we are in changes nothing.
                check(
                    unsafe { libc::setns(uts_fd, libc::CLONE_NEWUTS) } as libc::c_long,
                    "setns",
                )?;
                Ok(())
            }),
        },
        Op {
            name: "unshare",
            iters: n(20_000.0),
            body: Box::new(|| {
                // SAFETY: a fresh uts namespace for this benchmark process only.
                check(
                    unsafe { libc::unshare(libc::CLONE_NEWUTS) } as libc::c_long,
                    "unshare",
                )?;
                Ok(())
            }),
        },
        Op {
            name: "mmap_fault",
            iters: n(100_000.0),
            body: Box::new(|| {
                // SAFETY: a private anonymous page, written once and unmapped.
                unsafe {
                    let p = libc::mmap(
                        std::ptr::null_mut(),
                        PAGE,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    );
                    anyhow::ensure!(p != libc::MAP_FAILED, "mmap");
                    std::ptr::write_volatile(p as *mut u8, 1);
                    libc::munmap(p, PAGE);
                }
                Ok(())
            }),
        },
        Op {
            name: "madvise",
            iters: n(200_000.0),
            body: Box::new(move || {
                // SAFETY: our own anonymous page: touch it, then drop it.
                unsafe {
                    std::ptr::write_volatile(page as *mut u8, 1);
                    check(
                        libc::madvise(page as *mut libc::c_void, PAGE, libc::MADV_DONTNEED)
                            as libc::c_long,
                        "madvise",
                    )?;
                }
                Ok(())
            }),
        },
        // One io_uring completion (a NOP): what the io_uring_complete program costs each one.
        Op {
            name: "iouring_nop",
            iters: n(200_000.0),
            body: Box::new(move || {
                let nop = io_uring::opcode::Nop::new().build();
                // SAFETY: a NOP references no memory.
                unsafe { ring.submission().push(&nop) }
                    .map_err(|_| anyhow::anyhow!("submission queue full"))?;
                ring.submit_and_wait(1).context("io_uring_enter")?;
                anyhow::ensure!(ring.completion().next().is_some(), "no completion");
                Ok(())
            }),
        },
        // A syscall no program watches: what every syscall pays for the generic sys_enter and
        // sys_exit programs (the 32-bit entry's dispatchers) and the tracing slow path.
        Op {
            name: "getppid",
            iters: n(1_000_000.0),
            body: Box::new(|| {
                // SAFETY: no arguments, no side effects.
                std::hint::black_box(unsafe { libc::getppid() });
                Ok(())
            }),
        },
        Op {
            name: "write",
            iters: n(500_000.0),
            body: Box::new(move || {
                let b = [0u8; 1];
                // SAFETY: one byte from our buffer to /dev/null.
                check(
                    unsafe { libc::write(null_fd, b.as_ptr().cast(), 1) } as libc::c_long,
                    "write",
                )?;
                Ok(())
            }),
        },
        Op {
            name: "writev",
            iters: n(500_000.0),
            body: Box::new(move || {
                let b = [0u8; 1];
                let iov = libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: 1,
                };
                // SAFETY: one iovec of one byte from our buffer to /dev/null.
                check(
                    unsafe { libc::writev(null_fd, &iov, 1) } as libc::c_long,
                    "writev",
                )?;
                Ok(())
            }),
        },
    ])
}

/// Every op, or only the one named `only` (then also `calls\tN`: every call made, warm-up
/// included, which the xtask divides BPF run counts by).
pub fn run(scale: f64, only: Option<&str>) -> Result<()> {
    let ops = ops(scale)?;
    if let Some(name) = only {
        anyhow::ensure!(ops.iter().any(|o| o.name == name), "no micro op {name:?}");
    }
    for mut op in ops {
        if only.is_some_and(|name| name != op.name) {
            continue;
        }
        let warmup = (op.iters / 20).max(2);
        for _ in 0..warmup {
            (op.body)().with_context(|| op.name)?;
        }
        let start = mono_ns();
        for _ in 0..op.iters {
            (op.body)().with_context(|| op.name)?;
        }
        let ns = (mono_ns() - start) as f64 / op.iters as f64;
        println!("{}\t{ns:.1}", op.name);
        if only.is_some() {
            println!("calls\t{}", warmup + op.iters);
        }
    }
    Ok(())
}
