//! `escapewatch timeline`: what happened around an alert, for a person to read.
//!
//! Two passes over the logs. The first replays them (the same engine and session rules as
//! `replay`) to find the alerts and the anchors the query names; the second keeps the events
//! of the subject (a container, or the process tree of an alerted host process) inside the
//! time window, and the process ancestry around them. Only the selected events are held in
//! memory, so a large log costs time, not memory. Event kinds are handled by their name and
//! their JSON, never by matching the payload enum, so new kinds show up without changes here.

mod describe;
pub mod html;
pub mod text;
mod tree;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    io,
    path::{Path, PathBuf},
};

use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

pub use describe::{describe, exit_status};
pub use tree::TreeNode;

use crate::{
    detect::{Alert, Engine},
    model::Event,
    replay::{LogStream, Record, ReplayError, Sessions, container_matches},
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
    /// At most this many events are kept (the rest is counted).
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
    pub warnings: u64,
}

impl Timeline {
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

/// What the first pass found.
struct Found {
    alerts: Vec<(u64, Alert, ProcKey)>,
    hosts: BTreeSet<String>,
}

fn first_pass(spool: &Spool, q: &TimelineQuery) -> Result<Found, TimelineError> {
    let new_engine: &dyn Fn() -> Engine = &Engine::new;
    let mut sessions = Sessions::new(new_engine);
    let mut session = 0u64;
    let mut found = Found {
        alerts: Vec::new(),
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
                    found.alerts.push((session, alert, key(session, &e)));
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
    let in_containers = |a: &Alert| {
        q.containers.is_empty()
            || q.containers
                .iter()
                .any(|c| container_matches(c, a.container.as_ref().map(|c| c.id.as_str())))
    };
    let is_anchor = |a: &Alert| {
        (!by_ids || a.event_ids.iter().any(|id| q.alert_event_ids.contains(id)))
            && (!by_rule || q.rules.contains(&a.rule))
            && in_containers(a)
    };
    let anchors: Vec<usize> = (0..found.alerts.len())
        .filter(|&i| is_anchor(&found.alerts[i].1))
        .collect();
    if anchors.is_empty() && by_ids {
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
    if anchors.is_empty() && by_rule && q.containers.is_empty() {
        return Err(TimelineError::NoSuchRule {
            rules: q.rules.clone(),
        });
    }

    // Subject: the containers given, else the anchors' containers and host processes.
    let mut containers: BTreeSet<String> = q.containers.iter().cloned().collect();
    let mut host_roots: BTreeSet<ProcKey> = BTreeSet::new();
    if containers.is_empty() {
        for &i in &anchors {
            let (_, a, k) = &found.alerts[i];
            match &a.container {
                Some(c) => drop(containers.insert(c.id.clone())),
                None => drop(host_roots.insert(*k)),
            }
        }
    }

    // Window: around the anchors when the query named alerts; since/until narrow it.
    let anchor_times: Vec<OffsetDateTime> = anchors
        .iter()
        .filter_map(|&i| parse_time(&found.alerts[i].1.time))
        .collect();
    let (mut from, mut to) = (None, None);
    if by_ids || by_rule {
        from = anchor_times.iter().min().map(|t| *t - q.before);
        to = anchor_times.iter().max().map(|t| *t + q.after);
    }
    if let Some(s) = q.since {
        from = Some(from.map_or(s, |f: OffsetDateTime| f.max(s)));
    }
    if let Some(u) = q.until {
        to = Some(to.map_or(u, |t: OffsetDateTime| t.min(u)));
    }
    let origin = anchor_times.iter().min().copied();

    let subject = Subject {
        containers,
        host_roots,
        from,
        to,
    };
    let mut tl = second_pass(&spool, q, &subject, &found, &anchors, origin)?;
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
}

fn second_pass(
    spool: &Spool,
    q: &TimelineQuery,
    subject: &Subject,
    found: &Found,
    anchors: &[usize],
    origin: Option<OffsetDateTime>,
) -> Result<Timeline, TimelineError> {
    // Alerts by the (session, event id) they cite.
    let mut citing: BTreeMap<(u64, u64), Vec<usize>> = BTreeMap::new();
    for (i, (session, a, _)) in found.alerts.iter().enumerate() {
        for id in &a.event_ids {
            citing.entry((*session, *id)).or_default().push(i);
        }
    }
    let mut shown_alerts: BTreeMap<usize, usize> = BTreeMap::new();
    let mut tl = Timeline {
        subject: subject.describe(),
        hosts: Vec::new(),
        window: (None, None),
        alerts: Vec::new(),
        rows: Vec::new(),
        tree: Vec::new(),
        events_read: 0,
        omitted: 0,
        warnings: 0,
    };
    for &i in anchors {
        let (session, alert, _) = &found.alerts[i];
        shown_alerts.insert(i, tl.alerts.len());
        tl.alerts.push(TimelineAlert {
            alert: alert.clone(),
            session: *session,
            anchor: true,
        });
    }
    let mut procs = tree::ProcessTable::default();
    let mut origin = origin;
    let mut sessions = Sessions::new(&Engine::new);
    let mut session = 0u64;
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
        let in_container = e.container.as_ref().is_some_and(|c| {
            subject
                .containers
                .iter()
                .any(|want| container_matches(want, Some(&c.id)))
        }) || (e.container.is_none() && subject.containers.contains("host"));
        let in_tree =
            !subject.host_roots.is_empty() && procs.descends_from(session, &e, &subject.host_roots);
        if !(in_container || in_tree) {
            continue;
        }
        let t = parse_time(&e.time);
        if let (Some(t), Some(from)) = (t, subject.from)
            && t < from
        {
            continue;
        }
        if let (Some(t), Some(to)) = (t, subject.to)
            && t > to
        {
            continue;
        }
        if tl.rows.len() >= q.max_events {
            tl.omitted += 1;
            continue;
        }
        procs.select(session, &e);
        let t = t.unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let origin = *origin.get_or_insert(t);
        let mut row_alerts = Vec::new();
        for &ai in citing.get(&(session, e.id)).into_iter().flatten() {
            let idx = *shown_alerts.entry(ai).or_insert_with(|| {
                let (s, a, _) = &found.alerts[ai];
                tl.alerts.push(TimelineAlert {
                    alert: a.clone(),
                    session: *s,
                    anchor: false,
                });
                tl.alerts.len() - 1
            });
            row_alerts.push(idx);
            procs.mark_alert(session, &e, &found.alerts[ai].1.rule);
        }
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
            alerts: row_alerts,
        });
    }
    tl.warnings = stream.stats.warnings;
    tl.tree = procs.into_tree();
    Ok(tl)
}

