//! Issue A scenarios: the real eBPF object, real runc containers, the real setns.
//!
//! Run through `cargo xtask test` (root, one test at a time: every agent sees the whole host).

use std::{
    fs,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use escapewatch_integration::{
    agent::{Agent, ns_inode, read_jsonl, work_dir},
    escape::check_hooks,
    runc::{Bundle, random_hex64, unique_id},
};
use serde_json::Value;

const ALERT_WAIT: Duration = Duration::from_secs(15);
const ESCAPE_CAPS: [&str; 3] = ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_CHROOT"];

/// A host process that lives as long as the guard.
struct HostProcess(Child);

impl HostProcess {
    fn spawn(args: &[&str]) -> HostProcess {
        let child = Command::new(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
        HostProcess(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rule_alerts<'a>(alerts: &'a [Value], rule: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| a["rule"] == rule).collect()
}

/// A privileged container sharing the host PID namespace nsenters into the mount namespace of
/// a host process. Returns the agent (stopped) and the checked alert.
fn escape_scenario(test: &str, cgroups_path: Option<&str>) -> (Agent, Value, String) {
    let dir = work_dir(test);
    let host = HostProcess::spawn(&["sleep", "300"]);
    let host_mnt = ns_inode(host.pid(), "mnt");
    let mut agent = Agent::start(&dir);

    let mut bundle = Bundle::busybox(test)
        .expect("bundle")
        .share_host_namespace("pid")
        .add_capabilities(&ESCAPE_CAPS);
    if let Some(path) = cgroups_path {
        bundle = bundle.cgroups_path(path);
    }
    let container = bundle
        .run_detached(&unique_id("ewt"))
        .expect("run container");
    let cgroup = container.cgroup_path().expect("container cgroup");
    let script = format!(
        "echo $$; exec nsenter -t {} -m -- readlink /proc/self/ns/mnt",
        host.pid()
    );
    let out = container
        .exec_ok(&["sh", "-c", &script])
        .expect("nsenter in the container");
    let mut lines = out.lines();
    let escaper_pid: u64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("pid line");
    assert_eq!(
        lines.next(),
        Some(format!("mnt:[{host_mnt}]").as_str()),
        "the escape itself must work: the container process ends up in the host mount namespace"
    );

    let alert = agent.wait_for_alert(ALERT_WAIT, |a| {
        a["rule"] == "namespace-join-host" && a["process"]["pid"] == escaper_pid
    });
    check_hooks(&agent, &alert);
    // busybox's nsenter applet: the executable is the file that really ran. The shell exec'd
    // it through /proc/self/exe; the agent names it by /proc/PID/exe (/bin/busybox) or, when
    // the process is gone before /proc is read, by the image it was running (/bin/sh, a
    // symlink to busybox): either way, inside the container, the path is busybox itself.
    let rootfs = container.bundle_dir().join("rootfs");
    let exe = alert["process"]["exe"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        fs::canonicalize(rootfs.join(exe.trim_start_matches('/'))).ok(),
        fs::canonicalize(rootfs.join("bin/busybox")).ok(),
        "exe {exe:?} must be busybox inside the container: {alert:#}"
    );
    drop(container);
    agent.stop();

    let alerts = agent.alerts();
    assert_eq!(
        rule_alerts(&alerts, "namespace-join-host").len(),
        1,
        "exactly one alert for one setns: {alerts:#?}"
    );
    assert_eq!(
        alert["severity"],
        escapewatch_integration::scenario::catalogued("namespace-join-host")["severity"]
    );
    assert_eq!(alert["mitre"], "T1611");
    assert_eq!(alert["process"]["comm"], "nsenter");
    assert_eq!(alert["process"]["uid"], 0);
    assert_eq!(alert["details"]["namespace_type"], "mnt");
    assert_eq!(alert["details"]["inode"], host_mnt);
    assert_eq!(alert["details"]["owner"], "host");
    assert!(alert["time"].as_str().unwrap().ends_with('Z'));
    assert!(alert["summary"].as_str().unwrap().contains("nsenter"));
    // The alert cites the setns event it came from.
    let ids = alert["event_ids"].as_array().expect("event ids");
    assert_eq!(ids.len(), 1);
    let events = read_jsonl(&agent.event_log);
    let setns = events
        .iter()
        .find(|e| e["id"] == ids[0])
        .expect("the cited event is in the event log");
    assert_eq!(setns["data"]["syscall"], "setns");
    assert_eq!(setns["process"]["pid"], escaper_pid);
    (agent, alert, cgroup)
}

#[test]
fn a_container_nsenter_into_host_mount_namespace_alerts_once() {
    let (agent, alert, cgroup) = escape_scenario("ns-join-host", None);
    // A default runc cgroup path names no runtime: the container is the cgroup path.
    assert_eq!(alert["container"]["runtime"], "unknown");
    assert_eq!(alert["container"]["id"], cgroup.as_str());

    // (e) The recorded log, replayed, gives the same alerts byte for byte.
    agent.assert_replay_reproduces_alerts("ns-join-host");
    record_fixture("namespace-join-host", &agent.event_log, &agent.alert_log);
}

#[test]
fn b_docker_style_cgroup_path_gives_runtime_docker_and_its_id() {
    let id = random_hex64();
    let (_agent, alert, cgroup) =
        escape_scenario("ns-join-host-docker", Some(&format!("/docker/{id}")));
    assert_eq!(cgroup, format!("/docker/{id}"));
    assert_eq!(alert["container"]["runtime"], "docker");
    assert_eq!(alert["container"]["id"], id.as_str());
}

#[test]
fn c_container_lifecycle_alone_gives_no_alert() {
    let dir = work_dir("lifecycle");
    let host = HostProcess::spawn(&["sleep", "300"]);
    let mut agent = Agent::start(&dir);
    for round in 0..3 {
        let mut bundle = Bundle::busybox("lifecycle").expect("bundle");
        if round == 1 {
            // runc itself joins a host namespace by path while creating this container.
            let net = format!("/proc/{}/ns/net", host.pid());
            for ns in bundle.config_mut()["linux"]["namespaces"]
                .as_array_mut()
                .expect("namespaces")
            {
                if ns["type"] == "network" {
                    ns["path"] = Value::String(net.clone());
                }
            }
        }
        if round == 2 {
            bundle = bundle.cgroups_path(&format!("/docker/{}", random_hex64()));
        }
        let c = bundle.run_detached(&unique_id("ewt")).expect("run");
        c.exec_ok(&["true"]).expect("exec true");
        c.exec_ok(&[
            "sh",
            "-c",
            "ls / >/dev/null; cat /proc/self/status >/dev/null",
        ])
        .expect("exec sh");
        c.kill("TERM").expect("kill");
        c.delete().expect("delete");
    }
    // The agent saw runc's own namespace work and the containers' processes (so this test
    // can fail) ...
    let helper_setns = agent.wait_for_event(ALERT_WAIT, |e| {
        e["data"]["syscall"] == "setns"
            && e["process"]["runtime_helper"] == true
            && e["data"]["joined"]
                .as_array()
                .is_some_and(|j| j.iter().any(|n| n["owner"]["kind"] == "container"))
    });
    assert_eq!(helper_setns["data"]["ret"], 0);
    agent.wait_for_event(ALERT_WAIT, |e| {
        e["data"]["kind"] == "process_exec"
            && e["container"]["runtime"] == "docker"
            && e["data"]["filename"] == "/bin/true"
    });
    agent.stop();
    // ... and raised nothing.
    assert_eq!(agent.alerts(), Vec::<Value>::new());
}

#[test]
fn d_host_unshare_and_nsenter_on_the_host_give_no_alert() {
    let dir = work_dir("host-admin");
    let host = HostProcess::spawn(&["sleep", "300"]);
    let mut agent = Agent::start(&dir);
    let unshared = HostProcess::spawn(&["unshare", "-m", "-u", "sleep", "300"]);
    // Wait until unshare has exec'd sleep in its new namespaces.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ns_inode(unshared.pid(), "mnt") == ns_inode(host.pid(), "mnt") {
        assert!(
            std::time::Instant::now() < deadline,
            "unshare did not take effect"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let into = format!("{}", unshared.pid());
    let status = Command::new("nsenter")
        .args(["-t", &into, "-m", "-u", "true"])
        .status()
        .expect("nsenter");
    assert!(status.success());
    let back = format!("nsenter -t {} -m true", host.pid());
    let status = Command::new("unshare")
        .args(["-m", "sh", "-c", &back])
        .status()
        .expect("unshare + nsenter back");
    assert!(status.success());
    // Both setns calls were seen ...
    for owner in ["unknown", "host"] {
        agent.wait_for_event(ALERT_WAIT, |e| {
            e["data"]["syscall"] == "setns"
                && e["process"]["comm"] == "nsenter"
                && e["data"]["joined"].as_array().is_some_and(|j| {
                    j.iter()
                        .any(|n| n["type"] == "mnt" && n["owner"]["kind"] == owner)
                })
        });
    }
    agent.stop();
    // ... and neither is an escape: these are host processes.
    assert_eq!(agent.alerts(), Vec::<Value>::new());
}

/// With ESCAPEWATCH_RECORD_FIXTURES=1, keep this run's logs as the root-free replay fixture.
fn record_fixture(name: &str, events: &Path, alerts: &Path) {
    if std::env::var_os("ESCAPEWATCH_RECORD_FIXTURES").is_none() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    fs::create_dir_all(&dir).expect("fixtures dir");
    // Fixtures are JSON Lines; the agent writes binary by default.
    let text = escapewatch_integration::agent::log_text(events).expect("the event log");
    fs::write(dir.join(format!("{name}.events.jsonl")), text).expect("write events");
    fs::copy(alerts, dir.join(format!("{name}.alerts.jsonl"))).expect("copy alerts");
}
