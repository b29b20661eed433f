//! What a provider's node must do, as pure functions of the committed state: which offers to
//! publish or cancel so that each pool is offered exactly once ([`plan`]), which leases to
//! provision, grant or end ([`duties`]), and the sequence number of its next transaction
//! ([`next_seq`]). The node executes the answers; the rules live here, beside the state machine
//! that enforces them.
//!
//! Every slot of a pool is covered by exactly one of: a resting offer of this provider, a
//! pending offer, a running lease whose offer has left the book. What is not covered is offered;
//! what is covered twice over (the operator shrank a pool) is cancelled. An offer near its
//! expiry is cancelled and its slots stay counted until the cancel is in the book, so the
//! replacement offered by a later plan never overlaps it (two live offers for the same slots
//! could both be filled: overselling).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use surplus_ledger::{Entry, Hash, PublicKey, SecretKey};
use surplus_market::{Market, Offer, Order, SignedCancel, SignedOrder, HOUR_MS};

use crate::{LeaseStatus, State, Tx};

/// Most pools in one inventory (nonces give each pool its own low bits).
pub const MAX_POOLS: usize = 1024;

/// One pool of identical capacity in one market.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// The operator's name for it (a host, a rack, a cluster): what maintenance windows name.
    /// Default: its market, `class@region`. Several pools may share a market; their offers are
    /// made together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The resource class (from the catalogue).
    pub class: String,
    /// The region (from the catalogue).
    pub region: String,
    /// Slots the operator can lease out at once.
    pub slots: u32,
    /// Lowest price accepted, units per slot-hour.
    pub reserve: u64,
    /// Shortest lease accepted, hours.
    #[serde(default = "one")]
    pub min_hours: u32,
    /// How far ahead from now each offer's availability window reaches, hours.
    #[serde(default = "week")]
    pub horizon_hours: u32,
    /// Offers expire this long after they are made and are re-published before that, minutes.
    #[serde(default = "hour")]
    pub offer_ttl_minutes: u32,
}

fn one() -> u32 {
    1
}
fn week() -> u32 {
    168
}
fn hour() -> u32 {
    60
}

impl Pool {
    /// The pool's market.
    pub fn market(&self) -> Market {
        Market::new(&self.class, &self.region)
    }
    /// Offer lifetime, ms.
    pub fn ttl_ms(&self) -> u64 {
        u64::from(self.offer_ttl_minutes) * 60_000
    }
    /// Its name: the inventory's, else its market.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.market().to_string())
    }
    /// Whether `other` offers on the same terms (what pools sharing a market must do).
    pub fn same_terms(&self, other: &Pool) -> bool {
        (self.reserve, self.min_hours, self.horizon_hours, self.offer_ttl_minutes)
            == (other.reserve, other.min_hours, other.horizon_hours, other.offer_ttl_minutes)
    }
}

/// The names of `provider`'s pools under maintenance: those with an open window in the state,
/// from the block that recorded it (not only from its start): their capacity is not offered.
pub fn drained(state: &State, provider: &PublicKey) -> BTreeSet<String> {
    state.windows_of(provider).map(|w| w.pool.clone()).collect()
}

/// The pool a lease runs on: where the node `placed` it, else (a lease the node never placed,
/// such as one started before pools had names) the first pool of its market.
pub fn pool_of(pools: &[Pool], market: &Market, placed: Option<String>) -> Option<String> {
    placed.or_else(|| pools.iter().find(|p| p.market() == *market).map(Pool::name))
}

/// Slots of `provider`'s active leases on each pool.
fn used(
    pools: &[Pool],
    state: &State,
    provider: &PublicKey,
    placed: &dyn Fn(&Hash) -> Option<String>,
) -> std::collections::BTreeMap<String, u64> {
    let mut used = std::collections::BTreeMap::new();
    for l in state.provided_by(provider).filter(|l| l.status == LeaseStatus::Active) {
        if let Some(p) = pool_of(pools, &l.fill.market, placed(&l.id)) {
            *used.entry(p).or_insert(0) += u64::from(l.fill.slots);
        }
    }
    used
}

