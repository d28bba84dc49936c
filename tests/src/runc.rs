//! Real OCI containers for the integration tests, driven through the `runc` CLI the way an
//! operator would: a busybox-static rootfs, `runc spec`, edits to config.json, `runc run`.
//!
//! Needs `runc` on PATH and Debian's busybox-static (`apt-get install -y runc busybox-static`).
//! Everything except the spec editing needs root. A [`Container`] is an RAII guard: dropping it,
//! also while a failed assertion unwinds, kills and deletes the container, removes the cgroup
//! parents runc created for it (`runc delete` removes only the leaf) and the bundle directory.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// All bundles live here, so debris of a killed test run is found in one place.
pub const BASE_DIR: &str = "/tmp/escapewatch-tests";
/// Debian's busybox-static: a static binary needs no libraries in the rootfs.
const BUSYBOX: &str = "/bin/busybox";

static COUNTER: AtomicU32 = AtomicU32::new(0);
/// Cgroup directories that did not exist before one of our containers started, i.e. runc made
/// them (`/sys/fs/cgroup/*/docker` for a `/docker/<hex>` cgroupsPath).
static CREATED_PARENTS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// 64 lowercase hex digits, like a Docker container id.
pub fn random_hex64() -> String {
    let mut buf = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("reading /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A container id unique on this machine: pid and counter separate concurrent tests, the random
/// tail separates us from a stale container a killed earlier run with the same pid left behind.
pub fn unique_id(prefix: &str) -> String {
    let (pid, n) = (std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{prefix}-{pid}-{n}-{}", &random_hex64()[..8])
}

/// Runs runc to completion, with stdout and stderr into `log` if given (see `run_detached`).
/// With `strict` any non-zero status is an error; otherwise (run and exec, whose status is the
/// container command's) only runc's own failures, which it logs as `level=error`.
/// Errors carry the command line and runc's stderr.
fn runc(args: &[&str], strict: bool, log: Option<&Path>) -> Result<Output> {
    let line = cmdline(args);
    let mut cmd = Command::new("runc");
    cmd.args(args).stdin(Stdio::null());
    if let Some(log) = log {
        let file = File::create(log)?;
        cmd.stdout(file.try_clone()?).stderr(file);
    }
    let out = cmd.output().with_context(|| format!("spawning `{line}`"))?;
    let stderr = match log {
        Some(log) => fs::read_to_string(log).unwrap_or_default(),
        None => String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if !out.status.success() && (strict || stderr.contains("level=error")) {
        bail!("`{line}` failed ({}): {}", out.status, stderr.trim());
    }
    Ok(out)
}

/// `runc` and its arguments as a shell would need them, for error messages.
fn cmdline(args: &[&str]) -> String {
    let mut line = String::from("runc");
    for a in args {
        let special = a.is_empty() || a.contains([' ', '"', '\'', '$', ';', '>']);
        line += &if special {
            format!(" {a:?}")
        } else {
            format!(" {a}")
        };
    }
    line
}

/// The array at `v`, made one if the spec lacks it.
fn array(v: &mut Value) -> &mut Vec<Value> {
    if !v.is_array() {
        *v = json!([]);
    }
    v.as_array_mut().expect("just made an array")
}

/// An OCI bundle (rootfs + config.json) whose spec is edited in memory and written at run time.
pub struct Bundle {
    dir: PathBuf,
    spec: Value,
}

impl Bundle {
    /// A bundle under [`BASE_DIR`] with busybox and all its applets in /bin and the spec that
    /// `runc spec` writes, with `terminal: false` (no console socket needed) and `sleep` as args.
    pub fn busybox(name: &str) -> Result<Bundle> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = Path::new(BASE_DIR).join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir); // left by a killed run that had our pid
        let mut bundle = Bundle {
            dir,
            spec: Value::Null,
        }; // from here Drop cleans up
        let bin = bundle.rootfs().join("bin");
        for d in ["bin", "dev", "etc", "proc", "sys", "tmp", "root", "mnt"] {
            fs::create_dir_all(bundle.rootfs().join(d))?;
        }
        fs::copy(BUSYBOX, bin.join("busybox")).with_context(|| format!("copying {BUSYBOX}"))?;
        // Listing the applets needs no chroot, unlike `busybox --install`.
        let list = Command::new(BUSYBOX).arg("--list").output()?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                symlink("busybox", bin.join(applet))?;
            }
        }
        let dir = bundle.dir.to_string_lossy().into_owned();
        runc(&["spec", "--bundle", &dir], true, None)?;
        let text = fs::read_to_string(bundle.dir.join("config.json"))?;
        bundle.spec = serde_json::from_str(&text).context("parsing the `runc spec` output")?;
        bundle.spec["process"]["terminal"] = false.into();
        Ok(bundle.args(&["sleep", "1000000"]))
    }

    /// Put extra files here (e.g. a static test binary) before running.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn config(&self) -> &Value {
        &self.spec
    }

    /// For edits without a helper; written to config.json at run time.
    pub fn config_mut(&mut self) -> &mut Value {
        &mut self.spec
    }

    /// Drops an OCI namespace type (`pid`, `network`, `ipc`, `uts`) from `linux.namespaces`, so
    /// the container shares the host's. Not `mount`: runc refuses that while paths are masked,
    /// and without them it would mount into the host's mount table.
    pub fn share_host_namespace(mut self, kind: &str) -> Self {
        array(&mut self.spec["linux"]["namespaces"]).retain(|ns| ns["type"] != kind);
        self
    }

    /// Like `docker run --cap-add`: bounding, effective and permitted. That is enough for the
    /// main process and `runc exec` (root keeps permitted across execve); ambient would also
    /// need inheritable and stays as runc wrote it. "SYS_ADMIN" means "CAP_SYS_ADMIN".
    pub fn add_capabilities(mut self, caps: &[&str]) -> Self {
        for set in ["bounding", "effective", "permitted"] {
            let list = array(&mut self.spec["process"]["capabilities"][set]);
            for cap in caps {
                let cap = format!("CAP_{}", cap.trim_start_matches("CAP_"));
                if !list.iter().any(|c| *c == *cap) {
                    list.push(cap.into());
                }
            }
        }
        self
    }

    /// `linux.cgroupsPath`, e.g. `/docker/<64 hex>` as Docker's cgroupfs driver sets it.
    pub fn cgroups_path(mut self, path: &str) -> Self {
        self.spec["linux"]["cgroupsPath"] = path.into();
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.spec["process"]["args"] = json!(args);
        self
    }

    /// Sets (or replaces) one environment variable of the container process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        let prefix = format!("{key}=");
        let env = array(&mut self.spec["process"]["env"]);
        env.retain(|e| !e.as_str().is_some_and(|e| e.starts_with(&prefix)));
        env.push(format!("{prefix}{value}").into());
        self
    }

    /// Empties maskedPaths and readonlyPaths (`--security-opt systempaths=unconfined`).
    pub fn unmask_paths(mut self) -> Self {
        self.spec["linux"]["maskedPaths"] = json!([]);
        self.spec["linux"]["readonlyPaths"] = json!([]);
        self
    }

    /// Takes /proc/sys off readonlyPaths; a sysctl write still needs the capability the kernel
    /// asks for (CAP_SYS_ADMIN for kernel.*, CAP_NET_ADMIN for net.*).
    pub fn writable_proc_sys(mut self) -> Self {
        array(&mut self.spec["linux"]["readonlyPaths"]).retain(|p| p != "/proc/sys");
        self
    }

    /// runc's default spec mounts the rootfs read-only.
    pub fn writable_rootfs(mut self) -> Self {
        self.spec["root"]["readonly"] = false.into();
        self
    }

    /// Bind-mounts a host path; runc creates the mount point in the rootfs.
    pub fn bind_mount(mut self, host: impl AsRef<Path>, container: &str, rw: bool) -> Self {
        array(&mut self.spec["mounts"]).push(json!({
            "destination": container,
            "type": "bind",
            "source": host.as_ref().to_string_lossy(),
            "options": ["rbind", if rw { "rw" } else { "ro" }],
        }));
        self
    }

    fn write_config(&self) -> Result<()> {
        let text = serde_json::to_vec_pretty(&self.spec)?;
        fs::write(self.dir.join("config.json"), text).context("writing config.json")
    }

    /// `runc run -d`: returns once the main process runs (about 30 ms here).
    pub fn run_detached(self, id: &str) -> Result<Container> {
        self.write_config()?;
        let dir = self.dir.to_string_lossy().into_owned();
        let log = self.dir.join("container.log");
        let lock = CgroupLock::take(libc::LOCK_SH)?;
        let mut ct = Container::guard(self, id); // a half-started container is cleaned up too
        // runc -d hands its own stdio to the container's init, so a pipe would not reach EOF
        // before the container ends; a file also catches runc's error messages.
        let started = runc(&["run", "-d", "--bundle", &dir, id], true, Some(&log));
        drop(lock); // before `ct` can drop: its cleanup takes the lock exclusively
        started?;
        let state: Value = serde_json::from_slice(&runc(&["state", id], true, None)?.stdout)?;
        ct.pid = state["pid"].as_u64().context("`runc state` without pid")? as u32;
        Ok(ct)
    }

    /// `runc run` in the foreground: waits for the container to exit, then deletes it.
    /// The Output's status is the container command's; only runc's own failures are errors.
    pub fn run_foreground(self, id: &str) -> Result<Output> {
        self.write_config()?;
        let dir = self.dir.to_string_lossy().into_owned();
        let lock = CgroupLock::take(libc::LOCK_SH)?;
        let ct = Container::guard(self, id);
        // In the foreground runc exits with the container, so capturing through pipes works.
        let out = runc(&["run", "--bundle", &dir, id], false, None);
        drop(lock);
        ct.delete()?;
        out
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        // A bind mount that reached the host's mount table would make remove_dir_all delete
        // the host files behind it; better leave the directory.
        if let Some(m) = mounts_under(&self.dir) {
            eprintln!(
                "runc harness: not removing {}: {m} is mounted",
                self.dir.display()
            );
        } else if let Err(e) = fs::remove_dir_all(&self.dir)
            && e.kind() != ErrorKind::NotFound
        {
            eprintln!("runc harness: removing {}: {e}", self.dir.display());
        }
    }
}

