//! This node as a vantage point (`docs/operations.md`, Supervision): as a validator it probes
//! the leases of the other providers at the targets they recorded on the ledger, a few times
//! per interval with jitter and never faster than `[supervision] max_probes_per_second`, and
//! reports the leases most of its probes found down in each interval (entry kind 37). The
//! chain's quorum decides (`docs/contracts.md` §10); this module only looks and reports.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use surplus_contracts::supervision::{ProbeTarget, Report, MAX_REPORT_LEASES};
use surplus_contracts::{LeaseStatus, State};
use surplus_ledger::{Hash, PublicKey};

/// What this node's probes saw, per interval and lease: (probes that succeeded, that failed).
#[derive(Debug, Default)]
pub struct Observations {
    seen: BTreeMap<(u64, Hash), (u32, u32)>,
}

impl Observations {
    /// Records one probe of `lease` in `interval`.
    pub fn record(&mut self, interval: u64, lease: Hash, up: bool) {
        let e = self.seen.entry((interval, lease)).or_default();
        if up {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }

    /// The leases most of whose probes in `interval` failed, in id order.
    pub fn down(&self, interval: u64) -> Vec<Hash> {
        self.seen
            .range((interval, [0u8; 32])..=(interval, [0xff; 32]))
            .filter(|(_, (up, down))| down > up)
            .map(|((_, l), _)| *l)
            .collect()
    }

    /// What this node saw of `lease` in `interval`, if it probed it: (up, down) probes.
    pub fn of(&self, interval: u64, lease: &Hash) -> Option<(u32, u32)> {
        self.seen.get(&(interval, *lease)).copied()
    }

    /// Forgets the intervals before `interval`.
    pub fn forget_before(&mut self, interval: u64) {
        self.seen = self.seen.split_off(&(interval, [0u8; 32]));
    }
}

/// The leases this node probes in `state`: live, active, with a target, of a provider that is
/// not `me` (a provider does not vouch for itself), in id order.
pub fn targets(state: &State, me: &PublicKey) -> Vec<(Hash, ProbeTarget)> {
    state
        .leases()
        .filter(|l| l.status == LeaseStatus::Active)
        .filter(|l| state.current_key(&l.fill.provider) != *me)
        .filter_map(|l| Some((l.id, l.probe.clone()?)))
        .collect()
}

/// The reports of `down` for `interval`, at most [`MAX_REPORT_LEASES`] leases each.
pub fn reports(interval: u64, down: &[Hash]) -> Vec<Report> {
    down.chunks(MAX_REPORT_LEASES).map(|c| Report { interval, down: c.to_vec() }).collect()
}

/// Probes `target` once: a TCP connection that opens, or an HTTP GET answered with the
/// expected status, within `timeout`.
pub async fn probe(target: &ProbeTarget, timeout: Duration) -> bool {
    match target {
        ProbeTarget::Tcp { address } => matches!(
            tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address.as_str())).await,
            Ok(Ok(_))
        ),
        ProbeTarget::Http { url, status } => {
            let (url, expected) = (url.clone(), *status);
            let call = tokio::task::spawn_blocking(move || {
                let agent = ureq::AgentBuilder::new().timeout(timeout).redirects(0).build();
                match agent.get(&url).call() {
                    Ok(r) => r.status() == expected,
                    Err(ureq::Error::Status(code, _)) => code == expected,
                    Err(_) => false,
                }
            });
            matches!(
                tokio::time::timeout(timeout + Duration::from_secs(1), call).await,
                Ok(Ok(true))
            )
        }
    }
}

/// A pacer: starts at least `1 / per_second` apart, so that no window of one second holds
/// more than `per_second` of them (a token bucket of one token; a larger bucket would let a
/// burst and the refill add up within one second).
#[derive(Debug)]
pub struct Rate {
    per_second: u32,
    /// (tokens, ms of the last refill).
    bucket: Mutex<(f64, u64)>,
}

impl Rate {
    /// A pacer of `per_second`, ready at `now_ms`.
    pub fn new(per_second: u32, now_ms: u64) -> Self {
        Self { per_second: per_second.max(1), bucket: Mutex::new((1.0, now_ms)) }
    }

