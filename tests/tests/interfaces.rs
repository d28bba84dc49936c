//! Issue K, writes to security and integrity interfaces: a container opens the host's LSM /
//! integrity policy (securityfs it mounted itself) and host kernel interfaces outside
//! /proc/sys (a module parameter, a /sys/kernel knob through a symlink, /proc/irq, /proc/bus)
//! for writing, by the open syscall and by io_uring; a default container's refused attempts
//! (read-only /sys and /proc/irq: EROFS). Nothing harmful is ever written: every file is
//! opened for writing (O_APPEND, no truncation) and closed. Benign look-alikes: the same
//! files read, the container's own network device written, and the host writing them.
//!
//! No kernel of the matrix has selinuxfs or smackfs (neither LSM is in its `lsm=`): those are
//! covered by the rule's examples only.

use std::{fs, path::Path, process::Command};

use escapewatch_integration::{
    agent::{Agent, work_dir},
    escape::{WAIT, cited_hooks, finish, privileged, record_latency, scenario, sh},
    runc::{Bundle, unique_id},
    scenario::{check_alert, with_primitives},
};
use serde_json::{Value, json};

const POLICY: &str = "host-security-policy-write";
const KERNEL: &str = "host-kernel-interface-write";

/// The container's /sys mounted read-write (runc's default spec mounts it read-only), and
/// /proc/irq, /proc/bus and /sys/firmware neither read-only nor masked.
fn writable_sys(b: Bundle) -> Bundle {
    let mut b = b.unmask_paths();
    for m in b.config_mut()["mounts"]
        .as_array_mut()
        .expect("mounts")
        .iter_mut()
    {
        if m["destination"] == "/sys" {
            let opts = m["options"].as_array_mut().expect("options");
            opts.retain(|o| o != "ro");
            opts.push("rw".into());
        }
    }
    b
}

/// The first of `paths` this kernel has.
fn first_existing(paths: &[&'static str]) -> &'static str {
    paths
        .iter()
        .copied()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("this kernel has none of {paths:?}"))
}

/// A module parameter the owner may write, and a /sys/kernel knob.
fn module_parameter() -> &'static str {
    first_existing(&[
        "/sys/module/printk/parameters/time",
        "/sys/module/printk/parameters/ignore_loglevel",
    ])
}

fn kernel_knob() -> &'static str {
    first_existing(&[
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/kernel/profiling",
        "/sys/kernel/rcu_expedited",
    ])
}

/// The details every alert of these rules carries for an open that succeeded.
fn check_opened(alert: &Value, canonical: &str, area: &str, fs: &str) {
    let d = &alert["details"];
    assert_eq!(d["canonical"], canonical, "{alert:#}");
    assert_eq!(d["area"], area, "{alert:#}");
    assert_eq!(d["fs"], fs, "{alert:#}");
    assert_eq!(d["refused"], false, "{alert:#}");
    assert_eq!(d["write"], true, "{alert:#}");
    assert!(d["ret"].as_i64().unwrap() >= 0, "{alert:#}");
    let name = canonical.rsplit('/').next().unwrap();
    assert_eq!(d["file"]["name"], name, "{alert:#}");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .contains(&format!(" opened {canonical} for writing")),
        "{alert:#}"
    );
}

/// An alert from io_uring's open (no open syscall): the hook that saw it is io_uring's
/// completion, or BPF LSM's file_open where it attached; the caller's path is not known.
fn check_by_io_uring(agent: &Agent, alert: &Value) {
    let hooks = cited_hooks(agent, alert);
    assert!(
        hooks
            .iter()
            .any(|h| h.starts_with("io_uring/") || h.starts_with("lsm/")),
        "{hooks:?} {alert:#}"
    );
    // The open may have run in an io_uring worker thread of the primitive.
    assert_eq!(alert["process"]["exe"], "/bin/primitives", "{alert:#}");
    let comm = alert["process"]["comm"].as_str().unwrap_or_default();
    assert!(
        comm == "primitives" || comm.starts_with("iou-wrk-"),
        "{alert:#}"
    );
}

/// Every alert of the two rules the agent wrote.
fn these_rules_alerts(agent: &Agent) -> Vec<Value> {
    agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"] == KERNEL || a["rule"] == POLICY)
        .collect()
}

