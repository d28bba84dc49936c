//! Issue H, every entry path: the same escape made through another door than the syscall the
//! rule was written for is judged by the same rule, with the same fields. Here the 32-bit
//! syscall entry of x86-64 (`int 0x80` with the i386 numbers, from a 64-bit process), which the
//! per-syscall tracepoints do not see. Run through `cargo xtask test` (root; agents never
//! overlap).

use std::{path::Path, process::Command};

use escapewatch_integration::{
    agent::{Agent, ns_inode, work_dir},
    escape::{
        WAIT, against_host_process, check_race, cited_hooks, finish, host_rdev, privileged,
        ptrace_host_scenario, root_disk, scenario, scenario_by_another_entry, sh, wait_for_alerts,
    },
    scenario::{check_alert, with_device},
};
use serde_json::Value;

/// The hooks of the 32-bit entry's exits, which emit what its entry recorded (opens have their
/// own).
const COMPAT_EXIT: &str = "tp_btf/sys_exit";
const COMPAT_EXIT_OPEN: &str = "tail_call/compat_sys_exit_open";
const COMPAT_EXIT_WRITE: &str = "tail_call/compat_sys_exit_write";
const COMPAT_ENTER_MADVISE: &str = "tail_call/compat_sys_enter_madvise";
/// On kernels with BPF LSM the open is classified by `lsm/file_open`, whichever entry made it;
/// the entry's record still supplies the path string.
const LSM_OPEN: &str = "lsm/lsm_file_open";

/// The alert was served by the 32-bit entry (or, for opens, by the LSM hook inside it).
fn assert_served_by_compat_entry(agent: &Agent, alert: &Value) {
    let hooks = cited_hooks(agent, alert);
    assert!(
        hooks
            .iter()
            .any(|h| h == COMPAT_EXIT || h == COMPAT_EXIT_OPEN || h == LSM_OPEN),
        "{} was not served by the 32-bit entry: {hooks:?}\n{alert:#}",
        alert["rule"]
    );
}

/// setns(2) through the 32-bit entry: the join itself is judged like a 64-bit setns. The
/// namespace it leaves the process holding is then not alerted a second time
/// (`foreign-namespace-held` is for joins no hook saw; its fixture `namespace-held-compat` was
/// recorded from this very escape before the 32-bit entry had programs).
#[test]
fn a_setns_through_the_32_bit_entry_is_judged_like_setns() {
    let mut host = Command::new("sleep").arg("300").spawn().expect("sleep");
    let host_mnt = ns_inode(host.id(), "mnt");
    let (agent, alert, c) = scenario(
        "compat-setns",
        "namespace-join-host",
        |b| b.share_host_namespace("pid"),
        |c| {
            sh(
                c,
                &format!("primitives setns32 /proc/{}/ns/mnt /bin/true", host.id()),
            )
        },
    );
    assert_eq!(alert["details"]["namespace_type"], "mnt", "{alert:#}");
    assert_eq!(alert["details"]["inode"], host_mnt, "{alert:#}");
    assert_eq!(alert["details"]["owner"], "host", "{alert:#}");
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
    assert_eq!(
        cited_hooks(&agent, &alert),
        vec![COMPAT_EXIT.to_owned()],
        "{alert:#}"
    );
    // The exec after the join makes an event in the host's mount namespace: held, but seen.
    agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "process_exec" && e["process"]["comm"] == "true"
    });
    assert!(
        !agent
            .alerts()
            .iter()
            .any(|a| a["rule"] == "foreign-namespace-held"),
        "a join seen by its hook was alerted twice"
    );
    drop(c);
    let _ = host.kill();
    let _ = host.wait();
    finish(agent, "compat-setns");
}

