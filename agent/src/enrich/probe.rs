//! Looking at a file inside a container's root from the event loop, where the container
//! chooses the path.
//!
//! Two dangers: the path may lead through symbolic links (an absolute link target resolves
//! against the *agent's* root when walked through /proc/PID/root, so `/dev/x -> /dev/sda`
//! in the container would report the host's disk), and the lookup may block for as long as a
//! FUSE or NFS server likes. So each component is opened `O_PATH|O_NOFOLLOW` below the root
//! (no link followed, no `..`), and the lookup runs on a thread of its own: the event loop
//! waits at most [`WAIT`] for it and spends at most [`BUDGET`] per second on it. While a
//! lookup is stuck every further one is skipped at once (the event keeps what the kernel
//! reported).

use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    sync::mpsc,
    time::{Duration, Instant},
};

use tracing::warn;

/// Longest the event loop waits for one lookup.
pub const WAIT: Duration = Duration::from_millis(50);
/// Longest the event loop spends on lookups in one second.
pub const BUDGET: Duration = Duration::from_millis(100);

/// Mode and raw `st_rdev` of `rel` below the directory `root`, never following a link.
pub fn stat_beneath(root: &Path, rel: &str) -> Option<(u32, u64)> {
    let open = |dir: Option<&OwnedFd>, name: &CString, flags: i32| -> Option<OwnedFd> {
        let at = dir.map_or(libc::AT_FDCWD, std::os::fd::AsRawFd::as_raw_fd);
        // SAFETY: a NUL-terminated path and a valid (or AT_FDCWD) directory descriptor.
        let fd = unsafe { libc::openat(at, name.as_ptr(), flags | libc::O_CLOEXEC) };
        // SAFETY: a descriptor just returned by openat, owned by nobody else.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
    };
    use std::os::unix::ffi::OsStrExt as _;
    // The root itself is /proc/PID/root, a link the kernel resolves to the process's root.
    let root = CString::new(root.as_os_str().as_bytes()).ok()?;
    let mut fd = open(None, &root, libc::O_PATH | libc::O_DIRECTORY)?;
    for name in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if name == ".." {
            return None;
        }
        let name = CString::new(name).ok()?;
        fd = open(Some(&fd), &name, libc::O_PATH | libc::O_NOFOLLOW)?;
    }
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).ok()?;
    // A link at the end is opened as itself: it is no device.
    (st.st_mode & libc::S_IFMT != libc::S_IFLNK).then_some((st.st_mode, st.st_rdev))
}

/// Whether `exe_link` (a /proc/PID/exe) is the host's file at the absolute path `host_path`
/// (same device and inode), following the host's links: both stats may reach a file system
/// the container chose (its executable's), so they run on the prober's thread.
pub fn same_host_file(exe_link: &Path, host_path: &str) -> Option<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let running = id(exe_link)?;
    Some(id(Path::new(host_path)) == Some(running))
}

type Request = (u64, PathBuf, String);

/// The lookup thread and the event loop's bounds on it.
pub struct Prober<T = (u32, u64)> {
    tx: mpsc::SyncSender<Request>,
    rx: mpsc::Receiver<(u64, Option<T>)>,
    seq: u64,
    /// A lookup that did not answer in time is still running.
    stuck: bool,
    window: Instant,
    spent: Duration,
    /// Lookups skipped (stuck or over budget) since the last warning.
    skipped: u64,
}

impl Default for Prober {
    fn default() -> Self {
        Prober::with(stat_beneath)
    }
}