/// Where a starting lease runs: the first pool of its market, in inventory order, that is not
/// under maintenance and has room for its slots besides the leases placed there; else the
/// first of its market not under maintenance; else the first of its market. `None` when no
/// pool has its market (a manual offer's lease).
pub fn place(
    pools: &[Pool],
    state: &State,
    provider: &PublicKey,
    lease: &crate::Lease,
    placed: &dyn Fn(&Hash) -> Option<String>,
) -> Option<String> {
    let drained = drained(state, provider);
    // The lease itself is not placed yet: it counts nowhere.
    let other = |id: &Hash| if *id == lease.id { Some(String::new()) } else { placed(id) };
    let used = used(pools, state, provider, &other);
    let mine: Vec<&Pool> = pools.iter().filter(|p| p.market() == lease.fill.market).collect();
    let open = || mine.iter().filter(|p| !drained.contains(&p.name()));
    let room = |p: &&&Pool| {
        u64::from(p.slots).saturating_sub(used.get(&p.name()).copied().unwrap_or(0))
            >= u64::from(lease.fill.slots)
    };
    open().find(room).or_else(|| open().next()).or_else(|| mine.first()).map(|p| p.name())
}

/// How much later than now a notice ends at the earliest: it must reach a block before its end
/// (`docs/contracts.md` §9).
pub const NOTICE_MARGIN_MS: u64 = 15_000;

/// What the provider's node must do about a lease on a pool under maintenance.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DrainDuty {
    /// Move it to another pool of its market that has room (the hook's `move` step, then a
    /// `move` entry).
    Move {
        /// The lease.
        lease: Hash,
        /// The pool it runs on.
        from: String,
        /// The pool it moves to.
        to: String,
    },
    /// Give it notice that it ends at `end_ms` (the window's start, or soon after now when
    /// that has passed).
    Notice {
        /// The lease.
        lease: Hash,
        /// When it ends.
        end_ms: u64,
    },
}

/// The provider's duties toward the leases on its pools under maintenance (`docs/operations.md`,
/// Maintenance): each active lease on a pool with an open window, that runs past the window's
/// start and has neither a notice nor a pending notice or move, is moved to the first other pool
/// of its market that is not under maintenance and has room for it (counting the moves planned
/// before it, in lease id order), or else given notice for the window's start.
pub fn drain_duties(
    pools: &[Pool],
    state: &State,
    provider: &PublicKey,
    placed: &dyn Fn(&Hash) -> Option<String>,
    pending: &[Tx],
    now_ms: u64,
) -> Vec<DrainDuty> {
    let windows: std::collections::BTreeMap<String, u64> =
        state.windows_of(provider).map(|w| (w.pool.clone(), w.start_ms)).collect();
    if windows.is_empty() {
        return Vec::new();
    }
    let mut used = used(pools, state, provider, placed);
    let busy = |id: &Hash| {
        pending
            .iter()
            .any(|t| matches!(t, Tx::Notice { lease, .. } | Tx::Move { lease, .. } if lease == id))
    };
    let mut out = Vec::new();
    for l in state.provided_by(provider) {
        if l.status != LeaseStatus::Active || l.notice.is_some() || busy(&l.id) {
            continue;
        }
        let Some(from) = pool_of(pools, &l.fill.market, placed(&l.id)) else { continue };
        let Some(start) = windows.get(&from) else { continue };
        if l.fill.end_ms <= *start {
            continue; // It ends before the work starts.
        }
        let slots = u64::from(l.fill.slots);
        let to = pools.iter().find(|p| {
            let name = p.name();
            p.market() == l.fill.market
                && !windows.contains_key(&name)
                && u64::from(p.slots).saturating_sub(used.get(&name).copied().unwrap_or(0)) >= slots
        });
        match to {
            Some(p) => {
                let to = p.name();
                *used.entry(to.clone()).or_insert(0) += slots;
                if let Some(u) = used.get_mut(&from) {
                    *u = u.saturating_sub(slots);
                }
                out.push(DrainDuty::Move { lease: l.id, from, to });
            }
            None => {
                let end_ms = (*start).max(now_ms.saturating_add(NOTICE_MARGIN_MS));
                if end_ms < l.fill.end_ms {
                    out.push(DrainDuty::Notice { lease: l.id, end_ms });
                }
            }
        }
    }
    out
}

