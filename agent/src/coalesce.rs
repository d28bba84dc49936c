//! Coalescing: identical alerts (same rule, container, executable and details) within a
//! window become one. The first goes out at once; repeats within `window` of it are counted,
//! and when the window has passed (judged by the times of later events, never the wall
//! clock) or the session ends, one summary alert follows — the last repeat, with
//! `coalesced: {count, first_time, last_time, first_event_ids}`. Nothing is dropped silently:
//! every repeat is in a summary's count and in `escapewatch_alerts_coalesced_total`.
//!
//! Live and replay run the same code over the same times, and the window is recorded in the
//! event-log header, so replay gives the same alert lines.

use std::collections::BTreeMap;

use crate::detect::{Alert, Coalesced};

/// Nanoseconds since the epoch of an RFC 3339 time; None when it does not parse.
pub fn time_ns(t: &str) -> Option<i128> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp_nanos)
}

type Key = (String, Option<String>, String, String);

struct Pending {
    first_ns: i128,
    first_time: String,
    first_event_ids: Vec<u64>,
    count: u64,
    last: Alert,
}

pub struct Coalescer {
    window_ns: i128,
    pending: BTreeMap<Key, Pending>,
}

impl Coalescer {
    /// None for a window of 0 (off).
    pub fn new(window_ms: u64) -> Option<Coalescer> {
        (window_ms > 0).then(|| Coalescer {
            window_ns: i128::from(window_ms) * 1_000_000,
            pending: BTreeMap::new(),
        })
    }

    fn key(a: &Alert) -> Key {
        (
            a.rule.clone(),
            a.container.as_ref().map(|c| c.id.clone()),
            a.process.exe.clone(),
            a.details.to_string(),
        )
    }

    /// Take `alert`: out now (`out`), or counted into its pending summary (returns true).
    /// Summaries whose window ended before it go out first.
    pub fn offer(&mut self, alert: Alert, out: &mut Vec<Alert>) -> bool {
        let Some(now) = time_ns(&alert.time) else {
            out.push(alert);
            return false;
        };
        self.advance(now, out);
        let key = Self::key(&alert);
        if let Some(p) = self.pending.get_mut(&key) {
            p.count += 1;
            p.last = alert;
            return true;
        }
        self.pending.insert(
            key,
            Pending {
                first_ns: now,
                first_time: alert.time.clone(),
                first_event_ids: alert.event_ids.clone(),
                count: 1,
                last: alert.clone(),
            },
        );
        out.push(alert);
        false
    }

    /// Time moved to `now_ns` (an event's time): summaries of ended windows go out.
    pub fn advance(&mut self, now_ns: i128, out: &mut Vec<Alert>) {
        if self.pending.is_empty() {
            return;
        }
        let window = self.window_ns;
        let ended: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, p)| now_ns >= p.first_ns + window)
            .map(|(k, _)| k.clone())
            .collect();
        let mut done: Vec<Pending> = ended
            .into_iter()
            .filter_map(|k| self.pending.remove(&k))
            .collect();
        // In the order the windows opened (then by key, as the map gave them).
        done.sort_by_key(|p| p.first_ns);
        out.extend(done.into_iter().filter_map(summary));
    }

    /// The session ended: every pending summary goes out.
    pub fn flush(&mut self, out: &mut Vec<Alert>) {
        self.advance(i128::MAX / 2, out);
    }
}

fn summary(p: Pending) -> Option<Alert> {
    if p.count < 2 {
        return None;
    }
    let mut a = p.last;
    a.coalesced = Some(Coalesced {
        count: p.count,
        first_time: p.first_time,
        last_time: a.time.clone(),
        first_event_ids: p.first_event_ids,
    });
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(i: u64, secs: u64) -> Alert {
        let text = include_str!("../../tests/fixtures/core-pattern.alerts.jsonl");
        let mut a: Alert = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        a.time = format!("2026-12-01T08:{:02}:{:02}.000000000Z", secs / 60, secs % 60);
        a.event_ids = vec![i];
        a
    }

    #[test]
    fn ten_thousand_identical_alerts_give_the_first_and_one_summary() {
        let mut c = Coalescer::new(60_000).unwrap();
        let mut out = Vec::new();
        let mut folded = 0;
        for i in 0..10_000u64 {
            // 10,000 within 50 s.
            folded += u64::from(c.offer(alert(i, i / 200), &mut out));
        }
        assert_eq!(out.len(), 1, "only the first went out");
        assert_eq!(out[0].coalesced, None);
        assert_eq!(folded, 9_999);
        c.flush(&mut out);
        assert_eq!(out.len(), 2);
        let s = out[1].coalesced.as_ref().unwrap();
        assert_eq!(s.count, 10_000);
        assert_eq!(s.first_time, "2026-12-01T08:00:00.000000000Z");
        assert_eq!(s.last_time, "2026-12-01T08:00:49.000000000Z");
        assert_eq!(s.first_event_ids, vec![0]);
        assert_eq!(out[1].event_ids, vec![9_999]);
    }

    #[test]
    fn a_later_event_closes_the_window_and_other_alerts_pass() {
        let mut c = Coalescer::new(10_000).unwrap();
        let mut out = Vec::new();
        c.offer(alert(1, 0), &mut out);
        c.offer(alert(2, 5), &mut out);
        let mut other = alert(3, 6);
        other.rule = "sysctl-write".into();
        c.offer(other, &mut out);
        assert_eq!(out.len(), 2, "a different rule is not folded");
        c.advance(time_ns("2026-12-01T08:00:09.999999999Z").unwrap(), &mut out);
        assert_eq!(out.len(), 2);
        c.advance(time_ns("2026-12-01T08:00:10Z").unwrap(), &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].coalesced.as_ref().unwrap().count, 2);
        // After the window a repeat opens a new one and goes out at once.
        c.offer(alert(4, 30), &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(out[3].coalesced, None);
        // A lone alert gives no summary.
        c.flush(&mut out);
        assert_eq!(out.len(), 4);
        assert!(Coalescer::new(0).is_none());
    }
}
