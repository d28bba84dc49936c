//! Root-free: the binary event log. Every recorded fixture, written through the writer in the
//! binary format, replays to the same alerts as its JSON Lines and exports back to the same
//! lines; damage to a block is reported with file and offset, counted, and costs nothing after
//! the next good block; a partial last block is cut when the writer reopens.

mod common;

use common::as_recorded;
use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use escapewatch::{
    eventlog::{
        EventLog, EventLogConfig, LogFormat,
        binary::{self, BLOCK_HEADER_LEN, BLOCK_MAGIC, FILE_HEADER_LEN, FILE_MAGIC},
    },
    model::{Event, LogHeader},
    replay::{self, ReplayError, ReplayOptions, ReplayRunError, ReplayStats, replay_with},
    sink::JsonLines,
};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// (events, alerts) of every recorded scenario.
fn fixtures() -> Vec<(PathBuf, PathBuf)> {
    let mut out: Vec<(PathBuf, PathBuf)> = fs::read_dir(fixture_dir())
        .unwrap()
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

fn tempdir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "escapewatch-binlog-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fixture's header and events.
fn read_fixture(path: &Path) -> (LogHeader, Vec<Event>, Vec<String>) {
    let text = fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = serde_json::from_str(lines.next().unwrap()).unwrap();
    let lines: Vec<String> = lines.map(str::to_owned).collect();
    let events = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (header, events, lines)
}

fn config(path: &Path, format: LogFormat) -> EventLogConfig {
    EventLogConfig {
        path: path.to_owned(),
        max_bytes: 1 << 30,
        keep: 10,
        format,
    }
}

/// Write `events` as the daemon does, flushing (one block) every `batch` events.
fn write_log(path: &Path, header: &LogHeader, events: &[Event], batch: usize) {
    let mut log = EventLog::open(config(path, LogFormat::Binary), header.clone()).unwrap();
    for (i, e) in events.iter().enumerate() {
        log.write(e);
        if (i + 1) % batch == 0 {
            log.flush();
        }
    }
    let stats = log.close();
    assert_eq!(stats.write_errors, 0, "{stats:?}");
}

fn run_replay(paths: &[PathBuf], strict: bool) -> Result<(String, ReplayStats), ReplayRunError> {
    let dir = tempdir("out");
    let file = dir.join("alerts");
    let mut out = JsonLines::open(Some(&file)).unwrap();
    let opts = ReplayOptions {
        strict,
        ..ReplayOptions::default()
    };
    let stats = replay_with(paths, &opts, |a| out.write(a))?;
    out.flush().unwrap();
    Ok((as_recorded(&fs::read_to_string(&file).unwrap()), stats))
}

#[test]
fn every_fixture_written_as_binary_replays_to_its_alerts_and_exports_to_its_lines() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 20, "only {} fixtures", fixtures.len());
    let dir = tempdir("fixtures");
    for (events_path, alerts_path) in fixtures {
        let (header, events, lines) = read_fixture(&events_path);
        let log = dir.join(events_path.file_name().unwrap());
        write_log(&log, &header, &events, 7);
        let bytes = fs::read(&log).unwrap();
        assert!(bytes.starts_with(&FILE_MAGIC), "{}", log.display());
        let json_size = fs::metadata(&events_path).unwrap().len();
        assert!(
            (bytes.len() as u64) < json_size,
            "{}: binary {} bytes, JSON {json_size}",
            log.display(),
            bytes.len()
        );
        // Decoding into the event decoded before (as replay does) gives each event exactly.
        let mut reused = binary::blank_event();
        let (mut buf, mut scratch) = (Vec::new(), Vec::new());
        for e in &events {
            buf.clear();
            binary::put_event(&mut buf, &mut scratch, e);
            let (_, body, _) = binary::next_record(&buf).unwrap();
            binary::decode_event_into(body, &mut reused).unwrap();
            assert_eq!(&reused, e, "{}", events_path.display());
        }
        // The same alerts, byte for byte, as the recorded live ones (and the JSONL replay).
        let expected = fs::read_to_string(&alerts_path).unwrap();
        let (got, stats) = run_replay(std::slice::from_ref(&log), true).unwrap();
        assert_eq!(got, expected, "binary replay of {}", events_path.display());
        assert_eq!(stats.events, events.len() as u64);
        assert_eq!(stats.read.warnings, 0);
        // Export gives back the recorded event lines exactly: decoding is lossless.
        let mut out = Vec::new();
        let ex =
            replay::export(std::slice::from_ref(&log), true, LogFormat::Jsonl, &mut out).unwrap();
        assert_eq!((ex.headers, ex.events), (1, events.len() as u64));
        let text = String::from_utf8(out).unwrap();
        let mut exported = text.lines();
        let h: LogHeader = serde_json::from_str(exported.next().unwrap()).unwrap();
        assert_eq!(h, header);
        let exported: Vec<&str> = exported.collect();
        assert_eq!(exported, lines, "export of {}", log.display());
    }
}

