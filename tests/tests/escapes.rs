//! Issue B: every rule proven by a real container doing the real primitive, with the alert
//! checked field by field. Run through `cargo xtask test` (root; agents never overlap).
//!
//! Where a primitive cannot run on this kernel, the attempt is what is detected (a /dev/mem
//! that refuses, an open_by_handle_at without a valid handle); Dirty COW and Dirty Pipe run
//! their real race/sequence and harmlessly write private copies on this patched kernel.

use std::{fs, path::Path, process::Command, time::Duration};

use escapewatch_integration::{
    agent::{Agent, read_jsonl, work_dir},
    runc::{Bundle, Container, unique_id},
    scenario::{HostSetting, check_alert, with_char_device, with_device, with_primitives},
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);
const PRIVILEGED: [&str; 7] = [
    "CAP_SYS_ADMIN",
    "CAP_DAC_OVERRIDE",
    "CAP_SYS_PTRACE",
    "CAP_SYS_CHROOT",
    "CAP_SYS_RAWIO",
    "CAP_DAC_READ_SEARCH",
    "CAP_BPF",
];

/// A privileged busybox container with the primitives binary, sharing what `edit` says.
fn privileged(name: &str, edit: impl FnOnce(Bundle) -> Bundle) -> Container {
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
fn sh(c: &Container, script: &str) -> String {
    let out = c.exec(&["sh", "-c", script]).expect("runc exec");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Start an agent, run `act` against a fresh container, wait for `rule`'s alert from it.
fn scenario(
    test: &str,
    rule: &str,
    edit: impl FnOnce(Bundle) -> Bundle,
    act: impl FnOnce(&Container) -> String,
) -> (Agent, Value, Container) {
    let dir = work_dir(test);
    let agent = Agent::start(&dir);
    let c = privileged(test, edit);
    let cgroup = c.cgroup_path().expect("cgroup");
    let output = act(&c);
    let alert = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == rule && a["container"]["id"] == cgroup
    });
    check_alert(&alert, rule, severity(rule), &cgroup, "unknown");
    record_latency(rule, &alert);
    eprintln!("{test}: {output}");
    (agent, alert, c)
}

/// Upper bound of syscall-to-alert latency: now minus the alert's event time (the poll of the
/// alert log adds at most 20 ms). Appended to target/integration/latency.tsv for the report.
fn record_latency(rule: &str, alert: &Value) {
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
fn finish(mut agent: Agent, name: &str) {
    agent.stop();
    let out = escapewatch_integration::agent::replay(&[&agent.event_log]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        fs::read_to_string(&agent.alert_log).unwrap(),
        "replay of {name} must reproduce the live alerts"
    );
    if std::env::var_os("ESCAPEWATCH_RECORD_FIXTURES").is_some() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        fs::copy(&agent.event_log, dir.join(format!("{name}.events.jsonl"))).unwrap();
        fs::copy(&agent.alert_log, dir.join(format!("{name}.alerts.jsonl"))).unwrap();
    }
}

fn severity(rule: &str) -> &'static str {
    match rule {
        "namespace-unshare-user" => "medium",
        "kernel-debug-recon" | "userfaultfd-in-container" => "low",
        "mount-host-device"
        | "sysctl-write-from-container"
        | "sysrq-trigger-write"
        | "proc-mem-write"
        | "bpf-from-container"
        | "runtime-socket-access"
        | "raw-block-device-open"
        | "host-fs-via-proc-root" => "high",
        _ => "critical",
    }
}

#[test]
fn namespace_unshare_user() {
    let (agent, alert, c) = scenario(
        "unshare-user",
        "namespace-unshare-user",
        |b| b,
        |c| sh(c, "unshare -U true"),
    );
    assert_eq!(alert["details"]["syscall"], "unshare");
    assert!(
        alert["details"]["namespace_types"]
            .as_array()
            .unwrap()
            .contains(&"user".into())
    );
    assert_eq!(alert["process"]["comm"], "unshare");
    drop(c);
    finish(agent, "unshare-user");
}

#[test]
fn mount_host_sysfs() {
    let (agent, alert, c) = scenario(
        "mount-sysfs",
        "mount-host-device",
        |b| b,
        |c| {
            sh(
                c,
                "mkdir -p /tmp/s && mount -t sysfs sysfs /tmp/s && ls /tmp/s/kernel >/dev/null && echo mounted",
            )
        },
    );
    assert_eq!(alert["details"]["fstype"], "sysfs");
    assert_eq!(alert["details"]["target"], "/tmp/s");
    assert_eq!(alert["details"]["call"], "mount");
    drop(c);
    finish(agent, "mount-sysfs");
}

