//! The agent under measurement: started and stopped by the bench, under the same machine-wide
//! lock the integration tests take (two agents conflict on the cgroup/sysctl attach, and an
//! agent of a test would distort the agent-off figures).

use std::{
    fs,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// Where the integration tests take their agent lock (tests/src/runc.rs BASE_DIR).
const LOCK_DIR: &str = "/tmp/escapewatch-tests";

pub struct MachineLock(#[allow(dead_code)] fs::File);

impl MachineLock {
    pub fn acquire() -> Result<MachineLock> {
        fs::create_dir_all(LOCK_DIR)?;
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(Path::new(LOCK_DIR).join(".agent.lock"))
            .context("open the agent lock")?;
        // SAFETY: flock on an fd we own; non-blocking first, to say why we wait.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            println!("xtask bench: waiting for another agent (integration tests) to finish");
            // SAFETY: as above, blocking.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
                bail!("flock {LOCK_DIR}/.agent.lock failed");
            }
        }
        Ok(MachineLock(f))
    }
}

pub struct Agent {
    child: Option<Child>,
    pub dir: PathBuf,
    pub alert_log: PathBuf,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    addr: String,
}

impl Agent {
    /// `escapewatch run` with an event log and an alert log in `dir`, metrics on loopback;
    /// returns once it says it is ready.
    pub fn start(bin: &Path, dir: &Path) -> Result<Agent> {
        Self::start_with(bin, dir, true)
    }

    /// As [`Agent::start`]; without an event log when `event_log` is false.
    pub fn start_with(bin: &Path, dir: &Path, event_log: bool) -> Result<Agent> {
        Self::start_pinned(bin, dir, event_log, None)
    }

    /// As [`Agent::start_with`]; every thread on `cpu` when given.
    pub fn start_pinned(
        bin: &Path,
        dir: &Path,
        event_log: bool,
        cpu: Option<usize>,
    ) -> Result<Agent> {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir)?;
        let alert_log = dir.join("alerts.jsonl");
        let mut cmd = Command::new(bin);
        cmd.arg("run");
        if event_log {
            cmd.arg("--event-log").arg(dir.join("events.jsonl"));
        }
        if let Some(cpu) = cpu {
            super::pin(&mut cmd, cpu);
        }
        let mut child = cmd
            .arg("--alert-log")
            .arg(&alert_log)
            .args(["--metrics-addr", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} run", bin.display()))?;
        let stderr = child.stderr.take().context("stderr piped")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut agent = Agent {
            child: Some(child),
            dir: dir.to_owned(),
            alert_log,
            lines: rx,
            seen: Vec::new(),
            addr: String::new(),
        };
        let line = agent.wait_for("metrics listening on http://")?;
        agent.addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_default()
            .to_owned();
        agent.wait_for("escapewatch is ready")?;
        Ok(agent)
    }

    fn wait_for(&mut self, needle: &str) -> Result<String> {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return Ok(l.clone());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(line.clone());
                    if hit {
                        return Ok(line);
                    }
                }
                Err(_) => bail!(
                    "the agent did not log {needle:?} within 30 s; its stderr:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The programs the agent logged as attached at start-up (`attached program=NAME`).
    pub fn attached_programs(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter(|l| l.contains(": attached "))
            .filter_map(|l| {
                let rest = l.split(" program=").nth(1)?;
                let name = rest.split_whitespace().next()?.trim_matches('"');
                (!name.is_empty()).then(|| name.to_owned())
            })
            .collect()
    }

    /// The last lines the agent wrote to stderr (what it said before dying, say).
    fn stderr_tail(&self) -> String {
        let mut lines: Vec<String> = self.seen.iter().rev().take(5).rev().cloned().collect();
        lines.extend(self.lines.try_iter());
        let start = lines.len().saturating_sub(15);
        lines[start..].join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// CPU seconds (user + system, every thread) the agent has used.
    pub fn cpu_secs(&self) -> Result<f64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Ok(ticks / hz)
    }

    /// VmRSS and VmHWM in KiB.
    pub fn rss_kib(&self) -> Result<(u64, u64)> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }

    /// The sum of every sample of `metric` (exact name) whose labels contain `label`.
    pub fn metric(&self, metric: &str, label: &str) -> Result<f64> {
        let mut s = std::net::TcpStream::connect(&self.addr).with_context(|| {
            format!(
                "connect to the agent's metrics at {}; the end of its stderr:\n{}",
                self.addr,
                self.stderr_tail()
            )
        })?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr)?;
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        Ok(body
            .lines()
            .filter(|l| {
                l.strip_prefix(metric)
                    .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
                    && l.contains(label)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// SIGTERM; the agent drains, flushes and exits.
    pub fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                let _ = fs::remove_dir_all(&self.dir);
                if !status.success() {
                    bail!("the agent exited with {status}");
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("the agent did not exit within 30 s of SIGTERM")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
