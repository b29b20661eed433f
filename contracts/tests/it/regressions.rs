//! Regression tests for what the review of the state machine found, each named after it.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use surplus_contracts::credential::{mint, verify, Refusal as TokenRefusal, Request, OPERATIONS};
use surplus_contracts::{Error, LeaseStatus, Mode, Refusal, Tx};
use surplus_ledger::testutil::key;

use crate::helpers::*;
use surplus_market::HOUR_MS;

/// Two blocks with the same time once produced byte-identical fills, so the second lease
/// overwrote the first and its escrow vanished. The fill now carries its block height.
#[test]
fn identical_fills_in_blocks_with_the_same_time_make_two_leases() {
    let mut s = state(0, 0);
    let b0 = buyer(0);
    s.apply_block(
        1,
        T0,
        &[
            offer(&provider(0), 10, 100, 50, 1, T0),
            bid(&b0, 4, 10, 100, 1, T0),
            tx(&b0, Tx::Transfer { to: buyer(1).public(), amount: 10_000_000 - 2_000, seq: 0 }),
        ],
        Mode::Validate,
    )
    .unwrap();
    s.apply_block(
        2,
        T0,
        &[tx(&buyer(1), Tx::Transfer { to: b0.public(), amount: 2_000, seq: 0 })],
        Mode::Validate,
    )
    .unwrap();
    assert_eq!(s.leases().count(), 2);
    assert_eq!(s.total_credits(), u128::from(s.supply()));
}

/// The same entry twice in a proposal made the proposer drop both copies while the order stayed
/// in its state (an invalid block). A repeated entry is now refused on its own.
#[test]
fn a_repeated_entry_in_one_block_is_refused_and_the_proposal_stays_valid() {
    let s = state(0, 0);
    let o = offer(&provider(0), 10, 100, 50, 1, T0);
    let mut p = s.clone();
    let a = p.apply_block(1, T0, &[o.clone(), o.clone()], Mode::Propose).unwrap();
    assert_eq!(a.refused.len(), 1);
    assert_eq!(a.refused[0].0, 1);
    let user: Vec<_> = a
        .entries
        .iter()
        .filter(|e| matches!(e.auth, surplus_ledger::Auth::Signed { .. }))
        .cloned()
        .collect();
    let mut v = s.clone();
    assert_eq!(v.apply_block(1, T0, &user, Mode::Validate).unwrap().state_root, a.state_root);
    let mut w = s.clone();
    assert!(matches!(
        w.apply_block(1, T0, &[o.clone(), o], Mode::Validate),
        Err(Error::Refused { index: 1, .. })
    ));
}

/// A wash trade could set the market's last price to 0 and a renewal then cost nothing. A
/// renewal is now priced at least at the offer's reserve.
#[test]
fn a_renewal_never_pays_less_than_the_offers_reserve() {
    let mut s = state(0, 0);
    s.apply_block(
        1,
        T0,
        &[offer(&provider(0), 4, 100, 50, 1, T0), bid(&buyer(0), 2, 10, 100, 1, T0)],
        Mode::Validate,
    )
    .unwrap();
    let lease = s.leases().next().unwrap().id;
    s.apply_block(
        2,
        T0 + 1,
        &[offer(&provider(2), 1, 0, 5, 7, T0 + 1), bid(&buyer(2), 1, 1, 1, 7, T0 + 1)],
        Mode::Validate,
    )
    .unwrap();
    assert_eq!(s.last_price(&market()), Some(0));
    let before = s.account(&buyer(0).public()).balance;
    s.apply_block(
        3,
        T0 + 2,
        &[tx(&buyer(0), Tx::Renew { lease, hours: 30, seq: 0 })],
        Mode::Validate,
    )
    .unwrap();
    assert_eq!(before - s.account(&buyer(0).public()).balance, 30 * 2 * 100);
    let l = s.lease(&lease).unwrap();
    assert_eq!(l.escrow, l.cost_between(l.hours_paid, l.hours));
}

/// A bid its buyer cannot pay for once froze a market by pushing the price above every real
/// limit. Such a bid no longer counts in the price.
#[test]
fn an_unfunded_bid_does_not_freeze_the_market() {
    let mut s = state(0, 0);
    let nobody = key("nobody", 0);
    let a = s
        .apply_block(
            1,
            T0,
            &[
                offer(&provider(0), 10, 100, 50, 1, T0),
                bid(&buyer(0), 2, 10, 1_000, 1, T0),
                bid(&nobody, 1_000_000, 43_800, 400_000_000, 1, T0),
            ],
            Mode::Validate,
        )
        .unwrap();
    assert_eq!(a.outcome.fills.len(), 1);
    assert_eq!(a.outcome.prices[&market()], 550);
}

