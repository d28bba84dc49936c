//! Root-free: `escapewatch timeline` on the hand-made two-container fixture, every selector
//! and both formats; the HTML is self-contained and escapes what the log holds.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/incident-two-containers.events.jsonl")
}

fn timeline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_escapewatch"))
        .arg("timeline")
        .arg(fixture())
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run escapewatch")
}

fn ok(args: &[&str]) -> String {
    let out = timeline(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn by_alert_event_id_shows_the_window_tree_and_the_alert() {
    let text = ok(&["--alert-event-ids", "84"]);
    assert!(text.contains("container /ewt-3416-1-43d3d111"), "{text}");
    // The alert, marked in the event list and in the tree.
    assert!(text.contains("[1] 2026-11-23 02:15:44.814  CRITICAL  namespace-join-host"));
    let marked: Vec<&str> = text.lines().filter(|l| l.starts_with(">> ")).collect();
    assert_eq!(marked.len(), 1, "{text}");
    assert!(marked[0].contains(" 84 ") && marked[0].contains("setns(mnt) fd=3"));
    assert!(text.contains("⚠ ALERT [1] namespace-join-host (critical)"));
    assert!(
        text.contains("[4458] sh → exe → nsenter → exe → readlink"),
        "{text}"
    );
    assert!(text.contains("⚠ namespace-join-host"));
    // The runc exec that started it is its parent in the tree.
    assert!(text.contains("runc exec ewt-3416-1-43d3d111"), "{text}");
    // Nothing of the other container, nothing from two hours earlier.
    assert!(
        !text.contains("c0ffee") && !text.contains("00:15:44"),
        "{text}"
    );
}

#[test]
fn by_container_prefix_and_by_rule() {
    let text = ok(&["--container", "c0ffee"]);
    assert!(text.contains("window whole log"));
    assert!(text.contains("c0ffee012345"));
    assert!(!text.contains("/ewt-3416-1-43d3d111  "));
    assert_eq!(text.lines().filter(|l| l.starts_with(">> ")).count(), 1);
    let text = ok(&["--rule", "namespace-join-host"]);
    assert_eq!(text.lines().filter(|l| l.starts_with(">> ")).count(), 2);
    assert!(text.contains("2 alert(s)"));
}

#[test]
fn window_options_narrow_what_is_shown() {
    let wide = ok(&["--alert-event-ids", "84"]);
    let narrow = ok(&["--alert-event-ids", "84", "--before", "0s", "--after", "0s"]);
    let rows = |t: &str| {
        t.lines()
            .filter(|l| l.contains("  process_") || l.contains("namespace"))
            .count()
    };
    assert!(rows(&narrow) < rows(&wide), "{narrow}");
    assert!(narrow.contains(">> "));
    let capped = ok(&["--container", "c0ffee", "--max-events", "2"]);
    assert!(capped.contains("more not shown"), "{capped}");
    let late = ok(&["--container", "c0ffee", "--since", "2026-11-23T01:00:00Z"]);
    assert!(late.contains("0 shown"), "{late}");
}

#[test]
fn html_is_one_self_contained_page_with_the_alert_highlighted() {
    let html = ok(&["--alert-event-ids", "84", "--format", "html"]);
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(html.contains(
        "<tr class=\"ev alert\" id=\"ev-1-84\" data-alert-rules=\"namespace-join-host\">"
    ));
    assert!(html.contains("<span class=\"rule\">namespace-join-host</span>"));
    // No external asset of any kind.
    for needle in ["src=", "http://", "https://", "<link", "@import", "url("] {
        assert!(!html.contains(needle), "external reference {needle:?}");
    }
    // The command line in the log is shown, escaped: a log cannot script the page.
    assert!(!html.contains("<script>alert"));
    assert!(html.contains("&lt;script&gt;alert(&quot;pwn&quot;)&lt;/script&gt;"));
    assert_eq!(
        html.matches("<script>").count(),
        1,
        "only our own scroll script"
    );
}

#[test]
fn output_file_and_stdin() {
    let out = std::env::temp_dir().join(format!("ew-timeline-{}.html", std::process::id()));
    ok(&[
        "--rule",
        "namespace-join-host",
        "--format",
        "html",
        "-o",
        out.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&out).unwrap();
    assert_eq!(html.matches("class=\"ev alert\"").count(), 2);
    let _ = std::fs::remove_file(out);
    let child = Command::new(env!("CARGO_BIN_EXE_escapewatch"))
        .args(["timeline", "-", "--alert-event-ids", "37"])
        .stdin(std::fs::File::open(fixture()).unwrap())
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(String::from_utf8_lossy(&child.stdout).contains("c0ffee012345"));
}

#[test]
fn clear_errors() {
    let out = timeline(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--container"));
    let out = timeline(&["--alert-event-ids", "5"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no alert in these logs cites event id(s) [5]"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

/// `timeline -` spooled standard input to `$TMPDIR/escapewatch-timeline-stdin-PID`, created
/// with truncation: a 0600 file planted there was overwritten, then deleted. `exec` keeps the
/// shell's pid, so the file is planted at exactly the name that process would have used.
#[test]
fn timeline_from_stdin_leaves_a_file_at_the_old_spool_path_alone() {
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            r#"p="${TMPDIR:-/tmp}/escapewatch-timeline-stdin-$$"; printf 'planted\n' > "$p"; chmod 600 "$p"; echo "$p" >&2; exec "$0" timeline - --container c0ffee < "$1""#,
        )
        .arg(env!("CARGO_BIN_EXE_escapewatch"))
        .arg(fixture())
        .env("NO_COLOR", "1")
        .output()
        .expect("run escapewatch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let planted = PathBuf::from(stderr.lines().next().unwrap());
    let kept = std::fs::read_to_string(&planted);
    let _ = std::fs::remove_file(&planted);
    assert_eq!(kept.expect("the planted file is still there"), "planted\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("container c0ffee"), "{text}");
}

fn write_log(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ew-timeline-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

fn timeline_of(log: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_escapewatch"))
        .arg("timeline")
        .arg(log)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run escapewatch")
}

/// A container chooses its comm and arguments: an ESC sequence must not reach the terminal
/// (`\x1b[2J` clears it) and a bidi override (U+202E) must not reverse what follows.
#[test]
fn hostile_comm_and_args_are_shown_escaped() {
    let text = std::fs::read_to_string(fixture())
        .unwrap()
        .replace(r#""comm":"nsenter""#, r#""comm":"ns\u001b[2J\u202eenter""#)
        .replace(
            r#""/proc/self/ns/mnt""#,
            r#""/proc/\u001b[2J\u009b\u2066/mnt""#,
        );
    let log = write_log("hostile", &text);
    let out = timeline_of(&log, &["--alert-event-ids", "84"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8(out.stdout).unwrap();
    let raw: Vec<char> = shown
        .chars()
        .filter(|&c| escapewatch::sink::needs_escape(c) && c != '\n')
        .collect();
    assert!(raw.is_empty(), "raw controls {raw:?} in:\n{shown}");
    assert!(shown.contains(r"ns\x1b[2J\u{202e}enter"), "{shown}");
    assert!(shown.contains(r"/proc/\x1b[2J\x9b\u{2066}/mnt"), "{shown}");
    // The page escapes them too (a bidi override would reverse the rendered text).
    let out = timeline_of(&log, &["--alert-event-ids", "84", "--format", "html"]);
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(!page.contains('\u{202e}') && !page.contains('\u{1b}'));
    assert!(
        page.contains(r"\u{202e}"),
        "bidi override not shown escaped"
    );
}

#[test]
fn extreme_windows_and_dates_give_a_clean_answer_not_a_panic() {
    let out = timeline(&["--alert-event-ids", "84", "--before", "9999999999d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("out of range"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The largest window allowed still works.
    ok(&[
        "--alert-event-ids",
        "84",
        "--before",
        "36525d",
        "--after",
        "36525d",
    ]);
    // An alert dated in the last hour time can represent: the window is open at that end.
    let text = std::fs::read_to_string(fixture())
        .unwrap()
        .replace("2026-11-23T02:", "9999-12-31T23:");
    let log = write_log("year-9999", &text);
    for after in ["1h", "36525d"] {
        let out = timeline_of(&log, &["--alert-event-ids", "84", "--after", after]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown.contains("window 9999-12-31 23:10:44.814 … end"),
            "{shown}"
        );
        assert!(shown.contains("namespace-join-host"), "{shown}");
    }
}

/// 100,000 alerts with --max-events 1000: 1000 kept, the rest counted and reported. Before,
/// every alert of the log was held (407 MB for 100,000).
#[test]
fn alerts_are_bounded_by_max_events_and_the_rest_reported() {
    let fixture_text = std::fs::read_to_string(fixture()).unwrap();
    let header = fixture_text.lines().next().unwrap();
    let setns = fixture_text
        .lines()
        .find(|l| l.starts_with(r#"{"id":84,"#))
        .unwrap();
    let mut text = format!("{header}\n");
    for id in 1..=100_000u64 {
        text.push_str(&setns.replacen(r#"{"id":84,"#, &format!(r#"{{"id":{id},"#), 1));
        text.push('\n');
    }
    let log = write_log("many-alerts", &text);
    let out = timeline_of(
        &log,
        &["--rule", "namespace-join-host", "--max-events", "1000"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("100000 events read, 1000 shown"),
        "{}",
        &shown[..400]
    );
    assert!(shown.contains("99000 more not shown"), "{}", &shown[..400]);
    assert!(
        shown.contains("99000 more alert(s) not kept"),
        "{}",
        &shown[..400]
    );
    assert!(shown.contains("· 1000 alert(s)"), "{}", &shown[..400]);
    assert!(shown.contains("  [1000] ") && !shown.contains("  [1001] "));
}
