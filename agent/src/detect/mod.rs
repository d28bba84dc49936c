//! Detection: a pure engine, events in, alerts out.
//!
//! No I/O, no wall clock, no aya, no tokio: time comes from the event, output order is the rule
//! order, so the live daemon and `escapewatch replay` give identical alerts for the same log.

mod alert;
mod engine;
pub mod overload;
pub mod policy;
pub mod rules;

pub use alert::{Alert, AlertContainer, AlertProcess, Severity};
pub use engine::Engine;
pub use policy::Policy;
pub use rules::{Rule, RuleInfo};

/// Every rule id an alert can carry: the event rules of the catalogue, then the ones the daemon
/// raises about itself (`detector-overloaded`). Config validation and metrics use this list.
pub fn all_rule_infos() -> Vec<&'static RuleInfo> {
    let mut infos = rules::infos();
    infos.push(&overload::INFO);
    infos
}
