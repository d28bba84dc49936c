//! Root-free: the log directory may hold what an attacker planted there. A symbolic link in
//! place of the event log, the alert log or a rotated segment is refused and never written or
//! read through; files the agent creates are 0640.

use std::{
    fs,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
};

use escapewatch::{
    eventlog::{EventLog, EventLogConfig, EventLogStats, LogFormat},
    model::LogHeader,
    sink::JsonLines,
};

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "escapewatch-logfiles-{}-{name}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn header() -> LogHeader {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/incident-two-containers.events.jsonl");
    let text = fs::read_to_string(fixture).unwrap();
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

fn config(path: &Path) -> EventLogConfig {
    EventLogConfig {
        path: path.to_owned(),
        max_bytes: 1 << 20,
        keep: 10,
        // These tests are about the files, not the format: JSON Lines shows the bytes.
        format: LogFormat::Jsonl,
    }
}

/// A file outside the log directory the link points at, with what must stay there.
fn precious(dir: &Path) -> PathBuf {
    let target = dir.join("precious");
    fs::write(&target, "root:secret:0:0\n").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
    target
}

/// A log directory `logs/` and, beside it, the file an attacker's link points at.
fn attacked_log_dir(name: &str) -> (PathBuf, PathBuf) {
    let dir = tempdir(name);
    let target = precious(&dir);
    let logs = dir.join("logs");
    fs::create_dir(&logs).unwrap();
    (target, logs)
}

fn assert_untouched(target: &Path) {
    assert_eq!(fs::read_to_string(target).unwrap(), "root:secret:0:0\n");
    assert_eq!(
        fs::metadata(target).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

/// Open and close a log in `dir` (which runs the compression thread once).
fn open_and_close(path: &Path) -> EventLogStats {
    let mut log = EventLog::open(config(path), header()).expect("open event log");
    log.write_json(&serde_json::json!({"probe": 1}));
    log.close()
}

#[test]
fn a_symlink_at_the_event_log_path_is_refused_and_its_target_untouched() {
    let (target, logs) = attacked_log_dir("event-link");
    let path = logs.join("events.jsonl");
    symlink(&target, &path).unwrap();
    let e = EventLog::open(config(&path), header())
        .err()
        .expect("a link at the event-log path must be refused");
    let chain = format!("{e}: {}", std::error::Error::source(&e).unwrap());
    assert!(chain.contains(&path.display().to_string()), "{chain}");
    assert!(chain.contains("symbolic link"), "{chain}");
    assert_untouched(&target);
    assert!(fs::symlink_metadata(&path).unwrap().is_symlink());
}

#[test]
fn a_symlink_at_the_alert_log_path_is_refused_and_its_target_untouched() {
    let (target, logs) = attacked_log_dir("alert-link");
    let path = logs.join("alerts.jsonl");
    symlink(&target, &path).unwrap();
    let e = JsonLines::open(Some(&path))
        .err()
        .expect("a link at the alert-log path must be refused");
    let chain = format!("{e}: {}", std::error::Error::source(&e).unwrap());
    assert!(chain.contains(&path.display().to_string()), "{chain}");
    assert!(chain.contains("symbolic link"), "{chain}");
    assert_untouched(&target);
}

#[test]
fn a_symlink_planted_at_a_segment_name_is_neither_read_nor_compressed() {
    let (target, logs) = attacked_log_dir("segment-link");
    let planted = logs.join("events.jsonl.000001");
    symlink(&target, &planted).unwrap();
    let stats = open_and_close(&logs.join("events.jsonl"));
    // Refused and counted (and logged), not copied into a log file anyone in the group reads.
    assert_eq!(stats.compress_errors, 1, "{stats:?}");
    assert_eq!(stats.compressed, 0, "{stats:?}");
    assert!(!logs.join("events.jsonl.000001.zst").exists());
    assert_untouched(&target);
}

#[test]
fn a_symlink_planted_at_the_compressed_name_does_not_cost_the_segment() {
    let (target, logs) = attacked_log_dir("zst-link");
    let plain = logs.join("events.jsonl.000001");
    let h = serde_json::to_string(&header()).unwrap();
    fs::write(&plain, format!("{h}\n")).unwrap();
    let packed = logs.join("events.jsonl.000001.zst");
    // A link to an existing file made the thread take the segment for compressed already and
    // delete the only copy.
    symlink(&target, &packed).unwrap();
    let stats = open_and_close(&logs.join("events.jsonl"));
    assert_eq!(stats.compressed, 1, "{stats:?}");
    let meta = fs::symlink_metadata(&packed).unwrap();
    assert!(meta.is_file(), "the segment's own .zst replaced the link");
    let restored = zstd::decode_all(fs::File::open(&packed).unwrap()).unwrap();
    assert_eq!(String::from_utf8(restored).unwrap(), format!("{h}\n"));
    assert_untouched(&target);
}

#[test]
fn log_files_are_created_0640() {
    let dir = tempdir("modes");
    let path = dir.join("events.jsonl");
    let h = serde_json::to_string(&header()).unwrap();
    fs::write(dir.join("events.jsonl.000001"), format!("{h}\n")).unwrap();
    let stats = open_and_close(&path);
    assert_eq!(stats.compressed, 1, "{stats:?}");
    assert_eq!(mode(&path), 0o640);
    assert_eq!(mode(&dir.join("events.jsonl.000001.zst")), 0o640);
    let alerts = dir.join("alerts.jsonl");
    drop(JsonLines::open(Some(&alerts)).unwrap());
    assert_eq!(mode(&alerts), 0o640);
}

#[test]
fn an_active_segment_replaced_by_a_symlink_is_not_rotated() {
    let (target, logs) = attacked_log_dir("active-link");
    let path = logs.join("events.jsonl");
    let mut log = EventLog::open(
        EventLogConfig {
            max_bytes: 4096,
            ..config(&path)
        },
        header(),
    )
    .unwrap();
    log.write_json(&serde_json::json!({"probe": 0}));
    log.flush();
    fs::remove_file(&path).unwrap();
    symlink(&target, &path).unwrap();
    for i in 0..200 {
        log.write_json(&serde_json::json!({"probe": i, "pad": "x".repeat(64)}));
    }
    let stats = log.close();
    assert_eq!(stats.rotations, 0, "{stats:?}");
    assert!(stats.rotation_errors >= 1, "{stats:?}");
    assert!(fs::symlink_metadata(&path).unwrap().is_symlink());
    assert!(!logs.join("events.jsonl.000001").exists());
    assert!(!logs.join("events.jsonl.000001.zst").exists());
    assert_untouched(&target);
}
