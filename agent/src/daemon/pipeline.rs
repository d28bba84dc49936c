//! Everything downstream of the ring buffers: enrich, record, detect, alert, count.
//!
//! Nothing here drops an event without counting it. There is no queue between the ring buffers
//! and the engine: the run loop drains into a batch and this code takes every record of it
//! through enrichment, the event log and the engine before the loop reads again, so
//! back-pressure stays in the kernel, where each dropped record is counted per kind
//! (`escapewatch_events_lost_total`) and raises `detector-overloaded`. Records that cannot be
//! decoded and writes that fail are counted too.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use escapewatch_common::{kind::EventKind, programs::ProgramSpec, user::RawEvent};
use prometheus::IntCounter;
use tracing::{error, info, warn};

use super::retention::RetentionWatch;
use crate::{
    coalesce::Coalescer,
    collect::Collector,
    detect::{Alert, AlertProcess, Engine, rules},
    enrich::workload::WorkloadCache,
    enrich::{Enricher, LiveSystem},
    eventlog::{EventLog, EventLogConfig, EventLogStats},
    identity::Identity,
    metrics::Metrics,
    model::{Container, Event, LogHeader, Namespaces, Payload, Process},
    runtime_watch::RuntimeWatch,
    sink::Fanout,
    sink::JsonLines,
};

/// Containers without an event for this long leave `escapewatch_containers_tracked`.
const CONTAINER_IDLE_NS: u64 = 300_000_000_000;
/// Minimum time between two warnings about the same failing log (metrics count every one).
const WARN_EVERY: Duration = Duration::from_secs(10);

pub fn kind_name(id: u32) -> String {
    EventKind::try_from(id).map_or_else(|e| format!("kind-{}", e.0), |k| k.name().to_owned())
}

/// CLOCK_BOOTTIME now, in ns: the clock of the kernel's event timestamps.
pub fn boottime_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Wall-clock seconds since the epoch (for timestamp gauges).
pub fn unix_now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// This process, as the subject of the alerts the agent raises about itself.
pub fn agent_process() -> AlertProcess {
    AlertProcess {
        pid: std::process::id(),
        ppid: nix::unistd::getppid().as_raw() as u32,
        comm: "escapewatch".into(),
        exe: std::fs::read_link("/proc/self/exe")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        uid: nix::unistd::geteuid().as_raw(),
    }
}

/// A log that fails is reported at most every [`WARN_EVERY`].
#[derive(Default)]
struct Throttle(Option<Instant>);

impl Throttle {
    fn ready(&mut self) -> bool {
        let now = Instant::now();
        let ok = self.0.is_none_or(|t| now.duration_since(t) >= WARN_EVERY);
        if ok {
            self.0 = Some(now);
        }
        ok
    }
}

/// What a [`Pipeline`] is made of.
pub struct PipelineParts {
    pub enricher: Enricher<LiveSystem>,
    pub engine: Engine,
    pub metrics: Arc<Metrics>,
    /// Keeps the kernel's list of runtime binaries current (None: the kernel map is missing).
    pub runtime_watch: Option<RuntimeWatch>,
    pub event_log: Option<EventLog>,
    /// The settings `event_log` was opened with (a SIGHUP with the same ones keeps it open).
    pub event_log_config: Option<EventLogConfig>,
    /// The session header every reopened event log starts with.
    pub header: LogHeader,
    pub alerts: JsonLines,
    pub alert_log_path: Option<PathBuf>,
    /// The wall-clock time of boot, in ns: kernel timestamps plus this are wall time.
    pub boot_unix_ns: i128,
    /// Container metadata from the runtimes (None: not asked).
    pub workload: Option<WorkloadCache>,
    /// Every output sink (webhooks, syslog), fed after the alert log.
    pub sinks: Fanout,
}