/// Dirty Pipe whose write goes through the 32-bit entry: the read-only file is spliced into
/// the pipe the usual way, the pipe then written with i386 write(2).
#[test]
fn a_dirty_pipe_write_through_the_32_bit_entry_is_judged_like_write() {
    let (agent, alert, c) = scenario_by_another_entry(
        "compat-dirty-pipe",
        "dirty-pipe",
        |b| b,
        |c| {
            sh(
                c,
                "echo original > /tmp/target && chmod 444 /tmp/target && \
                 primitives dirtypipe-via int80 /tmp/target",
            )
        },
    );
    assert_eq!(alert["details"]["file"]["name"], "target", "{alert:#}");
    assert_eq!(alert["details"]["ret"], 1, "{alert:#}");
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
    assert!(
        cited_hooks(&agent, &alert).contains(&COMPAT_EXIT_WRITE.to_owned()),
        "{alert:#}"
    );
    drop(c);
    finish(agent, "compat-dirty-pipe");
}

/// Dirty COW with both halves through the 32-bit entry: i386 madvise with the other discard
/// advice (MADV_DONTNEED_LOCKED) races i386 pwrite64 into /proc/self/mem. The discards are
/// seen by the 32-bit madvise part, budgeted like 64-bit ones (no madvise record lost).
#[test]
fn a_dirty_cow_race_through_the_32_bit_entry_is_judged_like_madvise() {
    let (mut agent, alert, c) = scenario_by_another_entry(
        "compat-dirty-cow",
        "dirty-cow",
        |b| b,
        |c| {
            sh(
                c,
                "echo original > /tmp/target && primitives dirtycow-via int80 /tmp/target",
            )
        },
    );
    assert_eq!(alert["details"]["file"], "target", "{alert:#}");
    check_race(&mut agent, &alert);
    assert!(
        cited_hooks(&agent, &alert).contains(&COMPAT_ENTER_MADVISE.to_owned()),
        "{alert:#}"
    );
    drop(c);
    finish(agent, "compat-dirty-cow");
}

#[test]
fn a_mount_through_the_32_bit_entry_is_judged_like_mount() {
    let (agent, alert, c) = scenario(
        "compat-mount",
        "mount-host-device",
        |b| b,
        |c| {
            // mount("sysfs", "/tmp/s", "sysfs", 0, NULL) is i386 syscall 21.
            sh(
                c,
                "mkdir -p /tmp/s && primitives int80 21 s:sysfs s:/tmp/s s:sysfs 0 0 && ls /tmp/s/kernel >/dev/null && echo mounted",
            )
        },
    );
    assert_eq!(alert["details"]["fstype"], "sysfs", "{alert:#}");
    assert_eq!(alert["details"]["target"], "/tmp/s", "{alert:#}");
    assert_eq!(alert["details"]["source"], "sysfs", "{alert:#}");
    assert_eq!(alert["details"]["call"], "mount", "{alert:#}");
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
    assert_served_by_compat_entry(&agent, &alert);
    drop(c);
    finish(agent, "compat-mount");
}

#[test]
fn a_sysrq_open_through_the_32_bit_entry_is_judged_like_open() {
    // open("/proc/sysrq-trigger", O_WRONLY) is i386 syscall 5; nothing is written.
    // On the host kernel the 64-bit sysrq scenario is expected to be served by a tracepoint; this
    // one is served by the 32-bit entry's raw tracepoints, asserted below.
    let (agent, alert, c) = scenario_by_another_entry(
        "compat-sysrq",
        "sysrq-trigger-write",
        escapewatch_integration::runc::Bundle::unmask_paths,
        |c| sh(c, "primitives int80 5 s:/proc/sysrq-trigger 1"),
    );
    // Without CONFIG_MAGIC_SYSRQ (this machine) the refused attempt is what is detected.
    let name = if Path::new("/proc/sysrq-trigger").exists() {
        &alert["details"]["file"]["name"]
    } else {
        &alert["details"]["path"]
    };
    assert!(
        name.as_str().unwrap_or_default().ends_with("sysrq-trigger"),
        "{alert:#}"
    );
    // The path string can only have come from the 32-bit entry's own record.
    assert_eq!(alert["details"]["path"], "/proc/sysrq-trigger", "{alert:#}");
    assert_eq!(alert["details"]["write"], true, "{alert:#}");
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
    assert_served_by_compat_entry(&agent, &alert);
    drop(c);
    finish(agent, "compat-sysrq");
}

