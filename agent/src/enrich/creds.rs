//! Post-condition of a privilege escalation, stated on every event whatever path led there:
//! a container's process whose effective capabilities exceed the bounding set its container
//! started with, or whose credentials are the kernel's own (`init_cred`). A kernel exploit's
//! `commit_creds(prepare_kernel_cred(0))` makes no syscall any hook names; its effect shows in
//! the credentials every event header carries.

use std::collections::{HashMap, VecDeque};

use escapewatch_common::event::EventHeader;

use super::{Enricher, System};
use crate::model::{Container, CredsBeyondStart, Namespaces};

/// Containers whose start credentials are kept; the oldest is forgotten beyond that.
const CONTAINERS: usize = 16_384;

/// Every capability up to CAP_CHECKPOINT_RESTORE (40, the last one since 5.9): what
/// `init_cred` holds (`CAP_FULL_SET`).
pub const FULL_CAPS: u64 = (1 << 41) - 1;

/// What a container started with: the bounding set of its first workload process (no process
/// of it can hold more, except by a path that bypasses the kernel's own rules), its uid and
/// its user namespace.
#[derive(Clone, Copy)]
struct Start {
    bounding: u64,
    uid: u32,
    user_ns: u32,
}

#[derive(Default)]
pub(super) struct StartCreds {
    by_container: HashMap<String, Start>,
    order: VecDeque<String>,
}

impl StartCreds {
    fn get(&self, c: &Container) -> Option<Start> {
        self.by_container.get(&c.id).copied()
    }

    fn record(&mut self, c: &Container, start: Start) {
        if self.by_container.contains_key(&c.id) {
            return;
        }
        if self.order.len() >= CONTAINERS
            && let Some(old) = self.order.pop_front()
        {
            self.by_container.remove(&old);
        }
        self.order.push_back(c.id.clone());
        self.by_container.insert(c.id.clone(), start);
    }
}

impl<S: System> Enricher<S> {
    /// Record `c`'s start credentials from a process found running when the agent started.
    pub(super) fn seed_start_creds(&mut self, c: &Container, pid: u32, ns: &Namespaces) {
        if self.start_creds.get(c).is_some() {
            return;
        }
        if let Some((uid, bounding)) = self.system.proc_creds(pid) {
            self.start_creds.record(
                c,
                Start {
                    bounding,
                    uid,
                    user_ns: ns.user,
                },
            );
        }
    }

    /// The credentials of the event's workload process of `c` beyond its container's start.
    /// The first workload process seen of a container decides its start: its bounding set as
    /// /proc shows it then (a process that is gone already decides nothing; the next one does).
    pub(super) fn creds_beyond(
        &mut self,
        c: &Container,
        h: &EventHeader,
        ns: &Namespaces,
    ) -> Option<CredsBeyondStart> {
        let start = match self.start_creds.get(c) {
            Some(s) => s,
            None => {
                let bounding = self.system.proc_creds(h.tgid)?.1;
                let s = Start {
                    bounding,
                    uid: h.uid,
                    user_ns: ns.user,
                };
                self.start_creds.record(c, s);
                s
            }
        };
        let host_user = self.host.namespaces.user;
        let in_host_userns = host_user != 0 && ns.user == host_user;
        // Capabilities in a user namespace made inside the container (neither the host's nor
        // the one it started in) reach only what that namespace owns: `unshare -U` gives
        // every one of them there, and nothing here.
        if ns.user != 0 && ns.user != start.user_ns && !in_host_userns {
            return None;
        }
        // Capabilities of a container with its own user namespace count only there: in the
        // host's, every one it holds is beyond what it started with.
        let gained = if in_host_userns && start.user_ns != host_user {
            h.cap_effective
        } else {
            h.cap_effective & !start.bounding
        };
        (gained != 0).then_some(CredsBeyondStart {
            gained,
            start_bounding: start.bounding,
            start_uid: start.uid,
            init_cred: h.uid == 0
                && h.gid == 0
                && in_host_userns
                && h.cap_effective & FULL_CAPS == FULL_CAPS,
        })
    }
}
