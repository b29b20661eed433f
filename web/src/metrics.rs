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
    /// API submissions refused to shed load (503 `overloaded`).
    #[serde(default)]
    pub submissions_shed: u64,
    /// Messages this node published on the orders topic that reached a peer.
    #[serde(default)]
    pub gossip_messages_sent: u64,
    /// Entries in those messages (several ride in one under load).
    #[serde(default)]
    pub gossip_entries_sent: u64,
    /// How long the oldest entry a block could take has waited, ms (0: none waits); load is
    /// shed above `[mempool] shed_after_ms`.
    #[serde(default)]
    pub backlog_age_ms: u64,
    /// Orders admitted per second over the last few seconds.
    pub orders_per_second: f64,
    /// Entries waiting in the mempool.
    pub mempool: usize,
    /// Committed blocks the consensus engine handed over and the node has not applied yet
    /// (bounded; the engine waits when it is full).
    #[serde(default)]
    pub commit_queue: usize,
    /// Jobs waiting for the task that owns the state and the mempool (admissions, block
    /// building, commits; bounded: 4096, then callers wait).
    #[serde(default)]
    pub core_queue: usize,
    /// Times the consensus engine restarted in process to reconnect (its messages reached no
    /// peer), since the node started.
    #[serde(default)]
    pub consensus_restarts: u64,
    /// User entries of blocks built or checked whose signature was not verified again (the
    /// node verified it on admission).
    #[serde(default)]
    pub block_signatures_skipped: u64,
    /// User entries of blocks built or checked whose signature was verified there.
    #[serde(default)]
    pub block_signatures_checked: u64,
    /// Publications waiting for the gossip network task (bounded: 256).
    #[serde(default)]
    pub gossip_command_queue: usize,
    /// Received gossip waiting for validation (bounded: 4,096; past it, messages are ignored).
    #[serde(default)]
    pub gossip_validation_queue: usize,
    /// Connected peers.
    pub peers: usize,
    /// From a bid's acceptance by this node to its lease being committed, ms.
    pub order_to_lease_ms: Histogram,
    /// Gossip messages received, by what became of them.
    pub gossip: GossipCounts,
    /// The data directory's disk as last measured (`None`: the node does not measure it).
    #[serde(default)]
    pub disk: Option<crate::DiskStatus>,
    /// This node's clock less its peers', ms, from the times of the blocks they proposed
    /// (`None` until enough blocks of other proposers were committed).
    #[serde(default)]
    pub clock_offset_ms: Option<i64>,
    /// The capacity source's last reading against the leases (`None`: no source configured).
    #[serde(default)]
    pub capacity: Option<surplus_api::CapacityView>,
    /// This node's probes of other providers' leases (`None`: it probes none: supervision is
    /// off, or it is not a validator, or `[supervision] enabled = false`).
    #[serde(default)]
    pub probes: Option<ProbeCounts>,
}

/// This vantage point's probes since the node started (`docs/operations.md`, Supervision).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeCounts {
    /// Leases probed in the last round.
    pub targets: u64,
    /// Probes that found their target up.
    pub up: u64,
    /// Probes that found it down.
    pub down: u64,
    /// Probes that waited for the rate bound.
    pub rate_waits: u64,
    /// Probes not made because their interval ended first.
    pub skipped: u64,
    /// Down reports signed and sent.
    pub reports: u64,
    /// Reports refused on admission (nothing left to count).
    pub reports_refused: u64,
    /// The most probes started within one second.
    pub max_per_second: u64,
}

/// Gossip messages received since the node started, by what became of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GossipCounts {
    /// Valid, relayed.
    pub accepted: u64,
    /// Invalid (the sender's score drops).
    pub rejected: u64,
    /// Duplicates, stale, or beyond the validation queue.
    pub ignored: u64,
    /// Beyond the sending peer's rate (rejected).
    pub rate_limited: u64,
    /// Larger than the message limit (rejected).
    pub oversized: u64,
    /// Dropped by gossipsub: failing the strict checks (signature, `from`, `seqno`), on the
    /// node's topics.
    #[serde(default)]
    pub dropped_invalid: u64,
    /// Dropped by gossipsub: claiming this node as their source, forwarded by another peer.
    #[serde(default)]
    pub dropped_self_origin: u64,
    /// Dropped by gossipsub: seen in the duplicate window, on the node's topics.
    #[serde(default)]
    pub dropped_duplicate: u64,
    /// Dropped by gossipsub: on a topic the node does not subscribe to.
    #[serde(default)]
    pub dropped_unsubscribed_topic: u64,
    /// Dropped by gossipsub: RPC frames from a graylisted peer.
    #[serde(default)]
    pub dropped_graylisted: u64,
    /// Messages gossipsub could not send: the peer's queue was full.
    #[serde(default)]
    pub send_dropped_queue_full: u64,
    /// Messages gossipsub could not send: timed out in the peer's queue.
    #[serde(default)]
    pub send_dropped_timeout: u64,
    /// Connections closed after a failed ping.
    #[serde(default)]
    pub disconnects_ping_failed: u64,
    /// Peers disconnected for lacking a known subscription to either topic.
    #[serde(default)]
    pub disconnects_no_subscription: u64,
    /// Connections refused by the connection limits.
    #[serde(default)]
    pub disconnects_connection_limit: u64,
}