#[test]
fn a_ptrace_through_the_32_bit_entry_is_judged_like_ptrace() {
    // ptrace(PTRACE_ATTACH = 16, pid, 0, 0) is i386 syscall 26.
    let (agent, alert) = ptrace_host_scenario("compat-ptrace", |pid| {
        format!("primitives int80 26 16 {pid} 0 0")
    });
    assert_served_by_compat_entry(&agent, &alert);
    finish(agent, "compat-ptrace");
}

#[test]
fn a_bpf_load_through_the_32_bit_entry_is_judged_like_bpf() {
    // bpf(BPF_PROG_LOAD = 5, NULL, 0) is i386 syscall 357: refused (EFAULT/EINVAL) after the
    // entry recorded the command, which is the attempt the rule reports.
    let (agent, alert, c) = scenario(
        "compat-bpf",
        "bpf-from-container",
        |b| b,
        |c| sh(c, "primitives int80 357 5 0 0"),
    );
    assert_eq!(alert["details"]["command"], "BPF_PROG_LOAD", "{alert:#}");
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
    assert_served_by_compat_entry(&agent, &alert);
    drop(c);
    finish(agent, "compat-bpf");
}

/// The benign look-alike: a program using the 32-bit entry for ordinary work (a 32-bit build of
/// a tool in the image, say): reading a file, a tmpfs mount in its own mount namespace, getpid.
/// The agent sees the calls through the 32-bit entry, and nothing is alerted.
#[test]
fn ordinary_work_through_the_32_bit_entry_gives_zero_alerts() {
    let dir = work_dir("compat-benign");
    let mut agent = Agent::start(&dir);
    let c = privileged("compat-benign", |b| b);
    let out = sh(
        &c,
        "primitives int80 5 s:/bin/primitives 0 && primitives int80 20 && \
         unshare -m sh -c 'primitives int80 21 s:tmpfs s:/mnt s:tmpfs 0 0 && echo x > /mnt/y && umount /mnt'",
    );
    assert!(out.contains("int80 21 = 0"), "workload failed: {out}");
    // The agent saw the mount through the 32-bit entry (so this test can fail) ...
    agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "mount" && e["data"]["fstype"] == "tmpfs" && e["hook"] == COMPAT_EXIT
    });
    drop(c);
    agent.stop();
    // ... and nothing alerted.
    assert_eq!(agent.alerts(), Vec::<Value>::new());
}

/// The hook of io_uring's completion, which classifies the file an io_uring open returned.
const IOURING_OPEN: &str = "io_uring/iouring_complete_open";

/// The alert was served by the io_uring completion program (or, on kernels with BPF LSM, by
/// `lsm/file_open`, which sees io_uring's opens itself and makes that program stand by).
fn assert_served_by_io_uring(agent: &Agent, alert: &Value) {
    let hooks = cited_hooks(agent, alert);
    assert!(
        hooks.iter().any(|h| h == IOURING_OPEN || h == LSM_OPEN),
        "{} was not served by the io_uring path: {hooks:?}\n{alert:#}",
        alert["rule"]
    );
}

/// The host's files through /proc/PID/root, opened by io_uring (IORING_OP_OPENAT): no open
/// syscall is made, the ARMO "curing" way around syscall hooks.
#[test]
fn an_io_uring_open_of_the_host_through_proc_root_is_judged_like_open() {
    let (agent, alert, c, _) =
        against_host_process("iouring-proc-root", "host-fs-via-proc-root", |pid| {
            format!("primitives iouring-open /proc/{pid}/root/etc/hostname r")
        });
    assert_eq!(alert["details"]["owner"], "the host", "{alert:#}");
    assert_eq!(alert["details"]["file"]["name"], "hostname", "{alert:#}");
    // The open may run in the process's io_uring worker thread (comm iou-wrk-PID): the process
    // is still the one that submitted it.
    assert_eq!(alert["process"]["exe"], "/bin/primitives", "{alert:#}");
    assert_served_by_io_uring(&agent, &alert);
    drop(c);
    finish(agent, "iouring-proc-root");
}

