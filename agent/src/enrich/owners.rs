//! Who owns a namespace: the host, a container (learned from its processes), or unknown. The
//! table a `setns` is judged by.

use std::collections::HashSet;

use tracing::debug;

use super::{Enricher, System};
use crate::model::{Container, JoinedNamespace, Namespaces, NsOwner};

/// Namespace → container entries kept; past it, entries are evicted (see `evict_owners`).
pub(super) const NS_OWNER_LIMIT: usize = 65_536;
/// What an eviction brings the table down to, at most (so evictions are rare).
const NS_OWNER_KEEP: usize = NS_OWNER_LIMIT / 4 * 3;

/// The container that owns a namespace, and when its processes were last seen there.
#[derive(Debug, Clone)]
pub(super) struct Owned {
    container: Container,
    seen: u64,
}

impl<S: System> Enricher<S> {
    /// Slots that changed from `before` to `after` are namespaces just created: whatever the
    /// table remembered for a previous namespace with the same (reused) inode is stale.
    pub(super) fn forget_owners(&mut self, before: &Namespaces, after: &Namespaces) {
        let (b, a) = (before.iter(), after.iter());
        for i in 0..a.len() {
            if a[i].1 != 0 && a[i].1 != b[i].1 {
                self.ns_owner.remove(&(i, a[i].1));
            }
        }
    }

    /// Remember which container's processes live in which namespaces.
    pub(super) fn learn_owner(&mut self, c: &Container, ns: &Namespaces) {
        if self.ns_owner.len() > self.owner_limit {
            self.evict_owners();
        }
        self.owner_clock += 1;
        let seen = self.owner_clock;
        let host = self.host.namespaces.iter();
        for (i, (_, inode)) in ns.iter().into_iter().enumerate() {
            if inode != 0 && inode != host[i].1 {
                self.ns_owner
                    .entry((i, inode))
                    .and_modify(|o| {
                        if o.container.id == c.id {
                            o.seen = seen;
                        }
                    })
                    .or_insert_with(|| Owned {
                        container: c.clone(),
                        seen,
                    });
            }
        }
    }

    /// The table is full (a container making namespaces in a loop fills it): keep every
    /// namespace a live process is in, then drop the others least recently seen first. A wipe
    /// here forgot every container's namespaces, so a setns into one was no longer judged as
    /// joining another container.
    fn evict_owners(&mut self) {
        let held: HashSet<(usize, u32)> = self
            .procs
            .values()
            .filter(|p| p.exited_at.is_none())
            .flat_map(|p| {
                p.namespaces
                    .iter()
                    .into_iter()
                    .enumerate()
                    .map(|(i, (_, inode))| (i, inode))
            })
            .collect();
        let before = self.ns_owner.len();
        let mut stale: Vec<((usize, u32), u64)> = self
            .ns_owner
            .iter()
            .filter(|(k, _)| !held.contains(k))
            .map(|(k, o)| (*k, o.seen))
            .collect();
        let excess = before.saturating_sub(NS_OWNER_KEEP).min(stale.len());
        if excess > 0 {
            stale.select_nth_unstable_by_key(excess - 1, |(_, seen)| *seen);
            for (k, _) in &stale[..excess] {
                self.ns_owner.remove(k);
            }
        }
        // Namespaces of live processes alone may fill it: the next eviction waits for a
        // quarter more, so this never runs on every event.
        self.owner_limit = NS_OWNER_LIMIT.max(self.ns_owner.len() + NS_OWNER_LIMIT / 4);
        debug!(
            before,
            after = self.ns_owner.len(),
            held = held.len(),
            "namespace-owner table full: evicted namespaces no live process is in, oldest first"
        );
    }

    pub(super) fn owner(&self, index: usize, inode: u32) -> NsOwner {
        if inode == self.host.namespaces.iter()[index].1 {
            return NsOwner::Host;
        }
        match self.ns_owner.get(&(index, inode)) {
            Some(o) => NsOwner::Container {
                id: o.container.id.clone(),
                runtime: o.container.runtime,
            },
            None => NsOwner::Unknown,
        }
    }

    /// Namespaces whose inode changed across a setns.
    pub(super) fn joined(&self, before: &Namespaces, after: &Namespaces) -> Vec<JoinedNamespace> {
        let (b, a) = (before.iter(), after.iter());
        (0..b.len())
            .filter(|&i| a[i].1 != 0 && b[i].1 != a[i].1)
            .map(|i| JoinedNamespace {
                ns_type: a[i].0,
                inode: a[i].1,
                previous: b[i].1,
                owner: self.owner(i, a[i].1),
            })
            .collect()
    }
}
