//! Every transition by the right party works; by the wrong party, beyond a window or beyond a
//! balance it is refused with its reason and changes nothing.

use surplus_contracts::{Error, LeaseStatus, Mode, Refusal, SettlementReason, Tx};
use surplus_market::HOUR_MS;

use crate::helpers::*;

/// A state with one lease: provider 0 sells 4 slots at reserve 100 for 50 hours, buyer 0 bids 2
/// slots for 10 hours at limit 100 (price 100).
fn leased() -> (surplus_contracts::State, surplus_ledger::Hash) {
    let mut s = state(500, 2_000);
    let a = s
        .apply_block(
            1,
            T0,
            &[offer(&provider(0), 4, 100, 50, 1, T0), bid(&buyer(0), 2, 10, 100, 1, T0)],
            Mode::Validate,
        )
        .unwrap();
    assert_eq!(a.outcome.fills.len(), 1);
    let lease = s.leases().next().unwrap().id;
    (s, lease)
}

/// The lease `id` among the block's ended leases (the only ones it reports).
fn ended<'a>(
    a: &'a surplus_contracts::Applied,
    id: &surplus_ledger::Hash,
) -> &'a surplus_contracts::Lease {
    assert_eq!(a.ended.len(), 1, "one lease ended");
    a.ended.iter().find(|l| &l.id == id).expect("the lease ended in the block")
}

#[test]
fn a_fill_moves_the_whole_lease_into_escrow() {
    let (s, lease) = leased();
    let l = s.lease(&lease).unwrap();
    assert_eq!(l.escrow, 2 * 10 * 100);
    assert_eq!(s.account(&buyer(0).public()).balance, 10_000_000 - 2_000);
    assert_eq!(l.status, LeaseStatus::Active);
    assert_eq!(s.total_credits(), u128::from(s.supply()));
}

#[test]
fn hours_are_paid_as_block_time_passes_and_the_rest_at_the_end() {
    let (mut s, lease) = leased();
    s.apply_block(2, T0 + 3 * HOUR_MS + 5, &[], Mode::Validate).unwrap();
    let l = s.lease(&lease).unwrap();
    assert_eq!((l.hours_paid, l.escrow), (3, 2 * 7 * 100));
    // 5 % fee to the treasury.
    assert_eq!(s.account(&provider(0).public()).balance, 1_000_000 + 600 - 30);
    assert_eq!(s.account(&treasury()).balance, 30);
    let a = s.apply_block(3, T0 + 11 * HOUR_MS, &[], Mode::Validate).unwrap();
    // The completed lease left the live state with its block, which reports it.
    assert!(s.lease(&lease).is_none());
    let l = ended(&a, &lease);
    assert_eq!((l.status, l.escrow, l.hours_paid), (LeaseStatus::Completed, 0, 10));
    assert_eq!(s.account(&provider(0).public()).balance, 1_000_000 + 1_900);
    assert_eq!(s.account(&treasury()).balance, 100);
    let settlement = surplus_contracts::Settlement::decode(&a.entries[0].payload).unwrap();
    assert_eq!(settlement.reason, SettlementReason::Completion);
    assert_eq!(s.total_credits(), u128::from(s.supply()));
}

#[test]
fn buyer_termination_refunds_unused_hours_exactly() {
    let (mut s, lease) = leased();
    let before = s.account(&buyer(0).public()).balance;
    // 2.5 hours in: the buyer pays 3 hours (the hour it is in), gets 7 back.
    let a = s
        .apply_block(
            2,
            T0 + 5 * HOUR_MS / 2,
            &[tx(&buyer(0), Tx::Terminate { lease, seq: 0 })],
            Mode::Validate,
        )
        .unwrap();
    assert!(s.lease(&lease).is_none());
    let l = ended(&a, &lease);
    assert_eq!((l.status, l.escrow, l.hours_paid), (LeaseStatus::TerminatedByBuyer, 0, 3));
    assert_eq!(s.account(&buyer(0).public()).balance, before + 7 * 2 * 100);
    assert_eq!(s.total_credits(), u128::from(s.supply()));
    // The slots are free again for the next buyer.
    let (_, offers) = s.book.market(&market());
    assert_eq!(offers[0].free_at(T0 + 3 * HOUR_MS), 4);
}