/// The content type of [`Metrics::to_prometheus`].
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Histogram {
    /// Cumulative counts per bound, as Prometheus `_bucket{le=...}` reads them, the last for
    /// `+Inf` (equal to [`Histogram::count`]).
    pub fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .scan(0u64, |total, c| {
                *total = total.saturating_add(*c);
                Some(*total)
            })
            .collect()
    }
}

fn seconds(ms: u64) -> String {
    // Exact for every ms value: integer seconds and three decimals, trailing zeros dropped.
    let (s, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        s.to_string()
    } else {
        format!("{s}.{frac:03}").trim_end_matches('0').to_owned()
    }
}

impl Metrics {
    /// The Prometheus text exposition (format 0.0.4), every name prefixed `surplus_`.
    pub fn to_prometheus(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(2048);
        let mut one = |name: &str, kind: &str, help: &str, value: String| {
            let _ = write!(
                out,
                "# HELP surplus_{name} {help}\n# TYPE surplus_{name} {kind}\nsurplus_{name} {value}\n"
            );
        };
        one("height", "gauge", "Height of the last committed block.", self.height.to_string());
        one(
            "blocks_committed_total",
            "counter",
            "Blocks committed since the node started.",
            self.blocks_committed.to_string(),
        );
        one(
            "entries_committed_total",
            "counter",
            "Entries in the blocks committed since the node started.",
            self.entries_committed.to_string(),
        );
        one(
            "orders_accepted_total",
            "counter",
            "Orders and cancels this node admitted since it started (API and gossip).",
            self.orders_accepted.to_string(),
        );
        one(
            "entries_refused_total",
            "counter",
            "Entries this node refused since it started.",
            self.entries_refused.to_string(),
        );
        one(
            "submissions_shed_total",
            "counter",
            "API submissions refused with 503 overloaded to shed load since the node started.",
            self.submissions_shed.to_string(),
        );
        one(
            "gossip_messages_sent_total",
            "counter",
            "Messages this node published on the orders topic that reached a peer.",
            self.gossip_messages_sent.to_string(),
        );
        one(
            "gossip_entries_sent_total",
            "counter",
            "Entries in the messages this node published on the orders topic that reached a peer.",
            self.gossip_entries_sent.to_string(),
        );
        one(
            "backlog_age_ms",
            "gauge",
            "How long the oldest entry a block could take has waited, ms (0: none waits).",
            self.backlog_age_ms.to_string(),
        );
        let ops = if self.orders_per_second.is_finite() { self.orders_per_second } else { 0.0 };
        one(
            "orders_per_second",
            "gauge",
            "Orders admitted per second over the last few seconds.",
            format!("{ops}"),
        );
        one(
            "mempool_entries",
            "gauge",
            "Entries waiting in the mempool.",
            self.mempool.to_string(),
        );
        one(
            "commit_queue",
            "gauge",
            "Committed blocks waiting for the node to apply them.",
            self.commit_queue.to_string(),
        );
        one(
            "core_queue",
            "gauge",
            "Jobs waiting for the task that owns the state and the mempool.",
            self.core_queue.to_string(),
        );
        one(
            "consensus_restarts_total",
            "counter",
            "Consensus engine restarts to reconnect since the node started.",
            self.consensus_restarts.to_string(),
        );
        one(
            "block_signatures_skipped_total",
            "counter",
            "User entries of blocks built or checked whose signature was verified on admission \
             and not again.",
            self.block_signatures_skipped.to_string(),
        );
        one(
            "block_signatures_checked_total",
            "counter",
            "User entries of blocks built or checked whose signature was verified there.",
            self.block_signatures_checked.to_string(),
        );
        one(
            "gossip_command_queue",
            "gauge",
            "Publications waiting for the gossip network task.",
            self.gossip_command_queue.to_string(),
        );
        one(
            "gossip_validation_queue",
            "gauge",
            "Received gossip messages waiting for validation.",
            self.gossip_validation_queue.to_string(),
        );
        one("peers", "gauge", "Connected peers.", self.peers.to_string());
        if let Some(p) = &self.probes {
            one(
                "probe_targets",
                "gauge",
                "Leases of other providers probed in the last round.",
                p.targets.to_string(),
            );
            one(
                "probes_up_total",
                "counter",
                "Probes that found their target up.",
                p.up.to_string(),
            );
            one(
                "probes_down_total",
                "counter",
                "Probes that found their target down.",
                p.down.to_string(),
            );
            one(
                "probe_rate_waits_total",
                "counter",
                "Probes that waited for the rate bound.",
                p.rate_waits.to_string(),
            );
            one(
                "probes_skipped_total",
                "counter",
                "Probes not made because their interval ended first.",
                p.skipped.to_string(),
            );
            one(
                "probe_reports_total",
                "counter",
                "Down reports this node signed and sent.",
                p.reports.to_string(),
            );
            one(
                "probe_reports_refused_total",
                "counter",
                "Own down reports refused on admission.",
                p.reports_refused.to_string(),
            );
            one(
                "probes_max_per_second",
                "gauge",
                "The most probes this node started within one second.",
                p.max_per_second.to_string(),
            );
        }
        if let Some(c) = &self.capacity {
            one(
                "capacity_source_ok",
                "gauge",
                "1 if the capacity source's last reading succeeded, else 0.",
                u8::from(c.error.is_none() && c.at_ms > 0).to_string(),
            );
            one(
                "capacity_alert",
                "gauge",
                "1 if some class has more leased than the capacity source allows, else 0.",
                u8::from(c.alert).to_string(),
            );
            for (name, help, get) in [
                (
                    "capacity_sellable_slots",
                    "Slots of the class the node may sell (the source's, less the headroom).",
                    (|k: &surplus_api::ClassCapacity| k.sellable)
                        as fn(&surplus_api::ClassCapacity) -> u64,
                ),
                ("capacity_leased_slots", "Slots of the class leased by this provider.", |k| {
                    k.leased
                }),
                (
                    "capacity_short_slots",
                    "Slots of the class leased beyond what the source allows.",
                    |k| k.short,
                ),
            ] {
                let _ = write!(out, "# HELP surplus_{name} {help}\n# TYPE surplus_{name} gauge\n");
                for k in &c.classes {
                    let _ = writeln!(out, "surplus_{name}{{class=\"{}\"}} {}", k.class, get(k));
                }
            }
        }
        let g = &self.gossip;
        let _ = write!(
            out,
            "# HELP surplus_gossip_messages_total Gossip messages received, by what became of \
             them.\n# TYPE surplus_gossip_messages_total counter\n"
        );
        for (result, n) in [
            ("accepted", g.accepted),
            ("rejected", g.rejected),
            ("ignored", g.ignored),
            ("rate_limited", g.rate_limited),
            ("oversized", g.oversized),
        ] {
            let _ = writeln!(out, "surplus_gossip_messages_total{{result=\"{result}\"}} {n}");
        }
        let mut family = |name: &str, help: &str, label: &str, values: &[(&str, u64)]| {
            let _ = write!(out, "# HELP surplus_{name} {help}\n# TYPE surplus_{name} counter\n");
            for (value, n) in values {
                let _ = writeln!(out, "surplus_{name}{{{label}=\"{value}\"}} {n}");
            }
        };
        family(
            "gossip_dropped_total",
            "Gossip messages gossipsub dropped before validation, by reason.",
            "reason",
            &[
                ("invalid", g.dropped_invalid),
                ("self_origin", g.dropped_self_origin),
                ("duplicate", g.dropped_duplicate),
                ("unsubscribed_topic", g.dropped_unsubscribed_topic),
                ("graylisted", g.dropped_graylisted),
            ],
        );
        family(
            "gossip_send_dropped_total",
            "Gossip messages gossipsub could not send to a peer, by reason.",
            "reason",
            &[("queue_full", g.send_dropped_queue_full), ("timeout", g.send_dropped_timeout)],
        );
        family(
            "gossip_disconnects_total",
            "Gossip connections closed or refused by the node's own rules, by rule.",
            "reason",
            &[
                ("ping_failed", g.disconnects_ping_failed),
                ("no_subscription", g.disconnects_no_subscription),
                ("connection_limit", g.disconnects_connection_limit),
            ],
        );

        if let Some(d) = &self.disk {
            disk_lines(d, &mut out);
        }
        if let Some(offset) = self.clock_offset_ms {
            let _ = write!(
                out,
                "# HELP surplus_clock_offset_ms This node's clock less its peers', from the times \
                 of the blocks they proposed (positive: ahead).\n\
                 # TYPE surplus_clock_offset_ms gauge\nsurplus_clock_offset_ms {offset}\n"
            );
        }

        let h = &self.order_to_lease_ms;
        let name = "surplus_order_to_lease_seconds";
        let _ = write!(
            out,
            "# HELP {name} From a bid's acceptance by this node to its lease being committed.\n\
             # TYPE {name} histogram\n"
        );
        let cumulative = h.cumulative();
        for (bound, c) in h.bounds_ms.iter().zip(&cumulative) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {c}", seconds(*bound));
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count());
        let _ = writeln!(out, "{name}_sum {}", seconds(h.sum_ms));
        let _ = writeln!(out, "{name}_count {}", h.count());
        out
    }
}

