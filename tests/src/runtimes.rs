//! Real container runtimes for the tests: a containerd and a dockerd of the test's own (own
//! sockets, state and data directories; no networking: `--bridge=none --iptables=false`),
//! started by [`Runtimes::start`] and stopped, with every container and mount they made, when
//! it is dropped. Images are a busybox rootfs made into an image with `docker import` (no
//! registry), and the same image `docker save`d into containerd's `ewt` namespace.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::runc::Bundle;

/// The image both runtimes run.
pub const IMAGE: &str = "ewt-busybox:1";
/// containerd's name of it after `ctr images import`.
pub const CTR_IMAGE: &str = "docker.io/library/ewt-busybox:1";
/// containerd namespace of the test's `ctr` containers.
pub const CTR_NS: &str = "ewt";
/// containerd namespace of dockerd's containers.
const DOCKER_NS: &str = "moby";

pub struct Runtimes {
    /// Sockets and runtime state (on tmpfs; short paths for sockets).
    run_dir: PathBuf,
    /// Images, snapshots, container roots.
    data_dir: PathBuf,
    containerd: Option<Child>,
    dockerd: Option<Child>,
    pub docker_sock: PathBuf,
    pub containerd_sock: PathBuf,
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{what} not ready within {timeout:?}")
}

fn check(out: Output, what: &str) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Runtimes {
    /// Start containerd and dockerd (on that containerd) and import the busybox image into
    /// both. Fails (never skips) when the runtimes are not installed: `cargo xtask setup`.
    pub fn start(name: &str) -> Result<Runtimes> {
        crate::agent::require_root();
        for bin in ["containerd", "dockerd", "docker", "ctr"] {
            if Command::new("sh")
                .args(["-c", &format!("command -v {bin}")])
                .output()
                .map(|o| !o.status.success())
                .unwrap_or(true)
            {
                bail!("{bin} is not installed: run `cargo xtask setup` (docker.io, containerd)");
            }
        }
        let tag = format!("{name}-{}", std::process::id());
        let run_dir = PathBuf::from("/run").join(format!("ewt-{tag}"));
        let data_dir = Path::new(crate::runc::BASE_DIR).join(format!("rt-{tag}"));
        for d in [&run_dir, &data_dir] {
            let _ = fs::remove_dir_all(d);
            fs::create_dir_all(d)?;
        }
        let mut rt = Runtimes {
            containerd_sock: run_dir.join("containerd.sock"),
            docker_sock: run_dir.join("docker.sock"),
            run_dir,
            data_dir,
            containerd: None,
            dockerd: None,
        }; // from here Drop cleans up
        let log = |n: &str| fs::File::create(rt.data_dir.join(n));
        rt.containerd = Some(
            Command::new("containerd")
                .arg("--root")
                .arg(rt.data_dir.join("containerd"))
                .arg("--state")
                .arg(rt.run_dir.join("containerd"))
                .arg("--address")
                .arg(&rt.containerd_sock)
                .stdout(Stdio::null())
                .stderr(log("containerd.log")?)
                .spawn()
                .context("start containerd")?,
        );
        wait_until("containerd", Duration::from_secs(20), || {
            rt.ctr(&["version"]).is_ok_and(|o| o.status.success())
        })?;
        rt.dockerd = Some(
            Command::new("dockerd")
                .args([
                    "--iptables=false",
                    "--ip-forward=false",
                    "--bridge=none",
                    "--exec-opt",
                    "native.cgroupdriver=cgroupfs",
                ])
                .arg("--data-root")
                .arg(rt.data_dir.join("docker"))
                .arg("--exec-root")
                .arg(rt.run_dir.join("docker"))
                .arg("--pidfile")
                .arg(rt.run_dir.join("docker.pid"))
                .arg("--containerd")
                .arg(&rt.containerd_sock)
                .arg("-H")
                .arg(format!("unix://{}", rt.docker_sock.display()))
                .stdout(Stdio::null())
                .stderr(log("dockerd.log")?)
                .spawn()
                .context("start dockerd")?,
        );
        wait_until("dockerd", Duration::from_secs(60), || {
            rt.docker(&["version"]).is_ok_and(|o| o.status.success())
        })?;
        rt.import_image()?;
        Ok(rt)
    }

    fn import_image(&self) -> Result<()> {
        let bundle = Bundle::busybox("image")?;
        let tar = self.data_dir.join("rootfs.tar");
        check(
            Command::new("tar")
                .arg("-C")
                .arg(bundle.rootfs())
                .arg("-cf")
                .arg(&tar)
                .arg(".")
                .output()?,
            "tar the rootfs",
        )?;
        check(
            self.docker(&["import", &tar.to_string_lossy(), IMAGE])?,
            "docker import",
        )?;
        let saved = self.data_dir.join("image.tar");
        check(
            self.docker(&["save", "-o", &saved.to_string_lossy(), IMAGE])?,
            "docker save",
        )?;
        check(
            self.ctr(&["-n", CTR_NS, "images", "import", &saved.to_string_lossy()])?,
            "ctr images import",
        )?;
        Ok(())
    }

    pub fn docker(&self, args: &[&str]) -> Result<Output> {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.docker_sock.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("run docker")
    }

    /// `docker ARGS`, which must succeed; its standard output.
    pub fn docker_ok(&self, args: &[&str]) -> Result<String> {
        check(self.docker(args)?, &format!("docker {}", args.join(" ")))
    }

    pub fn ctr(&self, args: &[&str]) -> Result<Output> {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.containerd_sock)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("run ctr")
    }

    /// `ctr -n ewt ARGS`, which must succeed; its standard output.
    pub fn ctr_ok(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", CTR_NS];
        all.extend_from_slice(args);
        check(self.ctr(&all)?, &format!("ctr {}", all.join(" ")))
    }

    /// containerd's task bundles (what the agent reads).
    pub fn containerd_tasks(&self) -> PathBuf {
        self.run_dir
            .join("containerd/io.containerd.runtime.v2.task")
    }

    /// The agent's `[workload]` section for these runtimes.
    pub fn agent_config(&self) -> String {
        format!(
            "[workload]\ndocker_socket = \"{}\"\ncontainerd_socket = \"{}\"\ncontainerd_tasks = \"{}\"\n",
            self.docker_sock.display(),
            self.containerd_sock.display(),
            self.containerd_tasks().display()
        )
    }

    /// The pid (on the host) of a docker container's init.
    pub fn docker_pid(&self, name: &str) -> Result<u32> {
        let out = self.docker_ok(&["inspect", "-f", "{{.State.Pid}}", name])?;
        out.trim().parse().context("docker inspect pid")
    }

    /// Freeze dockerd (SIGSTOP): its socket still accepts connections and never answers, the
    /// worst case for a client with no time bound.
    pub fn freeze_dockerd(&self) {
        if let Some(d) = &self.dockerd {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(d.id() as i32, libc::SIGSTOP) };
        }
    }

    /// dockerd gone mid-run: killed (SIGKILL: its containers keep running under their
    /// containerd shims) and its socket file removed.
    pub fn lose_dockerd(&mut self) {
        if let Some(mut d) = self.dockerd.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = fs::remove_file(&self.docker_sock);
    }

    /// Stop dockerd (SIGTERM stops its containers), then every ctr task (of the test's
    /// namespace, and of docker's when dockerd was lost) and containerd.
    fn stop(&mut self) {
        if let Some(mut d) = self.dockerd.take() {
            // SAFETY: plain kill(2) on our own child (frozen or not).
            unsafe { libc::kill(d.id() as i32, libc::SIGCONT) };
            if let Ok(ids) = self.docker_ok(&["ps", "-aq"]) {
                for id in ids.split_whitespace() {
                    let _ = self.docker(&["rm", "-f", id]);
                }
            }
            stop_child(&mut d, Duration::from_secs(20));
        }
        if let Some(mut c) = self.containerd.take() {
            for ns in [CTR_NS, DOCKER_NS] {
                let ids = |what: &str| {
                    self.ctr(&["-n", ns, what, "ls", "-q"])
                        .ok()
                        .filter(|o| o.status.success())
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                        .unwrap_or_default()
                };
                for id in ids("tasks").split_whitespace() {
                    let _ = self.ctr(&["-n", ns, "tasks", "kill", "-s", "SIGKILL", id]);
                    std::thread::sleep(Duration::from_millis(200));
                    let _ = self.ctr(&["-n", ns, "tasks", "rm", "-f", id]);
                }
                for id in ids("containers").split_whitespace() {
                    let _ = self.ctr(&["-n", ns, "containers", "rm", id]);
                }
            }
            stop_child(&mut c, Duration::from_secs(20));
        }
        // Whatever the daemons left mounted (overlays, netns, shm) under our directories.
        unmount_and_remove(&[&self.run_dir, &self.data_dir]);
    }
}

/// Unmount everything mounted at or below `dirs` (deepest first), then remove them.
pub(crate) fn unmount_and_remove(dirs: &[&Path]) {
    let ours = |p: &str| dirs.iter().any(|d| p.starts_with(&*d.to_string_lossy()));
    if let Ok(text) = fs::read_to_string("/proc/self/mountinfo") {
        let mut points: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| ours(p))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = Command::new("umount").args(["-l", p]).status();
        }
    }
    for d in dirs {
        let _ = fs::remove_dir_all(d);
    }
}

fn stop_child(child: &mut Child, timeout: Duration) {
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    while start.elapsed() < timeout {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Runtimes {
    fn drop(&mut self) {
        self.stop();
    }
}
