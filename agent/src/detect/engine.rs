use super::{
    Alert, Rule, RuleInfo,
    policy::{Policy, Suppressed},
    rules,
};
use crate::model::Event;

/// The detection engine: every rule of the catalogue, in catalogue order, then the operator's
/// policy (disabled rules, allowlists, severity overrides) over what they raised.
pub struct Engine {
    rules: Vec<Box<dyn Rule>>,
    policy: Policy,
}

/// What one event made of the rules: the alerts that pass the policy, in rule order, and the
/// ones it held back (for metrics). Returned together, so no caller can forget the second.
#[derive(Debug, Default)]
#[must_use]
pub struct Outcome {
    pub alerts: Vec<Alert>,
    pub suppressed: Vec<Suppressed>,
}

impl Engine {
    /// An engine with every rule of the catalogue and no policy.
    pub fn new() -> Self {
        Self::with_policy(Policy::default())
    }

    pub fn with_policy(policy: Policy) -> Self {
        Engine {
            rules: rules::catalogue().iter().map(|e| (e.make)()).collect(),
            policy,
        }
    }

    /// Swap the policy (SIGHUP). Rule state is kept: disabled rules keep running and only their
    /// alerts are held back, so re-enabling one does not start it blind.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Feed one event.
    pub fn process(&mut self, event: &Event) -> Outcome {
        let mut raised = Vec::new();
        for rule in &mut self.rules {
            rule.process(event, &mut raised);
        }
        let mut out = Outcome {
            alerts: Vec::with_capacity(raised.len()),
            suppressed: Vec::new(),
        };
        for alert in raised {
            match self.policy.apply(alert, Some(event)) {
                Ok(a) => out.alerts.push(a),
                Err(s) => out.suppressed.push(s),
            }
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
