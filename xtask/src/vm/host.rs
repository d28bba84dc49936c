//! The `host` row: the same tests and console protocol as a guest, run natively on the
//! running kernel (this machine's /boot holds no image of it to boot under QEMU).

use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
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
) -> Outcome {
    let log = vm_dir().join(kernel.name).join("console.log");
    let start = Instant::now();
    let problem = run_tests(kernel, tests, binaries, agent, primitives, &log)
        .err()
        .map(|e| format!("{e:#}"));
    println!(
        "xtask vm-test: host row finished in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Outcome {
        kernel,
        tests: tests.to_vec(),
        log,
        elapsed: start.elapsed(),
        problem,
    }
}

fn run_tests(
    kernel: &'static Kernel,
    tests: &[TestCase],
    binaries: &BTreeMap<String, PathBuf>,
    agent: &Path,
    primitives: &Path,
    log_path: &Path,
) -> Result<()> {
    fs::create_dir_all(log_path.parent().expect("a file path"))?;
    let mut log = fs::File::create(log_path)?;
    let uname = Command::new("uname").arg("-r").output()?;
    writeln!(
        log,
        "ESCAPEWATCH-VM-UNAME: {} (native, no VM)",
        String::from_utf8_lossy(&uname.stdout).trim()
    )?;
    let lsm = fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_else(|e| format!("({e})"));
    writeln!(log, "ESCAPEWATCH-VM-LSM: {}", lsm.trim())?;
    for line in host_hook_lines(agent, kernel.disable_hooks)? {
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
            // Empty: no hook type disabled (also when the caller's environment sets one).
            .env("ESCAPEWATCH_DISABLE_HOOKS", kernel.disable_hooks)
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
            dump_events(&mut log, agent)?;
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
    Ok(())
}

/// What the failed test's agent recorded (the newest work dir under target/integration), as
/// the guest's init does: the last 40 events, as JSON lines.
fn dump_events(log: &mut fs::File, agent: &Path) -> Result<()> {
    let base = workspace_root().join("target/integration");
    let newest = fs::read_dir(&base)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max();
    let Some((_, dir)) = newest else {
        return Ok(());
    };
    let out = Command::new(agent)
        .arg("export")
        .arg(dir.join("events.jsonl"))
        .stderr(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[lines.len().saturating_sub(40)..] {
        writeln!(log, "ESCAPEWATCH-VM-EVENT: {line}")?;
    }
    Ok(())
}

/// The agent's lines saying which program attached to which hook: one start, stopped when
/// ready (what the guest's init does). Holds the integration tests' machine-wide lock like
/// every test agent.
fn host_hook_lines(agent: &Path, disable_hooks: &str) -> Result<Vec<String>> {
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
    let stderr_path = dir.join("stderr");
    let logs = [dir.join("events.jsonl"), dir.join("alerts.jsonl")];
    let mut child = Command::new(agent)
        .args(["run", "--metrics-addr", "127.0.0.1:0", "--event-log"])
        .args([&logs[0]])
        .arg("--alert-log")
        .args([&logs[1]])
        .envs([
            ("RUST_LOG", "info"),
            ("NO_COLOR", "1"),
            ("ESCAPEWATCH_DISABLE_HOOKS", disable_hooks),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr_path)?)
        .spawn()
        .with_context(|| format!("start {}", agent.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut text = String::new();
    while Instant::now() < deadline && !text.contains("escapewatch is ready") {
        if child.try_wait()?.is_some() {
            break;
        }
        thread::sleep(Duration::from_millis(100));
        text = fs::read_to_string(&stderr_path).unwrap_or_default();
    }
    // SAFETY: kill on the pid of the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    drop(lock);
    if !text.contains("escapewatch is ready") {
        bail!("the agent did not get ready on the host:\n{text}");
    }
    Ok(text
        .lines()
        .filter(|l| l.contains("attach") || l.contains("served by"))
        .map(str::to_owned)
        .collect())
}