/// The benign look-alike: io_uring used the way databases and runtimes use it, to open and read
/// ordinary files and procfs entries nobody watches, gives no alert. A watched open by the same
/// path at the end is alerted, so this test can fail.
#[test]
fn ordinary_io_uring_opens_give_zero_alerts() {
    let dir = work_dir("iouring-benign");
    let mut agent = Agent::start(&dir);
    let c = privileged("iouring-benign", |b| b);
    let out = sh(
        &c,
        "primitives iouring-open /bin/primitives r && primitives iouring-open /proc/self/status r && \
         echo x > /tmp/f && primitives iouring-open /tmp/f w && primitives iouring-open /proc/uptime r",
    );
    assert_eq!(
        out.matches("io_uring open").count(),
        4,
        "workload failed: {out}"
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(agent.alerts(), Vec::<Value>::new());
    sh(&c, "primitives iouring-open /proc/kallsyms r");
    let alert = agent.wait_for_alert(WAIT, |a| a["rule"] == "kernel-debug-recon");
    assert_eq!(alert["details"]["file"]["name"], "kallsyms", "{alert:#}");
    assert_served_by_io_uring(&agent, &alert);
    drop(c);
    agent.stop();
    assert_eq!(agent.alerts().len(), 1, "{:#?}", agent.alerts());
}

/// The hooks of io_uring's completion that judge write, splice and tee requests, and madvise
/// requests (no LSM twin: they serve on every kernel).
const IOURING_WRITE: &str = "io_uring/iouring_complete_write";
const IOURING_MADVISE: &str = "io_uring/iouring_complete_madvise";

/// Dirty Pipe with no splice, tee or write syscall: the read-only file spliced into the pipe by
/// IORING_OP_SPLICE, the pipe written by IORING_OP_WRITE, its buffers tee'd into a second pipe
/// by IORING_OP_TEE and that one written by IORING_OP_WRITEV. Both writes are dirty-pipe
/// alerts naming the spliced file, from the io_uring completion program, for the process that
/// submitted them; an io_uring request has no descriptor number to report.
#[test]
fn a_dirty_pipe_made_by_io_uring_is_judged_like_dirty_pipe() {
    let (agent, first, c) = scenario_by_another_entry(
        "iouring-dirty-pipe",
        "dirty-pipe",
        |b| b,
        |c| {
            sh(
                c,
                "echo original > /tmp/target && chmod 444 /tmp/target && \
                 primitives iouring-dirtypipe /tmp/target",
            )
        },
    );
    let cgroup = c.cgroup_path().expect("cgroup");
    let alerts = wait_for_alerts(&agent, "dirty-pipe", &cgroup, 2);
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(alerts[0], first);
    for a in &alerts {
        check_alert(a, "dirty-pipe", &cgroup, "unknown");
        assert_eq!(a["details"]["file"]["name"], "target", "{a:#}");
        assert_eq!(a["details"]["path"], "tmp/target", "{a:#}");
        assert_eq!(a["details"]["ret"], 1, "{a:#}");
        assert!(a["details"]["pipe_fd"].is_null(), "{a:#}");
        assert_eq!(a["process"]["exe"], "/bin/primitives", "{a:#}");
        assert_eq!(
            cited_hooks(&agent, a),
            vec![IOURING_WRITE.to_owned()],
            "{a:#}"
        );
    }
    drop(c);
    finish(agent, "iouring-dirty-pipe");
}

/// Code injection by io_uring: /proc/CHILD/mem registered as a fixed file and its descriptor
/// closed, then 8 bytes written into the child by IORING_OP_WRITE. No fd table holds the file
/// when it is written; the request's struct file carries the mark its open set. Judged like a
/// write(2): the same target, address and length.
#[test]
fn a_proc_mem_write_by_io_uring_through_a_fixed_file_is_judged_like_write() {
    let mut out = String::new();
    let (agent, alert, c) = scenario_by_another_entry(
        "iouring-procmem",
        "proc-mem-write",
        |b| b,
        |c| {
            out = sh(c, "primitives iouring-procmem");
            out.clone()
        },
    );
    drop(c);
    // "child N: io_uring write through a fixed file into /proc/N/mem: 8"
    let child: u64 = out
        .split_once("child ")
        .and_then(|(_, rest)| rest.split_once(':'))
        .and_then(|(pid, _)| pid.parse().ok())
        .unwrap_or_else(|| panic!("no child pid in {out:?}"));
    assert!(out.trim_end().ends_with("mem: 8"), "write failed: {out}");
    assert_eq!(alert["details"]["method"], "/proc/PID/mem", "{alert:#}");
    assert_eq!(alert["details"]["target"]["pid"], child, "{alert:#}");
    assert_eq!(
        alert["details"]["target_owner"], "its own container",
        "{alert:#}"
    );
    assert_eq!(alert["details"]["ret"], 8, "{alert:#}");
    assert_eq!(alert["process"]["exe"], "/bin/primitives", "{alert:#}");
    assert_eq!(
        cited_hooks(&agent, &alert),
        vec![IOURING_WRITE.to_owned()],
        "{alert:#}"
    );
    let event = agent.wait_for_event(WAIT, |e| e["id"] == alert["event_ids"][0]);
    assert_eq!(event["data"]["kind"], "mem_write", "{event:#}");
    assert_eq!(event["data"]["len"], 8, "{event:#}");
    assert_eq!(event["data"]["addr"], alert["details"]["addr"], "{event:#}");
    finish(agent, "iouring-procmem");
}

/// Dirty COW with its discard half by io_uring: IORING_OP_MADVISE(MADV_DONTNEED) from one
/// thread on a read-only private mapping, forced writes through /proc/self/mem from another.
/// The discards come from the io_uring completion program and are counted like madvise(2)'s.
#[test]
fn a_dirty_cow_race_discarding_by_io_uring_is_judged_like_dirty_cow() {
    let (mut agent, alert, c) = scenario_by_another_entry(
        "iouring-dirty-cow",
        "dirty-cow",
        |b| b,
        |c| {
            sh(
                c,
                "echo original > /tmp/target && primitives iouring-dirtycow /tmp/target; cat /tmp/target",
            )
        },
    );
    assert_eq!(alert["details"]["file"], "target", "{alert:#}");
    check_race(&mut agent, &alert);
    let hooks = cited_hooks(&agent, &alert);
    assert!(
        hooks.iter().any(|h| h == IOURING_MADVISE),
        "the discards were not io_uring's: {hooks:?}\n{alert:#}"
    );
    drop(c);
    finish(agent, "iouring-dirty-cow");
}

/// The benign look-alike: io_uring as a web server or fio uses it — writes and vectored writes
/// to a file, a read-only file spliced into a pipe and on into a file (the pipe never
/// written), a plain pipe written and tee'd, its own writable memory written through
/// /proc/self/mem, its own anonymous memory discarded and its own Unix socket connected to —
/// gives zero alerts, though the self-write was seen. The io_uring /proc/PID/mem injection
/// afterwards is the one alert, so this test can fail.
#[test]
fn ordinary_io_uring_writes_splices_and_discards_give_zero_alerts() {
    let dir = work_dir("iouring-benign-writes");
    let mut agent = Agent::start(&dir);
    let c = privileged("iouring-benign-writes", |b| b);
    let cgroup = c.cgroup_path().expect("cgroup");
    let out = sh(&c, "primitives iouring-benign");
    assert!(
        out.contains("iouring-benign: done"),
        "workload failed: {out}"
    );
    agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "mem_write" && e["hook"] == IOURING_WRITE && e["data"]["ret"] == 8
    });
    assert_eq!(agent.alerts(), Vec::<Value>::new());
    sh(&c, "primitives iouring-procmem");
    let alert = agent.wait_for_alert(WAIT, |a| a["rule"] == "proc-mem-write");
    check_alert(&alert, "proc-mem-write", &cgroup, "unknown");
    drop(c);
    agent.stop();
    assert_eq!(agent.alerts().len(), 1, "{:#?}", agent.alerts());
}

