//! The event log on disk.
//!
//! `events.jsonl` is the active segment. At `max_bytes` it is renamed to `events.jsonl.000042`
//! (the number only ever grows, so names never change once given and the order of segments
//! is their number), a fresh active segment starts with a continuation header, and a
//! background thread compresses the rotated segment to `events.jsonl.000042.zst` (temp name,
//! fsync, rename) and deletes the oldest segments beyond `keep`. Every segment starts with a
//! header, so any one of them replays on its own.
//!
//! Two formats: binary ([`binary`]: a file header with its version, then checksummed blocks
//! of length-prefixed records; the default) and JSON Lines (what earlier versions wrote, and
//! `--event-log-format jsonl`). The writer encodes into a buffer on the event path and hands
//! whole blocks (or lines) to the kernel; zstd runs on the compression thread only.
//!
//! The reading side opens plain or zstd segments and tells binary from JSON Lines (by content,
//! not by name, so stdin works too), orders rotated segments, and reads lines with a bound on
//! their length or blocks with their checksums.

pub mod binary;
mod reader;
mod segments;
mod writer;

pub use reader::{
    BlockItem, BlockReader, LineReader, LogFormat, MAX_LINE_BYTES, RawLine, open_input,
    open_stream, sniff,
};
pub use segments::{Segment, order_paths, segment_of};
pub use writer::{EventLog, EventLogConfig, EventLogError, EventLogStats, FLUSH_BYTES};

use crate::detect::{RuleInfo, rules::Input};

/// A stable hash of the rule catalogue: everything of a rule that reaches an alert (id,
/// severity, MITRE technique, title, explanation, event kinds), in id order. Written into
/// every log header so replay can tell "same rules" from "today's rules".
///
/// FNV-1a (64 bit) because it is fixed by its definition, unlike `DefaultHasher`, and a
/// change detector needs no cryptographic strength.
pub fn rule_set_hash<'a>(rules: impl IntoIterator<Item = &'a RuleInfo>) -> String {
    let mut infos: Vec<&RuleInfo> = rules.into_iter().collect();
    infos.sort_by_key(|r| r.id);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator that cannot occur in the texts keeps ("ab","c") apart from ("a","bc").
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for r in infos {
        feed(r.id.as_bytes());
        feed(r.severity.as_str().as_bytes());
        feed(r.mitre.as_bytes());
        feed(r.title.as_bytes());
        feed(r.explanation.as_bytes());
        // The loss report is no kernel event kind: left out, as before inputs were typed, so
        // logs of the same rules keep the same hash.
        for k in r.inputs.iter().filter(|i| **i != Input::LossReport) {
            feed(k.name().as_bytes());
        }
    }
    format!("fnv1a64:{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rules;

    #[test]
    fn rule_set_hash_is_stable_and_order_independent() {
        let infos = rules::infos();
        let a = rule_set_hash(infos.iter().copied());
        let b = rule_set_hash(infos.iter().rev().copied());
        assert_eq!(a, b);
        assert!(a.starts_with("fnv1a64:") && a.len() == 8 + 16, "{a}");
        assert_ne!(a, rule_set_hash(std::iter::empty()));
    }
}
