//! Prometheus metrics and the health endpoints.
//!
//! Every metric is prefixed `escapewatch_`. Labelled counters that alert rules use with
//! `increase()` are created at zero for every label value known at start (every event kind,
//! every rule at its effective severity): a series that appears at 1 has no earlier sample, and
//! `increase()` over it would stay 0, so the first escape would never fire an alert.

mod http;

use std::{
    net::{SocketAddr, TcpListener},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Instant,
};

use escapewatch_common::kind::EventKind;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::detect::{Policy, RuleInfo};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot register metric {name}")]
    Register {
        name: &'static str,
        #[source]
        source: prometheus::Error,
    },
    #[error("cannot listen for metrics on {addr} (set metrics.listen or --metrics-addr)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the metrics server thread")]
    Thread(#[source] std::io::Error),
}

/// Seconds from the syscall (kernel timestamp) to the alert written, or the event processed.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    pub events: IntCounterVec,
    pub alerts: IntCounterVec,
    pub alerts_suppressed: IntCounterVec,
    pub events_lost: IntCounterVec,
    pub program_errors: IntCounterVec,
    pub decode_errors: IntCounterVec,
    pub event_log_bytes: IntCounter,
    pub event_log_write_errors: IntCounter,
    pub alert_log_bytes: IntCounter,
    pub alert_log_write_errors: IntCounter,
    pub alert_latency: Histogram,
    pub event_latency: Histogram,
    pub processes_tracked: IntGauge,
    pub containers_tracked: IntGauge,
    pub programs_attached: IntGaugeVec,
    pub programs_failed: IntGaugeVec,
    /// 1 for each (rule, hook type, program) serving that rule on this kernel.
    pub rule_hook: IntGaugeVec,
    pub last_event_timestamp: Gauge,
    pub ready: IntGauge,
    pub config_reloads: IntCounterVec,
    pub config_last_reload_successful: IntGauge,
    pub config_last_reload_timestamp: Gauge,
    pub ring_buffer_bytes: GaugeVec,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    name: &'static str,
    m: Result<T, prometheus::Error>,
) -> Result<T, MetricsError> {
    let m = m.map_err(|source| MetricsError::Register { name, source })?;
    registry
        .register(Box::new(m.clone()))
        .map_err(|source| MetricsError::Register { name, source })?;
    Ok(m)
}

macro_rules! counter_vec {
    ($r:expr, $name:literal, $help:literal, $labels:expr) => {
        reg(
            $r,
            $name,
            IntCounterVec::new(Opts::new($name, $help), $labels),
        )?
    };
}

