//! Replay speed: events per second of `escapewatch replay` on one core over a large generated
//! log, appended as a row to BENCHMARKS.md.
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

const EVENTS: u64 = 300_000;

fn generate(out: &Path) -> Result<u64> {
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
    while id < EVENTS {
        for body in &bodies {
            id += 1;
            writeln!(w, "{{\"id\":{id},{body}")?;
        }
    }
    w.flush()?;
    Ok(id)
}

pub fn run(bin: &Path) -> Result<f64> {
    let dir = workspace_root().join("target/bench");
    fs::create_dir_all(&dir)?;
    let log = dir.join("replay-bench.events.jsonl");
    let events = generate(&log)?;
    let bytes = fs::metadata(&log)?.len();
    // One core: taskset pins the replay (it is single-threaded by design anyway).
    let start = Instant::now();
    let out = Command::new("taskset")
        .args(["-c", "0"])
        .arg(bin)
        .arg("replay")
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .context("running taskset -c 0 escapewatch replay")?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("escapewatch replay failed on the bench log");
    }
    let alerts = out.stdout.iter().filter(|&&b| b == b'\n').count();
    let rate = events as f64 / secs;
    println!(
        "xtask bench: replay of {events} events ({:.0} MiB, {alerts} alerts) in {secs:.2} s on one core: {rate:.0} events/s",
        bytes as f64 / (1 << 20) as f64
    );
    let md = workspace_root().join("BENCHMARKS.md");
    let mut text = fs::read_to_string(&md).unwrap_or_default();
    if !text.contains("| replay |") && !text.contains("## Replay") {
        text.push_str(
            "\n## Replay\n\n`cargo xtask bench`: `escapewatch replay` of a generated log, one core (taskset -c 0).\n\n\
             | date (UTC) | commit | bench | events | MiB | alerts | seconds | events/s |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    text.push_str(&format!(
        "| {date} | {commit} | replay | {events} | {:.0} | {alerts} | {secs:.2} | {rate:.0} |\n",
        bytes as f64 / (1 << 20) as f64
    ));
    fs::write(&md, text)?;
    let _ = fs::remove_file(&log);
    Ok(rate)
}
