//! A small consortium for tests: a treasury, providers and buyers with credits
//! (`surplus_contracts::testutil`), and states built from it.

pub use surplus_contracts::testutil::*;
use surplus_contracts::State;
use surplus_ledger::EntryKind;

pub fn state(fee_bps: u16, penalty_bps: u16) -> State {
    State::genesis(CHAIN, &genesis(fee_bps, penalty_bps), T0).unwrap()
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
