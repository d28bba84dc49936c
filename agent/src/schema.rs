//! JSON Schemas of the output lines, generated from the types that write them: an alert line
//! (`schema/alert.schema.json`) and an event-log line, header or event
//! (`schema/event.schema.json`). `escapewatch schema alert|event` prints them; a test keeps
//! the checked-in files equal to what this build generates and validates every fixture line.

use schemars::{Schema, generate::SchemaSettings, json_schema};

use crate::{
    detect::Alert,
    model::{Event, LogHeader},
};

/// Which line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// An alert line (alert log, `replay` output).
    Alert,
    /// An event-log line: the header (first line of each segment) or an event.
    Event,
}

fn generator() -> schemars::SchemaGenerator {
    SchemaSettings::draft2020_12().into_generator()
}

/// The schema of one kind of line.
pub fn schema(which: Which) -> Schema {
    match which {
        Which::Alert => {
            let mut s = generator().into_root_schema_for::<Alert>();
            s.insert(
                "$id".into(),
                "https://escapewatch.invalid/schema/alert.schema.json".into(),
            );
            s
        }
        Which::Event => {
            let mut g = generator();
            let header = g.subschema_for::<LogHeader>();
            let event = g.subschema_for::<Event>();
            let defs: serde_json::Map<String, serde_json::Value> =
                g.take_definitions(true).into_iter().collect();
            json_schema!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": "https://escapewatch.invalid/schema/event.schema.json",
                "title": "escapewatch event-log line",
                "description": "A line of the event log: the header that starts every segment, or one enriched event.",
                "oneOf": [header, event],
                "$defs": defs,
            })
        }
    }
}

/// The schema as the checked-in file holds it (pretty JSON, one trailing newline).
pub fn schema_text(which: Which) -> String {
    let mut s = serde_json::to_string_pretty(&schema(which)).expect("a schema serialises");
    s.push('\n');
    s
}
