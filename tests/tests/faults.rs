//! Fault injection: the machine fails under the agent (the disk fills, the agent is killed
//! mid-rotation, reloads arrive in a storm during a flood). Each test says what must hold: the
//! agent neither panics nor stops detecting, and what it could not keep is counted where the
//! operator sees it. The port taken and a program detached with bpftool are in tamper.rs.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use escapewatch_integration::{
    agent::{Agent, read_jsonl, replay, work_dir},
    escape::{fork_storm, nsenter_escape},
};

const WAIT: Duration = Duration::from_secs(30);

fn no_panic(agent: &Agent) {
    let panics: Vec<&String> = agent
        .stderr
        .iter()
        .filter(|l| l.contains("panicked"))
        .collect();
    assert!(panics.is_empty(), "{panics:#?}");
}

/// An escape from a fresh container is alerted: detection still works.
fn escape_alerted(agent: &Agent) {
    let mut host = Command::new("sleep").arg("300").spawn().expect("sleep");
    let (c, pid) = nsenter_escape(host.id());
    let alert = agent.wait_for_alert(WAIT, |a| a["process"]["pid"] == pid);
    assert_eq!(alert["rule"], "namespace-join-host", "{alert:#}");
    drop(c);
    let _ = host.kill();
    let _ = host.wait();
}

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0750"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("mount");
        assert!(ok.success(), "mount a tmpfs at {}", at.display());
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_loses_counted_events_and_no_alert() {
    let dir = work_dir("fault-disk-full");
    let disk = Tmpfs::mount(&dir.join("small"), "2m");
    let event_log = disk.0.join("events.jsonl");
    let mut agent = Agent::start_logging_to(&dir, Some(""), "127.0.0.1:0", event_log.clone());
    // A fork storm fills 2 MiB of event log in about a second.
    let storm = fork_storm("disk-full-storm");
    let filled = Instant::now();
    while agent.metric_sum("escapewatch_event_log_write_errors_total", "") == 0.0 {
        assert!(filled.elapsed() < WAIT, "the event log never hit ENOSPC");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(storm);
    let line = agent.wait_for_stderr("event log write failed", WAIT);
    assert!(line.contains("No space left on device"), "{line}");
    assert!(line.contains(&event_log.display().to_string()), "{line}");
    // Detection goes on: the alert reaches the alert log (another file system).
    escape_alerted(&agent);
    let lost = agent.metric_sum("escapewatch_event_log_write_errors_total", "");
    assert!(lost > 0.0);
    agent.stop();
    no_panic(&agent);
    // What is on the disk is whole lines: a reader reads it without error.
    let lines = read_jsonl(&event_log);
    assert!(lines.len() > 100, "{} lines kept", lines.len());
}

#[test]
fn a_kill_mid_rotation_leaves_a_readable_log_and_is_reported() {
    let dir = work_dir("fault-kill-rotation");
    let config = "[logs]\nevent_log_max_bytes = 1048576\nevent_log_keep = 1000\n";
    let mut first = Agent::start_with(&dir, Some(config));
    let storm = fork_storm("kill-rotation-storm");
    // Rotations every few milliseconds, compression running behind them: kill in the middle.
    let rotating = Instant::now();
    while std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("events.jsonl."))
        })
        .count()
        < 6
    {
        assert!(rotating.elapsed() < WAIT, "no rotations");
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = first.pid();
    first.kill();
    drop(storm);
    drop(first);

    let mut second = Agent::start_with(&dir, Some(config));
    let alert = second.wait_for_alert(WAIT, |a| a["rule"] == "detector-restarted");
    assert_eq!(alert["details"]["previous_pid"], killed, "{alert:#}");
    escape_alerted(&second);
    second.stop();
    no_panic(&second);
    // Every segment, the one cut by the kill included, replays: no torn line, no half
    // compressed file taken for a segment, no temp file left after the restart's tidy.
    let mut segments: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("events.jsonl"))
        })
        .collect();
    segments.sort();
    let leftovers: Vec<_> = segments
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let paths: Vec<&Path> = segments.iter().map(std::path::PathBuf::as_path).collect();
    let out = replay(&paths);
    assert!(
        out.status.success(),
        "replay of {} segments: {}",
        paths.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed = String::from_utf8_lossy(&out.stdout);
    assert!(replayed.contains("detector-restarted"), "{replayed}");
    assert!(replayed.contains("namespace-join-host"), "{replayed}");
}

