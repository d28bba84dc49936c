//! `cargo xtask setup`: install what the build and the tests need, idempotently.

use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::{run, workspace_root};

/// Debian packages: LLVM 22 for bpf-linker, runc + busybox for real containers, bpftool to
/// cross-check BTF offsets.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "libxml2-dev",
    "runc",
    "busybox-static",
    "bpftool",
    // cargo xtask vm-test boots Debian kernels under QEMU (7.2 replaces a newer qemu-utils).
    "qemu-system-x86",
    // Renders the HTML timeline headless in the tests.
    "chromium",
    // promtool for the alert rules, prometheus for the end-to-end alert test.
    "prometheus",
    // redis-server + redis-benchmark: the realistic load of `cargo xtask bench`.
    "redis-server",
    // Real runtimes for tests/tests/runtimes.rs: the tests start their own dockerd and
    // containerd (own sockets and state) and stop them; nothing here starts them.
    "docker.io",
    "containerd",
    // podman: the tests run its API service (`podman system service`) on their own socket and
    // storage, and stop it.
    "podman",
];

const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPF_LINKER_VERSION: &str = "0.13.0";

/// The pinned eBPF nightly, from `[workspace.metadata.escapewatch] ebpf-toolchain`.
pub fn ebpf_toolchain() -> Result<String> {
    let meta = cargo_metadata::MetadataCommand::new()
        .current_dir(workspace_root())
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    meta.workspace_metadata
        .get("escapewatch")
        .and_then(|m| m.get("ebpf-toolchain"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("Cargo.toml lacks [workspace.metadata.escapewatch] ebpf-toolchain"))
}

fn quiet_ok(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn apt_missing() -> Vec<&'static str> {
    APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_none_or(|s| !s.contains("install ok installed"))
        })
        .collect()
}

fn setup_apt() -> Result<()> {
    let missing = apt_missing();
    if missing.is_empty() {
        return Ok(());
    }
    println!("xtask setup: installing {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-q"]))
        .context("apt-get update (setup needs root on a fresh machine)")?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn setup_toolchain(toolchain: &str) -> Result<()> {
    let has_src = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        toolchain,
    ]))
    .is_some_and(|s| s.lines().any(|l| l.starts_with("rust-src")));
    if has_src {
        return Ok(());
    }
    println!("xtask setup: installing toolchain {toolchain} with rust-src");
    run(Command::new("rustup").args([
        "toolchain",
        "install",
        toolchain,
        "--component",
        "rust-src",
        "--profile",
        "minimal",
    ]))
}

fn setup_bpf_linker() -> Result<()> {
    let version = output(Command::new("bpf-linker").arg("--version"));
    if version
        .as_deref()
        .is_some_and(|v| v.contains(BPF_LINKER_VERSION))
    {
        return Ok(());
    }
    println!(
        "xtask setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (a few minutes)"
    );
    run(Command::new("cargo")
        .args([
            "install",
            "--locked",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
            "llvm-22",
            "--force",
        ])
        .env("LLVM_PREFIX", LLVM_PREFIX)
        .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX)
        .env_remove("RUSTUP_TOOLCHAIN"))
}

/// cargo-deb packages the agent (3.x builds with the workspace's Rust 1.95).
const CARGO_DEB_VERSION: &str = "3.8.0";

fn setup_cargo_deb() -> Result<()> {
    if output(Command::new("cargo").args(["deb", "--version"]))
        .is_some_and(|v| v.contains(CARGO_DEB_VERSION))
    {
        return Ok(());
    }
    println!("xtask setup: installing cargo-deb {CARGO_DEB_VERSION}");
    run(Command::new("cargo")
        .args([
            "install",
            "--locked",
            "cargo-deb",
            "--version",
            CARGO_DEB_VERSION,
        ])
        .env_remove("RUSTUP_TOOLCHAIN"))
}

pub fn setup() -> Result<()> {
    if !quiet_ok(Command::new("rustup").arg("--version")) {
        bail!("rustup is required (https://rustup.rs)");
    }
    setup_apt()?;
    let toolchain = ebpf_toolchain()?;
    setup_toolchain(&toolchain)?;
    setup_bpf_linker()?;
    setup_cargo_deb()?;
    Ok(())
}

/// Clippy over the eBPF crate for the BPF target, with the pinned nightly.
pub fn clippy_ebpf() -> Result<()> {
    let toolchain = ebpf_toolchain()?;
    // clippy is not in the minimal profile.
    let has_clippy = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        &toolchain,
    ]))
    .is_some_and(|s| s.lines().any(|l| l.starts_with("clippy")));
    if !has_clippy {
        run(Command::new("rustup").args([
            "component",
            "add",
            "clippy",
            "--toolchain",
            &toolchain,
        ]))?;
    }
    run(Command::new("rustup")
        .args(["run", &toolchain, "cargo", "clippy"])
        .args([
            "--package",
            "escapewatch-ebpf",
            "--bins",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--target-dir",
            "target/ebpf-clippy",
            "--",
            "-D",
            "warnings",
        ])
        .env("CARGO_CFG_BPF_TARGET_ARCH", "x86_64")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "--cfg=bpf_target_arch=\"x86_64\"",
        )
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC"))
}