/// What a provider's node should submit to keep its offers in step with its pools.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// New offers, to sign and submit.
    pub offers: Vec<Offer>,
    /// This provider's resting offers to cancel (by order id).
    pub cancels: Vec<Hash>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.offers.is_empty() && self.cancels.is_empty()
    }

    /// The bond its offers need (`docs/contracts.md` §10): each offer is checked on its own,
    /// so the largest of them, with the slots of the provider's live leases.
    pub fn bond_needed(&self, state: &crate::State, provider: &surplus_ledger::PublicKey) -> u64 {
        let leased: u128 = state
            .provided_by(provider)
            .map(|l| {
                u128::from(state.terms(&l.fill.market).bond_per_slot) * u128::from(l.fill.slots)
            })
            .sum();
        let largest = self
            .offers
            .iter()
            .map(|o| u128::from(state.terms(&o.market).bond_per_slot) * u128::from(o.slots))
            .filter(|b| *b > 0)
            .max();
        largest.map_or(0, |b| (b + leased).min(u128::from(u64::MAX)) as u64)
    }

    /// The plan as signed entries: the cancels, then the offers.
    pub fn entries(&self, chain_id: &str, key: &SecretKey) -> Vec<Entry> {
        let cancels = self.cancels.iter().map(|id| SignedCancel::sign(chain_id, *id, key).0);
        let offers =
            self.offers.iter().map(|o| SignedOrder::sign(chain_id, Order::Offer(o.clone()), key).0);
        cancels.chain(offers).collect()
    }
}

/// Plans the offers and cancels that make this provider's offers cover each pool exactly.
///
/// `pending` are this provider's offers already submitted but not yet in a block (the mempool):
/// they count as covering their slots. Slots are covered by this provider's resting offers in
/// the pool's market (all of an offer's slots, leased or free), by its running leases whose offer
/// has left the book, and by pending offers. Offers with less than a quarter of the pool's TTL
/// left are cancelled; they keep covering until they are gone, and a later plan re-offers their
/// free slots. New offers' nonces are unused by this provider (neither remembered by the book
/// nor pending), so re-planning never replays one.
pub fn plan(
    pools: &[Pool],
    state: &State,
    provider: &PublicKey,
    pending: &[Offer],
    now_ms: u64,
) -> Plan {
    plan_within(pools, None, state, provider, pending, now_ms)
}

