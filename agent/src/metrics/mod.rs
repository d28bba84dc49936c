//! Prometheus metrics and the health endpoints.
//!
//! Every metric is prefixed `escapewatch_`. Labelled counters that alert rules use with
//! `increase()` are created at zero for every label value known at start (every event kind,
//! every rule at its effective severity): a series that appears at 1 has no earlier sample, and
//! `increase()` over it would stay 0, so the first escape would never fire an alert.

mod health;
mod http;

use std::{
    net::{SocketAddr, TcpListener},
    sync::Arc,
    time::Duration,
};

use escapewatch_common::kind::EventKind;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use tracing::{error, info};

pub use health::{HEARTBEAT_STALE_MS, Health, Readiness};

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
    pub events_budgeted: IntCounterVec,
    pub program_errors: IntCounterVec,
    pub decode_errors: IntCounterVec,
    pub event_log_bytes: IntCounter,
    pub event_log_write_errors: IntCounter,
    pub event_log_segments_deleted: IntCounter,
    pub alert_log_bytes: IntCounter,
    pub alert_log_write_errors: IntCounter,
    pub alert_latency: Histogram,
    pub event_latency: Histogram,
    pub processes_tracked: IntGauge,
    pub containers_tracked: IntGauge,
    pub programs_attached: IntGaugeVec,
    pub programs_failed: IntGaugeVec,
    /// Programs the self-check found detached after they had been attached, by program.
    pub programs_detached: IntCounterVec,
    /// 1 for each (rule, hook type, program) serving that rule on this kernel.
    pub rule_hook: IntGaugeVec,
    pub last_event_timestamp: Gauge,
    pub ready: IntGauge,
    /// 1 while /metrics is served; 0 while its address cannot be bound (retried).
    pub metrics_listener_up: IntGauge,
    pub metrics_bind_failures: IntCounter,
    pub config_reloads: IntCounterVec,
    pub config_last_reload_successful: IntGauge,
    pub config_last_reload_timestamp: Gauge,
    pub ring_buffer_bytes: GaugeVec,
    /// Workload metadata: alerts with (hit) / without (miss) it, lookups found, unknown,
    /// dropped (queue full), and source errors.
    pub workload_metadata: IntCounterVec,
    /// Output sinks: alerts sent, dropped (queue full), failed (after retries), retried.
    pub sink_alerts: IntCounterVec,
    /// Repeats folded into a coalesced summary, by rule.
    pub alerts_coalesced: IntCounterVec,
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
            events_budgeted: counter_vec!(
                &r,
                "escapewatch_events_budgeted_total",
                "Attempt-class events (failed opens, refused namespace calls) the kernel counted \
                 but did not send because their container was over its budget, by kind.",
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
            event_log_segments_deleted: reg(
                &r,
                "escapewatch_event_log_segments_deleted_total",
                IntCounter::new(
                    "escapewatch_event_log_segments_deleted_total",
                    "Rotated event-log segments deleted by retention (logs.event_log_keep): their events are gone from this host.",
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
            programs_detached: counter_vec!(
                &r,
                "escapewatch_programs_detached_total",
                "eBPF programs found detached (link gone or detached from its target) after the agent attached them, by program; each raises detector-tampered.",
                &["program"]
            ),
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
            metrics_listener_up: reg(
                &r,
                "escapewatch_metrics_listener_up",
                IntGauge::new(
                    "escapewatch_metrics_listener_up",
                    "1 while the metrics listener is bound; 0 while its address is taken (the bind is retried; nobody can scrape the 0, escapewatch_metrics_bind_failures_total keeps the record).",
                ),
            )?,
            metrics_bind_failures: reg(
                &r,
                "escapewatch_metrics_bind_failures_total",
                IntCounter::new(
                    "escapewatch_metrics_bind_failures_total",
                    "Failed attempts to bind the metrics address (another process holds it).",
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
            workload_metadata: counter_vec!(
                &r,
                "escapewatch_workload_metadata_total",
                "Container metadata from the runtimes: alerts that carried it (hit) or went out \
                 without it (miss), lookups found, unknown, dropped (queue full) and failed \
                 (error: socket absent, refused or slow).",
                &["result"]
            ),
            sink_alerts: counter_vec!(
                &r,
                "escapewatch_sink_alerts_total",
                "Alerts of each output sink (webhook0, syslog, …): sent, dropped (its queue was \
                 full: the sink is slower than the alerts), failed (after its retries), and \
                 retried attempts.",
                &["sink", "result"]
            ),
            alerts_coalesced: counter_vec!(
                &r,
                "escapewatch_alerts_coalesced_total",
                "Alerts folded into a coalesced summary (identical to an earlier one within \
                 alerts.coalesce_window_ms), by rule; the summary carries their count.",
                &["rule"]
            ),
            registry: r,
        };
        for result in ["hit", "miss", "found", "unknown", "dropped", "error"] {
            m.workload_metadata.with_label_values(&[result]);
        }
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
            m.events_budgeted
                .with_label_values(&[kind.name()])
                .inc_by(0);
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

/// How often a metrics address that could not be bound is tried again.
pub const BIND_RETRY: Duration = Duration::from_secs(10);

/// Serve /metrics, /healthz and /readyz on `addr` from a thread of its own: a scrape must get
/// through even while the run loop is busy draining a flood, and must never slow that loop
/// down.
///
/// A taken port does not stop the agent: whoever binds 9464 first must not be able to switch
/// detection off. The bind is tried now and then every [`BIND_RETRY`] until it succeeds;
/// meanwhile each failure is logged as an error naming the address, counted
/// (`escapewatch_metrics_bind_failures_total`, readable once the listener is up), and holds
/// readiness back (`escapewatch_metrics_listener_up 0`, /readyz 503 until then).
/// Returns the bound address when the first attempt succeeded.
pub fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<Option<SocketAddr>, MetricsError> {
    let first = bind(addr);
    let bound = match &first {
        Ok((_, bound)) => Some(*bound),
        Err(e) => {
            listener_down(e, &metrics, &health);
            None
        }
    };
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            let mut attempt = first;
            let listener = loop {
                match attempt {
                    Ok((listener, bound)) => {
                        listener_up(bound, &metrics, &health);
                        break listener;
                    }
                    Err(_) => {
                        std::thread::sleep(BIND_RETRY);
                        attempt = bind(addr);
                        if let Err(e) = &attempt {
                            listener_down(e, &metrics, &health);
                        }
                    }
                }
            };
            http::run(listener, metrics, health);
        })
        .map_err(MetricsError::Thread)?;
    Ok(bound)
}

fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), MetricsError> {
    let err = |source| MetricsError::Bind { addr, source };
    let listener = TcpListener::bind(addr).map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    Ok((listener, bound))
}

fn listener_down(e: &MetricsError, metrics: &Metrics, health: &Health) {
    metrics.metrics_bind_failures.inc();
    metrics.metrics_listener_up.set(0);
    let MetricsError::Bind { addr, .. } = e else {
        return;
    };
    health.set(
        Readiness::MetricsListener,
        Some(format!("metrics listener down: cannot bind {addr}")),
    );
    error!(
        addr = %addr,
        error = %crate::errors::chain(e),
        retry_seconds = BIND_RETRY.as_secs(),
        "metrics are not served: cannot bind {addr}; detection and alerting go on, the bind is retried every {} s (escapewatch_metrics_bind_failures_total counts the failures)",
        BIND_RETRY.as_secs()
    );
}

fn listener_up(bound: SocketAddr, metrics: &Metrics, health: &Health) {
    metrics.metrics_listener_up.set(1);
    health.set(Readiness::MetricsListener, None);
    info!(addr = %bound, "metrics listening on http://{bound}/metrics (/healthz, /readyz)");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    }

    /// Whoever holds the port first must not keep the agent from starting: `serve` returns,
    /// readiness and the gauge say the listener is down, and it serves once the port is free.
    #[test]
    fn a_taken_port_is_retried_not_fatal() {
        let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = squatter.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new().unwrap());
        let health = Arc::new(Health::new());
        health.set(Readiness::Starting, None);
        let bound =
            serve(addr, metrics.clone(), health.clone()).expect("a taken port is not fatal");
        assert_eq!(bound, None);
        assert_eq!(metrics.metrics_listener_up.get(), 0);
        assert_eq!(metrics.metrics_bind_failures.get(), 1);
        let why = health.ready().expect("not ready while metrics are down");
        assert!(why.contains(&addr.to_string()), "{why}");
        drop(squatter);
        let deadline = std::time::Instant::now() + BIND_RETRY + Duration::from_secs(3);
        let body = loop {
            if let Some(b) = get(addr, "/metrics").filter(|b| b.starts_with("HTTP/1.1 200")) {
                break b;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "/metrics not served within the retry interval"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(body.contains("escapewatch_metrics_listener_up 1"), "{body}");
        assert!(
            body.contains("escapewatch_metrics_bind_failures_total 1"),
            "{body}"
        );
        assert_eq!(health.ready(), None);
        assert!(get(addr, "/readyz").unwrap().starts_with("HTTP/1.1 200"));
    }
}