/// A log of the two-containers fixture written in blocks of `batch` events.
fn two_containers_log(dir: &Path, batch: usize) -> (PathBuf, Vec<Event>) {
    let (header, events, _) =
        read_fixture(&fixture_dir().join("incident-two-containers.events.jsonl"));
    let path = dir.join("events.jsonl");
    write_log(&path, &header, &events, batch);
    (path, events)
}

/// Offsets of the block headers of a binary log (the header block first).
fn block_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = FILE_HEADER_LEN;
    while at + BLOCK_HEADER_LEN <= bytes.len() {
        assert_eq!(bytes[at..at + 4], BLOCK_MAGIC);
        out.push(at);
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        at += BLOCK_HEADER_LEN + len;
    }
    assert_eq!(at, bytes.len());
    out
}

fn event_ids(path: &Path) -> Vec<u64> {
    let mut out = Vec::new();
    replay::export(&[path.to_owned()], false, LogFormat::Jsonl, &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<Event>(l).unwrap().id)
        .collect()
}

#[test]
fn a_damaged_block_is_reported_with_file_and_offset_counted_and_costs_only_itself() {
    let dir = tempdir("damage");
    let (path, events) = two_containers_log(&dir, 10);
    let clean = fs::read(&path).unwrap();
    let blocks = block_offsets(&clean);
    // The header block, then blocks of 10 events.
    assert_eq!(blocks.len(), 1 + events.len().div_ceil(10));
    let all: Vec<u64> = events.iter().map(|e| e.id).collect();
    let lost: Vec<u64> = all[10..20].to_vec();
    let kept: Vec<u64> = all.iter().copied().filter(|i| !lost.contains(i)).collect();
    // Damage in the payload (checksum), and damage to the block header itself (resync on the
    // next block's magic).
    for (what, at) in [
        ("payload", blocks[2] + BLOCK_HEADER_LEN + 40),
        ("magic", blocks[2] + 1),
        ("length", blocks[2] + 6),
    ] {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x5a;
        fs::write(&path, &bytes).unwrap();
        let (_, stats) = run_replay(std::slice::from_ref(&path), false).unwrap();
        assert_eq!(stats.read.damaged_blocks, 1, "{what}: {stats:?}");
        assert_eq!(stats.read.warnings, 1, "{what}: {stats:?}");
        assert_eq!(stats.events, (events.len() - 10) as u64, "{what}");
        let w = &stats.read.first_warnings[0];
        assert!(w.contains(&path.display().to_string()), "{what}: {w}");
        assert!(w.contains(&format!("byte {}", blocks[2])), "{what}: {w}");
        assert!(w.contains("damaged block"), "{what}: {w}");
        assert_eq!(
            event_ids(&path),
            kept,
            "{what}: everything after the damage is read"
        );
        // --strict: the same damage is fatal, with the same place.
        match run_replay(std::slice::from_ref(&path), true) {
            Err(ReplayRunError::Log(e @ ReplayError::Block { .. })) => {
                assert!(
                    e.to_string().contains(&format!("byte {}", blocks[2])),
                    "{e}"
                );
            }
            other => panic!("{what}: strict replay gave {other:?}"),
        }
    }
    // Garbage between two blocks: passed over, nothing lost.
    let mut bytes = clean[..blocks[3]].to_vec();
    bytes.extend_from_slice(b"some garbage EWB no block");
    bytes.extend_from_slice(&clean[blocks[3]..]);
    fs::write(&path, &bytes).unwrap();
    let (_, stats) = run_replay(std::slice::from_ref(&path), false).unwrap();
    assert_eq!(
        (stats.read.damaged_blocks, stats.events),
        (1, events.len() as u64)
    );
}

