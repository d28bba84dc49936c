//! `detector-overloaded`: the kernel dropped events because the ring buffers were full.
//!
//! This is not a kernel event and has no `model::Payload`: a lost event is, by definition, one
//! that never reached userspace, so nothing in the event stream can carry it. The kernel only
//! counts losses per kind (a per-CPU array the daemon reads every second). The daemon hands
//! those counters, its own per-container event counts and the time to this pure state machine,
//! which decides when to raise an alert and builds it. Keeping it here, not in the daemon, keeps
//! the decision deterministic and unit-testable like every other rule.
//!
//! An attacker who floods the host with cheap events (fork/exit) to blind the detector before
//! an escape is the case this is for; an honest build storm looks the same, which is why the
//! alert names the container that produced most events and can be allowlisted by container.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Alert, AlertContainer, AlertProcess, RuleInfo, Severity};
use crate::model::{Container, Event};

pub static INFO: RuleInfo = RuleInfo {
    id: "detector-overloaded",
    severity: Severity::High,
    mitre: "T1562.001",
    title: "Kernel events were lost: the detector was overloaded",
    explanation: "The kernel could not hand some events to escapewatch because its ring buffers \
        were full: processes created events faster than the agent read them. Escapes performed \
        in that window may have gone unseen (namespace and escape-primitive events have their \
        own buffer and are the last to be lost, so check `lost` per kind). A container that \
        forks or execs at a very high rate is the usual cause, and flooding the detector is a \
        known way to blind it before an escape. Check the container named in `top_container`, \
        what it runs and whether that rate is expected; raise `ring_buffers` sizes in the \
        config if the load is legitimate, or allowlist the container for this rule.",
    event_kinds: &[],
};

/// Time between two alerts; losses in between are added to the next one.
pub const COOLDOWN_NS: u64 = 60_000_000_000;
/// Containers counted per interval; beyond that, events count as "other".
const CONTAINER_LIMIT: usize = 4096;

/// Decides when losses deserve an alert and what it says.
#[derive(Debug, Default)]
pub struct OverloadDetector {
    /// Kernel loss totals (cumulative since load) at the last tick, by kind name.
    seen: BTreeMap<String, u64>,
    /// Losses not yet reported, by kind name.
    pending: BTreeMap<String, u64>,
    last_alert_ns: Option<u64>,
    /// Start of the interval the container counts cover.
    interval_start_ns: Option<u64>,
    per_container: BTreeMap<Container, u64>,
    events: u64,
}

