//! A real `escapewatch run` under test: started with its own event and alert logs, ready once it
//! says so, stopped with SIGTERM (it must exit 0 after draining), killed on drop.

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

/// How long an agent may take from start to `ready`.
const READY_WAIT: Duration = Duration::from_secs(120);

/// Where tests keep their files (event logs are kept for inspection and as fixtures).
pub fn work_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/integration")
        .join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the test work dir");
    dir
}

/// The agent binary built by `cargo xtask test` (ESCAPEWATCH_BIN).
pub fn agent_bin() -> PathBuf {
    let bin = std::env::var_os("ESCAPEWATCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/escapewatch")
        });
    assert!(
        bin.exists(),
        "agent binary {} missing: run the integration tests through `cargo xtask test`",
        bin.display()
    );
    bin
}

/// Fail clearly (never skip) when the tests cannot run here.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the integration tests load eBPF programs and run runc containers: run them as root (cargo xtask test)"
    );
}

/// Held while an agent runs: agents see the whole machine, so two test processes (two
/// developers, or CI and a developer) must not run scenarios at the same time.
struct MachineLock {
    _file: fs::File,
}

impl MachineLock {
    fn acquire() -> MachineLock {
        fs::create_dir_all(crate::runc::BASE_DIR).expect("test base dir");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(Path::new(crate::runc::BASE_DIR).join(".agent.lock"))
            .expect("open the agent lock");
        // SAFETY: flock on an fd we own; blocks until the other holder is done.
        let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock the agent lock");
        MachineLock { _file: f }
    }
}

pub struct Agent {
    _lock: MachineLock,
    child: Option<Child>,
    pub event_log: PathBuf,
    pub alert_log: PathBuf,
    stderr_lines: mpsc::Receiver<String>,
    pub stderr: Vec<String>,
}

impl Agent {
    /// Start the agent and wait until it reports ready.
    pub fn start(dir: &Path) -> Agent {
        Self::start_with(dir, None)
    }

    /// Start the agent with a config file holding `config` (TOML) and metrics on a free
    /// loopback port (see [`Agent::metrics`]).
    pub fn start_with(dir: &Path, config: Option<&str>) -> Agent {
        Self::start_on(dir, config, "127.0.0.1:0")
    }

    /// The same with metrics on `metrics_addr`. `dir` may hold an earlier agent's logs (a
    /// restart on the same log directory).
    pub fn start_on(dir: &Path, config: Option<&str>, metrics_addr: &str) -> Agent {
        Self::start_logging_to(dir, config, metrics_addr, dir.join("events.jsonl"))
    }

