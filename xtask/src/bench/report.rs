//! BENCHMARKS.md: the summary table (figure, target, measured, ratio, method, verdict), then
//! the detail of every phase and the machine it ran on.

use std::{fmt::Write as _, fs, process::Command};

use super::{Plan, Results, median, percentile};

fn cmd(prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .current_dir(crate::workspace_root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let mem = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or("?".into(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1048576.0)
        });
    format!(
        "{model}, {} cores, {mem} RAM, Linux {}, {}",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        cmd("uname", &["-r"]),
        cmd("sh", &["-c", ". /etc/os-release && echo $PRETTY_NAME"]),
    )
}

/// The median of the per-round ratios on/off: each round's pair ran back to back, so a load
/// that comes and goes on the machine cancels out of each ratio.
fn paired_ratio(off: &[f64], on: &[f64]) -> f64 {
    let ratios: Vec<f64> = off.iter().zip(on).map(|(a, b)| b / a).collect();
    median(&ratios)
}

/// The highest sustained rate of the steps before the first step that lost events.
fn best_zero_loss(steps: &[super::phases::KneeStep]) -> f64 {
    steps
        .iter()
        .take_while(|k| k.lost == 0.0)
        .map(|k| k.sustained)
        .fold(0.0, f64::max)
}

fn knee_text(steps: &[super::phases::KneeStep]) -> String {
    let best = best_zero_loss(steps);
    let cpu = steps
        .iter()
        .filter(|k| k.lost == 0.0 && k.processed > 10_000.0)
        .map(|k| k.cpu_us_per_event)
        .fold(f64::NAN, f64::min);
    let cpu = if cpu.is_nan() {
        String::new()
    } else {
        format!("; agent CPU {cpu:.1} µs/event (all threads) at its lowest")
    };
    let Some(first) = steps.iter().position(|k| k.lost > 0.0) else {
        return format!(
            "{best:.0} events/s with zero loss; no loss up to the highest rate the generator reached ({:.0}/s){cpu}",
            steps.iter().map(|k| k.generated_rate).fold(0.0, f64::max)
        );
    };
    let k = &steps[first];
    let later = steps[first..]
        .iter()
        .filter(|k| k.lost == 0.0)
        .map(|k| k.sustained)
        .fold(0.0, f64::max);
    let later = if later > best {
        format!("; a later step had no loss at {later:.0}/s (loss is not monotonic near the knee)")
    } else {
        String::new()
    };
    format!(
        "{best:.0} events/s with zero loss; loss starts at {:.0}/s generated ({:.0} lost of {:.0}){later}{cpu}",
        k.generated_rate, k.lost, k.generated
    )
}

fn verdict(ok: bool, smoke: bool) -> &'static str {
    match (smoke, ok) {
        (true, _) => "smoke (no threshold)",
        (false, true) => "met",
        (false, false) => "**missed**",
    }
}