/// A provider could list another lease's revocation ids in its own grant and revoke the other
/// credential by ending its own lease. An id already used is now refused.
#[test]
fn a_grant_cannot_reuse_another_credentials_revocation_ids() {
    let (mut s, victim) = one_lease();
    let c = mint(&victim, &provider(1), &OPERATIONS, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    let grant = Tx::Grant {
        lease: victim.id,
        token_hash: c.token_hash,
        revocation_ids: c.revocation_ids.clone(),
        seq: 0,
        sealed: Vec::new(),
    };
    s.apply_block(2, T0 + 1, &[tx(&provider(1), grant)], Mode::Validate).unwrap();
    s.apply_block(
        3,
        T0 + 2,
        &[offer(&provider(0), 1, 1, 5, 9, T0 + 2), bid(&buyer(0), 1, 1, 1, 9, T0 + 2)],
        Mode::Validate,
    )
    .unwrap();
    let own = s.leases().find(|l| l.fill.provider == provider(0).public()).unwrap().id;
    let steal = Tx::Grant {
        lease: own,
        token_hash: [0; 32],
        revocation_ids: c.revocation_ids.clone(),
        seq: 0,
        sealed: Vec::new(),
    };
    let err = s.apply_block(4, T0 + 3, &[tx(&provider(0), steal)], Mode::Validate).unwrap_err();
    assert!(matches!(err, Error::Refused { refusal: Refusal::AlreadyGranted, .. }), "{err}");
    let req = Request { lease: victim.id, operation: "read".into(), now_ms: T0 + HOUR_MS };
    assert!(verify(&c.token, &provider(1).public(), &req, &|id| s.is_revoked(id)).is_ok());
}

/// After a renewal the provider could not record the re-minted token, so a termination left it
/// valid. A new grant now replaces the old (revoking it), and termination revokes the new one.
#[test]
fn a_renewed_leases_new_token_is_revoked_at_termination() {
    let (mut s, lease) = one_lease();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let c1 = mint(&lease, &provider(1), &OPERATIONS, &mut rng).unwrap();
    s.apply_block(
        2,
        T0 + 1,
        &[
            tx(
                &provider(1),
                Tx::Grant {
                    lease: lease.id,
                    token_hash: c1.token_hash,
                    revocation_ids: c1.revocation_ids.clone(),
                    seq: 0,
                    sealed: Vec::new(),
                },
            ),
            tx(&buyer(2), Tx::Renew { lease: lease.id, hours: 24, seq: 0 }),
        ],
        Mode::Validate,
    )
    .unwrap();
    let renewed = s.lease(&lease.id).unwrap().clone();
    let c2 = mint(&renewed, &provider(1), &OPERATIONS, &mut rng).unwrap();
    let regrant = Tx::Grant {
        lease: lease.id,
        token_hash: c2.token_hash,
        revocation_ids: c2.revocation_ids.clone(),
        seq: 1,
        sealed: Vec::new(),
    };
    s.apply_block(3, T0 + 2, &[tx(&provider(1), regrant)], Mode::Validate).unwrap();
    let old = Request { lease: lease.id, operation: "read".into(), now_ms: T0 + 3 };
    assert_eq!(
        verify(&c1.token, &provider(1).public(), &old, &|id| s.is_revoked(id)),
        Err(TokenRefusal::Revoked)
    );
    let a = s
        .apply_block(
            4,
            T0 + 3,
            &[tx(&buyer(2), Tx::Terminate { lease: lease.id, seq: 1 })],
            Mode::Validate,
        )
        .unwrap();
    assert!(s.lease(&lease.id).is_none());
    assert_eq!(a.ended[0].status, LeaseStatus::TerminatedByBuyer);
    let later = Request { lease: lease.id, operation: "write".into(), now_ms: T0 + 30 * HOUR_MS };
    assert_eq!(
        verify(&c2.token, &provider(1).public(), &later, &|id| s.is_revoked(id)),
        Err(TokenRefusal::Revoked)
    );
}
