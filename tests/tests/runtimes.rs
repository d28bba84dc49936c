//! Real runtimes: escapes and the benign lifecycle under Docker Engine and under containerd
//! (`ctr`), each test starting its own dockerd/containerd and stopping them (with every
//! container) at its end. The alerts carry the node, the container's real name, image and
//! labels from the runtime, and replay reproduces them byte for byte from the event log.

use std::time::Duration;

use escapewatch_integration::{
    agent::{Agent, work_dir},
    podman::{PODMAN_IMAGE, Podman},
    runc::unique_id,
    runtimes::{CTR_IMAGE, IMAGE, Runtimes},
    scenario::HostSetting,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
/// What the escapes write into the host's core_pattern (restored afterwards).
const PATTERN: &str = "|/bin/false ewt-runtimes";

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

/// The fields every alert of these tests must have, checked one by one.
fn check_identity(a: &Value, name: &str, image: &str, runtime: &str, label: (&str, &str)) {
    let c = &a["container"];
    assert_eq!(c["name"], name, "{a:#}");
    assert_eq!(c["image"], image, "{a:#}");
    assert_eq!(c["runtime"], runtime, "{a:#}");
    assert!(
        c["image_digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{a:#}"
    );
    assert_eq!(c["labels"][label.0], label.1, "{a:#}");
    assert_eq!(a["node"]["name"], hostname(), "{a:#}");
    assert_eq!(a["node"]["hostname"], hostname(), "{a:#}");
    assert_eq!(
        a["node"]["agent_version"],
        env!("CARGO_PKG_VERSION"),
        "{a:#}"
    );
    assert_eq!(a["id"].as_str().map(str::len), Some(36), "{a:#}");
}

/// The `run` arguments of a container, labelled team=red, that can escape: CAP_SYS_ADMIN and
/// CAP_SYS_PTRACE, no seccomp, AppArmor or masked paths (`unmask`: the engine's option for
/// that), in the host's pid namespace, running `command`.
fn escaper_args<'a>(
    name: &'a str,
    unmask: &'a str,
    extra: &[&'a str],
    image: &'a str,
    command: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "-d",
        "--name",
        name,
        "--label",
        "team=red",
        // What --privileged gives but CAP_SYS_RESOURCE, which this VM's bounding set lacks
        // (runc refuses to apply a capability it cannot have).
        "--cap-add",
        "SYS_ADMIN",
        "--cap-add",
        "SYS_PTRACE",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--security-opt",
        unmask,
        "--pid=host",
        "--network",
        "none",
    ];
    args.extend_from_slice(extra);
    args.push(image);
    args.extend_from_slice(command);
    args
}

/// A docker container that can escape ([`escaper_args`]); its id.
fn docker_escaper(rt: &Runtimes, name: &str, extra: &[&str], command: &[&str]) -> String {
    let args = escaper_args(name, "systempaths=unconfined", extra, IMAGE, command);
    rt.docker_ok(&args).expect("docker run").trim().to_owned()
}

/// What the docker and podman tests share, through `cli` (the engine's command, which
/// returns stdout and panics on failure): the benign lifecycle (run, exec, stop, rm), then an
/// escaper ([`escaper_args`] with `unmask`) entering a host process's mount namespace (not
/// pid 1's: /proc/1/ns is unreadable on this VM) and writing core_pattern. Both alerts carry
/// the container's name, `image`, `runtime` and label; the benign container raises none.
fn lifecycle_and_escapes(
    agent: &mut Agent,
    cli: &dyn Fn(&[&str]) -> String,
    image: &str,
    runtime: &str,
    unmask: &str,
) {
    let benign = unique_id("ewt-benign");
    let benign_id = cli(&[
        "run",
        "-d",
        "--name",
        &benign,
        "--network",
        "none",
        image,
        "sleep",
        "1000",
    ])
    .trim()
    .to_owned();
    cli(&["exec", &benign, "ls", "/"]);
    cli(&["stop", "-t", "1", &benign]);
    cli(&["rm", &benign]);

    let mut host = host_process();
    let name = unique_id("ewt-escape");
    let id = cli(&escaper_args(&name, unmask, &[], image, &["sleep", "1000"]))
        .trim()
        .to_owned();
    // The time the runtime's metadata takes to arrive: it is looked up in the background
    // from the container's first event, and an alert before that goes out without it.
    std::thread::sleep(Duration::from_secs(2));
    let pid = host.id().to_string();
    cli(&[
        "exec",
        &name,
        "nsenter",
        "-t",
        &pid,
        "-m",
        "--",
        "/bin/true",
    ]);
    let escape = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "namespace-join-host" && a["container"]["id"] == id.as_str()
    });
    check_identity(&escape, &name, image, runtime, ("team", "red"));
    let write_pattern = format!("echo '{PATTERN}' > /proc/sys/kernel/core_pattern");
    cli(&["exec", &name, "sh", "-c", &write_pattern]);
    let write = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "core-pattern-write" && a["container"]["id"] == id.as_str()
    });
    check_identity(&write, &name, image, runtime, ("team", "red"));
    assert_eq!(write["details"]["value"], PATTERN);

    let noisy = alerts_about(agent, |c| {
        c["id"] == benign_id.as_str() || c["name"] == benign.as_str()
    });
    assert!(noisy.is_empty(), "the benign lifecycle alerted: {noisy:#?}");
    // Both alerts went out with the metadata, and the metric says so.
    let hits = agent.metric_sum("escapewatch_workload_metadata_total", "result=\"hit\"");
    assert!(hits >= 2.0, "hits {hits}");
    cli(&["rm", "-f", &name]);
    let _ = host.kill();
    let _ = host.wait();
}

