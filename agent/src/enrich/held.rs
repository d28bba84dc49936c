//! Post-conditions of an escape, stated on every event whatever path led there: the
//! namespaces a container's process holds that its container did not have when first seen and
//! that belong to the host or to another container. A setns seen by its tracepoint is judged
//! as such (`namespace-join-host`); this catches the paths no syscall hook saw: the 32-bit
//! entry, io_uring, lost events, a kernel exploit's switch_task_namespaces.

use std::collections::{HashMap, VecDeque};

use super::{Enricher, System};
use crate::model::{Container, JoinedNamespace, Namespaces, NsOwner};

/// Containers whose first-seen namespaces are kept; the oldest is forgotten beyond that.
const CONTAINERS: usize = 16_384;

/// The namespaces each container's workload had when the agent first saw one of its processes.
#[derive(Default)]
pub(super) struct StartNamespaces {
    by_container: HashMap<String, Namespaces>,
    order: VecDeque<String>,
}

impl StartNamespaces {
    /// The container's start namespaces, recording `ns` as them when it is new.
    fn get_or_record(&mut self, c: &Container, ns: &Namespaces) -> Namespaces {
        if let Some(start) = self.by_container.get(&c.id) {
            return *start;
        }
        if self.order.len() >= CONTAINERS
            && let Some(old) = self.order.pop_front()
        {
            self.by_container.remove(&old);
        }
        self.order.push_back(c.id.clone());
        self.by_container.insert(c.id.clone(), *ns);
        *ns
    }
}

impl<S: System> Enricher<S> {
    /// The namespaces of a workload process of `c` that are the host's or another container's
    /// and were not its container's at start.
    pub(super) fn foreign_held(&mut self, c: &Container, ns: &Namespaces) -> Vec<JoinedNamespace> {
        let start = self.start_ns.get_or_record(c, ns);
        let (now, then) = (ns.iter(), start.iter());
        (0..now.len())
            .filter(|&i| now[i].1 != 0 && now[i].1 != then[i].1)
            .filter_map(|i| {
                let owner = self.owner(i, now[i].1);
                let foreign = match &owner {
                    NsOwner::Host => true,
                    NsOwner::Container { id, .. } => *id != c.id,
                    NsOwner::Unknown => false,
                };
                foreign.then(|| JoinedNamespace {
                    ns_type: now[i].0,
                    inode: now[i].1,
                    previous: then[i].1,
                    owner,
                })
            })
            .collect()
    }
}
