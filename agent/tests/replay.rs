//! Root-free: recorded event logs replay to exactly the alerts the live agent wrote, through
//! rotation and compression too; bad input gives warnings with file:line (errors with
//! --strict) and never a panic.

mod common;

use common::as_recorded;
use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use escapewatch::{
    detect::Alert,
    eventlog::{EventLog, EventLogConfig, LogFormat},
    model::{Event, LogHeader},
    replay::{ReplayError, ReplayOptions, ReplayRunError, ReplayStats, replay, replay_with},
    sink::JsonLines,
};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn fixtures() -> Vec<(PathBuf, PathBuf)> {
    let mut out: Vec<(PathBuf, PathBuf)> = fs::read_dir(fixture_dir())
        .expect("tests/fixtures exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".events.jsonl") || name.ends_with(".events.jsonl.zst")
        })
        .map(|events| {
            let name = events.to_string_lossy();
            let stem = name.strip_suffix(".zst").unwrap_or(&name);
            let alerts = PathBuf::from(stem.replace(".events.jsonl", ".alerts.jsonl"));
            (events, alerts)
        })
        .collect();
    out.sort();
    out
}

fn two_containers() -> (PathBuf, String) {
    let events = fixture_dir().join("incident-two-containers.events.jsonl");
    let alerts = fs::read_to_string(fixture_dir().join("incident-two-containers.alerts.jsonl"))
        .expect("alerts fixture");
    (events, alerts)
}

fn run_replay(paths: &[PathBuf], strict: bool) -> Result<(String, ReplayStats), ReplayRunError> {
    let file = tempfile("replay-out");
    let mut out = JsonLines::open(Some(&file)).expect("open output");
    let opts = ReplayOptions {
        strict,
        ..ReplayOptions::default()
    };
    let stats = replay_with(paths, &opts, |a| out.write(a))?;
    out.flush().expect("flush");
    Ok((
        as_recorded(&fs::read_to_string(&file).expect("read output")),
        stats,
    ))
}

fn tempdir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "escapewatch-replay-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn tempfile(name: &str) -> PathBuf {
    tempdir(name).join(name)
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tempfile(name);
    fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

fn fixture_text() -> String {
    fs::read_to_string(two_containers().0).unwrap()
}

fn header_line() -> String {
    fixture_text().lines().next().unwrap().to_owned()
}

#[test]
fn recorded_scenarios_replay_to_the_live_alerts_byte_for_byte() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 2, "fixtures missing in tests/fixtures");
    for (events, alerts) in fixtures {
        let expected =
            fs::read_to_string(&alerts).unwrap_or_else(|e| panic!("{}: {e}", alerts.display()));
        assert!(!expected.is_empty(), "{} has no alert", alerts.display());
        let got = replay_to_string(&events);
        assert_eq!(got, expected, "replay of {} differs", events.display());
    }
}

/// The typed model writes every recorded event line back byte for byte: integers and enums in
/// `model::Event` keep the JSON the log has always had.
#[test]
fn recorded_event_lines_round_trip_through_the_typed_model_byte_for_byte() {
    let mut lines = 0;
    for (events, _) in fixtures() {
        let bytes = fs::read(&events).unwrap();
        let text = if events.extension().is_some_and(|x| x == "zst") {
            String::from_utf8(zstd::decode_all(&bytes[..]).unwrap()).unwrap()
        } else {
            String::from_utf8(bytes).unwrap()
        };
        for (n, line) in text.lines().enumerate().skip(1) {
            let event: escapewatch::model::Event = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", events.display(), n + 1));
            let again = serde_json::to_string(&event).unwrap();
            assert_eq!(again, line, "{}:{} changed", events.display(), n + 1);
            lines += 1;
        }
    }
    assert!(lines > 1000, "only {lines} event lines in the fixtures");
}

fn replay_to_string(events: &Path) -> String {
    let file = tempfile("plain-out");
    let mut out = JsonLines::open(Some(&file)).unwrap();
    replay(&[events.to_owned()], |a| out.write(a)).expect("replay");
    out.flush().unwrap();
    as_recorded(&fs::read_to_string(file).unwrap())
}

fn replay_full(events: &Path) -> Vec<Alert> {
    let mut alerts = Vec::new();
    replay(&[events.to_owned()], |a| {
        alerts.push(a.clone());
        Ok(())
    })
    .expect("replay");
    alerts
}

