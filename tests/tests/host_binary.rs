//! Issue K, exec of the host's binaries from a container: the host's `/` bind-mounted into the
//! container and chrooted into (Atomic Red Team T1611 "volume mapping"), and a host program
//! run through /proc/1/root from a container sharing the host's PID namespace. Both judged
//! from the mount the kernel loaded the file through (sched_process_exec). Benign look-alikes:
//! the image's programs, a host directory and a single host file bind-mounted and run from,
//! and a host shell entering the container with nsenter. The host program is Debian's
//! static /bin/busybox, which the QEMU guests have too (a dynamic one would need the host's
//! ld.so inside the container).

use std::{fs, os::unix::fs::MetadataExt, process::Command};

use escapewatch_integration::{
    agent::{Agent, work_dir},
    escape::{WAIT, against_host_process, finish, privileged, scenario, sh},
    scenario::check_alert,
};
use serde_json::Value;

const RULE: &str = "exec-host-binary";

/// `major:minor` of the filesystem `path` lies on, as the alert writes it.
fn dev_of(path: &str) -> String {
    let dev = fs::metadata(path).expect("stat").dev();
    format!("{}:{}", libc::major(dev), libc::minor(dev))
}

fn ino_of(path: &str) -> u64 {
    fs::metadata(path).expect("stat").ino()
}

fn host_mnt_ns() -> u64 {
    let link =
        fs::read_link("/proc/self/ns/mnt").expect("the test runs in the host mount namespace");
    let s = link.to_string_lossy();
    s.trim_start_matches("mnt:[")
        .trim_end_matches(']')
        .parse()
        .expect("mnt ns inode")
}

fn rule_alerts(agent: &Agent) -> Vec<Value> {
    agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"] == RULE)
        .collect()
}

#[test]
fn host_binary_the_hosts_root_mounted_as_a_volume_and_chrooted_into_runs_host_programs() {
    let (agent, alert, c) = scenario(
        "host-binary-chroot",
        RULE,
        |b| b.bind_mount("/", "/host", false),
        |c| sh(c, "chroot /host /bin/busybox true && echo chrooted"),
    );
    let cgroup = c.cgroup_path().expect("cgroup");
    check_alert(&alert, RULE, &cgroup, "unknown");
    let d = &alert["details"];
    assert_eq!(d["reason"], "host-root-filesystem", "{alert:#}");
    assert_eq!(d["owner"], "the host", "{alert:#}");
    assert_eq!(d["filename"], "/bin/busybox", "{alert:#}");
    assert_eq!(d["inode"], ino_of("/bin/busybox"), "{alert:#}");
    assert_eq!(d["dev"], dev_of("/"), "{alert:#}");
    assert_eq!(d["whole_fs"], true, "{alert:#}");
    assert_eq!(d["host_root_fs"], true, "{alert:#}");
    assert_eq!(d["mnt_ns"], Value::Null, "{alert:#}");
    // After the chroot the process's root is the host's filesystem too.
    assert_eq!(d["root_dev"], dev_of("/"), "{alert:#}");
    assert_eq!(alert["process"]["comm"], "busybox", "{alert:#}");
    // busybox's sh and chroot came from the bundle (a directory of the host's disk, not the
    // whole of it): only the host's own /bin/busybox is reported.
    assert_eq!(rule_alerts(&agent).len(), 1, "{:#?}", rule_alerts(&agent));
    drop(c);
    finish(agent, "host-binary-chroot");
}

#[test]
fn host_binary_a_host_program_run_through_proc_pid_root_is_the_hosts() {
    // A container sharing the host's PID namespace reaches a host process's root.
    let (agent, alert, c, pid) = against_host_process("host-binary-proc-root", RULE, |pid| {
        format!("/proc/{pid}/root/bin/busybox true && echo ran")
    });
    let cgroup = c.cgroup_path().expect("cgroup");
    check_alert(&alert, RULE, &cgroup, "unknown");
    let d = &alert["details"];
    assert_eq!(d["reason"], "host-mount-namespace", "{alert:#}");
    assert_eq!(d["owner"], "the host", "{alert:#}");
    // busybox-static: a dynamic host program would need the host's ld.so in the container.
    assert_eq!(
        d["filename"],
        format!("/proc/{pid}/root/bin/busybox"),
        "{alert:#}"
    );
    assert_eq!(d["mnt_ns"], host_mnt_ns(), "{alert:#}");
    assert_eq!(d["inode"], ino_of("/bin/busybox"), "{alert:#}");
    assert_eq!(d["dev"], dev_of("/"), "{alert:#}");
    drop(c);
    finish(agent, "host-binary-proc-root");
}

#[test]
fn host_binary_directories_and_files_bind_mounted_into_a_container_and_nsenter_stay_silent() {
    let dir = work_dir("host-binary-benign");
    let agent = Agent::start(&dir);
    // A tools directory of the host (a subtree of its disk) and one host file (as docker
    // mounts docker-init), both run from inside.
    let tools = dir.join("tools");
    fs::create_dir_all(&tools).expect("tools dir");
    fs::copy("/bin/busybox", tools.join("true")).expect("copy busybox");
    let c = privileged("host-binary-benign", |b| {
        b.bind_mount(&tools, "/tools", false)
            .bind_mount("/bin/busybox", "/sbin/host-init", false)
    });
    let cgroup = c.cgroup_path().expect("cgroup");
    sh(
        &c,
        "/tools/true true; /sbin/host-init true; /bin/true; ls / >/dev/null",
    );
    // A host shell entering the container runs the container's programs.
    let out = Command::new("nsenter")
        .args(["-t", &c.pid().to_string(), "-m", "-p", "--", "/bin/true"])
        .output()
        .expect("nsenter");
    assert!(out.status.success(), "{out:?}");
    for f in ["/tools/true", "/sbin/host-init", "/bin/true"] {
        let e = agent.wait_for_event(WAIT, |e| {
            e["data"]["kind"] == "process_exec"
                && e["data"]["filename"] == f
                && e["container"]["id"] == cgroup
        });
        let image = &e["data"]["image"];
        assert_eq!(
            image["host_root_fs"], true,
            "{f}: the bundle is on the host's disk: {e:#}"
        );
        assert_eq!(image["whole_fs"], Value::Null, "{f}: {e:#}");
    }
    // The barrier: a real chroot into the host's / from another container alerts, so the
    // benign execs above were judged before it.
    let escaper = privileged("host-binary-barrier", |b| b.bind_mount("/", "/host", false));
    let escaper_cgroup = escaper.cgroup_path().expect("cgroup");
    sh(&escaper, "chroot /host /bin/busybox true");
    let alert = agent.wait_for_alert(WAIT, |a| a["rule"] == RULE);
    check_alert(&alert, RULE, &escaper_cgroup, "unknown");
    let alerts = rule_alerts(&agent);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    drop(c);
    drop(escaper);
}
