//! The escape scenarios' shared steps: a privileged busybox container with the primitives
//! binary, an agent watching it, the alert checked and the session kept as a replay fixture.

use std::{fs, path::Path, process::Command, time::Duration};

use serde_json::Value;

use crate::{
    agent::{Agent, work_dir},
    runc::{Bundle, Container, unique_id},
    scenario::{check_alert, with_primitives},
};

const ESCAPE_CAPS: [&str; 3] = ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_CHROOT"];

pub const WAIT: Duration = Duration::from_secs(15);
pub const PRIVILEGED: [&str; 7] = [
    "CAP_SYS_ADMIN",
    "CAP_DAC_OVERRIDE",
    "CAP_SYS_PTRACE",
    "CAP_SYS_CHROOT",
    "CAP_SYS_RAWIO",
    "CAP_DAC_READ_SEARCH",
    "CAP_BPF",
];

/// A privileged busybox container with the primitives binary, sharing what `edit` says.
pub fn privileged(name: &str, edit: impl FnOnce(Bundle) -> Bundle) -> Container {
    let bundle = with_primitives(
        Bundle::busybox(name)
            .expect("bundle")
            .add_capabilities(&PRIVILEGED)
            .writable_rootfs(),
    );
    edit(bundle)
        .run_detached(&unique_id("ewt"))
        .expect("run container")
}

/// Run `sh -c script` in the container, returning stdout; the script's exit status is not
/// checked (attempts that fail are part of several scenarios).
pub fn sh(c: &Container, script: &str) -> String {
    let out = c.exec(&["sh", "-c", script]).expect("runc exec");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Start an agent, run `act` against a fresh container, wait for `rule`'s alert from it.
pub fn scenario(
    test: &str,
    rule: &str,
    edit: impl FnOnce(Bundle) -> Bundle,
    act: impl FnOnce(&Container) -> String,
) -> (Agent, Value, Container) {
    run_scenario(test, rule, None, edit, act, true)
}

/// [`scenario`] with an agent config file holding `config` (TOML).
pub fn scenario_with_config(
    test: &str,
    rule: &str,
    config: &str,
    edit: impl FnOnce(Bundle) -> Bundle,
    act: impl FnOnce(&Container) -> String,
) -> (Agent, Value, Container) {
    run_scenario(test, rule, Some(config), edit, act, true)
}

/// [`scenario`] for an escape made through another entry than the one this kernel's hook
/// expectation (ESCAPEWATCH_EXPECT_HOOKS) describes for the rule (the 32-bit syscall entry,
/// io_uring): the test asserts the hook that served it itself.
pub fn scenario_by_another_entry(
    test: &str,
    rule: &str,
    edit: impl FnOnce(Bundle) -> Bundle,
    act: impl FnOnce(&Container) -> String,
) -> (Agent, Value, Container) {
    run_scenario(test, rule, None, edit, act, false)
}

fn run_scenario(
    test: &str,
    rule: &str,
    config: Option<&str>,
    edit: impl FnOnce(Bundle) -> Bundle,
    act: impl FnOnce(&Container) -> String,
    expected_hooks: bool,
) -> (Agent, Value, Container) {
    let dir = work_dir(test);
    let agent = Agent::start_with(&dir, config);
    let c = privileged(test, edit);
    let cgroup = c.cgroup_path().expect("cgroup");
    let output = act(&c);
    let alert = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == rule && a["container"]["id"] == cgroup
    });
    check_alert(&alert, rule, &cgroup, "unknown");
    if expected_hooks {
        check_hooks(&agent, &alert);
    }
    record_latency(rule, &alert);
    eprintln!("{test}: {output}");
    (agent, alert, c)
}

/// The hook types this kernel is expected to serve rules with, from ESCAPEWATCH_EXPECT_HOOKS
/// (`rule=hook,rule=hook`, set per kernel by `cargo xtask vm-test`).
pub fn expected_hook(rule: &str) -> Option<String> {
    let spec = std::env::var("ESCAPEWATCH_EXPECT_HOOKS").ok()?;
    spec.split(',').find_map(|pair| {
        let (r, h) = pair.split_once('=')?;
        (r.trim() == rule).then(|| h.trim().to_owned())
    })
}