#[test]
fn mount_host_block_device() {
    let disk = root_disk();
    let (agent, alert, c) = scenario(
        "mount-block",
        "mount-host-device",
        |b| with_device(b, &disk, "/dev/hostdisk"),
        |c| {
            // This VM refuses raw disk access even to host root: the refused attempt is detected.
            sh(
                c,
                "mkdir -p /tmp/h && mount -t ext4 -o ro /dev/hostdisk /tmp/h && ls /tmp/h/etc/hostname && umount /tmp/h",
            )
        },
    );
    assert_eq!(alert["details"]["what"], "a block device");
    assert_eq!(alert["details"]["fstype"], "ext4");
    assert_eq!(alert["details"]["source"], "/dev/hostdisk");
    drop(c);
    finish(agent, "mount-block");
}

/// `major:minor` of a host device node.
fn host_rdev(path: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let rdev = fs::metadata(path).expect("stat device").rdev();
    format!("{}:{}", libc::major(rdev), libc::minor(rdev))
}

/// The block device behind the host's root filesystem.
fn root_disk() -> String {
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

#[test]
fn cgroup_release_agent_escape() {
    // A real CVE-2022-0492-style escape through a fresh named cgroup v1 hierarchy (no
    // controllers, unused by the host, so it and its release_agent vanish when unmounted).
    let marker = Path::new("/tmp/escapewatch-tests/release-agent-escaped");
    let _ = fs::remove_file(marker);
    let dir = work_dir("release-agent");
    let agent = Agent::start(&dir);
    let c = privileged("release-agent", |b| b.unmask_paths());
    let cgroup = c.cgroup_path().expect("cgroup");
    let host_root = c.bundle_dir().join("rootfs");
    fs::write(
        host_root.join("helper.sh"),
        format!("#!/bin/sh\ntouch {}\n", marker.display()),
    )
    .unwrap();
    Command::new("chmod")
        .args(["755"])
        .arg(host_root.join("helper.sh"))
        .status()
        .unwrap();
    let script = format!(
        "mkdir -p /tmp/cg && mount -t cgroup -o none,name=ewtest cgroup /tmp/cg && mkdir -p /tmp/cg/x && \
         echo 1 > /tmp/cg/x/notify_on_release && echo {}/helper.sh > /tmp/cg/release_agent && \
         sh -c 'echo $$ > /tmp/cg/x/cgroup.procs' && sleep 1; rmdir /tmp/cg/x; \
         echo > /tmp/cg/release_agent; umount /tmp/cg",
        host_root.display()
    );
    let out = sh(&c, &script);
    let write = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "cgroup-release-agent-write" && a["details"]["file"]["name"] == "release_agent"
    });
    check_alert(
        &write,
        "cgroup-release-agent-write",
        "critical",
        &cgroup,
        "unknown",
    );
    let mount = agent.wait_for_alert(WAIT, |a| a["rule"] == "mount-host-device");
    assert_eq!(mount["details"]["fstype"], "cgroup", "{out}");
    // The kernel ran the container's script as root on the host.
    let helper = agent.wait_for_alert(WAIT, |a| a["rule"] == "usermode-helper-from-container");
    check_alert(
        &helper,
        "usermode-helper-from-container",
        "critical",
        &cgroup,
        "unknown",
    );
    assert_eq!(
        helper["details"]["binary"],
        format!("{}/helper.sh", host_root.display()).as_str()
    );
    assert!(
        marker.exists(),
        "the release_agent escape itself must have run: {out}"
    );
    let _ = fs::remove_file(marker);
}

#[test]
fn core_pattern_escape() {
    let _restore = HostSetting::keep("/proc/sys/kernel/core_pattern");
    let dir = work_dir("core-pattern");
    let agent = Agent::start(&dir);
    let c = privileged("core-pattern", |b| b.writable_proc_sys());
    let cgroup = c.cgroup_path().expect("cgroup");
    let pattern = "|/proc/%P/root/bin/busybox touch /proc/%P/root/tmp/escaped";
    let out = sh(
        &c,
        &format!(
            "echo '{pattern}' > /proc/sys/kernel/core_pattern && sh -c 'kill -SEGV $$'; sleep 1; ls /tmp/escaped"
        ),
    );
    let write = agent.wait_for_alert(WAIT, |a| a["rule"] == "core-pattern-write");
    check_alert(&write, "core-pattern-write", "critical", &cgroup, "unknown");
    assert_eq!(write["details"]["value"], pattern);
    assert_eq!(write["details"]["sysctl"], "kernel.core_pattern");
    let helper = agent.wait_for_alert(WAIT, |a| a["rule"] == "usermode-helper-from-container");
    check_alert(
        &helper,
        "usermode-helper-from-container",
        "critical",
        &cgroup,
        "unknown",
    );
    assert!(
        helper["details"]["binary"]
            .as_str()
            .unwrap()
            .ends_with("/root/bin/busybox"),
        "{helper:#}"
    );
    assert!(
        out.contains("/tmp/escaped"),
        "the kernel must have run the helper: {out}"
    );
}