/// A running container; dropping it kills and deletes it and removes its bundle.
pub struct Container {
    id: String,
    pid: u32,
    live: bool,
    bundle: Bundle,
}

impl Container {
    /// Call under the shared [`CgroupLock`], before runc may create cgroups.
    fn guard(bundle: Bundle, id: &str) -> Container {
        let path = bundle.spec["linux"]["cgroupsPath"]
            .as_str()
            .unwrap_or_default();
        let missing = missing_parents(path, &cgroup_mounts());
        CREATED_PARENTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(missing);
        Container {
            id: id.to_owned(),
            pid: 0,
            live: true,
            bundle,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Host pid of the container's init process (from `runc state`).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn bundle_dir(&self) -> &Path {
        &self.bundle.dir
    }

    /// What the main process (and runc) wrote to stdout/stderr.
    pub fn log(&self) -> String {
        fs::read_to_string(self.bundle.dir.join("container.log")).unwrap_or_default()
    }

    /// `runc exec` without a terminal. The Output's status is the command's; only runc's own
    /// failures (container gone, binary missing) are errors.
    pub fn exec(&self, args: &[&str]) -> Result<Output> {
        runc(&[&["exec", self.id.as_str()], args].concat(), false, None)
    }

    /// [`Self::exec`] that must exit 0; returns its stdout.
    pub fn exec_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.exec(args)?;
        let [stdout, stderr] =
            [out.stdout, out.stderr].map(|b| String::from_utf8_lossy(&b).into_owned());
        if !out.status.success() {
            let line = cmdline(&[&["exec", self.id.as_str()], args].concat());
            bail!(
                "`{line}` failed ({}): {}{stdout}",
                out.status,
                stderr.trim_end()
            );
        }
        Ok(stdout)
    }

