//! The measured phases: overhead (micro + redis, interleaved off/on), memory, pipeline knee,
//! syscall-to-alert latency.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
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
    /// The generator's own CPU (user + system, the BPF programs its calls run included) per
    /// call, in µs.
    pub generator_us_per_event: f64,
}

/// What the machine runs while a round's workloads are measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// Nothing attached.
    Off,
    /// One syscall tracepoint enabled through tracefs, no BPF: every syscall takes the
    /// tracing slow path.
    KernelFloor,
    /// `escapewatch bench-floor`: two raw tracepoints on sys_enter/sys_exit that drop every
    /// syscall after one map lookup.
    DesignFloor,
    /// The agent, as in production.
    On,
}

pub const STATES: [State; 4] = [
    State::Off,
    State::KernelFloor,
    State::DesignFloor,
    State::On,
];

/// The order of the states in `round`: rotated by one each round, so over four rounds each
/// state has run in each position and a drift over the run cancels out.
pub fn round_order(round: usize) -> [State; 4] {
    let mut order = STATES;
    order.rotate_left(round % STATES.len());
    order
}

/// The tracefs switch of the kernel floor: one syscall tracepoint the benchmarks never make
/// (sys_enter_acct), no BPF.
fn kernel_floor_switch() -> Option<PathBuf> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .map(|t| PathBuf::from(t).join("events/syscalls/sys_enter_acct/enable"))
        .find(|p| p.exists())
}

/// What holds a state in place while it is measured; undone by [`Held::release`].
enum Held {
    Nothing,
    Tracepoint(PathBuf),
    Floor(Floor),
    Agent(Agent),
}

impl Held {
    fn enter(state: State, bin: &Path, work: &Path) -> Result<Held> {
        Ok(match state {
            State::Off => Held::Nothing,
            State::KernelFloor => {
                let enable = kernel_floor_switch()
                    .context("no tracefs (sys_enter_acct): the kernel floor cannot be measured")?;
                fs::write(&enable, "1").with_context(|| format!("write {}", enable.display()))?;
                Held::Tracepoint(enable)
            }
            State::DesignFloor => Held::Floor(Floor::start(bin)?),
            State::On => Held::Agent(Agent::start(bin, &work.join("agent-overhead"))?),
        })
    }

    fn release(self) -> Result<()> {
        match self {
            Held::Nothing => Ok(()),
            Held::Tracepoint(enable) => {
                fs::write(&enable, "0").with_context(|| format!("write {}", enable.display()))
            }
            Held::Floor(f) => f.stop(),
            Held::Agent(a) => a.stop(),
        }
    }
}

/// `escapewatch bench-floor`: the design floor's two programs, attached until SIGTERM.
struct Floor(Option<Child>);