fn header_of(events: &Path) -> LogHeader {
    let text = fs::read_to_string(events).unwrap();
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

/// Every fixture's alerts carry the node of the log's header and an id; replaying again
/// gives the same ids; no two alerts of all fixtures share one.
#[test]
fn identity_comes_from_the_recorded_header_and_is_stable_across_replays() {
    let mut seen = std::collections::BTreeMap::new();
    for (events, _) in fixtures() {
        let header = header_of(&events);
        let first = replay_full(&events);
        assert_eq!(first, replay_full(&events), "{}", events.display());
        for a in &first {
            let node = a.node.as_ref().unwrap();
            assert_eq!(
                node.name, header.hostname,
                "old logs name the node by hostname"
            );
            assert_eq!(node.hostname, header.hostname);
            assert_eq!(node.agent_version, header.agent_version);
            assert_eq!(
                node.schema_version,
                escapewatch::identity::ALERT_SCHEMA_VERSION
            );
            if let Some(other) = seen.insert(a.id.clone(), (events.clone(), a.rule.clone())) {
                panic!(
                    "{} shared by {other:?} and {} {}",
                    a.id,
                    events.display(),
                    a.rule
                );
            }
        }
    }
    assert!(seen.len() > 50, "only {} alerts", seen.len());
}

/// A header with node name, cluster and boot id (what agents write now) gives alerts with
/// them; another boot gives other ids for the same events.
#[test]
fn identity_follows_node_name_cluster_and_boot_id_of_the_header() {
    let (events, _) = two_containers();
    let text = fixture_text();
    let mut header: LogHeader = serde_json::from_str(&header_line()).unwrap();
    let plain = replay_full(&events);
    let mut ids = Vec::new();
    for boot in [
        "3f1c9a52-0c1e-4a8e-9d27-5a0f64f0b1a1",
        "7d2e0b13-9b4c-4d6f-8e10-2c3b4a5d6e7f",
    ] {
        header.node_name = "worker-3".into();
        header.cluster = "prod-eu".into();
        header.boot_id = boot.into();
        let body: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
        let p = write(
            "with-identity.events.jsonl",
            format!("{}\n{body}", serde_json::to_string(&header).unwrap()).as_bytes(),
        );
        let got = replay_full(&p);
        assert_eq!(got.len(), plain.len());
        for (g, p) in got.iter().zip(&plain) {
            let node = g.node.as_ref().unwrap();
            assert_eq!(node.name, "worker-3");
            assert_eq!(node.cluster.as_deref(), Some("prod-eu"));
            assert_eq!(node.hostname, header.hostname);
            assert_ne!(g.id, p.id, "the boot id is part of the alert id");
        }
        ids.push(got.into_iter().map(|a| a.id).collect::<Vec<_>>());
    }
    assert_ne!(ids[0], ids[1]);
}

/// Write `events` (a log's event lines) through the rotating writer, as the daemon does.
fn write_rotated(
    dir: &Path,
    events: &[&str],
    max_bytes: u64,
    keep: u32,
    format: LogFormat,
) -> PathBuf {
    let header: LogHeader = serde_json::from_str(&header_line()).unwrap();
    let path = dir.join("events.jsonl");
    let mut log = EventLog::open(
        EventLogConfig {
            path: path.clone(),
            max_bytes,
            keep,
            format,
        },
        header,
    )
    .expect("open event log");
    assert_eq!(log.format(), format);
    for line in events {
        let event: Event = serde_json::from_str(line).unwrap();
        log.write(&event);
    }
    let stats = log.close();
    assert_eq!(stats.write_errors, 0);
    path
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

#[test]
fn rotated_compressed_segments_replay_exactly_in_any_given_order() {
    for format in [LogFormat::Jsonl, LogFormat::Binary] {
        rotated_segments_replay_exactly(format);
    }
}

fn rotated_segments_replay_exactly(format: LogFormat) {
    let (_, expected) = two_containers();
    let text = fixture_text();
    let events: Vec<&str> = text.lines().skip(1).collect();
    let dir = tempdir("rotated");
    // Binary records are about half the size of JSON lines: a smaller limit gives as many
    // segments.
    let max = match format {
        LogFormat::Jsonl => 8 * 1024,
        LogFormat::Binary => 4 * 1024,
    };
    write_rotated(&dir, &events, max, 100, format);
    let files = listing(&dir);
    let zst = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "zst"))
        .count();
    assert!(
        zst >= 3,
        "rotation must leave compressed segments: {files:?}"
    );
    assert!(
        !files.iter().any(|p| p.to_string_lossy().ends_with(".tmp")),
        "{files:?}"
    );
    // A shell glob order (active segment first), reversed for good measure.
    let mut given = files.clone();
    given.reverse();
    let (got, stats) = run_replay(&given, true).expect("replay of segments");
    assert_eq!(got, expected);
    assert_eq!(stats.sessions, 1, "continuations are one session");
    assert_eq!(stats.read.warnings, 0);
    // Every segment is self-contained: it starts with a header.
    for f in &files {
        let (_, s) = run_replay(std::slice::from_ref(f), true).expect("segment alone");
        assert_eq!(s.sessions, 1, "{}", f.display());
    }
}