/// A host process whose mount namespace the escapes enter.
fn host_process() -> std::process::Child {
    std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("sleep")
}

fn alerts_about(agent: &Agent, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    agent
        .alerts()
        .into_iter()
        .filter(|a| pred(&a["container"]))
        .collect()
}

#[test]
fn docker_escapes_carry_the_container_name_and_image_and_the_lifecycle_is_silent() {
    let _restore = HostSetting::keep("/proc/sys/kernel/core_pattern");
    let rt = Runtimes::start("docker").expect("start dockerd and containerd");
    let dir = work_dir("runtimes-docker");
    let mut agent = Agent::start_with(&dir, Some(&rt.agent_config()));

    let docker = |args: &[&str]| rt.docker_ok(args).expect("docker");
    lifecycle_and_escapes(
        &mut agent,
        &docker,
        IMAGE,
        "docker",
        "systempaths=unconfined",
    );
    agent.stop();
    agent.assert_replay_reproduces_alerts("the docker scenarios");
}

#[test]
fn containerd_escapes_carry_the_container_name_and_image_and_the_lifecycle_is_silent() {
    let _restore = HostSetting::keep("/proc/sys/kernel/core_pattern");
    let rt = Runtimes::start("containerd").expect("start containerd");
    let dir = work_dir("runtimes-containerd");
    let mut agent = Agent::start_with(&dir, Some(&rt.agent_config()));

    let benign = unique_id("ewt-benign");
    rt.ctr_ok(&["run", "-d", CTR_IMAGE, &benign, "sleep", "1000"])
        .expect("ctr run");
    rt.ctr_ok(&["tasks", "exec", "--exec-id", "ls1", &benign, "ls", "/"])
        .expect("ctr exec");
    rt.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", &benign])
        .expect("kill");
    std::thread::sleep(Duration::from_millis(500));
    rt.ctr_ok(&["tasks", "rm", "-f", &benign])
        .expect("tasks rm");
    rt.ctr_ok(&["containers", "rm", &benign])
        .expect("containers rm");

    let mut host = host_process();
    let name = unique_id("ewt-escape");
    rt.ctr_ok(&[
        "run",
        "-d",
        // Not --privileged: it asks for CAP_SYS_RESOURCE, which this VM's bounding set lacks.
        "--cap-add",
        "CAP_SYS_ADMIN",
        "--cap-add",
        "CAP_SYS_PTRACE",
        "--with-ns",
        &format!("pid:/proc/{}/ns/pid", host.id()),
        "--label",
        "team=blue",
        CTR_IMAGE,
        &name,
        "sleep",
        "1000",
    ])
    .expect("ctr run");
    std::thread::sleep(Duration::from_secs(2));
    rt.ctr_ok(&[
        "tasks",
        "exec",
        "--exec-id",
        "ns1",
        &name,
        "nsenter",
        "-t",
        &host.id().to_string(),
        "-m",
        "--",
        "/bin/true",
    ])
    .expect("nsenter");
    let escape = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "namespace-join-host" && a["container"]["name"] == name.as_str()
    });
    check_identity(&escape, &name, CTR_IMAGE, "containerd", ("team", "blue"));
    rt.ctr_ok(&[
        "tasks",
        "exec",
        "--exec-id",
        "cp1",
        &name,
        "sh",
        "-c",
        // containerd's spec mounts /proc/sys read-only: CAP_SYS_ADMIN remounts it.
        &format!(
            "mount -o remount,rw /proc/sys && echo '{PATTERN}' > /proc/sys/kernel/core_pattern"
        ),
    ])
    .expect("core_pattern write");
    let write = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "core-pattern-write" && a["container"]["name"] == name.as_str()
    });
    check_identity(&write, &name, CTR_IMAGE, "containerd", ("team", "blue"));

    let noisy = alerts_about(&agent, |c| {
        c["id"].as_str().is_some_and(|i| i.ends_with(&benign)) || c["name"] == benign.as_str()
    });
    assert!(noisy.is_empty(), "the benign lifecycle alerted: {noisy:#?}");
    agent.stop();
    let _ = host.kill();
    let _ = host.wait();
    agent.assert_replay_reproduces_alerts("the containerd scenarios");
}