#[test]
fn sysctl_write_from_container() {
    let keep = HostSetting::keep("/proc/sys/vm/swappiness");
    let value = keep.value();
    let (agent, alert, c) = scenario(
        "sysctl",
        "sysctl-write-from-container",
        |b| b.writable_proc_sys(),
        |c| sh(c, &format!("echo {value} > /proc/sys/vm/swappiness")),
    );
    assert_eq!(alert["details"]["sysctl"], "vm.swappiness");
    assert_eq!(alert["details"]["value"], value.as_str());
    drop(c);
    finish(agent, "sysctl");
}

#[test]
fn sysrq_trigger_write() {
    // Opened for writing, nothing written.
    let (agent, alert, c) = scenario(
        "sysrq",
        "sysrq-trigger-write",
        |b| b.unmask_paths(),
        |c| sh(c, ": > /proc/sysrq-trigger"),
    );
    // This kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ off): the attempt is what
    // is detected; with the file present the open itself is.
    let name = if Path::new("/proc/sysrq-trigger").exists() {
        &alert["details"]["file"]["name"]
    } else {
        &alert["details"]["path"]
    };
    assert!(
        name.as_str().unwrap().ends_with("sysrq-trigger"),
        "{alert:#}"
    );
    assert_eq!(alert["details"]["write"], true);
    drop(c);
    finish(agent, "sysrq");
}

#[test]
fn dirty_cow_race() {
    let (agent, alert, c) = scenario(
        "dirty-cow",
        "dirty-cow",
        |b| b,
        |c| {
            sh(
                c,
                "echo original > /tmp/target && primitives dirtycow /tmp/target; cat /tmp/target",
            )
        },
    );
    assert_eq!(alert["details"]["file"], "target");
    assert!(alert["details"]["discards"].as_u64().unwrap() >= 3);
    assert!(alert["details"]["forced_writes"].as_u64().unwrap() >= 3);
    assert_eq!(alert["process"]["comm"], "primitives");
    drop(c);
    finish(agent, "dirty-cow");
}

#[test]
fn dirty_pipe_sequence() {
    let (agent, alert, c) = scenario(
        "dirty-pipe",
        "dirty-pipe",
        |b| b,
        |c| {
            sh(
                c,
                "echo original > /tmp/target && chmod 444 /tmp/target && primitives dirtypipe /tmp/target",
            )
        },
    );
    assert_eq!(alert["details"]["file"]["name"], "target");
    assert_eq!(alert["details"]["file"]["parent"], "tmp");
    drop(c);
    finish(agent, "dirty-pipe");
}

#[test]
fn proc_mem_write_into_another_process() {
    let (agent, alert, c) = scenario(
        "proc-mem",
        "proc-mem-write",
        |b| b,
        |c| sh(c, "primitives procmem"),
    );
    assert_eq!(alert["details"]["method"], "/proc/PID/mem");
    assert_ne!(alert["details"]["target"]["pid"], alert["process"]["pid"]);
    drop(c);
    finish(agent, "proc-mem");
}

#[test]
fn process_vm_writev_into_another_process() {
    let (agent, alert, c) = scenario(
        "pvwritev",
        "proc-mem-write",
        |b| b,
        |c| sh(c, "primitives pvwritev"),
    );
    assert_eq!(alert["details"]["method"], "process_vm_writev");
    drop(c);
    finish(agent, "pvwritev");
}

#[test]
fn ptrace_host_process() {
    let mut host = Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("host sleep");
    let pid = host.id();
    let (agent, alert, c) = scenario(
        "ptrace",
        "ptrace-cross-container",
        |b| b.share_host_namespace("pid"),
        |c| sh(c, &format!("primitives ptrace {pid}")),
    );
    let _ = host.kill();
    let _ = host.wait();
    assert_eq!(alert["details"]["request"], "PTRACE_ATTACH");
    assert_eq!(alert["details"]["target"]["pid"], pid);
    assert_eq!(alert["details"]["target_owner"], "the host");
    drop(c);
    finish(agent, "ptrace");
}

