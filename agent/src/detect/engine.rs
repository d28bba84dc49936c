use escapewatch_common::{calls::WatchedSyscall, kind::EventKind};

use super::{
    Alert, Rule, RuleInfo,
    policy::{Policy, Suppressed},
    rules::{self, Input},
};
use crate::model::{Event, NsSyscall, Payload};

/// The detection engine: every rule of the catalogue, in catalogue order, then the operator's
/// policy (disabled rules, allowlists, severity overrides) over what they raised.
///
/// Rules are indexed by input: an event goes to the rules with state and to the stateless
/// rules whose inputs name its kind ([`Rule::inputs_only`]), in catalogue order, so alerts
/// come out as if every rule had seen it. Most events concern one or two of the stateless
/// rules; the others would only have matched the kind and returned.
pub struct Engine {
    rules: Vec<Box<dyn Rule>>,
    /// For each input slot ([`slot_of_event`]), the rules that see it, in catalogue order.
    by_slot: Vec<Vec<usize>>,
    policy: Policy,
}

/// Input slots: a wire kind (its id, below `KIND_SLOTS`), a watched syscall, or one of the
/// agent's reports. The syscall slots start after every kind id.
const SYSCALL_SLOTS: usize = escapewatch_common::kind::KIND_SLOTS as usize;
const LOSS_SLOT: usize = SYSCALL_SLOTS + 16;
const DETACH_SLOT: usize = LOSS_SLOT + 1;
const RESTART_SLOT: usize = LOSS_SLOT + 2;
const START_SLOT: usize = LOSS_SLOT + 3;
const SLOTS: usize = LOSS_SLOT + 4;

fn syscall_slot(s: WatchedSyscall) -> usize {
    SYSCALL_SLOTS
        + WatchedSyscall::ALL
            .iter()
            .position(|&x| x == s)
            .expect("every syscall is in ALL")
}

fn kind_slot(k: EventKind) -> usize {
    k as usize
}

/// The slots an input covers: a `Kind(Syscall)` input covers every watched syscall.
fn slots_of_input(input: Input) -> Vec<usize> {
    match input {
        Input::Kind(EventKind::Syscall) => WatchedSyscall::ALL
            .iter()
            .map(|&s| syscall_slot(s))
            .collect(),
        Input::Kind(k) => vec![kind_slot(k)],
        Input::Syscall(s) => vec![syscall_slot(s)],
        Input::LossReport => vec![LOSS_SLOT],
        Input::DetachReport => vec![DETACH_SLOT],
        Input::RestartReport => vec![RESTART_SLOT],
        Input::StartReport => vec![START_SLOT],
    }
}

/// The slot of an event: the wire kind (or syscall, or report) it was made from.
fn slot_of_event(e: &Event) -> usize {
    match &e.data {
        Payload::ProcessExec { .. } => kind_slot(EventKind::ProcessExec),
        Payload::ProcessFork { .. } => kind_slot(EventKind::ProcessFork),
        Payload::ProcessExit { .. } => kind_slot(EventKind::ProcessExit),
        Payload::Namespace { syscall, .. } => kind_slot(match syscall {
            NsSyscall::Setns => EventKind::Setns,
            NsSyscall::Unshare => EventKind::Unshare,
            NsSyscall::Clone => EventKind::CloneNewNamespace,
        }),
        Payload::Mount { .. } => kind_slot(EventKind::Mount),
        Payload::FileOpen { .. } => kind_slot(EventKind::FileOpen),
        Payload::SysctlWrite { .. } => kind_slot(EventKind::SysctlWrite),
        Payload::Madvise { .. } => kind_slot(EventKind::Madvise),
        Payload::MemWrite { .. } => kind_slot(EventKind::MemWrite),
        Payload::Syscall { name, .. } => syscall_slot(*name),
        Payload::PipeWrite { .. } => kind_slot(EventKind::PipeWrite),
        Payload::UnixConnect { .. } => kind_slot(EventKind::UnixConnect),
        Payload::NetConnect { .. } => kind_slot(EventKind::NetConnect),
        Payload::CowFault { .. } => kind_slot(EventKind::CowFault),
        Payload::TaskChanged { .. } => kind_slot(EventKind::TaskChanged),
        Payload::ModuleRequest { .. } => kind_slot(EventKind::ModuleRequest),
        Payload::EventsLost { .. } | Payload::EventsBudgeted { .. } => LOSS_SLOT,
        Payload::ProgramsDetached { .. } => DETACH_SLOT,
        Payload::AgentRestarted { .. } => RESTART_SLOT,
        Payload::ContainerStarted { .. } => START_SLOT,
    }
}