#[test]
fn a_partial_last_block_warns_even_when_strict_and_is_cut_when_the_writer_reopens() {
    let dir = tempdir("partial");
    let (path, events) = two_containers_log(&dir, 10);
    let clean = fs::read(&path).unwrap();
    let last = *block_offsets(&clean).last().unwrap();
    let last_events = events.len() - (events.len() - 1) / 10 * 10;
    // A SIGKILL in the middle of the last write.
    fs::write(&path, &clean[..last + 30]).unwrap();
    let (_, stats) =
        run_replay(std::slice::from_ref(&path), true).expect("a partial block is no error");
    assert_eq!(stats.events, (events.len() - last_events) as u64);
    assert_eq!(stats.read.warnings, 1, "{stats:?}");
    assert!(stats.read.first_warnings[0].contains("truncated last block"));
    assert_eq!(stats.read.damaged_blocks, 0);
    // The next agent start cuts it off and appends a new session.
    let (header, _, _) = read_fixture(&fixture_dir().join("incident-two-containers.events.jsonl"));
    let log = EventLog::open(config(&path, LogFormat::Binary), header).unwrap();
    drop(log);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes[..last], clean[..last]);
    assert_eq!(block_offsets(&bytes).len(), block_offsets(&clean).len());
    let (_, stats) = run_replay(&[path], true).expect("strict replay after repair");
    assert_eq!((stats.sessions, stats.read.warnings), (2, 0));
}

#[test]
fn an_unknown_format_version_is_an_error_naming_both() {
    let dir = tempdir("version");
    let (path, _) = two_containers_log(&dir, 10);
    let mut bytes = fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&9u32.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let e = run_replay(std::slice::from_ref(&path), false).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("format version 9"), "{text}");
    assert!(text.contains("reads version 1"), "{text}");
}

#[test]
fn a_log_of_the_other_format_is_rotated_away_so_every_file_holds_one_format() {
    let dir = tempdir("switch");
    let fixture = fixture_dir().join("incident-two-containers.events.jsonl");
    let path = dir.join("events.jsonl");
    fs::copy(&fixture, &path).unwrap();
    let (header, events, _) = read_fixture(&fixture);
    let mut log = EventLog::open(config(&path, LogFormat::Binary), header).unwrap();
    assert_eq!(log.format(), LogFormat::Binary);
    for e in &events {
        log.write(e);
    }
    let stats = log.close();
    assert_eq!(stats.rotations, 1, "{stats:?}");
    assert!(fs::read(&path).unwrap().starts_with(&FILE_MAGIC));
    let rotated = dir.join("events.jsonl.000001.zst");
    assert!(rotated.exists());
    let files = vec![path.clone(), rotated];
    let (got, stats) = run_replay(&files, true).unwrap();
    assert_eq!(stats.sessions, 2);
    assert_eq!(stats.events, 2 * events.len() as u64);
    let once =
        fs::read_to_string(fixture_dir().join("incident-two-containers.alerts.jsonl")).unwrap();
    assert_eq!(got, format!("{once}{once}"));
}

