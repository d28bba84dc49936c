//! Issue B, processes and memory: Dirty COW, Dirty Pipe, memory writes, ptrace, watched
//! syscalls, /proc/PID/root, runtime binaries and sockets, each proven by a real container doing
//! the real primitive (Dirty COW and Dirty Pipe write private copies on this patched kernel).
//! Run through `cargo xtask test` (root; agents never overlap).

use std::{fs, path::Path, process::Command};

use escapewatch_integration::{
    agent::{Agent, ns_inode, work_dir},
    escape::{
        WAIT, against_host_process, check_hooks, check_race, finish, privileged,
        ptrace_host_scenario, scenario, sh, wait_for_alerts,
    },
    scenario::check_alert,
};

/// Issue H, trust in names: an image whose entrypoint is called like runc's sealed memfd copy
/// (`/memfd:runc_cloned…`) used to stay a "runtime helper", so its setns into the host was
/// ignored. Helper status now comes from host-side facts only: this is a workload.
#[test]
fn an_entrypoint_named_like_runcs_memfd_is_no_runtime_helper() {
    let dir = work_dir("memfd-name");
    let agent = Agent::start(&dir);
    let mut host = Command::new("sleep").arg("300").spawn().expect("sleep");
    let bundle = escapewatch_integration::scenario::with_primitives(
        escapewatch_integration::runc::Bundle::busybox("memfd-name")
            .expect("bundle")
            .share_host_namespace("pid")
            .add_capabilities(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_CHROOT"]),
    );
    let fake = bundle.rootfs().join("memfd:runc_cloned:x");
    fs::create_dir_all(&fake).unwrap();
    fs::copy(
        bundle.rootfs().join("bin/primitives"),
        fake.join("primitives"),
    )
    .unwrap();
    fs::copy(bundle.rootfs().join("bin/busybox"), fake.join("busybox")).unwrap();
    let script = format!(
        "sleep 2; exec /memfd:runc_cloned:x/primitives setns /proc/{}/ns/mnt /bin/true",
        host.id()
    );
    let c = bundle
        .args(&["/memfd:runc_cloned:x/busybox", "sh", "-c", &script])
        .run_detached(&escapewatch_integration::runc::unique_id("ewt"))
        .expect("run");
    let cgroup = c.cgroup_path().expect("cgroup");
    let alert = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "namespace-join-host" && a["container"]["id"] == cgroup
    });
    check_alert(&alert, "namespace-join-host", &cgroup, "unknown");
    assert_eq!(
        alert["process"]["exe"], "/memfd:runc_cloned:x/primitives",
        "{alert:#}"
    );
    assert_eq!(alert["details"]["owner"], "host", "{alert:#}");
    assert_eq!(
        alert["details"]["inode"],
        ns_inode(host.id(), "mnt"),
        "{alert:#}"
    );
    let event = agent.wait_for_event(WAIT, |e| e["id"] == alert["event_ids"][0]);
    assert!(
        event["process"].get("runtime_helper").is_none(),
        "{event:#}"
    );
    check_hooks(&agent, &alert);
    drop(c);
    let _ = host.kill();
    let _ = host.wait();
    finish(agent, "memfd-name");
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

/// Issue H, Dirty COW another way: the race through ptrace POKEDATA from the parent into a
/// child that discards from a thread (no /proc/PID/mem). The pokes' write half is the ptrace
/// tracepoint here and the forced-write fault (fentry/kprobe, budgeted per mapping) on the
/// matrix kernels; no madvise record may be lost.
#[test]
fn dirty_cow_race_through_ptrace_pokes() {
    let (mut agent, alert, c) = scenario(
        "dirty-cow-ptrace",
        "dirty-cow",
        |b| b.share_host_namespace("pid"),
        |c| {
            sh(
                c,
                "echo original > /tmp/target && primitives dirtycow-ptrace /tmp/target; cat /tmp/target",
            )
        },
    );
    assert_eq!(alert["details"]["file"], "target", "{alert:#}");
    check_race(&mut agent, &alert);
    drop(c);
    finish(agent, "dirty-cow-ptrace");
}

/// Issue H, Dirty COW correlated by memory, not pid: the discards come from a CLONE_VM child
/// (a thread group of its own that shares the writer's memory), the forced writes from the
/// parent through /proc/self/mem.
#[test]
fn dirty_cow_race_with_a_clone_vm_child_discarding() {
    let (mut agent, alert, c) = scenario(
        "dirty-cow-clonevm",
        "dirty-cow",
        |b| b,
        |c| {
            sh(
                c,
                "echo original > /tmp/target && primitives dirtycow-via clonevm /tmp/target; cat /tmp/target",
            )
        },
    );
    assert_eq!(alert["details"]["file"], "target", "{alert:#}");
    check_race(&mut agent, &alert);
    drop(c);
    finish(agent, "dirty-cow-clonevm");
}