fn index(rules: &[Box<dyn Rule>]) -> Vec<Vec<usize>> {
    let mut by_slot = vec![Vec::new(); SLOTS];
    for (i, rule) in rules.iter().enumerate() {
        let inputs = rule.info().inputs;
        if !rule.inputs_only() || inputs.is_empty() {
            by_slot.iter_mut().for_each(|s| s.push(i));
            continue;
        }
        for &input in inputs {
            for slot in slots_of_input(input) {
                if by_slot[slot].last() != Some(&i) {
                    by_slot[slot].push(i);
                }
            }
        }
    }
    // Catalogue order within each slot (an input listed twice is one entry).
    for s in &mut by_slot {
        s.sort_unstable();
        s.dedup();
    }
    by_slot
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
        let rules: Vec<Box<dyn Rule>> = rules::catalogue().iter().map(|e| (e.make)()).collect();
        Engine {
            by_slot: index(&rules),
            rules,
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
        for &i in &self.by_slot[slot_of_event(event)] {
            self.rules[i].process(event, &mut raised);
        }
        let mut out = Outcome {
            alerts: Vec::with_capacity(raised.len()),
            suppressed: Vec::new(),
        };
        for mut alert in raised {
            super::posture::apply(&mut alert);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine whose every rule sees every event (the engine before the index).
    fn unindexed() -> Engine {
        let mut e = Engine::new();
        e.by_slot = vec![(0..e.rules.len()).collect(); SLOTS];
        e
    }

    fn alerts(engine: &mut Engine, events: &[Event]) -> Vec<String> {
        events
            .iter()
            .flat_map(|ev| engine.process(ev).alerts)
            .map(|a| serde_json::to_string(&a).unwrap())
            .collect()
    }

    /// The index changes nothing: every rule example and every recorded fixture event gives
    /// the same alerts, in the same order, with it as without it. (The replay tests compare
    /// the fixtures with their recorded alerts as well.)
    #[test]
    fn the_index_by_input_gives_the_alerts_of_every_rule_seeing_everything() {
        let mut streams: Vec<Vec<Event>> = Vec::new();
        for entry in rules::catalogue() {
            for x in (entry.examples)() {
                streams.push(x.events);
            }
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        for f in std::fs::read_dir(dir).unwrap().flatten() {
            let p = f.path();
            if !p.to_string_lossy().ends_with(".events.jsonl") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            streams.push(
                text.lines()
                    .skip(1)
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect(),
            );
        }
        assert!(streams.len() > 60, "{} streams", streams.len());
        let mut raised = 0;
        for events in &streams {
            let want = alerts(&mut unindexed(), events);
            assert_eq!(alerts(&mut Engine::new(), events), want);
            raised += want.len();
        }
        assert!(raised > 50, "{raised} alerts");
    }

    #[test]
    fn every_stateless_rule_is_indexed_under_its_inputs_only() {
        for &k in EventKind::ALL {
            assert!((k as usize) < SYSCALL_SLOTS, "{k:?}");
        }
        assert!(WatchedSyscall::ALL.len() <= LOSS_SLOT - SYSCALL_SLOTS);
        let e = Engine::new();
        let stateful = e.rules.iter().filter(|r| !r.inputs_only()).count();
        assert!((1..e.rules.len()).contains(&stateful));
        for (i, rule) in e.rules.iter().enumerate() {
            let seen = e.by_slot.iter().filter(|s| s.contains(&i)).count();
            if rule.inputs_only() {
                assert!(
                    (1..SLOTS).contains(&seen),
                    "{}: {seen} slots",
                    rule.info().id
                );
            } else {
                assert_eq!(seen, SLOTS, "{}", rule.info().id);
            }
        }
    }
}
