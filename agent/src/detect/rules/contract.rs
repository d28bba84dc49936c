//! The one contract every rule of the catalogue must keep. A new rule that skips any part of
//! it (an id clash, an input no program produces, no alerting example, no benign look-alike, no
//! replay fixture and no reason, a stale README row) fails `cargo test` here, with a message
//! that says what to add.

use std::{collections::BTreeSet, fs, path::PathBuf};

use escapewatch_common::programs::PROGRAMS;

use super::{Entry, Fixtures, Input, catalogue, examples::Expect, markdown_table};
use crate::detect::{Alert, AlertProcess};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str, part: &str) -> PathBuf {
    repo().join(format!("tests/fixtures/{name}.{part}.jsonl"))
}

/// Every violation of the contract by `entry`, as sentences.
fn violations(entry: &Entry) -> Vec<String> {
    let info = entry.info;
    let id = info.id;
    let mut out = Vec::new();
    let kebab = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !kebab {
        out.push(format!("rule id {id:?} is not lower-case kebab-case"));
    }
    for (field, text) in [
        ("mitre", info.mitre),
        ("title", info.title),
        ("scope", info.scope),
        ("explanation", info.explanation),
    ] {
        if text.trim().is_empty() {
            out.push(format!("{id}: RuleInfo.{field} is empty"));
        }
    }
    if !info.mitre.starts_with('T') {
        out.push(format!(
            "{id}: {:?} is not a MITRE ATT&CK technique id",
            info.mitre
        ));
    }
    if info.inputs.is_empty() {
        out.push(format!(
            "{id}: RuleInfo.inputs names no event the rule reads"
        ));
    }
    for &input in info.inputs {
        let produced = match input {
            Input::Kind(k) => PROGRAMS.iter().any(|p| p.kinds.contains(&k)),
            Input::Syscall(s) => PROGRAMS.iter().any(|p| p.id == s.program()),
            Input::LossReport | Input::DetachReport | Input::RestartReport | Input::StartReport => {
                true
            }
        };
        if !produced {
            out.push(format!(
                "{id}: input {} is produced by no program of escapewatch_common::programs::PROGRAMS",
                input.name()
            ));
        }
    }
    out.extend(example_violations(entry));
    match info.fixtures {
        Fixtures::Recorded([]) => {
            out.push(format!("{id}: Fixtures::Recorded names no fixture"));
        }
        Fixtures::Recorded(names) => {
            for name in names {
                let (events, alerts) = (fixture(name, "events"), fixture(name, "alerts"));
                let packed = events.with_extension("jsonl.zst");
                if !events.exists() && !packed.exists() {
                    out.push(format!(
                        "{id}: fixture {} is missing: record it with ESCAPEWATCH_RECORD_FIXTURES=1 and the rule's privileged scenario",
                        events.display()
                    ));
                    continue;
                }
                let fires = fs::read_to_string(&alerts).is_ok_and(|text| {
                    text.lines()
                        .any(|l| serde_json::from_str::<Alert>(l).is_ok_and(|a| a.rule == id))
                });
                if !fires {
                    out.push(format!(
                        "{id}: fixture {} has no alert of this rule",
                        alerts.display()
                    ));
                }
            }
        }
        Fixtures::Unavailable(reason) => {
            if reason.trim().len() < 20 {
                out.push(format!(
                    "{id}: no replay fixture (Fixtures::Recorded) and no stated reason why none can be recorded (Fixtures::Unavailable)"
                ));
            }
        }
    }
    out
}

