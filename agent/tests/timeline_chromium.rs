//! The HTML timeline rendered by a real browser (Debian's headless chromium): the alert is on
//! the rendered page, in the highlighted row. A screenshot is kept in target/timeline-check/
//! for a person to look at.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn chromium(args: &[&str], profile: &Path) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium is installed (cargo xtask setup installs it)")
}

#[test]
#[ignore = "needs Debian's chromium (cargo xtask setup installs it); cargo xtask test runs it"]
fn the_rendered_page_shows_the_highlighted_alert() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/timeline-check");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("timeline.html");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/incident-two-containers.events.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_escapewatch"))
        .arg("timeline")
        .arg(&fixture)
        .args(["--alert-event-ids", "84", "--format", "html", "-o"])
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = format!("file://{}", html.canonicalize().unwrap().display());

    let dom = chromium(&["--dump-dom", &url], &dir.join("profile-dom"));
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The DOM the browser built (not our text): the highlighted row holds the rule id.
    let row_start = dom
        .find("<tr class=\"ev alert\"")
        .unwrap_or_else(|| panic!("no highlighted row in the rendered DOM:\n{dom}"));
    let row = &dom[row_start..row_start + dom[row_start..].find("</tr>").unwrap()];
    assert!(row.contains("namespace-join-host"), "{row}");
    assert!(row.contains("setns(mnt)"), "{row}");
    assert!(dom.contains("class=\"alert-card\""));
    // The hostile command line stayed text.
    assert!(
        dom.contains("&lt;script&gt;alert(\"pwn\")&lt;/script&gt;"),
        "escaped in the DOM"
    );

    let png = dir.join("timeline.png");
    let shot = chromium(
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1400,1000",
            &url,
        ],
        &dir.join("profile-shot"),
    );
    assert!(
        png.exists() && std::fs::metadata(&png).unwrap().len() > 10_000,
        "screenshot missing: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
}
