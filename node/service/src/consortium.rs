//! The consortium's status as this node sees it (`GET /api/v1/status/consortium`, `/status`):
//! which validators take part, how blocks come, each provider's availability as the other
//! datacenters measured it (`docs/contracts.md` §10), and the incidents of the last 30 days.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use surplus_contracts::State;
use surplus_ledger::{Header, PublicKey};
use surplus_net::consensus::history::{Downtime, LeaseHistory};
use surplus_web::{
    Availability, ConsortiumStatus, Incident, IncidentKind, ProviderAvailability, ValidatorUp,
};

/// A day, ms.
pub const DAY_MS: u64 = 86_400_000;
/// The longest period the page looks back, ms.
pub const MONTH_MS: u64 = 30 * DAY_MS;
/// Blocks a validator must have signed or proposed one of to count as up.
pub const UP_WINDOW: usize = 20;

/// The status at `now_ms` from the committed `state` and `head`, the `recent` blocks (newest
/// first) and the lease history.
pub fn status(
    state: &State,
    head: &Header,
    recent: &[surplus_web::RecentBlock],
    history: Option<&LeaseHistory>,
    now_ms: u64,
) -> ConsortiumStatus {
    // Validators: seen signing or proposing one of the last blocks.
    let mut seen: BTreeMap<PublicKey, u64> = BTreeMap::new();
    for b in recent.iter().take(UP_WINDOW) {
        for k in b.signers.iter().chain(std::iter::once(&b.header.proposer)) {
            let h = seen.entry(*k).or_insert(b.header.height);
            *h = (*h).max(b.header.height);
        }
    }
    let validators: Vec<ValidatorUp> = state
        .validators()
        .iter()
        .map(|v| ValidatorUp {
            key: v.key,
            up: seen.contains_key(&v.key),
            last_seen_height: seen.get(&v.key).copied(),
        })
        .collect();
    let block_interval_ms = match (recent.first(), recent.last()) {
        (Some(a), Some(b)) if recent.len() >= 2 => Some(
            a.header.timestamp_ms.saturating_sub(b.header.timestamp_ms) / (recent.len() as u64 - 1),
        ),
        _ => None,
    };

    // Providers: those with live leases, and those whose leases ended or went down this month.
    let month_from = now_ms.saturating_sub(MONTH_MS);
    let day_from = now_ms.saturating_sub(DAY_MS);
    let down: Vec<Downtime> = history.map(|h| h.downtime(month_from)).unwrap_or_default();
    let live = live_by_provider(state, now_ms, [day_from, month_from]);
    let mut providers: BTreeSet<PublicKey> = live.keys().copied().collect();
    if let Some(h) = history {
        providers.extend(h.providers_since(month_from).iter().map(|k| state.current_key(k)));
    }
    providers.extend(down.iter().map(|d| state.current_key(&d.provider)));
    let availability = |p: &PublicKey, from: u64, window: usize| {
        let keys = state.keys_of(p);
        let live: u64 = live.get(p).map_or(0, |l| l.leased_ms[window]);
        let ended: u64 =
            history.map_or(0, |h| keys.iter().map(|k| h.ended_leased_ms(k, from, now_ms)).sum());
        let down_ms: u64 = down
            .iter()
            .filter(|d| keys.contains(&d.provider))
            .map(|d| d.to_ms.min(now_ms).saturating_sub(d.from_ms.max(from)))
            .sum();
        Availability::of(live + ended, down_ms)
    };
    let providers: Vec<ProviderAvailability> = providers
        .iter()
        .map(|p| ProviderAvailability {
            provider: *p,
            live_leases: live.get(p).map_or(0, |l| l.leases),
            day: availability(p, day_from, 0),
            month: availability(p, month_from, 1),
        })
        .collect();

    // Incidents: each provider's down intervals merged where they touch (or are one interval
    // apart), and the maintenance windows.
    let interval = state.params.supervision.map_or(60_000, |s| s.interval_ms);
    let mut incidents: Vec<Incident> = Vec::new();
    let mut by_provider: BTreeMap<PublicKey, Vec<&Downtime>> = BTreeMap::new();
    for d in &down {
        by_provider.entry(state.current_key(&d.provider)).or_default().push(d);
    }
    for (provider, mut ds) in by_provider {
        ds.sort_by_key(|d| d.from_ms);
        let mut open: Option<(Incident, BTreeSet<[u8; 32]>, BTreeSet<String>)> = None;
        for d in ds {
            match &mut open {
                Some((i, leases, markets)) if d.from_ms <= i.end_ms.unwrap_or(0) + interval => {
                    i.end_ms = Some(i.end_ms.unwrap_or(0).max(d.to_ms));
                    i.down_ms += d.to_ms.saturating_sub(d.from_ms);
                    i.credited += d.credited;
                    leases.insert(d.lease);
                    markets.insert(d.market.clone());
                }
                _ => {
                    if let Some(done) = open.take() {
                        incidents.push(finish(done));
                    }
                    let i = Incident {
                        kind: IncidentKind::Outage,
                        provider,
                        markets: Vec::new(),
                        start_ms: d.from_ms,
                        end_ms: Some(d.to_ms),
                        leases: 0,
                        down_ms: d.to_ms.saturating_sub(d.from_ms),
                        credited: d.credited,
                        summary: String::new(),
                    };
                    open = Some((i, [d.lease].into(), [d.market.clone()].into()));
                }
            }
        }
        if let Some(done) = open.take() {
            incidents.push(finish(done));
        }
    }
    // An outage whose last down interval is recent may still go on: its end is not known.
    let window = state.params.supervision.map_or(0, |s| u64::from(s.window) * s.interval_ms);
    for i in incidents.iter_mut() {
        if i.end_ms.is_some_and(|e| e + interval + window >= now_ms) {
            i.end_ms = None;
        }
        i.summary = outage_summary(i);
    }
    let windows = history.map(|h| h.windows(month_from)).unwrap_or_default();
    let open_windows: BTreeSet<(PublicKey, String)> =
        state.maintenance().map(|w| (w.provider, w.pool.clone())).collect();
    for w in windows {
        let open = open_windows.contains(&(w.provider, w.pool.clone()));
        let end = if w.until_ms != 0 {
            Some(w.until_ms)
        } else if open {
            None
        } else {
            Some(w.start_ms)
        };
        let ongoing = end.is_none_or(|e| e > now_ms) && w.start_ms <= now_ms;
        let when = if w.start_ms > now_ms {
            "announced for later"
        } else if ongoing {
            "going on"
        } else {
            "over"
        };
        incidents.push(Incident {
            kind: IncidentKind::Maintenance,
            provider: w.provider,
            markets: vec![w.market.to_string()],
            start_ms: w.start_ms,
            end_ms: end,
            leases: 0,
            down_ms: 0,
            credited: 0,
            summary: format!(
                "Maintenance of pool {} in {} ({when}): {}. Its leases were moved or given notice.",
                w.pool, w.market, w.reason
            ),
        });
    }
    incidents.sort_by_key(|i| std::cmp::Reverse(i.start_ms));

    let age = now_ms.saturating_sub(head.timestamp_ms);
    let down_validators = validators.iter().filter(|v| !v.up).count();
    let outages =
        incidents.iter().filter(|i| i.kind == IncidentKind::Outage && i.end_ms.is_none()).count();
    let summary = if head.height == 0 {
        "The chain has no block yet.".to_owned()
    } else if age > 5 * 60_000 {
        format!("No block for {}: the consortium may be stalled.", human(age))
    } else if down_validators > 0 || outages > 0 {
        let mut parts = Vec::new();
        if down_validators > 0 {
            parts.push(format!("{down_validators} validator(s) not seen in the last blocks"));
        }
        if outages > 0 {
            parts.push(format!("{outages} outage(s) going on"));
        }
        format!("Blocks are being made; {}.", parts.join(" and "))
    } else {
        "All systems operational: blocks are being made and every validator takes part.".to_owned()
    };
    ConsortiumStatus {
        chain_id: state.chain_id.clone(),
        now_ms,
        height: head.height,
        last_block_ms: head.timestamp_ms,
        last_block_age_ms: age,
        block_interval_ms,
        summary,
        validators,
        supervision: state.params.supervision,
        providers,
        incidents,
    }
}

