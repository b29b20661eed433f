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
    let mut out = Plan::default();
    let mut used_nonces: BTreeSet<u64> = pending.iter().map(|o| o.nonce).collect();
    for (i, pool) in pools.iter().enumerate() {
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
            .provider_leases(provider)
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
        let slots = u64::from(pool.slots);

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
            // At most pool.slots, which is at most MAX_SLOTS.
            slots: u32::try_from(uncovered).unwrap_or(pool.slots),
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Provisioned {
    /// The start hook ran (successfully or not) and was recorded.
    pub started: bool,
    /// The end hook ran and was recorded.
    pub ended: bool,
    /// The end of validity (`valid_until`, ms) of the credential the node holds for the lease
    /// (the last one it minted), if it holds one.
    pub token_until_ms: Option<u64>,
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
    for lease in state.provider_leases(provider) {
        let r = record(&lease.id);
        if lease.status == LeaseStatus::Active {
            out.leased_slots += u64::from(lease.fill.slots);
            if !r.started {
                out.duties.push(Duty::Start(lease.id));
            }
            if grant_stale(lease, r.token_until_ms) {
                out.duties.push(Duty::Grant(lease.id));
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
            },
            allocations: vec![Allocation { account: buyer.public(), amount: 1_000_000 }],
        };
        let (_, mut maker) = BlockMaker::genesis("provider-test", &genesis, T0).unwrap();
        let market = Market::new("vm.4c16g", "eu-west-a");
        let pools = [Pool {
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
        let with =
            |t| move |_: &Hash| Provisioned { started: true, ended: false, token_until_ms: t };
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
        let done = |_: &Hash| Provisioned { started: true, ended: true, token_until_ms: None };
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