impl Floor {
    fn start(bin: &Path) -> Result<Floor> {
        let mut child = Command::new(bin)
            .arg("bench-floor")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} bench-floor", bin.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout piped")?).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            let status = child.wait()?;
            bail!("escapewatch bench-floor did not attach ({status}); it said {line:?}");
        }
        Ok(Floor(Some(child)))
    }

    fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.0.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait()?;
        if !status.success() {
            bail!("escapewatch bench-floor exited with {status}");
        }
        Ok(())
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The microbenchmarks in four states (off, kernel floor, design floor, agent on) and the
/// pinned redis workload (off and on), interleaved round by round; then, apart from the timed
/// rounds, one pass with the kernel's BPF run statistics on.
pub fn overhead(plan: &Plan, bin: &Path, ew: &Path, work: &Path, res: &mut Results) -> Result<()> {
    let redis = Redis::start(work.join("redis"))?;
    let scale = plan.micro_scale.to_string();
    let mut states = STATES.to_vec();
    if kernel_floor_switch().is_none() {
        println!("xtask bench: no tracefs: the kernel floor is left out");
        states.retain(|s| *s != State::KernelFloor);
    }
    for round in 0..plan.rounds {
        for state in round_order(round) {
            if !states.contains(&state) {
                continue;
            }
            let held = Held::enter(state, bin, work)?;
            let measured = (|| -> Result<()> {
                let micro = ewbench(ew, &["micro", "--scale", &scale])?;
                for (op, ns) in parse_kv(&micro) {
                    res.micro.entry(op).or_default().push(state, ns);
                }
                if matches!(state, State::Off | State::On) {
                    for fig in redis.bench(plan.redis_requests)? {
                        let e = res.redis.entry(fig.test.clone()).or_default();
                        if state == State::On {
                            &mut e.1
                        } else {
                            &mut e.0
                        }
                        .push(fig);
                    }
                }
                Ok(())
            })();
            let released = held.release();
            measured?;
            released?;
        }
        println!(
            "xtask bench: overhead round {}/{} done",
            round + 1,
            plan.rounds
        );
    }
    drop(redis);
    let ops: Vec<String> = res.micro.keys().cloned().collect();
    res.bpf_stats = super::bpfstats::pass(plan, bin, ew, work, &ops)?;
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

/// The knee's generator: process_vm_writev(self, no iovecs) from a container-shaped process
/// (see `ewbench pvw-load`), recorded as a `syscall` event each call.
const KNEE_KIND: &str = "kind=\"syscall\"";

/// CPUs of the pipeline sweep: the generator on one, the agent (all its threads) on the
/// other, so the agent has a core of its own.
const GENERATOR_CPU: usize = 0;
const AGENT_CPU: usize = 1;

fn knee_events(agent: &Agent) -> Result<f64> {
    agent.metric("escapewatch_events_total", KNEE_KIND)
}

/// Wait until the agent's counter of the generator's events stops moving; the counter and
/// when it last moved.
fn drained(agent: &Agent, start: Instant) -> Result<(f64, f64)> {
    let mut last = knee_events(agent)?;
    let mut moved = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let now = knee_events(agent)?;
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
    let cg = ContainerCgroup::create("knee")?;
    // The generator alone, as fast as it goes with no agent: what a call costs it before any
    // program runs, and the rate one core can offer.
    let kv = run_load(pvw_load(ew, &cg, 1e9, plan.knee_secs, Some(GENERATOR_CPU)))?;
    let get = |k: &str| kv.iter().find(|(n, _)| n == k).map_or(0.0, |(_, v)| *v);
    res.generator_alone = (get("rate"), get("cpu_ns_per_call") / 1e3);
    res.knee = sweep(plan, bin, ew, work, &cg, true)?;
    res.knee_no_log = sweep(plan, bin, ew, work, &cg, false)?;
    Ok(())
}

/// `ewbench pvw-load` at `rate` for `secs`, pinned to `cpu` (when given), in cgroup `cg`.
fn pvw_load(ew: &Path, cg: &ContainerCgroup, rate: f64, secs: f64, cpu: Option<usize>) -> Command {
    let mut cmd = Command::new(ew);
    cmd.args([
        "pvw-load",
        "--rate",
        &rate.to_string(),
        "--secs",
        &secs.to_string(),
    ])
    .arg("--cgroup")
    .arg(&cg.0);
    if let Some(cpu) = cpu {
        super::pin(&mut cmd, cpu);
    }
    cmd
}

/// Run a load generator to its end; its `key\tvalue` figures.
fn run_load(mut cmd: Command) -> Result<Vec<(String, f64)>> {
    let out = cmd.output().context("running ewbench pvw-load")?;
    if !out.status.success() {
        bail!(
            "ewbench pvw-load failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(parse_kv(&String::from_utf8_lossy(&out.stdout)))
}

fn sweep(
    plan: &Plan,
    bin: &Path,
    ew: &Path,
    work: &Path,
    cg: &ContainerCgroup,
    log: bool,
) -> Result<Vec<KneeStep>> {
    let agent = Agent::start_pinned(bin, &work.join("agent-knee"), log, Some(AGENT_CPU))?;
    let mut steps = Vec::new();
    let mut losses = 0;
    for &rate in &plan.knee_rates {
        let ev0 = knee_events(&agent)?;
        let cpu0 = agent.cpu_secs()?;
        let lost0 = agent.metric("escapewatch_events_lost_total", "")?;
        let start = Instant::now();
        let kv = run_load(pvw_load(ew, cg, rate, plan.knee_secs, Some(GENERATOR_CPU)))?;
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
            generator_us_per_event: get("cpu_ns_per_call") / 1e3,
        };
        println!(
            "xtask bench: pipeline{} at {rate:.0}/s offered: generated {:.0}/s, processed {processed:.0}, lost {lost:.0}, sustained {:.0}/s, agent {:.2} µs CPU/event, generator {:.2} µs CPU/call",
            if log { "" } else { " (no event log)" },
            step.generated_rate,
            step.sustained,
            step.cpu_us_per_event,
            step.generator_us_per_event
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
    fn create(what: &str) -> Result<ContainerCgroup> {
        let id: String = format!(
            "{:016x}",
            // A distinct 64-hex id per use, as Docker's are.
            what.bytes()
                .fold(u64::from(std::process::id()), |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                })
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
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

/// Syscall-to-alert latency in ms, idle and while the knee's load runs at half the sustained
/// zero-loss rate.
pub fn latency(plan: &Plan, bin: &Path, ew: &Path, work: &Path, res: &mut Results) -> Result<()> {
    let agent = Agent::start(bin, &work.join("agent-latency"))?;
    // The alert log exists once the first alert is written; make sure there is a file to watch.
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&agent.alert_log)?;
    let cg = ContainerCgroup::create("latency")?;
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
    let load_cg = ContainerCgroup::create("load")?;
    let mut load = pvw_load(ew, &load_cg, rate, secs, None)
        .stdout(Stdio::null())
        .spawn()
        .context("background process_vm_writev load")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Over four rounds every state runs once in every position, and every round runs all four.
    #[test]
    fn rounds_rotate_every_state_through_every_position() {
        for pos in 0..STATES.len() {
            let at: std::collections::BTreeSet<State> =
                (0..4).map(|round| round_order(round)[pos]).collect();
            assert_eq!(at.len(), 4, "position {pos}: {at:?}");
        }
        for round in 0..8 {
            let mut order = round_order(round).to_vec();
            order.sort();
            assert_eq!(order, STATES.to_vec());
        }
        assert_eq!(round_order(0)[0], State::Off);
        assert_eq!(round_order(1)[0], State::KernelFloor);
    }
}
