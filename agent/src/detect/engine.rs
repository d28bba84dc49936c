use super::{Alert, Rule, RuleInfo, rules};
use crate::model::Event;

/// The detection engine: every enabled rule, in catalogue order.
pub struct Engine {
    rules: Vec<Box<dyn Rule>>,
}

impl Engine {
    /// An engine with every rule of the catalogue.
    pub fn new() -> Self {
        Engine {
            rules: rules::catalogue(),
        }
    }

    /// Feed one event; returns the alerts it triggers, in rule order.
    pub fn process(&mut self, event: &Event) -> Vec<Alert> {
        let mut out = Vec::new();
        for rule in &mut self.rules {
            rule.process(event, &mut out);
        }
        out
    }

    /// The rules this engine runs.
    pub fn rules(&self) -> impl Iterator<Item = &'static RuleInfo> + '_ {
        self.rules.iter().map(|r| r.info())
    }
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}
