//! `cargo xtask bench [--smoke]`: the overhead budget and the no-loss throughput, measured as
//! ratios agent-on / agent-off within one run, written as a table to BENCHMARKS.md.
//!
//! Absolute times on a shared VM are noise; ratios of interleaved runs are not: every round
//! runs the workloads with the agent off and on (alternating which goes first), and the
//! figures are medians over rounds. `--smoke` runs everything once, small, for CI (no
//! thresholds) and writes target/bench/BENCHMARKS.md instead of the committed file.

mod agent;
mod phases;
mod redis;
mod report;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{bench_replay, workspace_root};

/// Sizes of one bench run.
pub struct Plan {
    pub smoke: bool,
    pub rounds: usize,
    pub micro_scale: f64,
    pub redis_requests: u64,
    pub knee_rates: Vec<f64>,
    pub knee_secs: f64,
    pub latency_reps: usize,
    pub procs: usize,
    pub replay_events: u64,
}

impl Plan {
    pub fn new(smoke: bool) -> Plan {
        if smoke {
            Plan {
                smoke,
                rounds: 1,
                micro_scale: 0.1,
                redis_requests: 20_000,
                knee_rates: vec![20_000.0, 100_000.0],
                knee_secs: 1.0,
                latency_reps: 40,
                procs: 1_000,
                replay_events: 50_000,
            }
        } else {
            Plan {
                smoke,
                rounds: 7,
                micro_scale: 1.0,
                redis_requests: 200_000,
                knee_rates: vec![
                    25_000.0,
                    50_000.0,
                    100_000.0,
                    150_000.0,
                    200_000.0,
                    250_000.0,
                    300_000.0,
                    400_000.0,
                    600_000.0,
                    800_000.0,
                    1_000_000.0,
                ],
                knee_secs: 3.0,
                latency_reps: 300,
                procs: 10_000,
                replay_events: 300_000,
            }
        }
    }
}

/// Every figure of one run.
#[derive(Default)]
pub struct Results {
    /// op → (ns/op agent off, ns/op agent on), one pair per round.
    pub micro: BTreeMap<String, (Vec<f64>, Vec<f64>)>,
    /// op → (ns/op, ns/op with one syscall tracepoint enabled and no agent), per round.
    pub floor: BTreeMap<String, (Vec<f64>, Vec<f64>)>,
    /// redis test → (rps off, rps on), per round.
    pub redis: BTreeMap<String, (Vec<f64>, Vec<f64>)>,
    pub knee: Vec<phases::KneeStep>,
    pub knee_no_log: Vec<phases::KneeStep>,
    pub latency_idle: Vec<f64>,
    pub latency_idle_missed: usize,
    pub latency_load: Vec<f64>,
    pub latency_load_missed: usize,
    pub latency_load_rate: f64,
    pub rss_idle_kib: u64,
    pub rss_procs_kib: u64,
    pub rss_procs_hwm_kib: u64,
    pub procs_tracked: f64,
    pub procs_started: usize,
    pub replay: Option<bench_replay::ReplayResult>,
    pub loadavg_before: String,
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// `key\tvalue` lines of an ewbench run.
pub fn parse_kv(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('\t')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Run ewbench with `args`; its stdout.
pub fn ewbench(bin: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .output()
        .with_context(|| format!("running ewbench {args:?}"))?;
    if !out.status.success() {
        bail!(
            "ewbench {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn build_ewbench() -> Result<PathBuf> {
    crate::run(crate::cargo().args(["build", "--release", "--package", "escapewatch-bench"]))?;
    Ok(workspace_root().join("target/release/ewbench"))
}

pub fn run(agent_bin: &Path, smoke: bool) -> Result<()> {
    if !crate::is_root() {
        bail!("the bench loads the agent's eBPF programs: run `cargo xtask bench` as root");
    }
    let started = Instant::now();
    let plan = Plan::new(smoke);
    let busy: f64 = report::loadavg()
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0);
    if busy > 0.5 {
        println!(
            "xtask bench: warning: load average {busy} before the run: other processes use the CPU and distort every figure (noted in the report)"
        );
    }
    let ew = build_ewbench()?;
    let work = workspace_root().join("target/bench");
    std::fs::create_dir_all(&work)?;
    // Held for the whole run (replay included): while it is held no test agent runs, and
    // a privileged test run waits instead of loading the machine.
    let _lock = agent::MachineLock::acquire()?;
    let mut res = Results {
        loadavg_before: report::loadavg(),
        replay: Some(bench_replay::run(agent_bin, plan.replay_events)?),
        ..Results::default()
    };
    phases::overhead(&plan, agent_bin, &ew, &work, &mut res)?;
    phases::tracepoint_floor(&plan, &ew, &mut res)?;
    phases::memory(&plan, agent_bin, &ew, &work, &mut res)?;
    phases::knee(&plan, agent_bin, &ew, &work, &mut res)?;
    phases::latency(&plan, agent_bin, &ew, &work, &mut res)?;
    let secs = started.elapsed().as_secs_f64();
    let out = if smoke {
        work.join("BENCHMARKS.md")
    } else {
        workspace_root().join("BENCHMARKS.md")
    };
    std::fs::write(&out, report::markdown(&plan, &res, secs))?;
    println!(
        "xtask bench: {} in {secs:.0} s, written to {}",
        if smoke { "smoke run" } else { "full run" },
        out.display()
    );
    Ok(())
}