impl<T: Send + 'static> Prober<T> {
    /// A prober running `lookup` (tests give a slow one).
    pub fn with(lookup: fn(&Path, &str) -> Option<T>) -> Prober<T> {
        let (tx, requests) = mpsc::sync_channel::<Request>(1);
        let (answers, rx) = mpsc::sync_channel::<(u64, Option<T>)>(1);
        let spawned = std::thread::Builder::new()
            .name("container-stat".into())
            .spawn(move || {
                for (seq, root, rel) in requests {
                    if answers.send((seq, lookup(&root, &rel))).is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start the container-stat thread: device nodes of refused opens are not looked at");
        }
        Prober {
            tx,
            rx,
            seq: 0,
            stuck: false,
            window: Instant::now(),
            spent: Duration::ZERO,
            skipped: 0,
        }
    }

    /// [`stat_beneath`] of `rel` below `root`, or None when it fails, takes longer than
    /// [`WAIT`], a previous lookup is still stuck, or this second's [`BUDGET`] is spent.
    pub fn stat(&mut self, root: PathBuf, rel: &str) -> Option<T> {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.spent = Duration::ZERO;
        }
        if self.stuck {
            // A late answer frees the thread; it is for an event already passed on.
            while let Ok((seq, _)) = self.rx.try_recv() {
                if seq == self.seq {
                    self.stuck = false;
                }
            }
        }
        if self.stuck || self.spent >= BUDGET {
            return self.skip(rel, "a lookup is stuck or this second's budget is spent");
        }
        self.seq += 1;
        let start = Instant::now();
        if self.tx.try_send((self.seq, root, rel.to_owned())).is_err() {
            return self.skip(rel, "the container-stat thread is gone");
        }
        let answer = loop {
            match self.rx.recv_timeout(WAIT.saturating_sub(start.elapsed())) {
                Ok((seq, a)) if seq == self.seq => break Ok(a),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        self.spent += start.elapsed();
        match answer {
            Ok(a) => a,
            Err(_) => {
                self.stuck = true;
                self.skip(
                    rel,
                    "the lookup did not answer in time (a FUSE or network file system?)",
                )
            }
        }
    }

    fn skip(&mut self, rel: &str, why: &str) -> Option<T> {
        self.skipped += 1;
        if self.skipped.is_power_of_two() {
            warn!(
                path = rel,
                skipped = self.skipped,
                "not looking at a file in a container: {why}"
            );
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ew-probe-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("dev")).unwrap();
        d
    }

    #[test]
    fn no_link_is_followed_and_no_dotdot_climbs_out() {
        let r = root("links");
        // In the container a link to /dev/null; walked through /proc/PID/root a link's
        // absolute target is the agent's /dev/null.
        std::os::unix::fs::symlink("/dev/null", r.join("dev/evil")).unwrap();
        std::os::unix::fs::symlink("/dev", r.join("devlink")).unwrap();
        assert_eq!(stat_beneath(&r, "/dev/evil"), None);
        assert_eq!(stat_beneath(&r, "/devlink/null"), None);
        assert_eq!(stat_beneath(&r, "/dev/../../../dev/null"), None);
        assert_eq!(stat_beneath(&r, "/dev/missing"), None);
        // A root that is itself a link (as /proc/PID/root is) is followed: the host's /dev/null.
        let host = r.join("host");
        std::os::unix::fs::symlink("/", &host).unwrap();
        let (mode, rdev) = stat_beneath(&host, "/dev/null").expect("/dev/null");
        assert_eq!(mode & libc::S_IFMT, libc::S_IFCHR);
        assert_eq!((libc::major(rdev), libc::minor(rdev)), (1, 3));
        std::fs::remove_dir_all(&r).unwrap();
    }

    #[test]
    fn the_running_file_is_compared_with_the_host_path() {
        let me = std::env::current_exe().unwrap();
        let link = Path::new("/proc/self/exe");
        assert_eq!(same_host_file(link, me.to_str().unwrap()), Some(true));
        assert_eq!(same_host_file(link, "/bin/sh"), Some(false));
        assert_eq!(same_host_file(link, "/no/such/file"), Some(false));
        assert_eq!(same_host_file(Path::new("/proc/0/exe"), "/bin/sh"), None);
    }

    fn slow(root: &Path, rel: &str) -> Option<(u32, u64)> {
        if rel.contains("fuse") {
            std::thread::sleep(Duration::from_millis(600));
        }
        stat_beneath(root, rel)
    }

    #[test]
    fn a_stuck_lookup_does_not_hold_the_event_loop() {
        let mut p = Prober::with(slow);
        let host = PathBuf::from("/");
        assert!(p.stat(host.clone(), "/dev/null").is_some());
        let t = Instant::now();
        assert_eq!(p.stat(host.clone(), "/dev/fuse-hang"), None);
        assert!(t.elapsed() < WAIT * 5, "{:?}", t.elapsed());
        // While it hangs, lookups are skipped without waiting.
        let t = Instant::now();
        for _ in 0..100 {
            assert_eq!(p.stat(host.clone(), "/dev/null"), None);
        }
        assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
        // Once it answers, lookups work again (a new second: a fresh budget).
        std::thread::sleep(Duration::from_millis(1100));
        assert!(p.stat(host, "/dev/null").is_some());
    }
}
