//! Who owns a namespace: the host, a container (learned from its processes), or unknown. The
//! table a `setns` is judged by.

use super::{Enricher, System};
use crate::model::{Container, JoinedNamespace, Namespaces, NsOwner};

/// Namespace → container entries kept before the map is rebuilt from new events.
const NS_OWNER_LIMIT: usize = 65_536;

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
        if self.ns_owner.len() > NS_OWNER_LIMIT {
            self.ns_owner.clear();
        }
        let host = self.host.namespaces.iter();
        for (i, (_, inode)) in ns.iter().into_iter().enumerate() {
            if inode != 0 && inode != host[i].1 {
                self.ns_owner.entry((i, inode)).or_insert_with(|| c.clone());
            }
        }
    }

    pub(super) fn owner(&self, index: usize, inode: u32) -> NsOwner {
        if inode == self.host.namespaces.iter()[index].1 {
            return NsOwner::Host;
        }
        match self.ns_owner.get(&(index, inode)) {
            Some(c) => NsOwner::Container {
                id: c.id.clone(),
                runtime: c.runtime,
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
