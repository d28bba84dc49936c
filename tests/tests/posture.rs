//! Container posture: real runc containers of known posture. `escapewatch audit --json` reads
//! each from the runtime's state; an alert of such a container carries its posture field by
//! field; `container-sensitive-mount` fires for a host-root and a runtime-socket bind mount
//! and stays silent for an ordinary data volume.

use std::{
    fs,
    os::unix::net::UnixListener,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use escapewatch_integration::{
    agent::{Agent, agent_bin, work_dir},
    escape::{WAIT, finish, sh},
    runc::{Bundle, Container, unique_id},
    scenario::{catalogued, check_alert, with_primitives},
};
use serde_json::{Value, json};

/// Every capability of Linux 5.9+ (what `--privileged` gives).
const ALL_CAPS: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A seccomp filter (runc's default spec has none): the "default" container is filtered.
/// runc 1.1's spec has no cgroup namespace either: every container here shares the host's
/// (reported in `host_namespaces`; no CIS item).
fn with_seccomp(mut b: Bundle) -> Bundle {
    b.config_mut()["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{ "names": ["kexec_load"], "action": "SCMP_ACT_ERRNO" }]
    });
    b
}

fn busybox(name: &str, edit: impl FnOnce(Bundle) -> Bundle) -> Container {
    let b = with_primitives(Bundle::busybox(name).expect("bundle"));
    edit(b)
        .run_detached(&unique_id("ewp"))
        .expect("run container")
}

/// The default runc container (with a seccomp filter).
fn default_container(name: &str) -> Container {
    busybox(name, with_seccomp)
}

/// The capabilities this host has (a sandbox may lack some): what `--privileged` gives here.
fn host_caps() -> Vec<&'static str> {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(bit, _)| bnd & (1 << bit) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The runtime default set (14) is not "added".
fn privileged_added() -> usize {
    host_caps().len() - 14
}

/// Privileged: every capability the host has, no seccomp filter, no masked paths.
fn privileged_container(name: &str) -> Container {
    busybox(name, |b| {
        b.add_capabilities(&host_caps())
            .unmask_paths()
            .writable_rootfs()
    })
}

/// `escapewatch audit --json`.
fn audit() -> Value {
    let out = Command::new(agent_bin())
        .args(["audit", "--json"])
        .output()
        .expect("escapewatch audit");
    assert!(out.status.success(), "audit failed: {out:?}");
    serde_json::from_slice(&out.stdout).expect("audit JSON")
}

fn row<'a>(audit: &'a Value, id: &str) -> &'a Value {
    audit["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("container {id} not in the audit: {audit:#}"))
}

fn cis(row: &Value) -> Vec<String> {
    row["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["cis"].as_str().unwrap().to_owned())
        .collect()
}

/// Whether the host enforces AppArmor: if not, no container has a profile (CIS 5.1).
fn apparmor_on() -> bool {
    fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y")
}

/// 5.1 on hosts without AppArmor, then `rest`.
fn expect_cis(rest: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    if !apparmor_on() {
        v.push("5.1".into());
    }
    v.extend(rest.iter().map(|s| (*s).to_owned()));
    v
}

fn tmp(name: &str) -> PathBuf {
    let d = Path::new("/tmp/escapewatch-tests").join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn audit_reads_the_posture_of_containers_of_known_posture() {
    escapewatch_integration::agent::require_root();
    let default = default_container("posture-default");
    let privileged = privileged_container("posture-privileged");
    let host_pid = busybox("posture-hostpid", |b| {
        with_seccomp(b).share_host_namespace("pid")
    });
    let root = busybox("posture-root", |b| {
        with_seccomp(b).bind_mount("/", "/host", false)
    });
    let sock_dir = tmp("posture-sock");
    let sock = sock_dir.join("docker.sock");
    let _listener = UnixListener::bind(&sock).expect("listen");
    let socket = busybox("posture-sock", |b| {
        with_seccomp(b).bind_mount(&sock, "/var/run/docker.sock", true)
    });
    let no_seccomp = busybox("posture-noseccomp", |b| b);
    let data = tmp("posture-data");
    let volume = busybox("posture-volume", |b| {
        with_seccomp(b).bind_mount(&data, "/data", true)
    });

    let a = audit();
    let r = row(&a, default.id());
    assert_eq!(r["source"], "oci-state", "{r:#}");
    assert_eq!(r["posture"]["privileged"], false);
    assert_eq!(r["posture"]["host_namespaces"], json!(["cgroup"]));
    assert_eq!(r["posture"]["capabilities_added"], json!([]));
    assert_eq!(r["posture"]["seccomp"], "filtered");
    assert_eq!(r["posture"]["sensitive_mounts"], json!([]));
    assert_eq!(cis(r), expect_cis(&[]));

    let r = row(&a, privileged.id());
    assert_eq!(r["posture"]["privileged"], true, "{r:#}");
    assert_eq!(r["posture"]["seccomp"], "unconfined");
    let added = r["posture"]["capabilities_added"].as_array().unwrap();
    assert_eq!(added.len(), privileged_added(), "{r:#}");
    assert!(added.contains(&"CAP_SYS_ADMIN".into()));
    assert_eq!(cis(r), expect_cis(&["5.4", "5.21"]));

    let r = row(&a, host_pid.id());
    assert_eq!(
        r["posture"]["host_namespaces"],
        json!(["pid", "cgroup"]),
        "{r:#}"
    );
    assert_eq!(cis(r), expect_cis(&["5.15"]));

    let r = row(&a, root.id());
    assert_eq!(
        r["posture"]["sensitive_mounts"],
        json!([{ "source": "/", "destination": "/host", "class": "host_root", "read_only": true }]),
        "{r:#}"
    );
    assert_eq!(cis(r), expect_cis(&["5.5"]));

    let r = row(&a, socket.id());
    assert_eq!(
        r["posture"]["sensitive_mounts"],
        json!([{
            "source": sock.to_string_lossy(), "destination": "/var/run/docker.sock",
            "class": "runtime_socket", "read_only": false
        }]),
        "{r:#}"
    );
    assert_eq!(cis(r), expect_cis(&["5.31"]));

    let r = row(&a, no_seccomp.id());
    assert_eq!(r["posture"]["seccomp"], "unconfined", "{r:#}");
    assert_eq!(cis(r), expect_cis(&["5.21"]));

    let r = row(&a, volume.id());
    assert_eq!(r["posture"]["sensitive_mounts"], json!([]), "{r:#}");
    assert_eq!(cis(r), expect_cis(&[]));

    // The table names the same findings.
    let out = Command::new(agent_bin()).arg("audit").output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let line = table
        .lines()
        .find(|l| l.starts_with(privileged.id()))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(table.contains("5.4   privileged container"), "{table}");
    assert!(line.contains("oci-state"), "{line}");
    drop((
        default, privileged, host_pid, root, socket, no_seccomp, volume,
    ));
    let _ = fs::remove_dir_all(sock_dir);
    let _ = fs::remove_dir_all(data);
}

/// The agent's `container_started` report of `c` (its posture read): waited for, so the
/// primitive that follows is judged with the posture.
fn wait_started(agent: &Agent, c: &Container) -> Value {
    let cgroup = c.cgroup_path().expect("cgroup");
    agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "container_started" && e["container"]["id"] == cgroup
    })
}

/// The `kernel-debug-recon` alert of `c` (a read of /proc/kallsyms: any container can).
fn recon(agent: &Agent, c: &Container) -> Value {
    let cgroup = c.cgroup_path().expect("cgroup");
    sh(c, "head -c 64 /proc/kallsyms >/dev/null");
    let a = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "kernel-debug-recon" && a["container"]["id"] == cgroup
    });
    check_alert(&a, "kernel-debug-recon", &cgroup, "unknown");
    a
}

