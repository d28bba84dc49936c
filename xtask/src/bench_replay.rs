//! Replay speed: events per second of `escapewatch replay` on one core over a large generated
//! log (a figure of `cargo xtask bench`).
//!
//! The log repeats the recorded fixtures' events with fresh ids, so the engine sees real
//! event shapes and raises real alerts (one per fixture pass).

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

pub struct ReplayResult {
    pub events: u64,
    pub mib: f64,
    pub alerts: usize,
    pub secs: f64,
    pub rate: f64,
}

pub fn run(bin: &Path, events: u64) -> Result<ReplayResult> {
    let dir = workspace_root().join("target/bench");
    fs::create_dir_all(&dir)?;
    let log = dir.join("replay-bench.events.jsonl");
    let events = generate(&log, events)?;
    let bytes = fs::metadata(&log)?.len();
    // One core: taskset pins the replay (it is single-threaded by design anyway).
    // Three runs, the median: the first one also pays for reading the fresh log from disk.
    let mut runs = Vec::new();
    let mut out = None;
    for _ in 0..3 {
        let start = Instant::now();
        let o = Command::new("taskset")
            .args(["-c", "0"])
            .arg(bin)
            .arg("replay")
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .output()
            .context("running taskset -c 0 escapewatch replay")?;
        runs.push(start.elapsed().as_secs_f64());
        if !o.status.success() {
            bail!("escapewatch replay failed on the bench log");
        }
        out = Some(o);
    }
    let out = out.context("three replay runs")?;
    runs.sort_by(f64::total_cmp);
    let secs = runs[1];
    let alerts = out.stdout.iter().filter(|&&b| b == b'\n').count();
    let rate = events as f64 / secs;
    let mib = bytes as f64 / (1 << 20) as f64;
    println!(
        "xtask bench: replay of {events} events ({mib:.0} MiB, {alerts} alerts) in {secs:.2} s on one core: {rate:.0} events/s"
    );
    let _ = fs::remove_file(&log);
    Ok(ReplayResult {
        events,
        mib,
        alerts,
        secs,
        rate,
    })
}