/// Issue H, Dirty COW on something that is no file: the race of scumjr's dirtycow-vdso (the
/// Docker escape of seed 000) on the process's own vDSO, discarded by one thread while the
/// parent pokes it through ptrace. Harmless here: the patched kernel writes a private copy.
#[test]
fn dirty_cow_race_on_the_vdso() {
    let (mut agent, alert, c) = scenario(
        "dirty-cow-vdso",
        "dirty-cow",
        |b| b.share_host_namespace("pid"),
        |c| sh(c, "primitives dirtycow-ptrace vdso"),
    );
    check_race(&mut agent, &alert);
    drop(c);
    finish(agent, "dirty-cow-vdso");
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

/// Run `primitives NAME` (the fixture's name too) in a fresh container and take the
/// proc-mem-write alert of an 8-byte /proc/PID/mem write into another process of the same
/// container; returns what the primitive printed.
fn proc_mem_write_scenario(name: &str) -> (Agent, serde_json::Value, String) {
    let mut out = String::new();
    let (agent, alert, c) = scenario(
        name,
        "proc-mem-write",
        |b| b,
        |c| {
            out = sh(c, &format!("primitives {name}"));
            out.clone()
        },
    );
    drop(c);
    assert_eq!(alert["details"]["method"], "/proc/PID/mem", "{alert:#}");
    assert_eq!(
        alert["details"]["target_owner"], "its own container",
        "{alert:#}"
    );
    assert_eq!(alert["details"]["ret"], 8, "{alert:#}");
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
    let event = agent.wait_for_event(WAIT, |e| e["id"] == alert["event_ids"][0]);
    assert_eq!(event["data"]["kind"], "mem_write", "{event:#}");
    assert_eq!(event["data"]["len"], 8, "{event:#}");
    assert_eq!(event["data"]["addr"], alert["details"]["addr"], "{event:#}");
    (agent, alert, out)
}

/// Issue H, fd identity: /proc/CHILD/mem opened, dup2'ed to fd 47, the original closed, then
/// written with pwritev. The mark follows the file's inode, not the number the open returned,
/// and pwritev is a write like any other.
#[test]
fn proc_mem_write_through_a_dup2_descriptor_with_pwritev() {
    let (agent, alert, out) = proc_mem_write_scenario("procmem-dup-pwritev");
    // "child N: pwritev through fd 47 into /proc/N/mem: 8"
    let child: u64 = out
        .split_once("child ")
        .and_then(|(_, rest)| rest.split_once(':'))
        .and_then(|(pid, _)| pid.parse().ok())
        .unwrap_or_else(|| panic!("no child pid in {out:?}"));
    assert!(out.trim_end().ends_with("mem: 8"), "pwritev failed: {out}");
    assert_eq!(alert["details"]["target"]["pid"], child, "{alert:#}");
    assert_eq!(
        alert["details"]["target"]["pid_in_writer_ns"], true,
        "{alert:#}"
    );
    finish(agent, "procmem-dup-pwritev");
}

/// Issue H, fd identity: a /proc/self/mem descriptor inherited by a forked child writes the
/// parent's memory. Whose memory it is is decided at the write (the file's mm against the
/// writer's), so the child is no "process writing itself": the alert names the parent.
#[test]
fn proc_mem_write_by_a_child_through_an_inherited_self_mem_descriptor() {
    let (agent, alert, out) = proc_mem_write_scenario("procmem-inherited");
    assert!(
        out.contains("wrote parent's word: true, now 0x4444"),
        "{out}"
    );
    assert_eq!(
        alert["details"]["target"]["pid"], alert["process"]["ppid"],
        "{alert:#}"
    );
    assert_eq!(
        alert["details"]["target"]["comm"], "primitives",
        "{alert:#}"
    );
    finish(agent, "procmem-inherited");
}

/// Issue H, fd identity for Dirty Pipe: the spliced pipe written with writev, by a forked
/// child that inherited it, through a second open file of the same pipe (/proc/self/fd/N),
/// and a second pipe its buffers were tee'd or spliced into, then written. Each is a
/// dirty-pipe alert naming the spliced file.
#[test]
fn dirty_pipe_written_by_writev_by_a_child_through_a_reopened_pipe_and_a_second_pipe() {
    let (agent, _, c) = scenario(
        "dirty-pipe-variants",
        "dirty-pipe",
        |b| b,
        |c| {
            sh(
                c,
                "echo original > /tmp/target && chmod 444 /tmp/target && \
                 primitives dirtypipe-via writev /tmp/target && \
                 primitives dirtypipe-via fork /tmp/target && \
                 primitives dirtypipe-via reopen /tmp/target && \
                 primitives dirtypipe-via tee /tmp/target && \
                 primitives dirtypipe-via splice /tmp/target",
            )
        },
    );
    let cgroup = c.cgroup_path().expect("cgroup");
    let alerts = wait_for_alerts(&agent, "dirty-pipe", &cgroup, 5);
    assert_eq!(alerts.len(), 5, "{alerts:#?}");
    for a in &alerts {
        check_alert(a, "dirty-pipe", &cgroup, "unknown");
        assert_eq!(a["details"]["file"]["name"], "target", "{a:#}");
        assert_eq!(a["details"]["file"]["parent"], "tmp", "{a:#}");
        assert_eq!(a["details"]["path"], "tmp/target", "{a:#}");
        assert_eq!(a["details"]["ret"], 1, "{a:#}");
        assert_eq!(a["process"]["comm"], "primitives", "{a:#}");
    }
    let [writev, child, reopen, tee, splice] = &alerts[..] else {
        unreachable!()
    };
    // The child wrote the pipe its parent spliced into, through the same number.
    assert_ne!(
        child["process"]["pid"], writev["process"]["pid"],
        "{child:#}"
    );
    assert_eq!(
        child["details"]["pipe_fd"], writev["details"]["pipe_fd"],
        "{child:#}"
    );
    // The reopened pipe is another descriptor (and another open file) of the same pipe; the
    // tee'd and spliced-into pipes are other pipes.
    for other in [reopen, tee, splice] {
        assert_ne!(
            other["details"]["pipe_fd"], writev["details"]["pipe_fd"],
            "{other:#}"
        );
    }
    drop(c);
    finish(agent, "dirty-pipe-variants");
}

/// The benign look-alike of both: after a read-only file was spliced into a pipe (and read
/// back, never written) and /proc/self/mem was opened, heavy writev/pwritev into other pipes
/// and files, a tee between ordinary pipes, a debugger-like read of its own memory, a pwritev
/// into it, and a busybox shell pipeline. Zero alerts; the agent did see the marked self-write
/// (so this test can fail).
#[test]
fn ordinary_vectored_writes_after_marks_give_no_alert() {
    let dir = work_dir("writes-benign");
    let mut agent = Agent::start(&dir);
    let c = privileged("writes-benign", |b| b);
    let out = sh(
        &c,
        "primitives benign-writes && seq 1 20000 | sort -r | uniq | wc -l > /tmp/n && \
         dd if=/dev/zero bs=4k count=500 2>/dev/null | cat > /tmp/zeros && cat /tmp/n",
    );
    assert!(out.contains("own memory pwritev 8"), "{out}");
    assert!(out.contains("20000"), "{out}");
    let cgroup = c.cgroup_path().expect("cgroup");
    agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "mem_write"
            && e["container"]["id"] == cgroup
            && e["data"]["target"]["pid"] == e["process"]["pid"]
            && e["data"]["len"] == 8
    });
    drop(c);
    agent.stop();
    assert_eq!(agent.alerts(), Vec::<serde_json::Value>::new());
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
    let (agent, _) = ptrace_host_scenario("ptrace", |pid| format!("primitives ptrace {pid}"));
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
fn host_fs_via_proc_root() {
    let (agent, alert, c, _) = against_host_process("proc-root", "host-fs-via-proc-root", |pid| {
        format!("cat /proc/{pid}/root/etc/hostname")
    });
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
    check_alert(&alert, "runtime-binary-overwrite", &cgroup, "unknown");
    check_hooks(&agent, &alert);
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

/// Issue H, trust in names: the same socket bind-mounted under another name and reached
/// through a symlink the container made. Neither name says docker; the kernel reports the name
/// the listener bound (`docker.sock`), which the container cannot change.
#[test]
fn runtime_socket_reached_through_a_symlink_and_another_name() {
    let sock_dir = Path::new("/tmp/escapewatch-tests/sock-renamed");
    fs::create_dir_all(sock_dir).unwrap();
    let sock = sock_dir.join("docker.sock");
    let _ = fs::remove_file(&sock);
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("listen");
    let (agent, alert, c) = scenario(
        "runtime-socket-renamed",
        "runtime-socket-access",
        |b| b.bind_mount(&sock, "/run/api/engine", true),
        |c| {
            sh(
                c,
                "ln -s /run/api/engine /tmp/innocent && primitives connect /tmp/innocent",
            )
        },
    );
    drop(listener);
    let _ = fs::remove_file(&sock);
    assert_eq!(alert["details"]["socket"], "/tmp/innocent", "{alert:#}");
    assert_eq!(alert["details"]["bound_as"], "docker.sock", "{alert:#}");
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
    drop(c);
    finish(agent, "runtime-socket-renamed");
}