pub struct Pipeline {
    pub enricher: Enricher<LiveSystem>,
    pub engine: Engine,
    pub metrics: Arc<Metrics>,
    /// Keeps the kernel's list of runtime binaries current (loader-owned).
    pub runtime_watch: Option<RuntimeWatch>,
    logs: Logs,
    kernel: KernelCounts,
    containers: Containers,
    boot_unix_ns: i128,
    agent: AlertProcess,
    /// Node and host of every alert, from the session header (as replay stamps them).
    identity: Identity,
    workload: Option<WorkloadCache>,
    sinks: Fanout,
    /// Folds identical alerts (None: off), by the window the header records.
    coalescer: Option<Coalescer>,
}

/// The event log and the alert log, and how much of their bytes and errors the metrics have.
struct Logs {
    event_log: Option<EventLog>,
    /// The settings of the open `event_log`.
    event_log_config: Option<EventLogConfig>,
    /// Rotations seen, to tell deletions under a flood.
    retention: RetentionWatch,
    retention_warn: Throttle,
    /// Configured but not open (a reopen failed): events are counted as write errors.
    event_log_missing: Option<EventLogConfig>,
    header: LogHeader,
    event_log_seen: EventLogStats,
    alerts: JsonLines,
    alert_log_path: Option<PathBuf>,
    alert_bytes_seen: u64,
    alert_warn: Throttle,
    reopen_warn: Throttle,
}

/// How much of the kernel's counters (events by kind, losses, program errors) and of the
/// undecodable records the metrics have.
#[derive(Default)]
struct KernelCounts {
    per_kind: BTreeMap<u32, IntCounter>,
    lost_seen: BTreeMap<u32, u64>,
    budgeted_seen: BTreeMap<u32, u64>,
    /// Per (cgroup id, kind): the kernel entry's running total last read.
    budget_keys_seen: BTreeMap<(u64, u32), u64>,
    errors_seen: BTreeMap<u32, u64>,
    decode_errors: u64,
}

/// Containers with a recent event: id → kernel time of the last one.
#[derive(Default)]
struct Containers(HashMap<String, u64>);

impl Pipeline {
    pub fn new(parts: PipelineParts) -> Self {
        let PipelineParts {
            enricher,
            engine,
            metrics,
            runtime_watch,
            event_log,
            event_log_config,
            header,
            alerts,
            alert_log_path,
            boot_unix_ns,
            workload,
            sinks,
        } = parts;
        let identity = Identity::from_header(&header);
        let coalescer = Coalescer::new(header.coalesce_window_ms);
        Pipeline {
            enricher,
            engine,
            metrics,
            runtime_watch,
            logs: Logs {
                event_log,
                event_log_config,
                retention: RetentionWatch::default(),
                retention_warn: Throttle::default(),
                event_log_missing: None,
                header,
                event_log_seen: EventLogStats::default(),
                alerts,
                alert_log_path,
                alert_bytes_seen: 0,
                alert_warn: Throttle::default(),
                reopen_warn: Throttle::default(),
            },
            kernel: KernelCounts::default(),
            containers: Containers::default(),
            boot_unix_ns,
            agent: agent_process(),
            identity,
            workload,
            sinks,
            coalescer,
        }
    }

    /// This agent as the process of the events it reports itself.
    fn agent_as_process(&self) -> Process {
        Process {
            pid: self.agent.pid,
            tid: self.agent.pid,
            ppid: self.agent.ppid,
            start_time: 0,
            comm: self.agent.comm.clone(),
            exe: self.agent.exe.clone(),
            args: Vec::new(),
            uid: self.agent.uid,
            gid: 0,
            cap_effective: None,
            cgroup_id: 0,
            cgroup: String::new(),
            namespaces: Namespaces::default(),
            runtime_helper: false,
            foreign_namespaces: Vec::new(),
            creds_beyond_start: None,
            exe_foreign: false,
        }
    }

    fn wall_ns(&self, ktime_ns: u64) -> i128 {
        self.boot_unix_ns + ktime_ns as i128
    }

