//! Issue K, path races against the runtime, from both sides. The container's side: a real
//! symlink-exchange loop (renameat2 RENAME_EXCHANGE from two threads, and the same through
//! io_uring), counted in the kernel, alerted once with the kernel's count. The runtime's side:
//! real runc binding its /dev/null masks when the image's /dev/null is a symlink to
//! /proc/sys/kernel/core_pattern (CVE-2025-31133: runc 1.1.5 here does it), alerted from what
//! the kernel resolved the bind's source to. Benign look-alikes: an atomic config swap, log
//! rotation in a loop, and runc's normal start with its masks and a bind volume.

use std::{fs, os::unix::fs::symlink, time::Duration};

use escapewatch_integration::{
    agent::{Agent, read_jsonl, work_dir},
    escape::{
        WAIT, check_hooks, cited_hooks, finish, privileged, scenario, scenario_by_another_entry, sh,
    },
    runc::{Bundle, random_hex64},
    scenario::check_alert,
};
use serde_json::Value;

const EXCHANGE: &str = "path-race-exchange-loop";
const REDIRECTED: &str = "runtime-mount-redirected";

/// The kernel's rename-count records of the container of cgroup `cgroup`.
fn rename_records(agent: &Agent, cgroup: &str) -> Vec<Value> {
    read_jsonl(&agent.event_log)
        .into_iter()
        .filter(|e| {
            e["data"]["kind"] == "syscall"
                && e["data"]["name"] == "rename"
                && e["container"]["id"] == cgroup
        })
        .collect()
}

