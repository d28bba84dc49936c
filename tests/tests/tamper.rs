//! The detector defends itself: a squatted metrics port, a detached program and an agent
//! killed and restarted are each loud, and none of them switches detection off.

use std::{
    net::TcpListener,
    process::Command,
    time::{Duration, Instant},
};

use escapewatch_integration::{
    agent::{Agent, read_jsonl, work_dir},
    escape::{finish, nsenter_escape},
    scenario::catalogued,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);
/// The agent's metrics bind retry interval (`metrics::BIND_RETRY`), plus slack.
const BIND_RETRY: Duration = Duration::from_secs(13);

#[test]
fn a_taken_metrics_port_does_not_stop_detection() {
    let dir = work_dir("metrics-port-taken");
    let squatter = TcpListener::bind("127.0.0.1:0").expect("bind a port first");
    let addr = squatter.local_addr().unwrap().to_string();
    // Before the fix the agent exited here ("cannot listen for metrics on …") and never sent
    // READY=1. Now it starts, and systemd's READY=1 is sent: detection is up.
    let mut agent = Agent::start_on(&dir, Some(""), &addr);
    let down = agent.wait_for_stderr("metrics are not served", WAIT);
    assert!(down.contains("ERROR"), "logged as an error: {down}");
    assert!(down.contains(&addr), "names the address: {down}");

    let mut host = Command::new("sleep").arg("300").spawn().expect("sleep");
    let (c, pid) = nsenter_escape(host.id());
    let alert = agent.wait_for_alert(WAIT, |a| a["process"]["pid"] == pid);
    assert_eq!(alert["rule"], "namespace-join-host");
    drop(c);
    let _ = host.kill();
    let _ = host.wait();

    // The port is freed: /metrics comes up within the retry interval, and shows the outage.
    let freed = Instant::now();
    drop(squatter);
    agent.wait_for_stderr("metrics listening on http://", BIND_RETRY);
    assert!(freed.elapsed() < BIND_RETRY);
    assert_eq!(agent.metrics_addr(), addr);
    assert_eq!(agent.metric_sum("escapewatch_metrics_listener_up", ""), 1.0);
    assert!(agent.metric_sum("escapewatch_metrics_bind_failures_total", "") >= 1.0);
    assert_eq!(
        agent.metric_sum("escapewatch_alerts_total", "rule=\"namespace-join-host\""),
        1.0
    );
    assert_eq!(agent.http_get("/readyz").trim(), "ready");
    agent.stop();
}

fn bpftool(args: &[&str]) -> std::process::Output {
    Command::new("bpftool")
        .args(args)
        .output()
        .expect("run bpftool")
}