pub fn markdown(plan: &Plan, r: &Results, secs: f64) -> String {
    let mut s = String::new();
    let dirty = if cmd(
        "git",
        &[
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":!BENCHMARKS.md",
        ],
    )
    .is_empty()
    {
        ""
    } else {
        " (uncommitted changes)"
    };
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "`cargo xtask bench{}` (as root; {:.0} s) — {} UTC, commit {}{dirty}.  \nMachine: {}.  \nOther load on the machine: load average {} before the run, {} after it (the bench's own processes included at the end).\n",
        if plan.smoke { " --smoke" } else { "" },
        secs,
        cmd("date", &["-u", "+%Y-%m-%d %H:%M"]),
        cmd("git", &["rev-parse", "--short", "HEAD"]),
        machine(),
        r.loadavg_before,
        loadavg(),
    );
    let _ = writeln!(
        s,
        "Overhead figures are ratios agent-on / agent-off measured in one run: {} rounds, each \
         running the workload with the agent off and on back to back (alternating which goes \
         first); the ratio is the median of the rounds' on/off ratios, the added ns that ratio \
         applied to the agent-off median. The agent runs as in production: all programs attached, an event \
         log and an alert log written.\n",
        plan.rounds
    );
    let _ = writeln!(
        s,
        "| figure | target | measured | ratio on/off | method | verdict |\n|---|---|---|---|---|---|"
    );
    for (test, (off, on)) in &r.redis {
        let ratio = paired_ratio(off, on);
        let (off, on) = (median(off), median(on));
        let loss = (1.0 - ratio) * 100.0;
        let _ = writeln!(
            s,
            "| redis-benchmark {test} throughput loss | ≤ 1 % | {loss:.2} % (medians {off:.0} → {on:.0} req/s) | {ratio:.4} | redis-server on 127.0.0.1, `redis-benchmark -n {} -t set,get` (50 clients) | {} |",
            plan.redis_requests,
            verdict(loss <= 1.0, plan.smoke)
        );
    }
    for (op, (off, on)) in &r.micro {
        let ratio = paired_ratio(off, on);
        let (off, on) = (median(off), median(on));
        let pct = (ratio - 1.0) * 100.0;
        let _ = writeln!(
            s,
            "| {op} added cost | ≤ 3 % | {:+.0} ns/op ({pct:+.2} %; medians {off:.0} → {on:.0} ns) | {ratio:.4} | `ewbench micro`, host process, ns/op over N iterations | {} |",
            off * (ratio - 1.0),
            verdict(pct <= 3.0, plan.smoke)
        );
    }
    for (steps, what, method) in [
        (
            &r.knee,
            "pipeline, zero loss, end to end",
            "as in production (event log and alert log)",
        ),
        (
            &r.knee_no_log,
            "pipeline, zero loss, without the event log",
            "the same agent without --event-log (what the log costs)",
        ),
    ] {
        let _ = writeln!(
            s,
            "| {what} | ≥ 1,000,000 events/s | {} | – | `ewbench setns-load` (setns into its own uts ns, recorded for every process) at rising rates, {} s a step, {method}; processed and lost from the agent's /metrics | {} |",
            knee_text(steps),
            plan.knee_secs,
            verdict(best_zero_loss(steps) >= 1e6, plan.smoke)
        );
    }
    if let Some(rp) = &r.replay {
        let _ = writeln!(
            s,
            "| replay, one core | ≥ 2,000,000 events/s | {:.0} events/s ({} events, {:.0} MiB, {} alerts, {:.2} s) | – | `taskset -c 0 escapewatch replay` of a generated log (fixture events repeated), median of 3 runs | {} |",
            rp.rate,
            rp.events,
            rp.mib,
            rp.alerts,
            rp.secs,
            verdict(rp.rate >= 2e6, plan.smoke)
        );
    }
    for (label, lat, missed) in [
        ("idle", &r.latency_idle, r.latency_idle_missed),
        (
            &*format!("under load ({:.0} setns/s)", r.latency_load_rate),
            &r.latency_load,
            r.latency_load_missed,
        ),
    ] {
        let p99 = percentile(lat, 99.0);
        let _ = writeln!(
            s,
            "| syscall-to-alert latency, {label} | p99 ≤ 5 ms | p50 {:.2} ms, p99 {p99:.2} ms, max {:.2} ms ({} alerts, {missed} not seen in 2 s) | – | `ewbench latency`: a process in a docker-shaped cgroup and its own mount ns opens /proc/kallsyms (kernel-debug-recon); time until the alert line is readable (inotify) | {} |",
            percentile(lat, 50.0),
            percentile(lat, 100.0),
            lat.len(),
            verdict(p99 <= 5.0 && missed == 0, plan.smoke)
        );
    }
    let _ = writeln!(
        s,
        "| agent RSS, idle | ≤ 40 MB | {:.1} MiB | – | VmRSS of a fresh agent 2 s after ready | {} |",
        r.rss_idle_kib as f64 / 1024.0,
        verdict(r.rss_idle_kib as f64 / 1024.0 <= 40.0, plan.smoke)
    );
    let _ = writeln!(
        s,
        "| agent RSS, {} more processes | – (reported) | {:.1} MiB (peak {:.1} MiB), {:.0} processes tracked | – | `ewbench procs` forks idle children; VmRSS once escapewatch_processes_tracked has seen them | reported |\n",
        r.procs_started,
        r.rss_procs_kib as f64 / 1024.0,
        r.rss_procs_hwm_kib as f64 / 1024.0,
        r.procs_tracked
    );
    details(&mut s, plan, r);
    s
}