/// The exchanges the primitive reported making.
fn exchanges_made(output: &str) -> u64 {
    output
        .lines()
        .find_map(|l| l.strip_prefix("exchanges "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no exchange count in {output:?}"))
}

fn check_loop_alert(alert: &Value, entry: &str) {
    assert_eq!(alert["details"]["kind"], "exchange", "{alert:#}");
    // The first alert is the kernel's first count of the loop's window that reaches 256.
    assert_eq!(alert["details"]["count"], 256, "{alert:#}");
    assert!(
        alert["details"]["window_ns"].as_u64().unwrap() <= 1_000_000_000,
        "{alert:#}"
    );
    assert!(
        alert["details"]["rate_per_second"].as_u64().unwrap() >= 256,
        "{alert:#}"
    );
    assert_eq!(alert["details"]["entry"], entry, "{alert:#}");
    assert_eq!(alert["details"]["flags"][0], "RENAME_EXCHANGE", "{alert:#}");
    assert!(alert["details"]["destination_hash"].is_null(), "{alert:#}");
    assert_eq!(alert["process"]["exe"], "/bin/primitives", "{alert:#}");
    assert_eq!(alert["severity"], "high", "{alert:#}");
}

/// Run the loop `primitive` in a fresh container; the alert, its container's rename records,
/// every alert of the rule from it, and the exchanges the loop made.
fn exchange_loop(test: &str, primitive: &str, another_entry: bool) -> (Agent, Value, Vec<Value>) {
    let made = std::cell::Cell::new(0);
    let act = |c: &escapewatch_integration::runc::Container| {
        let out = sh(c, &format!("/bin/primitives {primitive} /tmp 2"));
        made.set(exchanges_made(&out));
        out
    };
    let (agent, alert, c) = if another_entry {
        scenario_by_another_entry(test, EXCHANGE, |b| b, act)
    } else {
        scenario(test, EXCHANGE, |b| b, act)
    };
    let cgroup = c.cgroup_path().unwrap();
    // The swapped pair is there: the exchanges were real.
    let out = sh(&c, "readlink /tmp/path || readlink /tmp/stash");
    assert_eq!(out.trim(), "/", "{out}");
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    let records = rename_records(&agent, &cgroup);
    let alerts: Vec<Value> = agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"] == EXCHANGE && a["container"]["id"] == cgroup)
        .collect();
    // Hundreds of thousands of exchanges, a few records a second (counts 1, 16, 256, 4096, …
    // per one-second window; the loop ran 2 s, so at most 3 windows), one alert.
    let made = made.get();
    eprintln!("{test}: {made} exchanges, {} records", records.len());
    assert!(made >= 10_000, "the loop made only {made} exchanges");
    assert!(
        !records.is_empty() && records.len() <= 3 * 6,
        "{} rename records for {made} exchanges: {records:#?}",
        records.len()
    );
    for r in &records {
        let count = r["data"]["args"][0].as_u64().unwrap();
        assert!(
            count.is_power_of_two() && count.trailing_zeros() % 4 == 0,
            "{r:#}"
        );
    }
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    (agent, alert, records)
}

#[test]
fn path_race_a_symlink_exchange_loop_is_alerted_once_with_the_kernel_count() {
    let (agent, alert, _) = exchange_loop("exchange-loop", "exchange-loop", false);
    check_loop_alert(&alert, "renameat2");
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
    finish(agent, "exchange-loop");
}

#[test]
fn path_race_the_same_loop_through_io_uring_is_alerted() {
    let (agent, alert, _) = exchange_loop("exchange-loop-iouring", "iouring-exchange-loop", true);
    check_loop_alert(&alert, "io_uring");
    let hooks = cited_hooks(&agent, &alert);
    assert_eq!(hooks, ["io_uring/iouring_complete_rename"], "{alert:#}");
    finish(agent, "exchange-loop-iouring");
}

#[test]
fn path_race_config_swaps_and_log_rotation_are_not_a_loop() {
    let dir = work_dir("exchange-benign");
    let agent = Agent::start(&dir);
    let c = privileged("exchange-benign", |b| b);
    let cgroup = c.cgroup_path().unwrap();
    let out = sh(
        &c,
        "/bin/primitives exchange-few /tmp 3 && /bin/primitives rotate /tmp 100 && \
         i=0; while [ $i -lt 100 ]; do echo $i > /tmp/s.log; mv -f /tmp/s.log.1 /tmp/s.log.2 2>/dev/null; \
         mv /tmp/s.log /tmp/s.log.1; i=$((i+1)); done; echo rotated-shell $i",
    );
    assert!(
        out.contains("swapped 3")
            && out.contains("rotated 100")
            && out.contains("rotated-shell 100"),
        "{out}"
    );
    // The kernel saw the swaps: their first exchange is reported (count 1).
    let first = agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "syscall"
            && e["data"]["name"] == "rename"
            && e["container"]["id"] == cgroup
    });
    assert_eq!(first["data"]["args"][0], 1, "{first:#}");
    assert_eq!(first["data"]["args"][1], 2, "{first:#}");
    std::thread::sleep(Duration::from_secs(1));
    drop(c);
    let mut agent = agent;
    agent.stop();
    let records = rename_records(&agent, &cgroup);
    // 3 exchanges: only the first is a record; 100 rotations onto the same names stay under
    // the first plain-rename report (256); busybox mv is a process per rename.
    assert_eq!(records.len(), 1, "{records:#?}");
    let loops: Vec<Value> = agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"] == EXCHANGE)
        .collect();
    assert!(loops.is_empty(), "{loops:#?}");
    agent.assert_replay_reproduces_alerts("exchange-benign");
}

/// A runc bundle whose image ships /dev/null as a symlink to /proc/sys/kernel/core_pattern
/// (and no /dev tmpfs, so runc's mask source is the image's /dev/null).
fn redirected_dev_null(b: Bundle) -> Bundle {
    let mut b = b;
    let null = b.rootfs().join("dev/null");
    let _ = fs::remove_file(&null);
    symlink("/proc/sys/kernel/core_pattern", &null).expect("symlink /dev/null");
    let mounts = b.config_mut()["mounts"].as_array_mut().expect("mounts");
    mounts.retain(|m| m["destination"] != "/dev");
    b
}

/// A container under Docker's cgroup layout (`/docker/<id>`): the runtime's own processes are
/// attributed to a container by their cgroup's path (their lineage is the runtime's).
fn docker_cgroup(b: Bundle, id: &str) -> Bundle {
    b.cgroups_path(&format!("/docker/{id}"))
}