impl OverloadDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one event that reached userspace.
    pub fn observe(&mut self, event: &Event) {
        self.events += 1;
        self.interval_start_ns.get_or_insert(event.ktime_ns);
        if let Some(c) = &event.container {
            if let Some(n) = self.per_container.get_mut(c) {
                *n += 1;
            } else if self.per_container.len() < CONTAINER_LIMIT {
                self.per_container.insert(c.clone(), 1);
            }
        }
    }

    /// Called every tick with the kernel's cumulative loss counters. `now_ns` is CLOCK_BOOTTIME
    /// (the events' clock) and `time` its wall-clock rendering; `agent` is this process.
    pub fn tick(
        &mut self,
        lost_totals: &BTreeMap<String, u64>,
        now_ns: u64,
        time: &str,
        agent: &AlertProcess,
    ) -> Option<Alert> {
        for (kind, &total) in lost_totals {
            let before = self.seen.insert(kind.clone(), total).unwrap_or(0);
            if total > before {
                *self.pending.entry(kind.clone()).or_default() += total - before;
            }
        }
        if self.pending.is_empty() {
            // A quiet interval: start counting containers afresh.
            self.reset_interval(now_ns);
            return None;
        }
        if self
            .last_alert_ns
            .is_some_and(|t| now_ns.saturating_sub(t) < COOLDOWN_NS)
        {
            return None;
        }
        let alert = self.alert(now_ns, time, agent);
        self.last_alert_ns = Some(now_ns);
        self.pending.clear();
        self.reset_interval(now_ns);
        Some(alert)
    }

    fn reset_interval(&mut self, now_ns: u64) {
        self.per_container.clear();
        self.events = 0;
        self.interval_start_ns = Some(now_ns);
    }

    fn alert(&self, now_ns: u64, time: &str, agent: &AlertProcess) -> Alert {
        let lost_total: u64 = self.pending.values().sum();
        // Most events first; ties broken by the container's order, so the choice is stable.
        let top = self
            .per_container
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)));
        let interval_s = self
            .interval_start_ns
            .map_or(0.0, |s| now_ns.saturating_sub(s) as f64 / 1e9);
        let kinds: Vec<String> = self
            .pending
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        let who = top.map_or_else(
            || "no container stood out".to_owned(),
            |(c, n)| {
                format!(
                    "{} container {} produced most events ({n} of {})",
                    c.runtime.as_str(),
                    c.id,
                    self.events
                )
            },
        );
        let summary = format!(
            "escapewatch lost {lost_total} kernel events ({}) because its ring buffers were \
             full; {who}. Activity in this window may have gone unseen.",
            kinds.join(", ")
        );
        let details = json!({
            "lost": self.pending,
            "lost_total": lost_total,
            "interval_seconds": (interval_s * 1000.0).round() / 1000.0,
            "events_seen": self.events,
            "top_container": top.map(|(c, n)| json!({
                "id": c.id,
                "runtime": c.runtime,
                "events": n,
            })),
        });
        Alert {
            time: time.to_owned(),
            rule: INFO.id.to_owned(),
            severity: INFO.severity,
            summary,
            mitre: INFO.mitre.to_owned(),
            container: top.map(|(c, _)| AlertContainer::from_container(c)),
            process: agent.clone(),
            details,
            // No event triggered it: the events in question never arrived.
            event_ids: Vec::new(),
            explanation: INFO.explanation.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Runtime,
        testing::{container_process, setns_event},
    };

    fn agent() -> AlertProcess {
        AlertProcess {
            pid: 10,
            ppid: 1,
            comm: "escapewatch".into(),
            exe: "/usr/bin/escapewatch".into(),
            uid: 0,
        }
    }

    fn lost(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn no_loss_no_alert() {
        let mut d = OverloadDetector::new();
        assert!(d.tick(&lost(&[]), 1, "t", &agent()).is_none());
    }

    #[test]
    fn first_loss_alerts_with_kinds_and_top_container() {
        let mut d = OverloadDetector::new();
        let busy = setns_event(container_process(), 0, vec![]);
        let mut quiet = busy.clone();
        quiet.container = Some(Container {
            id: "b".repeat(64),
            runtime: Runtime::Containerd,
            pod_uid: None,
        });
        for _ in 0..3 {
            d.observe(&busy);
        }
        d.observe(&quiet);
        let a = d
            .tick(
                &lost(&[("process_exec", 7), ("process_fork", 5)]),
                6_000_000_000,
                "T",
                &agent(),
            )
            .expect("alert");
        assert_eq!(a.rule, "detector-overloaded");
        assert_eq!(a.severity, Severity::High);
        assert_eq!(a.time, "T");
        assert_eq!(a.details["lost_total"], 12);
        assert_eq!(a.details["lost"]["process_exec"], 7);
        assert_eq!(a.details["top_container"]["id"], "a".repeat(64));
        assert_eq!(a.details["top_container"]["events"], 3);
        assert_eq!(a.details["events_seen"], 4);
        assert_eq!(a.container.unwrap().runtime, Runtime::Docker);
        assert!(a.summary.contains("lost 12"), "{}", a.summary);
        assert!(a.event_ids.is_empty());
    }

    #[test]
    fn losses_during_cooldown_are_reported_together_afterwards() {
        let mut d = OverloadDetector::new();
        let s = 1_000_000_000;
        assert!(
            d.tick(&lost(&[("process_fork", 1)]), s, "t", &agent())
                .is_some()
        );
        // Counters are cumulative: 1 → 4 → 10 means 3 then 6 more.
        assert!(
            d.tick(&lost(&[("process_fork", 4)]), 2 * s, "t", &agent())
                .is_none()
        );
        assert!(
            d.tick(&lost(&[("process_fork", 10)]), 3 * s, "t", &agent())
                .is_none()
        );
        let a = d
            .tick(
                &lost(&[("process_fork", 10)]),
                s + COOLDOWN_NS,
                "t",
                &agent(),
            )
            .expect("pending losses reported after the cooldown");
        assert_eq!(a.details["lost"]["process_fork"], 9);
        // Nothing new: quiet again.
        assert!(
            d.tick(
                &lost(&[("process_fork", 10)]),
                3 * COOLDOWN_NS,
                "t",
                &agent()
            )
            .is_none()
        );
    }
}
