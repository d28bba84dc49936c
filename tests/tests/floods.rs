//! Issue H, "loss that cannot be used as cover": one container floods the detector with cheap
//! attempts (failed opens, refused namespace calls) while another escapes with setns. The
//! escape is alerted field by field, and the flood's `detector-overloaded` names the flooding
//! container — also when another container's overload was alerted less than a minute before.
//! A legitimate burst of EACCES (`find /` as an unprivileged user) stays silent.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    process::{Child, Command},
    time::{Duration, Instant},
};

use escapewatch_integration::{
    agent::{Agent, ns_inode, read_jsonl, work_dir},
    escape::{check_hooks, finish, fork_storm, nsenter_escape},
    runc::{Bundle, Container, unique_id},
    scenario::{check_alert, with_primitives},
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
/// The smallest critical buffer the escape's own events fit in beside runc's: a flood that
/// still went there would overflow it at once.
const SMALL_RINGS: &str = "[ring_buffers]\ncritical_bytes = 16384\nlifecycle_bytes = 4096\n";
/// What floods.rs (agent) calls a flood: this many budgeted records within 10 s.
const FLOOD_MIN: u64 = 10_000;
const SECRET: &str = "/flood-secret";

/// A container whose init runs `primitives flood WHAT SECRET 60` as uid/gid 1000, without
/// capabilities beyond runc's defaults.
fn flooder(name: &str, what: &str) -> Container {
    let mut bundle = with_primitives(Bundle::busybox(name).expect("bundle"));
    bundle.config_mut()["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    flood_in(bundle, what)
}

fn flood_in(bundle: Bundle, what: &str) -> Container {
    let secret = bundle.rootfs().join(SECRET.trim_start_matches('/'));
    fs::write(&secret, "root only\n").expect("write the secret");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    bundle
        .args(&["/bin/primitives", "flood", what, SECRET, "60"])
        .run_detached(&unique_id("ewt"))
        .expect("run the flooder")
}

struct HostSleep(Child);

impl HostSleep {
    fn spawn() -> HostSleep {
        HostSleep(Command::new("sleep").arg("300").spawn().expect("sleep"))
    }
}

impl Drop for HostSleep {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The flood's own overload alert: names `flooder`, counts at least a flood of `kinds`.
fn flood_alert(agent: &Agent, flooder: &str, kinds: &[&str]) -> Value {
    // Its own start may have overflowed the 4 KiB lifecycle buffer first (a loss alert naming
    // it): the flood's alert is the one that counts budgeted records.
    let alert = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "detector-overloaded"
            && a["container"]["id"] == flooder
            && a["details"]["budgeted_total"].is_u64()
    });
    check_alert(&alert, "detector-overloaded", flooder, "unknown");
    assert_eq!(
        alert["details"]["top_container"]["id"], flooder,
        "{alert:#}"
    );
    assert_eq!(alert["details"]["lost_total"], 0, "{alert:#}");
    assert_eq!(alert["process"]["pid"], agent.pid(), "{alert:#}");
    let total = alert["details"]["budgeted_total"].as_u64().unwrap_or(0);
    assert!(total >= FLOOD_MIN, "{alert:#}");
    for k in kinds {
        assert!(
            alert["details"]["budgeted"][k].as_u64().unwrap_or(0) > 0,
            "{k} budgeted: {alert:#}"
        );
    }
    // The alert cites the agent's budget reports, which name the container.
    for id in alert["event_ids"].as_array().expect("event ids") {
        let report = agent.wait_for_event(WAIT, |e| e["id"] == *id);
        assert_eq!(report["data"]["kind"], "events_budgeted", "{report:#}");
        assert_eq!(report["container"]["id"], flooder, "{report:#}");
    }
    alert
}

/// During the flood, a second container joins a host mount namespace: alerted, field by field.
fn escape_during(agent: &Agent) -> (Container, Value) {
    let host = HostSleep::spawn();
    let (escape, pid) = nsenter_escape(host.0.id());
    let cgroup = escape.cgroup_path().expect("cgroup");
    let alert = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "namespace-join-host" && a["process"]["pid"] == pid
    });
    check_alert(&alert, "namespace-join-host", &cgroup, "unknown");
    check_hooks(agent, &alert);
    assert_eq!(alert["process"]["comm"], "nsenter", "{alert:#}");
    assert_eq!(alert["process"]["uid"], 0, "{alert:#}");
    assert_eq!(alert["details"]["namespace_type"], "mnt", "{alert:#}");
    assert_eq!(alert["details"]["owner"], "host", "{alert:#}");
    assert_eq!(
        alert["details"]["inode"],
        ns_inode(host.0.id(), "mnt"),
        "{alert:#}"
    );
    (escape, alert)
}

