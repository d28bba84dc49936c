//! `escapewatch run`: the node daemon. Load, collect, enrich, log, detect, alert; serve metrics
//! and health; reload the policy and reopen the logs on SIGHUP; drain and flush on
//! SIGTERM/SIGINT.

mod marker;
mod pipeline;
mod retention;
mod selfcheck;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

pub use pipeline::{agent_process, boottime_ns, unix_now_secs};

use crate::{
    collect::{CollectError, Collector},
    config::{Config, PrecisionHook},
    detect::{self, Engine, rules},
    enrich::workload::{self, WorkloadCache},
    enrich::{Enricher, LiveSystem, cgroup::CgroupResolver, host, procfs_scan},
    eventlog::{self, EventLog, EventLogConfig, EventLogError},
    identity,
    loader::{self, LoadError, Loaded},
    metrics::{self, Health, Metrics, MetricsError, Readiness},
    model::{LOG_FORMAT, LOG_SCHEMA_VERSION, LogHeader},
    rules_report,
    runtime_watch::RuntimeWatch,
    sink::{JsonLines, SinkError},
};
use marker::RunMarker;
use pipeline::{Pipeline, PipelineParts};
use selfcheck::SelfCheck;

/// How often the rings are drained without a wake-up from the kernel: the lifecycle and
/// attempt rings wake the agent only when a quarter full. 4 ms keeps an alert made from their
/// records (an exec's checks) inside the 5 ms syscall-to-alert target, for 250 short wake-ups
/// a second when idle.
const DRAIN_INTERVAL: Duration = Duration::from_millis(4);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Collect(#[from] CollectError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    EventLog(#[from] EventLogError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("the configuration's rule policy is invalid")]
    Policy(#[source] detect::policy::PolicyError),
    #[error("cannot install the {signal} handler")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting on the ring buffers failed")]
    Poll(#[source] std::io::Error),
}

/// The config and the CLI flags that override it (kept apart: SIGHUP re-reads the file and the
/// flags still win).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: Config,
    /// The file `config` was read from. None: no file was given and the default did not exist;
    /// SIGHUP then looks for the default file again.
    pub config_path: Option<PathBuf>,
    /// `--event-log`: overrides logs.event_log.
    pub event_log: Option<PathBuf>,
    /// `--event-log-format`: overrides logs.event_log_format.
    pub event_log_format: Option<eventlog::LogFormat>,
    /// `--alert-log`: overrides logs.alert_log.
    pub alert_log: Option<PathBuf>,
    /// `--metrics-addr`: overrides metrics.listen (and serves even when metrics.enabled=false).
    pub metrics_addr: Option<SocketAddr>,
    /// Kernel BTF to read offsets from instead of /sys/kernel/btf/vmlinux.
    pub btf: Option<PathBuf>,
    /// `--disable-hooks` / ESCAPEWATCH_DISABLE_HOOKS: overrides hooks.disable.
    pub disable_hooks: Option<Vec<PrecisionHook>>,
}

impl RunOptions {
    fn event_log_config(&self) -> Option<EventLogConfig> {
        let path = self
            .event_log
            .clone()
            .or_else(|| self.config.logs.event_log.clone())?;
        Some(EventLogConfig {
            path,
            max_bytes: self.config.logs.event_log_max_bytes,
            keep: self.config.logs.event_log_keep,
            format: self
                .event_log_format
                .unwrap_or(self.config.logs.event_log_format),
        })
    }

    fn alert_log(&self) -> Option<PathBuf> {
        self.alert_log
            .clone()
            .or_else(|| self.config.logs.alert_log.clone())
    }

    fn disabled_hooks(&self) -> Vec<PrecisionHook> {
        self.disable_hooks
            .clone()
            .unwrap_or_else(|| self.config.hooks.disable.clone())
    }

    fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr.or(self
            .config
            .metrics
            .enabled
            .then_some(self.config.metrics.listen))
    }
}

/// Tell systemd (Type=notify) that the agent is ready, if it is listening.
fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => return warn!(error = %e, "sd_notify: cannot create a socket"),
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let result = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    match result {
        Ok(_) => info!("notified systemd: {state}"),
        Err(e) => warn!(error = %e, socket = ?path, "sd_notify {state} failed"),
    }
}

fn signal_stream(
    kind: SignalKind,
    name: &'static str,
) -> Result<tokio::signal::unix::Signal, RunError> {
    signal(kind).map_err(|source| RunError::Signal {
        signal: name,
        source,
    })
}