#[test]
fn provider_termination_refunds_and_pays_a_penalty() {
    let (mut s, lease) = leased();
    let before = s.account(&buyer(0).public()).balance;
    let a = s
        .apply_block(
            2,
            T0 + 5 * HOUR_MS / 2,
            &[tx(&provider(0), Tx::Terminate { lease, seq: 0 })],
            Mode::Validate,
        )
        .unwrap();
    assert!(s.lease(&lease).is_none());
    let l = ended(&a, &lease);
    // Paid for the 2 completed hours; 8 hours refunded, plus 20 % of them as penalty.
    assert_eq!((l.status, l.hours_paid), (LeaseStatus::TerminatedByProvider, 2));
    assert_eq!(s.account(&buyer(0).public()).balance, before + 1_600 + 320);
    assert_eq!(s.total_credits(), u128::from(s.supply()));
}

#[test]
fn renewal_extends_the_lease_at_the_last_price_within_the_offer_window() {
    let (mut s, lease) = leased();
    s.apply_block(
        2,
        T0 + HOUR_MS,
        &[tx(&buyer(0), Tx::Renew { lease, hours: 5, seq: 0 })],
        Mode::Validate,
    )
    .unwrap();
    let l = s.lease(&lease).unwrap();
    assert_eq!((l.hours, l.fill.end_ms), (15, T0 + 15 * HOUR_MS));
    assert_eq!(l.escrow, l.cost_between(l.hours_paid, l.hours));
    // Beyond the offer's 50-hour window: refused, nothing changes.
    let before = s.clone();
    let err = s.apply_block(
        3,
        T0 + 2 * HOUR_MS,
        &[tx(&buyer(0), Tx::Renew { lease, hours: 40, seq: 1 })],
        Mode::Validate,
    );
    assert!(
        matches!(err, Err(Error::Refused { refusal: Refusal::RenewalRefused(_), .. })),
        "{err:?}"
    );
    assert_eq!(s, before);
}

#[test]
fn the_wrong_party_a_replay_and_an_overdraft_are_refused_and_change_nothing() {
    let (mut s, lease) = leased();
    let before = s.clone();
    let cases = [
        (tx(&buyer(1), Tx::Terminate { lease, seq: 0 }), "not_entitled"),
        (tx(&provider(0), Tx::Renew { lease, hours: 1, seq: 0 }), "not_entitled"),
        (
            tx(
                &buyer(0),
                Tx::Grant {
                    lease,
                    token_hash: [0; 32],
                    revocation_ids: vec![surplus_contracts::RevocationId(vec![1])],
                    seq: 0,
                    sealed: Vec::new(),
                },
            ),
            "not_entitled",
        ),
        (
            tx(&buyer(0), Tx::Transfer { to: buyer(1).public(), amount: 20_000_000, seq: 0 }),
            "insufficient_balance",
        ),
        (tx(&buyer(0), Tx::Transfer { to: buyer(1).public(), amount: 5, seq: 7 }), "bad_sequence"),
        (
            tx(&buyer(0), Tx::Transfer { to: buyer(0).public(), amount: 5, seq: 0 }),
            "empty_transfer",
        ),
        (tx(&buyer(0), Tx::Terminate { lease: [9; 32], seq: 0 }), "unknown_lease"),
    ];
    for (entry, reason) in cases {
        let err = s.apply_block(2, T0 + HOUR_MS, &[entry], Mode::Validate).unwrap_err();
        let Error::Refused { refusal, .. } = err else { panic!("{err}") };
        let tag = serde_json_tag(&refusal);
        assert_eq!(tag, reason, "{refusal}");
        assert_eq!(s, before, "a refused entry changed the state");
    }
    // A forged signature.
    let mut forged = tx(&buyer(0), Tx::Transfer { to: buyer(1).public(), amount: 5, seq: 0 });
    if let surplus_ledger::Auth::Signed { signature, .. } = &mut forged.auth {
        signature.0[0] ^= 1;
    }
    let err = s.apply_block(2, T0 + HOUR_MS, &[forged.clone()], Mode::Validate).unwrap_err();
    assert!(matches!(err, Error::Refused { refusal: Refusal::BadSignature, .. }));
    // A valid transfer, then its replay.
    let t = tx(&buyer(0), Tx::Transfer { to: buyer(1).public(), amount: 5, seq: 0 });
    s.apply_block(2, T0 + HOUR_MS, std::slice::from_ref(&t), Mode::Validate).unwrap();
    let err = s.apply_block(3, T0 + HOUR_MS, std::slice::from_ref(&t), Mode::Validate).unwrap_err();
    assert!(matches!(
        err,
        Error::Refused { refusal: Refusal::BadSequence { expected: 1, got: 0 }, .. }
    ));
    // In a proposal, refused entries are dropped and reported.
    let a = s.apply_block(3, T0 + HOUR_MS, &[t, forged], Mode::Propose).unwrap();
    assert_eq!(a.refused.len(), 2);
    assert!(a.entries.iter().all(|e| e.kind != surplus_ledger::EntryKind::TRANSFER));
}