    /// Take every record of `batch` through the pipeline.
    pub fn process(&mut self, batch: &mut Vec<RawEvent>) {
        let mut last_ktime = None;
        for raw in batch.drain(..) {
            self.kernel.count_event(raw.header().kind, &self.metrics);
            let mut event = self.enricher.enrich(&raw);
            if let Some(watch) = &mut self.runtime_watch {
                watch.observe(&event);
            }
            if let Some(c) = &event.container {
                self.containers.seen(&c.id, event.ktime_ns);
            }
            self.log_and_detect(&mut event);
            let latency = boottime_ns().saturating_sub(event.ktime_ns);
            self.metrics.event_latency.observe(latency as f64 / 1e9);
            last_ktime = Some(event.ktime_ns);
        }
        if let Some(k) = last_ktime {
            let wall = self.wall_ns(k) as f64 / 1e9;
            self.metrics.last_event_timestamp.set(wall);
        }
        self.report_started();
        self.flush();
    }

    /// Containers a runtime newly named (the metadata thread found them), each as a
    /// `container_started` report into the event stream, logged with its workload and
    /// posture and judged by the engine (`container-sensitive-mount`), so replay gives the
    /// live alerts.
    fn report_started(&mut self) {
        let Some(cache) = &self.workload else {
            return;
        };
        for (container, workload) in cache.take_found() {
            let mut report = self.enricher.synthetic(
                boottime_ns(),
                self.agent_as_process(),
                Payload::ContainerStarted {
                    source: workload.source.clone(),
                },
            );
            report.container = Some(container);
            report.workload = Some(workload);
            self.log_and_detect(&mut report);
        }
    }

    /// Through the engine, into the event log, then the alerts out: the event log holds each
    /// event before any alert it gave.
    ///
    /// The container's workload metadata, when the cache has it, goes through the engine
    /// with the event, and is recorded with it only when the engine's outcome (alerts or
    /// suppressions) was not empty: the metadata only decorates alerts and feeds the
    /// allowlists, so an event of an empty outcome replays to the same empty outcome without
    /// it, and the log does not repeat a container's labels on every event.
    fn log_and_detect(&mut self, event: &mut Event) {
        // A start report carries the workload it was made from.
        let report = matches!(event.data, Payload::ContainerStarted { .. });
        if !report && let (Some(cache), Some(c)) = (&self.workload, &event.container) {
            event.workload = cache.get(c);
        }
        // Summaries whose window this event's time closed go out before its own alerts.
        if let Some(co) = &mut self.coalescer
            && let Some(now) = crate::coalesce::time_ns(&event.time)
        {
            let mut out = Vec::new();
            co.advance(now, &mut out);
            for a in out {
                self.emit(a, None);
            }
        }
        let outcome = self.engine.process(event);
        if outcome.alerts.is_empty() && outcome.suppressed.is_empty() && !report {
            event.workload = None;
        }
        self.logs.record(event, &self.metrics);
        if let Some(cache) = &self.workload {
            for a in outcome.alerts.iter().filter(|a| a.container.is_some()) {
                let carried = a
                    .container
                    .as_ref()
                    .is_some_and(|c| !c.name.is_empty() || !c.image.is_empty());
                cache.count_alert(carried);
            }
        }
        for s in outcome.suppressed {
            self.metrics
                .alerts_suppressed
                .with_label_values(&[&s.rule, s.reason.as_str()])
                .inc();
        }
        for alert in outcome.alerts {
            if rules::info(&alert.rule).is_some_and(|i| i.agent_warning) {
                warn!(
                    rule = alert.rule,
                    summary = alert.summary,
                    "the agent raised an alert about itself"
                );
            }
            self.offer(alert, Some(event.ktime_ns));
        }
    }

    fn flush_coalesced(&mut self) {
        let mut out = Vec::new();
        if let Some(co) = &mut self.coalescer {
            co.flush(&mut out);
        }
        if !out.is_empty() {
            for a in out {
                self.emit(a, None);
            }
            self.flush();
        }
    }

    /// One alert from the engine: out now, or folded into a coalesced summary.
    fn offer(&mut self, alert: Alert, ktime_ns: Option<u64>) {
        let Some(co) = &mut self.coalescer else {
            return self.emit(alert, ktime_ns);
        };
        let rule = alert.rule.clone();
        let mut out = Vec::new();
        if co.offer(alert, &mut out) {
            self.metrics
                .alerts_coalesced
                .with_label_values(&[&rule])
                .inc();
        }
        for a in out {
            let k = (a.rule == rule && a.coalesced.is_none())
                .then_some(ktime_ns)
                .flatten();
            self.emit(a, k);
        }
    }

