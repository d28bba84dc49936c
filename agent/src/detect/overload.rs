//! `detector-overloaded`: the kernel dropped events because the ring buffers were full.
//!
//! A lost event is, by definition, one that never reached userspace; the kernel only counts
//! losses per kind (a per-CPU array the daemon reads every second). When the counters grow, the
//! daemon writes one synthetic `events_lost` event (the agent's own process, the new losses by
//! kind) into the event stream, so the event log records the loss and this rule — an ordinary
//! rule of the engine — decides from events alone: replay of a log gives exactly the live
//! alert. It counts which container produced most events in the interval before the loss.
//!
//! Attempt records (failed opens, refused namespace calls) a container made over its kernel
//! budget arrive the same way, as `events_budgeted` reports naming the container; floods.rs
//! decides which of them are a flood.
//!
//! An attacker who floods the host with cheap events (fork/exit) to blind the detector before
//! an escape is the case this is for; an honest build storm looks the same, which is why the
//! alert names the container that produced most events and can be allowlisted by container.

use std::collections::BTreeMap;

use serde_json::json;

use super::{
    Alert, AlertContainer, AlertProcess, Rule, RuleInfo, Severity,
    floods::{Floods, Pending},
    rules::{Declared, Fixtures, Input},
};
use crate::model::{Container, Event, Payload};

pub static INFO: RuleInfo = RuleInfo {
    scope: "the kernel lost events, or one container flooded it with cheap attempts over its \
        budget; how many, of which kinds, which container",
    id: "detector-overloaded",
    severity: Severity::High,
    mitre: "T1562.001",
    title: "Kernel events were lost: the detector was overloaded",
    explanation: "The kernel could not hand some events to escapewatch: its ring buffers were \
        full (processes created events faster than the agent read them; `lost` per kind), or \
        one container made cheap attempts — failed opens, refused namespace calls — so fast \
        that the kernel counted them without sending them (`budgeted` per kind). Attempts have \
        their own buffer and a budget per container, so a flood costs no other container's \
        events; namespace and escape-primitive successes have their own buffer and are the \
        last to be lost. Escapes performed in a lossy window may have gone unseen. A container \
        that forks or execs at a very high rate is the usual cause of loss, and flooding the \
        detector is a known way to blind it before an escape. Check the container named in \
        `top_container`, what it runs and whether that rate is expected; raise `ring_buffers` \
        sizes in the config if the load is legitimate, or allowlist the container for this rule.",
    inputs: &[Input::LossReport],
    fixtures: Fixtures::Recorded(&["overload", "flood-open", "flood-ns"]),
    agent_warning: true,
    ..RuleInfo::BASE
};

/// Time between two alerts naming the same container (or none); losses in between are added
/// to the next one. Another container's overload is alerted at once: one flood's cooldown
/// never hides the next.
pub const COOLDOWN_NS: u64 = 60_000_000_000;
/// Containers whose last alert time is kept (the oldest is forgotten beyond that).
const COOLDOWN_KEYS: usize = 4096;
/// Without losses, the container counts start afresh after this long (the daemon's tick).
const QUIET_INTERVAL_NS: u64 = 1_000_000_000;
/// Containers counted per interval; beyond that, events count as "other".
const CONTAINER_LIMIT: usize = 4096;

/// What an alert reports: records lost (ring buffers full) or a container's budget flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cause {
    Loss,
    Flood,
}

/// Decides when losses deserve an alert and what it says.
#[derive(Debug, Default)]
pub struct OverloadDetector {
    /// Losses not yet reported, by kind name, and the `events_lost` events that carried them.
    pending: BTreeMap<String, u64>,
    pending_ids: Vec<u64>,
    /// The process that reported the losses (the agent).
    reporter: Option<AlertProcess>,
    /// Last alert time by the container it named (`None`: no container stood out).
    /// Per cause: a container's lost-records alert does not hold back its flood alert, they
    /// say different things; each repeats at most once per cooldown.
    last_alert_ns: BTreeMap<(Cause, Option<Container>), u64>,
    /// Start of the interval the container counts cover.
    interval_start_ns: Option<u64>,
    per_container: BTreeMap<Container, u64>,
    /// The container with most events in the interval (ties: the smaller container), kept as
    /// counts grow so that no event pays for a scan.
    top: Option<(Container, u64)>,
    events: u64,
    /// Attempt records the kernel budgeted, by container (floods.rs).
    floods: Floods,
    /// When a flood held back by its container's cooldown can be alerted.
    flood_recheck_ns: Option<u64>,
}