/// `p` of the `escapewatch_alert_latency_seconds` histogram: the upper bound of the first
/// bucket holding that share of the alerts (seconds), and the count.
#[test]
fn podman_escapes_carry_the_container_name_and_image_and_the_lifecycle_is_silent() {
    let _restore = HostSetting::keep("/proc/sys/kernel/core_pattern");
    let pm = Podman::start("podman").expect("start podman's API service");
    let dir = work_dir("runtimes-podman");
    let mut agent = Agent::start_with(&dir, Some(&pm.agent_config()));

    let podman = |args: &[&str]| pm.podman_ok(args).expect("podman");
    lifecycle_and_escapes(&mut agent, &podman, PODMAN_IMAGE, "podman", "unmask=ALL");
    agent.stop();
    agent.assert_replay_reproduces_alerts("the podman scenarios");
}

fn alert_latency_quantile(agent: &mut Agent, p: f64) -> (f64, f64) {
    let text = agent.http_get("/metrics");
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("escapewatch_alert_latency_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, n) = l.split_once("\"} ")?;
            Some((le.parse().unwrap_or(f64::INFINITY), n.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    let le = buckets
        .iter()
        .find(|(_, n)| *n >= p * total)
        .map_or(f64::INFINITY, |b| b.0);
    (le, total)
}

/// `escapewatch_workload_metadata_total{result="error"}` once it reaches `n` (or the
/// deadline passed: then less, for the caller's assertion to show).
fn lookup_errors_reaching(agent: &mut Agent, n: f64) -> f64 {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let e = agent.metric_sum("escapewatch_workload_metadata_total", "result=\"error\"");
        if e >= n || std::time::Instant::now() > deadline {
            return e;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Docker's socket lost mid-run: first dockerd frozen (SIGSTOP: the socket accepts and never
/// answers, the worst case for a lookup), then gone (killed, its socket file removed).
/// - A docker container looked up before keeps its cached metadata in both phases.
/// - Escapes from containers no runtime can be asked about still alert, without metadata,
///   counted as misses, and the lookups' failures are counted.
/// - Nothing waits on the runtime: the p99 of the alert latency stays far under one lookup's
///   500 ms time bound (printed for the note).
#[test]
fn a_runtime_socket_lost_mid_run_leaves_alerts_flowing_without_metadata() {
    use escapewatch_integration::{
        escape::nsenter_escape_from,
        runc::{Bundle, random_hex64},
    };
    let mut rt = Runtimes::start("docker").expect("start dockerd and containerd");
    let dir = work_dir("runtimes-socket-lost");
    // No runc state source: a bare runc container is then known to no source at all.
    let config = format!("{}oci_state = []\n", rt.agent_config());
    let mut agent = Agent::start_with(&dir, Some(&config));
    let host = host_process();
    let trigger = dir.join("trigger");
    std::fs::create_dir_all(&trigger).unwrap();
    let name = unique_id("ewt-cached");
    let script = format!(
        "for t in 1 2; do while [ ! -e /trigger/go$t ]; do sleep 0.05; done; \
         nsenter -t {} -m -- /bin/true; done; sleep 1000",
        host.id()
    );
    let volume = format!("{}:/trigger", trigger.display());
    let id = docker_escaper(&rt, &name, &["-v", &volume], &["sh", "-c", &script]);
    // Its metadata is looked up from its first event, while dockerd answers.
    let deadline = std::time::Instant::now() + WAIT;
    while agent.metric_sum("escapewatch_workload_metadata_total", "result=\"found\"") < 1.0 {
        assert!(std::time::Instant::now() < deadline, "never looked up");
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut escapes = 0;
    let mut cached_ids: Vec<Value> = Vec::new();
    let mut phase = |agent: &mut Agent, go: &str| {
        // The cached container: its new alert still names it.
        std::fs::write(trigger.join(go), "").unwrap();
        let cached = agent.wait_for_alert(WAIT, |a| {
            a["rule"] == "namespace-join-host"
                && a["container"]["id"] == id.as_str()
                && !cached_ids.contains(&a["id"])
        });
        check_identity(&cached, &name, IMAGE, "docker", ("team", "red"));
        cached_ids.push(cached["id"].clone());
        escapes += 1;
        // Containers in docker-shaped cgroups (so dockerd is asked about them) that dockerd
        // cannot answer for: alerted, without metadata.
        for _ in 0..3 {
            let bundle = Bundle::busybox("socket-lost")
                .expect("bundle")
                .cgroups_path(&format!("/docker/{}", random_hex64()));
            let (c, pid) = nsenter_escape_from(bundle, host.id());
            let a = agent.wait_for_alert(WAIT, |a| {
                a["rule"] == "namespace-join-host" && a["process"]["pid"] == pid
            });
            assert!(a["container"]["id"].is_string(), "{a:#}");
            assert!(a["container"]["name"].is_null(), "{a:#}");
            assert!(a["container"]["image"].is_null(), "{a:#}");
            assert_eq!(a["node"]["name"], hostname(), "{a:#}");
            drop(c);
            escapes += 1;
        }
    };
    rt.freeze_dockerd();
    phase(&mut agent, "go1");
    // The lookups finish (each failing after its time bound) well after the alerts went out.
    let frozen_errors = lookup_errors_reaching(&mut agent, 3.0);
    rt.lose_dockerd();
    phase(&mut agent, "go2");
    let errors = lookup_errors_reaching(&mut agent, frozen_errors + 3.0);
    let misses = agent.metric_sum("escapewatch_workload_metadata_total", "result=\"miss\"");
    let hits = agent.metric_sum("escapewatch_workload_metadata_total", "result=\"hit\"");
    let (p99, alerts) = alert_latency_quantile(&mut agent, 0.99);
    eprintln!(
        "socket lost: {escapes} escapes alerted; hits {hits}, misses {misses}, lookup errors \
         {frozen_errors} frozen + {} gone; alert latency p99 <= {p99} s over {alerts} alerts",
        errors - frozen_errors
    );
    assert!(hits >= 2.0, "hits {hits}");
    assert!(misses >= 6.0, "misses {misses}");
    // Each bare container's lookup asked dockerd and failed, in each phase.
    assert!(
        frozen_errors >= 3.0,
        "lookup errors while frozen {frozen_errors}"
    );
    assert!(
        errors - frozen_errors >= 3.0,
        "lookup errors once gone {errors}"
    );
    assert!(
        p99 < 0.5,
        "alert latency p99 {p99} s: the event path waited"
    );
    agent.stop();
    let mut host = host;
    let _ = host.kill();
    let _ = host.wait();
    drop(rt);
    agent.assert_replay_reproduces_alerts("the socket-loss scenarios");
}
