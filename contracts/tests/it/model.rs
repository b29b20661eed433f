//! Model tests over random sequences of orders, fills, renewals, terminations and transfers:
//! credits are conserved, escrow is exact, capacity is never oversold, and the same sequence
//! gives the same state roots twice, each equal to the root of the state's items hashed afresh.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use surplus_contracts::{LeaseStatus, Mode, RevocationId, State, Tx};
use surplus_ledger::testutil::key;
use surplus_ledger::Entry;
use surplus_market::{Order, HOUR_MS};

use crate::helpers::*;

/// The user entries of one block, drawn from the state so that many are valid.
pub(crate) fn block_entries(rng: &mut StdRng, s: &State, now: u64, nonce: &mut u64) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut seqs: std::collections::HashMap<surplus_ledger::PublicKey, u64> = Default::default();
    let mut next_seq = |k: &surplus_ledger::SecretKey, s: &State| {
        let e = seqs.entry(k.public()).or_insert(s.account(&k.public()).seq);
        let v = *e;
        *e += 1;
        v
    };
    for _ in 0..rng.gen_range(0..6) {
        *nonce += 1;
        match rng.gen_range(0..10) {
            0..=2 => out.push(offer(
                &provider(rng.gen_range(0..3)),
                rng.gen_range(1..6),
                rng.gen_range(5..50),
                rng.gen_range(2..60),
                *nonce,
                now,
            )),
            3..=5 => out.push(bid(
                &buyer(rng.gen_range(0..3)),
                rng.gen_range(1..6),
                rng.gen_range(1..20),
                rng.gen_range(5..60),
                *nonce,
                now,
            )),
            6 => {
                let from = if rng.gen_bool(0.5) {
                    buyer(rng.gen_range(0..3))
                } else {
                    provider(rng.gen_range(0..3))
                };
                let to = buyer(rng.gen_range(0..3)).public();
                let amount = rng.gen_range(0..3_000_000);
                let seq = next_seq(&from, s);
                out.push(tx(&from, Tx::Transfer { to, amount, seq }));
            }
            _ => {
                let leases: Vec<_> =
                    s.leases().filter(|l| l.status == LeaseStatus::Active).collect();
                if leases.is_empty() {
                    continue;
                }
                let l = leases[rng.gen_range(0..leases.len())];
                let who = match rng.gen_range(0..3) {
                    0 => (0..3).map(buyer).find(|k| k.public() == l.fill.buyer),
                    1 => (0..3).map(provider).find(|k| k.public() == l.fill.provider),
                    _ => Some(buyer(rng.gen_range(0..3))),
                };
                let Some(who) = who else { continue };
                let seq = next_seq(&who, s);
                let t = match rng.gen_range(0..3) {
                    0 => Tx::Terminate { lease: l.id, seq },
                    1 => Tx::Renew { lease: l.id, hours: rng.gen_range(1..10), seq },
                    // Grants (a new one revokes the old), from the provider or not; ids drawn
                    // from a small set so that some are already taken.
                    _ => Tx::Grant {
                        lease: l.id,
                        token_hash: [rng.gen(); 32],
                        revocation_ids: (0..rng.gen_range(1..3))
                            .map(|_| RevocationId(vec![rng.gen_range(0..40u8); 3]))
                            .collect(),
                        seq,
                        sealed: Vec::new(),
                    },
                };
                out.push(tx(&who, t));
            }
        }
    }
    out
}

fn check_invariants(s: &State, now: u64, seed: u64) {
    assert_eq!(s.total_credits(), u128::from(s.supply()), "seed {seed}: credits not conserved");
    for l in s.leases() {
        match l.status {
            LeaseStatus::Active => {
                assert_eq!(
                    l.escrow,
                    l.cost_between(l.hours_paid, l.hours),
                    "seed {seed}: escrow not exact"
                );
                // Time passing left no active lease behind: none has ended, and every hour
                // completed by `now` is paid.
                assert!(now < l.fill.end_ms, "seed {seed}: an ended lease is still active");
                let completed = ((now - l.fill.start_ms) / HOUR_MS).min(u64::from(l.hours));
                assert_eq!(u64::from(l.hours_paid), completed, "seed {seed}: hours left unpaid");
            }
            _ => assert_eq!(l.escrow, 0, "seed {seed}: ended lease still holds escrow"),
        }
    }
    // Each account's leases, from the state's indexes, are exactly those naming it, by id.
    let mut parties: Vec<_> = s.leases().flat_map(|l| [l.fill.buyer, l.fill.provider]).collect();
    parties.sort();
    parties.dedup();
    for k in parties {
        let indexed: Vec<_> = s.account_leases(&k).map(|l| l.id).collect();
        let scanned: Vec<_> = s
            .leases()
            .filter(|l| l.fill.buyer == k || l.fill.provider == k)
            .map(|l| l.id)
            .collect();
        assert_eq!(indexed, scanned, "seed {seed}: the leases of {k}");
    }
    // Capacity: at every lease start, the active leases of an offer use at most its slots.
    let (_, offers) = s.book.market(&market());
    for o in offers {
        let Order::Offer(of) = &o.order.order else { unreachable!() };
        let mine: Vec<_> = s
            .leases()
            .filter(|l| l.fill.offer == o.order.id && l.status == LeaseStatus::Active)
            .map(|l| (l.fill.start_ms, l.fill.end_ms, l.fill.slots))
            .collect();
        for (t, _, _) in &mine {
            let used: u32 = mine.iter().filter(|(a, b, _)| a <= t && t < b).map(|m| m.2).sum();
            assert!(used <= of.slots, "seed {seed}: offer oversold ({used} of {})", of.slots);
        }
    }
}