fn bpftool_json(args: &[&str]) -> Vec<Value> {
    let out = bpftool(&[&["-j"], args].concat());
    assert!(out.status.success(), "bpftool {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).expect("bpftool JSON")
}

/// The newest link of the program named `name` (the agent under test attached last: agents
/// are serialised by the machine lock).
fn newest_link_of(name: &str) -> Value {
    let progs: Vec<u64> = bpftool_json(&["prog", "show"])
        .iter()
        .filter(|p| p["name"] == name)
        .filter_map(|p| p["id"].as_u64())
        .collect();
    bpftool_json(&["link", "show"])
        .into_iter()
        .filter(|l| l["prog_id"].as_u64().is_some_and(|id| progs.contains(&id)))
        .max_by_key(|l| l["id"].as_u64())
        .unwrap_or_else(|| panic!("no bpf link of program {name}"))
}

/// The fields of an alert the agent raises about itself, against the catalogue.
fn check_agent_alert(alert: &Value, rule: &str, agent_pid: u32) {
    let info = catalogued(rule);
    assert_eq!(alert["rule"], rule, "{alert:#}");
    assert_eq!(alert["severity"], info["severity"], "{alert:#}");
    assert_eq!(alert["mitre"], info["mitre"], "{alert:#}");
    assert_eq!(alert["mitre"], "T1562.001", "{alert:#}");
    assert_eq!(alert["explanation"], info["explanation"], "{alert:#}");
    assert_eq!(alert["container"], Value::Null, "{alert:#}");
    assert_eq!(alert["process"]["pid"], agent_pid, "{alert:#}");
    assert_eq!(alert["process"]["comm"], "escapewatch", "{alert:#}");
    assert_eq!(
        alert["event_ids"].as_array().map(Vec::len),
        Some(1),
        "{alert:#}"
    );
}

#[test]
fn a_detached_program_is_an_alert() {
    let dir = work_dir("detector-tampered");
    let mut agent = Agent::start_with(&dir, Some(""));
    assert_eq!(agent.http_get("/readyz").trim(), "ready");

    // cgroup links can be detached from outside; on 6.x kernels perf_event (tracepoint),
    // raw_tracepoint and tracing links may refuse it (EOPNOTSUPP). Where the kernel lets the
    // syscall dispatcher go too, the alert must name it as well.
    let sysctl = newest_link_of("sysctl_write");
    assert_eq!(sysctl["type"], "cgroup", "{sysctl:#}");
    assert_ne!(sysctl["cgroup_id"], 0, "attached at start: {sysctl:#}");
    let id = sysctl["id"].to_string();
    let out = bpftool(&["link", "detach", "id", &id]);
    assert!(out.status.success(), "bpftool link detach id {id}: {out:?}");
    // The syscall dispatcher (tp_btf): the one syscall link every watched syscall hangs off.
    let dispatcher = newest_link_of("sys_enter")["id"].to_string();
    let dispatcher_detached = bpftool(&["link", "detach", "id", &dispatcher])
        .status
        .success();
    let mut want = vec!["sysctl_write"];
    if dispatcher_detached {
        // In attach order (the catalogue's): sysctl_write comes first.
        want.push("sys_enter");
    }

    let alert = agent.wait_for_alert(WAIT, |a| a["rule"] == "detector-tampered");
    check_agent_alert(&alert, "detector-tampered", agent.pid());
    assert_eq!(
        alert["details"]["programs"],
        serde_json::json!(want),
        "{alert:#}"
    );
    assert!(
        alert["summary"]
            .as_str()
            .unwrap_or("")
            .contains("sysctl_write"),
        "{alert:#}"
    );
    agent.wait_for_stderr("the agent raised an alert about itself", WAIT);
    assert_eq!(
        agent.metric_sum(
            "escapewatch_programs_detached_total",
            "program=\"sysctl_write\""
        ),
        1.0
    );
    assert_eq!(agent.metric_sum("escapewatch_ready ", ""), 0.0);
    let ready = agent.http_get("/readyz");
    assert!(
        ready.contains("programs detached while running: sysctl_write"),
        "/readyz: {ready}"
    );
    // Reported once: the next checks find nothing new.
    std::thread::sleep(Duration::from_secs(4));
    let tampered = agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"] == "detector-tampered")
        .count();
    assert_eq!(tampered, 1);
    finish(agent, "detector-tampered");
}

#[test]
fn a_killed_agent_restarting_is_an_alert_and_a_clean_restart_is_not() {
    let dir = work_dir("detector-restarted");
    let mut first = Agent::start(&dir);
    let killed_pid = first.pid();
    first.kill();
    // The killed run's log is moved away, as logrotate would: the marker beside it is what
    // tells, and the new session is a log (and a fixture) of its own.
    std::fs::rename(&first.event_log, dir.join("events.killed.jsonl")).unwrap();
    drop(first);

    // Before the fix a kill and a restart inside AgentDown's 2 minutes raised nothing.
    let second = Agent::start(&dir);
    let alert = second.wait_for_alert(WAIT, |a| a["rule"] == "detector-restarted");
    check_agent_alert(&alert, "detector-restarted", second.pid());
    assert_eq!(alert["details"]["previous_pid"], killed_pid, "{alert:#}");
    assert_eq!(alert["details"]["host_rebooted"], false, "{alert:#}");
    assert!(
        alert["details"]["previous_start"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{alert:#}"
    );
    assert!(
        alert["summary"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("pid {killed_pid}")),
        "{alert:#}"
    );
    // The report is the first event of the new session, so replay sees it first too.
    let id = alert["event_ids"][0].clone();
    let lines = read_jsonl(&second.event_log);
    let header = lines
        .iter()
        .rposition(|l| l["format"] == "escapewatch-events")
        .expect("a session header");
    assert_eq!(lines[header + 1]["id"], id, "{:#}", lines[header + 1]);
    assert_eq!(lines[header + 1]["data"]["kind"], "agent_restarted");
    finish(second, "detector-restarted");

    // A clean stop (finish sent SIGTERM) and a start: nothing to report.
    let alert_log = dir.join("alerts.jsonl");
    let count = |alerts: Vec<Value>| {
        alerts
            .iter()
            .filter(|a| a["rule"] == "detector-restarted")
            .count()
    };
    let before = count(read_jsonl(&alert_log));
    let mut third = Agent::start(&dir);
    third.wait_for_stderr("self-check: watching", WAIT);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(third.alerts()), before, "{:#?}", third.alerts());
    third.stop();
}