    /// Write one alert and count it. `ktime_ns`: the triggering event's kernel time.
    pub fn emit(&mut self, mut alert: Alert, ktime_ns: Option<u64>) {
        self.identity.stamp(&mut alert);
        self.logs.write_alert(&alert, &self.metrics);
        // Only queued: a slow sink drops (and counts), it never waits here.
        self.sinks.publish(&alert);
        self.metrics
            .alerts
            .with_label_values(&[&alert.rule, alert.severity.as_str()])
            .inc();
        if let Some(k) = ktime_ns {
            let latency = boottime_ns().saturating_sub(k);
            self.metrics.alert_latency.observe(latency as f64 / 1e9);
        }
    }

    fn flush(&mut self) {
        self.logs.flush(&self.metrics);
    }

    /// Once a second: kernel loss and error counters, `detector-overloaded`, gauges.
    pub fn tick(&mut self, collector: &Collector) {
        let now = boottime_ns();
        let new_losses = self.kernel.new_losses(collector, &self.metrics);
        self.kernel.new_program_errors(collector, &self.metrics);
        self.report_budgeted(collector, now);
        self.report_started();
        if !new_losses.is_empty() {
            self.enricher.note_loss();
            // The loss report enters the event stream like any event: logged, then judged by
            // the engine's detector-overloaded rule, so replay sees what the live engine saw.
            let mut report = self.enricher.synthetic(
                now,
                self.agent_as_process(),
                Payload::EventsLost { lost: new_losses },
            );
            self.log_and_detect(&mut report);
            self.flush();
        }
        self.metrics
            .containers_tracked
            .set(self.containers.expire(now) as i64);
        self.metrics
            .processes_tracked
            .set(self.enricher.processes_tracked() as i64);
        self.logs.retry_event_log(&self.metrics);
    }

    /// Attempt records the kernel did not send (containers over budget), into the metrics and,
    /// one report per container, into the event stream, where `detector-overloaded` judges
    /// them: counted and attributed, never silently gone.
    fn report_budgeted(&mut self, collector: &Collector, now: u64) {
        // The per-container entries first: the exact per-kind counts, read after, cover them.
        let by_cgroup = self.kernel.new_budgeted_by_cgroup(collector);
        let per_kind = self.kernel.new_budgeted(collector, &self.metrics);
        if per_kind.is_empty() && by_cgroup.is_empty() {
            return;
        }
        let mut unattributed = per_kind;
        let mut reports: BTreeMap<Option<Container>, BTreeMap<String, u64>> = BTreeMap::new();
        for ((cgroup_id, kind), n) in by_cgroup {
            let container = self.enricher.container_of_cgroup(cgroup_id);
            let name = kind_name(kind);
            if let Some(rest) = unattributed.get_mut(&name) {
                *rest = rest.saturating_sub(n);
            }
            *reports
                .entry(container)
                .or_default()
                .entry(name)
                .or_default() += n;
        }
        // What the per-container entries do not account for (an entry evicted before it was
        // read, two CPUs counting at once): reported without a container.
        unattributed.retain(|_, n| *n > 0);
        if !unattributed.is_empty() {
            let none = reports.entry(None).or_default();
            for (k, n) in unattributed {
                *none.entry(k).or_default() += n;
            }
        }
        for (container, suppressed) in reports {
            let mut report = self.enricher.synthetic(
                now,
                self.agent_as_process(),
                Payload::EventsBudgeted { suppressed },
            );
            report.container = container;
            self.log_and_detect(&mut report);
        }
        self.flush();
    }

    /// Something the agent found about itself, into the event stream like any event: logged,
    /// then judged by the engine (`detector-tampered`), so replay sees what the live engine
    /// saw.
    pub fn report(&mut self, data: Payload) {
        let mut report = self
            .enricher
            .synthetic(boottime_ns(), self.agent_as_process(), data);
        self.log_and_detect(&mut report);
        self.flush();
    }

    pub fn count_decode_errors(&mut self, errors: Vec<escapewatch_common::user::DecodeError>) {
        self.kernel.count_decode_errors(errors, &self.metrics);
    }