fn run(seed: u64) -> (Vec<surplus_ledger::Hash>, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut s = state(rng.gen_range(0..1000), rng.gen_range(0..5000));
    let mut now = T0;
    let mut nonce = 0;
    let mut roots = Vec::new();
    for height in 1..=12 {
        now += rng.gen_range(0..4) * HOUR_MS + rng.gen_range(0..1000);
        let user = block_entries(&mut rng, &s, now, &mut nonce);
        let before = s.clone();
        let a = s.apply_block(height, now, &user, Mode::Propose).unwrap();
        // The proposal re-executes identically in validation.
        let mut v = before.clone();
        let accepted: Vec<Entry> = a
            .entries
            .iter()
            .filter(|e| matches!(e.auth, surplus_ledger::Auth::Signed { .. }))
            .cloned()
            .collect();
        let again = v.apply_block(height, now, &accepted, Mode::Validate).unwrap();
        assert_eq!(again.entries, a.entries, "seed {seed}: validation differs from the proposal");
        assert_eq!(v, s);
        check_invariants(&s, now, seed);
        // The root kept up to date block by block is the root of every item hashed afresh.
        assert_eq!(a.state_root, s.root());
        assert_eq!(s.root(), s.tree_from_scratch().root(), "seed {seed}: incremental root differs");
        roots.push(a.state_root);
    }
    (roots, s.revoked().count())
}

#[test]
fn random_sequences_conserve_credits_and_never_oversell() {
    let mut revoked = 0;
    for seed in 0..150 {
        let (roots, r) = run(seed);
        assert_eq!(roots, run(seed).0, "seed {seed}: the same sequence gave another state root");
        revoked += r;
    }
    // The sequences reach grants that replace others (revoking their ids).
    assert!(revoked > 0, "no sequence revoked a credential");
}

/// The secret key behind a validator of the tests: `key("validator", i)` for some i < 64.
pub(crate) fn validator_secret(k: &surplus_ledger::PublicKey) -> Option<surplus_ledger::SecretKey> {
    (0..64).map(|i| key("validator", i)).find(|s| s.public() == *k)
}

/// Random governance entries for a block: proposals of every action by validators, votes on
/// the open proposals, withdrawals and, rarely, a validator's key rotation (to `key("validator",
/// 32 + n)`). Some are refused (an action the state no longer allows, a second vote): a
/// proposer's block drops them. At most one entry per author, at its account's next sequence.
pub(crate) fn gov_entries(rng: &mut StdRng, s: &State) -> Vec<Entry> {
    use surplus_contracts::Action;
    let mut out = Vec::new();
    let mut used = std::collections::HashSet::new();
    let validators: Vec<_> = s.validators().iter().map(|v| v.key).collect();
    let pick = |rng: &mut StdRng| validators[rng.gen_range(0..validators.len())];
    if rng.gen_bool(0.4) {
        let author = pick(rng);
        let action = match rng.gen_range(0..8) {
            0 => Action::AddValidator {
                key: key("validator", rng.gen_range(4..12)).public(),
                power: rng.gen_range(1..4),
                address: format!("/ip4/127.0.0.1/tcp/{}", 7000 + rng.gen_range(0..100)),
            },
            1 => Action::RemoveValidator { key: pick(rng) },
            2 => Action::SetPower { key: pick(rng), power: rng.gen_range(1..5) },
            3 => Action::SetFees {
                fee_bps: rng.gen_range(0..500),
                penalty_bps: rng.gen_range(0..5000),
            },
            4 => Action::AddRegion {
                region: surplus_market::Region {
                    id: format!("gov-{}", rng.gen_range(0..3)),
                    description: "a region opened by vote".into(),
                },
            },
            7 => Action::SetConsensus {
                params: surplus_contracts::ConsensusParams {
                    batch_interval_ms: rng.gen_range(10..1000),
                    max_block_entries: rng.gen_range(1..5000),
                    max_block_bytes: rng.gen_range(65_536..1_000_000),
                },
            },
            5 => Action::RetireRegion {
                id: s.params.catalogue.regions[rng.gen_range(0..s.params.catalogue.regions.len())]
                    .id
                    .clone(),
            },
            _ => Action::RotateValidator {
                old: pick(rng),
                new: key("validator", 12 + rng.gen_range(0..20)).public(),
            },
        };
        let effective =
            s.height() + 1 + surplus_contracts::governance::ENACTMENT_DELAY + rng.gen_range(0..4);
        if let Some(k) = validator_secret(&author) {
            used.insert(author);
            let seq = s.account(&author).seq;
            out.push(tx(&k, Tx::GovPropose { action, effective, seq }));
        }
    }
    for p in s.proposals() {
        for (voter, _) in &p.voters {
            if used.contains(voter) || !rng.gen_bool(0.5) {
                continue;
            }
            let Some(k) = validator_secret(voter) else { continue };
            used.insert(*voter);
            let seq = s.account(voter).seq;
            if *voter == p.proposer && rng.gen_bool(0.1) {
                out.push(tx(&k, Tx::GovWithdraw { proposal: p.id, seq }));
            } else {
                out.push(tx(&k, Tx::GovVote { proposal: p.id, yes: rng.gen_bool(0.8), seq }));
            }
        }
    }
    if rng.gen_bool(0.05) {
        let author = pick(rng);
        if let (false, Some(k)) = (used.contains(&author), validator_secret(&author)) {
            let seq = s.account(&author).seq;
            let new_key = key("validator", 32 + rng.gen_range(0..32)).public();
            out.push(tx(&k, Tx::RotateKey { new_key, seq }));
        }
    }
    out
}
