//! Root-free: every `escapewatch replay` filter and format, on the hand-made two-container
//! fixture (one escape in a docker container at 00:15, one in a runc container at 02:15).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use escapewatch::{
    detect::{Alert, Severity},
    replay::{AlertFilter, parse_severity, parse_time_arg},
};

const DOCKER: &str = "c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0a1b2c3d4e";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/incident-two-containers.events.jsonl")
}

fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_escapewatch"))
        .arg("replay")
        .arg(fixture())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run escapewatch")
}

/// The alerts printed (JSON), as their process pids.
fn pids(args: &[&str]) -> Vec<u64> {
    let out = replay(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let a: serde_json::Value = serde_json::from_str(l).expect("alert JSON");
            a["process"]["pid"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn no_filter_gives_both_alerts() {
    assert_eq!(pids(&[]), [3458, 4458]);
}

#[test]
fn since_and_until() {
    assert_eq!(pids(&["--since", "2026-11-23T01:00:00Z"]), [4458]);
    assert_eq!(pids(&["--until", "2026-11-23T01:00:00"]), [3458]);
    assert_eq!(pids(&["--since", "2026-11-23"]), [3458, 4458]);
    assert_eq!(
        pids(&[
            "--since",
            "2026-11-23T03:15:44+02:00",
            "--until",
            "2026-11-23T02:30:00Z"
        ]),
        [4458]
    );
    let out = replay(&["--since", "yesterday"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a time"));
}

#[test]
fn container_by_id_prefix_path_or_host() {
    assert_eq!(pids(&["--container", DOCKER]), [3458]);
    assert_eq!(pids(&["--container", "c0ffee012345"]), [3458]);
    assert_eq!(pids(&["--container", "/ewt-3416-1-43d3d111"]), [4458]);
    assert_eq!(pids(&["--container", "c0ffee,/ewt"]), [3458, 4458]);
    assert_eq!(pids(&["--container", "host"]), Vec::<u64>::new());
}

#[test]
fn rule_and_severity() {
    assert_eq!(pids(&["--rule", "namespace-join-host"]), [3458, 4458]);
    assert_eq!(pids(&["--rule", "no-such-rule"]), Vec::<u64>::new());
    assert_eq!(pids(&["--severity", "critical"]), [3458, 4458]);
    assert_eq!(pids(&["--severity", "HIGH"]), [3458, 4458]);
    let out = replay(&["--severity", "urgent"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a severity"));
}

#[test]
fn table_format() {
    let out = replay(&["--format", "table"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("TIME (UTC)") && lines[0].contains("SUMMARY"));
    assert!(lines[1].starts_with("2026-11-23 00:15:44.814  critical  namespace-join-host"));
    assert!(
        lines[1].contains("c0ffee012345"),
        "short docker id: {}",
        lines[1]
    );
    assert!(lines[2].contains("/ewt-3416-1-43d3d111") && lines[2].contains("4458"));
}

fn alert(severity: Severity, container: Option<&str>, time: &str) -> Alert {
    serde_json::from_value(serde_json::json!({
        "time": time, "rule": "r", "severity": severity, "summary": "", "mitre": "",
        "container": container.map(|c| serde_json::json!({"id": c, "runtime": "docker"})),
        "process": {"pid": 1, "ppid": 0, "comm": "", "exe": "", "uid": 0},
        "details": {}, "event_ids": [1], "explanation": ""
    }))
    .unwrap()
}

#[test]
fn severity_is_a_minimum_and_time_filters_drop_unparseable_times() {
    let f = AlertFilter {
        severity: Some(parse_severity("high").unwrap()),
        ..AlertFilter::default()
    };
    let t = "2026-11-23T00:00:00Z";
    assert!(!f.matches(&alert(Severity::Medium, None, t)));
    assert!(f.matches(&alert(Severity::High, None, t)));
    assert!(f.matches(&alert(Severity::Critical, None, t)));
    let f = AlertFilter {
        containers: vec!["host".into()],
        since: Some(parse_time_arg("2026-01-01").unwrap()),
        ..AlertFilter::default()
    };
    assert!(f.matches(&alert(Severity::Low, None, t)));
    assert!(!f.matches(&alert(Severity::Low, Some("abc"), t)));
    assert!(!f.matches(&alert(Severity::Low, None, "not a time")));
}

#[test]
fn rules_from_applies_todays_allowlists_and_severities() {
    let dir = std::env::temp_dir().join(format!("ew-rules-from-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        "[rules.namespace-join-host]\nseverity = \"medium\"\n\
         [[rules.namespace-join-host.allow]]\nruntime = \"docker\"\nreason = \"CI runners nsenter on purpose\"\n",
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    assert_eq!(
        pids(&["--rules-from", cfg]),
        [4458],
        "the docker one is allowlisted"
    );
    assert_eq!(
        pids(&["--rules-from", cfg, "--severity", "high"]),
        Vec::<u64>::new()
    );
    let out = replay(&["--rules-from", "/nonexistent/config.toml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/config.toml"));
    let _ = std::fs::remove_dir_all(dir);
}