impl Metrics {
    pub fn new() -> Result<Metrics, MetricsError> {
        let r = Registry::new();
        let process = prometheus::process_collector::ProcessCollector::for_self();
        r.register(Box::new(process))
            .map_err(|source| MetricsError::Register {
                name: "process_*",
                source,
            })?;
        let hist = |name: &'static str, help: &str| {
            reg(
                &r,
                name,
                Histogram::with_opts(
                    HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                ),
            )
        };
        let m = Metrics {
            events: counter_vec!(
                &r,
                "escapewatch_events_total",
                "Kernel events processed, by kind.",
                &["kind"]
            ),
            alerts: counter_vec!(
                &r,
                "escapewatch_alerts_total",
                "Alerts raised, by rule and severity.",
                &["rule", "severity"]
            ),
            alerts_suppressed: counter_vec!(
                &r,
                "escapewatch_alerts_suppressed_total",
                "Alerts held back by the config: rule disabled or allowlisted.",
                &["rule", "reason"]
            ),
            events_lost: counter_vec!(
                &r,
                "escapewatch_events_lost_total",
                "Events the kernel dropped because a ring buffer was full, by kind.",
                &["kind"]
            ),
            program_errors: counter_vec!(
                &r,
                "escapewatch_kernel_program_errors_total",
                "Failed kernel reads inside eBPF programs, by program.",
                &["program"]
            ),
            decode_errors: counter_vec!(
                &r,
                "escapewatch_decode_errors_total",
                "Kernel records that could not be decoded (dropped, counted), by reason.",
                &["reason"]
            ),
            event_log_bytes: reg(
                &r,
                "escapewatch_event_log_bytes_total",
                IntCounter::new(
                    "escapewatch_event_log_bytes_total",
                    "Bytes written to the event log.",
                ),
            )?,
            event_log_write_errors: reg(
                &r,
                "escapewatch_event_log_write_errors_total",
                IntCounter::new(
                    "escapewatch_event_log_write_errors_total",
                    "Failed writes or flushes of the event log.",
                ),
            )?,
            alert_log_bytes: reg(
                &r,
                "escapewatch_alert_log_bytes_total",
                IntCounter::new(
                    "escapewatch_alert_log_bytes_total",
                    "Bytes written to the alert log.",
                ),
            )?,
            alert_log_write_errors: reg(
                &r,
                "escapewatch_alert_log_write_errors_total",
                IntCounter::new(
                    "escapewatch_alert_log_write_errors_total",
                    "Failed writes or flushes of the alert log.",
                ),
            )?,
            alert_latency: hist(
                "escapewatch_alert_latency_seconds",
                "From the syscall (kernel timestamp) to the alert written.",
            )?,
            event_latency: hist(
                "escapewatch_event_latency_seconds",
                "From the syscall (kernel timestamp) to the event processed.",
            )?,
            processes_tracked: reg(
                &r,
                "escapewatch_processes_tracked",
                IntGauge::new(
                    "escapewatch_processes_tracked",
                    "Processes in the agent's process table.",
                ),
            )?,
            containers_tracked: reg(
                &r,
                "escapewatch_containers_tracked",
                IntGauge::new(
                    "escapewatch_containers_tracked",
                    "Containers with at least one event in the last 5 minutes.",
                ),
            )?,
            programs_attached: reg(
                &r,
                "escapewatch_programs_attached",
                IntGaugeVec::new(
                    Opts::new(
                        "escapewatch_programs_attached",
                        "eBPF programs attached, by hook type.",
                    ),
                    &["hook"],
                ),
            )?,
            programs_failed: reg(
                &r,
                "escapewatch_programs_failed",
                IntGaugeVec::new(
                    Opts::new(
                        "escapewatch_programs_failed",
                        "eBPF programs that could not be attached, by hook type.",
                    ),
                    &["hook"],
                ),
            )?,
            rule_hook: reg(
                &r,
                "escapewatch_rule_hook_info",
                IntGaugeVec::new(
                    Opts::new(
                        "escapewatch_rule_hook_info",
                        "1 for each eBPF program serving a rule on this kernel, with its hook type (fentry, kprobe, lsm, tracepoint, …): which hook the agent chose.",
                    ),
                    &["rule", "hook", "program"],
                ),
            )?,
            last_event_timestamp: reg(
                &r,
                "escapewatch_last_event_timestamp_seconds",
                Gauge::new(
                    "escapewatch_last_event_timestamp_seconds",
                    "Wall-clock time of the last event processed (the agent's start before the first).",
                ),
            )?,
            ready: reg(
                &r,
                "escapewatch_ready",
                IntGauge::new(
                    "escapewatch_ready",
                    "1 once every program is attached and events flow.",
                ),
            )?,
            config_reloads: counter_vec!(
                &r,
                "escapewatch_config_reloads_total",
                "SIGHUP config reloads, by result.",
                &["result"]
            ),
            config_last_reload_successful: reg(
                &r,
                "escapewatch_config_last_reload_successful",
                IntGauge::new(
                    "escapewatch_config_last_reload_successful",
                    "0 when the last reload was rejected (the previous config stays in force).",
                ),
            )?,
            config_last_reload_timestamp: reg(
                &r,
                "escapewatch_config_last_reload_timestamp_seconds",
                Gauge::new(
                    "escapewatch_config_last_reload_timestamp_seconds",
                    "Wall-clock time the config in force was loaded.",
                ),
            )?,
            ring_buffer_bytes: reg(
                &r,
                "escapewatch_ring_buffer_size_bytes",
                GaugeVec::new(
                    Opts::new(
                        "escapewatch_ring_buffer_size_bytes",
                        "Configured kernel ring buffer sizes.",
                    ),
                    &["ring"],
                ),
            )?,
            registry: r,
        };
        let build = reg(
            &m.registry,
            "escapewatch_build_info",
            IntGaugeVec::new(
                Opts::new(
                    "escapewatch_build_info",
                    "Always 1; the labels say what runs.",
                ),
                &["version", "event_log_schema", "kernel"],
            ),
        )?;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        build
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                &crate::model::LOG_SCHEMA_VERSION.to_string(),
                kernel.trim(),
            ])
            .set(1);
        for kind in EventKind::ALL {
            m.events.with_label_values(&[kind.name()]).inc_by(0);
            m.events_lost.with_label_values(&[kind.name()]).inc_by(0);
        }
        for result in ["success", "failure"] {
            m.config_reloads.with_label_values(&[result]).inc_by(0);
        }
        m.config_last_reload_successful.set(1);
        Ok(m)
    }

    /// Create the alert series of every rule at the severity the policy gives it.
    pub fn init_alert_series(&self, rules: &[&RuleInfo], policy: &Policy) {
        for info in rules {
            let severity = policy.severity(info).as_str();
            self.alerts
                .with_label_values(&[info.id, severity])
                .inc_by(0);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding to a Vec cannot fail on I/O; a metric the encoder rejects is a bug, and a
        // partial page is still more useful to a scraper than none.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// What /healthz and /readyz report, updated by the run loop.
pub struct Health {
    started: Instant,
    /// Milliseconds since `started` at the run loop's last tick.
    heartbeat_ms: AtomicU64,
    ready: AtomicBool,
    /// Why not ready, for the /readyz body.
    not_ready: Mutex<String>,
}

/// The run loop ticks every second; this much silence means it is stuck.
pub const HEARTBEAT_STALE_MS: u64 = 10_000;

impl Health {
    pub fn new() -> Health {
        Health {
            started: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            not_ready: Mutex::new("starting: programs not attached yet".into()),
        }
    }

    pub fn beat(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.heartbeat_ms.store(ms, Ordering::Relaxed);
    }

    pub fn set_ready(&self, ready: bool, why_not: String) {
        if let Ok(mut w) = self.not_ready.lock() {
            *w = why_not;
        }
        self.ready.store(ready, Ordering::Release);
    }

    /// None when alive; otherwise why not.
    pub fn alive(&self) -> Option<String> {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.heartbeat_ms.load(Ordering::Relaxed);
        (now.saturating_sub(last) > HEARTBEAT_STALE_MS)
            .then(|| format!("run loop silent for {} ms", now - last))
    }

    /// None when ready; otherwise why not.
    pub fn ready(&self) -> Option<String> {
        if self.ready.load(Ordering::Acquire) {
            return None;
        }
        Some(
            self.not_ready
                .lock()
                .map(|s| s.clone())
                .unwrap_or_else(|_| "not ready".into()),
        )
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

/// Bind now (so a taken port fails before any program is attached) and serve /metrics,
/// /healthz and /readyz from a thread of its own: a scrape must get through even while the
/// run loop is busy draining a flood, and must never slow that loop down.
pub fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<SocketAddr, MetricsError> {
    let listener = TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| MetricsError::Bind { addr, source })?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || http::run(listener, metrics, health))
        .map_err(MetricsError::Thread)?;
    Ok(bound)
}