    /// The cgroup v2 path of the init process (the `0::` line of /proc/<pid>/cgroup).
    pub fn cgroup_path(&self) -> Result<String> {
        let file = format!("/proc/{}/cgroup", self.pid);
        let text = fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
        unified_line(&text).with_context(|| format!("no 0:: line in {file}: {text}"))
    }

    /// The kernel's cgroup id, which is the inode number of the cgroup2 directory (what
    /// `bpf_get_current_cgroup_id` returns for the container's processes).
    pub fn cgroup_id(&self) -> Result<u64> {
        let mounts = cgroup_mounts();
        let root = mounts
            .iter()
            .find(|(_, v2)| *v2)
            .context("no cgroup2 mount")?;
        let dir = root.0.join(self.cgroup_path()?.trim_start_matches('/'));
        Ok(fs::metadata(&dir)
            .with_context(|| format!("stat {}", dir.display()))?
            .ino())
    }

    /// `runc kill <id> <signal>`, e.g. "KILL" or "TERM".
    pub fn kill(&self, signal: &str) -> Result<()> {
        runc(&["kill", &self.id, signal], true, None).map(drop)
    }

    /// Deletes now and reports failures, which `Drop` can only print.
    pub fn delete(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.live) {
            return Ok(());
        }
        // SIGKILL first: `delete -f` alone polls the dying init every 100 ms (~106 ms each
        // here), kill + delete takes ~10 ms. The kill fails harmlessly if init already exited.
        let _ = runc(&["kill", &self.id, "KILL"], true, None);
        // -f also kills whatever is left in the cgroup (a host-pid container has no pid ns
        // whose end would), and a container that is already gone counts as success.
        let result = runc(&["delete", "-f", &self.id], true, None).map(drop);
        remove_created_parents();
        result
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("runc harness: {e:#}");
        }
    }
}