/// What a provider's live leases add up to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Live {
    /// How many.
    leases: u64,
    /// Their leased time from each of the `from` times to `now_ms`, ms.
    leased_ms: [u64; 2],
}

/// The live leases of each provider, under the key that now speaks for it (its duties pass to
/// it through rotations): one walk over the live leases, with no look-up per lease.
fn live_by_provider(state: &State, now_ms: u64, from: [u64; 2]) -> BTreeMap<PublicKey, Live> {
    let mut current: HashMap<PublicKey, PublicKey> = HashMap::new();
    let mut live: BTreeMap<PublicKey, Live> = BTreeMap::new();
    for l in state.leases() {
        let provider = l.fill.provider;
        let key = *current.entry(provider).or_insert_with(|| state.current_key(&provider));
        let entry = live.entry(key).or_default();
        entry.leases += 1;
        let end = l.fill.end_ms.min(now_ms);
        for (ms, from) in entry.leased_ms.iter_mut().zip(from) {
            *ms += end.saturating_sub(l.fill.start_ms.max(from));
        }
    }
    live
}

fn finish((mut i, leases, markets): (Incident, BTreeSet<[u8; 32]>, BTreeSet<String>)) -> Incident {
    i.leases = leases.len() as u64;
    i.markets = markets.into_iter().collect();
    i
}