#[test]
fn alerts_carry_the_posture_and_a_privileged_container_raises_the_mount_rule() {
    let dir = work_dir("posture-alerts");
    let agent = Agent::start_with(
        &dir,
        Some("[rules.container-started-privileged]\nenabled = true\n"),
    );
    let default = default_container("posture-alert-default");
    let privileged = privileged_container("posture-alert-privileged");
    let started = wait_started(&agent, &default);
    assert_eq!(started["workload"]["source"], "oci-state", "{started:#}");
    wait_started(&agent, &privileged);

    let a = recon(&agent, &default);
    let p = &a["container"]["posture"];
    assert_eq!(p["privileged"], false, "{a:#}");
    assert_eq!(p["host_namespaces"], json!(["cgroup"]));
    assert_eq!(p["capabilities_added"], json!([]));
    assert_eq!(p["seccomp"], "filtered");
    assert_eq!(p["apparmor"], "");
    assert_eq!(p["sensitive_mounts"], json!([]));
    assert!(a["details"]["severity_raised_by"].is_null(), "{a:#}");

    let a = recon(&agent, &privileged);
    let p = &a["container"]["posture"];
    assert_eq!(p["privileged"], true, "{a:#}");
    assert_eq!(p["host_namespaces"], json!(["cgroup"]));
    assert_eq!(
        p["capabilities_added"].as_array().unwrap().len(),
        privileged_added()
    );
    assert_eq!(p["seccomp"], "unconfined");
    assert_eq!(p["apparmor"], "");
    assert_eq!(p["sensitive_mounts"], json!([]));
    // kernel-debug-recon is not in the posture table: its severity stays.
    assert_eq!(a["severity"], catalogued("kernel-debug-recon")["severity"]);

    // A sysfs mount from the privileged container: the mount rule, raised one step.
    let cgroup = privileged.cgroup_path().unwrap();
    sh(&privileged, "mkdir -p /mnt/s && mount -t sysfs none /mnt/s");
    let m = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "mount-host-device" && a["container"]["id"] == cgroup
    });
    check_alert(&m, "mount-host-device", &cgroup, "unknown");
    assert_eq!(catalogued("mount-host-device")["severity"], "high");
    assert_eq!(m["severity"], "critical", "{m:#}");
    assert!(
        m["details"]["severity_raised_by"]
            .as_str()
            .is_some_and(|s| s.contains("CAP_SYS_ADMIN")),
        "{m:#}"
    );
    assert_eq!(m["container"]["posture"]["privileged"], true);

    // The off-by-default inventory rule, turned on here: the privileged container only.
    let inv = agent.wait_for_alert(WAIT, |a| a["rule"] == "container-started-privileged");
    check_alert(&inv, "container-started-privileged", &cgroup, "unknown");
    assert_eq!(inv["details"]["seccomp"], "unconfined");
    std::thread::sleep(Duration::from_millis(300));
    let inventory: Vec<Value> = agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"] == "container-started-privileged")
        .collect();
    assert_eq!(inventory.len(), 1, "{inventory:#?}");
    drop((default, privileged));
}