/// The hooks (`type/program`) of the events `alert` cites, each once, in citation order.
/// Every cited event must name one.
pub fn cited_hooks(agent: &Agent, alert: &Value) -> Vec<String> {
    let rule = alert["rule"].as_str().unwrap_or_default();
    let ids: Vec<u64> = alert["event_ids"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let mut hooks: Vec<String> = Vec::new();
    for id in ids {
        let event = agent.wait_for_event(WAIT, |e| e["id"] == id);
        let hook = event["hook"].as_str().unwrap_or_default();
        assert!(
            hook.split_once('/')
                .is_some_and(|(t, p)| !t.is_empty() && !p.is_empty()),
            "event {id} cited by {rule} does not say which hook saw it: {event:#}"
        );
        if !hooks.iter().any(|h| h == hook) {
            hooks.push(hook.to_owned());
        }
    }
    hooks
}

/// Every event an alert cites names the eBPF program that saw it (`hook`, `type/program`); when
/// this kernel's expectation names the rule, one of them is of that hook type (or of one of
/// its `|`-separated alternatives: `syscall|io_uring`, one tier reached by two entries). The hooks seen
/// are appended to target/integration/hooks.tsv for the kernel matrix report.
pub fn check_hooks(agent: &Agent, alert: &Value) {
    let rule = alert["rule"].as_str().unwrap_or_default().to_owned();
    let hooks = cited_hooks(agent, alert);
    if let Some(want) = expected_hook(&rule) {
        assert!(
            hooks.iter().any(|h| h
                .split('/')
                .next()
                .is_some_and(|t| want.split('|').any(|w| w == t))),
            "{rule} was expected to be served by a {want} hook on this kernel, but its events came from {hooks:?}"
        );
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/integration/hooks.tsv");
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let line = format!("{}\t{rule}\t{}\n", release.trim(), hooks.join(","));
    let _ = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
}

/// Upper bound of syscall-to-alert latency: now minus the alert's event time (the poll of the
/// alert log adds at most 20 ms). Appended to target/integration/latency.tsv for the report.
pub fn record_latency(rule: &str, alert: &Value) {
    let Some(t) = alert["time"].as_str() else {
        return;
    };
    let out = Command::new("date").args(["-u", "+%s.%N"]).output().ok();
    let now: f64 = out
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0.0);
    let then = Command::new("date")
        .args(["-u", "-d", t, "+%s.%N"])
        .output()
        .ok();
    let then: f64 = then
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(now);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/integration/latency.tsv");
    let line = format!("{rule}\t{:.1}\n", (now - then) * 1000.0);
    let _ = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
}

/// Stop the agent (drain, flush) and keep its logs as a root-free replay fixture when
/// ESCAPEWATCH_RECORD_FIXTURES is set; replay must give exactly the live alerts either way.
pub fn finish(mut agent: Agent, name: &str) {
    agent.stop();
    agent.assert_replay_reproduces_alerts(name);
    if std::env::var_os("ESCAPEWATCH_RECORD_FIXTURES").is_some() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let plain = dir.join(format!("{name}.events.jsonl"));
        let packed = dir.join(format!("{name}.events.jsonl.zst"));
        let _ = fs::remove_file(&plain);
        let _ = fs::remove_file(&packed);
        // Fixtures are JSON Lines (reviewable; the agent writes binary by default). Flood
        // sessions are megabytes of JSON: those are kept zstd-compressed (replay reads either
        // by content).
        let text = crate::agent::log_text(&agent.event_log).expect("the event log");
        if text.len() > 1 << 20 {
            fs::write(&plain, &text).unwrap();
            let ok = Command::new("zstd")
                .args(["-q", "-19", "--rm", "-o"])
                .arg(&packed)
                .arg(&plain)
                .status()
                .expect("zstd");
            assert!(ok.success(), "zstd failed");
        } else {
            fs::write(&plain, text).unwrap();
        }
        fs::copy(&agent.alert_log, dir.join(format!("{name}.alerts.jsonl"))).unwrap();
    }
}

/// `major:minor` of a host device node.
pub fn host_rdev(path: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let rdev = fs::metadata(path).expect("stat device").rdev();
    format!("{}:{}", libc::major(rdev), libc::minor(rdev))
}

