//! Helpers shared by the replay test binaries.

use escapewatch::detect::Alert;

/// Replay output in the shape the recorded alert fixtures have: the identity fields that
/// agents add since those were recorded (`id`, `node`: both derived from the log header and
/// the alert, so replay recomputes them; `identity_*` tests check them) are checked to be
/// there and taken out; everything else stays byte for byte as replay wrote it. Alert's
/// field order is its JSON order and the identity fields are skipped when empty, so the
/// re-serialised line is exactly what an agent of the fixtures' time wrote.
pub fn as_recorded(out: &str) -> String {
    let mut s = String::new();
    for line in out.lines() {
        let mut a: Alert = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(a.id.len(), 36, "alert without its id: {line}");
        assert!(a.node.is_some(), "alert without its node: {line}");
        a.id.clear();
        a.node = None;
        s.push_str(&serde_json::to_string(&a).unwrap());
        s.push('\n');
    }
    s
}
