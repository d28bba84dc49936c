//! Root-free: coalescing through replay. 10,000 identical core_pattern writes give the first
//! alert and one summary with the count, when the log's header records a window; the same
//! log without one gives every alert. Times come from the events, so replay is deterministic.

use std::{fs, path::PathBuf};

use escapewatch::{detect::Alert, model::LogHeader};
use serde_json::Value;

fn fixture() -> String {
    fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/core-pattern.events.jsonl"),
    )
    .unwrap()
}

/// The fixture up to its core_pattern write, then that write repeated `n` times, 1 ms apart,
/// under a header with `window_ms`.
fn log(n: u64, window_ms: u64) -> PathBuf {
    let text = fixture();
    let mut lines = text.lines();
    let mut header: LogHeader = serde_json::from_str(lines.next().unwrap()).unwrap();
    header.coalesce_window_ms = window_ms;
    let mut out = serde_json::to_string(&header).unwrap() + "\n";
    let mut write = None;
    for l in lines {
        let v: Value = serde_json::from_str(l).unwrap();
        if v["id"] == 104 {
            write = Some(v);
            break;
        }
        out += l;
        out += "\n";
    }
    let write = write.expect("the fixture's core_pattern write");
    assert_eq!(write["data"]["kind"], "sysctl_write");
    let start = escapewatch::coalesce::time_ns(write["time"].as_str().unwrap()).unwrap();
    for i in 0..n {
        let mut e = write.clone();
        e["id"] = (104 + i).into();
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(start + i128::from(i) * 1_000_000)
            .unwrap();
        e["time"] = t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
            .into();
        e["ktime_ns"] = (e["ktime_ns"].as_u64().unwrap() + i * 1_000_000).into();
        out += &serde_json::to_string(&e).unwrap();
        out += "\n";
    }
    let dir = std::env::temp_dir().join(format!(
        "ew-coalesce-{}-{n}-{window_ms}",
        std::process::id()
    ));
    fs::create_dir_all(&dir).unwrap();
    let p = dir.join("events.jsonl");
    fs::write(&p, out).unwrap();
    p
}

fn replay(p: &PathBuf) -> Vec<Alert> {
    let mut v = Vec::new();
    escapewatch::replay::replay(std::slice::from_ref(p), |a| {
        v.push(a.clone());
        Ok(())
    })
    .unwrap();
    v.into_iter()
        .filter(|a| a.rule == "core-pattern-write")
        .collect()
}

#[test]
fn ten_thousand_identical_attempts_give_one_alert_and_its_summary() {
    let n = 10_000;
    // 10 s of writes, a 60 s window.
    let got = replay(&log(n, 60_000));
    assert_eq!(
        got.len(),
        2,
        "the first, then one summary: {:#?}",
        got.iter().map(|a| &a.coalesced).collect::<Vec<_>>()
    );
    assert_eq!(got[0].coalesced, None);
    assert_eq!(got[0].event_ids, vec![104]);
    let s = got[1].coalesced.as_ref().expect("the summary");
    assert_eq!(s.count, n);
    assert_eq!(s.first_time, got[0].time);
    assert_eq!(s.last_time, got[1].time);
    assert_eq!(s.first_event_ids, vec![104]);
    assert_eq!(got[1].event_ids, vec![104 + n - 1]);
    assert_ne!(got[0].id, got[1].id);
    // Deterministic: a second replay gives the same lines.
    assert_eq!(replay(&log(n, 60_000)), got);
    // Without a window every attempt is an alert.
    assert_eq!(replay(&log(n, 0)).len() as u64, n);
    // A window shorter than the run gives one summary per window: 10 s at 1 s windows.
    let windows = replay(&log(n, 1_000));
    let summaries: Vec<u64> = windows
        .iter()
        .filter_map(|a| a.coalesced.as_ref().map(|c| c.count))
        .collect();
    assert_eq!(
        windows.len() - summaries.len(),
        10,
        "one first alert per window"
    );
    assert_eq!(
        summaries.iter().sum::<u64>(),
        n,
        "every attempt is in a count: {summaries:?}"
    );
}
