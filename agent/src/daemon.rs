//! `escapewatch run`: the node daemon. Load, collect, enrich, log, detect, alert; drain and
//! flush on SIGTERM/SIGINT.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use escapewatch_common::{kind::EventKind, programs::PROGRAMS, user::RawEvent};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::{
    collect::{CollectError, Collector},
    config::Config,
    detect::Engine,
    detect::rules,
    enrich::{Enricher, LiveSystem, cgroup::CgroupResolver, host, procfs_scan},
    eventlog::{self, EventLog, EventLogConfig, EventLogError},
    loader::{self, LoadError},
    model::{LOG_FORMAT, LOG_SCHEMA_VERSION, LogHeader},
    sink::{JsonLines, SinkError},
};

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
    #[error("cannot install the {signal} handler")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting on the ring buffers failed")]
    Poll(#[source] std::io::Error),
}

/// Paths after CLI flags override the config file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: Config,
    pub event_log: Option<PathBuf>,
    pub alert_log: Option<PathBuf>,
    /// Kernel BTF to read offsets from instead of /sys/kernel/btf/vmlinux.
    pub btf: Option<PathBuf>,
}

/// Everything downstream of the ring buffers, shared by the main loop and the final drain.
struct Pipeline {
    enricher: Enricher<LiveSystem>,
    engine: Engine,
    event_log: Option<EventLog>,
    alerts: JsonLines,
    decode_errors: u64,
}

impl Pipeline {
    fn process(&mut self, batch: &mut Vec<RawEvent>) -> Result<(), SinkError> {
        for raw in batch.drain(..) {
            let event = self.enricher.enrich(&raw);
            // Never fails: write errors are counted and logged by the event log itself.
            if let Some(log) = &mut self.event_log {
                log.write(&event);
            }
            for alert in self.engine.process(&event) {
                self.alerts.write(&alert)?;
            }
        }
        self.alerts.flush()
    }
}

/// Tell systemd (Type=notify) that the agent is ready, if it is listening.
fn sd_notify_ready() {
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
            .and_then(|addr| sock.send_to_addr(b"READY=1", &addr))
    } else {
        sock.send_to(b"READY=1", &path)
    };
    match result {
        Ok(_) => info!("notified systemd: READY=1"),
        Err(e) => warn!(error = %e, socket = ?path, "sd_notify READY=1 failed"),
    }
}

fn kind_name(id: u32) -> String {
    EventKind::try_from(id).map_or_else(|e| format!("kind-{}", e.0), |k| k.name().to_owned())
}

/// Report new kernel-side losses and program errors.
fn report_losses(
    collector: &Collector,
    seen: &mut BTreeMap<u32, u64>,
    seen_err: &mut BTreeMap<u32, u64>,
) {
    for (kind, total) in collector.lost_by_kind() {
        let before = seen.insert(kind, total).unwrap_or(0);
        if total > before {
            warn!(
                kind = kind_name(kind),
                lost = total - before,
                total,
                "kernel ring buffer full: events lost (raise ring_buffers sizes in the config)"
            );
        }
    }
    for (prog, total) in collector.program_errors() {
        let before = seen_err.insert(prog, total).unwrap_or(0);
        if total > before {
            let name = PROGRAMS.get(prog as usize).map_or("?", |p| p.name);
            warn!(
                program = name,
                errors = total - before,
                total,
                "kernel reads failed in program"
            );
        }
    }
}

pub async fn run(opts: RunOptions) -> Result<(), RunError> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(|source| RunError::Signal {
        signal: "SIGTERM",
        source,
    })?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|source| RunError::Signal {
        signal: "SIGINT",
        source,
    })?;

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
    };
    let event_log = opts
        .event_log
        .as_ref()
        .map(|path| {
            let cfg = EventLogConfig {
                path: path.clone(),
                max_bytes: opts.config.logs.event_log_max_bytes,
                keep: opts.config.logs.event_log_keep,
            };
            EventLog::open(cfg, header)
        })
        .transpose()?;
    let alerts = JsonLines::open(opts.alert_log.as_deref())?;

    let mut loaded = loader::load(opts.config.ring_buffers.sizes(), opts.btf.as_deref())?;
    let mut collector = Collector::new(&mut loaded.ebpf)?;

    let system = LiveSystem {
        cgroups: CgroupResolver::new(&proc_root),
        proc_root: proc_root.clone(),
    };
    let mut enricher = Enricher::new(host_ns, boot, system);
    enricher.seed(procfs_scan::scan(&proc_root));
    info!(
        processes = enricher.processes_tracked(),
        "process table seeded from /proc"
    );

    let mut pipeline = Pipeline {
        enricher,
        engine: Engine::new(),
        event_log,
        alerts,
        decode_errors: 0,
    };

    let attached = loaded
        .attachments
        .iter()
        .filter(|a| a.error.is_none())
        .count();
    info!(
        attached,
        total = loaded.attachments.len(),
        complete = loaded.all_attached(),
        "escapewatch is ready: watching for container escapes"
    );
    sd_notify_ready();

    let mut batch = Vec::with_capacity(1024);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut lost_seen = BTreeMap::new();
    let mut errors_seen = BTreeMap::new();
    loop {
        tokio::select! {
            _ = sigterm.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = sigint.recv() => { info!("SIGINT: shutting down"); break; }
            r = collector.readable() => r.map_err(RunError::Poll)?,
            _ = tick.tick() => {
                report_losses(&collector, &mut lost_seen, &mut errors_seen);
                continue;
            }
        }
        let stats = collector.drain(&mut batch);
        count_decode_errors(&mut pipeline, stats.decode_errors);
        if let Err(e) = pipeline.process(&mut batch) {
            error!(error = %e, "writing failed");
            return Err(e.into());
        }
    }

    // Detach first so nothing new arrives, then drain what the kernel already submitted.
    drop(loaded);
    let stats = collector.drain(&mut batch);
    count_decode_errors(&mut pipeline, stats.decode_errors);
    pipeline.process(&mut batch)?;
    report_losses(&collector, &mut lost_seen, &mut errors_seen);
    if let Some(log) = pipeline.event_log.take() {
        // Waits for the compression of the last rotated segment.
        let s = log.close();
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
    info!(
        decode_errors = pipeline.decode_errors,
        "drained and flushed; bye"
    );
    Ok(())
}

fn count_decode_errors(
    pipeline: &mut Pipeline,
    errors: Vec<escapewatch_common::user::DecodeError>,
) {
    for e in errors {
        pipeline.decode_errors += 1;
        if pipeline.decode_errors <= 10 || pipeline.decode_errors.is_power_of_two() {
            warn!(error = %e, total = pipeline.decode_errors, "dropped an undecodable kernel record");
        }
    }
}
