//! Running one row of the matrix: a guest kernel under QEMU, or the host natively. Both write
//! the same console protocol (see init.sh) to target/vm/<kernel>/console.log.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{Kernel, Outcome, TestCase, guest_timeout, initramfs, vm_dir};
use crate::{run, workspace_root};

const QEMU: &str = "qemu-system-x86_64";
/// BPF LSM is not in the Debian kernels' default `lsm=` list.
const CMDLINE: &str = "console=ttyS0 lsm=lockdown,capability,landlock,yama,bpf panic=-1 loglevel=4";

fn require_qemu() -> Result<()> {
    let ok = Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!("{QEMU} is missing: vm-test needs it (cargo xtask setup installs qemu-system-x86)");
    }
    Ok(())
}

/// The kernel image of `package`, downloaded and unpacked into target/vm/kernels once.
fn fetch_kernel(package: &str) -> Result<PathBuf> {
    let dir = vm_dir().join("kernels").join(package);
    if let Some(image) = find_vmlinuz(&dir) {
        return Ok(image);
    }
    let debs = vm_dir().join("kernels/debs");
    fs::create_dir_all(&debs)?;
    let download = || {
        Command::new("apt-get")
            .args(["download", "-q", package])
            .current_dir(&debs)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !download() {
        // The package lists may be older than the pin, or missing on a fresh machine.
        run(Command::new("apt-get").args(["update", "-q"]))?;
        if !download() {
            bail!(
                "cannot fetch kernel package {package} with `apt-get download` (pinned in xtask/src/vm.rs KERNELS; `apt-cache search linux-image-` lists what apt offers)"
            );
        }
    }
    let deb = fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
        })
        .with_context(|| format!("apt-get download left no {package}_*.deb"))?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    find_vmlinuz(&dir).with_context(|| format!("{} has no boot/vmlinuz-*", deb.display()))
}

fn find_vmlinuz(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir.join("boot"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
}

fn env_file(agent: &Path, primitives: &Path, kernel: &Kernel) -> String {
    format!(
        "export ESCAPEWATCH_BIN='{}' ESCAPEWATCH_PRIMITIVES='{}' ESCAPEWATCH_EXPECT_HOOKS='{}' \
         ESCAPEWATCH_DISABLE_HOOKS='{}' ESCAPEWATCH_VM_WORK='{}' RUST_BACKTRACE=1\n",
        agent.display(),
        primitives.display(),
        kernel.expect_hooks,
        kernel.disable_hooks,
        integration_dir().display(),
    )
}

/// The tests' work dirs: they find them through CARGO_MANIFEST_DIR (…/tests/../target).
fn integration_dir() -> PathBuf {
    workspace_root().join("target/integration")
}

fn tests_file(tests: &[TestCase]) -> String {
    tests
        .iter()
        .map(|t| format!("{} {}\n", t.binary, t.name))
        .collect()
}

/// A guest ready to boot: its kernel image and its initramfs.
pub struct Boot {
    image: PathBuf,
    initrd: PathBuf,
}

/// Fetch each guest's kernel and build its initramfs (one staged tree, packed per kernel).
pub fn prepare(
    guests: &[(&'static Kernel, &[TestCase])],
    binaries: &BTreeMap<&str, &Path>,
    agent: &Path,
    primitives: &Path,
) -> Result<Vec<Boot>> {
    require_qemu()?;
    let mut images = Vec::new();
    for (k, _) in guests {
        images.push(fetch_kernel(k.package.expect("a guest kernel"))?);
    }
    let mut contents = initramfs::Contents {
        binaries: vec![
            (agent.to_owned(), agent.to_owned()),
            (primitives.to_owned(), primitives.to_owned()),
            (which("runc")?, PathBuf::from("/usr/sbin/runc")),
            // postconditions.rs names the bounding set's capabilities with it.
            (which("capsh")?, PathBuf::from("/usr/sbin/capsh")),
        ],
        dirs: Vec::new(),
    };
    for (name, exe) in binaries {
        contents
            .binaries
            .push((exe.to_path_buf(), Path::new("/vm/bin").join(name)));
    }
    let tests_dir = workspace_root().join("tests");
    let integration_dir = integration_dir();
    contents.dirs = vec![&tests_dir, &integration_dir];
    let root = vm_dir().join("initramfs");
    println!(
        "xtask vm-test: building the guest initramfs in {}",
        root.display()
    );
    initramfs::stage(&root, &contents)?;
    let mut boots = Vec::new();
    for ((k, tests), image) in guests.iter().zip(images) {
        let dir = vm_dir().join(k.name);
        fs::create_dir_all(&dir)?;
        let initrd = dir.join("initramfs.cpio");
        initramfs::pack(
            &root,
            &[
                ("env", env_file(agent, primitives, k)),
                ("tests.txt", tests_file(tests)),
            ],
            &initrd,
        )?;
        boots.push(Boot { image, initrd });
    }
    Ok(boots)
}

fn which(name: &str) -> Result<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if path.is_empty() {
        bail!("{name} is not on PATH (cargo xtask setup installs it)");
    }
    Ok(PathBuf::from(path))
}

/// Boot the guest and wait until it powers off (or the timeout); what it reported is in its
/// console log.
pub fn boot(kernel: &'static Kernel, tests: &[TestCase], boot: &Boot) -> Outcome {
    let dir = vm_dir().join(kernel.name);
    let log = dir.join("console.log");
    let start = Instant::now();
    let problem = boot_and_wait(&boot.image, &boot.initrd, &log)
        .err()
        .map(|e| format!("{e:#}"));
    let elapsed = start.elapsed();
    println!(
        "xtask vm-test: kernel {} finished in {:.0} s{}",
        kernel.name,
        elapsed.as_secs_f64(),
        problem
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default()
    );
    Outcome {
        kernel,
        tests: tests.to_vec(),
        log,
        elapsed,
        problem,
    }
}

fn boot_and_wait(image: &Path, initrd: &Path, log: &Path) -> Result<()> {
    let console = fs::File::create(log)?;
    let stderr = fs::File::create(log.with_file_name("qemu.stderr"))?;
    let mut qemu = Command::new(QEMU)
        .args([
            "-accel",
            "tcg",
            "-smp",
            "1",
            "-m",
            "2048",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(image)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", CMDLINE])
        .stdin(Stdio::null())
        .stdout(console)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("start {QEMU}"))?;
    println!(
        "xtask vm-test: booted {} (console: {})",
        image.display(),
        log.display()
    );
    let deadline = Instant::now() + guest_timeout();
    loop {
        if let Some(status) = qemu.try_wait()? {
            if !status.success() {
                bail!("{QEMU} exited with {status}");
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = qemu.kill();
            let _ = qemu.wait();
            bail!(
                "the guest did not power off within {} s (ESCAPEWATCH_VM_TIMEOUT_SECS)",
                guest_timeout().as_secs()
            );
        }
        thread::sleep(Duration::from_millis(500));
    }
}