#[test]
fn retention_keeps_the_newest_segments() {
    let text = fixture_text();
    let events: Vec<&str> = text.lines().skip(1).collect();
    let dir = tempdir("retention");
    write_rotated(&dir, &events, 4 * 1024, 2, LogFormat::Binary);
    let rotated: Vec<PathBuf> = listing(&dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".zst"))
        .collect();
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    // A later agent start appends a new session and continues the numbering.
    let path = write_rotated(&dir, &events[..3], 4 * 1024, 2, LogFormat::Binary);
    let (_, stats) = run_replay(&listing(&dir), false).unwrap();
    assert!(stats.sessions >= 2, "{stats:?}");
    assert!(path.exists());
}

#[test]
fn a_partial_last_line_is_cut_when_the_writer_reopens() {
    let dir = tempdir("reopen");
    let path = dir.join("events.jsonl");
    let mut text = fixture_text();
    text.push_str("{\"id\":999,\"time\":\"2026-");
    fs::write(&path, &text).unwrap();
    let header: LogHeader = serde_json::from_str(&header_line()).unwrap();
    let log = EventLog::open(
        EventLogConfig {
            path: path.clone(),
            max_bytes: 1 << 30,
            keep: 1,
            format: LogFormat::Jsonl,
        },
        header,
    )
    .unwrap();
    drop(log);
    let (got, stats) = run_replay(&[path], true).expect("strict replay after repair");
    assert_eq!(got, two_containers().1);
    assert_eq!(stats.sessions, 2);
}

fn cli(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_escapewatch"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run escapewatch");
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "must succeed; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    (stdout, stderr)
}

fn fails(out: &Output, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "must fail; stderr: {stderr}");
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn cli_reads_zstd_from_stdin() {
    let (events, expected) = two_containers();
    let packed = zstd::encode_all(&fs::read(&events).unwrap()[..], 3).unwrap();
    let (stdout, _) = ok(&cli(&["replay", "-"], Some(&packed)));
    assert_eq!(as_recorded(&stdout), expected);
}

#[test]
fn truncated_last_line_warns_and_continues_even_when_strict() {
    let (_, expected) = two_containers();
    let text = format!("{}{{\"id\":95,\"time\":\"2026-11", fixture_text());
    let p = write("truncated", text.as_bytes());
    for strict in [false, true] {
        let (got, stats) = run_replay(std::slice::from_ref(&p), strict).expect("replay");
        assert_eq!(got, expected);
        assert_eq!(stats.read.warnings, 1);
        let w = &stats.read.first_warnings[0];
        assert!(
            w.contains(&format!("{}:96: truncated last line", p.display())),
            "{w}"
        );
    }
}

#[test]
fn corrupt_line_warns_with_file_line_and_reason_and_strict_makes_it_fatal() {
    let (_, expected) = two_containers();
    let mut lines: Vec<String> = fixture_text().lines().map(str::to_owned).collect();
    lines.insert(3, "{\"id\": 1, \"time\": ".into());
    lines.insert(5, "not json at all".into());
    let p = write("corrupt", (lines.join("\n") + "\n").as_bytes());
    let (got, stats) = run_replay(std::slice::from_ref(&p), false).expect("lenient");
    assert_eq!(got, expected, "the damaged lines are skipped, nothing else");
    assert_eq!(stats.read.warnings, 2);
    assert!(
        stats.read.first_warnings[0]
            .starts_with(&format!("{}:4: corrupt event line: ", p.display())),
        "{:?}",
        stats.read.first_warnings
    );
    let e = run_replay(std::slice::from_ref(&p), true)
        .expect_err("strict")
        .to_string();
    assert!(
        e.starts_with(&format!("{}:4: corrupt event line", p.display())),
        "{e}"
    );
    let (_, stderr) = ok(&cli(&["replay", p.to_str().unwrap()], None));
    assert!(stderr.contains(&format!("{}:6: corrupt event line", p.display())));
    fails(
        &cli(&["replay", "--strict", p.to_str().unwrap()], None),
        &format!("{}:4:", p.display()),
    );
}

