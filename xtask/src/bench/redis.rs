//! redis-server on loopback, driven by redis-benchmark: a realistic syscall-heavy workload,
//! measured as CPU time per request with the server and the client pinned to their own CPUs
//! (throughput swings ±10 % between rounds on a shared VM; CPU per request does not).

use std::{
    io::Read as _,
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// The CPUs the server and the client are pinned to (when the machine has two).
pub const SERVER_CPU: usize = 1;
pub const CLIENT_CPU: usize = 0;

pub struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// One redis-benchmark test of one round.
#[derive(Clone, Debug)]
pub struct RedisFig {
    pub test: String,
    pub rps: f64,
    /// The server's CPU time (all threads, user + system) per request, in µs.
    pub server_us: f64,
    /// The client's CPU time (user + system) per request, in µs.
    pub client_us: f64,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// CPU ns a process has run, every live thread summed (/proc/PID/task/*/schedstat: ns
/// resolution, where /proc/PID/stat counts 10 ms ticks).
pub fn process_cpu_ns(pid: u32) -> Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}

/// Wait for `child` and give its rusage CPU time (user + system) in seconds.
fn wait_cpu(child: &Child) -> Result<(i32, f64)> {
    let mut status = 0;
    // SAFETY: rusage is plain old data; all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: reaping our own child, writing into structs we own.
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).context("wait4 redis-benchmark");
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((status, tv(ru.ru_utime) + tv(ru.ru_stime)))
}

impl Redis {
    pub fn start(dir: PathBuf) -> Result<Redis> {
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        super::pin(&mut cmd, SERVER_CPU);
        let child = cmd
            .spawn()
            .context("starting redis-server (apt package redis-server; `cargo xtask setup`)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("redis-server did not listen on 127.0.0.1:{port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Redis { child, port, dir })
    }

    /// SET, then GET (redis-benchmark defaults: 50 clients, 3-byte values), one test per
    /// redis-benchmark run so that each has its own CPU figures.
    pub fn bench(&self, requests: u64) -> Result<Vec<RedisFig>> {
        ["set", "get"]
            .iter()
            .map(|t| self.one(t, requests))
            .collect()
    }

    fn one(&self, test: &str, requests: u64) -> Result<RedisFig> {
        let server0 = process_cpu_ns(self.child.id())?;
        let mut cmd = Command::new("redis-benchmark");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-n", &requests.to_string(), "-t", test, "--csv"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        super::pin(&mut cmd, CLIENT_CPU);
        let mut child = cmd.spawn().context("running redis-benchmark")?;
        let mut text = String::new();
        child
            .stdout
            .take()
            .context("stdout piped")?
            .read_to_string(&mut text)?;
        let (status, client_secs) = wait_cpu(&child)?;
        let server_ns = process_cpu_ns(self.child.id())? - server0;
        if status != 0 {
            bail!("redis-benchmark -t {test} failed with wait status {status}");
        }
        let rps = text
            .lines()
            .filter_map(|line| {
                let cols: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
                cols.get(1)?.parse::<f64>().ok()
            })
            .next()
            .with_context(|| format!("no figures in redis-benchmark's output:\n{text}"))?;
        let n = requests as f64;
        Ok(RedisFig {
            test: test.to_uppercase(),
            rps,
            server_us: server_ns as f64 / 1e3 / n,
            client_us: client_secs * 1e6 / n,
        })
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
