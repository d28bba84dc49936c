//! The `host` row: the same tests and console protocol as a guest, run natively on the
//! running kernel (this machine's /boot holds no image of it to boot under QEMU).

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{Kernel, Outcome, TestCase, vm_dir};
use crate::workspace_root;

/// The host row: the same tests and protocol, run natively on the running kernel.
pub fn run_host(
    kernel: &'static Kernel,
    tests: &[TestCase],
    binaries: &BTreeMap<String, PathBuf>,
    agent: &Path,
    primitives: &Path,
) -> Result<Outcome> {
    let dir = vm_dir().join(kernel.name);
    fs::create_dir_all(&dir)?;
    let log_path = dir.join("console.log");
    let mut log = fs::File::create(&log_path)?;
    let start = Instant::now();
    let uname = Command::new("uname").arg("-r").output()?;
    writeln!(
        log,
        "ESCAPEWATCH-VM-UNAME: {} (native, no VM)",
        String::from_utf8_lossy(&uname.stdout).trim()
    )?;
    let lsm = fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_else(|e| format!("({e})"));
    writeln!(log, "ESCAPEWATCH-VM-LSM: {}", lsm.trim())?;
    for line in host_hook_lines(agent)? {
        writeln!(log, "ESCAPEWATCH-VM-HOOK: {line}")?;
    }
    // The tests append to hooks.tsv (kernel, rule, hooks); only this run's lines are ours.
    let served = workspace_root().join("target/integration/hooks.tsv");
    let served_before = fs::read_to_string(&served).map_or(0, |s| s.len());
    let (mut pass, mut fail) = (0, 0);
    for t in tests {
        println!("xtask vm-test: host: {}", t.name);
        writeln!(log, "ESCAPEWATCH-VM-RUN: {}", t.name)?;
        let t0 = Instant::now();
        let ok = Command::new(&binaries[&t.binary])
            .args(["--exact", &t.name, "--test-threads=1"])
            .env("ESCAPEWATCH_BIN", agent)
            .env("ESCAPEWATCH_PRIMITIVES", primitives)
            .env("ESCAPEWATCH_EXPECT_HOOKS", kernel.expect_hooks)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .status()?
            .success();
        if ok {
            pass += 1;
        } else {
            fail += 1;
        }
        let result = if ok { "ok" } else { "FAILED" };
        writeln!(
            log,
            "ESCAPEWATCH-VM: {} {result} {}s",
            t.name,
            t0.elapsed().as_secs()
        )?;
    }
    let served = fs::read_to_string(&served).unwrap_or_default();
    for line in served.get(served_before..).unwrap_or_default().lines() {
        writeln!(log, "ESCAPEWATCH-VM-SERVED: {line}")?;
    }
    writeln!(log, "ESCAPEWATCH-VM-DONE pass={pass} fail={fail}")?;
    Ok(Outcome {
        kernel,
        tests: tests.to_vec(),
        log: log_path,
        elapsed: start.elapsed(),
        problem: None,
    })
}

/// The agent's lines saying which program attached to which hook: one start, stopped when
/// ready. Holds the integration tests' machine-wide lock like every test agent.
fn host_hook_lines(agent: &Path) -> Result<Vec<String>> {
    let base = Path::new("/tmp/escapewatch-tests");
    fs::create_dir_all(base)?;
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(base.join(".agent.lock"))?;
    // SAFETY: flock on a descriptor we own; released when `lock` is dropped.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        bail!("flock {}", base.join(".agent.lock").display());
    }
    let dir = vm_dir().join("host/hooks");
    fs::create_dir_all(&dir)?;
    let mut child = Command::new(agent)
        .arg("run")
        .arg("--event-log")
        .arg(dir.join("events.jsonl"))
        .arg("--alert-log")
        .arg(dir.join("alerts.jsonl"))
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", agent.display()))?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    let mut ready = false;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        ready = line.contains("escapewatch is ready");
        lines.push(line);
        if ready {
            break;
        }
    }
    // SAFETY: kill on the pid of the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    drop(lock);
    if !ready {
        bail!(
            "the agent did not get ready on the host:\n{}",
            lines.join("\n")
        );
    }
    Ok(lines
        .into_iter()
        .filter(|l| l.contains("attach") || l.contains("rule served by"))
        .collect())
}