#[test]
fn unknown_schema_version_names_both_versions() {
    // A future header may carry fields this build does not know: the version still decides.
    let text = header_line().replace(
        "\"schema_version\":1",
        "\"schema_version\":99,\"new_field\":true",
    );
    let p = write("version", text.as_bytes());
    for strict in [false, true] {
        let e = run_replay(std::slice::from_ref(&p), strict).unwrap_err();
        assert!(
            matches!(
                e,
                ReplayRunError::Log(ReplayError::Version {
                    found: 99,
                    expected: 1,
                    ..
                })
            ),
            "{e}"
        );
        let e = e.to_string();
        assert!(
            e.contains("schema version 99") && e.contains("reads version 1"),
            "{e}"
        );
    }
}

#[test]
fn gigantic_lines_are_skipped_without_being_held() {
    let (_, expected) = two_containers();
    let mut bytes = fixture_text().into_bytes();
    // 64 MiB without a newline, then the log goes on.
    bytes.extend(std::iter::repeat_n(b'x', 64 << 20));
    bytes.push(b'\n');
    bytes.extend_from_slice(fixture_text().lines().nth(1).unwrap().as_bytes());
    bytes.push(b'\n');
    let p = write("gigantic", &bytes);
    let (got, stats) = run_replay(std::slice::from_ref(&p), false).expect("lenient");
    assert_eq!(got, expected);
    assert!(
        stats.read.first_warnings[0].contains("longer than the 1048576-byte limit"),
        "{:?}",
        stats.read.first_warnings
    );
    assert!(run_replay(&[p], true).is_err());
}

#[test]
fn binary_garbage_and_files_that_are_not_logs() {
    let (_, expected) = two_containers();
    // A binary file: not an event log at all.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let p = write("garbage", &garbage);
    for strict in [false, true] {
        let e = run_replay(std::slice::from_ref(&p), strict)
            .unwrap_err()
            .to_string();
        assert!(e.contains(":1: not an escapewatch event log"), "{e}");
    }
    // Garbage inside a log: skipped with a warning.
    let mut bytes = fixture_text().into_bytes();
    bytes.extend_from_slice(&garbage);
    bytes.push(b'\n');
    let p = write("garbage-inside", &bytes);
    let (got, stats) = run_replay(&[p], false).expect("lenient");
    assert_eq!(got, expected);
    assert!(stats.read.warnings >= 1);
    // An event before any header (the alert log given by mistake).
    let second = fixture_text().lines().nth(1).unwrap().to_owned();
    let p = write("headless", format!("{second}\n").as_bytes());
    let e = run_replay(&[p], false).unwrap_err().to_string();
    assert!(e.contains("first line must be its header"), "{e}");
    let missing = run_replay(&[PathBuf::from("/nonexistent/events.jsonl")], false).unwrap_err();
    assert!(matches!(
        missing,
        ReplayRunError::Log(ReplayError::Open { .. })
    ));
}

#[test]
fn empty_files_and_damaged_zstd_are_skipped_unless_strict() {
    let (events, expected) = two_containers();
    let empty = write("empty", b"");
    let full = zstd::encode_all(&fs::read(&events).unwrap()[..], 3).unwrap();
    let cut = write("cut.zst", &full[..full.len() / 2]);
    let paths = [empty.clone(), events.clone()];
    let (got, stats) = run_replay(&paths, false).expect("lenient");
    assert_eq!(got, expected);
    assert!(stats.read.first_warnings[0].contains("empty file"));
    let e = run_replay(&paths, true).unwrap_err().to_string();
    assert!(e.contains("empty file"), "{e}");
    // A zstd segment cut short: what it held up to the damage counts, then a warning.
    let (_, stats) = run_replay(std::slice::from_ref(&cut), false).expect("lenient");
    assert!(
        stats
            .read
            .first_warnings
            .iter()
            .any(|w| w.contains("cannot read")),
        "{:?}",
        stats.read.first_warnings
    );
    assert!(run_replay(&[cut], true).is_err());
}