/// Programs attached and failed, by hook type, into metrics and the readiness state.
fn report_attachments(loaded: &Loaded, metrics: &Metrics, health: &Health) {
    for a in &loaded.attachments {
        let hook = a.hook.kind_name();
        metrics.programs_attached.with_label_values(&[hook]).add(0);
        metrics.programs_failed.with_label_values(&[hook]).add(0);
        if a.attached() {
            metrics.programs_attached.with_label_values(&[hook]).inc();
        } else if a.failed() {
            metrics.programs_failed.with_label_values(&[hook]).inc();
        }
    }
    // Which hook serves each rule on this kernel (fentry where the kernel has trampolines,
    // tracepoints elsewhere): logged once and exported.
    for info in detect::all_rule_infos() {
        let serving = rules_report::programs(info, |spec| {
            loaded
                .attachments
                .iter()
                .any(|a| a.program == spec.name && a.attached())
        });
        if !info.reads_kernel() {
            continue;
        }
        for p in &serving {
            metrics
                .rule_hook
                .with_label_values(&[info.id, p.hook.kind_name(), p.name])
                .set(1);
        }
        let hooks: Vec<String> = serving
            .iter()
            .map(|p| format!("{}/{}", p.hook.kind_name(), p.name))
            .collect();
        info!(rule = info.id, hooks = %hooks.join(","), "rule served by");
    }
    // A hook this kernel does not have (no module tracepoints without CONFIG_MODULES) is not a
    // failure: there is nothing there to watch.
    let failed: Vec<&str> = loaded
        .attachments
        .iter()
        .filter(|a| a.failed())
        .map(|a| a.program)
        .collect();
    health.set(
        Readiness::Programs,
        (!failed.is_empty()).then(|| format!("programs not attached: {}", failed.join(", "))),
    );
    health.set(Readiness::Starting, None);
    metrics.ready.set(i64::from(health.ready().is_none()));
}

/// How often the node's addresses and runtime sockets are read again.
const NET_FACTS_REFRESH_SECS: u32 = 10;

