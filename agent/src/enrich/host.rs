//! What "the host" is: its namespaces, its boot time and its name.

use std::{fs, path::Path};

use escapewatch_common::abi::{
    PROC_CGROUP_INIT_INO, PROC_IPC_INIT_INO, PROC_PID_INIT_INO, PROC_TIME_INIT_INO,
    PROC_USER_INIT_INO, PROC_UTS_INIT_INO,
};

use crate::model::Namespaces;

/// The host's namespaces and a sentence saying where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNamespaces {
    pub namespaces: Namespaces,
    pub source: String,
}

/// Inode of `/proc/<pid>/ns/<name>` (the link reads `mnt:[4026531840]`).
pub fn ns_inode(proc_root: &Path, pid: &str, name: &str) -> Option<u32> {
    let link = fs::read_link(proc_root.join(pid).join("ns").join(name)).ok()?;
    let s = link.to_str()?;
    let inner = s.split_once(":[")?.1.strip_suffix(']')?;
    inner.parse().ok()
}

/// All namespaces of a process, or None if any of the seven classic ones is unreadable.
pub fn process_namespaces(proc_root: &Path, pid: &str) -> Option<Namespaces> {
    Some(Namespaces {
        mnt: ns_inode(proc_root, pid, "mnt")?,
        pid: ns_inode(proc_root, pid, "pid_for_children")
            .or_else(|| ns_inode(proc_root, pid, "pid"))?,
        net: ns_inode(proc_root, pid, "net")?,
        uts: ns_inode(proc_root, pid, "uts")?,
        ipc: ns_inode(proc_root, pid, "ipc")?,
        user: ns_inode(proc_root, pid, "user")?,
        cgroup: ns_inode(proc_root, pid, "cgroup")?,
        time: ns_inode(proc_root, pid, "time").unwrap_or(0),
    })
}

/// The host's namespaces: those of PID 1 when readable; otherwise the kernel's fixed initial
/// inode numbers for pid, uts, ipc, user, cgroup and time, plus the agent's own mount and network
/// namespaces if the agent itself runs in the initial pid and user namespaces.
pub fn host_namespaces(proc_root: &Path) -> HostNamespaces {
    if let Some(ns) = process_namespaces(proc_root, "1") {
        return HostNamespaces {
            namespaces: ns,
            source: "namespaces of PID 1".into(),
        };
    }
    // Kernel threads keep the initial namespaces, and with no memory of their own they are
    // readable where PID 1 is not (a sandbox's init, a non-root agent): the agent's own mount
    // namespace is no stand-in under systemd's ProtectSystem=, which gives it a private one.
    let kthreadd = fs::read_to_string(proc_root.join("2").join("comm"))
        .is_ok_and(|c| c.trim_end() == "kthreadd");
    if kthreadd && let Some(ns) = process_namespaces(proc_root, "2") {
        return HostNamespaces {
            namespaces: ns,
            source: "/proc/1/ns is unreadable: namespaces of kthreadd (PID 2)".into(),
        };
    }
    let own = process_namespaces(proc_root, "self");
    let on_host = own.is_some_and(|o| o.pid == PROC_PID_INIT_INO && o.user == PROC_USER_INIT_INO);
    let (mnt, net, how) = match own {
        Some(o) if on_host => (o.mnt, o.net, "the agent's own mount and network namespaces"),
        _ => (
            0,
            0,
            "no mount or network namespace (the agent does not run in the initial pid and user namespaces: give it the host's PID namespace)",
        ),
    };
    HostNamespaces {
        namespaces: Namespaces {
            mnt,
            pid: PROC_PID_INIT_INO,
            net,
            uts: PROC_UTS_INIT_INO,
            ipc: PROC_IPC_INIT_INO,
            user: PROC_USER_INIT_INO,
            cgroup: PROC_CGROUP_INIT_INO,
            time: PROC_TIME_INIT_INO,
        },
        source: format!(
            "/proc/1/ns is unreadable: the kernel's initial pid/uts/ipc/user/cgroup/time namespaces and {how}"
        ),
    }
}

