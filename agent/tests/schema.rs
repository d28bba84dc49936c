//! Root-free: the published JSON Schemas (schema/*.schema.json) are what this build
//! generates, and every line of every fixture (recorded alerts, replayed alerts with their
//! identity, event-log headers and events) validates against them.

use std::{
    fs,
    path::{Path, PathBuf},
};

use escapewatch::schema::{Which, schema, schema_text};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture_files(suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(root().join("tests/fixtures"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn validator(which: Which) -> jsonschema::Validator {
    let s = serde_json::to_value(schema(which)).unwrap();
    jsonschema::validator_for(&s).expect("the schema is a valid JSON Schema")
}

fn assert_valid(v: &jsonschema::Validator, line: &str, at: &str) {
    let instance: Value = serde_json::from_str(line).unwrap();
    let errors: Vec<String> = v
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{at}: {errors:?}");
}

#[test]
fn checked_in_schemas_equal_the_generated_ones() {
    for (which, file) in [
        (Which::Alert, "schema/alert.schema.json"),
        (Which::Event, "schema/event.schema.json"),
    ] {
        let on_disk = fs::read_to_string(root().join(file)).unwrap();
        assert!(
            on_disk == schema_text(which),
            "{file} is stale: regenerate with `escapewatch schema {}` > {file}",
            if which == Which::Alert {
                "alert"
            } else {
                "event"
            }
        );
    }
}

#[test]
fn every_recorded_and_replayed_alert_validates() {
    let v = validator(Which::Alert);
    let mut n = 0;
    for file in fixture_files(".alerts.jsonl") {
        for (i, line) in fs::read_to_string(&file).unwrap().lines().enumerate() {
            assert_valid(&v, line, &format!("{}:{}", file.display(), i + 1));
            n += 1;
        }
    }
    for file in fixture_files(".events.jsonl") {
        escapewatch::replay::replay(std::slice::from_ref(&file), |a| {
            let line = serde_json::to_string(a).unwrap();
            assert!(a.node.is_some() && !a.id.is_empty());
            assert_valid(&v, &line, &format!("replay of {}", file.display()));
            n += 1;
            Ok(())
        })
        .unwrap();
    }
    assert!(n > 100, "only {n} alerts");
}

#[test]
fn every_event_log_line_validates() {
    let v = validator(Which::Event);
    let mut n = 0;
    for file in fixture_files(".events.jsonl") {
        for (i, line) in fs::read_to_string(&file).unwrap().lines().enumerate() {
            assert_valid(&v, line, &format!("{}:{}", file.display(), i + 1));
            n += 1;
        }
    }
    assert!(n > 1000, "only {n} lines");
}

#[test]
fn the_schemas_reject_what_the_agent_would_not_write() {
    let alerts = validator(Which::Alert);
    let text = fs::read_to_string(root().join("tests/fixtures/core-pattern.alerts.jsonl")).unwrap();
    let good: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(alerts.is_valid(&good));
    let mut bad = good.clone();
    bad["severity"] = "urgent".into();
    assert!(!alerts.is_valid(&bad), "unknown severity");
    let mut bad = good.clone();
    bad["extra"] = 1.into();
    assert!(!alerts.is_valid(&bad), "unknown field");
    let mut bad = good;
    bad.as_object_mut().unwrap().remove("rule");
    assert!(!alerts.is_valid(&bad), "missing rule");

    let events = validator(Which::Event);
    let text = fs::read_to_string(root().join("tests/fixtures/core-pattern.events.jsonl")).unwrap();
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let event: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert!(events.is_valid(&header) && events.is_valid(&event));
    let mut bad = event.clone();
    bad["data"]["kind"] = "process_teleport".into();
    assert!(!events.is_valid(&bad), "unknown event kind");
    let mut bad = event;
    bad["process"]["cap_effective"] = 7.into();
    assert!(!events.is_valid(&bad), "capabilities are a hex string");
}