#[test]
fn a_sighup_storm_during_a_flood_loses_nothing_uncounted() {
    let dir = work_dir("fault-sighup-storm");
    let mut agent = Agent::start_with(&dir, Some(""));
    let storm = fork_storm("sighup-storm");
    let pid = agent.pid() as i32;
    let hups = 50;
    let mut host = Command::new("sleep").arg("300").spawn().expect("sleep");
    let start = Instant::now();
    let (c, escaper) = std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..hups {
                // SAFETY: kill(2) on the agent under test.
                assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        nsenter_escape(host.id())
    });
    let alert = agent.wait_for_alert(WAIT, |a| a["process"]["pid"] == escaper);
    assert_eq!(alert["rule"], "namespace-join-host");
    drop(c);
    let _ = host.kill();
    let _ = host.wait();
    drop(storm);
    // Every reload took (signals may coalesce: at least one, at most one per SIGHUP), each
    // without waiting for the compression thread (the event log stays open).
    let deadline = Instant::now() + WAIT;
    let reloads = loop {
        let n = agent.metric_sum("escapewatch_config_reloads_total", "result=\"success\"");
        if n >= 1.0 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!((1.0..=f64::from(hups)).contains(&reloads), "{reloads}");
    assert_eq!(
        agent.metric_sum("escapewatch_config_reloads_total", "result=\"failure\""),
        0.0
    );
    assert!(start.elapsed() < WAIT);
    agent.stop();
    no_panic(&agent);
    let kept_open = agent
        .stderr
        .iter()
        .filter(|l| l.contains("event log kept open"))
        .count();
    assert_eq!(
        kept_open as f64, reloads,
        "each reload kept the event log open"
    );
    // One session, one header: the log was not closed and reopened fifty times.
    let headers = read_jsonl(&agent.event_log)
        .iter()
        .filter(|l| l["format"] == "escapewatch-events")
        .count();
    assert_eq!(headers, 1);
    // The escape's events are in the log.
    let lines = read_jsonl(&agent.event_log);
    assert!(lines.iter().any(|l| l["process"]["pid"] == escaper));
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn containers_churning_for_a_minute_raise_nothing_and_leave_detection_whole() {
    use escapewatch_integration::runc::{Bundle, unique_id};
    let dir = work_dir("fault-churn");
    let mut agent = Agent::start_with(&dir, Some(""));
    let rss_before = rss_kib(agent.pid());
    let started = std::sync::atomic::AtomicU64::new(0);
    let until = Instant::now() + Duration::from_secs(60);
    // Four runners, each starting and removing short-lived containers back to back, up to
    // 1,000 in all (what the machine manages in the minute is what the test reports).
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                while Instant::now() < until
                    && started.load(std::sync::atomic::Ordering::Relaxed) < 1000
                {
                    let out = Bundle::busybox("churn")
                        .expect("bundle")
                        .args(&["sh", "-c", "ls /bin > /dev/null; echo hi"])
                        .run_foreground(&unique_id("ewc"))
                        .expect("run a churn container");
                    assert!(out.status.success(), "{out:?}");
                    started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    let churned = started.into_inner();
    eprintln!(
        "{churned} containers started and removed in {:?}",
        Duration::from_secs(60)
    );
    assert!(churned >= 20, "only {churned} containers");
    // Detection is whole afterwards: an escape from a new container is alerted as its own.
    escape_alerted(&agent);
    // Benign churn raises nothing, unless the kernel dropped events (a busy machine): then
    // the loss is counted and alerted (detector-overloaded), never silent.
    let lost = agent.metric_sum("escapewatch_events_lost_total", "");
    let alerts = agent.alerts();
    let overloaded = alerts.iter().any(|a| a["rule"] == "detector-overloaded");
    let churn_alerts: Vec<_> = alerts
        .iter()
        .filter(|a| a["rule"] != "namespace-join-host" && a["rule"] != "detector-overloaded")
        .collect();
    if lost == 0.0 {
        assert!(
            churn_alerts.is_empty(),
            "benign churn alerted: {churn_alerts:#?}"
        );
    } else {
        assert!(overloaded, "{lost} events lost without detector-overloaded");
    }
    let rss_after = rss_kib(agent.pid());
    eprintln!("events lost (counted): {lost}; RSS {rss_before} KiB -> {rss_after} KiB");
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS {rss_before} -> {rss_after} KiB"
    );
    agent.stop();
    no_panic(&agent);
}