/// Nothing but the escape and overloads: lost lifecycle records and budgeted attempts must not
/// turn into false alerts.
fn only_expected_alerts(agent: &Agent) {
    let others: Vec<String> = agent
        .alerts()
        .iter()
        .map(|a| a["rule"].as_str().unwrap_or_default().to_owned())
        .filter(|r| r != "namespace-join-host" && r != "detector-overloaded")
        .collect();
    assert!(others.is_empty(), "unexpected alerts: {others:?}");
}

/// The budget kept the critical buffer clean: nothing of it lost, the flood counted.
fn budget_counted(agent: &mut Agent, kind: &str) -> f64 {
    for k in ["setns", "file_open", "unshare"] {
        let lost = agent.metric_sum("escapewatch_events_lost_total", &format!("kind=\"{k}\""));
        assert_eq!(lost, 0.0, "{k} records lost");
    }
    let budgeted = agent.metric_sum(
        "escapewatch_events_budgeted_total",
        &format!("kind=\"{kind}\""),
    );
    assert!(budgeted >= FLOOD_MIN as f64, "{kind} budgeted: {budgeted}");
    budgeted
}

#[test]
fn a_flood_of_failed_opens_after_another_overload_hides_no_escape() {
    let dir = work_dir("flood-open");
    let mut agent = Agent::start_with(&dir, Some(SMALL_RINGS));
    // A different overload first: a fork storm into the 4 KiB lifecycle buffer.
    let storm = fork_storm("storm");
    let storm_id = storm.cgroup_path().expect("cgroup");
    let storm_alert = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "detector-overloaded" && a["container"]["id"] == storm_id.as_str()
    });
    let storm_seen = Instant::now();
    assert!(storm_alert["details"]["lost_total"].as_u64().unwrap_or(0) > 0);
    drop(storm);

    let flood = flooder("flood-open", "open");
    let flood_id = flood.cgroup_path().expect("cgroup");
    let overload = flood_alert(&agent, &flood_id, &["file_open"]);
    let gap = storm_seen.elapsed();
    assert!(
        gap < Duration::from_secs(60),
        "the flood's alert came {gap:?} after the other overload's, not within its cooldown"
    );
    let (escape, alert) = escape_during(&agent);
    let budgeted = budget_counted(&mut agent, "file_open");
    // The flooder's failed opens that were sent: at most the budget per second.
    let sent = read_jsonl(&agent.event_log)
        .iter()
        .filter(|e| e["container"]["id"] == flood_id.as_str() && e["data"]["kind"] == "file_open")
        .count();
    eprintln!(
        "flood-open: other overload {gap:?} before; flood alert {}; {budgeted} budgeted, {sent} sent; escape alert {}",
        overload["summary"], alert["summary"]
    );
    drop(escape);
    drop(flood);
    agent.stop();
    only_expected_alerts(&agent);
    finish(agent, "flood-open");
}

#[test]
fn a_flood_of_refused_namespace_calls_hides_no_escape() {
    let dir = work_dir("flood-ns");
    let mut agent = Agent::start_with(&dir, Some(SMALL_RINGS));
    let flood = flooder("flood-ns", "ns");
    let flood_id = flood.cgroup_path().expect("cgroup");
    let overload = flood_alert(&agent, &flood_id, &["setns", "unshare"]);
    let (escape, alert) = escape_during(&agent);
    let setns = budget_counted(&mut agent, "setns");
    // A refused setns that was sent is an attempt record, not an escape.
    let attempts: Vec<Value> = read_jsonl(&agent.event_log)
        .into_iter()
        .filter(|e| e["container"]["id"] == flood_id.as_str() && e["data"]["syscall"] == "setns")
        .collect();
    assert!(
        attempts
            .iter()
            .all(|e| e["data"]["ret"].as_i64().is_some_and(|r| r < 0)),
        "refused setns only"
    );
    eprintln!(
        "flood-ns: flood alert {}; {setns} setns budgeted, {} sent; escape alert {}",
        overload["summary"],
        attempts.len(),
        alert["summary"]
    );
    drop(escape);
    drop(flood);
    agent.stop();
    only_expected_alerts(&agent);
    finish(agent, "flood-ns");
}