impl OverloadDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one event that reached userspace.
    fn observe(&mut self, event: &Event) {
        let start = *self.interval_start_ns.get_or_insert(event.ktime_ns);
        if self.pending.is_empty() && event.ktime_ns.saturating_sub(start) > QUIET_INTERVAL_NS {
            self.reset_interval(event.ktime_ns);
        }
        self.events += 1;
        let Some(c) = &event.container else {
            return;
        };
        let n = if let Some(n) = self.per_container.get_mut(c) {
            *n += 1;
            *n
        } else if self.per_container.len() < CONTAINER_LIMIT {
            self.per_container.insert(c.clone(), 1);
            1
        } else {
            return;
        };
        let leads = match &self.top {
            None => true,
            Some((t, tn)) => n > *tn || (n == *tn && c < t),
        };
        if leads {
            self.top = Some((c.clone(), n));
        }
    }

    fn reset_interval(&mut self, now_ns: u64) {
        self.per_container.clear();
        self.top = None;
        self.events = 0;
        self.interval_start_ns = Some(now_ns);
    }

    fn alert(&self, e: &Event) -> Alert {
        let now_ns = e.ktime_ns;
        let lost_total: u64 = self.pending.values().sum();
        // Most events first; ties broken by the container's order, so the choice is stable.
        let top = self.top.as_ref().map(|(c, n)| (c, n));
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
        // The events that carried the loss counts (the lost events themselves never came).
        let ids = self.pending_ids.clone();
        self.build(e, top.map(|(c, _)| c), summary, details, ids)
    }

    /// The alert at `e` naming `container`, reported by the agent.
    fn build(
        &self,
        e: &Event,
        container: Option<&Container>,
        summary: String,
        details: serde_json::Value,
        event_ids: Vec<u64>,
    ) -> Alert {
        Alert {
            id: String::new(),
            time: e.time.clone(),
            rule: INFO.id.to_owned(),
            severity: INFO.severity,
            summary,
            mitre: INFO.mitre.to_owned(),
            node: None,
            container: container.map(|c| {
                let mut a = AlertContainer::from_container(c);
                if let Some(w) = e.workload.as_ref().filter(|w| w.container_id == c.id) {
                    a.add_workload(w);
                }
                a
            }),
            process: self
                .reporter
                .clone()
                .unwrap_or_else(|| AlertProcess::from_event(e)),
            details,
            event_ids,
            explanation: INFO.explanation.to_owned(),
            coalesced: None,
        }
    }
}

impl OverloadDetector {
    fn in_cooldown(&self, cause: Cause, key: &Option<Container>, now_ns: u64) -> bool {
        self.last_alert_ns
            .get(&(cause, key.clone()))
            .is_some_and(|t| now_ns.saturating_sub(*t) < COOLDOWN_NS)
    }

    /// Start `key`'s cooldown at `now_ns`.
    fn note_alert(&mut self, cause: Cause, key: Option<Container>, now_ns: u64) {
        let key = (cause, key);
        if self.last_alert_ns.len() >= COOLDOWN_KEYS && !self.last_alert_ns.contains_key(&key) {
            // The one alerted longest ago; its next overload simply alerts again.
            if let Some(oldest) = self
                .last_alert_ns
                .iter()
                .min_by_key(|(k, t)| (**t, (*k).clone()))
                .map(|(k, _)| k.clone())
            {
                self.last_alert_ns.remove(&oldest);
            }
        }
        self.last_alert_ns.insert(key, now_ns);
    }

    /// Alert the budget floods whose container is out of its cooldown at `e`; note when the
    /// others can be alerted.
    fn release_floods(&mut self, e: &Event, out: &mut Vec<Alert>) {
        let ready: Vec<Option<Container>> = self
            .floods
            .flooding()
            .filter(|c| !self.in_cooldown(Cause::Flood, c, e.ktime_ns))
            .cloned()
            .collect();
        for c in ready {
            if let Some(p) = self.floods.take(&c) {
                out.push(self.flood_alert(e, c.as_ref(), &p));
                self.note_alert(Cause::Flood, c, e.ktime_ns);
            }
        }
        self.flood_recheck_ns = self
            .floods
            .flooding()
            .filter_map(|c| {
                self.last_alert_ns
                    .get(&(Cause::Flood, c.clone()))
                    .map(|t| t + COOLDOWN_NS)
            })
            .min();
    }

