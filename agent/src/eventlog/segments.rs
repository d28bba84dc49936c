//! Names of rotated segments and the order in which a set of log files is read.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

/// What a file name says about a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The active log this file belongs to (`/var/log/escapewatch/events.jsonl`).
    pub base: PathBuf,
    /// Rotation number; `None` for the active segment itself.
    pub seq: Option<u64>,
    pub compressed: bool,
}

/// Digits of a rotation number: six keep `ls` in order for a long time; more are allowed.
pub(crate) const SEQ_DIGITS: usize = 6;

pub(crate) fn rotated_name(base: &Path, seq: u64) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{seq:0SEQ_DIGITS$}"));
    PathBuf::from(name)
}

pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `events.jsonl.000042[.zst]` → (events.jsonl, 42, compressed); anything else is its own base.
pub fn segment_of(path: &Path) -> Segment {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let parsed = name.as_deref().and_then(|name| {
        let (rest, compressed) = match name.strip_suffix(".zst") {
            Some(r) => (r, true),
            None => (name, false),
        };
        let (stem, digits) = rest.rsplit_once('.')?;
        let all_digits = digits.len() >= SEQ_DIGITS && digits.bytes().all(|b| b.is_ascii_digit());
        if stem.is_empty() || !all_digits {
            return None;
        }
        Some((stem.to_owned(), digits.parse::<u64>().ok()?, compressed))
    });
    match parsed {
        Some((stem, seq, compressed)) => Segment {
            base: path.with_file_name(stem),
            seq: Some(seq),
            compressed,
        },
        None => Segment {
            base: path.to_owned(),
            seq: None,
            compressed: path.extension().is_some_and(|e| e == "zst"),
        },
    }
}

/// The order to read `paths` in. A shell glob (`events.jsonl*`) lists the active segment before
/// its rotated ones and would read the newest events first; so the segments of one log are
/// read oldest first (rotation number, then the active one last), each log where it first
/// appears among `paths`. A segment given both plain and compressed (a crash between compressing
/// and deleting) is read once, from the compressed copy, which is complete by construction.
pub fn order_paths(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut first_seen: HashMap<PathBuf, usize> = HashMap::new();
    let mut keyed: Vec<(usize, u64, usize, PathBuf, Segment)> = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let seg = segment_of(p);
        let n = first_seen.len();
        let group = *first_seen.entry(seg.base.clone()).or_insert(n);
        keyed.push((group, seg.seq.unwrap_or(u64::MAX), i, p.clone(), seg));
    }
    keyed.sort_by_key(|(group, seq, i, _, _)| (*group, *seq, *i));
    let mut out: Vec<PathBuf> = Vec::with_capacity(keyed.len());
    let mut last: Option<(usize, u64, bool)> = None;
    for (group, seq, _, path, seg) in keyed {
        if seg.seq.is_some()
            && let Some((g, s, compressed)) = last
            && g == group
            && s == seq
        {
            // Same rotated segment twice: keep the compressed one.
            if seg.compressed && !compressed {
                out.pop();
            } else {
                continue;
            }
        }
        last = Some((group, seq, seg.compressed));
        out.push(path);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn names_parse() {
        assert_eq!(
            segment_of(&p("/l/events.jsonl.000042.zst")),
            Segment {
                base: p("/l/events.jsonl"),
                seq: Some(42),
                compressed: true
            }
        );
        assert_eq!(segment_of(&p("/l/events.jsonl.0000042")).seq, Some(42));
        assert_eq!(segment_of(&p("/l/events.jsonl")).seq, None);
        // Short numbers are not rotation numbers: `trace.1` is a file of its own.
        assert_eq!(segment_of(&p("trace.1")).seq, None);
        assert!(segment_of(&p("x.jsonl.zst")).compressed);
        assert_eq!(rotated_name(&p("/l/e.jsonl"), 7), p("/l/e.jsonl.000007"));
    }

    #[test]
    fn a_glob_is_read_oldest_first_and_other_files_keep_their_place() {
        let glob = [
            "other.jsonl",
            "/l/events.jsonl",
            "/l/events.jsonl.000010.zst",
            "/l/events.jsonl.000009",
            "/l/events.jsonl.000009.zst",
            "/l/events.jsonl.000002.zst",
            "last.jsonl",
        ]
        .map(p);
        assert_eq!(
            order_paths(&glob),
            [
                "other.jsonl",
                "/l/events.jsonl.000002.zst",
                "/l/events.jsonl.000009.zst",
                "/l/events.jsonl.000010.zst",
                "/l/events.jsonl",
                "last.jsonl"
            ]
            .map(p)
        );
        assert_eq!(order_paths(&[p("-")]), [p("-")]);
    }
}