#[test]
fn path_race_runc_binding_its_masks_through_a_dev_null_symlink_is_alerted() {
    let id = random_hex64();
    let dir = work_dir("runtime-mount-redirected");
    let agent = Agent::start(&dir);
    let c = privileged("runtime-mount-redirected", |b| {
        redirected_dev_null(docker_cgroup(b, &id))
    });
    let alert = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == REDIRECTED && a["container"]["id"] == id.as_str()
    });
    check_alert(&alert, REDIRECTED, &id, "docker");
    check_hooks(&agent, &alert);
    // runc 1.1.5 bound the masks (keys, timer_list: the masked files this kernel has) from
    // the symlink's target; the container reads the host's core_pattern at the masked paths.
    let host_pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let seen = sh(&c, "cat /proc/keys");
    assert_eq!(
        seen.trim(),
        host_pattern.trim(),
        "/proc/keys is core_pattern"
    );
    let ino = sh(&c, "stat -L -c %i /proc/sys/kernel/core_pattern");
    let event = agent.wait_for_event(WAIT, |e| e["id"] == alert["event_ids"][0]);
    assert_eq!(event["process"]["runtime_helper"], true, "{event:#}");
    assert!(
        alert["process"]["comm"]
            .as_str()
            .is_some_and(|c| c.starts_with("runc")),
        "{alert:#}"
    );
    assert_eq!(alert["severity"], "critical", "{alert:#}");
    let d = &alert["details"];
    assert_eq!(d["call"], "mount", "{alert:#}");
    assert_eq!(d["source"], "/dev/null", "{alert:#}");
    assert_eq!(d["flags"], "0x1000", "{alert:#}");
    let target = d["target"].as_str().unwrap();
    assert!(
        target.starts_with("/proc/") || target.starts_with("/sys/"),
        "{alert:#}"
    );
    let b = &d["bound"];
    assert_eq!(b["fs"], "proc", "{alert:#}");
    assert_eq!(b["file_type"], "regular", "{alert:#}");
    assert_eq!(b["file"]["name"], "core_pattern", "{alert:#}");
    assert_eq!(b["file"]["parent"], "kernel", "{alert:#}");
    assert_eq!(b["file"]["ino"].to_string(), ino.trim(), "{alert:#}");
    assert_eq!(
        b["mountpoint"],
        target.rsplit('/').next().unwrap(),
        "{alert:#}"
    );
    assert!(b["onto_itself"].is_null(), "{alert:#}");
    let all: Vec<Value> = agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"] == REDIRECTED)
        .collect();
    eprintln!(
        "runtime-mount-redirected: {} alerts, targets {:?}",
        all.len(),
        all.iter()
            .map(|a| a["details"]["target"].clone())
            .collect::<Vec<_>>()
    );
    drop(c);
    finish(agent, "runtime-mount-redirected");
}

#[test]
fn path_race_runc_normal_start_with_masks_and_a_bind_volume_is_silent() {
    let dir = work_dir("runtime-mount-benign");
    let agent = Agent::start(&dir);
    let volume = dir.join("volume");
    fs::create_dir_all(&volume).unwrap();
    fs::write(volume.join("data"), "x").unwrap();
    let cgroup = random_hex64();
    let c = privileged("runtime-mount-benign", |b| {
        docker_cgroup(b, &cgroup).bind_mount(&volume, "/data", true)
    });
    assert_eq!(sh(&c, "cat /data/data"), "x");
    // runc's /dev/null masks: the kernel read what they bound (the char device 1:3 runc made
    // in the container's /dev tmpfs), and a read-only self-bind of /proc/sys.
    let mask = agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "mount"
            && e["container"]["id"] == cgroup
            && e["data"]["source"] == "/dev/null"
            && e["data"]["bound"]["file"]["name"] == "null"
    });
    assert_eq!(mask["data"]["bound"]["file_type"], "char", "{mask:#}");
    assert_eq!(mask["data"]["bound"]["rdev"], "1:3", "{mask:#}");
    assert_eq!(mask["process"]["runtime_helper"], true, "{mask:#}");
    let ro = agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "mount"
            && e["container"]["id"] == cgroup
            && e["data"]["source"] == "/proc/sys"
            && e["data"]["bound"].is_object()
    });
    assert_eq!(ro["data"]["bound"]["onto_itself"], true, "{ro:#}");
    assert_eq!(ro["data"]["bound"]["fs"], "proc", "{ro:#}");
    let vol = agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "mount"
            && e["container"]["id"] == cgroup
            && e["data"]["bound"]["file"]["name"] == "volume"
    });
    assert_eq!(vol["data"]["bound"]["file_type"], "directory", "{vol:#}");
    std::thread::sleep(Duration::from_millis(500));
    drop(c);
    let mut agent = agent;
    agent.stop();
    let redirected: Vec<Value> = agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"] == REDIRECTED)
        .collect();
    assert!(redirected.is_empty(), "{redirected:#?}");
    agent.assert_replay_reproduces_alerts("runtime-mount-benign");
}

