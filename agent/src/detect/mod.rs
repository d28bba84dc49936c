//! Detection: a pure engine, events in, alerts out.
//!
//! No I/O, no wall clock, no aya, no tokio: time comes from the event, output order is the rule
//! order, so the live daemon and `escapewatch replay` give identical alerts for the same log.

mod alert;
mod engine;
mod floods;
pub mod overload;
pub mod policy;
pub mod posture;
pub mod rules;

pub use alert::{Alert, AlertContainer, AlertNode, AlertProcess, Coalesced, Severity};
pub use engine::{Engine, Outcome};
pub use policy::Policy;
pub use rules::{Rule, RuleInfo};

/// Every rule id an alert can carry, in catalogue order (`detector-overloaded` last: it judges
/// the agent's own loss reports). Config validation and metrics use this list.
pub fn all_rule_infos() -> Vec<&'static RuleInfo> {
    rules::infos()
}
