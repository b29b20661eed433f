//! A small consortium for tests: a treasury, providers and buyers with credits.

use surplus_contracts::{Allocation, Genesis, Params, State, Tx};
use surplus_ledger::testutil::key;
use surplus_ledger::{Entry, EntryKind, PublicKey, SecretKey};
use surplus_market::{Bid, Catalogue, FillRule, Market, Offer, Order, SignedOrder, HOUR_MS};

pub const CHAIN: &str = "contracts-test";
pub const T0: u64 = 1_767_225_600_000;

pub fn provider(i: u64) -> SecretKey {
    key("provider", i)
}
pub fn buyer(i: u64) -> SecretKey {
    key("buyer", i)
}
pub fn treasury() -> PublicKey {
    key("treasury", 0).public()
}
pub fn market() -> Market {
    Market::new("vm.4c16g", "eu-west-a")
}

pub fn genesis(fee_bps: u16, penalty_bps: u16) -> Genesis {
    let mut allocations: Vec<Allocation> =
        (0..3).map(|i| Allocation { account: buyer(i).public(), amount: 10_000_000 }).collect();
    allocations
        .extend((0..3).map(|i| Allocation { account: provider(i).public(), amount: 1_000_000 }));
    Genesis {
        validators: (0..4).map(|i| key("validator", i).public()).collect(),
        params: Params {
            catalogue: Catalogue::sample(),
            treasury: treasury(),
            fee_bps,
            penalty_bps,
        },
        allocations,
    }
}

pub fn state(fee_bps: u16, penalty_bps: u16) -> State {
    State::genesis(CHAIN, &genesis(fee_bps, penalty_bps), T0).unwrap()
}

pub fn offer(p: &SecretKey, slots: u32, reserve: u64, until_h: u64, nonce: u64, now: u64) -> Entry {
    let o = Order::Offer(Offer {
        market: market(),
        slots,
        from_ms: now,
        until_ms: now + until_h * HOUR_MS,
        reserve,
        min_hours: 1,
        expiry_ms: now + until_h * HOUR_MS,
        nonce,
    });
    SignedOrder::sign(CHAIN, o, p).0
}

pub fn bid(b: &SecretKey, slots: u32, hours: u32, limit: u64, nonce: u64, now: u64) -> Entry {
    let o = Order::Bid(Bid {
        market: market(),
        slots,
        hours,
        limit,
        earliest_ms: now,
        latest_ms: now + 2 * HOUR_MS,
        fill: FillRule::AtLeast(1),
        expiry_ms: now + 2 * HOUR_MS,
        nonce,
    });
    SignedOrder::sign(CHAIN, o, b).0
}

pub fn tx(author: &SecretKey, t: Tx) -> Entry {
    Entry::signed(CHAIN, t.kind(), t.encode(), author)
}

pub fn transition_kind() -> EntryKind {
    EntryKind::LEASE_TRANSITION
}

/// A state with one lease at T0: provider 1 sells buyer 2 one slot for 24 hours at price 10.
pub fn one_lease() -> (surplus_contracts::State, surplus_contracts::Lease) {
    let mut s = state(0, 0);
    s.apply_block(
        1,
        T0,
        &[offer(&provider(1), 2, 10, 100, 1, T0), bid(&buyer(2), 1, 24, 10, 1, T0)],
        surplus_contracts::Mode::Validate,
    )
    .unwrap();
    let lease = s.leases().next().unwrap().clone();
    (s, lease)
}
