//! Who raised an alert: the node, its cluster, the agent that recorded the events, and an
//! alert id that stays the same across replay.
//!
//! Everything here is derived from the event-log header (and the alert itself), never from
//! the machine that happens to run the code: the live agent stamps its alerts from the header
//! it writes, replay stamps them from the header it reads, so a replayed alert carries the same
//! node and the same id as the live one.

use crate::{
    detect::{Alert, AlertNode},
    model::LogHeader,
};

/// Version of the alert line's shape (`schema/alert.schema.json`). Bump on incompatible
/// changes; additions of optional fields keep it.
pub const ALERT_SCHEMA_VERSION: u32 = 1;

/// The node name the agent reports: the configured one, else `NODE_NAME` (set from the
/// Kubernetes downward API in the DaemonSet), else the hostname. Blank values count as unset.
pub fn node_name(configured: Option<&str>, env_node_name: Option<&str>, hostname: &str) -> String {
    [configured, env_node_name]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or(hostname)
        .to_owned()
}

/// The kernel's boot id, empty when unreadable.
pub fn boot_id(proc_root: &std::path::Path) -> String {
    std::fs::read_to_string(proc_root.join("sys/kernel/random/boot_id"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// What every alert of one session is stamped with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    node: AlertNode,
    /// Host and boot: hostname, boot id (or boot time where the log has none).
    host_key: String,
}

impl Identity {
    pub fn from_header(h: &LogHeader) -> Self {
        let name = if h.node_name.is_empty() {
            h.hostname.clone()
        } else {
            h.node_name.clone()
        };
        let boot = if h.boot_id.is_empty() {
            &h.boot_time
        } else {
            &h.boot_id
        };
        Identity {
            node: AlertNode {
                name,
                cluster: (!h.cluster.is_empty()).then(|| h.cluster.clone()),
                hostname: h.hostname.clone(),
                agent_version: h.agent_version.clone(),
                schema_version: ALERT_SCHEMA_VERSION,
            },
            host_key: format!("{}\u{0}{boot}", h.hostname),
        }
    }

    /// Fill in `alert.id` and `alert.node`.
    pub fn stamp(&self, alert: &mut Alert) {
        alert.id = alert_id(&self.host_key, alert);
        alert.node = Some(self.node.clone());
    }
}

/// A UUID-shaped id (RFC 9562 version 8, "custom") of 128 bits of FNV-1a over the host and
/// boot, the rule, the triggering event's time and the ids of the events behind the alert.
/// FNV because its definition fixes it (replay on another build gives the same id); the time
/// keeps apart alerts of two agent runs in one boot, whose event ids both start at 1.
pub fn alert_id(host_key: &str, alert: &Alert) -> String {
    let mut h = Fnv128::new();
    h.feed(host_key.as_bytes());
    h.feed(alert.rule.as_bytes());
    h.feed(alert.time.as_bytes());
    for id in &alert.event_ids {
        h.feed(&id.to_le_bytes());
    }
    let mut v = h.0;
    // Version 8 in bits 76..80, variant 0b10 in bits 62..64.
    v = (v & !(0xf << 76)) | (0x8 << 76);
    v = (v & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    fn new() -> Self {
        Fnv128(Self::OFFSET)
    }

    fn byte(&mut self, b: u8) {
        self.0 ^= u128::from(b);
        self.0 = self.0.wrapping_mul(Self::PRIME);
    }

    /// The bytes, then a length so ("ab","c") and ("a","bc") differ.
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
        for b in (bytes.len() as u64).to_le_bytes() {
            self.byte(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> LogHeader {
        let text = include_str!("../../tests/fixtures/core-pattern.events.jsonl");
        serde_json::from_str(text.lines().next().unwrap()).unwrap()
    }

    fn alert() -> Alert {
        let text = include_str!("../../tests/fixtures/core-pattern.alerts.jsonl");
        serde_json::from_str(text.lines().next().unwrap()).unwrap()
    }

    #[test]
    fn node_name_prefers_config_then_env_then_hostname() {
        assert_eq!(node_name(Some("n1"), Some("n2"), "h"), "n1");
        assert_eq!(node_name(Some("  "), Some("n2"), "h"), "n2");
        assert_eq!(node_name(None, Some(""), "h"), "h");
        assert_eq!(node_name(None, None, "h"), "h");
    }

    #[test]
    fn alert_id_is_a_v8_uuid_fixed_by_its_inputs() {
        let id = Identity::from_header(&header());
        let mut a = alert();
        id.stamp(&mut a);
        let first = a.id.clone();
        assert_eq!(first.len(), 36, "{first}");
        assert_eq!(&first[14..15], "8", "{first}");
        assert!(matches!(&first[19..20], "8" | "9" | "a" | "b"), "{first}");
        // The same inputs give the same id (what replay relies on), and it is pinned: a
        // change of the hash would change every alert id operators have stored.
        id.stamp(&mut a);
        assert_eq!(a.id, first);
        assert_eq!(first, "d8968caa-c779-8516-9c38-daeed758da6e");
        // Each input matters.
        let mut other = alert();
        other.event_ids = vec![105];
        id.stamp(&mut other);
        assert_ne!(other.id, first);
        let mut other = alert();
        other.rule = "sysrq-trigger".into();
        id.stamp(&mut other);
        assert_ne!(other.id, first);
        let mut h = header();
        h.boot_id = "0b8e0a8c-6a59-4a3b-9d7c-2a3c4f5e6d7a".into();
        let mut other = alert();
        Identity::from_header(&h).stamp(&mut other);
        assert_ne!(other.id, first);
    }

    #[test]
    fn node_comes_from_the_header_with_hostname_for_old_logs() {
        let mut a = alert();
        Identity::from_header(&header()).stamp(&mut a);
        let node = a.node.clone().unwrap();
        assert_eq!(node.name, "vm");
        assert_eq!(node.hostname, "vm");
        assert_eq!(node.cluster, None);
        assert_eq!(node.agent_version, "0.1.0");
        assert_eq!(node.schema_version, ALERT_SCHEMA_VERSION);
        let mut h = header();
        h.node_name = "worker-3".into();
        h.cluster = "prod-eu".into();
        Identity::from_header(&h).stamp(&mut a);
        let node = a.node.unwrap();
        assert_eq!(node.name, "worker-3");
        assert_eq!(node.cluster.as_deref(), Some("prod-eu"));
    }
}