/// [`plan`] within `caps`, when the datacenter reports its free capacity: at most `caps[class]`
/// slots of each class are covered (offered or leased) across the provider's markets of that
/// class, shared out in inventory order; a class the caps do not name has none. A cap below
/// what is leased withdraws every free offer of the class and offers nothing; no lease is
/// touched.
pub fn plan_within(
    pools: &[Pool],
    caps: Option<&std::collections::BTreeMap<String, u64>>,
    state: &State,
    provider: &PublicKey,
    pending: &[Offer],
    now_ms: u64,
) -> Plan {
    let mut out = Plan::default();
    let mut used_nonces: BTreeSet<u64> = pending.iter().map(|o| o.nonce).collect();
    // One offer per market, for the slots of its pools that are not under maintenance, on the
    // terms of its first pool (the inventory requires pools of a market to share them).
    let drained = drained(state, provider);
    let mut markets: Vec<(usize, &Pool, u64)> = Vec::new();
    for (i, p) in pools.iter().enumerate() {
        let open = if drained.contains(&p.name()) { 0 } else { u64::from(p.slots) };
        match markets.iter_mut().find(|(_, q, _)| q.market() == p.market()) {
            Some(m) => m.2 += open,
            None => markets.push((i, p, open)),
        }
    }
    let mut left: Option<std::collections::BTreeMap<String, u64>> = caps.cloned();
    for (i, pool, slots) in markets {
        let slots = match left.as_mut() {
            Some(left) => {
                let cap = left.entry(pool.class.clone()).or_insert(0);
                let within = slots.min(*cap);
                *cap -= within;
                within
            }
            None => slots,
        };
        let market = pool.market();
        let (_, offers) = state.book.market(&market);
        let mine: Vec<_> = offers
            .iter()
            .filter(|r| r.order.author == *provider)
            .filter_map(|r| match &r.order.order {
                // Gone at the next block anyway; its leases are counted below.
                Order::Offer(o) if o.expiry_ms > now_ms && o.until_ms > now_ms => Some((r, o)),
                _ => None,
            })
            .collect();
        let resting: BTreeSet<Hash> = mine.iter().map(|(r, _)| r.order.id).collect();
        let by_offers: u64 = mine.iter().map(|(r, _)| u64::from(r.remaining)).sum();
        let by_leases: u64 = state
            .provided_by(provider)
            .filter(|l| {
                l.fill.market == market
                    && l.status == LeaseStatus::Active
                    && l.fill.end_ms > now_ms
                    && !resting.contains(&l.fill.offer)
            })
            .map(|l| u64::from(l.fill.slots))
            .sum();
        let by_pending: u64 = pending
            .iter()
            .filter(|o| o.market == market && o.expiry_ms > now_ms && o.until_ms > now_ms)
            .map(|o| u64::from(o.slots))
            .sum();
        let covered = by_offers + by_leases + by_pending;

        // Near expiry: cancel now, replace once gone.
        let margin = pool.ttl_ms() / 4;
        let mut cancelled: BTreeSet<Hash> = BTreeSet::new();
        for (r, o) in &mine {
            if o.expiry_ms.saturating_sub(now_ms) < margin {
                cancelled.insert(r.order.id);
            }
        }
        // Over-covered (the pool shrank): cancel the offers with the most free slots first,
        // until what stays covers at most the pool.
        if covered > slots {
            let mut excess = covered - slots;
            // Cancelling an offer uncovers its free slots (its leases go on covering theirs).
            excess = excess.saturating_sub(
                mine.iter()
                    .filter(|(r, _)| cancelled.contains(&r.order.id))
                    .map(|(r, _)| u64::from(r.free_at(now_ms)))
                    .sum(),
            );
            let mut by_free: Vec<_> =
                mine.iter().filter(|(r, _)| !cancelled.contains(&r.order.id)).collect();
            by_free.sort_by_key(|(r, _)| (std::cmp::Reverse(r.free_at(now_ms)), r.order.id));
            for (r, _) in by_free {
                if excess == 0 {
                    break;
                }
                let free = u64::from(r.free_at(now_ms));
                if free > 0 {
                    cancelled.insert(r.order.id);
                    excess = excess.saturating_sub(free);
                }
            }
        }
        out.cancels.extend(cancelled.iter().copied());

        let uncovered = slots.saturating_sub(covered);
        if uncovered == 0 {
            continue;
        }
        let mut nonce = now_ms.saturating_mul(MAX_POOLS as u64).saturating_add(i as u64);
        while state.book.nonce_used(provider, nonce) || used_nonces.contains(&nonce) {
            nonce = nonce.wrapping_add(MAX_POOLS as u64);
        }
        used_nonces.insert(nonce);
        out.offers.push(Offer {
            market,
            slots: u32::try_from(uncovered.min(u64::from(surplus_market::MAX_SLOTS)))
                .unwrap_or(surplus_market::MAX_SLOTS),
            from_ms: now_ms,
            until_ms: now_ms + u64::from(pool.horizon_hours) * HOUR_MS,
            reserve: pool.reserve,
            min_hours: pool.min_hours,
            expiry_ms: now_ms + pool.ttl_ms(),
            nonce,
        });
    }
    out.cancels.sort();
    out
}

/// What the provider's node knows of a lease's provisioning (its records, not the ledger).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provisioned {
    /// The start hook ran (successfully or not) and was recorded.
    pub started: bool,
    /// The end hook ran and was recorded.
    pub ended: bool,
    /// The end of validity (`valid_until`, ms) of the credential the node holds for the lease
    /// (the last one it minted), if it holds one.
    pub token_until_ms: Option<u64>,
    /// The probe target the start hook's answer named, if any.
    pub probe: Option<crate::supervision::ProbeTarget>,
}

/// Whether an active lease needs a (new) credential: it has no grant on the ledger; or the node
/// holds no token for it (so it could not hand one to the buyer); or the token it holds ends
/// before the lease does (the lease was renewed).
fn grant_stale(lease: &crate::Lease, token_until_ms: Option<u64>) -> bool {
    match (&lease.grant, token_until_ms) {
        (None, _) | (Some(_), None) => true,
        (Some(_), Some(until)) => until < lease.fill.end_ms,
    }
}

/// One thing the provider's node must do for a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Duty {
    /// Run the start hook: the lease is active and was never started here.
    Start(Hash),
    /// Mint the credential and record its grant: the lease is active and has none, or the
    /// node holds no token for it, or its token ends before the (renewed) lease does.
    Grant(Hash),
    /// Run the end hook: the lease has ended and was started here but not ended.
    End(Hash),
    /// Record the lease's probe target: its start hook named one that the lease does not
    /// carry on the ledger.
    Probe(Hash),
}