#[test]
fn open_by_handle_at_attempt() {
    let (agent, alert, c) = scenario(
        "shocker",
        "open-by-handle-at",
        |b| b,
        |c| sh(c, "primitives open-by-handle"),
    );
    assert_eq!(alert["details"]["syscall"], "open_by_handle_at");
    drop(c);
    finish(agent, "shocker");
}

#[test]
fn bpf_program_load() {
    let (agent, alert, c) = scenario(
        "bpf",
        "bpf-from-container",
        |b| b,
        |c| sh(c, "primitives bpf"),
    );
    assert_eq!(alert["details"]["command"], "BPF_PROG_LOAD");
    drop(c);
    finish(agent, "bpf");
}

#[test]
fn userfaultfd_in_container() {
    let (agent, alert, c) = scenario(
        "userfaultfd",
        "userfaultfd-in-container",
        |b| b,
        |c| sh(c, "primitives userfaultfd"),
    );
    assert_eq!(alert["details"]["syscall"], "userfaultfd");
    drop(c);
    finish(agent, "userfaultfd");
}

#[test]
fn kernel_memory_access_dev_mem() {
    // This kernel has no /dev/mem driver (CONFIG_DEVMEM off): the container gets the node
    // (char 1:1), the open fails with ENXIO, and the attempt is what is detected.
    let (agent, alert, c) = scenario(
        "dev-mem",
        "kernel-memory-access",
        |b| with_char_device(b, "/dev/mem", 1, 1),
        |c| sh(c, "dd if=/dev/mem of=/dev/null bs=1 count=1"),
    );
    assert!(alert["summary"].as_str().unwrap().contains("/dev/mem"));
    let path = alert["details"]["path"].as_str().unwrap();
    assert_eq!(path, "/dev/mem", "{alert:#}");
    drop(c);
    finish(agent, "dev-mem");
}

#[test]
fn raw_block_device_open() {
    let disk = root_disk();
    let (agent, alert, c) = scenario(
        "block",
        "raw-block-device-open",
        |b| with_device(b, &disk, "/dev/hostdisk"),
        |c| sh(c, "dd if=/dev/hostdisk of=/dev/null bs=512 count=1"),
    );
    assert_eq!(alert["details"]["path"], "/dev/hostdisk");
    assert_eq!(alert["details"]["write"], false);
    assert_eq!(alert["details"]["rdev"], host_rdev(&disk).as_str());
    drop(c);
    finish(agent, "block");
}

#[test]
fn host_fs_via_proc_root() {
    let mut host = Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("host sleep");
    let pid = host.id();
    let (agent, alert, c) = scenario(
        "proc-root",
        "host-fs-via-proc-root",
        |b| b.share_host_namespace("pid"),
        |c| sh(c, &format!("cat /proc/{pid}/root/etc/hostname")),
    );
    let _ = host.kill();
    let _ = host.wait();
    assert_eq!(alert["details"]["owner"], "the host");
    assert_eq!(alert["details"]["file"]["name"], "hostname");
    drop(c);
    finish(agent, "proc-root");
}

#[test]
fn runtime_binary_overwrite_through_proc_self_exe() {
    // The CVE-2019-5736 open: /proc/self/exe for writing (refused here with ETXTBSY: the
    // attempt is the signal).
    let (agent, alert, c) = scenario(
        "proc-exe",
        "runtime-binary-overwrite",
        |b| b,
        |c| sh(c, ": >> /proc/self/exe"),
    );
    assert_eq!(alert["details"]["path"], "/proc/self/exe");
    drop(c);
    finish(agent, "proc-exe");
}

#[test]
fn runtime_binary_overwrite_of_a_runtime_copy() {
    // A copy of runc that the host executes (so the agent learns it is a runtime binary),
    // bind-mounted writable into the container, which opens it for appending (writes nothing).
    let dir = work_dir("runtime-binary");
    let agent = Agent::start(&dir);
    let copy = Path::new("/tmp/escapewatch-tests/runtime-bin/runc");
    fs::create_dir_all(copy.parent().unwrap()).unwrap();
    fs::copy("/usr/sbin/runc", copy).expect("copy runc");
    let status = Command::new(copy)
        .arg("--version")
        .output()
        .expect("run the runc copy");
    assert!(status.status.success());
    agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "process_exec" && e["data"]["filename"] == copy.to_str().unwrap()
    });
    let c = privileged("runtime-binary", |b| b.bind_mount(copy, "/runc", true));
    let cgroup = c.cgroup_path().expect("cgroup");
    sh(&c, ": >> /runc");
    let alert = agent.wait_for_alert(WAIT, |a| a["rule"] == "runtime-binary-overwrite");
    check_alert(
        &alert,
        "runtime-binary-overwrite",
        "critical",
        &cgroup,
        "unknown",
    );
    assert!(
        alert["details"]["classes"]
            .as_array()
            .unwrap()
            .contains(&"runtime_binary".into())
    );
    let _ = fs::remove_file(copy);
}

