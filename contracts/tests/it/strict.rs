//! Admission (`State::precheck`) and block execution (a proposer's `Mode::Propose`, and
//! `Mode::Validate`, which validators and the audit's re-execution run) accept a user entry's
//! signature exactly when the strict rule does, whatever torsion its key or its `R` carries.
//! `ledger/tests/it/strict.rs` shows that the ledger's checks are the rule of
//! `docs/ledger-format.md` §2.

use surplus_contracts::testutil::{buyer, genesis, CHAIN, T0};
use surplus_contracts::{Allocation, Mode, Refusal, State, Tx};
use surplus_ledger::testutil::owner_signature;
use surplus_ledger::{verify_strict, Auth, Entry, EntryKind};

#[test]
fn admission_and_execution_accept_exactly_the_strict_rule() {
    // Torsion indices: 0 none, 4 order 2, 2 order 4, 1 order 8.
    let mut accepted = 0;
    let mut refused = 0;
    for seed in 0..3u8 {
        for key_torsion in [0usize, 4, 2, 1] {
            for r_torsion in [0usize, 4, 2, 1] {
                let (a, r) = ([seed + 1; 32], [seed + 50; 32]);
                let author = owner_signature(a, r, key_torsion, 0, b"").0;
                let tx = Tx::Transfer { to: buyer(0).public(), amount: 1, seq: 0 };
                let payload = tx.encode();
                let msg = Entry::signing_bytes(CHAIN, EntryKind::TRANSFER, &author, &payload);
                let (author, signature) = owner_signature(a, r, key_torsion, r_torsion, &msg);
                let entry = Entry {
                    kind: EntryKind::TRANSFER,
                    auth: Auth::Signed { author, signature },
                    payload,
                };
                let strict = verify_strict(&author, &msg, &signature).is_ok();
                let case = format!("seed {seed}, key torsion {key_torsion}, R torsion {r_torsion}");

                let mut g = genesis(100, 1000);
                g.allocations.push(Allocation { account: author, amount: 1_000 });
                let state = State::genesis(CHAIN, &g, T0).expect("the genesis is valid");
                let now = T0 + 1_000;

                let admitted = state.precheck(&entry, now);
                assert_eq!(admitted.is_ok(), strict, "admission, {case}");
                if !strict {
                    assert_eq!(admitted.err(), Some(Refusal::BadSignature), "{case}");
                }

                let mut proposer = state.clone();
                let applied = proposer
                    .apply_block(1, now, std::slice::from_ref(&entry), Mode::Propose)
                    .expect("a proposal drops refused entries");
                assert_eq!(applied.refused.is_empty(), strict, "proposal, {case}");
                assert_eq!(proposer.account(&author).balance, if strict { 999 } else { 1_000 });

                let mut validator = state.clone();
                let validated =
                    validator.apply_block(1, now, std::slice::from_ref(&entry), Mode::Validate);
                assert_eq!(validated.is_ok(), strict, "validation, {case}");
                if strict {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
        }
    }
    // Both outcomes occur: every torsioned R on a prime-order key is refused, and some mixed
    // keys with a matching R torsion pass the rule.
    assert!(accepted > 3 && refused > 0, "accepted {accepted}, refused {refused}");
}

/// A node verifies each entry's signature once: on admission it records the entry's id
/// (`VerifiedIds`), and a block carrying admitted entries applies them without verifying them
/// again, to the same outcome, while an entry it never admitted is still verified (a forged
/// signature is refused as before).
#[test]
fn signatures_verified_on_admission_are_not_verified_again_in_blocks() {
    use surplus_contracts::testutil::{bid, offer, provider, tx};
    use surplus_contracts::VerifiedIds;
    let state = State::genesis(CHAIN, &genesis(100, 1000), T0).expect("the genesis is valid");
    let now = T0 + 1_000;
    let entries = vec![
        offer(&provider(0), 2, 10, 50, 1, now),
        bid(&buyer(0), 1, 2, 20, 1, now),
        tx(&buyer(1), Tx::Transfer { to: buyer(2).public(), amount: 5, seq: 0 }),
    ];
    let verified = VerifiedIds::default();
    for e in &entries {
        verified.insert(state.admit(e, now).expect("admitted").id);
    }
    let plain = state.clone().apply_block(1, now, &entries, Mode::Validate).expect("applies");
    let mut with = state.clone();
    let skipped =
        with.apply_block_with(1, now, &entries, Mode::Validate, Some(&verified)).expect("applies");
    assert_eq!(skipped, plain);
    assert_eq!((verified.hits(), verified.misses()), (3, 0));

    // A transfer whose signature is another message's: never admitted, so verified, refused.
    let good = tx(&buyer(1), Tx::Transfer { to: buyer(2).public(), amount: 6, seq: 0 });
    let other = tx(&buyer(1), Tx::Transfer { to: buyer(2).public(), amount: 7, seq: 0 });
    let (Auth::Signed { author, .. }, Auth::Signed { signature, .. }) = (&good.auth, &other.auth)
    else {
        panic!("signed entries")
    };
    let forged = Entry {
        kind: good.kind,
        auth: Auth::Signed { author: *author, signature: *signature },
        payload: good.payload.clone(),
    };
    let err = state
        .clone()
        .apply_block_with(1, now, &[forged], Mode::Validate, Some(&verified))
        .expect_err("a forged signature applies");
    assert!(
        matches!(err, surplus_contracts::Error::Refused { refusal: Refusal::BadSignature, .. }),
        "{err:?}"
    );
    assert_eq!(verified.misses(), 1);
}