    /// SIGHUP: reopen the alert log (logrotate moved it) at `path`. A failure keeps the old one.
    pub fn reopen_alert_log(&mut self, path: Option<PathBuf>) {
        self.logs.reopen_alert_log(path, &self.metrics);
    }

    /// SIGHUP: close the event log and open `cfg` (the same path after logrotate, or a new
    /// one). The new file starts with a session header, so it can be replayed on its own.
    /// While it cannot be opened, every event counts as a write error and it is retried.
    pub fn reopen_event_log(&mut self, cfg: Option<EventLogConfig>) {
        // The new file is a new session to replay: pending summaries belong to the old one.
        self.flush_coalesced();
        self.logs.reopen_event_log(cfg, &self.metrics);
    }

    /// Shutdown: flush, close the event log (waits for its compression thread).
    pub fn close(mut self) {
        // The session ends: pending summaries go out (replay flushes at the same point).
        self.flush_coalesced();
        self.logs.close(&self.metrics);
        info!(
            decode_errors = self.kernel.decode_errors,
            "drained and flushed; bye"
        );
    }
}

impl Logs {
    fn record(&mut self, event: &Event, metrics: &Metrics) {
        match &mut self.event_log {
            Some(log) => log.write(event),
            None if self.event_log_missing.is_some() => metrics.event_log_write_errors.inc(),
            None => {}
        }
    }

    fn write_alert(&mut self, alert: &Alert, metrics: &Metrics) {
        // The events behind an alert reach the event log before the alert reaches its log.
        if let Some(log) = &mut self.event_log {
            log.flush();
        }
        if let Err(e) = self.alerts.write(alert) {
            metrics.alert_log_write_errors.inc();
            if self.alert_warn.ready() {
                error!(error = %e, rule = alert.rule, "writing an alert failed (escapewatch_alert_log_write_errors_total counts them)");
            }
        }
    }

    fn flush(&mut self, metrics: &Metrics) {
        if let Some(log) = &mut self.event_log {
            log.flush();
        }
        if let Err(e) = self.alerts.flush() {
            metrics.alert_log_write_errors.inc();
            if self.alert_warn.ready() {
                error!(error = %e, "flushing the alert log failed");
            }
        }
        let written = self.alerts.bytes_written;
        metrics
            .alert_log_bytes
            .inc_by(written.saturating_sub(self.alert_bytes_seen));
        self.alert_bytes_seen = written;
        if let Some(stats) = self.event_log.as_ref().map(EventLog::stats) {
            self.count_event_log(stats, metrics);
        }
    }

    /// Into the metrics: what the event log wrote and failed to since they last heard.
    fn count_event_log(&mut self, s: EventLogStats, metrics: &Metrics) {
        metrics
            .event_log_bytes
            .inc_by(s.bytes.saturating_sub(self.event_log_seen.bytes));
        metrics.event_log_write_errors.inc_by(
            s.write_errors
                .saturating_sub(self.event_log_seen.write_errors),
        );
        let deleted = s.deleted.saturating_sub(self.event_log_seen.deleted);
        let rotated = s.rotations.saturating_sub(self.event_log_seen.rotations);
        metrics.event_log_segments_deleted.inc_by(deleted);
        let keep = self.event_log_config.as_ref().map_or(0, |c| c.keep);
        if let Some(f) = self
            .retention
            .observe(rotated, deleted, keep, Instant::now())
            && self.retention_warn.ready()
        {
            warn!(
                deleted = f.deleted,
                keep,
                span_seconds = f.span.as_secs(),
                "event log under flood: retention deleted segments the kept ones span only {} s past; events before that are gone unless shipped or replayed (counted in escapewatch_event_log_segments_deleted_total; raise logs.event_log_keep or event_log_max_bytes)",
                f.span.as_secs()
            );
        }
        self.event_log_seen = s;
    }