/// A container with CAP_SYS_ADMIN and CAP_SYS_CHROOT rejoins its own mount namespace as fast as it can: every
/// setns succeeds and changes nothing, as cheap as a refused one. Budgeted like an attempt, so
/// the critical buffer loses nothing and the second container's escape is alerted.
#[test]
fn a_flood_of_setns_into_namespaces_already_held_hides_no_escape() {
    let dir = work_dir("flood-ns-own");
    let mut agent = Agent::start_with(&dir, Some(SMALL_RINGS));
    let bundle = with_primitives(Bundle::busybox("flood-ns-own").expect("bundle"))
        .add_capabilities(&["SYS_ADMIN", "SYS_CHROOT"]);
    let flood = flood_in(bundle, "ns-own");
    let flood_id = flood.cgroup_path().expect("cgroup");
    let overload = flood_alert(&agent, &flood_id, &["setns"]);
    let (escape, alert) = escape_during(&agent);
    let setns = budget_counted(&mut agent, "setns");
    let sent: Vec<Value> = read_jsonl(&agent.event_log)
        .into_iter()
        .filter(|e| e["container"]["id"] == flood_id.as_str() && e["data"]["syscall"] == "setns")
        .collect();
    assert!(
        sent.iter().all(|e| e["data"]["ret"] == 0),
        "the no-op joins succeeded"
    );
    eprintln!(
        "flood-ns-own: flood alert {}; {setns} setns budgeted, {} sent; escape alert {}",
        overload["summary"],
        sent.len(),
        alert["summary"]
    );
    drop(escape);
    drop(flood);
    agent.stop();
    only_expected_alerts(&agent);
    finish(agent, "flood-ns-own");
}

/// The benign look-alike: an unprivileged `find /` over a tree of 3,000 directories it may
/// not read (home directories on a shared volume) makes 3,000 EACCES within a second. The
/// budget holds most of them back (the metric counts them), no alert comes.
#[test]
fn find_as_an_unprivileged_user_is_budgeted_and_silent() {
    let dir = work_dir("find-eacces");
    let mut agent = Agent::start(&dir);
    let mut bundle = Bundle::busybox("find").expect("bundle");
    let homes = bundle.rootfs().join("srv/home");
    for i in 0..3000 {
        let d = homes.join(format!("u{i:04}"));
        fs::create_dir_all(&d).expect("mkdir");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    bundle.config_mut()["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    let c = bundle
        .args(&["sh", "-c", "find / >/dev/null 2>&1; echo done; sleep 1000"])
        .run_detached(&unique_id("ewt"))
        .expect("run find");
    let id = c.cgroup_path().expect("cgroup");
    let deadline = Instant::now() + WAIT;
    let first = loop {
        let n = agent.metric_sum("escapewatch_events_budgeted_total", "kind=\"file_open\"");
        if n > 0.0 {
            break n;
        }
        assert!(Instant::now() < deadline, "the budget never engaged");
        std::thread::sleep(Duration::from_millis(100));
    };
    // find is done once the count stops growing (the agent reports every second).
    let mut budgeted = first;
    loop {
        std::thread::sleep(Duration::from_secs(3));
        let n = agent.metric_sum("escapewatch_events_budgeted_total", "kind=\"file_open\"");
        if n == budgeted {
            break;
        }
        assert!(Instant::now() < deadline, "find never finished");
        budgeted = n;
    }
    drop(c);
    agent.stop();
    let events = read_jsonl(&agent.event_log);
    let sent = events
        .iter()
        .filter(|e| {
            e["container"]["id"] == id.as_str()
                && e["data"]["kind"] == "file_open"
                && e["data"]["ret"].as_i64().is_some_and(|r| r < 0)
        })
        .count();
    let reported: u64 = events
        .iter()
        .filter(|e| e["data"]["kind"] == "events_budgeted" && e["container"]["id"] == id.as_str())
        .filter_map(|e| e["data"]["suppressed"]["file_open"].as_u64())
        .sum();
    eprintln!("find-eacces: {sent} failed opens sent, {budgeted} budgeted, {reported} reported");
    assert!(sent >= 1, "the budget lets the first ones through");
    assert!(
        sent as u64 + reported >= 3000,
        "every EACCES sent or counted: {sent} + {reported}"
    );
    assert_eq!(
        reported as f64, budgeted,
        "the metric and the reports agree"
    );
    assert_eq!(agent.alerts(), Vec::<Value>::new());
    // Replay gives the same silence (no fixture: fixtures are kept for their alerts).
    agent.assert_replay_reproduces_alerts("find-eacces");
}
