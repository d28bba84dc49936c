//! The budget half of `detector-overloaded`: attempt records (failed opens, refused namespace
//! calls) the kernel counted but did not send because one container was over its budget.
//!
//! A budgeted record took no room from anyone: the kernel keeps attempts in their own ring
//! buffer and at most `ATTEMPTS_PER_WINDOW` per container, kind and second in it. So a short
//! burst over the budget (a `find /` as an unprivileged user meets a few thousand unreadable
//! directories) is the container's own business and stays a metric
//! (`escapewatch_events_budgeted_total`). A sustained flood — [`FLOOD_MIN`] records within
//! [`FLOOD_WINDOW_NS`] — is the pattern of an attacker trying to blind the detector, and is
//! alerted naming the container, with a cooldown per container; what comes during the
//! cooldown is counted into the next alert.

use std::collections::BTreeMap;

use crate::model::Container;

/// Budgeted records of one container within [`FLOOD_WINDOW_NS`] that make a flood: a
/// thousand failed calls a second for ten seconds, over the budget of 64 a second.
pub const FLOOD_MIN: u64 = 10_000;
pub const FLOOD_WINDOW_NS: u64 = 10_000_000_000;

/// Budgeted records of one container not alerted yet.
#[derive(Debug, Default, Clone)]
pub struct Pending {
    pub suppressed: BTreeMap<String, u64>,
    /// The `events_budgeted` reports that carried them.
    pub ids: Vec<u64>,
    /// Kernel time of the first report counted.
    pub since_ns: u64,
    /// The counts reached [`FLOOD_MIN`] within [`FLOOD_WINDOW_NS`].
    pub flood: bool,
}

impl Pending {
    pub fn total(&self) -> u64 {
        self.suppressed.values().sum()
    }
}

/// Containers whose pending counts are kept (beyond that, the oldest are forgotten: their
/// records stay counted in the metrics).
const CONTAINER_LIMIT: usize = 4096;

#[derive(Debug, Default)]
pub struct Floods {
    pending: BTreeMap<Option<Container>, Pending>,
}

impl Floods {
    /// Count one report of `container` at `now_ns`. Returns whether the container is flooding.
    pub fn add(
        &mut self,
        container: &Option<Container>,
        suppressed: &BTreeMap<String, u64>,
        id: u64,
        now_ns: u64,
    ) -> bool {
        if !self.pending.contains_key(container) && self.pending.len() >= CONTAINER_LIMIT {
            self.forget_oldest();
        }
        let p = self.pending.entry(container.clone()).or_default();
        if !p.flood && now_ns.saturating_sub(p.since_ns) > FLOOD_WINDOW_NS {
            // A burst that stayed under the flood rate: its window starts again here.
            *p = Pending::default();
        }
        if p.ids.is_empty() {
            p.since_ns = now_ns;
        }
        for (k, n) in suppressed {
            *p.suppressed.entry(k.clone()).or_default() += n;
        }
        p.ids.push(id);
        if p.total() >= FLOOD_MIN {
            p.flood = true;
        }
        p.flood
    }

    /// Take the pending counts of `container` (for its alert).
    pub fn take(&mut self, container: &Option<Container>) -> Option<Pending> {
        self.pending.remove(container)
    }

    /// Flooding containers with counts waiting, in order.
    pub fn flooding(&self) -> impl Iterator<Item = &Option<Container>> {
        self.pending.iter().filter(|(_, p)| p.flood).map(|(c, _)| c)
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self
            .pending
            .iter()
            .min_by_key(|(c, p)| (p.since_ns, (*c).clone()))
            .map(|(c, _)| c.clone())
        {
            self.pending.remove(&oldest);
        }
    }
}
