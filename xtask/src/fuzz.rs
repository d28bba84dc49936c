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

pub const TARGETS: [&str; 5] = ["event_line", "kernel_record", "config", "btf", "binary_log"];

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

/// Seed the line decoder with real log lines, the config parser with the shipped config and
/// the BTF reader with a small valid blob; the record decoder starts empty.
fn seed(target: &str) -> Result<std::path::PathBuf> {
    let root = workspace_root();
    let dir = root.join("target/fuzz-corpus").join(target);
    fs::create_dir_all(&dir)?;
    if target == "config" {
        fs::copy(
            root.join("deploy/config/config.toml"),
            dir.join("shipped-config.toml"),
        )?;
    }
    if target == "btf" {
        fs::write(dir.join("task_struct.btf"), small_btf())?;
    }
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

/// BTF with an int, `struct task_struct { int pid; int tgid; }` and a typedef of it (the
/// vmlinux BTF is megabytes, over the input size limit): the fuzzer starts from a blob the
/// parser accepts instead of having to find the magic and the section layout.
fn small_btf() -> Vec<u8> {
    let strings = b"\0int\0task_struct\0pid\0tgid\0task_t\0";
    let words: [u32; 15] = [
        1,
        1 << 24,
        4,
        32, // [1] int, 4 bytes, 32 bits
        5,
        (4 << 24) | 2,
        8, // [2] struct task_struct, 2 members, 8 bytes
        17,
        1,
        0, // pid: int at bit 0
        21,
        1,
        32, // tgid: int at bit 32
        26,
        8 << 24, // [3] typedef task_t → 2 (its type follows)
    ];
    let mut types: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    types.extend(2u32.to_le_bytes());
    let mut out = vec![0x9f, 0xeb, 1, 0];
    let (tl, sl) = (types.len() as u32, strings.len() as u32);
    for w in [24, 0, tl, tl, sl] {
        out.extend(w.to_le_bytes());
    }
    out.extend(types);
    out.extend(strings);
    out
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
