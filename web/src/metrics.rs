//! What `/metrics` reports, and the histogram the node fills with order-to-lease latencies.

use serde::{Deserialize, Serialize};

/// Upper bounds (ms) of the order-to-lease latency buckets.
pub const LATENCY_BOUNDS_MS: [u64; 12] =
    [50, 100, 250, 500, 750, 1_000, 1_500, 2_500, 5_000, 10_000, 30_000, 60_000];

/// A histogram with fixed upper bounds, as Prometheus reads one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Upper bound of each bucket, ms, ascending.
    pub bounds_ms: Vec<u64>,
    /// Observations per bucket (not cumulative), one more than `bounds_ms` (the last counts
    /// what exceeded every bound).
    pub counts: Vec<u64>,
    /// Sum of all observations, ms.
    pub sum_ms: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new(&LATENCY_BOUNDS_MS)
    }
}

impl Histogram {
    /// An empty histogram with `bounds_ms` (ascending).
    pub fn new(bounds_ms: &[u64]) -> Self {
        Self { bounds_ms: bounds_ms.to_vec(), counts: vec![0; bounds_ms.len() + 1], sum_ms: 0 }
    }

    /// Records one observation.
    pub fn observe(&mut self, ms: u64) {
        let i = self.bounds_ms.partition_point(|b| *b < ms);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Counters and gauges the node reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Height of the last committed block.
    pub height: u64,
    /// Blocks committed since the node started.
    pub blocks_committed: u64,
    /// Entries in those blocks.
    pub entries_committed: u64,
    /// Orders and cancels this node admitted since it started (API and gossip).
    pub orders_accepted: u64,
    /// Entries it refused.
    pub entries_refused: u64,
    /// Orders admitted per second over the last few seconds.
    pub orders_per_second: f64,
    /// Entries waiting in the mempool.
    pub mempool: usize,
    /// Connected peers.
    pub peers: usize,
    /// From a bid's acceptance by this node to its lease being committed, ms.
    pub order_to_lease_ms: Histogram,
}
