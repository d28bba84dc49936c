//! What operators rely on: the shipped Prometheus rules fire in a real Prometheus when an
//! escape happens, and SIGHUP reloads the policy (a bad config is rejected, the old one kept)
//! and reopens the logs.

use std::{
    fs,
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use escapewatch_integration::{
    agent::{Agent, work_dir},
    escape::nsenter_escape,
};

const WAIT: Duration = Duration::from_secs(20);

fn sighup(agent_pid: u32) {
    // SAFETY: kill(2) on the agent we started.
    assert_eq!(unsafe { libc::kill(agent_pid as i32, libc::SIGHUP) }, 0);
}

#[test]
fn sighup_reloads_policy_rejects_bad_config_and_reopens_logs() {
    let dir = work_dir("sighup");
    let mut agent = Agent::start_with(&dir, Some(""));
    let config = dir.join("config.toml");
    let mut host = Command::new("sleep").arg("300").spawn().expect("sleep");

    // Disable the rule and reload: the next escape is held back.
    fs::write(&config, "[rules.namespace-join-host]\nenabled = false\n").unwrap();
    sighup(agent.pid());
    agent.wait_for_stderr("config reloaded:", WAIT);
    let (c, _) = nsenter_escape(host.id());
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    while agent.metric_sum("escapewatch_alerts_suppressed_total", "namespace-join-host") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the disabled rule's alert was not held back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(agent.alerts().is_empty(), "{:#?}", agent.alerts());

    // A bad config is rejected and the previous policy stays.
    fs::write(&config, "[rules.namespace-join-host]\nenabld = false\n").unwrap();
    sighup(agent.pid());
    let rejected = agent.wait_for_stderr("config reload rejected", WAIT);
    assert!(
        rejected.contains("config.toml"),
        "names the file: {rejected}"
    );
    agent.wait_for_stderr("enabld", WAIT);
    let (c, _) = nsenter_escape(host.id());
    drop(c);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        agent.alerts().is_empty(),
        "the old policy must stay in force"
    );

    // Re-enable; logrotate has moved the alert log away: SIGHUP reopens it.
    fs::rename(&agent.alert_log, dir.join("alerts.jsonl.1")).unwrap();
    fs::write(&config, "").unwrap();
    sighup(agent.pid());
    let (c, pid) = nsenter_escape(host.id());
    let alert = agent.wait_for_alert(WAIT, |a| a["process"]["pid"] == pid);
    assert_eq!(alert["rule"], "namespace-join-host");
    drop(c);
    let _ = host.kill();
    let _ = host.wait();
    agent.stop();
}

/// A Prometheus on loopback scraping the agent every second with the shipped rules.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Prometheus {
        let port = free_port();
        let rules = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/prometheus/escapewatch-rules.yml");
        let config = dir.join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: escapewatch\n    static_configs:\n      - targets: ['{target}']\n",
                rules.display()
            ),
        )
        .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("start prometheus (Debian package prometheus)");
        Prometheus { child, port }
    }

    fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body.split_once("\r\n\r\n")?.1.to_owned())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[test]
fn escape_fires_the_shipped_prometheus_rule() {
    let dir = work_dir("prometheus");
    let mut agent = Agent::start_with(&dir, Some(""));
    let target = agent.metrics_addr();
    let prom = Prometheus::start(&dir, &target);
    // Wait until Prometheus scrapes the agent (so the counter's 0 is recorded first).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = prom.get("/api/v1/query?query=up%7Bjob%3D%22escapewatch%22%7D");
        if up.as_deref().is_some_and(|b| b.contains("\"1\"]")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the agent: {up:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let mut host = Command::new("sleep").arg("300").spawn().expect("sleep");
    let (c, pid) = nsenter_escape(host.id());
    agent.wait_for_alert(WAIT, |a| a["process"]["pid"] == pid);
    let counted = agent.metric_sum("escapewatch_alerts_total", "rule=\"namespace-join-host\"");
    assert_eq!(counted, 1.0, "escapewatch_alerts_total on /metrics");
    let deadline = Instant::now() + Duration::from_secs(60);
    let alerts = loop {
        let alerts = prom.get("/api/v1/alerts").unwrap_or_default();
        if alerts.contains("EscapewatchCriticalAlert")
            && alerts.contains("\"state\":\"firing\"")
            && alerts.contains("namespace-join-host")
        {
            break alerts;
        }
        assert!(Instant::now() < deadline, "rule never fired: {alerts}");
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("prometheus: {}", &alerts[..alerts.len().min(400)]);
    drop(c);
    let _ = host.kill();
    let _ = host.wait();
    agent.stop();
}