#[test]
fn container_sensitive_mount() {
    let dir = work_dir("container-sensitive-mount");
    let agent = Agent::start(&dir);
    let data = tmp("sensitive-benign");
    // The benign look-alike first: an ordinary data volume at a host-looking destination.
    let volume = busybox("sensitive-volume", |b| {
        with_seccomp(b).bind_mount(&data, "/etc/app", true)
    });
    let root = busybox("sensitive-root", |b| {
        with_seccomp(b).bind_mount("/", "/host", false)
    });
    let cgroup = root.cgroup_path().unwrap();
    let a = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "container-sensitive-mount" && a["container"]["id"] == cgroup
    });
    check_alert(&a, "container-sensitive-mount", &cgroup, "unknown");
    // The host root: raised from high to critical by the posture table.
    assert_eq!(a["severity"], "critical", "{a:#}");
    assert_eq!(
        a["details"]["mounts"],
        json!([{ "source": "/", "destination": "/host", "class": "host_root", "read_only": true }])
    );
    assert_eq!(
        a["container"]["posture"]["sensitive_mounts"],
        a["details"]["mounts"]
    );
    assert!(
        a["summary"].as_str().unwrap().contains("/ at /host"),
        "{a:#}"
    );
    // The volume container was reported started, and gave no alert.
    wait_started(&agent, &volume);
    let vcg = volume.cgroup_path().unwrap();
    let noisy: Vec<Value> = agent
        .alerts()
        .into_iter()
        .filter(|a| a["container"]["id"] == vcg)
        .collect();
    assert!(noisy.is_empty(), "benign volume alerted: {noisy:#?}");
    drop((volume, root));
    let _ = fs::remove_dir_all(data);
    finish(agent, "container-sensitive-mount");
}