fn details(s: &mut String, plan: &Plan, r: &Results) {
    let _ = writeln!(
        s,
        "## Microbenchmarks (ns/op, every round)\n\nScale {} (iterations: fork_exec 400, open_close 200k, setns 50k, unshare 20k, mmap_fault 100k, madvise 200k, write 500k, writev 500k, times the scale). setns and unshare are recorded for every process (the agent needs them for namespace ownership), so their added cost includes an event through the ring buffer; the others are filtered in the kernel for host processes.\n\n| op | agent off | agent on |\n|---|---|---|",
        plan.micro_scale
    );
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (op, (off, on)) in &r.micro {
        let _ = writeln!(s, "| {op} | {} | {} |", list(off), list(on));
    }
    if !r.floor.is_empty() {
        let _ = writeln!(
            s,
            "\n## The kernel's floor: one syscall tracepoint enabled, no agent\n\nThe same microbenchmarks with tracefs `syscalls/sys_enter_acct` enabled (a syscall the benchmarks never make, no BPF): every syscall of every task then takes the tracing slow path. Attaching BPF to a syscall tracepoint adds the perf path on top of that (measured by hand on this VM with empty programs: sys_enter_write + sys_exit_write cost +190 ns per write; empty raw_tracepoint sys_enter + sys_exit, which every syscall pays, about +60 to +90 ns). The rest is the programs' own work.\n\n| op | off (median) | tracepoint on (median) | ratio (median of rounds) | agent's added ns (above) | of which the floor |\n|---|---|---|---|---|---|"
        );
        for (op, (off, on)) in &r.floor {
            let ratio = paired_ratio(off, on);
            let floor_ns = median(off) * (ratio - 1.0);
            let agent_ns = r
                .micro
                .get(op)
                .map_or(f64::NAN, |(a, b)| median(a) * (paired_ratio(a, b) - 1.0));
            let _ = writeln!(
                s,
                "| {op} | {:.0} | {:.0} | {ratio:.4} | {agent_ns:+.0} | {floor_ns:+.0} |",
                median(off),
                median(on)
            );
        }
    }
    let _ = writeln!(
        s,
        "\n## redis-benchmark (requests/s, every round)\n\n| test | agent off | agent on |\n|---|---|---|"
    );
    for (t, (off, on)) in &r.redis {
        let _ = writeln!(s, "| {t} | {} | {} |", list(off), list(on));
    }
    for (title, steps) in [
        ("as in production (event log on)", &r.knee),
        ("without the event log", &r.knee_no_log),
    ] {
        let _ = writeln!(
            s,
            "\n## Pipeline sweep, {title}\n\nOne agent; the generator runs one thread per core, so it and the agent share the cores. `sustained` = events processed / seconds from the step's start until the agent's counter stopped moving; CPU = the agent's user + system time (all threads, the zstd compression thread included) per processed event.\n\n| offered/s | generated/s | generated | processed | lost | drained after s | sustained/s | agent CPU µs/event |\n|---|---|---|---|---|---|---|---|"
        );
        for k in steps {
            let _ = writeln!(
                s,
                "| {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} |",
                k.offered,
                k.generated_rate,
                k.generated,
                k.processed,
                k.lost,
                k.drain_secs,
                k.sustained,
                k.cpu_us_per_event
            );
        }
    }
    let _ = writeln!(
        s,
        "\nReproduce: `sudo cargo xtask bench` (full, this file) or `sudo cargo xtask bench --smoke` (CI; writes target/bench/BENCHMARKS.md). Needs the packages `cargo xtask setup` installs (redis-server among them)."
    );
}
