//! Issue K, fileless and drifted execution: a container runs a binary it wrote after it
//! started, one from a memfd, one deleted and run through /proc/self/fd, one from /dev/shm;
//! each judged from the exec'd inode the kernel loaded (sched_process_exec). Benign
//! look-alikes: the image's own programs, a file only read, an allowlisted build container
//! running what it just installed, and a host process running a freshly built binary.

use std::{fs, process::Command, time::SystemTime};

use escapewatch_integration::{
    agent::{Agent, work_dir},
    escape::{WAIT, finish, privileged, scenario, sh},
    runc::random_hex64,
    scenario::check_alert,
};
use serde_json::Value;

const FILELESS: &str = "exec-fileless";
const DRIFTED: &str = "exec-drifted-binary";

fn unix_ns_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as i64
}

fn exec_of(agent: &Agent, cgroup: &str, filename: &str) -> Value {
    agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "process_exec"
            && e["data"]["filename"] == filename
            && (cgroup.is_empty() || e["container"]["id"] == cgroup)
    })
}

#[test]
fn a_binary_written_after_the_container_started_is_drift() {
    let before = unix_ns_now();
    let (agent, alert, c) = scenario(
        "drift-new-binary",
        DRIFTED,
        |b| b,
        |c| {
            sh(
                c,
                "cp /bin/primitives /tmp/x && chmod 755 /tmp/x && /tmp/x drift-child",
            )
        },
    );
    let cgroup = c.cgroup_path().expect("cgroup");
    check_alert(&alert, DRIFTED, &cgroup, "unknown");
    let d = &alert["details"];
    assert_eq!(d["filename"], "/tmp/x", "{alert:#}");
    let pid = alert["process"]["pid"].as_u64().expect("pid");
    assert!(pid > 1 && pid as u32 != c.pid(), "{alert:#}");
    let start = d["container_start_unix_ns"].as_i64().expect("start");
    let ctime = d["ctime_unix_ns"].as_i64().expect("ctime");
    let now = unix_ns_now();
    // The container started within this test, the file was written after it.
    assert!(before < start && start < ctime && ctime <= now, "{alert:#}");
    assert_eq!(
        d["changed_after_start_ms"].as_i64(),
        Some((ctime - start) / 1_000_000)
    );
    let inode = fs::metadata(c.bundle_dir().join("rootfs/tmp/x"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("the copy, seen from the host");
    assert_eq!(d["inode"], inode, "{alert:#}");
    // sh, cp and chmod came with the image: only /tmp/x drifted.
    let drifted: Vec<Value> = agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"] == DRIFTED || a["rule"] == FILELESS)
        .collect();
    assert_eq!(drifted.len(), 1, "{drifted:#?}");
    finish(agent, "drift-new-binary");
}

#[test]
fn a_memfd_is_run_by_execveat_and_by_fexecve() {
    let (agent, alert, c) = scenario(
        "drift-memfd",
        FILELESS,
        |b| b,
        |c| sh(c, "primitives memfd-exec execveat"),
    );
    let cgroup = c.cgroup_path().expect("cgroup");
    let d = &alert["details"];
    assert_eq!(d["reason"], "unlinked", "{alert:#}");
    assert_eq!(d["nlink"], 0, "{alert:#}");
    // execveat(fd, "", AT_EMPTY_PATH): the kernel names the file /dev/fd/N.
    assert!(
        d["filename"].as_str().unwrap_or("").starts_with("/dev/fd/"),
        "{alert:#}"
    );
    assert_eq!(alert["process"]["comm"], "memfd:payload", "{alert:#}");
    let out = sh(&c, "primitives memfd-exec fexecve");
    assert!(out.contains("drift-child ran"), "{out}");
    let second = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == FILELESS
            && a["container"]["id"] == cgroup
            && a["process"]["pid"] != alert["process"]["pid"]
    });
    check_alert(&second, FILELESS, &cgroup, "unknown");
    assert_eq!(second["details"]["nlink"], 0, "{second:#}");
    finish(agent, "drift-memfd");
}