#[test]
fn interface_security_policy_write_through_a_securityfs_the_container_mounted() {
    // AppArmor's .remove where AppArmor is active (a write-open, nothing written, removes
    // nothing); else securityfs's lsm. Never IMA's policy: closing it after a write-open
    // replaces the host's policy.
    let script = "mkdir -p /x && mount -t securityfs none /x && \
                  F=apparmor/.remove; [ -e /x/$F ] || F=lsm; echo $F; \
                  : >> /x/$F && echo opened; primitives iouring-open /x/$F w && echo uring; \
                  umount /x";
    let (agent, alert, c) = scenario("security-policy", POLICY, |b| b, |c| sh(c, script));
    let cgroup = c.cgroup_path().expect("cgroup");
    let rel = alert["details"]["fs_path"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_owned();
    assert!(rel == "apparmor/.remove" || rel == "lsm", "{alert:#}");
    let area = if rel == "lsm" {
        "security interface"
    } else {
        "AppArmor policy"
    };
    // The first alert is the shell's open: its path, the canonical place by the magic.
    assert_eq!(alert["details"]["path"], format!("/x/{rel}"), "{alert:#}");
    check_opened(
        &alert,
        &format!("/sys/kernel/security/{rel}"),
        area,
        "securityfs",
    );
    assert_eq!(alert["process"]["comm"], "sh", "{alert:#}");
    assert!(
        alert["details"]["classes"]
            .as_array()
            .unwrap()
            .contains(&json!("security_policy")),
        "{alert:#}"
    );
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("the {area} of the whole host (securityfs)")),
        "{alert:#}"
    );
    let uring = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == POLICY && a["process"]["exe"] == "/bin/primitives"
    });
    check_alert(&uring, POLICY, &cgroup, "unknown");
    check_opened(
        &uring,
        &format!("/sys/kernel/security/{rel}"),
        area,
        "securityfs",
    );
    check_by_io_uring(&agent, &uring);
    drop(c);
    finish(agent, "security-policy");
}

#[test]
fn interface_kernel_writes_on_a_writable_sys_and_proc() {
    let param = module_parameter();
    let knob = kernel_knob();
    let knob_rel = knob.strip_prefix("/sys/kernel/").unwrap();
    let bus = Path::new("/proc/bus/input/devices").exists();
    // The knob through a symlink to /sys/kernel: the path says /tmp/k, the kernel says sysfs.
    let script = format!(
        ": >> {param} && echo param; ln -s /sys/kernel /tmp/k && : >> /tmp/k/{knob_rel} && echo knob; \
         : >> /proc/irq/default_smp_affinity && echo irq; \
         {bus_cmd} primitives iouring-open {param} w && echo uring",
        bus_cmd = if bus {
            ": >> /proc/bus/input/devices && echo bus;"
        } else {
            ""
        }
    );
    let (agent, alert, c) = scenario("kernel-interface", KERNEL, writable_sys, |c| sh(c, &script));
    let cgroup = c.cgroup_path().expect("cgroup");
    // The first is the module parameter.
    assert_eq!(alert["details"]["path"], param, "{alert:#}");
    check_opened(&alert, param, "host kernel module parameter", "sysfs");
    assert_eq!(
        alert["details"]["fs_path"],
        param.strip_prefix("/sys").unwrap(),
        "{alert:#}"
    );
    assert_eq!(alert["process"]["comm"], "sh", "{alert:#}");
    let wait = |canonical: &str, comm: &str| {
        let a = agent.wait_for_alert(WAIT, |a| {
            a["rule"] == KERNEL
                && a["details"]["canonical"] == canonical
                && a["process"]["comm"] == comm
        });
        check_alert(&a, KERNEL, &cgroup, "unknown");
        escapewatch_integration::escape::check_hooks(&agent, &a);
        a
    };
    let k = wait(knob, "sh");
    assert_eq!(k["details"]["path"], format!("/tmp/k/{knob_rel}"), "{k:#}");
    check_opened(&k, knob, "host kernel setting", "sysfs");
    let irq = wait("/proc/irq/default_smp_affinity", "sh");
    check_opened(
        &irq,
        "/proc/irq/default_smp_affinity",
        "host IRQ setting",
        "proc",
    );
    if bus {
        let b = wait("/proc/bus/input/devices", "sh");
        let d = &b["details"];
        assert_eq!(d["area"], "host bus interface", "{b:#}");
        assert_eq!(d["fs"], "proc", "{b:#}");
    }
    let uring = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == KERNEL && a["process"]["exe"] == "/bin/primitives"
    });
    check_alert(&uring, KERNEL, &cgroup, "unknown");
    check_opened(&uring, param, "host kernel module parameter", "sysfs");
    check_by_io_uring(&agent, &uring);
    drop(c);
    finish(agent, "kernel-interface");
}

