//! Issue H, escapes caught by their effect: credentials beyond what the container started with,
//! and a cwd outside the container's mounts, each made real by runc handing a container
//! process what a kernel exploit or a leaky runtime would (extra capabilities, a host
//! directory fd). Benign look-alikes run in the same session and must stay silent. Run through
//! `cargo xtask test` (root; agents never overlap).

use std::{fs, process::Command};

use escapewatch_integration::{
    agent::{read_jsonl, work_dir},
    escape::{WAIT, finish, scenario, sh},
    runc::{Bundle, Container, unique_id},
};
use serde_json::Value;

/// `runc exec [flags] ID cmd…`, which must succeed; stdout and stderr.
fn runc_exec(c: &Container, flags: &[&str], cmd: &[&str]) -> String {
    let out = Command::new("runc")
        .arg("exec")
        .args(flags)
        .arg(c.id())
        .args(cmd)
        .output()
        .expect("spawn runc exec");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "runc exec {flags:?} {cmd:?}: {text}");
    text
}

/// The `CapBnd` of a live process.
fn cap_bounding(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .expect("CapBnd line")
        .trim();
    u64::from_str_radix(hex, 16).expect("hex")
}

/// Every capability this machine's shell has in its bounding set (the VM withholds some, e.g.
/// CAP_SYS_RESOURCE): what a `--privileged` container gets here. Named by libcap's `capsh`.
fn all_host_caps() -> Vec<String> {
    let mask = format!("{:#x}", cap_bounding(std::process::id()));
    let out = Command::new("capsh")
        .arg(format!("--decode={mask}"))
        .output()
        .expect("capsh (libcap2-bin)");
    let text = String::from_utf8_lossy(&out.stdout);
    let (_, names) = text.trim().split_once('=').expect("capsh --decode output");
    names
        .split(',')
        .filter(|n| n.starts_with("cap_"))
        .map(str::to_ascii_uppercase)
        .collect()
}

fn alerts_of(agent: &escapewatch_integration::agent::Agent, rule: &str) -> Vec<Value> {
    agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"] == rule)
        .collect()
}

/// A process joins the container (its namespaces and cgroup, through `runc exec`) with
/// CAP_SYS_MODULE, which the container's bounding set lacks: the effect a kernel exploit's
/// commit_creds has, made by the one path that gives it here without an exploit. Before it, in
/// the same session: a setuid-root program run as uid 1000 (gains capabilities, all within the
/// bounding set), a plain `runc exec`, and a container started with every capability this
/// machine allows (`--privileged`) exec'd with CAP_SYS_MODULE: all silent.
#[test]
fn capabilities_beyond_the_containers_start_are_caught() {
    const RULE: &str = "container-creds-escalated";
    let mut privileged_cgroup = String::new();
    let (agent, alert, c) = scenario(
        "creds-escalated",
        RULE,
        |mut b| {
            // A setuid-root copy of primitives, which setuid works for (runc's default spec
            // sets no_new_privs, which docker does not).
            b.config_mut()["process"]["noNewPrivileges"] = false.into();
            let suid = b.rootfs().join("bin/suid-primitives");
            fs::copy(b.rootfs().join("bin/primitives"), &suid).expect("copy");
            let ok = Command::new("chmod")
                .args(["4755"])
                .arg(&suid)
                .status()
                .expect("chmod");
            assert!(ok.success());
            b
        },
        |c| {
            let setuid = runc_exec(
                c,
                &["--user", "1000:1000"],
                &[
                    "sh",
                    "-c",
                    "exec 3</; /bin/suid-primitives fchdir 3 /bin/true",
                ],
            );
            assert!(setuid.contains("fchdir ok"), "{setuid}");
            let plain = sh(c, "grep CapEff /proc/self/status");
            let privileged = Bundle::busybox("creds-privileged")
                .expect("bundle")
                .add_capabilities(
                    &all_host_caps()
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>(),
                )
                .run_detached(&unique_id("ewt"))
                .expect("privileged container");
            let full = runc_exec(
                &privileged,
                &["--cap", "CAP_SYS_MODULE"],
                &["grep", "CapEff", "/proc/self/status"],
            );
            privileged_cgroup = privileged.cgroup_path().expect("cgroup");
            privileged.kill("KILL").expect("kill");
            privileged.delete().expect("delete");
            let escalated = runc_exec(
                c,
                &["--cap", "CAP_SYS_MODULE"],
                &["grep", "CapEff", "/proc/self/status"],
            );
            format!("{setuid}{plain}{full}{escalated}")
        },
    );
    let bounding = cap_bounding(c.pid());
    assert_eq!(
        bounding & (1 << 16),
        0,
        "the container lacks CAP_SYS_MODULE"
    );
    assert_eq!(
        alert["details"]["gained"],
        serde_json::json!(["CAP_SYS_MODULE"]),
        "{alert:#}"
    );
    assert_eq!(alert["details"]["gained_mask"], "0x10000", "{alert:#}");
    assert_eq!(
        alert["details"]["start_bounding"],
        format!("{bounding:#x}"),
        "{alert:#}"
    );
    let caps = alert["details"]["cap_effective"].as_str().expect("caps");
    let caps = u64::from_str_radix(caps.trim_start_matches("0x"), 16).expect("hex");
    assert_eq!(caps, bounding | (1 << 16), "{alert:#}");
    assert_eq!(alert["details"]["uid"], 0, "{alert:#}");
    assert_eq!(alert["details"]["start_uid"], 0, "{alert:#}");
    assert_eq!(alert["details"]["init_cred"], false, "{alert:#}");
    assert_eq!(alert["process"]["comm"], "grep", "{alert:#}");
    // The setuid program did gain capabilities (within the bounding set), and stayed silent.
    let suid = agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "process_exec" && e["data"]["filename"] == "/bin/suid-primitives"
    });
    assert_eq!(suid["process"]["uid"], 1000, "{suid:#}");
    assert_ne!(suid["process"]["cap_effective"], "0x0", "{suid:#}");
    // Where commit_creds has an fentry (the kernel matrix), that growth was seen where the
    // kernel committed it, the header already holding the new credentials; judged by the same
    // rule, and silent too. Nothing switched namespaces outside setns/unshare.
    let changes: Vec<Value> = read_jsonl(&agent.event_log)
        .into_iter()
        .filter(|e| e["data"]["kind"] == "task_changed")
        .collect();
    if agent.attached("fentry_commit_creds") {
        // (runc init's own capset for `--user 1000:1000` is one too, a runtime helper's.)
        let grown = changes
            .iter()
            .find(|e| {
                e["data"]["change"] == "creds"
                    && e["process"]["pid"] == suid["process"]["pid"]
                    && e["process"]["runtime_helper"] != true
            })
            .unwrap_or_else(|| panic!("no task_changed for the setuid exec: {changes:#?}"));
        assert_eq!(grown["data"]["before"]["uid"], 1000, "{grown:#}");
        assert_eq!(
            grown["container"]["id"],
            c.cgroup_path().expect("cgroup"),
            "{grown:#}"
        );
        assert_eq!(grown["data"]["before"]["cap_effective"], "0x0", "{grown:#}");
        assert_eq!(
            grown["process"]["cap_effective"], suid["process"]["cap_effective"],
            "the header holds the committed capabilities: {grown:#}"
        );
        assert_eq!(grown["hook"], "fentry/fentry_commit_creds", "{grown:#}");
    } else {
        eprintln!("creds-escalated: no fentry on commit_creds here; checked at exec and exit");
        assert!(
            changes.is_empty(),
            "task_changed without its hook: {changes:#?}"
        );
    }
    assert!(
        !changes.iter().any(|e| e["data"]["change"] == "namespaces"),
        "{changes:#?}"
    );
    let only = alerts_of(&agent, RULE);
    assert_eq!(
        only.len(),
        1,
        "one alert, for the one escalated process: {only:#?}"
    );
    drop(c);
    finish(agent, "creds-escalated");
}

