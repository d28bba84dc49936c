//! Root-free: recorded event logs from the privileged scenarios replay to exactly the alerts
//! the live agent wrote, and bad logs give clear errors (file:line, reason) without panics.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use escapewatch::{
    replay::{ReplayError, ReplayRunError, replay},
    sink::JsonLines,
};

fn fixtures() -> Vec<(PathBuf, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut out: Vec<(PathBuf, PathBuf)> = fs::read_dir(&dir)
        .expect("tests/fixtures exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".events.jsonl"))
        .map(|events| {
            let alerts = PathBuf::from(
                events
                    .to_string_lossy()
                    .replace(".events.jsonl", ".alerts.jsonl"),
            );
            (events, alerts)
        })
        .collect();
    out.sort();
    out
}

/// Alerts of `paths` as the CLI prints them (JSON Lines).
fn replay_to_string(paths: &[PathBuf]) -> Result<String, ReplayRunError> {
    let file = tempfile("replay-out");
    let mut out = JsonLines::open(Some(&file)).expect("open output");
    replay(paths, |a| out.write(a))?;
    out.flush().expect("flush");
    Ok(fs::read_to_string(&file).expect("read output"))
}

fn tempfile(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("escapewatch-replay-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{name}-{}", rand_suffix()));
    let _ = fs::remove_file(&p);
    p
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn recorded_scenarios_replay_to_the_live_alerts_byte_for_byte() {
    let fixtures = fixtures();
    assert!(
        !fixtures.is_empty(),
        "no fixtures recorded in tests/fixtures"
    );
    for (events, alerts) in fixtures {
        let expected =
            fs::read_to_string(&alerts).unwrap_or_else(|e| panic!("{}: {e}", alerts.display()));
        assert!(!expected.is_empty(), "{} has no alert", alerts.display());
        let got = replay_to_string(std::slice::from_ref(&events)).expect("replay");
        assert_eq!(
            got,
            expected,
            "replay of {} differs from the live alerts",
            events.display()
        );
    }
}

fn write(name: &str, text: &str) -> PathBuf {
    let p = tempfile(name);
    fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p
}

fn header_line() -> String {
    let fixture = &fixtures()[0].0;
    fs::read_to_string(fixture)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned()
}

fn replay_err(text: &str) -> (PathBuf, String) {
    let p = write("bad", text);
    let e = replay_to_string(std::slice::from_ref(&p)).expect_err("must fail");
    (p, e.to_string())
}

#[test]
fn corrupt_line_names_file_line_and_reason() {
    let text = format!("{}\n{{\"id\": 1, \"time\": \n", header_line());
    let (p, e) = replay_err(&text);
    assert!(
        e.starts_with(&format!("{}:2: corrupt event line", p.display())),
        "{e}"
    );
}

#[test]
fn unknown_schema_version_names_both_versions() {
    let text = header_line().replace("\"schema_version\":1", "\"schema_version\":99");
    let (_, e) = replay_err(&text);
    assert!(
        e.contains("schema version 99") && e.contains("reads version 1"),
        "{e}"
    );
}

#[test]
fn empty_file_binary_garbage_and_missing_header_are_errors() {
    let (_, e) = replay_err("");
    assert!(e.contains("empty file"), "{e}");
    let (_, e) = replay_err("\u{0}\u{1}garbage\u{ff}\n");
    assert!(e.contains(":1: not an escapewatch event log"), "{e}");
    let fixture = fs::read_to_string(&fixtures()[0].0).unwrap();
    let second = fixture.lines().nth(1).unwrap();
    let (_, e) = replay_err(&format!("{second}\n"));
    assert!(e.contains("first line must be its header"), "{e}");
    let missing = replay_to_string(&[PathBuf::from("/nonexistent/events.jsonl")]).unwrap_err();
    assert!(matches!(
        missing,
        ReplayRunError::Log(ReplayError::Open { .. })
    ));
}

#[test]
fn cli_replay_of_a_corrupt_log_exits_non_zero_with_file_and_line() {
    let text = format!("{}\nnot json\n", header_line());
    let p = write("cli-bad", &text);
    let out = Command::new(env!("CARGO_BIN_EXE_escapewatch"))
        .arg("replay")
        .arg(&p)
        .output()
        .expect("run escapewatch");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}:2:", p.display())), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
