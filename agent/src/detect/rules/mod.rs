//! The rule catalogue. Rule ids are a public contract: users alert and allowlist on them.

mod namespace_join_host;

use super::{Alert, AlertContainer, AlertProcess, Severity};
use crate::model::Event;

/// What a rule is, for `escapewatch rules` and for every alert it raises.
#[derive(Debug)]
pub struct RuleInfo {
    pub id: &'static str,
    pub severity: Severity,
    pub mitre: &'static str,
    pub title: &'static str,
    /// What happened, why it matters, what to check next.
    pub explanation: &'static str,
    /// The kernel events the rule reads (`escapewatch rules` maps them to hooks).
    pub event_kinds: &'static [&'static str],
}

/// A detection rule. Rules keep only bounded state and never do I/O.
pub trait Rule: Send {
    fn info(&self) -> &'static RuleInfo;
    fn process(&mut self, event: &Event, out: &mut Vec<Alert>);
}

/// Every rule, in the order alerts are emitted.
pub fn catalogue() -> Vec<Box<dyn Rule>> {
    vec![Box::new(namespace_join_host::NamespaceJoinHost)]
}

/// The static descriptions of every rule.
pub fn infos() -> Vec<&'static RuleInfo> {
    catalogue().iter().map(|r| r.info()).collect()
}

/// An alert of `info` about `event`, with the shared fields filled in.
fn alert(
    info: &'static RuleInfo,
    event: &Event,
    summary: String,
    details: serde_json::Value,
) -> Alert {
    Alert {
        time: event.time.clone(),
        rule: info.id.to_owned(),
        severity: info.severity,
        summary,
        mitre: info.mitre.to_owned(),
        container: event.container.as_ref().map(AlertContainer::from_container),
        process: AlertProcess::from_event(event),
        details,
        event_ids: vec![event.id],
        explanation: info.explanation.to_owned(),
    }
}