    fn reopen_alert_log(&mut self, path: Option<PathBuf>, metrics: &Metrics) {
        self.flush(metrics);
        match JsonLines::open(path.as_deref()) {
            Ok(new) => {
                self.alerts = new;
                self.alert_bytes_seen = 0;
                self.alert_log_path = path;
                info!(path = ?self.alert_log_path, "alert log reopened");
            }
            Err(e) => {
                metrics.alert_log_write_errors.inc();
                error!(error = %e, "reopening the alert log failed; still writing to the old one");
            }
        }
    }

    fn reopen_event_log(&mut self, cfg: Option<EventLogConfig>, metrics: &Metrics) {
        let cfg = match cfg {
            Some(c) => Some(c),
            None => self.event_log_missing.take(),
        };
        // The event log rotates itself: a SIGHUP with its settings unchanged, and its file
        // still there, keeps it open. Closing waits for the compression thread (seconds for
        // a 100 MB segment), which must not happen on the event loop.
        if let (Some(log), Some(new), Some(old)) =
            (&mut self.event_log, &cfg, &self.event_log_config)
            && same_settings(new, old)
            && new.path.symlink_metadata().is_ok()
        {
            log.flush();
            info!(path = %new.path.display(), "event log kept open (settings unchanged; it rotates itself)");
            return;
        }
        if let Some(old) = self.event_log.take() {
            self.count_event_log(old.stats(), metrics);
            let same_base = match (&cfg, &self.event_log_config) {
                (Some(new), Some(prev)) => new.path == prev.path,
                _ => false,
            };
            if same_base {
                // Two compression threads must never tidy the same segments: wait.
                info!(
                    "event log settings changed: waiting for its compression thread before reopening"
                );
                old.close();
            } else {
                // Another path: the old log's thread finishes on its own.
                let spawned = std::thread::Builder::new()
                    .name("eventlog-close".into())
                    .spawn(move || {
                        let s = old.close();
                        info!(
                            compressed = s.compressed,
                            deleted = s.deleted,
                            "previous event log closed"
                        );
                    });
                if let Err(e) = spawned {
                    warn!(error = %e, "cannot close the previous event log on a thread of its own");
                }
            }
        }
        self.event_log_config = None;
        self.event_log_seen = EventLogStats::default();
        let Some(cfg) = cfg else { return };
        match EventLog::open(cfg.clone(), self.header.clone()) {
            Ok(log) => {
                info!(path = %cfg.path.display(), "event log reopened");
                self.event_log = Some(log);
                self.event_log_config = Some(cfg);
            }
            Err(e) => {
                if self.reopen_warn.ready() {
                    error!(error = %e, "cannot open the event log; events are not recorded until it opens (counted in escapewatch_event_log_write_errors_total), retrying every second");
                }
                self.event_log_missing = Some(cfg);
            }
        }
    }

    /// An event log that could not be reopened is tried again (once a second).
    fn retry_event_log(&mut self, metrics: &Metrics) {
        if self.event_log_missing.is_some() {
            self.reopen_event_log(None, metrics);
        }
    }

    fn close(&mut self, metrics: &Metrics) {
        self.flush(metrics);
        if let Some(log) = self.event_log.take() {
            let s = log.close();
            // The final counters: the last tidy's deletions too.
            self.count_event_log(s, metrics);
            info!(
                lines = s.lines,
                bytes = s.bytes,
                write_errors = s.write_errors,
                rotations = s.rotations,
                compressed = s.compressed,
                deleted = s.deleted,
                "event log closed"
            );
        }
    }
}

/// Whether two event-log settings are the same (EventLogConfig has no PartialEq).
fn same_settings(a: &EventLogConfig, b: &EventLogConfig) -> bool {
    a.path == b.path && a.max_bytes == b.max_bytes && a.keep == b.keep
}

impl KernelCounts {
    fn count_event(&mut self, kind: u32, metrics: &Metrics) {
        self.per_kind
            .entry(kind)
            .or_insert_with(|| metrics.events.with_label_values(&[&kind_name(kind)]))
            .inc();
    }