#[test]
fn runtime_socket_access() {
    let sock_dir = Path::new("/tmp/escapewatch-tests/sock");
    fs::create_dir_all(sock_dir).unwrap();
    let sock = sock_dir.join("docker.sock");
    let _ = fs::remove_file(&sock);
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("listen");
    let (agent, alert, c) = scenario(
        "runtime-socket",
        "runtime-socket-access",
        |b| b.bind_mount(&sock, "/var/run/docker.sock", true),
        |c| sh(c, "primitives connect /var/run/docker.sock"),
    );
    drop(listener);
    let _ = fs::remove_file(&sock);
    assert_eq!(alert["details"]["socket"], "/var/run/docker.sock");
    drop(c);
    finish(agent, "runtime-socket");
}

#[test]
fn kernel_debug_recon() {
    let (agent, alert, c) = scenario(
        "recon",
        "kernel-debug-recon",
        |b| b,
        |c| sh(c, "head -c 64 /proc/kallsyms >/dev/null"),
    );
    assert_eq!(alert["details"]["file"]["name"], "kallsyms");
    drop(c);
    finish(agent, "recon");
}

#[test]
fn kernel_module_load_is_not_applicable_without_module_support() {
    // This kernel has CONFIG_MODULES off: no init_module tracepoints, no module loading. The
    // rule says so; on kernels with modules (issue F's QEMU matrix) the attempt is detected.
    if Path::new("/proc/modules").exists() {
        let (agent, alert, c) = scenario(
            "module",
            "kernel-module-load",
            |b| b,
            |c| sh(c, "primitives finit-module"),
        );
        assert_eq!(alert["details"]["syscall"], "finit_module");
        drop(c);
        finish(agent, "module");
        return;
    }
    let out = Command::new(escapewatch_integration::agent::agent_bin())
        .arg("rules")
        .output()
        .expect("escapewatch rules");
    let text = String::from_utf8_lossy(&out.stdout);
    let section = text
        .split("\n\n")
        .find(|s| s.starts_with("kernel-module-load"))
        .expect("rule listed");
    assert!(section.contains("not applicable"), "{section}");
    assert!(section.contains("CONFIG_MODULES"), "{section}");
}

/// Nothing benign may alert: containers' whole lifecycle, an ordinary workload (files,
/// processes, /proc/sys reads, a tmpfs in its own mount namespace) and host admin work.
#[test]
fn benign_suite_gives_zero_alerts() {
    let dir = work_dir("benign");
    let mut agent = Agent::start(&dir);
    for i in 0..3 {
        let c = Bundle::busybox("benign")
            .expect("bundle")
            .add_capabilities(&["CAP_SYS_ADMIN"])
            .writable_rootfs()
            .run_detached(&unique_id("ewt"))
            .expect("run");
        let work = "for i in 1 2 3; do echo $i > /tmp/f$i; cat /tmp/f$i >/dev/null; done; \
                    (sleep 0.1 &); ls / >/dev/null; cat /proc/sys/kernel/hostname /proc/sys/vm/swappiness >/dev/null; \
                    unshare -m sh -c 'mount -t tmpfs tmpfs /mnt && echo x > /mnt/y && umount /mnt'; \
                    ps >/dev/null; cat /proc/self/status >/dev/null";
        let out = sh(&c, work);
        assert!(
            !out.contains("Permission denied"),
            "workload {i} failed: {out}"
        );
        c.kill("TERM").expect("kill");
        c.delete().expect("delete");
    }
    // Host administration: nsenter, unshare, a sysctl write on the host itself.
    let keep = HostSetting::keep("/proc/sys/vm/swappiness");
    fs::write("/proc/sys/vm/swappiness", keep.value()).expect("host sysctl write");
    let host = Command::new("sleep").arg("300").spawn().expect("sleep");
    let ok = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            &format!("nsenter -t {} -m true", host.id()),
        ])
        .status()
        .expect("unshare");
    assert!(ok.success());
    // The agent saw the work (so this test can fail) ...
    agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "sysctl_write" && e["data"]["name"] == "vm.swappiness"
    });
    agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "mount" && e["data"]["fstype"] == "tmpfs"
    });
    agent.stop();
    drop(host);
    // ... and nothing alerted.
    assert_eq!(agent.alerts(), Vec::<Value>::new());
    let events = read_jsonl(&agent.event_log);
    assert!(events.len() > 50, "the agent recorded the session");
}
