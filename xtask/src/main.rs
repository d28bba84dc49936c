//! Developer and CI tasks: `cargo xtask setup|build|run|test`.
//!
//! Every task that needs the toolchain runs `setup` first; it is idempotent and quick when
//! everything is already installed, so the README's two commands work on a fresh Debian machine.

mod bench;
mod bench_replay;
mod deploy;
mod fuzz;
mod setup;
mod vm;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "escapewatch development tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (apt packages, the pinned eBPF nightly with
    /// rust-src, bpf-linker against LLVM 22). Idempotent.
    Setup,
    /// Build the agent (eBPF object embedded) at target/release/escapewatch.
    Build,
    /// Set up, build and run the agent in the foreground (as root); extra arguments go to
    /// `escapewatch run`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Check deploy/ (promtool rules and tests, DaemonSet, dashboard); with --deb also build
    /// the .deb, install it, run and verify what it installed, and purge it (root).
    Deploy {
        #[arg(long)]
        deb: bool,
    },
    /// Run each cargo-fuzz target (event-log line decoder, kernel record decoder, config
    /// parser, BTF reader) for a bounded time with the pinned nightly; a crash fails.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Boot the pinned Debian kernels under QEMU and run the privileged scenarios in each, plus
    /// the same tests natively on the running kernel (`host`); results in target/vm/results.md.
    VmTest {
        /// Only these kernels (6.1, 6.12, host); all when absent. Repeatable.
        #[arg(long = "kernel")]
        kernels: Vec<String>,
        /// Only the selected tests whose name contains this (repeatable): a quick check of one
        /// change on every kernel. The full matrix when absent.
        #[arg(long = "only")]
        only: Vec<String>,
    },
    /// Measure the overhead budget, the no-loss throughput, latency, memory and replay speed
    /// (as root) and write the table to BENCHMARKS.md; --smoke: small and quick, for CI (no
    /// thresholds, writes target/bench/BENCHMARKS.md).
    Bench {
        #[arg(long, conflicts_with = "scale")]
        smoke: bool,
        /// Shrink every phase by this factor, in (0, 1] (0.1: about a minute, for
        /// development); below 1 the report goes to target/bench/BENCHMARKS.md.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
    },
    /// Set up, then run everything CI runs: fmt, clippy (host and BPF target), unit tests and the
    /// privileged integration tests (real eBPF, real runc containers; needs root).
    Test {
        /// Only the integration tests whose name contains this (vm-test is then left out).
        #[arg(long)]
        filter: Option<String>,
    },
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Run a command in the workspace root, failing with its command line if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    cmd.current_dir(workspace_root());
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // The eBPF build runs its own cargo with the pinned nightly; never let an outer toolchain
    // override leak into the host build.
    c.env_remove("RUSTUP_TOOLCHAIN");
    c
}

fn build() -> Result<PathBuf> {
    run(cargo().args(["build", "--release", "--package", "escapewatch"]))?;
    let bin = workspace_root().join("target/release/escapewatch");
    println!("xtask: built {}", bin.display());
    Ok(bin)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The escape primitives the integration tests run inside busybox containers: a static binary
/// (no libc in the container). An explicit --target keeps these RUSTFLAGS away from the host
/// build's artifacts.
fn build_primitives() -> Result<PathBuf> {
    const TARGET: &str = "x86_64-unknown-linux-gnu";
    run(cargo()
        .args([
            "build",
            "--release",
            "--package",
            "escapewatch-integration",
            "--bin",
            "primitives",
            "--target",
            TARGET,
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static"))?;
    Ok(workspace_root()
        .join("target")
        .join(TARGET)
        .join("release/primitives"))
}

fn test(filter: Option<String>) -> Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    setup::clippy_ebpf()?;
    // Unit tests, including the #[ignore]d ones that need root (CI runs as root).
    let mut unit = cargo();
    unit.args([
        "test",
        "--workspace",
        "--exclude",
        "escapewatch-integration",
        "--",
    ]);
    if is_root() {
        unit.arg("--include-ignored");
    } else {
        println!("xtask: not root: unit tests that need root are left out");
    }
    run(&mut unit)?;
    // Both decoders of untrusted input under libFuzzer for a bounded time (a crash fails).
    let fuzz_seconds = std::env::var("ESCAPEWATCH_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    fuzz::run(fuzz_seconds)?;
    deploy::check()?;
    if !is_root() {
        bail!(
            "the privileged integration tests load eBPF programs and start runc containers: run `cargo xtask test` as root"
        );
    }
    let bin = build()?;
    deploy::deb()?;
    let primitives = build_primitives()?;
    let mut it = cargo();
    it.args(["test", "--release", "--package", "escapewatch-integration"])
        .env("ESCAPEWATCH_BIN", &bin)
        .env("ESCAPEWATCH_PRIMITIVES", &primitives)
        .arg("--");
    let filter_given = filter.is_some();
    if let Some(f) = filter {
        it.arg(f);
    }
    // One agent at a time: every agent sees the whole machine, and the "no alert" scenarios
    // must not see another test's escape.
    it.arg("--test-threads=1");
    run(&mut it)?;
    if filter_given {
        println!("xtask: --filter given: the QEMU kernel matrix (cargo xtask vm-test) is left out");
        return Ok(());
    }
    // `cargo xtask bench --smoke`: every benchmark phase once, small (no thresholds).
    bench::run(&bin, true, 1.0)?;
    vm::vm_test(&[], &[], &bin, &primitives)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Setup => setup::setup(),
        Task::Build => {
            setup::setup()?;
            build().map(drop)
        }
        Task::Run { args } => {
            setup::setup()?;
            let bin = build()?;
            run(Command::new(bin).arg("run").args(args))
        }
        Task::Deploy { deb } => {
            setup::setup()?;
            deploy::check()?;
            if deb {
                build()?;
                deploy::deb()?;
            }
            Ok(())
        }
        Task::Fuzz { seconds } => fuzz::run(seconds).map(drop),
        Task::Bench { smoke, scale } => {
            setup::setup()?;
            let bin = build()?;
            bench::run(&bin, smoke, scale)
        }
        Task::VmTest { kernels, only } => {
            setup::setup()?;
            let bin = build()?;
            let primitives = build_primitives()?;
            vm::vm_test(&kernels, &only, &bin, &primitives)
        }
        Task::Test { filter } => {
            setup::setup()?;
            test(filter)
        }
    }
}