/// The new mount API without move_mount: the host's disk is mounted into a detached mount
/// (fsopen, fsconfig, fsmount) and read through its descriptor; no mount table ever shows it.
/// Judged by the superblock the kernel made, not by the source string.
#[test]
fn the_host_disk_through_fsmount_without_attaching_it_is_alerted() {
    let disk = root_disk();
    let fstype = host_root_fstype();
    let (agent, alert, c) = scenario(
        "fsmount-block",
        "mount-host-device",
        |b| with_device(b, &disk, "/dev/hostdisk"),
        |c| {
            sh(
                c,
                &format!("primitives fsmount-read /dev/hostdisk {fstype} etc/hostname"),
            )
        },
    );
    assert_eq!(alert["details"]["call"], "fsmount", "{alert:#}");
    assert_eq!(alert["details"]["what"], "a block device", "{alert:#}");
    assert_eq!(
        alert["details"]["device"],
        host_rdev(&disk).as_str(),
        "{alert:#}"
    );
    assert_eq!(alert["details"]["fstype"], fstype.as_str(), "{alert:#}");
    assert_eq!(
        alert["details"]["ret"].as_i64().map(|r| r >= 0),
        Some(true),
        "{alert:#}"
    );
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
    drop(c);
    finish(agent, "fsmount-block");
}

