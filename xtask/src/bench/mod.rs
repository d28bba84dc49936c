//! `cargo xtask bench [--smoke | --scale F]`: the overhead budget and the no-loss throughput,
//! measured as ratios within one run, written as a table to BENCHMARKS.md.
//!
//! Absolute times on a shared VM are noise; ratios of interleaved runs are not: every round
//! runs the microbenchmarks in four states (agent off, the kernel floor, the raw-syscall design
//! floor, the agent on; the order rotated each round) and redis with the agent off and on, and
//! the figures are medians over rounds. `--smoke` runs everything once, small, for CI (no
//! thresholds); `--scale F` (F < 1: quicker, for development) shrinks every phase. Both write
//! target/bench/BENCHMARKS.md instead of the committed file.

mod agent;
mod bpfstats;
mod phases;
mod redis;
mod report;

use std::{
    collections::BTreeMap,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{bench_replay, workspace_root};

pub use phases::State;

/// Sizes of one bench run.
pub struct Plan {
    pub smoke: bool,
    /// 1.0 for the full run that writes BENCHMARKS.md.
    pub scale: f64,
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
    pub fn new(smoke: bool, scale: f64) -> Plan {
        if smoke {
            return Plan {
                smoke,
                scale: 0.1,
                rounds: 1,
                micro_scale: 0.1,
                redis_requests: 10_000,
                knee_rates: vec![50_000.0, 200_000.0],
                knee_secs: 1.0,
                latency_reps: 40,
                procs: 1_000,
                replay_events: 50_000,
            };
        }
        let f = |n: f64| n * scale;
        Plan {
            smoke,
            scale,
            // Eight in the full run: a multiple of the four states, so that each state runs
            // in each position of a round equally often. At least two.
            rounds: (f(8.0).round() as usize).clamp(2, 8),
            micro_scale: scale,
            redis_requests: f(100_000.0).max(5_000.0) as u64,
            knee_rates: [
                50_000.0,
                100_000.0,
                200_000.0,
                300_000.0,
                400_000.0,
                500_000.0,
                600_000.0,
                800_000.0,
                1_000_000.0,
                1_200_000.0,
            ]
            .to_vec(),
            knee_secs: f(2.0).clamp(0.5, 2.0),
            latency_reps: f(300.0).max(30.0) as usize,
            procs: f(10_000.0).max(500.0) as usize,
            replay_events: f(300_000.0).max(30_000.0) as u64,
        }
    }

    /// Whether this run writes the committed BENCHMARKS.md (the full run only).
    pub fn is_full(&self) -> bool {
        !self.smoke && self.scale == 1.0
    }
}

/// ns/op of one micro op, one figure per round in each state.
#[derive(Default)]
pub struct MicroFigures {
    pub by_state: BTreeMap<State, Vec<f64>>,
}

impl MicroFigures {
    pub fn push(&mut self, state: State, ns: f64) {
        self.by_state.entry(state).or_default().push(ns);
    }

    pub fn of(&self, state: State) -> &[f64] {
        self.by_state.get(&state).map_or(&[], Vec::as_slice)
    }
}

/// Every figure of one run.
#[derive(Default)]
pub struct Results {
    /// op → ns/op in each state, per round.
    pub micro: BTreeMap<String, MicroFigures>,
    /// redis test → (agent off, agent on), one figure per round.
    pub redis: BTreeMap<String, (Vec<redis::RedisFig>, Vec<redis::RedisFig>)>,
    /// Per micro op, the agent's programs that ran (kernel.bpf_stats_enabled pass).
    pub bpf_stats: Vec<bpfstats::OpStats>,
    /// The knee's generator with no agent, as fast as it goes: (calls/s, CPU µs per call).
    pub generator_alone: (f64, f64),
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

/// CPUs of this machine.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Run `cmd` (and every thread it makes) on `cpu` only; nothing when the machine has no such
/// CPU (then the figures are unpinned, as the report says).
pub fn pin(cmd: &mut Command, cpu: usize) {
    if cpu >= cpus() {
        return;
    }
    // SAFETY: only sched_setaffinity, async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
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

pub fn run(agent_bin: &Path, smoke: bool, scale: f64) -> Result<()> {
    if !crate::is_root() {
        bail!("the bench loads the agent's eBPF programs: run `cargo xtask bench` as root");
    }
    let started = Instant::now();
    if !(scale > 0.0 && scale <= 1.0) {
        bail!("--scale must be in (0, 1]: the full run is 1");
    }
    let plan = Plan::new(smoke, scale);
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
    type Phase = fn(&Plan, &Path, &Path, &Path, &mut Results) -> Result<()>;
    let phases: [(&str, Phase); 4] = [
        ("overhead", phases::overhead),
        ("memory", phases::memory),
        ("pipeline", phases::knee),
        ("latency", phases::latency),
    ];
    for (name, phase) in phases {
        let t = Instant::now();
        phase(&plan, agent_bin, &ew, &work, &mut res)?;
        println!(
            "xtask bench: {name} phase took {:.0} s",
            t.elapsed().as_secs_f64()
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let out = if plan.is_full() {
        workspace_root().join("BENCHMARKS.md")
    } else {
        work.join("BENCHMARKS.md")
    };
    std::fs::write(&out, report::markdown(&plan, &res, secs))?;
    println!(
        "xtask bench: {} in {secs:.0} s, written to {}",
        if smoke {
            "smoke run"
        } else if plan.is_full() {
            "full run"
        } else {
            "scaled run"
        },
        out.display()
    );
    Ok(())
}