/// Kernel-encoded device number (`s_dev`) of the host's root filesystem: that of PID 1's root
/// directory; where that is unreadable (an agent without CAP_SYS_PTRACE), the agent's own root
/// when the agent runs in the host's mount namespace `host_mnt`. None otherwise: no exec is
/// then said to run a host file by its device.
pub fn root_dev(proc_root: &Path, host_mnt: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let own_is_host = host_mnt != 0 && ns_inode(proc_root, "self", "mnt") == Some(host_mnt);
    let dev = fs::metadata(proc_root.join("1").join("root"))
        .or_else(|e| {
            if own_is_host {
                fs::metadata("/")
            } else {
                Err(e)
            }
        })
        .ok()?
        .dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    Some(escapewatch_common::abi::kernel_dev(major, minor))
}

/// Nanoseconds since the Unix epoch at which CLOCK_BOOTTIME was zero.
pub fn boot_time_unix_ns() -> i128 {
    let read = |clock| {
        nix::time::clock_gettime(clock)
            .map(|t| i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
            .unwrap_or(0)
    };
    let real = read(nix::time::ClockId::CLOCK_REALTIME);
    let boot = read(nix::time::ClockId::CLOCK_BOOTTIME);
    real - boot
}

/// RFC 3339 UTC with nanoseconds, e.g. `2026-11-23T01:02:03.123456789Z`.
///
/// Called for every event: the calendar part is computed once per second (per thread) and
/// only the nanoseconds are formatted each time.
pub fn rfc3339_ns(unix_ns: i128) -> String {
    thread_local! {
        static SECOND: std::cell::RefCell<(i128, String)> =
            const { std::cell::RefCell::new((i128::MIN, String::new())) };
    }
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000) as u32;
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let Some(t) = i64::try_from(secs)
                .ok()
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
            else {
                return format!("@{unix_ns}ns");
            };
            cached.1 = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
            );
            cached.0 = secs;
        }
        let mut digits = [b'0'; 9];
        let mut n = nanos;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let mut out = String::with_capacity(cached.1.len() + 10);
        out.push_str(&cached.1);
        out.extend(digits.iter().map(|&b| char::from(b)));
        out.push('Z');
        out
    })
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_with_nanoseconds() {
        assert_eq!(rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339_ns(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(rfc3339_ns(1_000_000_007), "1970-01-01T00:00:01.000000007Z");
        assert_eq!(rfc3339_ns(i128::MAX), format!("@{}ns", i128::MAX));
        assert_eq!(
            rfc3339_ns(1_795_395_723_123_456_789),
            "2026-11-23T01:02:03.123456789Z"
        );
    }

    #[test]
    fn kthreadd_stands_in_for_an_unreadable_pid_1() {
        let root = std::env::temp_dir().join(format!("ew-host-ns-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let ns = root.join("2/ns");
        fs::create_dir_all(&ns).unwrap();
        fs::create_dir_all(root.join("1/ns")).unwrap();
        fs::write(root.join("2/comm"), "kthreadd\n").unwrap();
        for (i, name) in ["mnt", "pid", "net", "uts", "ipc", "user", "cgroup", "time"]
            .iter()
            .enumerate()
        {
            std::os::unix::fs::symlink(format!("{name}:[{}]", 100 + i), ns.join(name)).unwrap();
        }
        let host = host_namespaces(&root);
        assert_eq!(
            (host.namespaces.mnt, host.namespaces.net),
            (100, 102),
            "{}",
            host.source
        );
        assert!(host.source.contains("kthreadd"), "{}", host.source);
        // Not kthreadd: not trusted.
        fs::write(root.join("2/comm"), "sh\n").unwrap();
        assert!(!host_namespaces(&root).source.contains("kthreadd"));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn host_namespaces_on_this_machine_are_complete() {
        let host = host_namespaces(Path::new("/proc"));
        let ns = host.namespaces;
        assert_ne!(ns.mnt, 0, "{}", host.source);
        assert_ne!(ns.net, 0, "{}", host.source);
        assert_eq!(ns.pid, ns_inode(Path::new("/proc"), "self", "pid").unwrap());
    }
}