/// A host directory's fd handed into the container (`runc exec --preserve-fds`, as runc < 1.1.12
/// leaked its /sys/fs/cgroup fd, CVE-2024-21626); the container process fchdir's to it and
/// execs `ls`, which lists the host directory. Before it: an exec with its cwd in a
/// bind-mounted volume (`docker exec -w /data`), silent.
#[test]
fn a_cwd_in_a_host_directory_is_caught_at_exec() {
    const RULE: &str = "container-root-outside";
    let host_dir = work_dir("cwd-leak-host");
    fs::create_dir_all(&host_dir).expect("host dir");
    fs::write(host_dir.join("host-only-marker"), "x").expect("marker");
    let volume = work_dir("cwd-leak-volume");
    fs::create_dir_all(&volume).expect("volume");
    fs::write(volume.join("volume-marker"), "x").expect("marker");
    let host_mnt = escapewatch_integration::agent::ns_inode(std::process::id(), "mnt");
    let (agent, alert, c) = scenario(
        "cwd-leak",
        RULE,
        |b| b.bind_mount(&volume, "/data", false),
        |c| {
            let in_volume = runc_exec(c, &["--cwd", "/data"], &["ls"]);
            assert!(in_volume.contains("volume-marker"), "{in_volume}");
            let script = format!(
                "exec 3<'{}' && exec runc exec --preserve-fds 1 {} /bin/primitives fchdir 3 /bin/ls",
                host_dir.display(),
                c.id()
            );
            let out = Command::new("sh")
                .args(["-c", &script])
                .output()
                .expect("sh");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{text}");
            assert!(
                text.contains("host-only-marker"),
                "ls in the container listed the host directory: {text}"
            );
            in_volume + &text
        },
    );
    assert_eq!(
        alert["details"]["which"],
        serde_json::json!(["cwd"]),
        "{alert:#}"
    );
    assert_eq!(alert["details"]["mnt_ns"], host_mnt, "{alert:#}");
    assert_eq!(alert["details"]["owner"], "the host", "{alert:#}");
    assert_eq!(
        alert["details"]["container_mnt_ns"],
        escapewatch_integration::agent::ns_inode(c.pid(), "mnt"),
        "{alert:#}"
    );
    assert_eq!(alert["details"]["filename"], "/bin/ls", "{alert:#}");
    assert_eq!(alert["process"]["comm"], "ls", "{alert:#}");
    let only = alerts_of(&agent, RULE);
    assert_eq!(only.len(), 1, "the volume's exec stayed silent: {only:#?}");
    drop(c);
    finish(agent, "cwd-leak");
}