    fn flood_alert(&self, e: &Event, c: Option<&Container>, p: &Pending) -> Alert {
        let total = p.total();
        let kinds: Vec<String> = p
            .suppressed
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        let interval_s = e.ktime_ns.saturating_sub(p.since_ns) as f64 / 1e9;
        let who = c.map_or_else(
            || "containers the kernel could not attribute (budget entries evicted)".to_owned(),
            |c| format!("{} container {}", c.runtime.as_str(), c.id),
        );
        let summary = format!(
            "{who} flooded escapewatch with cheap attempts: {total} records over its \
             per-container budget ({}) were counted but not sent. Other containers' events \
             kept their room; this container's own attempts in this window are known only by \
             their count.",
            kinds.join(", ")
        );
        let details = json!({
            "budgeted": p.suppressed,
            "budgeted_total": total,
            "lost": {},
            "lost_total": 0,
            "interval_seconds": (interval_s * 1000.0).round() / 1000.0,
            "top_container": c.map(|c| json!({
                "id": c.id,
                "runtime": c.runtime,
                "budgeted": total,
            })),
        });
        self.build(e, c, summary, details, p.ids.clone())
    }
}

impl Rule for OverloadDetector {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn process(&mut self, e: &Event, out: &mut Vec<Alert>) {
        if let Payload::EventsBudgeted { suppressed } = &e.data {
            self.reporter = Some(AlertProcess::from_event(e));
            if self.floods.add(&e.container, suppressed, e.id, e.ktime_ns) {
                self.release_floods(e, out);
            }
        } else if self.flood_recheck_ns.is_some_and(|t| e.ktime_ns >= t) {
            self.release_floods(e, out);
        }
        if let Payload::EventsLost { lost } = &e.data {
            for (kind, n) in lost {
                *self.pending.entry(kind.clone()).or_default() += n;
            }
            self.pending_ids.push(e.id);
            self.reporter = Some(AlertProcess::from_event(e));
        } else if !matches!(e.data, Payload::EventsBudgeted { .. }) {
            self.observe(e);
        }
        if self.pending.is_empty() {
            return;
        }
        let key = self.top.as_ref().map(|(c, _)| c.clone());
        if self.in_cooldown(Cause::Loss, &key, e.ktime_ns) {
            return;
        }
        out.push(self.alert(e));
        self.note_alert(Cause::Loss, key, e.ktime_ns);
        self.pending.clear();
        self.pending_ids.clear();
        self.reset_interval(e.ktime_ns);
    }
}

impl Declared for OverloadDetector {
    const INFO: &'static RuleInfo = &INFO;