fn serde_json_tag(r: &Refusal) -> String {
    let dbg = format!("{r:?}");
    let name = dbg.split(['(', ' ', '{']).next().unwrap_or_default().to_owned();
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn time_and_height_must_advance() {
    let (mut s, _) = leased();
    assert!(matches!(s.apply_block(3, T0 + HOUR_MS, &[], Mode::Validate), Err(Error::Block(_))));
    assert!(matches!(s.apply_block(2, T0 - 1, &[], Mode::Validate), Err(Error::Block(_))));
    let _ = transition_kind();
}

/// A block's signatures are checked while it runs on the assumption that they are good; a bad
/// one among many (checked on several threads) gives exactly the result of checking each entry
/// before applying it: the forged entry is refused, and what follows runs without it.
#[test]
fn a_forged_signature_among_many_gives_the_result_of_checking_each_first() {
    use surplus_contracts::testutil::{buyer, genesis, tx, CHAIN, T0};
    let s = surplus_contracts::State::genesis(CHAIN, &genesis(100, 1000), T0).unwrap();
    let to = buyer(2).public();
    let mut block: Vec<_> =
        (0..20).map(|seq| tx(&buyer(1), Tx::Transfer { to, amount: 1, seq })).collect();
    let mut forged = tx(&buyer(0), Tx::Transfer { to, amount: 5, seq: 0 });
    if let surplus_ledger::Auth::Signed { signature, .. } = &mut forged.auth {
        signature.0[0] ^= 1;
    }
    block.push(forged);
    // Applied after the forged entry, this one would be refused (its sequence number taken).
    block.push(tx(&buyer(0), Tx::Transfer { to, amount: 7, seq: 0 }));
    block.extend((20..30).map(|seq| tx(&buyer(1), Tx::Transfer { to, amount: 1, seq })));

    let mut proposer = s.clone();
    let applied = proposer.apply_block(1, T0 + 1, &block, Mode::Propose).unwrap();
    assert_eq!(applied.refused, vec![(20, Refusal::BadSignature)]);
    assert_eq!(proposer.account(&buyer(0).public()).balance, 10_000_000 - 7);
    assert_eq!(proposer.account(&buyer(1).public()).seq, 30);
    assert_eq!(proposer.account(&to).balance, 10_000_000 + 7 + 30);

    let mut validator = s.clone();
    let err = validator.apply_block(1, T0 + 1, &block, Mode::Validate).unwrap_err();
    assert!(matches!(err, Error::Refused { index: 20, refusal: Refusal::BadSignature }), "{err}");
    assert_eq!(validator, s, "a refused block changed the state");

    // An entry refused before the forged one is the one reported.
    block[5] = tx(&buyer(1), Tx::Transfer { to: buyer(1).public(), amount: 1, seq: 5 });
    let err = validator.apply_block(1, T0 + 1, &block, Mode::Validate).unwrap_err();
    assert!(matches!(err, Error::Refused { index: 5, refusal: Refusal::EmptyTransfer }), "{err}");
    assert_eq!(validator, s);
}