/// Serialises creating cgroup parents (runc, shared) against removing them (exclusive), also
/// across test processes, so a cleanup never removes `/docker` between runc's two mkdirs.
struct CgroupLock {
    _file: File,
}

impl CgroupLock {
    fn take(op: libc::c_int) -> Result<CgroupLock> {
        fs::create_dir_all(BASE_DIR)?;
        let path = Path::new(BASE_DIR).join(".cgroup.lock");
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        // SAFETY: flock on a descriptor we own; closing the File releases the lock.
        while unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } != 0 {
            if Instant::now() > deadline {
                bail!("timed out waiting for {}", path.display());
            }
            sleep(Duration::from_millis(10));
        }
        Ok(CgroupLock { _file: file })
    }
}

fn remove_created_parents() {
    if CREATED_PARENTS.lock().is_ok_and(|set| set.is_empty()) {
        return; // spares the wait for the lock while another test runs a container
    }
    let Ok(_lock) = CgroupLock::take(libc::LOCK_EX) else {
        return;
    };
    let mut set = CREATED_PARENTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Reverse order visits children before their parents. A directory that still holds
    // another container's cgroup fails with EBUSY and stays for a later drop.
    for dir in set.iter().rev().cloned().collect::<Vec<_>>() {
        match fs::remove_dir(&dir) {
            Err(e) if e.kind() != ErrorKind::NotFound => {}
            _ => _ = set.remove(&dir),
        }
    }
}

/// Ancestors of an absolute cgroupsPath missing in some hierarchy. runc puts a relative path
/// (and the default, the bare id) under its own cgroup, and removes that leaf itself.
fn missing_parents(cgroups_path: &str, mounts: &[(PathBuf, bool)]) -> Vec<PathBuf> {
    let Some(rel) = cgroups_path.strip_prefix('/') else {
        return vec![];
    };
    let ancestors = Path::new(rel)
        .ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty());
    let ancestors: Vec<&Path> = ancestors.collect();
    let all = mounts
        .iter()
        .flat_map(|(root, _)| ancestors.iter().map(|a| root.join(a)));
    all.filter(|p| !p.exists()).collect()
}

/// Mount points of the cgroup hierarchies (true = cgroup2).
fn cgroup_mounts() -> Vec<(PathBuf, bool)> {
    parse_cgroup_mounts(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

fn parse_cgroup_mounts(mountinfo: &str) -> Vec<(PathBuf, bool)> {
    let mut out = vec![];
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let fstype = fields.get(sep + 1).copied().unwrap_or_default();
        // Only whole hierarchies (root "/"): a bind mount of a subtree would misplace paths.
        if matches!(fstype, "cgroup" | "cgroup2") && fields.get(3) == Some(&"/") {
            out.push((PathBuf::from(fields[4]), fstype == "cgroup2"));
        }
    }
    out
}

fn mounts_under(dir: &Path) -> Option<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut points = info.lines().filter_map(|l| l.split(' ').nth(4));
    points
        .find(|m| Path::new(m).starts_with(dir))
        .map(str::to_owned)
}