    #[cfg(test)]
    fn examples() -> Vec<super::rules::examples::Example> {
        use super::rules::examples::{CONTAINER, Example, in_container, on_host};
        let busy = || in_container("true", Payload::ProcessExit { exit_code: 0 });
        let report = |pairs: &[(&str, u64)]| {
            let mut e = on_host(
                "escapewatch",
                Payload::EventsLost {
                    lost: pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
                },
            );
            e.process.pid = 10;
            e
        };
        let budgeted = |pairs: &[(&str, u64)]| {
            let mut e = on_host(
                "escapewatch",
                Payload::EventsBudgeted {
                    suppressed: pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
                },
            );
            e.container = busy().container;
            e
        };
        vec![
            Example::alert(
                "a fork storm's losses",
                vec![
                    busy(),
                    busy(),
                    report(&[("process_fork", 5), ("process_exit", 2)]),
                ],
                |a| {
                    assert_eq!(a.details["lost_total"], 7);
                    assert_eq!(a.details["lost"]["process_fork"], 5);
                    assert_eq!(a.details["top_container"]["id"], CONTAINER);
                    assert_eq!(a.details["top_container"]["events"], 2);
                    assert_eq!(a.process.pid, 10);
                    assert_eq!(a.event_ids, vec![3]);
                },
            ),
            Example::silent(
                "a busy container without loss",
                vec![busy(), busy(), busy()],
            ),
            Example::alert(
                "a container's flood of failed opens over its budget",
                vec![
                    busy(),
                    budgeted(&[("file_open", 7_000)]),
                    budgeted(&[("file_open", 5_000)]),
                ],
                |a| {
                    assert_eq!(a.details["budgeted"]["file_open"], 12_000);
                    assert_eq!(a.details["top_container"]["id"], CONTAINER);
                    assert_eq!(a.event_ids, vec![2, 3]);
                },
            ),
            Example::silent(
                "find / as an unprivileged user: a burst of EACCES over the budget",
                vec![busy(), budgeted(&[("file_open", 3_000)]), busy()],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Runtime,
        testing::{container_process, setns_event},
    };

    fn lost(id: u64, ktime_ns: u64, pairs: &[(&str, u64)]) -> Event {
        let mut e = setns_event(container_process(), 0, vec![]);
        e.id = id;
        e.ktime_ns = ktime_ns;
        e.time = format!("T{id}");
        e.container = None;
        e.process.pid = 10;
        e.process.comm = "escapewatch".into();
        e.data = Payload::EventsLost {
            lost: pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
        };
        e
    }

    fn budgeted(id: u64, ktime_ns: u64, c: Option<&Container>, pairs: &[(&str, u64)]) -> Event {
        let mut e = lost(id, ktime_ns, &[]);
        e.container = c.cloned();
        e.data = Payload::EventsBudgeted {
            suppressed: pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
        };
        e
    }

    fn container(ch: char) -> Container {
        Container {
            id: ch.to_string().repeat(64),
            runtime: Runtime::Containerd,
            pod_uid: None,
        }
    }

    #[test]
    fn a_budget_flood_is_alerted_naming_the_container() {
        let mut d = OverloadDetector::new();
        let a = container('a');
        let s = 1_000_000_000;
        // Seen events of another container do not decide who is named: the report does.
        let mut other = setns_event(container_process(), 0, vec![]);
        other.container = Some(container('b'));
        for _ in 0..5 {
            assert!(run(&mut d, &other).is_empty());
        }
        assert!(run(&mut d, &budgeted(1, s, Some(&a), &[("file_open", 6_000)])).is_empty());
        let alert = run(
            &mut d,
            &budgeted(
                2,
                2 * s,
                Some(&a),
                &[("file_open", 3_000), ("setns", 1_000)],
            ),
        )
        .pop()
        .expect("a flood of 10,000 over budget within 10 s");
        assert_eq!(alert.rule, "detector-overloaded");
        assert_eq!(alert.container.as_ref().unwrap().id, a.id);
        assert_eq!(alert.details["top_container"]["id"], a.id.as_str());
        assert_eq!(alert.details["top_container"]["budgeted"], 10_000);
        assert_eq!(alert.details["budgeted"]["file_open"], 9_000);
        assert_eq!(alert.details["budgeted"]["setns"], 1_000);
        assert_eq!(alert.details["budgeted_total"], 10_000);
        assert_eq!(alert.details["lost_total"], 0);
        assert_eq!(alert.details["interval_seconds"], 1.0);
        assert_eq!(alert.event_ids, vec![1, 2]);
        assert_eq!(alert.process.comm, "escapewatch");
        assert!(alert.summary.contains(&a.id), "{}", alert.summary);
        // The flood goes on within the cooldown: counted into the next alert, released by
        // the first event after the cooldown.
        assert!(
            run(
                &mut d,
                &budgeted(3, 3 * s, Some(&a), &[("file_open", 20_000)])
            )
            .is_empty()
        );
        let mut later = other.clone();
        later.ktime_ns = 2 * s + COOLDOWN_NS - 1;
        assert!(run(&mut d, &later).is_empty());
        later.ktime_ns = 2 * s + COOLDOWN_NS;
        let next = run(&mut d, &later)
            .pop()
            .expect("the repeats, after the cooldown");
        assert_eq!(next.details["budgeted"]["file_open"], 20_000);
        assert_eq!(next.event_ids, vec![3]);
        assert_eq!(next.container.unwrap().id, a.id);
    }

    #[test]
    fn a_containers_loss_alert_does_not_hold_back_its_flood_alert() {
        let mut d = OverloadDetector::new();
        let busy = setns_event(container_process(), 0, vec![]);
        let a = busy.container.clone().expect("container");
        run(&mut d, &busy);
        let loss = run(&mut d, &lost(2, busy.ktime_ns + 1, &[("process_fork", 9)]))
            .pop()
            .expect("its start overflowed the lifecycle buffer");
        assert_eq!(loss.container.as_ref().unwrap().id, a.id);
        let t = busy.ktime_ns + 2;
        let flood = run(&mut d, &budgeted(3, t, Some(&a), &[("file_open", 12_000)]))
            .pop()
            .expect("the flood is another cause: alerted at once");
        assert_eq!(flood.details["budgeted_total"], 12_000);
        // Its next loss is still within the loss cooldown.
        let mut again = busy.clone();
        again.ktime_ns = t + 1;
        run(&mut d, &again);
        assert!(run(&mut d, &lost(4, t + 2, &[("process_fork", 1)])).is_empty());
    }

    #[test]
    fn a_burst_over_budget_below_the_flood_rate_is_silent() {
        let mut d = OverloadDetector::new();
        let a = container('a');
        let s = 1_000_000_000;
        // A find over a tree with thousands of unreadable directories, twice, 20 s apart.
        assert!(run(&mut d, &budgeted(1, s, Some(&a), &[("file_open", 4_000)])).is_empty());
        assert!(
            run(
                &mut d,
                &budgeted(2, 2 * s, Some(&a), &[("file_open", 4_000)])
            )
            .is_empty()
        );
        assert!(
            run(
                &mut d,
                &budgeted(3, 22 * s, Some(&a), &[("file_open", 4_000)])
            )
            .is_empty()
        );
        assert!(
            run(
                &mut d,
                &budgeted(4, 23 * s, Some(&a), &[("file_open", 1_000)])
            )
            .is_empty()
        );
    }

    #[test]
    fn a_flood_during_another_containers_cooldown_is_alerted_at_once() {
        let mut d = OverloadDetector::new();
        let first = setns_event(container_process(), 0, vec![]);
        run(&mut d, &first);
        let loss = run(&mut d, &lost(2, first.ktime_ns + 1, &[("process_fork", 4)]))
            .pop()
            .expect("first overload");
        assert_eq!(loss.details["top_container"]["id"], "a".repeat(64));
        // 20 s later container c floods with refused namespace calls; so does one the kernel
        // could not attribute.
        let c = container('c');
        let t = first.ktime_ns + 20_000_000_000;
        let flood = run(&mut d, &budgeted(5, t, Some(&c), &[("setns", 50_000)]))
            .pop()
            .expect("not hidden by container a's cooldown");
        assert_eq!(flood.details["top_container"]["id"], c.id.as_str());
        assert_eq!(flood.details["budgeted"]["setns"], 50_000);
        let anon = run(&mut d, &budgeted(6, t + 1, None, &[("file_open", 10_000)]))
            .pop()
            .expect("unattributed floods are alerted too");
        assert!(anon.container.is_none());
        assert_eq!(anon.details["top_container"], serde_json::Value::Null);
        assert_eq!(anon.details["budgeted_total"], 10_000);
    }

    fn run(d: &mut OverloadDetector, e: &Event) -> Vec<Alert> {
        let mut out = Vec::new();
        d.process(e, &mut out);
        out
    }

    #[test]
    fn no_loss_no_alert() {
        let mut d = OverloadDetector::new();
        let e = setns_event(container_process(), 0, vec![]);
        assert!(run(&mut d, &e).is_empty());
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
            assert!(run(&mut d, &busy).is_empty());
        }
        assert!(run(&mut d, &quiet).is_empty());
        let report = lost(
            99,
            busy.ktime_ns + 500_000_000,
            &[("process_exec", 7), ("process_fork", 5)],
        );
        let a = run(&mut d, &report).pop().expect("alert");
        assert_eq!(a.rule, "detector-overloaded");
        assert_eq!(a.severity, Severity::High);
        assert_eq!(a.time, "T99");
        assert_eq!(a.details["lost_total"], 12);
        assert_eq!(a.details["lost"]["process_exec"], 7);
        assert_eq!(a.details["top_container"]["id"], "a".repeat(64));
        assert_eq!(a.details["top_container"]["events"], 3);
        assert_eq!(a.details["events_seen"], 4);
        assert_eq!(a.details["interval_seconds"], 0.5);
        assert_eq!(a.container.unwrap().runtime, Runtime::Docker);
        assert_eq!(a.process.pid, 10);
        assert_eq!(a.process.comm, "escapewatch");
        assert!(a.summary.contains("lost 12"), "{}", a.summary);
        assert_eq!(a.event_ids, vec![99]);
    }

    #[test]
    fn losses_during_cooldown_are_reported_together_afterwards() {
        let mut d = OverloadDetector::new();
        let s = 1_000_000_000;
        assert_eq!(run(&mut d, &lost(1, s, &[("process_fork", 1)])).len(), 1);
        assert!(run(&mut d, &lost(2, 2 * s, &[("process_fork", 3)])).is_empty());
        assert!(run(&mut d, &lost(3, 3 * s, &[("process_fork", 6)])).is_empty());
        // The first event after the cooldown, whatever it is, releases the pending losses.
        let mut later = setns_event(container_process(), 0, vec![]);
        later.ktime_ns = s + COOLDOWN_NS;
        let a = run(&mut d, &later)
            .pop()
            .expect("pending losses after the cooldown");
        assert_eq!(a.details["lost"]["process_fork"], 9);
        assert_eq!(a.event_ids, vec![2, 3]);
        assert_eq!(a.process.comm, "escapewatch");
        // Nothing new: quiet again.
        later.ktime_ns = 3 * COOLDOWN_NS;
        assert!(run(&mut d, &later).is_empty());
    }

    #[test]
    fn another_containers_overload_within_the_cooldown_is_alerted_at_once() {
        let mut d = OverloadDetector::new();
        let first = setns_event(container_process(), 0, vec![]);
        assert!(run(&mut d, &first).is_empty());
        let a = run(&mut d, &lost(2, first.ktime_ns + 1, &[("process_fork", 4)]))
            .pop()
            .expect("first overload");
        assert_eq!(a.details["top_container"]["id"], "a".repeat(64));
        // 30 s later a second container floods.
        let mut flood = first.clone();
        flood.container = Some(Container {
            id: "b".repeat(64),
            runtime: Runtime::Containerd,
            pod_uid: None,
        });
        let t = first.ktime_ns + 30_000_000_000;
        for i in 0..3 {
            flood.ktime_ns = t + i;
            assert!(run(&mut d, &flood).is_empty());
        }
        let b = run(&mut d, &lost(9, t + 10, &[("file_open", 7)]))
            .pop()
            .expect("the second container's overload is not hidden by the first's cooldown");
        assert_eq!(b.details["top_container"]["id"], "b".repeat(64));
        assert_eq!(b.details["lost"]["file_open"], 7);
        // The first container again within its cooldown: counted into its next alert.
        let mut again = first.clone();
        again.ktime_ns = t + 20;
        run(&mut d, &again);
        assert!(run(&mut d, &lost(11, t + 21, &[("process_exec", 1)])).is_empty());
        again.ktime_ns = first.ktime_ns + 1 + COOLDOWN_NS;
        let later = run(&mut d, &again)
            .pop()
            .expect("pending losses after the cooldown");
        assert_eq!(later.details["lost"]["process_exec"], 1);
        assert_eq!(later.event_ids, vec![11]);
    }

    #[test]
    fn container_counts_start_afresh_after_a_quiet_interval() {
        let mut d = OverloadDetector::new();
        let mut old = setns_event(container_process(), 0, vec![]);
        old.ktime_ns = 1_000;
        run(&mut d, &old);
        let mut recent = old.clone();
        recent.container = Some(Container {
            id: "c".repeat(64),
            runtime: Runtime::CriO,
            pod_uid: None,
        });
        recent.ktime_ns = 5 * QUIET_INTERVAL_NS;
        run(&mut d, &recent);
        let a = run(
            &mut d,
            &lost(7, recent.ktime_ns + 1, &[("process_exit", 2)]),
        )
        .pop()
        .expect("alert");
        assert_eq!(a.details["top_container"]["id"], "c".repeat(64));
        assert_eq!(a.details["events_seen"], 1);
    }
}
