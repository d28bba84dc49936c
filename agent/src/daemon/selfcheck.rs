//! The agent's periodic check of itself: every program it attached is still attached.
//!
//! Readiness at start says what attached; this says whether it stays so. A program found
//! detached makes /readyz fail, is counted (`escapewatch_programs_detached_total`) and is
//! reported into the event stream, where the engine's `detector-tampered` rule raises the
//! alert. Each program is reported once: it stays detached until the agent restarts.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::{
    loader::{Loaded, links::AttachedLinks},
    metrics::{Health, Metrics, Readiness},
    model::Payload,
};

/// Time between two checks (the run loop ticks every second).
pub const EVERY: Duration = Duration::from_secs(3);

pub struct SelfCheck {
    links: AttachedLinks,
    reported: Vec<&'static str>,
    last: Instant,
}

impl SelfCheck {
    /// Record the links of every program `loaded` attached.
    pub fn new(loaded: &Loaded, metrics: &Metrics) -> SelfCheck {
        let links = AttachedLinks::record(loaded);
        for a in loaded.attachments.iter().filter(|a| a.attached()) {
            metrics
                .programs_detached
                .with_label_values(&[a.program])
                .inc_by(0);
        }
        if !links.unlinked.is_empty() {
            warn!(
                programs = %links.unlinked.join(","),
                "attached without a bpf link on this kernel: the self-check cannot see whether these stay attached"
            );
        }
        info!(
            links = links.links.len(),
            every_seconds = EVERY.as_secs(),
            "self-check: watching the links of the attached programs"
        );
        SelfCheck {
            links,
            reported: Vec::new(),
            last: Instant::now(),
        }
    }

    /// At most every [`EVERY`]: the report of the programs newly found detached, if any.
    pub fn run(&mut self, metrics: &Metrics, health: &Health) -> Option<Payload> {
        if self.last.elapsed() < EVERY {
            return None;
        }
        self.last = Instant::now();
        let new: Vec<&'static str> = self
            .links
            .detached()
            .into_iter()
            .filter(|p| !self.reported.contains(p))
            .collect();
        if new.is_empty() {
            return None;
        }
        for p in &new {
            metrics.programs_detached.with_label_values(&[p]).inc();
        }
        self.reported.extend(&new);
        health.set(
            Readiness::Detached,
            Some(format!(
                "programs detached while running: {}",
                self.reported.join(", ")
            )),
        );
        Some(Payload::ProgramsDetached {
            programs: new.iter().map(|p| (*p).to_owned()).collect(),
        })
    }
}
