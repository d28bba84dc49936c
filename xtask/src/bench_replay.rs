//! Replay speed: events per second of `escapewatch replay` on one core over a large generated
//! log (a figure of `cargo xtask bench`).
//!
//! The log repeats the recorded fixtures' events with fresh ids, so the engine sees real
//! event shapes and raises real alerts (one per fixture pass). It is replayed twice: as
//! JSON Lines and converted to the binary format (`escapewatch export --to binary`), the
//! default of `--event-log`; both must raise the same alerts.

use std::{
    fs,
    io::{BufWriter, Write as _},
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::workspace_root;

fn generate(out: &Path, events: u64) -> Result<u64> {
    let fixture = fs::read_to_string(
        workspace_root().join("tests/fixtures/incident-two-containers.events.jsonl"),
    )
    .context("reading the fixture the bench log is made of")?;
    let mut lines = fixture.lines();
    let header = lines.next().context("fixture has a header")?;
    let bodies: Vec<&str> = lines
        .map(|l| {
            // Every event line starts with {"id":N, — keep what follows.
            l.split_once(',').map_or(l, |(_, rest)| rest)
        })
        .collect();
    let mut w = BufWriter::new(fs::File::create(out)?);
    writeln!(w, "{header}")?;
    let mut id = 0u64;
    while id < events {
        for body in &bodies {
            id += 1;
            writeln!(w, "{{\"id\":{id},{body}")?;
        }
    }
    w.flush()?;
    Ok(id)
}

// `cpu_secs` and `jsonl` are for the bench report's replay row (xtask/src/bench/report.rs
// shows the binary figures today; the JSON Lines ones are printed by this phase).
#[allow(dead_code)]
pub struct ReplayResult {
    /// The binary log (the default format of `--event-log`): what the target is about.
    pub events: u64,
    pub mib: f64,
    pub alerts: usize,
    pub secs: f64,
    pub rate: f64,
    /// CPU time (user + system) of the median run: on a shared machine the wall clock also
    /// counts other work on core 0.
    pub cpu_secs: f64,
    /// The same events as JSON Lines (the format of logs written before the binary one).
    pub jsonl: Phase,
}

/// One format's figures.
pub struct Phase {
    pub mib: f64,
    pub alerts: usize,
    pub secs: f64,
    pub rate: f64,
    pub cpu_secs: f64,
}

/// CPU time of the children reaped so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Three pinned replays of `log`, the median (the first one also pays for reading the
/// fresh log from disk).
fn replay_phase(bin: &Path, log: &Path, events: u64, what: &str) -> Result<Phase> {
    let bytes = fs::metadata(log)?.len();
    let mut runs = Vec::new();
    let mut out = None;
    for _ in 0..3 {
        let cpu0 = children_cpu();
        let start = Instant::now();
        // One core: taskset pins the replay (it is single-threaded by design anyway).
        let o = Command::new("taskset")
            .args(["-c", "0"])
            .arg(bin)
            .arg("replay")
            .arg(log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .output()
            .context("running taskset -c 0 escapewatch replay")?;
        runs.push((start.elapsed().as_secs_f64(), children_cpu() - cpu0));
        if !o.status.success() {
            bail!(
                "escapewatch replay failed on the bench log {}",
                log.display()
            );
        }
        out = Some(o);
    }
    let out = out.context("three replay runs")?;
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (secs, cpu_secs) = runs[1];
    let alerts = out.stdout.iter().filter(|&&b| b == b'\n').count();
    let rate = events as f64 / secs;
    let mib = bytes as f64 / (1 << 20) as f64;
    println!(
        "xtask bench: replay of {events} events, {what} ({mib:.0} MiB, {alerts} alerts) in {secs:.2} s on one core: {rate:.0} events/s ({:.0} events per CPU second)",
        events as f64 / cpu_secs
    );
    Ok(Phase {
        mib,
        alerts,
        secs,
        rate,
        cpu_secs,
    })
}

pub fn run(bin: &Path, events: u64) -> Result<ReplayResult> {
    let dir = workspace_root().join("target/bench");
    fs::create_dir_all(&dir)?;
    let jsonl_log = dir.join("replay-bench.events.jsonl");
    let binary_log = dir.join("replay-bench.events.bin");
    let events = generate(&jsonl_log, events)?;
    // The binary log of the same events, made by the agent's own converter.
    let status = Command::new(bin)
        .args(["export", "--to", "binary"])
        .arg(&jsonl_log)
        .stdout(fs::File::create(&binary_log)?)
        .stderr(Stdio::null())
        .status()
        .context("running escapewatch export --to binary")?;
    if !status.success() {
        bail!("escapewatch export --to binary failed on the bench log");
    }
    let jsonl = replay_phase(bin, &jsonl_log, events, "JSON Lines")?;
    let binary = replay_phase(bin, &binary_log, events, "binary")?;
    if binary.alerts != jsonl.alerts {
        bail!(
            "the binary log raised {} alerts, the JSON Lines log {}",
            binary.alerts,
            jsonl.alerts
        );
    }
    let _ = fs::remove_file(&jsonl_log);
    let _ = fs::remove_file(&binary_log);
    Ok(ReplayResult {
        events,
        mib: binary.mib,
        alerts: binary.alerts,
        secs: binary.secs,
        rate: binary.rate,
        cpu_secs: binary.cpu_secs,
        jsonl,
    })
}