/// The benign look-alike: a detached tmpfs made with the new mount API (as container tooling
/// does for scratch space) is seen, with its virtual device, and not alerted.
#[test]
fn an_fsmount_of_a_tmpfs_gives_zero_alerts() {
    let dir = work_dir("fsmount-benign");
    let mut agent = Agent::start(&dir);
    let c = privileged("fsmount-benign", |b| b);
    let out = sh(&c, "primitives fsmount-read none tmpfs .");
    assert!(
        out.contains("through a detached mount"),
        "workload failed: {out}"
    );
    agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "mount"
            && e["data"]["call"] == "fsmount"
            && e["data"]["fstype"] == "tmpfs"
            && e["data"]["device"]
                .as_str()
                .is_some_and(|d| d.starts_with("0:"))
    });
    drop(c);
    agent.stop();
    assert_eq!(agent.alerts(), Vec::<Value>::new());
}

/// The filesystem type of the host's root (ext4 here).
fn host_root_fstype() -> String {
    let out = Command::new("findmnt")
        .args(["-n", "-o", "FSTYPE", "/"])
        .output()
        .expect("findmnt");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// connect(2) to the runtime's socket as an io_uring request (no connect syscall): judged by
/// the socket it reached, named as its listener bound it.
#[test]
fn a_runtime_socket_connect_by_io_uring_is_judged_like_connect() {
    let sock_dir = Path::new("/tmp/escapewatch-tests/sock-iouring");
    std::fs::create_dir_all(sock_dir).unwrap();
    let sock = sock_dir.join("docker.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("listen");
    let (agent, alert, c) = scenario(
        "iouring-runtime-socket",
        "runtime-socket-access",
        |b| b.bind_mount(&sock, "/var/run/docker.sock", true),
        |c| sh(c, "primitives iouring-connect /var/run/docker.sock"),
    );
    drop(listener);
    let _ = std::fs::remove_file(&sock);
    assert_eq!(alert["details"]["bound_as"], "docker.sock", "{alert:#}");
    assert_eq!(alert["details"]["socket"], "", "no path: {alert:#}");
    assert_eq!(alert["process"]["exe"], "/bin/primitives", "{alert:#}");
    assert!(
        cited_hooks(&agent, &alert).contains(&"io_uring/iouring_complete_connect".to_owned()),
        "{alert:#}"
    );
    drop(c);
    finish(agent, "iouring-runtime-socket");
}
