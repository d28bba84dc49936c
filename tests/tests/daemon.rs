//! The node daemon under stress and over time: a fork flood that overflows the kernel buffers
//! (loss counted, detector-overloaded raised, an escape during the flood still caught), and a
//! session whose rotated, compressed event-log segments replay to exactly the live alerts.

use std::{fs, path::PathBuf, process::Command, time::Duration};

use escapewatch_integration::{
    agent::{Agent, ns_inode, replay, work_dir},
    escape::{finish, fork_storm, nsenter_escape},
};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn fork_flood_is_counted_alerted_and_does_not_hide_an_escape() {
    let dir = work_dir("flood");
    // The smallest buffers: a fork storm overflows the lifecycle buffer within milliseconds;
    // namespace events keep their own buffer.
    let mut agent = Agent::start_with(
        &dir,
        Some("[ring_buffers]\nlifecycle_bytes = 4096\ncritical_bytes = 65536\n"),
    );
    let flood = fork_storm("flood");
    let flood_cgroup = flood.cgroup_path().expect("cgroup");
    let mut host = Command::new("sleep").arg("300").spawn().expect("sleep");
    // The escape comes once the storm overflows the kernel buffer (the agent said so).
    agent.wait_for_alert(WAIT, |a| a["rule"] == "detector-overloaded");
    let (escape, pid) = nsenter_escape(host.id());
    // The escape made during the flood is alerted ...
    let alert = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "namespace-join-host" && a["process"]["pid"] == pid
    });
    assert_eq!(alert["details"]["owner"], "host");
    assert_eq!(
        alert["details"]["inode"],
        ns_inode(host.id(), "mnt"),
        "{alert:#}"
    );
    // ... and the loss is neither silent in the alerts ... (the storm's first loss may come
    // before its processes are known; an overload of another cause or container is alerted on
    // its own, so the one naming the flooding container is waited for)
    let overload = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "detector-overloaded"
            && a["details"].to_string().contains(flood_cgroup.as_str())
    });
    assert_eq!(
        overload["severity"],
        escapewatch_integration::scenario::catalogued("detector-overloaded")["severity"]
    );
    let details = overload["details"].to_string();
    assert!(details.contains("process_"), "loss by kind: {details}");
    assert!(
        details.contains(flood_cgroup.as_str()),
        "top container: {details}"
    );
    // The loss report is an event of the log, and the alert cites it.
    let report_id = overload["event_ids"][0]
        .as_u64()
        .expect("cites the loss report");
    let report = agent.wait_for_event(WAIT, |e| e["id"] == report_id);
    assert_eq!(report["data"]["kind"], "events_lost", "{report:#}");
    assert_eq!(report["process"]["pid"], agent.pid(), "{report:#}");
    assert!(
        report["data"]["lost"]
            .as_object()
            .is_some_and(|m| m.keys().any(|k| k.starts_with("process_"))),
        "{report:#}"
    );
    // ... nor in the metrics.
    let lost = agent.metric_sum("escapewatch_events_lost_total", "kind=\"process_");
    assert!(lost > 0.0, "lost events counted: {lost}");
    let lost_ns = agent.metric_sum("escapewatch_events_lost_total", "kind=\"setns\"");
    assert_eq!(lost_ns, 0.0, "namespace events have their own buffer");
    let alerts = agent.metric_sum("escapewatch_alerts_total", "rule=\"namespace-join-host\"");
    assert!(alerts >= 1.0, "alert counted in /metrics: {alerts}");
    eprintln!("flood: {lost} lifecycle events lost; overload alert: {details}");
    drop(flood);
    drop(escape);
    let _ = host.kill();
    let _ = host.wait();
    agent.stop();
    // Lost lifecycle events must not turn runc's own work into false alerts.
    let rules: Vec<String> = agent
        .alerts()
        .iter()
        .map(|a| a["rule"].as_str().unwrap_or_default().to_owned())
        .filter(|r| r != "namespace-join-host" && r != "detector-overloaded")
        .collect();
    assert!(
        rules.is_empty(),
        "unexpected alerts during the flood: {rules:?}"
    );
    // Losses are in the log, so replay gives exactly the live alerts, detector-overloaded too.
    agent.assert_replay_reproduces_alerts("the flood");
}

