//! How far this node's clock is from its peers': every block another validator proposed carries
//! that validator's clock (`timestamp_ms`); the time this node commits it, less that, is the
//! offset plus the time from proposal to commit (typically well under a second). The median of
//! the last [`SAMPLES`] such blocks is the node's clock offset (positive: this node is ahead).
//! A block that reached the node by value sync, or that was decided in a round after the first,
//! is a sample only if it says the node is behind: a node catching up commits old blocks long
//! after they were made, and a block decided in a later round may have been built rounds
//! earlier (a builder re-proposes the block it stored for that height, and a later proposer the
//! engine's valid value, both with their first time), either of which would read as a clock
//! ahead; while a node whose clock is behind gets its peers' blocks by value sync (it refused
//! their proposals as made in its future).
//!
//! Past [`WARN_MS`] the node logs a warning (its proposals or votes start to fail: a block time
//! more than 2 s ahead of a validator's clock is refused); past [`REFUSE_MS`] it refuses
//! submissions with 503 `clock_skew` rather than acknowledge orders it cannot judge.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Blocks whose offsets are kept.
pub const SAMPLES: usize = 15;
/// Fewest samples before the node states an offset.
pub const MIN_SAMPLES: usize = 3;
/// Offset, ms, past which the node warns.
pub const WARN_MS: i64 = 2_000;
/// Offset, ms, past which the node refuses submissions.
pub const REFUSE_MS: i64 = 10_000;
/// A warning is repeated this often while the offset stays past [`WARN_MS`], ms.
const WARN_EVERY_MS: u64 = 60_000;

/// The offset estimate.
#[derive(Debug, Default)]
pub struct ClockWatch {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    samples: VecDeque<i64>,
    warned_at: Option<u64>,
}

/// What a new block changed, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing to say.
    None,
    /// The offset is past [`WARN_MS`] (first time, or once a minute while it lasts).
    Warn(i64),
    /// The offset is back within [`WARN_MS`] after a warning.
    Recovered(i64),
}

impl ClockWatch {
    /// A block made at `made` (its `timestamp_ms`) and committed by this node at
    /// `committed_ms`. No sample if `own` (this node proposed it: its time is this node's own
    /// clock), nor if `late` (it came by value sync, or was decided in a round after the
    /// first, so it may be older than its commit says) unless it was committed before it was
    /// made.
    pub fn on_block(&self, made: u64, committed_ms: u64, own: bool, late: bool) -> Change {
        let sample = committed_ms as i64 - made as i64;
        if own || (late && sample >= 0) {
            return Change::None;
        }
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if s.samples.len() == SAMPLES {
            s.samples.pop_front();
        }
        s.samples.push_back(sample);
        let Some(offset) = median(&s.samples) else { return Change::None };
        if offset.abs() > WARN_MS {
            if s.warned_at.is_none_or(|t| committed_ms >= t + WARN_EVERY_MS) {
                s.warned_at = Some(committed_ms);
                return Change::Warn(offset);
            }
        } else if s.warned_at.take().is_some() {
            return Change::Recovered(offset);
        }
        Change::None
    }

    /// The offset, ms (positive: this node's clock is ahead), once there are enough samples.
    pub fn offset_ms(&self) -> Option<i64> {
        median(&self.inner.lock().unwrap_or_else(|e| e.into_inner()).samples)
    }

    /// Whether submissions are refused: the offset is past [`REFUSE_MS`].
    pub fn refuses(&self) -> Option<i64> {
        self.offset_ms().filter(|o| o.abs() > REFUSE_MS)
    }
}

fn median(samples: &VecDeque<i64>) -> Option<i64> {
    if samples.len() < MIN_SAMPLES {
        return None;
    }
    let mut v: Vec<i64> = samples.iter().copied().collect();
    v.sort_unstable();
    Some(v[v.len() / 2])
}

/// "12.3 s ahead of" / "4.0 s behind" the other validators' clocks, for messages.
pub fn describe(offset_ms: i64) -> String {
    let secs = offset_ms.unsigned_abs() as f64 / 1000.0;
    let way = if offset_ms >= 0 { "ahead of" } else { "behind" };
    format!("{secs:.1} s {way}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_the_median_of_live_blocks_of_others() {
        let w = ClockWatch::default();
        // Blocks every 500 ms, committed 10 min (+ 100 ms) after they were made: ahead.
        let ahead = 600_000 + 100;
        let mut changes = Vec::new();
        for i in 0..10u64 {
            let made = 1_000_000 + i * 500;
            changes.push(w.on_block(made, made + ahead as u64, i % 4 == 0, false));
        }
        assert_eq!(w.offset_ms(), Some(ahead));
        assert_eq!(w.refuses(), Some(ahead));
        assert_eq!(changes.iter().filter(|c| matches!(c, Change::Warn(_))).count(), 1);
        // One proposer far off moves the median little.
        w.on_block(1_005_000, 1_005_000 + 50, false, false);
        assert_eq!(w.offset_ms(), Some(ahead));
    }

    #[test]
    fn a_catch_up_is_no_sample_and_a_good_clock_is_quiet() {
        let w = ClockWatch::default();
        // 100 old blocks, one a second, committed 10 ms apart by value sync.
        for i in 0..100u64 {
            let made = 1_000_000 + i * 1000;
            assert_eq!(w.on_block(made, 5_000_000 + i * 10, false, true), Change::None);
        }
        assert_eq!(w.offset_ms(), None);
        // Then live blocks, committed 150 ms after they were made.
        for i in 0..5u64 {
            let made = 5_001_000 + i * 500;
            assert_eq!(w.on_block(made, made + 150, false, false), Change::None);
        }
        assert_eq!((w.offset_ms(), w.refuses()), (Some(150), None));
    }

    #[test]
    fn blocks_decided_after_a_stall_are_no_sample_of_ahead() {
        let w = ClockWatch::default();
        // The first heights took 30 s of rounds; their blocks kept the time they were built.
        for i in 0..3u64 {
            let made = 1_000_000 + i * 500;
            assert_eq!(w.on_block(made, made + 30_000, false, true), Change::None);
        }
        for i in 3..6u64 {
            let made = 1_000_000 + i * 500;
            w.on_block(made, made + 200, false, false);
        }
        assert_eq!((w.offset_ms(), w.refuses()), (Some(200), None));
    }

    #[test]
    fn behind_warns_and_recovers() {
        let w = ClockWatch::default();
        let mut last = Change::None;
        for i in 0..6u64 {
            let made = 2_000_000 + i * 500;
            // Behind, the node gets its peers' blocks by value sync.
            last = w.on_block(made, made - 5_000, false, true);
            if i == 2 {
                assert_eq!(last, Change::Warn(-5_000));
            }
        }
        assert_eq!(last, Change::None, "not again within a minute");
        assert_eq!((w.offset_ms(), w.refuses()), (Some(-5_000), None));
        for i in 6..30u64 {
            let made = 2_000_000 + i * 500;
            last = w.on_block(made, made + 100, false, false);
            if last != Change::None {
                break;
            }
        }
        assert_eq!(last, Change::Recovered(100));
        assert_eq!(describe(-5_000), "5.0 s behind");
        assert_eq!(describe(600_100), "600.1 s ahead of");
    }
}