#[test]
fn interface_attempts_of_a_default_container_are_reported() {
    // runc's default container: /sys read-only, /proc/irq and /proc/bus read-only bind
    // mounts, no added capabilities. Every write-open fails with EROFS before any file is
    // opened (so before BPF LSM's file_open): the open syscall's exit reports the caller's
    // path, normalised, and for a relative one the working directory it started from.
    let param = module_parameter();
    let knob = kernel_knob();
    let knob_rel = knob.strip_prefix("/sys/kernel/").unwrap();
    let dir = work_dir("kernel-interface-attempt");
    let agent = Agent::start(&dir);
    let c = with_primitives(Bundle::busybox("kernel-interface-attempt").expect("bundle"))
        .run_detached(&unique_id("ewt"))
        .expect("run container");
    let cgroup = c.cgroup_path().expect("cgroup");
    let out = sh(
        &c,
        &format!(
            "true >> /{param}; true >> {knob}; true >> /proc/irq/default_smp_affinity; \
             true >> /proc/bus/pci/devices; cat {param}; \
             cd /sys/kernel && true >> {knob_rel}; cd /proc && true >> irq/default_smp_affinity"
        ),
    );
    assert!(out.contains("Read-only file system"), "{out}");
    let expected = [
        (param, format!("/{param}"), "host kernel module parameter"),
        (knob, knob.to_owned(), "host kernel setting"),
        (
            "/proc/irq/default_smp_affinity",
            "/proc/irq/default_smp_affinity".to_owned(),
            "host IRQ setting",
        ),
        // Relative paths, joined to the working directory the kernel reported.
        (knob, knob_rel.to_owned(), "host kernel setting"),
        (
            "/proc/irq/default_smp_affinity",
            "irq/default_smp_affinity".to_owned(),
            "host IRQ setting",
        ),
    ];
    for (canonical, path, area) in &expected {
        let a = agent.wait_for_alert(WAIT, |a| {
            a["rule"] == KERNEL
                && a["details"]["canonical"] == *canonical
                && a["details"]["path"] == path.as_str()
        });
        check_alert(&a, KERNEL, &cgroup, "unknown");
        record_latency(KERNEL, &a);
        let d = &a["details"];
        assert_eq!(d["path"], path.as_str(), "{a:#}");
        assert_eq!(d["area"], *area, "{a:#}");
        assert_eq!(d["ret"], -30, "{a:#}");
        assert_eq!(d["refused"], true, "{a:#}");
        assert_eq!(d["write"], true, "{a:#}");
        assert!(d["file"].is_null(), "{a:#}");
        assert_eq!(a["process"]["comm"], "sh", "{a:#}");
        assert!(
            a["summary"]
                .as_str()
                .unwrap()
                .contains(&format!(" tried to open {canonical} for writing")),
            "{a:#}"
        );
        let hooks = cited_hooks(&agent, &a);
        assert!(hooks.iter().all(|h| h.starts_with("syscall/")), "{hooks:?}");
    }
    drop(c);
    let mut agent = agent;
    agent.stop();
    // Exactly those: /proc/bus/pci is another rule's, the read is no attempt.
    let mine = these_rules_alerts(&agent);
    assert_eq!(mine.len(), expected.len(), "{mine:#?}");
    finish(agent, "kernel-interface-attempt");
}

#[test]
fn interface_reads_own_devices_and_host_writes_give_no_alerts() {
    let param = module_parameter();
    let knob = kernel_knob();
    let dir = work_dir("interfaces-benign");
    let mut agent = Agent::start(&dir);
    let c = privileged("interfaces-benign", |b| {
        writable_sys(b).add_capabilities(&["CAP_NET_ADMIN"])
    });
    let cgroup = c.cgroup_path().expect("cgroup");
    // What aa-status, getenforce and tuning tools read; the container's own loopback device
    // written back with its own value (its network namespace's, under /sys/devices).
    let out = sh(
        &c,
        &format!(
            "mkdir -p /x && mount -t securityfs none /x && cat /x/lsm && \
             {{ [ ! -e /x/apparmor/profiles ] || cat /x/apparmor/profiles; }} && umount /x; \
             {{ [ ! -e /sys/fs/selinux/enforce ] || cat /sys/fs/selinux/enforce; }}; \
             cat {param} {knob} /proc/irq/default_smp_affinity >/dev/null && echo read; \
             cat /sys/class/net/lo/mtu > /tmp/mtu && cat /tmp/mtu > /sys/class/net/lo/mtu && echo mtu"
        ),
    );
    assert!(out.contains("read") && out.contains("mtu"), "{out}");
    // The host itself write-opens the same files (and a securityfs of its own).
    for path in [param, knob, "/proc/irq/default_smp_affinity"] {
        fs::OpenOptions::new()
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("host write-open of {path}: {e}"));
    }
    let host_sfs = dir.join("securityfs");
    fs::create_dir_all(&host_sfs).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "securityfs", "none"])
        .arg(&host_sfs)
        .status()
        .expect("mount")
        .success();
    assert!(mounted);
    // Closed before the unmount (an open file keeps it busy).
    let opened = fs::OpenOptions::new()
        .append(true)
        .open(host_sfs.join("lsm"))
        .map(drop);
    let unmounted = Command::new("umount").arg(&host_sfs).status();
    opened.expect("host write-open of securityfs lsm");
    assert!(unmounted.expect("umount").success());
    // The control, so this test can fail: the same container's one real write-open is seen.
    sh(&c, &format!(": >> {param}"));
    let control = agent.wait_for_alert(WAIT, |a| a["rule"] == KERNEL);
    assert_eq!(control["container"]["id"], cgroup, "{control:#}");
    assert_eq!(control["details"]["canonical"], param, "{control:#}");
    drop(c);
    agent.stop();
    let mine = these_rules_alerts(&agent);
    assert_eq!(mine.len(), 1, "{mine:#?}");
}