pub async fn run(mut opts: RunOptions) -> Result<(), RunError> {
    let mut sigterm = signal_stream(SignalKind::terminate(), "SIGTERM")?;
    let mut sigint = signal_stream(SignalKind::interrupt(), "SIGINT")?;
    let mut sighup = signal_stream(SignalKind::hangup(), "SIGHUP")?;

    let metrics = Arc::new(Metrics::new()?);
    let health = Arc::new(Health::new());
    health.beat();
    let policy = opts.config.policy().map_err(RunError::Policy)?;
    metrics.init_alert_series(&detect::all_rule_infos(), &policy);
    metrics.config_last_reload_timestamp.set(unix_now_secs());
    let rings = opts.config.ring_buffers;
    metrics
        .ring_buffer_bytes
        .with_label_values(&["critical"])
        .set(f64::from(rings.critical_bytes));
    metrics
        .ring_buffer_bytes
        .with_label_values(&["lifecycle"])
        .set(f64::from(rings.lifecycle_bytes));

    let proc_root = PathBuf::from("/proc");
    let host_ns = host::host_namespaces(&proc_root);
    info!(source = %host_ns.source, namespaces = ?host_ns.namespaces, "host namespaces");
    let boot = host::boot_time_unix_ns();

    // Open the logs before loading, so a bad path fails before anything is attached.
    let header = LogHeader {
        format: LOG_FORMAT.into(),
        schema_version: LOG_SCHEMA_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").into(),
        hostname: host::hostname(),
        boot_time: host::rfc3339_ns(boot),
        host_namespaces: host_ns.namespaces,
        host_namespaces_source: host_ns.source.clone(),
        rule_set_hash: eventlog::rule_set_hash(rules::infos()),
        segment: 0,
        node_name: identity::node_name(
            opts.config.node.name.as_deref(),
            std::env::var("NODE_NAME").ok().as_deref(),
            &host::hostname(),
        ),
        cluster: opts.config.node.cluster.clone().unwrap_or_default(),
        boot_id: identity::boot_id(&proc_root),
        coalesce_window_ms: opts.config.alerts.coalesce_window_ms,
    };
    info!(
        node = header.node_name,
        cluster = header.cluster,
        "node identity"
    );
    // Read before anything can fail: a start that fails keeps the previous run's marker for the
    // next one. Without an event log there is no session to record the report in: not checked.
    let run_marker = opts
        .event_log_config()
        .map(|cfg| RunMarker::beside(&cfg.path));
    let previous_run = run_marker.as_ref().and_then(RunMarker::previous_run);
    let event_log_config = opts.event_log_config();
    let event_log = event_log_config
        .clone()
        .map(|cfg| EventLog::open(cfg, header.clone()))
        .transpose()?;
    let alert_log = opts.alert_log();
    let alerts = JsonLines::open(alert_log.as_deref())?;

    let mut loaded = loader::load(&loader::LoadOptions {
        rings,
        btf: opts.btf.clone(),
        host_mnt_ns: host_ns.namespaces.mnt,
        cgroup2_root: crate::enrich::cgroup::cgroup2_mount(&proc_root),
        disabled: opts.disabled_hooks(),
        watched_ports: opts.config.runtime_api.ports.clone(),
    })?;
    let mut collector = Collector::new(&mut loaded.ebpf)?;
    // After loading, so privilege and BTF problems are reported as such. A taken port is
    // not fatal (whoever binds it first must not be able to keep the detector off): it is
    // logged, counted, holds /readyz at 503 and is retried. READY=1 is still sent: systemd's
    // readiness means detection is up, and it is; withholding it would have systemd kill
    // and restart the agent in a loop, which is the blinding the squatter wanted.
    if let Some(addr) = opts.metrics_addr() {
        metrics::serve(addr, metrics.clone(), health.clone())?;
    }
    let runtime_watch = loader::RuntimeInodes::new(&mut loaded.ebpf).map(RuntimeWatch::new);

    let system = LiveSystem {
        cgroups: CgroupResolver::new(&proc_root),
        proc_root: proc_root.clone(),
        probe: Default::default(),
        host_probe: crate::enrich::probe::Prober::with(crate::enrich::probe::same_host_file),
    };
    let workload = if opts.config.workload.enabled {
        match WorkloadCache::start(
            workload::host_sources(&opts.config.workload),
            workload::WorkloadConfig::default(),
            metrics.workload_metadata.clone(),
        ) {
            Ok(c) => Some(c),
            Err(e) => {
                warn!(error = %e, "cannot start the workload metadata thread: alerts go out without container names and images");
                None
            }
        }
    } else {
        None
    };
    let sinks = crate::sink::fanout(&opts.config.sinks, &metrics.sink_alerts)
        .map_err(crate::sink::SinkError::Thread)?;
    if !sinks.is_empty() {
        info!(sinks = ?sinks.names(), "output sinks");
    }
    let host_root_dev = host::root_dev(&proc_root, host_ns.namespaces.mnt);
    info!(dev = ?host_root_dev.map(crate::enrich::dev_name), "host root filesystem");
    let mut enricher = Enricher::new(host_ns, boot, system).with_host_root_dev(host_root_dev);
    let net_facts =
        crate::enrich::netapi::NetFacts::read(&proc_root, &opts.config.runtime_api.sockets);
    info!(
        node_addresses = net_facts.node_addrs.len(),
        runtime_sockets = ?net_facts.runtime_sockets.iter().map(|s| &s.path).collect::<Vec<_>>(),
        "runtime API endpoints of the node"
    );
    enricher.set_net_facts(net_facts);
    enricher.seed(procfs_scan::scan(&proc_root));
    info!(
        processes = enricher.processes_tracked(),
        "process table seeded from /proc"
    );

    let mut pipeline = Pipeline::new(PipelineParts {
        enricher,
        engine: Engine::with_policy(policy),
        metrics: metrics.clone(),
        runtime_watch,
        event_log,
        event_log_config,
        header,
        alerts,
        alert_log_path: alert_log,
        boot_unix_ns: boot,
        workload,
        sinks,
    });

    report_attachments(&loaded, &metrics, &health);
    let mut self_check = SelfCheck::new(&loaded, &metrics);
    // The first event of the session: the previous run ended without a clean stop.
    if let Some(report) = previous_run {
        pipeline.report(report);
    }
    if let Some(m) = &run_marker {
        m.write(host::rfc3339_ns(boot + i128::from(boottime_ns())));
    }
    // A fresh agent is not "silent": the last-event clock starts now.
    metrics.last_event_timestamp.set(unix_now_secs());
    let attached = loaded.attachments.iter().filter(|a| a.attached()).count();
    info!(
        attached,
        total = loaded.attachments.len(),
        complete = loaded.all_attached(),
        "escapewatch is ready: watching for container escapes"
    );
    sd_notify("READY=1");

    let mut batch = Vec::with_capacity(1024);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // The lifecycle and attempt rings do not wake the agent for each record (see the eBPF
    // side's `submit_flags`): this timer drains them, well inside the 5 ms alert latency.
    let mut drain_tick = tokio::time::interval(DRAIN_INTERVAL);
    drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Seconds until the node's addresses and runtime sockets are read again (they change
    // with DHCP, new interfaces, a runtime restarted with a new socket inode).
    let mut net_refresh = NET_FACTS_REFRESH_SECS;
    loop {
        tokio::select! {
            _ = sigterm.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = sigint.recv() => { info!("SIGINT: shutting down"); break; }
            _ = sighup.recv() => {
                sd_notify("RELOADING=1");
                reload(&mut opts, &mut pipeline);
                sd_notify("READY=1");
                continue;
            }
            r = collector.readable() => r.map_err(RunError::Poll)?,
            _ = drain_tick.tick() => {}
            _ = tick.tick() => {
                health.beat();
                pipeline.tick(&collector);
                net_refresh -= 1;
                if net_refresh == 0 {
                    net_refresh = NET_FACTS_REFRESH_SECS;
                    pipeline.enricher.set_net_facts(crate::enrich::netapi::NetFacts::read(
                        &proc_root,
                        &opts.config.runtime_api.sockets,
                    ));
                }
                if let Some(report) = self_check.run(&metrics, &health) {
                    pipeline.report(report);
                }
                metrics.ready.set(i64::from(health.ready().is_none()));
                continue;
            }
        }
        let stats = collector.drain(&mut batch);
        pipeline.count_decode_errors(stats.decode_errors);
        pipeline.process(&mut batch);
    }

    sd_notify("STOPPING=1");
    health.set(Readiness::ShuttingDown, Some("shutting down".into()));
    // Detach first so nothing new arrives, then drain what the kernel already submitted.
    drop(loaded);
    let stats = collector.drain(&mut batch);
    pipeline.count_decode_errors(stats.decode_errors);
    pipeline.process(&mut batch);
    pipeline.tick(&collector);
    pipeline.close();
    if let Some(m) = &run_marker {
        m.remove();
    }
    Ok(())
}