fn cli(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_escapewatch"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn cli_export_and_replay_read_binary_zstd_from_stdin() {
    let dir = tempdir("cli");
    let (path, _) = two_containers_log(&dir, 3);
    let packed = zstd::encode_all(&fs::read(&path).unwrap()[..], 1).unwrap();
    let fixture = fixture_dir().join("incident-two-containers.events.jsonl");
    let (_, _, lines) = read_fixture(&fixture);
    let out = cli(&["export", "-"], &packed);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().skip(1).collect::<Vec<_>>(), lines);
    // What export prints is a JSON Lines log that replays to the same alerts.
    let expected =
        fs::read_to_string(fixture_dir().join("incident-two-containers.alerts.jsonl")).unwrap();
    for input in [packed, text.into_bytes()] {
        let out = cli(&["replay", "-"], &input);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            as_recorded(&String::from_utf8(out.stdout).unwrap()),
            expected
        );
    }
    // export --to binary converts a JSON Lines log into a binary one that replays the same.
    let out = cli(
        &["export", "--to", "binary", &fixture.display().to_string()],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(&FILE_MAGIC));
    let out = cli(&["replay", "-"], &out.stdout);
    assert_eq!(
        as_recorded(&String::from_utf8(out.stdout).unwrap()),
        expected
    );
    // Something that is no log is refused, not exported.
    let out = cli(&["export", "--strict", "-"], b"\x00\x01 not a log\n");
    assert!(!out.status.success());
}

/// CPU time of this process (`RUSAGE_SELF`: all threads, the event path and the compression
/// thread) or of the calling thread (`RUSAGE_THREAD`: the event path).
fn cpu(who: libc::c_int) -> std::time::Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(who, &mut u) }, 0);
    let t = |tv: libc::timeval| {
        std::time::Duration::from_secs(tv.tv_sec as u64)
            + std::time::Duration::from_micros(tv.tv_usec as u64)
    };
    t(u.ru_utime) + t(u.ru_stime)
}

/// The agent's event-log cost per event, JSON Lines against binary: every recorded fixture
/// event, repeated to `EW_BENCH_EVENTS` (default 20,000, so the root run of `cargo xtask test`,
/// which includes ignored tests, spends seconds on it; the figures in the session notes are
/// of `EW_BENCH_EVENTS=1000000` in release), written through the rotating
/// writer as the daemon does (a flush every 64 events, rotation at 100 MiB and the zstd
/// compression of rotated segments included), CPU time of all threads. A benchmark, not a
/// test of speed: it asserts only that every event was written and reads back.
///
/// `EW_BENCH_EVENTS=1000000 cargo test --release -p escapewatch --test binary_log -- --ignored --nocapture write_cost`
#[test]
#[ignore = "benchmark: run alone, in release"]
fn write_cost_per_event_jsonl_vs_binary() {
    let n: usize = std::env::var("EW_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut pool = Vec::new();
    let mut header = None;
    for (events, _) in fixtures() {
        let (h, evs, _) = read_fixture(&events);
        header.get_or_insert(h);
        pool.extend(evs);
    }
    let header = header.unwrap();
    let events: Vec<Event> = (0..n)
        .map(|i| {
            let mut e = pool[i % pool.len()].clone();
            e.id = i as u64 + 1;
            e
        })
        .collect();
    for format in [LogFormat::Jsonl, LogFormat::Binary] {
        // Encoding alone, into memory, one thread.
        let mut buf = Vec::with_capacity(1 << 20);
        let mut scratch = Vec::new();
        let start = std::time::Instant::now();
        let mut bytes = 0usize;
        for e in &events {
            match format {
                LogFormat::Jsonl => {
                    serde_json::to_writer(&mut buf, e).unwrap();
                    buf.push(b'\n');
                }
                LogFormat::Binary => binary::put_event(&mut buf, &mut scratch, e),
            }
            if buf.len() > 1 << 20 {
                bytes += buf.len();
                buf.clear();
            }
        }
        bytes += buf.len();
        let encode = start.elapsed();
        // Through the writer, to a file, with rotation and compression.
        let dir = tempdir("bench");
        let path = dir.join("events.jsonl");
        let cfg = EventLogConfig {
            max_bytes: 100 << 20,
            ..config(&path, format)
        };
        let cpu0 = cpu(libc::RUSAGE_SELF);
        let thread0 = cpu(libc::RUSAGE_THREAD);
        let wall0 = std::time::Instant::now();
        let mut log = EventLog::open(cfg, header.clone()).unwrap();
        for (i, e) in events.iter().enumerate() {
            log.write(e);
            if i % 64 == 63 {
                log.flush();
            }
        }
        let thread = cpu(libc::RUSAGE_THREAD) - thread0;
        let stats = log.close();
        let all = cpu(libc::RUSAGE_SELF) - cpu0;
        let wall = wall0.elapsed();
        assert_eq!(stats.write_errors, 0);
        assert_eq!(stats.lines, n as u64 + 1 + stats.rotations);
        let on_disk: u64 = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap().len())
            .sum();
        let files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        let (_, rs) = run_replay(&files, true).unwrap();
        assert_eq!(rs.events, n as u64);
        println!(
            "event log {:>6}: encode {:>5.0} ns/event ({:.0} bytes/event); writer {:>5.0} ns/event CPU all threads, {:>5.0} ns on the event path ({:.0} ns wall), {} rotations, {:.1} MiB on disk after zstd",
            format.name(),
            encode.as_nanos() as f64 / n as f64,
            bytes as f64 / n as f64,
            all.as_nanos() as f64 / n as f64,
            thread.as_nanos() as f64 / n as f64,
            wall.as_nanos() as f64 / n as f64,
            stats.rotations,
            on_disk as f64 / (1 << 20) as f64,
        );
        let _ = fs::remove_dir_all(&dir);
    }
}

