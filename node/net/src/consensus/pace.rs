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

/// When a validator starts a height: the batch of entries gathers before it.
#[derive(Clone, Copy, Debug)]
pub struct Start {
    /// Whether this validator proposes the height's round 0.
    pub proposes: bool,
    /// The configured bounds of the batch interval.
    pub min: Duration,
    /// See [`Start::min`].
    pub max: Duration,
    /// The longest wait after a commit (the idle heartbeat, and at least `max`).
    pub heartbeat: Duration,
    /// User entries that fill a proposal.
    pub full: usize,
}

/// What a waiting validator knows at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    /// A part of the height's proposal has come.
    pub proposal: bool,
    /// Since this validator committed the height before.
    pub since_commit: Duration,
    /// Since the batch began: the start of the height before.
    pub gathered: Duration,
    /// Entries wait, or time-driven work is due.
    pub work: bool,
    /// Entries waiting for a block.
    pub waiting: usize,
}

impl Start {
    /// Whether to start now. Round 0's proposer starts once there is work and the batch has
    /// gathered for the interval (its lower bound while a full proposal waits, see
    /// [`interval`]), or at the heartbeat. Any other validator starts when the proposer's
    /// first part comes, or, after its own commit, once a full interval has passed with work
    /// waiting or the heartbeat is due (the proposer may be down: round 0 then times out as it
    /// always did). Starting before the proposer would start its propose timeout early, and a
    /// proposal that comes after it costs a round.
    pub fn now(&self, seen: &Seen) -> bool {
        if seen.since_commit >= self.heartbeat {
            return true;
        }
        if !self.proposes {
            return seen.proposal || (seen.work && seen.since_commit >= self.max);
        }
        seen.work && seen.gathered >= interval(self.min, self.max, seen.waiting, self.full)
    }

    /// How long to wait before looking again, at most (arrivals and parts wake it earlier).
    pub fn nap(&self, seen: &Seen) -> Duration {
        let heartbeat = self.heartbeat.saturating_sub(seen.since_commit);
        let nap = match (self.proposes, seen.work) {
            (true, true) => {
                interval(self.min, self.max, seen.waiting, self.full).saturating_sub(seen.gathered)
            }
            (false, true) => self.max.saturating_sub(seen.since_commit),
            (_, false) => Duration::from_millis(250),
        };
        nap.min(heartbeat).max(Duration::from_millis(1))
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
    fn round_zeros_proposer_starts_at_the_interval_or_when_a_block_is_full() {
        let ms = Duration::from_millis;
        let start =
            Start { proposes: true, min: ms(100), max: INTERVAL, heartbeat: INTERVAL, full: 2_000 };
        let seen = Seen {
            proposal: false,
            since_commit: ms(150),
            gathered: ms(150),
            work: true,
            waiting: 10,
        };
        assert!(!start.now(&seen));
        assert_eq!(start.nap(&seen), ms(350));
        assert!(start.now(&Seen { waiting: 2_000, ..seen }), "a full proposal closes at min");
        assert!(start.now(&Seen { gathered: INTERVAL, ..seen }));
        assert!(!start.now(&Seen { gathered: INTERVAL, work: false, ..seen }), "nothing to do");
        assert!(start.now(&Seen { since_commit: INTERVAL, work: false, ..seen }), "heartbeat");
    }

    #[test]
    fn another_validator_starts_when_the_proposal_comes_or_an_interval_after_its_commit() {
        let ms = Duration::from_millis;
        let heartbeat = Duration::from_secs(30);
        let start = Start { proposes: false, min: ms(100), max: INTERVAL, heartbeat, full: 2_000 };
        // Its batch has gathered (the height before took longer than the interval) and a full
        // block waits: it still waits for the proposer, which may not have started.
        let seen = Seen {
            proposal: false,
            since_commit: ms(10),
            gathered: ms(700),
            work: true,
            waiting: 5_000,
        };
        assert!(!start.now(&seen));
        assert_eq!(start.nap(&seen), ms(490));
        assert!(start.now(&Seen { proposal: true, ..seen }));
        // The proposer may be down: a full interval after its own commit, it starts.
        assert!(start.now(&Seen { since_commit: INTERVAL, ..seen }));
        // With nothing to do, it waits for the heartbeat, as the proposer does.
        let idle = Seen { since_commit: INTERVAL, work: false, waiting: 0, ..seen };
        assert!(!start.now(&idle));
        assert_eq!(start.nap(&idle), ms(250));
        assert!(start.now(&Seen { since_commit: heartbeat, ..idle }));
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