    /// Records the kernel dropped since the last call, by kind name; counted and warned about.
    fn new_losses(&mut self, collector: &Collector, metrics: &Metrics) -> BTreeMap<String, u64> {
        let mut new_losses = BTreeMap::new();
        for (kind, lost, total) in increases(&mut self.lost_seen, collector.lost_by_kind()) {
            let name = kind_name(kind);
            new_losses.insert(name.clone(), lost);
            metrics.events_lost.with_label_values(&[&name]).inc_by(lost);
            warn!(
                kind = name,
                lost,
                total,
                "kernel ring buffer full: events lost (raise ring_buffers sizes in the config)"
            );
        }
        new_losses
    }

    /// Attempt records the kernel did not send since the last call, by kind name; counted.
    fn new_budgeted(&mut self, collector: &Collector, metrics: &Metrics) -> BTreeMap<String, u64> {
        let mut new = BTreeMap::new();
        for (kind, n, total) in increases(&mut self.budgeted_seen, collector.budgeted_by_kind()) {
            let name = kind_name(kind);
            metrics
                .events_budgeted
                .with_label_values(&[&name])
                .inc_by(n);
            info!(
                kind = name,
                budgeted = n,
                total,
                "attempt records over a container's budget: counted, not sent"
            );
            new.insert(name, n);
        }
        new
    }

    /// The same per (cgroup id, kind) since the last call. An entry smaller than last time was
    /// evicted and created again: all of it is new.
    fn new_budgeted_by_cgroup(&mut self, collector: &Collector) -> Vec<((u64, u32), u64)> {
        let totals = collector.budgeted_by_cgroup();
        let mut new = Vec::new();
        for (key, total) in &totals {
            let before = self.budget_keys_seen.get(key).copied().unwrap_or(0);
            let n = if *total >= before {
                total - before
            } else {
                *total
            };
            if n > 0 {
                new.push((*key, n));
            }
        }
        self.budget_keys_seen = totals;
        new
    }

    /// Kernel reads that failed in each program since the last call: counted and warned about.
    fn new_program_errors(&mut self, collector: &Collector, metrics: &Metrics) {
        for (prog, errors, total) in increases(&mut self.errors_seen, collector.program_errors()) {
            let name = ProgramSpec::by_id(prog).map_or("?", |p| p.name);
            metrics
                .program_errors
                .with_label_values(&[name])
                .inc_by(errors);
            warn!(
                program = name,
                errors, total, "kernel reads failed in program"
            );
        }
    }

    fn count_decode_errors(
        &mut self,
        errors: Vec<escapewatch_common::user::DecodeError>,
        metrics: &Metrics,
    ) {
        for e in errors {
            self.decode_errors += 1;
            let reason = match &e {
                escapewatch_common::user::DecodeError::TooShort { .. } => "too_short",
                escapewatch_common::user::DecodeError::SchemaVersion { .. } => "schema_version",
                escapewatch_common::user::DecodeError::HeaderSize { .. } => "header_size",
                escapewatch_common::user::DecodeError::UnknownKind(_) => "unknown_kind",
                escapewatch_common::user::DecodeError::SizeMismatch { .. } => "size_mismatch",
                escapewatch_common::user::DecodeError::UnknownCall { .. } => "unknown_call",
            };
            metrics.decode_errors.with_label_values(&[reason]).inc();
            if self.decode_errors <= 10 || self.decode_errors.is_power_of_two() {
                warn!(error = %e, total = self.decode_errors, "dropped an undecodable kernel record");
            }
        }
    }
}

/// `(key, increase, total)` of each of the kernel's running totals that grew since `seen`,
/// which is brought up to date.
fn increases(seen: &mut BTreeMap<u32, u64>, totals: BTreeMap<u32, u64>) -> Vec<(u32, u64, u64)> {
    totals
        .into_iter()
        .filter_map(|(key, total)| {
            let before = seen.insert(key, total).unwrap_or(0);
            (total > before).then(|| (key, total - before, total))
        })
        .collect()
}

impl Containers {
    fn seen(&mut self, id: &str, ktime_ns: u64) {
        match self.0.get_mut(id) {
            Some(t) => *t = ktime_ns,
            None => {
                self.0.insert(id.to_owned(), ktime_ns);
            }
        }
    }