/// What an outage was, for people.
fn outage_summary(i: &Incident) -> String {
    let when = match i.end_ms {
        Some(end) => format!("from {} to {}", clock(i.start_ms), clock(end)),
        None => format!("since {} (it may still go on)", clock(i.start_ms)),
    };
    format!(
        "The other datacenters found {} lease(s) in {} unreachable {when}: {} of lease time down, \
         not charged, and {} units credited to the buyers.",
        i.leases,
        i.markets.join(", "),
        human(i.down_ms),
        i.credited
    )
}

/// A duration for people.
pub fn human(ms: u64) -> String {
    match ms {
        ms if ms >= 2 * DAY_MS => format!("{} days", ms / DAY_MS),
        ms if ms >= 2 * 3_600_000 => format!("{} h", ms / 3_600_000),
        ms if ms >= 120_000 => format!("{} min", ms / 60_000),
        ms => format!("{} s", ms / 1000),
    }
}

/// A time of day, UTC, `14:05:09`.
fn clock(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, (s % 3600) / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use surplus_contracts::testutil::{bid, buyer, genesis, offer, provider, tx, CHAIN, T0};
    use surplus_contracts::{BlockMaker, Tx};
    use surplus_market::HOUR_MS;

    /// The walk gives what looking up each provider's leases through its keys gives, rotated
    /// keys included.
    #[test]
    fn one_walk_finds_each_providers_live_leases_under_its_current_key() {
        let (_, mut maker) = BlockMaker::genesis(CHAIN, &genesis(0, 0), T0).unwrap();
        let validator = surplus_ledger::testutil::key("validator", 0).public();
        let new_key = surplus_ledger::testutil::key("rotated", 1);
        let mut entries =
            vec![offer(&provider(0), 3, 10, 24, 1, T0), offer(&provider(1), 2, 10, 24, 1, T0)];
        entries.extend((0..5).map(|i| bid(&buyer(i % 3), 1, 2 + i as u32, 100, 10 + i, T0)));
        maker.next(&entries, T0 + 1, validator).unwrap();
        let rotate = Tx::RotateKey { new_key: new_key.public(), seq: 0 };
        maker.next(&[tx(&provider(1), rotate)], T0 + 2, validator).unwrap();
        let state = &maker.state;
        assert_eq!(state.leases().count(), 5, "both offers filled");
        let now = T0 + 3 * HOUR_MS;
        let from = [now - DAY_MS, T0 + HOUR_MS];
        let live = live_by_provider(state, now, from);
        assert_eq!(live.len(), 2);
        assert!(live.contains_key(&new_key.public()), "provider 1's leases pass to its new key");
        assert!(!live.contains_key(&provider(1).public()), "the rotated key speaks for nothing");
        for (p, l) in &live {
            assert_eq!(l.leases, state.provided_by(p).count() as u64);
            for (ms, from) in l.leased_ms.iter().zip(from) {
                let slow: u64 = state
                    .keys_of(p)
                    .iter()
                    .flat_map(|k| state.provider_leases(k).collect::<Vec<_>>())
                    .map(|l| l.fill.end_ms.min(now).saturating_sub(l.fill.start_ms.max(from)))
                    .sum();
                assert_eq!(*ms, slow);
                assert!(*ms > 0);
            }
        }
        assert_eq!(live.values().map(|l| l.leases).sum::<u64>(), 5);
    }
}