/// The rule's examples: at least one alert, at least one benign look-alike, each as declared.
fn example_violations(entry: &Entry) -> Vec<String> {
    let info = entry.info;
    let id = info.id;
    let examples = (entry.examples)();
    let mut out = Vec::new();
    if !examples
        .iter()
        .any(|x| matches!(x.expect, Expect::Alert(_)))
    {
        out.push(format!(
            "{id}: no example it alerts on (Declared::examples: Example::alert with hand-built events)"
        ));
    }
    if !examples.iter().any(|x| matches!(x.expect, Expect::Silent)) {
        out.push(format!(
            "{id}: no benign look-alike it stays silent on (Declared::examples: Example::silent)"
        ));
    }
    for x in examples {
        let mut rule = (entry.make)();
        let mut raised = Vec::new();
        for e in &x.events {
            rule.process(e, &mut raised);
        }
        let mine: Vec<&Alert> = raised.iter().filter(|a| a.rule == id).collect();
        if raised.len() != mine.len() {
            out.push(format!(
                "{id}: example {:?} raised alerts of other rules",
                x.name
            ));
        }
        match x.expect {
            Expect::Silent if !mine.is_empty() => out.push(format!(
                "{id}: benign example {:?} raised {} alert(s): {}",
                x.name,
                mine.len(),
                mine[0].summary
            )),
            Expect::Silent => {}
            Expect::Alert(_) if mine.len() != 1 => out.push(format!(
                "{id}: example {:?} raised {} alerts, expected exactly 1",
                x.name,
                mine.len()
            )),
            Expect::Alert(check) => {
                let a = mine[0];
                let ids: BTreeSet<u64> = x.events.iter().map(|e| e.id).collect();
                let shared = [
                    (
                        a.severity == info.severity,
                        "severity is not the catalogue's",
                    ),
                    (a.mitre == info.mitre, "mitre is not the catalogue's"),
                    (
                        a.explanation == info.explanation,
                        "explanation is not the catalogue's",
                    ),
                    (!a.summary.is_empty(), "summary is empty"),
                    (
                        !a.event_ids.is_empty() && a.event_ids.iter().all(|i| ids.contains(i)),
                        "event_ids do not cite the example's events",
                    ),
                    (
                        x.events.iter().any(|e| e.time == a.time),
                        "time is no event's time",
                    ),
                    (
                        x.events
                            .iter()
                            .any(|e| AlertProcess::from_event(e) == a.process),
                        "process is no event's process",
                    ),
                ];
                for (ok, what) in shared {
                    if !ok {
                        out.push(format!("{id}: example {:?}: the alert's {what}", x.name));
                    }
                }
                // The rule's own field-by-field checks panic with their location.
                check(a);
            }
        }
    }
    out
}

#[test]
fn every_rule_keeps_the_catalogue_contract() {
    let entries = catalogue();
    let mut problems: Vec<String> = entries.iter().flat_map(violations).collect();
    let mut seen = BTreeSet::new();
    for e in &entries {
        if !seen.insert(e.info.id) {
            problems.push(format!("rule id {} is declared twice", e.info.id));
        }
    }
    assert!(
        problems.is_empty(),
        "the rule catalogue breaks its contract:\n  - {}",
        problems.join("\n  - ")
    );
}

#[test]
fn every_fixture_alert_is_of_a_catalogued_rule_that_names_the_fixture() {
    let entries = catalogue();
    let mut problems = Vec::new();
    for f in fs::read_dir(repo().join("tests/fixtures")).expect("tests/fixtures") {
        let path = f.expect("dir entry").path();
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Some(name) = file.strip_suffix(".alerts.jsonl") else {
            continue;
        };
        let text = fs::read_to_string(&path).expect("fixture");
        for line in text.lines() {
            let a: Alert = serde_json::from_str(line).expect("fixture alert line");
            let named = entries.iter().any(|e| {
                e.info.id == a.rule
                    && matches!(e.info.fixtures, Fixtures::Recorded(names) if names.contains(&name))
            });
            if !named {
                problems.push(format!(
                    "{file}: alert of {} whose rule does not list fixture {name:?} in RuleInfo.fixtures",
                    a.rule
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_readme_rule_table_is_the_catalogue() {
    let readme = fs::read_to_string(repo().join("README.md")).expect("README.md");
    let begin = readme
        .find("<!-- rules:begin")
        .and_then(|i| readme[i..].find('\n').map(|n| i + n + 1))
        .expect("README.md has a <!-- rules:begin … --> marker");
    let end = readme
        .find("<!-- rules:end -->")
        .expect("README.md has <!-- rules:end -->");
    let table = &readme[begin..end];
    let want = markdown_table();
    if table != want {
        let stale: Vec<&str> = want.lines().filter(|l| !table.contains(l)).collect();
        panic!(
            "the README's rule table differs from the catalogue; paste the output of `escapewatch rules --format markdown` between the markers. Rows missing or changed:\n{}",
            stale.join("\n")
        );
    }
}
