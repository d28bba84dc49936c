//! Builds the eBPF object (package `escapewatch-ebpf`) with the pinned nightly and embeds it.
//!
//! The nightly is pinned once, in the workspace Cargo.toml (`[workspace.metadata.escapewatch]
//! ebpf-toolchain`); `cargo xtask setup` installs exactly that toolchain and bpf-linker.

use anyhow::{Context as _, anyhow};
use cargo_metadata::MetadataCommand;

fn main() -> anyhow::Result<()> {
    let metadata = MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let toolchain = metadata
        .workspace_metadata
        .get("escapewatch")
        .and_then(|m| m.get("ebpf-toolchain"))
        .and_then(|t| t.as_str())
        .ok_or_else(|| {
            anyhow!("workspace Cargo.toml lacks [workspace.metadata.escapewatch] ebpf-toolchain")
        })?
        .to_owned();
    let ebpf = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "escapewatch-ebpf")
        .ok_or_else(|| anyhow!("package escapewatch-ebpf not in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("escapewatch-ebpf manifest has no parent directory"))?
        .as_str()
        .to_owned();
    println!("cargo:rerun-if-changed=../common/src");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "escapewatch-ebpf",
            root_dir: &root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
    .with_context(|| {
        format!(
            "building the eBPF object with toolchain {toolchain} failed; run `cargo xtask setup` to install it and bpf-linker"
        )
    })
}