/// SIGHUP: re-read the config; a valid one replaces the policy (rules enabled, severities,
/// allowlists), an invalid one is rejected with the old one kept. Either way the logs are
/// reopened, so logrotate works even while someone is fixing the config.
fn reload(opts: &mut RunOptions, pipeline: &mut Pipeline) {
    let path = opts
        .config_path
        .clone()
        .or_else(|| Some(PathBuf::from(crate::config::DEFAULT_CONFIG_PATH)).filter(|p| p.exists()));
    let result = Config::load_or_default(path.as_deref())
        .map_err(anyhow_free)
        .and_then(|c| c.policy().map(|p| (c, p)).map_err(|e| e.to_string()));
    let metrics = pipeline.metrics.clone();
    match result {
        Ok((config, policy)) => {
            for (what, changed) in [
                (
                    "ring_buffers",
                    config.ring_buffers != opts.config.ring_buffers,
                ),
                ("metrics", config.metrics != opts.config.metrics),
                ("hooks", config.hooks != opts.config.hooks),
            ] {
                if changed {
                    warn!(
                        section = what,
                        "config reload: [{what}] changed; it takes effect at the next restart"
                    );
                }
            }
            metrics.init_alert_series(&detect::all_rule_infos(), &policy);
            pipeline.engine.set_policy(policy);
            opts.config = config;
            opts.config_path = path;
            metrics.config_reloads.with_label_values(&["success"]).inc();
            metrics.config_last_reload_successful.set(1);
            metrics.config_last_reload_timestamp.set(unix_now_secs());
            info!(config = ?opts.config_path, rules = ?opts.config.rules.keys().collect::<Vec<_>>(), "config reloaded: new rule policy in force");
        }
        Err(e) => {
            metrics.config_reloads.with_label_values(&["failure"]).inc();
            metrics.config_last_reload_successful.set(0);
            error!(error = %e, "config reload rejected; the previous config stays in force");
        }
    }
    pipeline.reopen_alert_log(opts.alert_log());
    pipeline.reopen_event_log(opts.event_log_config());
}

/// The full error chain in one line (no anyhow in the library).
fn anyhow_free(e: crate::config::ConfigError) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