/// What [`duties`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Duties {
    /// What to do, by lease id.
    pub duties: Vec<Duty>,
    /// Slots of the provider's active leases (its leased capacity).
    pub leased_slots: u64,
}

/// The provider's duties toward its leases, from the state rather than from events, so that a
/// crash or a catch-up never skips one: an active lease without a start record is started; one
/// without a grant on the ledger is granted; a lease among `open` (those the node started and has
/// not ended) that is no longer live (it ended, and left the state) is ended. `record` tells what
/// the node recorded of a lease.
pub fn duties(
    state: &State,
    provider: &PublicKey,
    record: &dyn Fn(&Hash) -> Provisioned,
    open: &[Hash],
) -> Duties {
    let mut out = Duties::default();
    for lease in state.provided_by(provider) {
        let r = record(&lease.id);
        if lease.status == LeaseStatus::Active {
            out.leased_slots += u64::from(lease.fill.slots);
            if !r.started {
                out.duties.push(Duty::Start(lease.id));
            }
            if grant_stale(lease, r.token_until_ms) {
                out.duties.push(Duty::Grant(lease.id));
            }
            if r.probe.is_some() && r.probe != lease.probe {
                out.duties.push(Duty::Probe(lease.id));
            }
        } else if r.started && !r.ended {
            out.duties.push(Duty::End(lease.id));
        }
    }
    for id in open {
        let live = state.lease(id).is_some_and(|l| l.status == LeaseStatus::Active);
        let r = record(id);
        if !live && r.started && !r.ended && !out.duties.contains(&Duty::End(*id)) {
            out.duties.push(Duty::End(*id));
        }
    }
    out
}

/// Whether the provider should grant `lease` now: it is active, its grant is missing or stale
/// for the token the node holds (valid until `token_until_ms`) (see [`Duty::Grant`]), and no grant of it is among `pending`
/// (the provider's transactions waiting in the mempool).
pub fn needs_grant(
    state: &State,
    lease: &Hash,
    pending: &[Tx],
    token_until_ms: Option<u64>,
) -> bool {
    let stale = state
        .lease(lease)
        .is_some_and(|l| l.status == LeaseStatus::Active && grant_stale(l, token_until_ms));
    stale && !pending.iter().any(|t| matches!(t, Tx::Grant { lease: l, .. } if l == lease))
}