#[test]
fn random_damage_never_panics_and_good_blocks_are_all_read() {
    let dir = tempdir("random");
    let (path, events) = two_containers_log(&dir, 5);
    let clean = fs::read(&path).unwrap();
    let blocks = block_offsets(&clean);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..200 {
        let mut bytes = clean.clone();
        // Damage from the second event block on, so the header block stays good.
        let from = blocks[2];
        let at = from + (next() as usize) % (bytes.len() - from);
        let len = 1 + (next() as usize) % 64;
        for b in bytes.iter_mut().skip(at).take(len) {
            *b = next() as u8;
        }
        let end_of_input = if round % 3 == 0 {
            bytes.truncate(at + len / 2);
            bytes.len()
        } else {
            bytes.len()
        };
        fs::write(&path, &bytes).unwrap();
        let (_, stats) = run_replay(std::slice::from_ref(&path), false).unwrap();
        // Every event block that lies wholly outside the damage (and before a cut) is read.
        let mut intact = 0;
        for i in 1..blocks.len() {
            let start = blocks[i];
            let end = blocks.get(i + 1).copied().unwrap_or(clean.len());
            let outside = end <= at || start >= at + len;
            if outside && end <= end_of_input {
                intact += 5.min(events.len() - 5 * (i - 1));
            }
        }
        assert!(
            stats.events >= intact as u64,
            "round {round}: {} events, {intact} in intact blocks, damage at {at}+{len}",
            stats.events
        );
        assert!(stats.events <= events.len() as u64);
    }
}

#[test]
fn timeline_reads_a_binary_log_as_it_reads_the_json_lines() {
    let dir = tempdir("timeline");
    let (path, _) = two_containers_log(&dir, 10);
    let fixture = fixture_dir().join("incident-two-containers.events.jsonl");
    let run = |log: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_escapewatch"))
            .arg("timeline")
            .arg(log)
            .args(["--alert-event-ids", "84"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let binary = run(&path);
    assert!(binary.contains("namespace-join-host"), "{binary}");
    assert_eq!(binary, run(&fixture));
}