    /// Forget the containers idle for [`CONTAINER_IDLE_NS`] at `now`; how many remain.
    fn expire(&mut self, now: u64) -> usize {
        self.0
            .retain(|_, last| now.saturating_sub(*last) < CONTAINER_IDLE_NS);
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LOG_FORMAT, LOG_SCHEMA_VERSION};

    fn logs(cfg: &EventLogConfig) -> Logs {
        let header = LogHeader {
            format: LOG_FORMAT.into(),
            schema_version: LOG_SCHEMA_VERSION,
            agent_version: "test".into(),
            hostname: "test".into(),
            boot_time: "2026-01-01T00:00:00Z".into(),
            host_namespaces: Namespaces::from_wire(&[1; escapewatch_common::event::NS_COUNT]),
            host_namespaces_source: "test".into(),
            rule_set_hash: String::new(),
            segment: 0,
            node_name: String::new(),
            cluster: String::new(),
            boot_id: String::new(),
            coalesce_window_ms: 0,
        };
        Logs {
            event_log: Some(EventLog::open(cfg.clone(), header.clone()).unwrap()),
            event_log_config: Some(cfg.clone()),
            retention: RetentionWatch::default(),
            retention_warn: Throttle::default(),
            event_log_missing: None,
            header,
            event_log_seen: EventLogStats::default(),
            alerts: JsonLines::open(None).unwrap(),
            alert_log_path: None,
            alert_bytes_seen: 0,
            alert_warn: Throttle::default(),
            reopen_warn: Throttle::default(),
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ew-pipeline-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn headers(path: &std::path::Path) -> usize {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| l.contains(LOG_FORMAT))
            .count()
    }

    #[test]
    fn sighup_keeps_an_unchanged_event_log_open() {
        let d = dir("sighup");
        let cfg = EventLogConfig {
            path: d.join("events.jsonl"),
            max_bytes: 1 << 20,
            keep: 2,
            format: crate::eventlog::LogFormat::Jsonl,
        };
        let metrics = Metrics::new().unwrap();
        let mut logs = logs(&cfg);
        logs.event_log
            .as_mut()
            .unwrap()
            .write_json(&serde_json::json!({"n": 1}));
        // Unchanged: not closed (a close waits for the compression thread), so no second
        // session header; what was buffered is flushed.
        logs.reopen_event_log(Some(cfg.clone()), &metrics);
        assert_eq!(headers(&cfg.path), 1);
        assert!(
            std::fs::read_to_string(&cfg.path)
                .unwrap()
                .contains("{\"n\":1}")
        );
        // Moved away (by hand): reopened at the path.
        std::fs::rename(&cfg.path, d.join("moved.jsonl")).unwrap();
        logs.reopen_event_log(Some(cfg.clone()), &metrics);
        assert_eq!(headers(&cfg.path), 1, "a new file with its own header");
        // Another path: the new one is opened at once.
        let other = EventLogConfig {
            path: d.join("other.jsonl"),
            ..cfg.clone()
        };
        logs.reopen_event_log(Some(other.clone()), &metrics);
        assert_eq!(headers(&other.path), 1);
        logs.close(&metrics);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn retention_deletions_are_counted() {
        let d = dir("retention");
        let cfg = EventLogConfig {
            path: d.join("events.jsonl"),
            max_bytes: 4096,
            keep: 1,
            format: crate::eventlog::LogFormat::Jsonl,
        };
        let metrics = Metrics::new().unwrap();
        let mut logs = logs(&cfg);
        let pad = "x".repeat(1000);
        for n in 0..40 {
            logs.event_log
                .as_mut()
                .unwrap()
                .write_json(&serde_json::json!({"n": n, "pad": pad}));
            logs.flush(&metrics);
        }
        // Let the compression thread apply retention, then count.
        let deadline = Instant::now() + Duration::from_secs(10);
        while metrics.event_log_segments_deleted.get() < 5 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            logs.flush(&metrics);
        }
        let deleted = metrics.event_log_segments_deleted.get();
        assert!(deleted >= 5, "{deleted} segments counted as deleted");
        logs.close(&metrics);
        assert_eq!(
            metrics.event_log_segments_deleted.get(),
            logs.event_log_seen.deleted,
            "every deletion the writer made is counted"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