/// The sequence number of `author`'s next transaction: after its committed ones and after
/// `pending` (its transactions waiting in the mempool).
pub fn next_seq(state: &State, author: &PublicKey, pending: &[Tx]) -> u64 {
    let committed = state.account(author).seq;
    pending.iter().map(|t| t.seq().saturating_add(1)).fold(committed, u64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Allocation, BlockMaker, Genesis, Params};
    use surplus_ledger::testutil::key;
    use surplus_market::{Bid, Catalogue, FillRule};

    const T0: u64 = 1_700_000_000_000;

    /// A chain where the provider's offer of 4 slots filled one bid of 2: one active lease.
    fn leased() -> (BlockMaker, PublicKey, Hash) {
        let (provider, buyer, validator) =
            (key("provider", 0), key("buyer", 0), key("validator", 0));
        let genesis = Genesis {
            validators: vec![validator.public()],
            params: Params {
                catalogue: Catalogue::sample(),
                treasury: key("treasury", 0).public(),
                fee_bps: 0,
                penalty_bps: 0,
                notice_ms: crate::maintenance::DEFAULT_NOTICE_MS,
                supervision: None,
            },
            allocations: vec![Allocation { account: buyer.public(), amount: 1_000_000 }],
        };
        let (_, mut maker) = BlockMaker::genesis("provider-test", &genesis, T0).unwrap();
        let market = Market::new("vm.4c16g", "eu-west-a");
        let pools = [Pool {
            name: None,
            class: market.class.clone(),
            region: market.region.clone(),
            slots: 4,
            reserve: 10,
            min_hours: 1,
            horizon_hours: 48,
            offer_ttl_minutes: 60,
        }];
        let p = plan(&pools, &maker.state, &provider.public(), &[], T0);
        let bid = Order::Bid(Bid {
            market,
            slots: 2,
            hours: 2,
            limit: 20,
            earliest_ms: T0,
            latest_ms: T0 + HOUR_MS,
            fill: FillRule::AllOrNone,
            expiry_ms: T0 + HOUR_MS,
            nonce: 1,
        });
        let mut entries = p.entries("provider-test", &provider);
        entries.push(SignedOrder::sign("provider-test", bid, &buyer).0);
        maker.next(&entries, T0 + 1, validator.public()).unwrap();
        let lease = maker.state.leases().next().unwrap().id;
        (maker, provider.public(), lease)
    }

    fn pool(name: &str, slots: u32) -> Pool {
        Pool {
            name: Some(name.into()),
            class: "vm.4c16g".into(),
            region: "eu-west-a".into(),
            slots,
            reserve: 10,
            min_hours: 1,
            horizon_hours: 48,
            offer_ttl_minutes: 60,
        }
    }

    #[test]
    fn pools_under_maintenance_are_not_offered_and_their_leases_move_or_get_notice() {
        let (mut maker, provider, lease) = leased();
        let key = key("provider", 0);
        let now = T0 + 10;
        let l = maker.state.lease(&lease).unwrap().clone();
        // Pool "a" (4 slots) holds the offer's 2-slot lease: it is placed on the first pool
        // with room.
        let pools = [pool("a", 4), pool("b", 2)];
        let nowhere = |_: &Hash| None;
        assert_eq!(place(&pools, &maker.state, &provider, &l, &nowhere).as_deref(), Some("a"));
        let on_a = |_: &Hash| Some("a".to_string());
        // The offer covers 4 of the 6 slots: 2 more are offered.
        let p = plan(&pools, &maker.state, &provider, &[], now);
        assert_eq!((p.offers.len(), p.offers[0].slots, p.cancels.len()), (1, 2, 0));
        // Pool "a" goes into maintenance in an hour (the lease runs 2).
        let start = now + HOUR_MS;
        let w = Tx::Maintenance {
            pool: "a".into(),
            market: l.fill.market.clone(),
            start_ms: start,
            until_ms: 0,
            reason: "firmware".into(),
            seq: 0,
        };
        let e = Entry::signed("provider-test", w.kind(), w.encode(), &key);
        maker.next(&[e], now, key_v()).unwrap();
        assert_eq!(drained(&maker.state, &provider).into_iter().collect::<Vec<_>>(), vec!["a"]);
        // Only pool "b" is offered now: the offer (4 slots, 2 leased) covers more than its 2,
        // so it is withdrawn and nothing new is offered.
        let p = plan(&pools, &maker.state, &provider, &[], now + 1);
        assert!(p.offers.is_empty());
        assert_eq!(p.cancels, vec![l.fill.offer]);
        // Pool "b" has room for the lease: it moves there.
        let d = drain_duties(&pools, &maker.state, &provider, &on_a, &[], now + 1);
        assert_eq!(d, vec![DrainDuty::Move { lease, from: "a".into(), to: "b".into() }]);
        // Without room elsewhere, it gets notice for the window's start.
        let small = [pool("a", 4), pool("b", 1)];
        let d = drain_duties(&small, &maker.state, &provider, &on_a, &[], now + 1);
        assert_eq!(d, vec![DrainDuty::Notice { lease, end_ms: start }]);
        // A window that starts now: notice for a moment later, so that it reaches a block.
        let d = drain_duties(&small, &maker.state, &provider, &on_a, &[], start + 5);
        assert_eq!(d, vec![DrainDuty::Notice { lease, end_ms: start + 5 + NOTICE_MARGIN_MS }]);
        // A pending notice, or a lease already moved to "b", has nothing more to do.
        let pending = [Tx::Notice { lease, end_ms: start, seq: 1 }];
        assert!(drain_duties(&small, &maker.state, &provider, &on_a, &pending, now + 1).is_empty());
        let on_b = |_: &Hash| Some("b".to_string());
        assert!(drain_duties(&pools, &maker.state, &provider, &on_b, &[], now + 1).is_empty());
        // Once the pool is back, it is offered again.
        let done = Tx::MaintenanceDone { pool: "a".into(), seq: 1 };
        let e = Entry::signed("provider-test", done.kind(), done.encode(), &key);
        maker.next(&[e], now + 2, key_v()).unwrap();
        assert!(drained(&maker.state, &provider).is_empty());
        let p = plan(&pools, &maker.state, &provider, &[], now + 3);
        assert_eq!((p.offers.len(), p.offers[0].slots), (1, 2));
    }

    #[test]
    fn a_capacity_cap_bounds_what_is_offered_and_never_touches_leases() {
        // The offer of 4 slots holds a lease of 2.
        let (maker, provider, lease) = leased();
        let l = maker.state.lease(&lease).unwrap().clone();
        let pools = [pool("a", 4), pool("b", 4)];
        let now = T0 + 10;
        let caps = |n: u64| std::collections::BTreeMap::from([("vm.4c16g".to_string(), n)]);
        // Without a cap, 4 more; with 6, 2 more; with 4, nothing more.
        assert_eq!(plan_within(&pools, None, &maker.state, &provider, &[], now).offers[0].slots, 4);
        let p = plan_within(&pools, Some(&caps(6)), &maker.state, &provider, &[], now);
        assert_eq!((p.offers[0].slots, p.cancels.len()), (2, 0));
        assert!(plan_within(&pools, Some(&caps(4)), &maker.state, &provider, &[], now).is_empty());
        // Below what the offer covers, or below the lease, or a class not reported: the offer
        // (with its free slots) is withdrawn, nothing is offered; the lease stays.
        for c in [caps(3), caps(1), Default::default()] {
            let p = plan_within(&pools, Some(&c), &maker.state, &provider, &[], now);
            assert_eq!((p.offers.len(), p.cancels.clone()), (0, vec![l.fill.offer]), "{c:?}");
        }
        assert!(maker.state.lease(&lease).is_some());
    }

    #[test]
    fn a_rotated_provider_keeps_its_duties_offers_and_credentials() {
        let (mut maker, old, lease) = leased();
        let l = maker.state.lease(&lease).unwrap().clone();
        let old_token =
            crate::credential::mint(&l, &key("provider", 0), &["read"], &mut rand::rngs::OsRng)
                .unwrap();
        let new = key("provider", 9);
        let r = Tx::RotateKey { new_key: new.public(), seq: 0 };
        let e = Entry::signed("provider-test", r.kind(), r.encode(), &key("provider", 0));
        maker.next(&[e], T0 + 2, key_v()).unwrap();
        let me = new.public();
        // The lease's duties pass to the new key. The old key's offer left the book with the
        // rotation; the lease still covers its 2 slots, so the new key offers the other 2.
        let none = |_: &Hash| Provisioned::default();
        let d = duties(&maker.state, &me, &none, &[]);
        assert_eq!((d.duties, d.leased_slots), (vec![Duty::Start(lease), Duty::Grant(lease)], 2));
        assert!(duties(&maker.state, &old, &none, &[]).duties.is_empty());
        let pools = [pool("a", 4)];
        let p = plan(&pools, &maker.state, &me, &[], T0 + 3);
        assert_eq!((p.offers.len(), p.offers[0].slots, p.cancels.len()), (1, 2, 0), "{p:?}");
        // The new key mints; its token and the old key's both verify.
        assert!(crate::credential::mint(&l, &new, &["read"], &mut rand::rngs::OsRng).is_err());
        let current = maker.state.current_key(&l.fill.provider);
        let token =
            crate::credential::mint_by(&l, &new, &current, &["read"], &mut rand::rngs::OsRng)
                .unwrap();
        let request = crate::credential::Request {
            lease,
            operation: "read".into(),
            now_ms: l.fill.start_ms + 1,
        };
        for t in [&token.token, &old_token.token] {
            crate::credential::authorize(&maker.state, t, &request).unwrap();
        }
        let stranger = key("provider", 5);
        assert!(crate::credential::mint_by(
            &l,
            &stranger,
            &current,
            &["read"],
            &mut rand::rngs::OsRng
        )
        .is_err());
    }

    fn key_v() -> PublicKey {
        key("validator", 0).public()
    }

    #[test]
    fn an_active_lease_is_started_and_granted_until_recorded() {
        let (maker, provider, lease) = leased();
        let none = |_: &Hash| Provisioned::default();
        let d = duties(&maker.state, &provider, &none, &[]);
        assert_eq!(d.duties, vec![Duty::Start(lease), Duty::Grant(lease)]);
        assert_eq!(d.leased_slots, 2);
        let started = |_: &Hash| Provisioned { started: true, ..Default::default() };
        assert_eq!(
            duties(&maker.state, &provider, &started, &[lease]).duties,
            vec![Duty::Grant(lease)]
        );
        // Another provider has nothing to do for it.
        assert_eq!(duties(&maker.state, &key("other", 0).public(), &none, &[]), Duties::default());
    }

    #[test]
    fn a_renewed_lease_or_a_lost_token_is_granted_again() {
        let (mut maker, provider, lease) = leased();
        let l = maker.state.lease(&lease).unwrap().clone();
        let c = crate::credential::mint(&l, &key("provider", 0), &["read"], &mut rand::rngs::OsRng)
            .unwrap();
        let held = Some(l.fill.end_ms);
        let g = Tx::Grant {
            lease,
            token_hash: c.token_hash,
            revocation_ids: c.revocation_ids,
            seq: 0,
            sealed: Vec::new(),
        };
        let e = Entry::signed("provider-test", g.kind(), g.encode(), &key("provider", 0));
        maker.next(&[e], T0 + 2, key("validator", 0).public()).unwrap();
        let with = |t| {
            move |_: &Hash| Provisioned { started: true, token_until_ms: t, ..Default::default() }
        };
        assert!(duties(&maker.state, &provider, &with(held), &[lease]).duties.is_empty());
        // The node lost its token: it mints another.
        let grant = vec![Duty::Grant(lease)];
        assert_eq!(duties(&maker.state, &provider, &with(None), &[lease]).duties, grant);
        assert!(needs_grant(&maker.state, &lease, &[], None));
        // The buyer renews: the held token ends before the lease now does.
        let r = Tx::Renew { lease, hours: 1, seq: 0 };
        let e = Entry::signed("provider-test", r.kind(), r.encode(), &key("buyer", 0));
        maker.next(&[e], T0 + 3, key("validator", 0).public()).unwrap();
        assert_eq!(maker.state.lease(&lease).unwrap().fill.end_ms, l.fill.end_ms + HOUR_MS);
        assert_eq!(duties(&maker.state, &provider, &with(held), &[lease]).duties, grant);
        assert!(needs_grant(&maker.state, &lease, &[], held));
        assert!(!needs_grant(&maker.state, &lease, &[], Some(l.fill.end_ms + HOUR_MS)));
    }

    #[test]
    fn an_ended_lease_that_was_started_is_ended_once() {
        let (mut maker, provider, lease) = leased();
        let t = Tx::Terminate { lease, seq: 0 };
        let e = Entry::signed("provider-test", t.kind(), t.encode(), &key("buyer", 0));
        maker.next(&[e], T0 + 2, key("validator", 0).public()).unwrap();
        // The lease left the live state with its block; the node knows it started it.
        assert!(maker.state.lease(&lease).is_none());
        let started = |_: &Hash| Provisioned { started: true, ..Default::default() };
        let d = duties(&maker.state, &provider, &started, &[lease]);
        assert_eq!((d.duties, d.leased_slots), (vec![Duty::End(lease)], 0));
        let done = |_: &Hash| Provisioned { started: true, ended: true, ..Default::default() };
        assert!(duties(&maker.state, &provider, &done, &[lease]).duties.is_empty());
        // Never started here (the node joined late): nothing to end.
        let none = |_: &Hash| Provisioned::default();
        assert!(duties(&maker.state, &provider, &none, &[]).duties.is_empty());
    }

    #[test]
    fn grants_are_not_doubled_and_sequence_numbers_follow_pending_ones() {
        let (maker, provider, lease) = leased();
        assert!(needs_grant(&maker.state, &lease, &[], None));
        let pending = [Tx::Grant {
            lease,
            token_hash: [0; 32],
            revocation_ids: vec![],
            seq: 0,
            sealed: Vec::new(),
        }];
        assert!(!needs_grant(&maker.state, &lease, &pending, None));
        assert!(!needs_grant(&maker.state, &[9; 32], &[], None));
        assert_eq!(next_seq(&maker.state, &provider, &[]), 0);
        assert_eq!(next_seq(&maker.state, &provider, &pending), 1);
        let later = [Tx::Transfer { to: PublicKey([1; 32]), amount: 1, seq: 4 }];
        assert_eq!(next_seq(&maker.state, &provider, &later), 5);
    }
}
