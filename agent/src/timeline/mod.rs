//! `escapewatch timeline`: what happened around an alert, for a person to read.
//!
//! Two passes over the logs, each replaying them (the same engine and session rules as
//! `replay`). The first finds the anchors the query names; the second keeps the events of the
//! subject (a container, or the process tree of an alerted host process) inside the time
//! window, the process ancestry around them, and the alerts citing them. At most
//! `max_events` events, anchors and other alerts are held (the rest is counted and reported),
//! so a large log costs time, not memory. Everything shown in text form goes through
//! `sink::one_line` (controls and bidi overrides escaped). Event kinds are handled by their name and
//! their JSON, never by matching the payload enum, so new kinds show up without changes here.

mod describe;
pub mod html;
mod spool;
pub mod text;
mod tree;

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    path::PathBuf,
};

use spool::Spool;

use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

pub use describe::{describe, exit_status};
pub use tree::TreeNode;

use crate::{
    detect::{Alert, Engine},
    model::Event,
    replay::{Record, ReplayError, Sessions, container_matches},
};

#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error(transparent)]
    Log(#[from] ReplayError),
    #[error(
        "say what to show: --container ID, --alert-event-ids N[,N...] or --rule ID (or several)"
    )]
    NoSubject,
    #[error("no alert in these logs cites event id(s) {ids:?}{rule_note}")]
    NoSuchAlert { ids: Vec<u64>, rule_note: String },
    #[error("no alert of rule(s) {rules:?} in these logs")]
    NoSuchRule { rules: Vec<String> },
    #[error("cannot keep standard input for the second pass in {path}")]
    Spool {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What to show.
#[derive(Debug, Clone)]
pub struct TimelineQuery {
    /// Container ids (or prefixes, or `host`) whose events are shown.
    pub containers: Vec<String>,
    /// Alerts citing any of these event ids are the anchors.
    pub alert_event_ids: Vec<u64>,
    /// Alerts of these rules are the anchors.
    pub rules: Vec<String>,
    /// Window around the anchors.
    pub before: Duration,
    pub after: Duration,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// At most this many events are kept, and at most this many anchors and this many other
    /// alerts (the rest is counted: `omitted`, `alerts_omitted`). Bounds the memory.
    pub max_events: usize,
    pub strict: bool,
}

impl Default for TimelineQuery {
    fn default() -> Self {
        TimelineQuery {
            containers: Vec::new(),
            alert_event_ids: Vec::new(),
            rules: Vec::new(),
            before: Duration::minutes(5),
            after: Duration::minutes(1),
            since: None,
            until: None,
            max_events: 20_000,
            strict: false,
        }
    }
}

/// An alert on the timeline.
#[derive(Debug, Clone)]
pub struct TimelineAlert {
    pub alert: Alert,
    /// Agent session (1-based) whose event ids it cites.
    pub session: u64,
    /// Named by the query (rather than merely in view).
    pub anchor: bool,
}

/// One event row.
#[derive(Debug, Clone)]
pub struct Row {
    pub session: u64,
    pub id: u64,
    pub time: String,
    /// Seconds from the first anchor (or from the first row when there is none).
    pub offset_s: f64,
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub exe: String,
    pub container: Option<String>,
    pub kind: String,
    pub details: String,
    /// Indices into `Timeline::alerts` of the alerts citing this event.
    pub alerts: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Timeline {
    /// What the timeline is of, in words.
    pub subject: String,
    pub hosts: Vec<String>,
    pub window: (Option<String>, Option<String>),
    pub alerts: Vec<TimelineAlert>,
    pub rows: Vec<Row>,
    pub tree: Vec<TreeNode>,
    pub events_read: u64,
    /// Selected events beyond `max_events`, not kept.
    pub omitted: u64,
    /// Alerts beyond `max_events` (of the anchors, or of the alerts citing shown events),
    /// not kept.
    pub alerts_omitted: u64,
    pub warnings: u64,
}

impl Timeline {
    /// What `max_events` left out, for headers; empty when nothing was.
    pub fn omitted_note(&self) -> String {
        let mut parts = Vec::new();
        if self.omitted > 0 {
            parts.push(format!(
                "{} more not shown: narrow the window",
                self.omitted
            ));
        }
        if self.alerts_omitted > 0 {
            parts.push(format!(
                "{} more alert(s) not kept: narrow the query or raise --max-events",
                self.alerts_omitted
            ));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join("; "))
        }
    }

    /// The time window shown, for headers: "whole log" or "<from> … <to>".
    pub fn window_label(&self) -> String {
        match &self.window {
            (None, None) => "whole log".to_owned(),
            (f, t) => format!(
                "{} … {}",
                f.as_deref().map_or("start".into(), crate::sink::short_time),
                t.as_deref().map_or("end".into(), crate::sink::short_time)
            ),
        }
    }
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A process in one session: (session, pid, start time).
type ProcKey = (u64, u32, u64);

fn key(session: u64, e: &Event) -> ProcKey {
    (session, e.process.pid, e.process.start_time)
}

/// What the first pass found: the anchors (at most `max_events` of them kept) and what the
/// subject and window are derived from (over every anchor, kept or not).
struct Found {
    /// (alert ordinal in the replay, session, alert, process key) of the kept anchors.
    anchors: Vec<(u64, u64, Alert, ProcKey)>,
    anchors_omitted: u64,
    anchor_span: Option<(OffsetDateTime, OffsetDateTime)>,
    containers: BTreeSet<String>,
    host_roots: BTreeSet<ProcKey>,
    hosts: BTreeSet<String>,
}

fn is_anchor(q: &TimelineQuery, a: &Alert) -> bool {
    let in_containers = q.containers.is_empty()
        || q.containers
            .iter()
            .any(|c| container_matches(c, a.container.as_ref().map(|c| c.id.as_str())));
    (q.alert_event_ids.is_empty() || a.event_ids.iter().any(|id| q.alert_event_ids.contains(id)))
        && (q.rules.is_empty() || q.rules.contains(&a.rule))
        && in_containers
}

fn first_pass(spool: &Spool, q: &TimelineQuery) -> Result<Found, TimelineError> {
    let new_engine: &dyn Fn() -> Engine = &Engine::new;
    let mut sessions = Sessions::new(new_engine);
    let mut session = 0u64;
    let mut ordinal = 0u64;
    let mut found = Found {
        anchors: Vec::new(),
        anchors_omitted: 0,
        anchor_span: None,
        containers: BTreeSet::new(),
        host_roots: BTreeSet::new(),
        hosts: BTreeSet::new(),
    };
    let mut stream = spool.stream(q.strict)?;
    while let Some(record) = stream.next_record() {
        match record? {
            Record::Header(h) => {
                found.hosts.insert(h.hostname.clone());
                if sessions.header(h) {
                    session += 1;
                }
            }
            Record::Event(e) => {
                for alert in sessions.engine.process(&e).alerts {
                    ordinal += 1;
                    if !is_anchor(q, &alert) {
                        continue;
                    }
                    if let Some(t) = parse_time(&alert.time) {
                        found.anchor_span = Some(match found.anchor_span {
                            None => (t, t),
                            Some((lo, hi)) => (lo.min(t), hi.max(t)),
                        });
                    }
                    match &alert.container {
                        Some(c) => drop(found.containers.insert(c.id.clone())),
                        None => drop(found.host_roots.insert(key(session, &e))),
                    }
                    if found.anchors.len() < q.max_events {
                        found
                            .anchors
                            .push((ordinal, session, alert, key(session, &e)));
                    } else {
                        found.anchors_omitted += 1;
                    }
                }
            }
        }
    }
    Ok(found)
}

/// Build the timeline `q` asks for. `-` (stdin) is kept in an unnamed temp file for the
/// second pass.
pub fn build(paths: &[PathBuf], q: &TimelineQuery) -> Result<Timeline, TimelineError> {
    build_with_stdin(paths, q, &mut io::stdin().lock())
}

/// [`build`], with `stdin` read for `-`.
pub fn build_with_stdin(
    paths: &[PathBuf],
    q: &TimelineQuery,
    stdin: &mut dyn io::Read,
) -> Result<Timeline, TimelineError> {
    if q.containers.is_empty() && q.alert_event_ids.is_empty() && q.rules.is_empty() {
        return Err(TimelineError::NoSubject);
    }
    let spool = Spool::new(paths, stdin)?;
    let found = first_pass(&spool, q)?;

    // Anchors: the alerts the query names, within the containers if those are given too.
    let by_ids = !q.alert_event_ids.is_empty();
    let by_rule = !q.rules.is_empty();
    let no_anchor = found.anchors.is_empty() && found.anchors_omitted == 0;
    if no_anchor && by_ids {
        let rule_note = if by_rule {
            format!(" with rule(s) {:?}", q.rules)
        } else {
            String::new()
        };
        return Err(TimelineError::NoSuchAlert {
            ids: q.alert_event_ids.clone(),
            rule_note,
        });
    }
    if no_anchor && by_rule && q.containers.is_empty() {
        return Err(TimelineError::NoSuchRule {
            rules: q.rules.clone(),
        });
    }

    // Subject: the containers given, else the anchors' containers and host processes.
    let (containers, host_roots) = if q.containers.is_empty() {
        (found.containers.clone(), found.host_roots.clone())
    } else {
        (q.containers.iter().cloned().collect(), BTreeSet::new())
    };

    // Window: around the anchors when the query named alerts; since/until narrow it. A
    // window reaching past the dates time can represent (year 9999) is open on that side.
    let (mut from, mut to) = (None, None);
    if by_ids || by_rule {
        from = found
            .anchor_span
            .and_then(|(lo, _)| lo.checked_sub(q.before));
        to = found
            .anchor_span
            .and_then(|(_, hi)| hi.checked_add(q.after));
    }
    if let Some(s) = q.since {
        from = Some(from.map_or(s, |f: OffsetDateTime| f.max(s)));
    }
    if let Some(u) = q.until {
        to = Some(to.map_or(u, |t: OffsetDateTime| t.min(u)));
    }
    let origin = found.anchor_span.map(|(lo, _)| lo);

    let subject = Subject {
        containers,
        host_roots,
        from,
        to,
    };
    let mut tl = second_pass(&spool, q, &subject, &found, origin)?;
    tl.alerts_omitted += found.anchors_omitted;
    tl.hosts = found.hosts.into_iter().collect();
    tl.window = (from.map(rfc3339), to.map(rfc3339));
    Ok(tl)
}

struct Subject {
    containers: BTreeSet<String>,
    host_roots: BTreeSet<ProcKey>,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
}

impl Subject {
    fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .containers
            .iter()
            .map(|c| format!("container {c}"))
            .collect();
        for (_, pid, _) in &self.host_roots {
            parts.push(format!("host process {pid} and its descendants"));
        }
        parts.join(", ")
    }

    fn shows(&self, session: u64, e: &Event, procs: &tree::ProcessTable) -> bool {
        let in_container = e.container.as_ref().is_some_and(|c| {
            self.containers
                .iter()
                .any(|want| container_matches(want, Some(&c.id)))
        }) || (e.container.is_none() && self.containers.contains("host"));
        let in_tree =
            !self.host_roots.is_empty() && procs.descends_from(session, e, &self.host_roots);
        let t = parse_time(&e.time);
        let after_from = match (t, self.from) {
            (Some(t), Some(from)) => t >= from,
            _ => true,
        };
        let before_to = match (t, self.to) {
            (Some(t), Some(to)) => t <= to,
            _ => true,
        };
        (in_container || in_tree) && after_from && before_to
    }
}

/// The second pass replays again (the engine is deterministic: its n-th alert is the first
/// pass's n-th) and keeps the rows; an alert not among the anchors is kept when it cites a
/// row, at most `max_events` of them. Neither pass holds every alert of the log.
fn second_pass(
    spool: &Spool,
    q: &TimelineQuery,
    subject: &Subject,
    found: &Found,
    origin: Option<OffsetDateTime>,
) -> Result<Timeline, TimelineError> {
    let mut tl = Timeline {
        subject: subject.describe(),
        hosts: Vec::new(),
        window: (None, None),
        alerts: Vec::new(),
        rows: Vec::new(),
        tree: Vec::new(),
        events_read: 0,
        omitted: 0,
        alerts_omitted: 0,
        warnings: 0,
    };
    // Alert ordinal → index in `tl.alerts`.
    let mut shown_alerts: BTreeMap<u64, usize> = BTreeMap::new();
    for (ordinal, session, alert, _) in &found.anchors {
        shown_alerts.insert(*ordinal, tl.alerts.len());
        tl.alerts.push(TimelineAlert {
            alert: alert.clone(),
            session: *session,
            anchor: true,
        });
    }
    let mut context_alerts = 0usize;
    // (session, event id) of each row → (row index, process key).
    let mut rows_by_event: BTreeMap<(u64, u64), (usize, ProcKey)> = BTreeMap::new();
    let mut procs = tree::ProcessTable::default();
    let mut origin = origin;
    let mut sessions = Sessions::new(&Engine::new);
    let mut session = 0u64;
    let mut ordinal = 0u64;
    let mut stream = spool.stream(q.strict)?;
    while let Some(record) = stream.next_record() {
        let e = match record? {
            Record::Header(h) => {
                if sessions.header(h) {
                    session += 1;
                }
                continue;
            }
            Record::Event(e) => e,
        };
        tl.events_read += 1;
        procs.observe(session, &e);
        if subject.shows(session, &e, &procs) {
            if tl.rows.len() < q.max_events {
                procs.select(session, &e);
                let t = parse_time(&e.time).unwrap_or(OffsetDateTime::UNIX_EPOCH);
                let origin = *origin.get_or_insert(t);
                rows_by_event.insert((session, e.id), (tl.rows.len(), key(session, &e)));
                tl.rows.push(Row {
                    session,
                    id: e.id,
                    time: e.time.clone(),
                    offset_s: (t - origin).as_seconds_f64(),
                    pid: e.process.pid,
                    ppid: e.process.ppid,
                    comm: e.process.comm.clone(),
                    exe: e.process.exe.clone(),
                    container: e.container.as_ref().map(|c| c.id.clone()),
                    kind: e.kind_name().to_owned(),
                    details: describe(&e),
                    alerts: Vec::new(),
                });
            } else {
                tl.omitted += 1;
            }
        }
        // An alert cites this event or earlier ones, so its rows are already there.
        for alert in sessions.engine.process(&e).alerts {
            ordinal += 1;
            let rows: Vec<(usize, ProcKey)> = alert
                .event_ids
                .iter()
                .filter_map(|id| rows_by_event.get(&(session, *id)).copied())
                .collect();
            if rows.is_empty() {
                continue;
            }
            let idx = match shown_alerts.get(&ordinal) {
                Some(&i) => i,
                None if context_alerts < q.max_events => {
                    context_alerts += 1;
                    tl.alerts.push(TimelineAlert {
                        alert: alert.clone(),
                        session,
                        anchor: false,
                    });
                    shown_alerts.insert(ordinal, tl.alerts.len() - 1);
                    tl.alerts.len() - 1
                }
                None => {
                    tl.alerts_omitted += 1;
                    continue;
                }
            };
            for (row, proc_key) in rows {
                if !tl.rows[row].alerts.contains(&idx) {
                    tl.rows[row].alerts.push(idx);
                }
                procs.mark_alert(proc_key, &alert.rule);
            }
        }
    }
    order_context_alerts(&mut tl, found.anchors.len());
    tl.warnings = stream.stats.warnings;
    tl.tree = procs.into_tree();
    Ok(tl)
}

/// Number the alerts that are not anchors by the first row citing them (the order they are
/// met reading the events), as a reader expects, not by when the engine raised them.
fn order_context_alerts(tl: &mut Timeline, anchors: usize) {
    let mut first_row: BTreeMap<usize, usize> = BTreeMap::new();
    for (r, row) in tl.rows.iter_mut().enumerate() {
        row.alerts.sort_unstable();
        for &a in &row.alerts {
            first_row.entry(a).or_insert(r);
        }
    }
    let mut context: Vec<usize> = (anchors..tl.alerts.len()).collect();
    context.sort_by_key(|a| (first_row.get(a).copied(), *a));
    let mut new_index = vec![0usize; tl.alerts.len()];
    for (i, slot) in new_index.iter_mut().enumerate().take(anchors) {
        *slot = i;
    }
    for (pos, &old) in context.iter().enumerate() {
        new_index[old] = anchors + pos;
    }
    let mut alerts: Vec<Option<TimelineAlert>> = tl.alerts.drain(..).map(Some).collect();
    let mut ordered = Vec::with_capacity(alerts.len());
    for old in (0..anchors).chain(context.iter().copied()) {
        ordered.push(alerts[old].take().expect("each alert placed once"));
    }
    tl.alerts = ordered;
    for row in &mut tl.rows {
        for a in &mut row.alerts {
            *a = new_index[*a];
        }
        row.alerts.sort_unstable();
    }
}
