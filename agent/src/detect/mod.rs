//! Detection: a pure engine, events in, alerts out.
//!
//! No I/O, no wall clock, no aya, no tokio: time comes from the event, output order is the rule
//! order, so the live daemon and `escapewatch replay` give identical alerts for the same log.

mod alert;
mod engine;
pub mod rules;

pub use alert::{Alert, AlertContainer, AlertProcess, Severity};
pub use engine::Engine;
pub use rules::{Rule, RuleInfo};