/// A fork storm into the smallest lifecycle buffer, stopped at its first loss alert: the loss
/// is alerted, naming the container, and the session (a few seconds) is kept as the replay
/// fixture of `detector-overloaded`.
#[test]
fn a_fork_burst_into_a_tiny_buffer_is_alerted_and_replays() {
    let dir = work_dir("overload");
    let agent = Agent::start_with(
        &dir,
        Some("[ring_buffers]\nlifecycle_bytes = 4096\ncritical_bytes = 65536\n"),
    );
    let burst = fork_storm("storm");
    let cgroup = burst.cgroup_path().expect("cgroup");
    // runc's own start may already overflow a 4 KiB buffer (no container stands out then):
    // that earlier overload must not hide the storm's.
    let overload = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "detector-overloaded" && a["details"]["top_container"]["id"] == cgroup.as_str()
    });
    escapewatch_integration::scenario::check_alert(
        &overload,
        "detector-overloaded",
        &cgroup,
        "unknown",
    );
    assert_eq!(overload["details"]["top_container"]["id"], cgroup.as_str());
    assert_eq!(overload["process"]["pid"], agent.pid(), "{overload:#}");
    let lost = overload["details"]["lost_total"].as_u64().unwrap_or(0);
    assert!(lost > 0, "{overload:#}");
    assert!(
        overload["details"]["lost"]
            .as_object()
            .is_some_and(|m| m.keys().all(|k| k.starts_with("process_"))),
        "only lifecycle records are lost: {overload:#}"
    );
    drop(burst);
    finish(agent, "overload");
}

#[test]
fn rotated_compressed_segments_replay_to_the_live_alert_log() {
    let dir = work_dir("rotation");
    // The smallest rotation size (1 MiB); each round writes well over 1 MiB of exec events.
    let mut agent = Agent::start_with(&dir, Some("[logs]\nevent_log_max_bytes = 1048576\n"));
    let mut host = Command::new("sleep").arg("300").spawn().expect("sleep");
    for _ in 0..3 {
        let (c, pid) = nsenter_escape(host.id());
        agent.wait_for_alert(WAIT, |a| a["process"]["pid"] == pid);
        c.exec_ok(&[
            "sh",
            "-c",
            "i=0; while [ $i -lt 1200 ]; do /bin/true; i=$((i+1)); done",
        ])
        .expect("exec storm");
        drop(c);
    }
    let _ = host.kill();
    let _ = host.wait();
    agent.stop();
    let mut segments: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.jsonl")
        })
        .collect();
    segments.sort();
    let compressed = segments
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".zst"))
        .count();
    assert!(
        compressed >= 1,
        "rotation produced compressed segments: {segments:?}"
    );
    let live = fs::read_to_string(&agent.alert_log).unwrap();
    assert_eq!(live.lines().count(), 3, "{live}");
    let refs: Vec<&std::path::Path> = segments.iter().map(PathBuf::as_path).collect();
    let out = replay(&refs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), live);
    eprintln!(
        "rotation: {} segments, {compressed} compressed",
        segments.len()
    );
}

#[test]
fn sigkill_leaves_logs_valid_up_to_the_last_complete_line() {
    let dir = work_dir("sigkill");
    let mut agent = Agent::start(&dir);
    let mut host = Command::new("sleep").arg("300").spawn().expect("sleep");
    let (c, pid) = nsenter_escape(host.id());
    agent.wait_for_alert(WAIT, |a| a["process"]["pid"] == pid);
    // Keep the agent busy writing, then kill it without warning.
    let storm = c.exec(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done",
    ]);
    agent.kill();
    drop(storm);
    drop(c);
    let _ = host.kill();
    let _ = host.wait();
    // Every complete line parses; strict replay of the log succeeds and finds the escape.
    let out = Command::new(escapewatch_integration::agent::agent_bin())
        .args(["replay", "--strict"])
        .arg(&agent.event_log)
        .output()
        .expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts = String::from_utf8_lossy(&out.stdout);
    assert!(
        alerts.contains("namespace-join-host") && alerts.contains(&format!("\"pid\":{pid}")),
        "{alerts}"
    );
    let live = fs::read_to_string(&agent.alert_log).unwrap();
    assert!(
        live.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{live}"
    );
}