/// A container sharing the host PID namespace runs `command(pid)` against a host process (a
/// `sleep`, gone when this returns) and `rule`'s alert is awaited, as [`scenario`] does.
pub fn against_host_process(
    test: &str,
    rule: &str,
    command: impl Fn(u32) -> String,
) -> (Agent, Value, Container, u32) {
    let mut host = Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("host sleep");
    let pid = host.id();
    let (agent, alert, c) = scenario(
        test,
        rule,
        |b| b.share_host_namespace("pid"),
        |c| sh(c, &command(pid)),
    );
    let _ = host.kill();
    let _ = host.wait();
    (agent, alert, c, pid)
}

/// [`against_host_process`] for `ptrace-cross-container`, the alert checked (the attach
/// request, the target and its owner) and returned with the agent, the container gone.
pub fn ptrace_host_scenario(test: &str, command: impl Fn(u32) -> String) -> (Agent, Value) {
    let (agent, alert, c, pid) = against_host_process(test, "ptrace-cross-container", command);
    assert_eq!(alert["details"]["request"], "PTRACE_ATTACH", "{alert:#}");
    assert_eq!(alert["details"]["target"]["pid"], pid, "{alert:#}");
    assert_eq!(alert["details"]["target_owner"], "the host", "{alert:#}");
    drop(c);
    (agent, alert)
}

/// The block device behind the host's root filesystem.
pub fn root_disk() -> String {
    let out = Command::new("findmnt")
        .args(["-n", "-o", "SOURCE", "/"])
        .output()
        .expect("findmnt");
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        dev.starts_with("/dev/"),
        "root filesystem is on {dev:?}, not a block device"
    );
    dev
}

/// A container sharing the host PID namespace joins `host_pid`'s mount namespace; returns the
/// pid of the escaping process.
pub fn nsenter_escape(host_pid: u32) -> (Container, u64) {
    nsenter_escape_from(Bundle::busybox("escape").expect("bundle"), host_pid)
}

/// [`nsenter_escape`] from a container of `bundle` (given the host PID namespace and the
/// escape's capabilities here).
pub fn nsenter_escape_from(bundle: Bundle, host_pid: u32) -> (Container, u64) {
    let c = bundle
        .share_host_namespace("pid")
        .add_capabilities(&ESCAPE_CAPS)
        .run_detached(&unique_id("ewt"))
        .expect("run");
    let out = c
        .exec_ok(&[
            "sh",
            "-c",
            &format!("echo $$; exec nsenter -t {host_pid} -m -- true"),
        ])
        .expect("nsenter");
    let pid = out
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("pid");
    (c, pid)
}

/// A busybox container forking `/bin/true` in four loops: a lifecycle storm that overflows a
/// small lifecycle buffer within milliseconds.
pub fn fork_storm(name: &str) -> Container {
    Bundle::busybox(name)
        .expect("bundle")
        .args(&[
            "sh",
            "-c",
            "for i in 1 2 3 4; do (while true; do /bin/true; done) & done; sleep 1000",
        ])
        .run_detached(&unique_id("ewt"))
        .expect("run the fork storm")
}

/// A Dirty COW race's alert: at least 3 discards and 3 forced writes by the primitive (the
/// thread that made the last one may be an io_uring worker of it, comm `iou-wrk-TID`), and the
/// race's madvise stream did not overflow the ring buffer.
pub fn check_race(agent: &mut Agent, alert: &Value) {
    assert!(
        alert["details"]["discards"].as_u64().unwrap() >= 3,
        "{alert:#}"
    );
    assert!(
        alert["details"]["forced_writes"].as_u64().unwrap() >= 3,
        "{alert:#}"
    );
    assert_eq!(alert["process"]["exe"], "/bin/primitives", "{alert:#}");
    let comm = alert["process"]["comm"].as_str().unwrap_or_default();
    assert!(
        comm == "primitives" || comm.starts_with("iou-wrk-"),
        "{alert:#}"
    );
    let lost = agent.metric_sum("escapewatch_events_lost_total", "kind=\"madvise\"");
    assert_eq!(lost, 0.0, "the race's discards overflowed the ring buffer");
}

/// The alerts of `rule` from the container of cgroup `cgroup`, once there are `n` of them (or
/// the [`WAIT`] deadline passed: then fewer, for the caller's count assertion to show).
pub fn wait_for_alerts(agent: &Agent, rule: &str, cgroup: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let alerts: Vec<_> = agent
            .alerts()
            .into_iter()
            .filter(|a| a["rule"] == rule && a["container"]["id"] == cgroup)
            .collect();
        if alerts.len() >= n || std::time::Instant::now() > deadline {
            return alerts;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