fn unified_line(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed `runc spec` output of runc 1.1.5, so the edits are tested without runc or root.
    fn bundle() -> Bundle {
        let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL"]);
        let spec = json!({
            "process": { "args": ["sh"], "env": ["PATH=/bin", "TERM=xterm"], "capabilities":
                { "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps } },
            "root": { "path": "rootfs", "readonly": true },
            "mounts": [{ "destination": "/proc", "type": "proc", "source": "proc" }],
            "linux": { "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "mount"}],
                "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/bus", "/proc/sys"] }
        });
        let dir = PathBuf::from("/nonexistent/escapewatch-unit");
        Bundle { dir, spec }
    }

    #[test]
    fn spec_edits() {
        let mut b = (bundle()
            .share_host_namespace("pid")
            .share_host_namespace("network"))
        .add_capabilities(&["CAP_SYS_ADMIN", "SYS_PTRACE", "CAP_KILL"])
        .args(&["sh", "-c", "true"])
        .env("TERM", "dumb")
        .env("FOO", "1")
        .cgroups_path("/docker/abc")
        .writable_proc_sys()
        .writable_rootfs()
        .bind_mount("/tmp/x", "/mnt/x", false);
        b.config_mut()["hostname"] = "x".into();
        let c = b.config();
        assert_eq!(c["linux"]["namespaces"], json!([{"type": "mount"}]));
        let want = json!([
            "CAP_AUDIT_WRITE",
            "CAP_KILL",
            "CAP_SYS_ADMIN",
            "CAP_SYS_PTRACE"
        ]);
        for set in ["bounding", "effective", "permitted"] {
            assert_eq!(c["process"]["capabilities"][set], want, "{set}");
        }
        assert_eq!(
            c["process"]["capabilities"]["ambient"],
            json!(["CAP_AUDIT_WRITE", "CAP_KILL"])
        );
        assert_eq!(c["process"]["args"], json!(["sh", "-c", "true"]));
        assert_eq!(
            c["process"]["env"],
            json!(["PATH=/bin", "TERM=dumb", "FOO=1"])
        );
        assert_eq!(c["linux"]["cgroupsPath"], "/docker/abc");
        assert_eq!(c["linux"]["readonlyPaths"], json!(["/proc/bus"]));
        assert_eq!(
            (&c["root"]["readonly"], &c["hostname"]),
            (&json!(false), &json!("x"))
        );
        let m = json!({"destination": "/mnt/x", "type": "bind", "source": "/tmp/x", "options": ["rbind", "ro"]});
        assert_eq!(c["mounts"][1], m);
        let b = b.unmask_paths();
        assert_eq!(b.config()["linux"]["maskedPaths"], json!([]));
    }

    #[test]
    fn ids() {
        let hex = random_hex64();
        assert_eq!(hex.len(), 64);
        assert!(
            hex.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_ne!(unique_id("t"), unique_id("t"));
        assert!(unique_id("esc").starts_with(&format!("esc-{}-", std::process::id())));
    }

    #[test]
    fn cgroup_parsing() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                    35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                    50 31 0:38 /sub /mnt/sub rw - cgroup2 cgroup2 rw";
        let want = [
            ("/sys/fs/cgroup/memory", false),
            ("/sys/fs/cgroup/unified", true),
        ];
        assert_eq!(
            parse_cgroup_mounts(info),
            want.map(|(p, v2)| (PathBuf::from(p), v2))
        );
        let fake = [(PathBuf::from("/nonexistent/cg"), true)];
        let want = ["/nonexistent/cg/a/docker", "/nonexistent/cg/a"].map(PathBuf::from);
        assert_eq!(missing_parents("/a/docker/abc", &fake), want);
        assert!(missing_parents("abc", &fake).is_empty() && missing_parents("", &fake).is_empty());
        let proc_cgroup = "4:memory:/m/x\n0::/docker/abc\n";
        assert_eq!(unified_line(proc_cgroup).as_deref(), Some("/docker/abc"));
    }
}
