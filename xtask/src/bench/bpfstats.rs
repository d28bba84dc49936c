//! Per-program BPF run statistics: with `kernel.bpf_stats_enabled=1` the kernel counts each
//! program's runs and the ns they took. One pass after the timed rounds (the counting has a
//! cost of its own: two clock reads per run, so the ratios come from rounds without it): for
//! each micro op, which of the agent's programs ran, how often per call and how long per run.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{Plan, agent::Agent, ewbench, parse_kv};

const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Programs that ran fewer times per call than this are left out of the report (process
/// start-up of the benchmark and what the idle window did not cancel).
const MIN_RUNS_PER_CALL: f64 = 0.01;

/// One program's share of one op.
pub struct ProgStat {
    pub name: String,
    pub runs_per_call: f64,
    pub ns_per_run: f64,
}

/// The programs one micro op ran.
pub struct OpStats {
    pub op: String,
    pub calls: u64,
    /// Most expensive first (runs × ns per call).
    pub programs: Vec<ProgStat>,
}

impl OpStats {
    /// BPF ns per call of the op, all its programs summed.
    pub fn bpf_ns_per_call(&self) -> f64 {
        self.programs
            .iter()
            .map(|p| p.runs_per_call * p.ns_per_run)
            .sum()
    }
}

#[derive(Clone, Copy, Default)]
struct Counters {
    runs: u64,
    ns: u64,
}

/// A program of the kernel, as `bpftool prog show -j` lists it.
struct Prog {
    name: String,
    counters: Counters,
}

fn snapshot() -> Result<BTreeMap<u64, Prog>> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .context("running bpftool (apt package bpftool; `cargo xtask setup`)")?;
    if !out.status.success() {
        bail!(
            "bpftool prog show failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).context("bpftool's JSON")?;
    Ok(list
        .iter()
        .filter_map(|p| {
            let n = |k: &str| p.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
            Some((
                p.get("id")?.as_u64()?,
                Prog {
                    name: p.get("name")?.as_str()?.to_owned(),
                    counters: Counters {
                        runs: n("run_cnt"),
                        ns: n("run_time_ns"),
                    },
                },
            ))
        })
        .collect())
}

/// Sets kernel.bpf_stats_enabled and puts back what it was when dropped.
struct StatsOn(String);

impl StatsOn {
    fn enable() -> Result<StatsOn> {
        let was = fs::read_to_string(STATS_SYSCTL)
            .with_context(|| format!("read {STATS_SYSCTL}"))?
            .trim()
            .to_owned();
        fs::write(STATS_SYSCTL, "1").with_context(|| format!("write {STATS_SYSCTL}"))?;
        Ok(StatsOn(was))
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        let _ = fs::write(STATS_SYSCTL, &self.0);
    }
}

/// Whether the kernel's name of a program is the name the agent attached: the kernel keeps
/// 15 bytes of it (BPF_OBJ_NAME_LEN); bpftool prints the whole name when BTF has it.
fn same_program(kernel: &str, attached: &str) -> bool {
    kernel == attached || (kernel.len() == 15 && attached.starts_with(kernel))
}

/// The pass: an agent as in production, the statistics on, every op of `ops` run alone,
/// and after each an idle window as long as the op, whose counts are taken off the op's
/// (what the machine's other processes ran meanwhile).
pub fn pass(
    plan: &Plan,
    bin: &Path,
    ew: &Path,
    work: &Path,
    ops_to_run: &[String],
) -> Result<Vec<OpStats>> {
    let before: BTreeSet<u64> = snapshot()?.into_keys().collect();
    let agent = Agent::start(bin, &work.join("agent-bpfstats"))?;
    let attached = agent.attached_programs();
    let mine: BTreeSet<u64> = snapshot()?
        .into_iter()
        .filter(|(id, p)| {
            !before.contains(id)
                && (attached.is_empty() || attached.iter().any(|a| same_program(&p.name, a)))
        })
        .map(|(id, _)| id)
        .collect();
    if mine.is_empty() {
        bail!("no BPF program of the agent found in `bpftool prog show`");
    }
    println!(
        "xtask bench: BPF run statistics of {} programs ({} named attached in the agent's log)",
        mine.len(),
        attached.len()
    );
    let stats = StatsOn::enable()?;
    let scale = plan.micro_scale.to_string();
    let mut ops = Vec::new();
    for op in ops_to_run {
        let s0 = snapshot()?;
        let t0 = Instant::now();
        let out = ewbench(ew, &["micro", "--scale", &scale, "--only", op.as_str()])?;
        let took = t0.elapsed();
        let s1 = snapshot()?;
        std::thread::sleep(took.max(Duration::from_millis(100)));
        let s2 = snapshot()?;
        let calls = parse_kv(&out)
            .iter()
            .find(|(k, _)| k == "calls")
            .map_or(0.0, |(_, v)| *v);
        if calls <= 0.0 {
            bail!("ewbench micro --only {op} gave no call count");
        }
        let delta = |a: &BTreeMap<u64, Prog>, b: &BTreeMap<u64, Prog>, id: &u64| {
            let (Some(a), Some(b)) = (a.get(id), b.get(id)) else {
                return Counters::default();
            };
            Counters {
                runs: b.counters.runs.saturating_sub(a.counters.runs),
                ns: b.counters.ns.saturating_sub(a.counters.ns),
            }
        };
        let mut programs: Vec<ProgStat> = mine
            .iter()
            .filter_map(|id| {
                let during = delta(&s0, &s1, id);
                let idle = delta(&s1, &s2, id);
                let runs = during.runs.saturating_sub(idle.runs);
                let runs_per_call = runs as f64 / calls;
                (runs_per_call >= MIN_RUNS_PER_CALL).then(|| ProgStat {
                    name: s1.get(id).map_or(String::new(), |p| p.name.clone()),
                    runs_per_call,
                    // The op's own runs' time: the window's, per run of it.
                    ns_per_run: during.ns as f64 / during.runs.max(1) as f64,
                })
            })
            .collect();
        programs.sort_by(|a, b| {
            (b.runs_per_call * b.ns_per_run).total_cmp(&(a.runs_per_call * a.ns_per_run))
        });
        ops.push(OpStats {
            op: op.clone(),
            calls: calls as u64,
            programs,
        });
    }
    drop(stats);
    agent.stop()?;
    println!("xtask bench: BPF run statistics pass done");
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::same_program;

    #[test]
    fn kernel_names_are_cut_at_15_bytes() {
        assert!(same_program("sys_enter_setns", "sys_enter_setns"));
        assert!(same_program("sys_exit_pendin", "sys_exit_pending"));
        assert!(!same_program("sys_exit_pend", "sys_exit_pending"));
        assert!(!same_program("sys_exit_other_", "sys_exit_pending"));
    }
}
