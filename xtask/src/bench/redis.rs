//! redis-server on loopback, driven by redis-benchmark: a realistic syscall-heavy workload.

use std::{
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

pub struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Redis {
    pub fn start(dir: PathBuf) -> Result<Redis> {
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
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

    /// Requests per second of SET and GET (redis-benchmark defaults: 50 clients, 3-byte values).
    pub fn bench(&self, requests: u64) -> Result<Vec<(String, f64)>> {
        let out = Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-n", &requests.to_string(), "-t", "set,get", "--csv"])
            .stderr(Stdio::null())
            .output()
            .context("running redis-benchmark")?;
        if !out.status.success() {
            bail!("redis-benchmark failed with {}", out.status);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut rps = Vec::new();
        for line in text.lines() {
            let cols: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
            if let [test, r, ..] = cols[..]
                && let Ok(r) = r.parse::<f64>()
            {
                rps.push((test.to_owned(), r));
            }
        }
        if rps.is_empty() {
            bail!("no figures in redis-benchmark's output:\n{text}");
        }
        Ok(rps)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
