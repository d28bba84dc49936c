//! Post-condition of a filesystem escape, stated at exec: a task whose cwd or root lies in a
//! mount of another mount namespace than its own holds a directory of the outside (a host fd
//! kept across setns and fchdir'd to, runc's leaked fd of CVE-2024-21626). Its own mounts,
//! bind-mounted volumes included, are in its own namespace.

use super::{Enricher, System};
use crate::model::{FsPath, Namespaces, NsType, PathOutside};

impl<S: System> Enricher<S> {
    /// The task's cwd and root when they lie in a mount of a mount namespace not its own
    /// (0: unreadable or a detached mount in no namespace, which says nothing).
    pub(super) fn outside_mount(&self, ns: &Namespaces, cwd: u32, root: u32) -> Vec<PathOutside> {
        let own = ns.mnt;
        [(FsPath::Cwd, cwd), (FsPath::Root, root)]
            .into_iter()
            .filter(|&(_, mnt_ns)| own != 0 && mnt_ns != 0 && mnt_ns != own)
            .map(|(which, mnt_ns)| PathOutside {
                which,
                mnt_ns,
                owner: self.owner(NsType::Mnt as usize, mnt_ns),
            })
            .collect()
    }
}
