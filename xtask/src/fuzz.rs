//! `cargo xtask fuzz`: run each cargo-fuzz target for a bounded time; a crash fails the task.
//!
//! libFuzzer needs the nightly: the eBPF pin (`[workspace.metadata.escapewatch]
//! ebpf-toolchain`) is used, so CI installs no second nightly. The corpus lives in
//! target/fuzz-corpus (seeded from tests/fixtures), so runs build on each other.

use std::{
    fs,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{setup, workspace_root};

pub const TARGETS: [&str; 2] = ["event_line", "kernel_record"];

fn ensure_cargo_fuzz() -> Result<()> {
    let ok = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("xtask fuzz: installing cargo-fuzz");
        crate::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// Seed the line decoder with real log lines; the record decoder starts empty.
fn seed(target: &str) -> Result<std::path::PathBuf> {
    let root = workspace_root();
    let dir = root.join("target/fuzz-corpus").join(target);
    fs::create_dir_all(&dir)?;
    if target == "event_line" {
        for entry in fs::read_dir(root.join("tests/fixtures"))?.flatten() {
            let text = fs::read_to_string(entry.path()).unwrap_or_default();
            for (i, line) in text.lines().take(8).enumerate() {
                let name = format!("{}-{i}", entry.file_name().to_string_lossy());
                fs::write(dir.join(name), line)?;
            }
        }
    }
    Ok(dir)
}

/// Run every target for `seconds`; returns (target, executions).
pub fn run(seconds: u64) -> Result<Vec<(String, u64)>> {
    ensure_cargo_fuzz()?;
    let toolchain = setup::ebpf_toolchain()?;
    let fuzz_dir = workspace_root().join("fuzz");
    let mut results = Vec::new();
    for target in TARGETS {
        let corpus = seed(target)?;
        let out = Command::new("cargo")
            .arg(format!("+{toolchain}"))
            .args(["fuzz", "run", "-O", target])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-max_len=65536",
                "-print_final_stats=1",
            ])
            .current_dir(&fuzz_dir)
            .env_remove("RUSTUP_TOOLCHAIN")
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("cannot start cargo fuzz run {target}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            eprintln!("{stderr}");
            bail!(
                "fuzz target {target} failed ({}): a crash input is in fuzz/artifacts/{target}/",
                out.status
            );
        }
        // libFuzzer's final stats: "stat::number_of_executed_units: N".
        let execs = stderr
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        println!("xtask fuzz: {target}: {execs} executions in {seconds} s, no crash");
        results.push((target.to_owned(), execs));
    }
    Ok(results)
}