/// Standard input, read twice: copied into an unnamed temp file first. No name means no
/// name to predict: a file planted in /tmp is never opened, let alone overwritten, and
/// nothing is left behind when the process dies.
struct Spool {
    paths: Vec<PathBuf>,
    stdin: Option<File>,
}

impl Spool {
    fn new(paths: &[PathBuf], stdin: &mut dyn io::Read) -> Result<Spool, TimelineError> {
        if !paths.iter().any(|p| p == Path::new("-")) {
            return Ok(Spool {
                paths: paths.to_vec(),
                stdin: None,
            });
        }
        let dir = std::env::temp_dir();
        let mut copy = || -> io::Result<File> {
            let mut f = unnamed_temp_file(&dir)?;
            io::copy(stdin, &mut f)?;
            Ok(f)
        };
        let file = copy().map_err(|source| TimelineError::Spool {
            path: dir.clone(),
            source,
        })?;
        Ok(Spool {
            paths: paths.to_vec(),
            stdin: Some(file),
        })
    }

    fn stream(&self, strict: bool) -> Result<LogStream, TimelineError> {
        let stream = LogStream::new(&self.paths, strict);
        match &self.stdin {
            None => Ok(stream),
            Some(f) => f
                .try_clone()
                .map(|f| stream.with_stdin(f))
                .map_err(|source| TimelineError::Spool {
                    path: std::env::temp_dir(),
                    source,
                }),
        }
    }
}

/// O_TMPFILE (0600, never linked into `dir`); where the file system lacks it, mkstemp's
/// random O_EXCL name, unlinked at once.
fn unnamed_temp_file(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmpfile = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir);
    match tmpfile {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
            let (fd, path) = nix::unistd::mkstemp(&dir.join("escapewatch-timeline-XXXXXX"))?;
            // SAFETY: mkstemp returned a new descriptor that nothing else owns.
            let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            std::fs::remove_file(path)?;
            Ok(file)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// The old spool file was `$TMPDIR/escapewatch-timeline-stdin-PID`, created with
    /// truncation: a file planted there (or the 0600 file of another run) was overwritten and
    /// then deleted.
    #[test]
    fn a_file_at_the_old_predictable_spool_path_is_not_touched() {
        let planted =
            std::env::temp_dir().join(format!("escapewatch-timeline-stdin-{}", std::process::id()));
        std::fs::write(&planted, "not yours\n").unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o600)).unwrap();
        let log = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/incident-two-containers.events.jsonl");
        let text = std::fs::read(&log).unwrap();
        let q = TimelineQuery {
            containers: vec!["host".into()],
            ..TimelineQuery::default()
        };
        let from_stdin = build_with_stdin(&[PathBuf::from("-")], &q, &mut text.as_slice()).unwrap();
        let from_file = build(&[log], &q).unwrap();
        assert_eq!(from_stdin.events_read, from_file.events_read);
        assert!(from_stdin.events_read > 0);
        assert_eq!(from_stdin.rows.len(), from_file.rows.len());
        assert_eq!(std::fs::read_to_string(&planted).unwrap(), "not yours\n");
        std::fs::remove_file(&planted).unwrap();
    }
}
