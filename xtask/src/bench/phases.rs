//! The measured phases: overhead (micro + redis, interleaved off/on), memory, pipeline knee,
//! syscall-to-alert latency.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{Plan, Results, agent::Agent, ewbench, parse_kv, redis::Redis};

/// One rate step of the pipeline sweep.
pub struct KneeStep {
    pub offered: f64,
    /// Calls the generator made per second (it cannot always reach `offered`).
    pub generated_rate: f64,
    pub generated: f64,
    pub processed: f64,
    pub lost: f64,
    /// Processed events / seconds from the step's start until the agent had drained.
    pub sustained: f64,
    pub drain_secs: f64,
    /// Agent CPU (all threads, user + system) per processed event, in µs.
    pub cpu_us_per_event: f64,
}

pub fn overhead(plan: &Plan, bin: &Path, ew: &Path, work: &Path, res: &mut Results) -> Result<()> {
    let redis = Redis::start(work.join("redis"))?;
    let scale = plan.micro_scale.to_string();
    for round in 0..plan.rounds {
        // Alternate which state goes first, so a drift over the run cancels out.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for on in order {
            let agent = if on {
                Some(Agent::start(bin, &work.join("agent-overhead"))?)
            } else {
                None
            };
            let micro = ewbench(ew, &["micro", "--scale", &scale])?;
            for (op, ns) in parse_kv(&micro) {
                let e = res.micro.entry(op).or_default();
                if on { &mut e.1 } else { &mut e.0 }.push(ns);
            }
            for (test, rps) in redis.bench(plan.redis_requests)? {
                let e = res.redis.entry(test).or_default();
                if on { &mut e.1 } else { &mut e.0 }.push(rps);
            }
            if let Some(a) = agent {
                a.stop()?;
            }
        }
        println!(
            "xtask bench: overhead round {}/{} done",
            round + 1,
            plan.rounds
        );
    }
    Ok(())
}

/// The kernel's floor under the agent's ordinary-path cost: the same microbenchmarks with one
/// syscall tracepoint the benchmarks never make (sys_enter_acct) enabled through tracefs,
/// no BPF. Any enabled syscall tracepoint sends every syscall of every task through the
/// tracing slow path; the rest of the agent's cost is its programs.
pub fn tracepoint_floor(plan: &Plan, ew: &Path, res: &mut Results) -> Result<()> {
    let enable = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .map(|t| PathBuf::from(t).join("events/syscalls/sys_enter_acct/enable"))
        .find(|p| p.exists());
    let Some(enable) = enable else {
        println!("xtask bench: no tracefs: the tracepoint floor is left out");
        return Ok(());
    };
    let scale = plan.micro_scale.to_string();
    let rounds = plan.rounds.div_ceil(2);
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for on in order {
            fs::write(&enable, if on { "1" } else { "0" })?;
            let out = ewbench(ew, &["micro", "--scale", &scale]);
            if on {
                fs::write(&enable, "0")?;
            }
            for (op, ns) in parse_kv(&out?) {
                let e = res.floor.entry(op).or_default();
                if on { &mut e.1 } else { &mut e.0 }.push(ns);
            }
        }
    }
    Ok(())
}