const SYSCTL: &str = "net.ipv4.conf.lo.log_martians";

/// `runc run` (foreground) of a busybox `true` whose config asks for the sysctl [`SYSCTL`] =
/// `value`, under Docker's cgroup layout with container id `id`. `host_net`: runc itself starts
/// in a fresh network namespace (`unshare -n`) and the config names the host's (this test's
/// own, /proc/PID/ns/net) as the container's.
fn run_with_sysctl(id: &str, value: &str, host_net: bool) {
    let mut b = Bundle::busybox("runtime-sysctl")
        .expect("bundle")
        .cgroups_path(&format!("/docker-{id}.scope"))
        .args(&["true"]);
    let spec = b.config_mut();
    if host_net {
        for ns in spec["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = format!("/proc/{}/ns/net", std::process::id()).into();
            }
        }
    }
    spec["linux"]["sysctl"] = serde_json::json!({ SYSCTL: value });
    let bundle = b.rootfs().parent().unwrap().to_path_buf();
    fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(b.config()).unwrap(),
    )
    .unwrap();
    let name = format!("ewt-sysctl-{}-{host_net}", std::process::id());
    let mut cmd = std::process::Command::new(if host_net { "unshare" } else { "runc" });
    if host_net {
        cmd.args(["-n", "runc"]);
    }
    let out = cmd
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&name)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runc run");
    let _ = std::process::Command::new("runc")
        .args(["delete", "-f", &name])
        .output();
    assert!(
        out.status.success(),
        "runc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// runc's own sysctl write landing in a namespace of the host (CVE-2025-52881's effect: the
/// runtime writes a host-global setting). runc validates that a `net.*` sysctl has a network
/// namespace of its own by comparing the config's namespace path with its own: started in a
/// fresh network namespace (`unshare -n`), it takes the host's (/proc/PID/ns/net) for the
/// container's and writes the sysctl there. The value written is the host's current one: the
/// host's setting does not change. The benign twin: the same config sysctl in the container's
/// own network namespace, as `docker run --sysctl` makes runc write it.
#[test]
fn path_race_runc_writing_a_sysctl_into_the_host_network_namespace_is_alerted() {
    let current = fs::read_to_string("/proc/sys/net/ipv4/conf/lo/log_martians").unwrap();
    let current = current.trim().to_owned();
    let (own, host) = (random_hex64(), random_hex64());
    let dir = work_dir("runtime-sysctl");
    let mut agent = Agent::start(&dir);
    run_with_sysctl(&own, "1", false);
    run_with_sysctl(&host, &current, true);
    let alert = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "sysctl-write-from-container" && a["container"]["id"] == host.as_str()
    });
    check_hooks(&agent, &alert);
    check_alert(&alert, "sysctl-write-from-container", &host, "docker");
    assert_eq!(alert["details"]["sysctl"], SYSCTL, "{alert:#}");
    assert_eq!(alert["details"]["value"], current.as_str(), "{alert:#}");
    assert_eq!(alert["details"]["by_runtime"], true, "{alert:#}");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .starts_with("the container runtime (runc"),
        "{alert:#}"
    );
    let event = agent.wait_for_event(WAIT, |e| e["id"] == alert["event_ids"][0]);
    assert_eq!(event["process"]["runtime_helper"], true, "{event:#}");
    assert_eq!(event["hook"], "cgroup_sysctl/sysctl_write", "{event:#}");
    // The container's own namespace: written (the event is there), namespaced, not alerted.
    let benign = agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "sysctl_write" && e["container"]["id"] == own.as_str()
    });
    assert_eq!(benign["data"]["namespaced"], true, "{benign:#}");
    assert_eq!(benign["process"]["runtime_helper"], true, "{benign:#}");
    agent.stop();
    let own_alerts: Vec<Value> = agent
        .alerts()
        .into_iter()
        .filter(|a| a["container"]["id"] == own.as_str())
        .collect();
    assert!(own_alerts.is_empty(), "{own_alerts:#?}");
    finish(agent, "runtime-sysctl");
}
