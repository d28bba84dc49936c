//! The guest's initramfs: busybox-static with its applets, runc, capsh, the agent, the primitives
//! binary and the stripped test binaries (with the shared libraries `ldd` names), the /init
//! script, and per kernel the tests to run and the environment they get.

use std::{
    collections::BTreeSet,
    fs,
    io::Write as _,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::run;

const BUSYBOX: &str = "/bin/busybox";
const INIT: &str = include_str!("init.sh");

/// What goes into every guest, at the paths given (absolute paths inside the guest).
pub struct Contents<'a> {
    /// (host binary, guest path): copied, stripped, and their libraries added.
    pub binaries: Vec<(PathBuf, PathBuf)>,
    /// Directories the tests need to exist (CARGO_MANIFEST_DIR compiled into them).
    pub dirs: Vec<&'a Path>,
}

/// Fill `root` (emptied first) with everything the guests share.
pub fn stage(root: &Path, contents: &Contents) -> Result<()> {
    if root.exists() {
        fs::remove_dir_all(root).with_context(|| format!("remove {}", root.display()))?;
    }
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "vm",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    // The console must exist before devtmpfs is mounted, or /init has no stdout.
    run(Command::new("mknod")
        .arg(root.join("dev/console"))
        .args(["c", "5", "1"]))?;
    copy(Path::new(BUSYBOX), &root.join("bin/busybox"))?;
    let list = Command::new(BUSYBOX).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            symlink("busybox", root.join("bin").join(applet))?;
        }
    }
    write_exec(&root.join("init"), INIT)?;
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    fs::write(root.join("etc/group"), "root:x:0:\n")?;
    // A host file the proc-root scenario reads through /proc/PID/root.
    fs::write(root.join("etc/hostname"), "escapewatch-vm\n")?;
    let mut libs = BTreeSet::new();
    for (host, guest) in &contents.binaries {
        let dst = under(root, guest);
        fs::create_dir_all(dst.parent().expect("a file path"))?;
        strip(host, &dst)?;
        libs.extend(shared_libs(host)?);
    }
    for lib in libs {
        copy(&lib, &under(root, &lib))?;
    }
    for d in &contents.dirs {
        fs::create_dir_all(under(root, d))?;
    }
    Ok(())
}

/// Write the per-kernel files into the staged root and pack it as a newc cpio archive.
pub fn pack(root: &Path, per_kernel: &[(&str, String)], out: &Path) -> Result<()> {
    for (name, text) in per_kernel {
        fs::write(root.join("vm").join(name), text)?;
    }
    let mut names = Vec::new();
    list(root, Path::new("."), &mut names)?;
    let file = fs::File::create(out).with_context(|| format!("create {}", out.display()))?;
    let mut cpio = Command::new(BUSYBOX)
        .args(["cpio", "-o", "-H", "newc"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .context("busybox cpio")?;
    let mut stdin = cpio.stdin.take().expect("piped");
    for n in &names {
        writeln!(stdin, "{}", n.display())?;
    }
    drop(stdin);
    let status = cpio.wait()?;
    if !status.success() {
        bail!(
            "busybox cpio -o failed with {status} packing {}",
            root.display()
        );
    }
    Ok(())
}

fn list(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let path = rel.join(entry.file_name());
        out.push(path.clone());
        if entry.file_type()?.is_dir() {
            list(root, &path, out)?;
        }
    }
    Ok(())
}

/// `guest` (absolute) inside `root`.
fn under(root: &Path, guest: &Path) -> PathBuf {
    root.join(guest.strip_prefix("/").unwrap_or(guest))
}

fn copy(src: &Path, dst: &Path) -> Result<()> {
    fs::create_dir_all(dst.parent().expect("a file path"))?;
    fs::copy(src, dst).with_context(|| format!("copy {} to {}", src.display(), dst.display()))?;
    Ok(())
}

fn write_exec(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Test binaries carry hundreds of MB of debuginfo; the guest holds everything in RAM.
fn strip(src: &Path, dst: &Path) -> Result<()> {
    if fs::metadata(src)?.file_type().is_file() {
        run(Command::new("strip").arg("-o").arg(dst).arg(src))
            .with_context(|| format!("strip {}", src.display()))
    } else {
        bail!("{} is not a file", src.display())
    }
}

/// The shared libraries (and the dynamic loader) a binary needs, from `ldd`; none for a static one.
fn shared_libs(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(bin).output().context("ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let libs = text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => l,
            };
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .filter(|p| p.is_file())
        .collect();
    Ok(libs)
}