/// The disk's gauges and the refusals it caused.
fn disk_lines(d: &crate::DiskStatus, out: &mut String) {
    use std::fmt::Write;
    let mut one = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = write!(
            out,
            "# HELP surplus_{name} {help}\n# TYPE surplus_{name} {kind}\nsurplus_{name} {value}\n"
        );
    };
    one(
        "disk_free_bytes",
        "gauge",
        "Bytes free for the node on its data directory's filesystem.",
        d.free_bytes,
    );
    one("disk_total_bytes", "gauge", "Size of the data directory's filesystem.", d.total_bytes);
    one(
        "disk_min_free_bytes",
        "gauge",
        "Free bytes below which the node refuses new submissions (0: never).",
        d.min_free_bytes,
    );
    one(
        "disk_low",
        "gauge",
        "1 while free space is below the threshold and new submissions are refused.",
        u64::from(d.low),
    );
    one(
        "submissions_refused_disk_total",
        "counter",
        "Submissions refused for lack of disk since the node started.",
        d.refused,
    );
    let _ = write!(
        out,
        "# HELP surplus_disk_used_bytes Bytes each part of the data directory takes on disk.\n\
         # TYPE surplus_disk_used_bytes gauge\n"
    );
    for (part, n) in d.used_bytes.parts() {
        let _ = writeln!(out, "surplus_disk_used_bytes{{part=\"{part}\"}} {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_is_reported_when_measured() {
        assert!(!Metrics::default().to_prometheus().contains("disk"));
        let disk = crate::DiskStatus {
            free_bytes: 1_000,
            total_bytes: 4_000,
            min_free_bytes: 2_000,
            low: true,
            used_bytes: crate::DiskUsed { ledger: 300, journal: 20, ..Default::default() },
            refused: 5,
            ..Default::default()
        };
        let text = Metrics { disk: Some(disk), ..Default::default() }.to_prometheus();
        for line in [
            "# TYPE surplus_disk_free_bytes gauge",
            "surplus_disk_free_bytes 1000",
            "surplus_disk_total_bytes 4000",
            "surplus_disk_min_free_bytes 2000",
            "# TYPE surplus_disk_low gauge",
            "surplus_disk_low 1",
            "# TYPE surplus_submissions_refused_disk_total counter",
            "surplus_submissions_refused_disk_total 5",
            "# TYPE surplus_disk_used_bytes gauge",
            "surplus_disk_used_bytes{part=\"ledger\"} 300",
            "surplus_disk_used_bytes{part=\"journal\"} 20",
            "surplus_disk_used_bytes{part=\"snapshots\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_is_not_below() {
        let mut h = Histogram::new(&[10, 100]);
        for ms in [0, 10, 11, 100, 101, 5_000] {
            h.observe(ms);
        }
        // <= 10: 0 and 10; <= 100: 11 and 100; beyond: 101 and 5000.
        assert_eq!(h.counts, vec![2, 2, 2]);
        assert_eq!(h.count(), 6);
        assert_eq!(h.sum_ms, 5_222);
        assert_eq!(h.cumulative(), vec![2, 4, 6]);
    }

    #[test]
    fn default_has_the_latency_bounds_and_an_overflow_bucket() {
        let h = Histogram::default();
        assert_eq!(h.bounds_ms, LATENCY_BOUNDS_MS.to_vec());
        assert_eq!(h.counts.len(), LATENCY_BOUNDS_MS.len() + 1);
        assert_eq!(h.count(), 0);
        assert_eq!(h.cumulative().last(), Some(&0));
    }

    #[test]
    fn sum_saturates_instead_of_overflowing() {
        let mut h = Histogram::new(&[1]);
        h.observe(u64::MAX);
        h.observe(5);
        assert_eq!(h.sum_ms, u64::MAX);
        assert_eq!(h.counts, vec![0, 2]);
    }

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(50), "0.05");
        assert_eq!(seconds(1_500), "1.5");
        assert_eq!(seconds(60_000), "60");
        assert_eq!(seconds(1_001), "1.001");
    }

    #[test]
    fn exposition_has_help_type_and_cumulative_buckets() {
        let mut m = Metrics {
            height: 7,
            blocks_committed: 3,
            orders_per_second: 2.5,
            commit_queue: 2,
            consensus_restarts: 1,
            gossip_validation_queue: 5,
            gossip: GossipCounts {
                dropped_duplicate: 4,
                disconnects_no_subscription: 2,
                ..Default::default()
            },
            ..Default::default()
        };
        m.order_to_lease_ms = Histogram::new(&[100, 1_000]);
        for ms in [50, 150, 2_000] {
            m.order_to_lease_ms.observe(ms);
        }
        let text = m.to_prometheus();
        for line in [
            "# HELP surplus_height ",
            "# TYPE surplus_height gauge",
            "surplus_height 7",
            "# TYPE surplus_blocks_committed_total counter",
            "surplus_blocks_committed_total 3",
            "surplus_orders_per_second 2.5",
            "# TYPE surplus_commit_queue gauge",
            "surplus_commit_queue 2",
            "# TYPE surplus_consensus_restarts_total counter",
            "surplus_consensus_restarts_total 1",
            "# TYPE surplus_gossip_command_queue gauge",
            "surplus_gossip_command_queue 0",
            "# TYPE surplus_gossip_validation_queue gauge",
            "surplus_gossip_validation_queue 5",
            "surplus_mempool_entries 0",
            "surplus_peers 0",
            "# TYPE surplus_gossip_messages_total counter",
            "surplus_gossip_messages_total{result=\"rejected\"} 0",
            "surplus_gossip_messages_total{result=\"oversized\"} 0",
            "# TYPE surplus_gossip_dropped_total counter",
            "surplus_gossip_dropped_total{reason=\"invalid\"} 0",
            "surplus_gossip_dropped_total{reason=\"self_origin\"} 0",
            "surplus_gossip_dropped_total{reason=\"duplicate\"} 4",
            "surplus_gossip_dropped_total{reason=\"unsubscribed_topic\"} 0",
            "surplus_gossip_dropped_total{reason=\"graylisted\"} 0",
            "# TYPE surplus_gossip_send_dropped_total counter",
            "surplus_gossip_send_dropped_total{reason=\"queue_full\"} 0",
            "surplus_gossip_send_dropped_total{reason=\"timeout\"} 0",
            "# TYPE surplus_gossip_disconnects_total counter",
            "surplus_gossip_disconnects_total{reason=\"ping_failed\"} 0",
            "surplus_gossip_disconnects_total{reason=\"no_subscription\"} 2",
            "surplus_gossip_disconnects_total{reason=\"connection_limit\"} 0",
            "# TYPE surplus_order_to_lease_seconds histogram",
            "surplus_order_to_lease_seconds_bucket{le=\"0.1\"} 1",
            "surplus_order_to_lease_seconds_bucket{le=\"1\"} 2",
            "surplus_order_to_lease_seconds_bucket{le=\"+Inf\"} 3",
            "surplus_order_to_lease_seconds_sum 2.2",
            "surplus_order_to_lease_seconds_count 3",
        ] {
            assert!(text.lines().any(|l| l.starts_with(line)), "missing {line:?} in\n{text}");
        }
        // Every sample line is `name[{labels}] value`, and every name has HELP and TYPE.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = l.rsplit_once(' ').unwrap();
            assert!(name.starts_with("surplus_"), "{l}");
            assert!(value.parse::<f64>().is_ok(), "{l}");
        }
        assert!(text.ends_with('\n'));
    }
}
