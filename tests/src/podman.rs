//! A real podman for the tests: its own storage, run directory and API service
//! (`podman system service`, which answers Docker's Engine API on its socket), started by
//! [`Podman::start`] and stopped, with every container and mount it made, when dropped.
//!
//! podman 4.3 as Debian ships it needs three settings on this VM, all given here and nowhere
//! else: runc (crun refuses the hybrid cgroup layout), the cgroupfs manager (no systemd
//! scopes), and `default_ulimits` at or below the current hard limits in a containers.conf of
//! its own (podman otherwise raises RLIMIT_NOFILE/NPROC, which needs CAP_SYS_RESOURCE, which
//! this VM's bounding set withholds).

use std::{
    fs,
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{runc::Bundle, runtimes::unmount_and_remove};

/// The image the podman tests run (`podman import` names it under localhost/).
pub const PODMAN_IMAGE: &str = "localhost/ewt-busybox:1";

pub struct Podman {
    run_dir: PathBuf,
    data_dir: PathBuf,
    conf: PathBuf,
    service: Option<Child>,
    /// The API service's socket.
    pub socket: PathBuf,
}

impl Podman {
    /// Start podman's API service and import the busybox image. Fails (never skips) when
    /// podman is not installed: `cargo xtask setup`.
    pub fn start(name: &str) -> Result<Podman> {
        crate::agent::require_root();
        if Command::new("sh")
            .args(["-c", "command -v podman"])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            bail!("podman is not installed: run `cargo xtask setup` (podman)");
        }
        let tag = format!("{name}-{}", std::process::id());
        let run_dir = PathBuf::from("/run").join(format!("ewp-{tag}"));
        let data_dir = PathBuf::from(crate::runc::BASE_DIR).join(format!("pm-{tag}"));
        for d in [&run_dir, &data_dir] {
            let _ = fs::remove_dir_all(d);
            fs::create_dir_all(d)?;
        }
        let conf = data_dir.join("containers.conf");
        fs::write(
            &conf,
            "[containers]\ndefault_ulimits = [\"nofile=4096:4096\", \"nproc=4096:4096\"]\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n",
        )?;
        let mut p = Podman {
            socket: run_dir.join("podman.sock"),
            run_dir,
            data_dir,
            conf,
            service: None,
        }; // from here Drop cleans up
        let log = fs::File::create(p.data_dir.join("service.log"))?;
        let mut service = p.command();
        service
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", p.socket.display()))
            .stdout(Stdio::null())
            .stderr(log);
        p.service = Some(service.spawn().context("start podman system service")?);
        let start = Instant::now();
        while !p.socket.exists() {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("podman's API service made no socket in 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        p.import_image()?;
        Ok(p)
    }

    fn command(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf)
            .arg("--root")
            .arg(self.data_dir.join("storage"))
            .arg("--runroot")
            .arg(self.run_dir.join("storage"))
            .arg("--tmpdir")
            .arg(self.run_dir.join("libpod"));
        c
    }

    fn import_image(&self) -> Result<()> {
        let bundle = Bundle::busybox("podman-image")?;
        let tar = self.data_dir.join("rootfs.tar");
        let out = Command::new("tar")
            .arg("-C")
            .arg(bundle.rootfs())
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()?;
        if !out.status.success() {
            bail!("tar the rootfs: {out:?}");
        }
        self.podman_ok(&["import", &tar.to_string_lossy(), "ewt-busybox:1"])?;
        Ok(())
    }

    pub fn podman(&self, args: &[&str]) -> Result<Output> {
        self.command()
            .args(args)
            .output()
            .with_context(|| format!("podman {}", args.join(" ")))
    }

    pub fn podman_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.podman(args)?;
        if !out.status.success() {
            bail!(
                "podman {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The agent's `[workload]` section: podman's API socket.
    pub fn agent_config(&self) -> String {
        format!(
            "[workload]\npodman_socket = \"{}\"\n",
            self.socket.display()
        )
    }

    fn stop(&mut self) {
        let _ = self.podman(&["rm", "-af", "-t", "1"]);
        if let Some(mut s) = self.service.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = self.podman(&["umount", "-a"]);
        unmount_and_remove(&[&self.run_dir, &self.data_dir]);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        self.stop();
    }
}
