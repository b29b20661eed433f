//! How many entries this node's proposals carry: no more than it executes within its budget
//! ([`budget`]: half the batch interval, and no more than a share of the propose timeout, since
//! the proposer builds the block and every validator checks it before that timeout runs out),
//! by the time per entry it measured on recent blocks (each built or checked), so that a block
//! is checked by the validators in its round even when the pool holds more than the block
//! limit. A proposer's own choice: validators accept any block within the limits in force
//! (`docs/node.md`), so nodes need not agree on it. And when a block is due: the batch interval
//! adapts between its configured bounds ([`interval`]).

use std::time::Duration;

/// Blocks with fewer entries say little of the time per entry (fixed costs dominate): not
/// counted.
const MIN_SAMPLE: usize = 50;
/// A proposal may carry at least this many entries, however slow recent blocks were: the chain
/// always moves.
pub const FLOOR: usize = 100;
/// Weight of the newest measure in the running average.
const WEIGHT: f64 = 0.25;

/// The running average of this node's execution time per block entry.
#[derive(Debug, Default)]
pub struct Pace {
    per_entry_ns: Option<f64>,
}

impl Pace {
    /// Counts a block of `entries` user entries (those from the pool) that took `took` to
    /// execute (built or checked), with the entries they brought (a fill for each order filled).
    pub fn record(&mut self, entries: usize, took: Duration) {
        if entries < MIN_SAMPLE {
            return;
        }
        let sample = took.as_nanos() as f64 / entries as f64;
        self.per_entry_ns = Some(match self.per_entry_ns {
            Some(avg) => avg + WEIGHT * (sample - avg),
            None => sample,
        });
    }

    /// Most user entries for the next proposal: as many as execute within `budget` at the
    /// measured pace, between [`FLOOR`] and `max_entries` (the limit in force).
    pub fn limit(&self, max_entries: usize, budget: Duration) -> usize {
        let Some(per) = self.per_entry_ns.filter(|p| *p > 0.0) else { return max_entries };
        let fits = (budget.as_nanos() as f64 / per) as usize;
        fits.clamp(FLOOR.min(max_entries), max_entries)
    }

    /// The measured time per entry, if any.
    pub fn per_entry(&self) -> Option<Duration> {
        self.per_entry_ns.map(|ns| Duration::from_nanos(ns as u64))
    }
}

/// The time a block's execution may take: half the batch interval, and at most 2/5 of the
/// propose timeout (round 0's: the proposer's build, the transfer and each validator's check
/// all fall within it, and a block that misses it costs a round).
pub fn budget(interval: Duration, propose_timeout: Duration) -> Duration {
    (interval / 2).min(propose_timeout * 2 / 5)
}

/// The batch interval in force after a block, between `min` and `max` (the configured
/// bounds; `min` above `max` counts as `max`): a batch closes once `max` has passed, or once
/// `min` has passed and `waiting` entries fill a proposal of `full` (more would only wait for
/// a later block: closing it then cuts their wait without making blocks smaller).
pub fn interval(min: Duration, max: Duration, waiting: usize, full: usize) -> Duration {
    if waiting >= full.max(1) {
        min.min(max)
    } else {
        max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(500);
    /// Half of [`INTERVAL`].
    const BUDGET: Duration = Duration::from_millis(250);

    #[test]
    fn the_budget_is_half_the_interval_within_the_propose_timeout() {
        let timeout = Duration::from_millis(1_000);
        assert_eq!(budget(INTERVAL, timeout), BUDGET);
        // A short propose timeout binds: 2/5 of 300 ms.
        assert_eq!(budget(INTERVAL, Duration::from_millis(300)), Duration::from_millis(120));
        assert_eq!(budget(Duration::from_millis(100), timeout), Duration::from_millis(50));
    }

    #[test]
    fn the_interval_shortens_to_its_lower_bound_while_a_full_block_waits() {
        let (min, max) = (Duration::from_millis(100), INTERVAL);
        assert_eq!(interval(min, max, 0, 1_000), max);
        assert_eq!(interval(min, max, 999, 1_000), max);
        assert_eq!(interval(min, max, 1_000, 1_000), min);
        assert_eq!(interval(min, max, 50_000, 1_000), min);
        // A lower bound above the interval in force (governance lowered it) is the interval.
        assert_eq!(interval(Duration::from_secs(2), max, 50_000, 1_000), max);
        // An empty pool never counts as a full block.
        assert_eq!(interval(min, max, 0, 0), max);
    }

    #[test]
    fn with_no_measure_the_limit_in_force_binds() {
        assert_eq!(Pace::default().limit(5_000, BUDGET), 5_000);
    }

    #[test]
    fn a_proposal_fits_half_the_interval_at_the_measured_pace() {
        let mut p = Pace::default();
        // 1,000 entries in 200 ms: 200 µs each, so 250 ms hold 1,250.
        p.record(1_000, Duration::from_millis(200));
        assert_eq!(p.per_entry(), Some(Duration::from_micros(200)));
        assert_eq!(p.limit(5_000, BUDGET), 1_250);
        // The limit in force still binds when blocks are fast.
        p.record(1_000, Duration::from_millis(1));
        p.record(1_000, Duration::from_millis(1));
        assert!(p.limit(5_000, BUDGET) > 1_250);
        assert_eq!(Pace { per_entry_ns: Some(1.0) }.limit(5_000, BUDGET), 5_000);
    }

    #[test]
    fn the_average_follows_a_slowdown_and_never_stops_the_chain() {
        let mut p = Pace::default();
        p.record(1_000, Duration::from_millis(100));
        let before = p.limit(5_000, BUDGET);
        p.record(1_000, Duration::from_millis(900));
        let after = p.limit(5_000, BUDGET);
        assert!(after < before, "{after} < {before}");
        // Ever slower blocks: the floor holds.
        for _ in 0..50 {
            p.record(100, Duration::from_secs(10));
        }
        assert_eq!(p.limit(5_000, BUDGET), FLOOR);
        // A limit in force below the floor is kept.
        assert_eq!(p.limit(10, BUDGET), 10);
    }

    #[test]
    fn small_blocks_are_not_counted() {
        let mut p = Pace::default();
        p.record(MIN_SAMPLE - 1, Duration::from_secs(1));
        assert_eq!(p.per_entry(), None);
    }
}