    /// The same with the event log at `event_log` (another file system than `dir`'s).
    pub fn start_logging_to(
        dir: &Path,
        config: Option<&str>,
        metrics_addr: &str,
        event_log: PathBuf,
    ) -> Agent {
        require_root();
        let lock = MachineLock::acquire();
        let alert_log = dir.join("alerts.jsonl");
        // Stand in for systemd: the agent must send READY=1 here once attached (Type=notify).
        let notify_path = dir.join("notify.sock");
        let _ = fs::remove_file(&notify_path);
        let notify =
            std::os::unix::net::UnixDatagram::bind(&notify_path).expect("bind notify socket");
        notify
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("socket timeout");
        let mut cmd = Command::new(agent_bin());
        cmd.arg("run")
            .arg("--event-log")
            .arg(&event_log)
            .arg("--alert-log")
            .arg(&alert_log)
            .args(["--metrics-addr", metrics_addr]);
        if let Some(text) = config {
            let path = dir.join("config.toml");
            fs::write(&path, text).expect("write the test config");
            cmd.arg("--config").arg(path);
        }
        let mut child = cmd
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start escapewatch run");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut agent = Agent {
            _lock: lock,
            child: Some(child),
            event_log,
            alert_log,
            stderr_lines: rx,
            stderr: Vec::new(),
        };
        // Loading every program takes seconds natively but up to a minute in a TCG guest of
        // the kernel matrix on a busy host (6.1 verifies slowly).
        agent.wait_for_stderr("escapewatch is ready", READY_WAIT);
        let mut buf = [0u8; 64];
        let n = notify.recv(&mut buf).expect("READY=1 on NOTIFY_SOCKET");
        assert_eq!(&buf[..n], b"READY=1");
        agent
    }

    /// SIGKILL: no draining, no flushing — what a crash or the OOM killer does.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("agent running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    /// The address /metrics is served on (from the agent's log).
    pub fn metrics_addr(&mut self) -> String {
        let line = self.wait_for_stderr("metrics listening on http://", Duration::from_secs(5));
        let rest = line
            .split("http://")
            .nth(1)
            .expect("address in the log line");
        rest.split('/').next().unwrap_or_default().to_owned()
    }

    /// GET a path of the agent's HTTP endpoint; the body.
    pub fn http_get(&mut self, path: &str) -> String {
        use std::io::{Read, Write};
        let addr = self.metrics_addr();
        let mut s = std::net::TcpStream::connect(&addr).expect("connect to the metrics endpoint");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or(body)
    }

    /// The sum of every sample of `metric` whose labels contain `label` on /metrics.
    pub fn metric_sum(&mut self, metric: &str, label: &str) -> f64 {
        self.http_get("/metrics")
            .lines()
            .filter(|l| l.starts_with(metric) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Whether the start-up log says `program` attached (it names each program's outcome).
    pub fn attached(&self, program: &str) -> bool {
        let name = format!("\"{program}\"");
        self.stderr
            .iter()
            .any(|l| l.contains(&name) && l.contains(" attached") && !l.contains("not attached"))
    }

    /// Wait for a stderr line containing `needle`; panics with everything seen on timeout.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(l) = self.stderr.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.stderr.push(line.clone());
                    if hit {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "agent did not log {needle:?} within {timeout:?}; its stderr:\n{}",
                    self.stderr.join("\n")
                ),
            }
        }
    }

    /// Alerts written so far.
    pub fn alerts(&self) -> Vec<Value> {
        read_jsonl(&self.alert_log)
    }

    /// Poll the alert log until an alert matches `pred` (or panic at the deadline).
    pub fn wait_for_alert(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(a) = self.alerts().into_iter().find(|a| pred(a)) {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "no matching alert within {timeout:?}; alerts so far: {:#?}",
                self.alerts()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Poll the event log until an event matches `pred`.
    pub fn wait_for_event(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = read_jsonl(&self.event_log)
                .into_iter()
                .skip(1)
                .find(|e| pred(e))
            {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no matching event within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the agent must drain, flush and exit 0 (once: stopping a stopped agent
    /// does nothing).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait for the agent") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("agent did not exit within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.stderr_lines.recv_timeout(Duration::from_millis(500)) {
            self.stderr.push(line);
        }
        assert!(
            status.success(),
            "agent exited with {status} after SIGTERM; stderr:\n{}",
            self.stderr.join("\n")
        );
    }

    /// After [`Agent::stop`]: `escapewatch replay` of the event log must print exactly the
    /// live alert log, byte for byte (the same engine, live and offline).
    pub fn assert_replay_reproduces_alerts(&self, what: &str) {
        let out = replay(&[&self.event_log]);
        assert!(
            out.status.success(),
            "replay of {what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            fs::read_to_string(&self.alert_log).expect("alert log"),
            "replay of {what} must reproduce the live alerts"
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An event log as JSON Lines: a binary one (the agent's default format) through
/// `escapewatch export`, a JSON Lines one as it is. None: missing or not UTF-8.
pub fn log_text(path: &Path) -> Option<String> {
    let bytes = fs::read(path).ok()?;
    if !bytes.starts_with(b"EWEVTLOG") {
        return String::from_utf8(bytes).ok();
    }
    let out = Command::new(agent_bin())
        .arg("export")
        .arg(path)
        .output()
        .expect("run escapewatch export");
    assert!(
        out.status.success(),
        "escapewatch export {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("export prints UTF-8"))
}

/// Every line of a JSON Lines file, or every record of a binary event log (missing file:
/// none). A line that is not JSON fails the test.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let Some(text) = log_text(path) else {
        return Vec::new();
    };
    text.lines()
        // The last line may be half-written while the agent runs.
        .filter(|l| l.ends_with('}'))
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", path.display()))
        })
        .collect()
}

/// `escapewatch replay PATH` → its stdout.
pub fn replay(paths: &[&Path]) -> std::process::Output {
    Command::new(agent_bin())
        .arg("replay")
        .args(paths)
        .output()
        .expect("run escapewatch replay")
}

/// Inode of /proc/PID/ns/NAME.
pub fn ns_inode(pid: u32, name: &str) -> u64 {
    let link = fs::read_link(format!("/proc/{pid}/ns/{name}")).expect("read ns link");
    let s = link.to_string_lossy();
    s.split_once(":[")
        .and_then(|(_, r)| r.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected ns link {s}"))
}