/// Idle RSS of a fresh agent, then with `plan.procs` extra processes alive and tracked.
pub fn memory(plan: &Plan, bin: &Path, ew: &Path, work: &Path, res: &mut Results) -> Result<()> {
    let agent = Agent::start(bin, &work.join("agent-memory"))?;
    std::thread::sleep(Duration::from_secs(2));
    res.rss_idle_kib = agent.rss_kib()?.0;
    let base = agent.metric("escapewatch_processes_tracked", "")?;
    let mut child = Command::new(ew)
        .args(["procs", "--count", &plan.procs.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("ewbench procs")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    res.procs_started = line
        .trim()
        .strip_prefix("ready\t")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // The gauge is refreshed once a second: wait until it has seen them all (or stops growing).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = -1.0;
    loop {
        std::thread::sleep(Duration::from_millis(1200));
        let n = agent.metric("escapewatch_processes_tracked", "")?;
        if n >= base + res.procs_started as f64 || n == last || Instant::now() > deadline {
            res.procs_tracked = n;
            break;
        }
        last = n;
    }
    let (rss, hwm) = agent.rss_kib()?;
    res.rss_procs_kib = rss;
    res.rss_procs_hwm_kib = hwm;
    drop(child.stdin.take());
    child.wait()?;
    agent.stop()
}

fn setns_events(agent: &Agent) -> Result<f64> {
    agent.metric("escapewatch_events_total", "kind=\"setns\"")
}

/// Wait until the agent's setns counter stops moving; the counter and when it last moved.
fn drained(agent: &Agent, start: Instant) -> Result<(f64, f64)> {
    let mut last = setns_events(agent)?;
    let mut moved = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let now = setns_events(agent)?;
        if now == last || Instant::now() > deadline {
            return Ok((now, moved));
        }
        last = now;
        moved = start.elapsed().as_secs_f64();
    }
}

/// Events per second end to end (kernel → decode → enrich → event log → engine → alert log)
/// at rising offered rates, until loss is seen twice; once as in production, once without
/// the event log (what the log costs).
pub fn knee(plan: &Plan, bin: &Path, ew: &Path, work: &Path, res: &mut Results) -> Result<()> {
    res.knee = sweep(plan, bin, ew, work, true)?;
    res.knee_no_log = sweep(plan, bin, ew, work, false)?;
    Ok(())
}

fn sweep(plan: &Plan, bin: &Path, ew: &Path, work: &Path, log: bool) -> Result<Vec<KneeStep>> {
    let agent = Agent::start_with(bin, &work.join("agent-knee"), log)?;
    let mut steps = Vec::new();
    let mut losses = 0;
    // One generator thread per core: one thread cannot make more than about 180k setns/s
    // with the programs attached.
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    for &rate in &plan.knee_rates {
        let ev0 = setns_events(&agent)?;
        let cpu0 = agent.cpu_secs()?;
        let lost0 = agent.metric("escapewatch_events_lost_total", "")?;
        let start = Instant::now();
        let out = ewbench(
            ew,
            &[
                "setns-load",
                "--rate",
                &rate.to_string(),
                "--secs",
                &plan.knee_secs.to_string(),
                "--threads",
                &threads.to_string(),
            ],
        )?;
        let kv = parse_kv(&out);
        let get = |k: &str| kv.iter().find(|(n, _)| n == k).map_or(0.0, |(_, v)| *v);
        // The loss counters are read once a second by the agent.
        let (ev1, drain_secs) = drained(&agent, start)?;
        std::thread::sleep(Duration::from_millis(1100));
        let lost = agent.metric("escapewatch_events_lost_total", "")? - lost0;
        let processed = ev1 - ev0;
        let cpu = agent.cpu_secs()? - cpu0;
        let step = KneeStep {
            offered: rate,
            generated_rate: get("rate"),
            generated: get("emitted"),
            processed,
            lost,
            sustained: processed / drain_secs.max(get("seconds")),
            drain_secs,
            cpu_us_per_event: cpu * 1e6 / processed.max(1.0),
        };
        println!(
            "xtask bench: pipeline{} at {rate:.0}/s offered: generated {:.0}/s, processed {processed:.0}, lost {lost:.0}, sustained {:.0}/s, agent {:.1} µs CPU/event",
            if log { "" } else { " (no event log)" },
            step.generated_rate,
            step.sustained,
            step.cpu_us_per_event
        );
        steps.push(step);
        if lost > 0.0 {
            losses += 1;
            if losses >= 2 {
                break;
            }
        }
    }
    agent.stop()?;
    Ok(steps)
}

/// The cgroup v2 hierarchy's mount point.
fn cgroup2_root() -> Result<PathBuf> {
    let mounts = fs::read_to_string("/proc/mounts")?;
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .context("no cgroup2 hierarchy mounted (the latency bench puts its process in one)")
}

/// A cgroup laid out like a Docker container's, removed on drop.
struct ContainerCgroup(PathBuf);

impl ContainerCgroup {
    fn create() -> Result<ContainerCgroup> {
        let id: String = format!(
            "{:016x}",
            (std::process::id() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        )
        .repeat(4)
        .chars()
        .take(64)
        .collect();
        let dir = cgroup2_root()?
            .join("escapewatch-bench")
            .join(format!("docker-{id}.scope"));
        fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        Ok(ContainerCgroup(dir))
    }
}

impl Drop for ContainerCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if fs::remove_dir(&self.0).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(parent) = self.0.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

fn latency_run(
    ew: &Path,
    agent: &Agent,
    cg: &ContainerCgroup,
    reps: usize,
) -> Result<(Vec<f64>, usize)> {
    let out = ewbench(
        ew,
        &[
            "latency",
            "--alert-log",
            agent.alert_log.to_str().context("utf-8 path")?,
            "--cgroup",
            cg.0.to_str().context("utf-8 path")?,
            "--reps",
            &reps.to_string(),
        ],
    )?;
    let kv = parse_kv(&out);
    let lat: Vec<f64> = kv
        .iter()
        .filter(|(k, _)| k == "lat_us")
        .map(|(_, v)| v / 1000.0)
        .collect();
    let missed = kv
        .iter()
        .find(|(k, _)| k == "missed")
        .map_or(0, |(_, v)| *v as usize);
    Ok((lat, missed))
}

/// Syscall-to-alert latency in ms, idle and while a setns load runs at half the sustained
/// zero-loss rate.
pub fn latency(plan: &Plan, bin: &Path, ew: &Path, work: &Path, res: &mut Results) -> Result<()> {
    let agent = Agent::start(bin, &work.join("agent-latency"))?;
    // The alert log exists once the first alert is written; make sure there is a file to watch.
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&agent.alert_log)?;
    let cg = ContainerCgroup::create()?;
    let (lat, missed) = latency_run(ew, &agent, &cg, plan.latency_reps)?;
    res.latency_idle = lat;
    res.latency_idle_missed = missed;
    let knee = res
        .knee
        .iter()
        .filter(|s| s.lost == 0.0)
        .map(|s| s.generated_rate)
        .fold(0.0, f64::max);
    let rate = if knee > 0.0 { knee / 2.0 } else { 20_000.0 };
    res.latency_load_rate = rate;
    let secs = plan.latency_reps as f64 * 0.008 + 3.0;
    let mut load = Command::new(ew)
        .args([
            "setns-load",
            "--rate",
            &rate.to_string(),
            "--secs",
            &secs.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .context("background setns load")?;
    std::thread::sleep(Duration::from_millis(500));
    let run = latency_run(ew, &agent, &cg, plan.latency_reps);
    let _ = load.wait();
    let (lat, missed) = run?;
    res.latency_load = lat;
    res.latency_load_missed = missed;
    if res.latency_idle.is_empty() {
        bail!(
            "no alert seen in the latency bench: is kernel-debug-recon raised for a container opening /proc/kallsyms?"
        );
    }
    agent.stop()
}
