//! The facts of the drift rules: the kernel's view of the file an exec ran, and when its
//! container started, on the same clock (ns since the Unix epoch).

use std::collections::{HashMap, VecDeque};

use escapewatch_common::event::{EXEC_FLAG_EXE_WHOLE_FS, ExecEvent, NsType};

use super::{Enricher, System, payload::dev};
use crate::model::{Event, ExecImage, JoinedNamespace, Namespaces, Payload};

/// The nanoseconds of an inode's ctime. Since 6.13 (multigrain timestamps) the kernel keeps
/// a flag in bit 31 of `i_ctime_nsec` (I_CTIME_QUERIED); nanoseconds are below 2^30.
const CTIME_NSEC_MASK: u32 = (1 << 30) - 1;

/// Containers whose start is kept; the oldest is forgotten beyond that.
const CONTAINERS: usize = 16_384;

/// Each container's start: the earliest process start time (the kernel's `start_boottime` of
/// the task) among the processes the agent saw in it, seeded from /proc at start. The
/// container's init is the oldest of its processes and lives as long as the container, so
/// this is its start whether the agent came before or after it. A process of the container
/// cannot be older than it (moving an older process in takes the host's cgroup tree), while a
/// later pid namespace's init, which a container can make with unshare, can only be younger:
/// the minimum is the earliest trustworthy instant.
#[derive(Default)]
pub(super) struct ContainerStart {
    by_container: HashMap<String, u64>,
    order: VecDeque<String>,
}

impl ContainerStart {
    /// A process of container `id` started at `start_boot_ns` (0: unknown, ignored).
    pub(super) fn note(&mut self, id: &str, start_boot_ns: u64) {
        if start_boot_ns == 0 {
            return;
        }
        if let Some(t) = self.by_container.get_mut(id) {
            *t = (*t).min(start_boot_ns);
            return;
        }
        if self.order.len() >= CONTAINERS
            && let Some(old) = self.order.pop_front()
        {
            self.by_container.remove(&old);
        }
        self.order.push_back(id.to_owned());
        self.by_container.insert(id.to_owned(), start_boot_ns);
    }

    fn get(&self, id: &str) -> Option<u64> {
        self.by_container.get(id).copied()
    }
}

/// The executed file's facts from the kernel record; None when the kernel could not read it.
fn kernel_image(e: &ExecEvent) -> Option<ExecImage> {
    if e.exe_ino == 0 {
        return None;
    }
    Some(ExecImage {
        inode: e.exe_ino,
        dev: dev(e.exe_dev),
        fs_magic: e.exe_magic,
        nlink: e.exe_nlink,
        ctime_unix_ns: e
            .exe_ctime_sec
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(e.exe_ctime_nsec & CTIME_NSEC_MASK)),
        root_dev: dev(e.root_dev),
        container_start_unix_ns: None,
        whole_fs: e.flags & EXEC_FLAG_EXE_WHOLE_FS != 0,
        host_root_fs: false,
        foreign_mnt_ns: None,
    })
}

impl<S: System> Enricher<S> {
    /// The executed file's facts (None when the kernel could not read them), with what only
    /// the host can tell: whether the file lies on the host's root filesystem, and whose mount
    /// namespace the mount it was reached through is in when it is not the process's own.
    pub(super) fn exec_image(&self, e: &ExecEvent, ns: &Namespaces) -> Option<ExecImage> {
        let mut image = kernel_image(e)?;
        image.host_root_fs = self.host_root_dev.is_some_and(|d| d != 0 && d == e.exe_dev);
        if ns.mnt != 0 && e.exe_mnt_ns != 0 && e.exe_mnt_ns != ns.mnt {
            image.foreign_mnt_ns = Some(JoinedNamespace {
                ns_type: NsType::Mnt,
                inode: e.exe_mnt_ns,
                previous: ns.mnt,
                owner: self.owner(NsType::Mnt as usize, e.exe_mnt_ns),
            });
        }
        Some(image)
    }

    /// Put the container's start beside an exec's image (after `build` noted this process).
    pub(super) fn date_container_start(&self, event: &mut Event) {
        let Payload::ProcessExec {
            image: Some(image), ..
        } = &mut event.data
        else {
            return;
        };
        let Some(c) = &event.container else {
            return;
        };
        image.container_start_unix_ns = self
            .container_start
            .get(&c.id)
            .and_then(|t| i64::try_from(self.boot_unix_ns + i128::from(t)).ok());
    }
}
