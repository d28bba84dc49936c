//! escapewatch agent library: load the kernel programs, collect and enrich their events, detect
//! escapes, write logs and alerts. `main.rs` only parses arguments and calls in here.
//!
//! Data moves forward only: `loader` → `collect` → `enrich` → `sink` (event log) → `detect` →
//! `sink` (alerts). `replay` feeds recorded logs to the same `detect::Engine`.

pub mod audit;
pub mod btf;
pub mod coalesce;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod enrich;
pub mod errors;
pub mod eventlog;
pub mod identity;
pub mod loader;
pub mod metrics;
pub mod model;
pub mod offsets;
pub mod replay;
pub mod rules_report;
pub mod runtime_watch;
pub mod safe_open;
pub mod schema;
pub mod sink;
pub mod timeline;