    /// Takes a token at `now_ms`, or says how long to wait for one.
    pub fn take(&self, now_ms: u64) -> Result<(), Duration> {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let rate = f64::from(self.per_second);
        let elapsed = now_ms.saturating_sub(b.1) as f64 / 1000.0;
        b.0 = (b.0 + elapsed * rate).min(1.0);
        b.1 = now_ms.max(b.1);
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_millis((((1.0 - b.0) / rate) * 1000.0).ceil().max(1.0) as u64))
        }
    }
}

/// Counters of this vantage point since the node started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Leases probed in the last round.
    pub targets: AtomicU64,
    /// Probes that found the target up.
    pub up: AtomicU64,
    /// Probes that found it down.
    pub down: AtomicU64,
    /// Probes that waited for the rate bound.
    pub rate_waits: AtomicU64,
    /// Probes not made because the interval ended first (the rate bound is too low for the
    /// leases to probe).
    pub skipped: AtomicU64,
    /// Reports signed and sent.
    pub reports: AtomicU64,
    /// Reports the node's own admission refused (nothing left to count, too late).
    pub reports_refused: AtomicU64,
    /// The most probes started within one second (a window of 1,000 ms from a probe's start).
    pub max_per_second: AtomicU64,
}

impl Stats {
    /// The counters as the web layer shows them.
    pub fn view(&self) -> surplus_web::ProbeCounts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        surplus_web::ProbeCounts {
            targets: g(&self.targets),
            up: g(&self.up),
            down: g(&self.down),
            rate_waits: g(&self.rate_waits),
            skipped: g(&self.skipped),
            reports: g(&self.reports),
            reports_refused: g(&self.reports_refused),
            max_per_second: g(&self.max_per_second),
        }
    }
}

/// Start times of the last second's probes, to measure the rate actually reached.
#[derive(Debug, Default)]
pub struct Window {
    starts: std::collections::VecDeque<u64>,
}

impl Window {
    /// Records a start at `now_ms`; returns how many started in `(now_ms − 1000, now_ms]`.
    pub fn start(&mut self, now_ms: u64) -> usize {
        while self.starts.front().is_some_and(|t| *t + 1000 <= now_ms) {
            self.starts.pop_front();
        }
        self.starts.push_back(now_ms);
        self.starts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_probes_down_makes_an_interval_down() {
        let mut o = Observations::default();
        o.record(5, [1; 32], false);
        o.record(5, [1; 32], false);
        o.record(5, [1; 32], true);
        o.record(5, [2; 32], false);
        o.record(5, [2; 32], true);
        o.record(6, [3; 32], false);
        assert_eq!(o.down(5), vec![[1; 32]]);
        assert_eq!(o.down(6), vec![[3; 32]]);
        o.forget_before(6);
        assert!(o.down(5).is_empty());
        let many: Vec<Hash> = (0..250u32)
            .map(|i| {
                let mut h = [0u8; 32];
                h[..4].copy_from_slice(&i.to_be_bytes());
                h
            })
            .collect();
        let r = reports(9, &many);
        assert_eq!(r.iter().map(|r| r.down.len()).collect::<Vec<_>>(), vec![120, 120, 10]);
    }

    #[test]
    fn the_rate_bound_holds_and_refills() {
        let r = Rate::new(10, 1_000);
        r.take(1_000).unwrap();
        let wait = r.take(1_000).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(r.take(1_099).is_err());
        r.take(1_100).unwrap();
        assert!(r.take(1_100).is_err());
        // Taking as soon as allowed never puts more than 10 starts in a second.
        let (r, mut w, mut t, mut most) = (Rate::new(10, 0), Window::default(), 0u64, 0);
        for _ in 0..100 {
            match r.take(t) {
                Ok(()) => most = most.max(w.start(t)),
                Err(d) => t += d.as_millis() as u64,
            }
        }
        assert_eq!(most, 10);
        let mut w = Window::default();
        assert_eq!(w.start(0), 1);
        assert_eq!(w.start(999), 2);
        assert_eq!(w.start(1_000), 2);
    }

    #[tokio::test]
    async fn a_tcp_probe_sees_a_listener_and_its_absence() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = ProbeTarget::Tcp { address: addr };
        assert!(probe(&t, Duration::from_secs(2)).await);
        drop(l);
        assert!(!probe(&t, Duration::from_secs(2)).await);
    }
}