#[test]
fn a_deleted_file_run_through_proc_self_fd_and_a_tmpfs_binary_are_fileless() {
    let (agent, alert, c) = scenario(
        "drift-deleted",
        FILELESS,
        |b| b,
        |c| sh(c, "primitives deleted-exec /tmp/gone"),
    );
    let cgroup = c.cgroup_path().expect("cgroup");
    let d = &alert["details"];
    assert_eq!(d["reason"], "unlinked", "{alert:#}");
    assert_eq!(d["nlink"], 0, "{alert:#}");
    assert!(
        d["filename"]
            .as_str()
            .unwrap_or("")
            .starts_with("/proc/self/fd/"),
        "{alert:#}"
    );
    // A tmpfs the container mounts itself (runc mounts /dev/shm noexec: the kernel refuses).
    let out = sh(
        &c,
        "mkdir -p /mnt/mem && mount -t tmpfs mem /mnt/mem && cp /bin/primitives /mnt/mem/x && /mnt/mem/x drift-child",
    );
    assert!(out.contains("drift-child ran"), "{out}");
    let shm = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == FILELESS
            && a["container"]["id"] == cgroup
            && a["details"]["filename"] == "/mnt/mem/x"
    });
    check_alert(&shm, FILELESS, &cgroup, "unknown");
    assert_eq!(shm["details"]["reason"], "memory-filesystem", "{shm:#}");
    assert_eq!(shm["details"]["fs_magic"], 0x0102_1994, "{shm:#}");
    assert_ne!(shm["details"]["dev"], shm["details"]["root_dev"], "{shm:#}");
    finish(agent, "drift-deleted");
}

#[test]
fn image_binaries_read_files_build_containers_and_host_builds_stay_silent() {
    let build_id = random_hex64();
    let dir = work_dir("drift-benign");
    let config = format!(
        "[[rules.exec-drifted-binary.allow]]\ncontainer_id = \"{build_id}\"\nreason = \"CI build container: runs what it installs\"\n"
    );
    let agent = Agent::start_with(&dir, Some(&config));
    // A build container, allowlisted by its id: installs a tool and runs it.
    let build = privileged("drift-build", |b| {
        b.cgroups_path(&format!("/docker/{build_id}"))
    });
    let out = sh(
        &build,
        "cp /bin/primitives /usr-local-tool && chmod 755 /usr-local-tool && /usr-local-tool drift-child",
    );
    assert!(out.contains("drift-child ran"), "{out}");
    // An ordinary workload: the image's programs, and a new file only read.
    let work = privileged("drift-work", |b| b);
    let cgroup = work.cgroup_path().expect("cgroup");
    let out = sh(
        &work,
        "ls / >/dev/null; busybox sh -c true; cp /bin/primitives /tmp/y; cat /tmp/y >/dev/null; ls /tmp; primitives drift-child",
    );
    assert!(out.contains("drift-child ran"), "{out}");
    // The host: a freshly built binary is no container's.
    let host_bin = dir.join("fresh-build");
    fs::copy(
        std::env::var("ESCAPEWATCH_PRIMITIVES").expect("primitives"),
        &host_bin,
    )
    .expect("copy");
    let host_path = host_bin.to_str().expect("utf-8");
    let ran = Command::new(host_path)
        .arg("drift-child")
        .output()
        .expect("run");
    assert!(ran.status.success());

    // Each exec was seen, with the facts the rules judge.
    let built = exec_of(&agent, &build_id, "/usr-local-tool");
    let image = &built["data"]["image"];
    assert!(
        image["ctime_unix_ns"].as_i64() > image["container_start_unix_ns"].as_i64(),
        "the build container's tool is new: {built:#}"
    );
    assert_eq!(built["container"]["id"], build_id.as_str());
    let last = agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "process_exec"
            && e["container"]["id"] == cgroup.as_str()
            && e["data"]["filename"] == "/bin/primitives"
    });
    assert!(
        last["data"]["image"]["nlink"].as_u64() >= Some(1),
        "{last:#}"
    );
    let host = exec_of(&agent, "", host_path);
    assert!(host["container"].is_null(), "{host:#}");
    let noisy: Vec<Value> = agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"] == DRIFTED || a["rule"] == FILELESS)
        .collect();
    assert!(noisy.is_empty(), "{noisy:#?}");
    drop((build, work));
    // No fixture: replay runs without this allowlist, and the build container's exec is drift.
    let mut agent = agent;
    agent.stop();
}
