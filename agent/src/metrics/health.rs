//! What /healthz and /readyz report: the run loop's heartbeat, and every reason the agent is
//! not ready, each kept by the part of the agent that found it.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

/// The run loop ticks every second; this much silence means it is stuck.
pub const HEARTBEAT_STALE_MS: u64 = 10_000;

/// A part of the agent that can hold readiness back, in the order /readyz lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Readiness {
    /// Before the programs are attached.
    Starting,
    /// Programs that could not be attached at start.
    Programs,
    /// Programs attached at start that are no longer attached (the periodic self-check).
    Detached,
    /// The metrics listener could not bind its address (retried).
    MetricsListener,
    ShuttingDown,
}

pub struct Health {
    started: Instant,
    /// Milliseconds since `started` at the run loop's last tick.
    heartbeat_ms: AtomicU64,
    /// Why not ready, by the part that says so; ready when empty.
    problems: Mutex<BTreeMap<Readiness, String>>,
}

impl Health {
    pub fn new() -> Health {
        let mut problems = BTreeMap::new();
        problems.insert(
            Readiness::Starting,
            "starting: programs not attached yet".to_owned(),
        );
        Health {
            started: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            problems: Mutex::new(problems),
        }
    }

    pub fn beat(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.heartbeat_ms.store(ms, Ordering::Relaxed);
    }

    /// Record what `part` says: `Some(why)` holds readiness back, `None` releases it.
    pub fn set(&self, part: Readiness, problem: Option<String>) {
        // A poisoned lock only means another thread panicked while holding it; the map is
        // still a map.
        let mut problems = self
            .problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match problem {
            Some(why) => problems.insert(part, why),
            None => problems.remove(&part),
        };
    }

    /// None when alive; otherwise why not.
    pub fn alive(&self) -> Option<String> {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.heartbeat_ms.load(Ordering::Relaxed);
        (now.saturating_sub(last) > HEARTBEAT_STALE_MS)
            .then(|| format!("run loop silent for {} ms", now - last))
    }

    /// None when ready; otherwise every reason why not, in [`Readiness`] order.
    pub fn ready(&self) -> Option<String> {
        let problems = self
            .problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if problems.is_empty() {
            return None;
        }
        let reasons: Vec<&str> = problems.values().map(String::as_str).collect();
        Some(reasons.join("; "))
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_part_agrees() {
        let h = Health::new();
        assert!(h.ready().unwrap().starts_with("starting"));
        h.set(Readiness::Starting, None);
        assert_eq!(h.ready(), None);
        h.set(Readiness::MetricsListener, Some("metrics down".into()));
        h.set(Readiness::Detached, Some("programs detached: x".into()));
        assert_eq!(
            h.ready().as_deref(),
            Some("programs detached: x; metrics down")
        );
        h.set(Readiness::Detached, None);
        assert_eq!(h.ready().as_deref(), Some("metrics down"));
        h.set(Readiness::MetricsListener, None);
        assert_eq!(h.ready(), None);
    }
}
