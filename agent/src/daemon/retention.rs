//! Evidence rotated away: the event log's retention deletes its oldest segment once it holds
//! `keep` rotated ones. A flood of events (or of the container's own making) rotates
//! segments in seconds, and the evidence of what came before it goes with them. Each deletion
//! is counted (`escapewatch_event_log_segments_deleted_total`); one while the kept segments
//! span less than [`FLOOD_SPAN`] is also a warning, since whatever preceded them is gone.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// Kept segments spanning less than this are a log under flood.
pub const FLOOD_SPAN: Duration = Duration::from_secs(3600);

/// Rotations seen, to say how much time the kept segments span.
#[derive(Debug, Default)]
pub struct RetentionWatch {
    /// When the last rotations were seen, oldest first (at most `keep + 1` of them).
    rotations: VecDeque<Instant>,
}

/// Deletions seen while the log spans less than [`FLOOD_SPAN`].
#[derive(Debug, PartialEq, Eq)]
pub struct Flooded {
    pub deleted: u64,
    /// How long ago the oldest kept segment began (an estimate: rotations are seen per tick).
    pub span: Duration,
}

impl RetentionWatch {
    /// `rotated` rotations and `deleted` deletions happened since the last call, at `now`.
    pub fn observe(
        &mut self,
        rotated: u64,
        deleted: u64,
        keep: u32,
        now: Instant,
    ) -> Option<Flooded> {
        let keep = keep as usize;
        for _ in 0..rotated.min(keep as u64 + 1) {
            self.rotations.push_back(now);
        }
        while self.rotations.len() > keep + 1 {
            self.rotations.pop_front();
        }
        if deleted == 0 || self.rotations.len() <= keep {
            // No deletion, or one of segments rotated before this run: no span to tell.
            return None;
        }
        // With keep+1 rotations seen, the oldest kept segment was started by the first.
        let span = now.saturating_duration_since(self.rotations[0]);
        (span < FLOOD_SPAN).then_some(Flooded { deleted, span })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletions_under_a_flood_are_told_and_slow_ones_are_not() {
        let t0 = Instant::now();
        let mut w = RetentionWatch::default();
        // keep 3: the first three rotations delete nothing.
        for i in 0..3 {
            assert_eq!(w.observe(1, 0, 3, t0 + Duration::from_secs(i)), None);
        }
        // The fourth, 10 s after the first, deletes the oldest: the log spans 10 s.
        assert_eq!(
            w.observe(1, 1, 3, t0 + Duration::from_secs(10)),
            Some(Flooded {
                deleted: 1,
                span: Duration::from_secs(10)
            })
        );
        // A burst of 50 rotations in one tick: all counted, the span is that tick.
        let f = w.observe(50, 50, 3, t0 + Duration::from_secs(11)).unwrap();
        assert_eq!(f.deleted, 50);
        assert_eq!(f.span, Duration::ZERO);
        // A day later, a rotation a day: kept segments span days, nothing to warn about.
        let mut slow = RetentionWatch::default();
        let day = Duration::from_secs(86_400);
        for i in 0..3 {
            assert_eq!(slow.observe(1, 0, 3, t0 + day * i), None);
        }
        assert_eq!(slow.observe(1, 1, 3, t0 + day * 3), None);
    }

    #[test]
    fn a_deletion_before_enough_rotations_are_seen_is_not_a_flood() {
        // The agent restarted with full retention: its first rotation deletes one.
        let mut w = RetentionWatch::default();
        assert_eq!(w.observe(1, 1, 3, Instant::now()), None);
    }
}
