//! Governance in the state machine: who may propose and vote, when a proposal passes, expires or
//! is rejected, what its enactment changes at its effective height (the validator set, with the
//! block's `validator-set` entry; fees; the catalogue), and key rotations.

use surplus_contracts::governance::{decode_outcome, Outcome, ENACTMENT_DELAY};
use surplus_contracts::{Action, Applied, Code, ConsensusParams, Mode, Refusal, State, Tx};
use surplus_ledger::testutil::key;
use surplus_ledger::{Entry, EntryKind, PublicKey, SecretKey, ValidatorSet};
use surplus_market::{Market, Region, HOUR_MS};

use crate::helpers::*;

fn v(i: u64) -> SecretKey {
    key("validator", i)
}

trait Blocks {
    /// Applies one block of `user` entries at the next height, one second after the last.
    fn block(&mut self, user: &[Entry]) -> Applied;
}

impl Blocks for State {
    fn block(&mut self, user: &[Entry]) -> Applied {
        let h = self.height() + 1;
        let now = self.now_ms() + 1_000;
        self.apply_block(h, now, user, Mode::Validate).unwrap()
    }
}

/// Applies empty blocks until the state's height is `h`.
fn run_to(s: &mut State, h: u64) -> Vec<Applied> {
    let mut out = Vec::new();
    while s.height() < h {
        out.push(s.block(&[]));
    }
    out
}

fn refusal(s: &State, e: &Entry) -> Refusal {
    let h = s.height() + 1;
    let mut t = s.clone();
    match t.apply_block(h, s.now_ms() + 1_000, std::slice::from_ref(e), Mode::Validate) {
        Err(surplus_contracts::Error::Refused { refusal, .. }) => {
            // Admission refuses it for the same reason (its messages may name the payload).
            assert_eq!(s.precheck(e, s.now_ms()).unwrap_err().code(), refusal.code());
            refusal
        }
        other => panic!("not refused: {other:?}"),
    }
}

fn propose(by: &SecretKey, s: &State, action: Action, effective: u64) -> Entry {
    let seq = s.account(&by.public()).seq;
    tx(by, Tx::GovPropose { action, effective, seq })
}

fn vote(by: &SecretKey, s: &State, proposal: [u8; 32], yes: bool) -> Entry {
    let seq = s.account(&by.public()).seq;
    tx(by, Tx::GovVote { proposal, yes, seq })
}

fn outcomes(applied: &[Applied]) -> Vec<([u8; 32], Outcome)> {
    applied
        .iter()
        .flat_map(|a| &a.entries)
        .filter(|e| e.kind == EntryKind::GOV_OUTCOME)
        .map(|e| decode_outcome(&e.payload).unwrap())
        .collect()
}

fn set_changes(applied: &[Applied]) -> Vec<ValidatorSet> {
    applied
        .iter()
        .flat_map(|a| &a.entries)
        .filter(|e| e.kind == EntryKind::VALIDATOR_SET)
        .map(|e| ValidatorSet::decode_weighted(&e.payload).unwrap())
        .collect()
}

fn add_v4() -> Action {
    Action::AddValidator { key: v(4).public(), power: 2, address: "/ip4/127.0.0.1/tcp/7004".into() }
}

#[test]
fn genesis_validators_have_power_one_and_are_items() {
    let s = state(0, 0);
    let set = s.validator_set();
    assert_eq!(set, ValidatorSet::new((0..4).map(|i| v(i).public()).collect()).unwrap());
    assert_eq!(s.items().filter(|i| i.kind == surplus_contracts::root::Kind::Validator).count(), 4);
}

#[test]
fn a_proposal_passes_with_more_than_two_thirds_and_changes_the_set_at_its_height() {
    let mut s = state(0, 0);
    let p = propose(&v(0), &s, add_v4(), 1 + ENACTMENT_DELAY + 5);
    let id = p.id();
    let effective = 1 + ENACTMENT_DELAY + 5;
    s.block(&[p]);
    let open = s.proposal(&id).unwrap();
    assert_eq!((open.height, open.effective, open.passed), (1, effective, None));
    assert_eq!(open.voters.len(), 4);
    // Two yes votes of four (power 1 each) are not more than two thirds: still open.
    s.block(&[vote(&v(0), &s, id, true), vote(&v(1), &s, id, true)]);
    assert_eq!(s.proposal(&id).unwrap().passed, None);
    // A third passes it.
    s.block(&[vote(&v(2), &s, id, true)]);
    assert_eq!(s.proposal(&id).unwrap().passed, Some(3));
    // Passed: no more votes, no withdrawal.
    assert_eq!(refusal(&s, &vote(&v(3), &s, id, true)), Refusal::ProposalClosed);
    // Nothing changes until the block before its effective height, whose end enacts it.
    let before = run_to(&mut s, effective - 2);
    assert!(outcomes(&before).is_empty() && set_changes(&before).is_empty());
    assert!(!s.is_validator(&v(4).public()));
    let enacting = run_to(&mut s, effective - 1);
    assert_eq!(outcomes(&enacting), vec![(id, Outcome::Enacted)]);
    let new = &set_changes(&enacting)[0];
    assert_eq!(new.validators.len(), 5);
    assert_eq!(new.validators[4], v(4).public());
    assert_eq!(new.powers, vec![1, 1, 1, 1, 2]);
    // The outcome comes before the set, both at the end of the block.
    let kinds: Vec<_> = enacting[0].entries.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EntryKind::GOV_OUTCOME, EntryKind::VALIDATOR_SET]);
    assert_eq!(s.validator_set(), *new);
    assert_eq!(s.validators()[4].address, "/ip4/127.0.0.1/tcp/7004");
    assert!(s.proposal(&id).is_none());
    // The new validator may propose now.
    let p = propose(&v(4), &s, Action::SetFees { fee_bps: 10, penalty_bps: 10 }, 100);
    s.block(&[p]);
}

#[test]
fn a_proposal_short_of_quorum_expires_at_its_deadline_and_never_applies() {
    let mut s = state(0, 0);
    let effective = 1 + ENACTMENT_DELAY + 3;
    let p = propose(&v(0), &s, add_v4(), effective);
    let id = p.id();
    s.block(&[p]);
    s.block(&[vote(&v(0), &s, id, true), vote(&v(1), &s, id, true)]);
    let deadline = effective - ENACTMENT_DELAY;
    assert!(outcomes(&run_to(&mut s, deadline - 1)).is_empty());
    // Its deadline's block is the last it could pass in; at its end it expires.
    let last = run_to(&mut s, deadline);
    assert_eq!(outcomes(&last), vec![(id, Outcome::Expired)]);
    assert!(s.proposal(&id).is_none());
    assert!(set_changes(&run_to(&mut s, effective + 2)).is_empty());
    assert_eq!(s.validators().len(), 4);
    // A late vote names a proposal that is gone.
    assert!(matches!(refusal(&s, &vote(&v(2), &s, id, true)), Refusal::UnknownProposal(_)));
}

#[test]
fn enough_no_votes_reject_a_proposal_at_once() {
    let mut s = state(0, 0);
    let p = propose(&v(0), &s, add_v4(), 50);
    let id = p.id();
    s.block(&[p]);
    // Quorum is 3 of 4: one no leaves 3 possible yes; two make it impossible.
    let a = s.block(&[vote(&v(1), &s, id, false)]);
    assert!(outcomes(&[a]).is_empty());
    let a = s.block(&[vote(&v(2), &s, id, false)]);
    assert_eq!(outcomes(&[a]), vec![(id, Outcome::Rejected)]);
    assert!(s.proposal(&id).is_none());
}

#[test]
fn who_may_propose_vote_and_withdraw() {
    let mut s = state(0, 0);
    // Not a validator.
    let p = propose(&buyer(0), &s, add_v4(), 50);
    assert_eq!(refusal(&s, &p), Refusal::NotValidator);
    assert_eq!(Refusal::NotValidator.code(), Code::NotValidator);
    // Too early an effective height, and too late.
    let p = propose(&v(0), &s, add_v4(), ENACTMENT_DELAY);
    assert!(matches!(refusal(&s, &p), Refusal::BadProposal(m) if m.contains("effective height")));
    let p = propose(&v(0), &s, add_v4(), 2_000_000);
    assert!(matches!(refusal(&s, &p), Refusal::BadProposal(_)));
    // Actions the state does not allow.
    for action in [
        Action::AddValidator { key: v(1).public(), power: 1, address: "/ip4/1.2.3.4/tcp/1".into() },
        Action::RemoveValidator { key: v(7).public() },
        Action::RetireClass { id: "no.such".into() },
        Action::AddRegion {
            region: Region { id: s.params.catalogue.regions[0].id.clone(), description: "".into() },
        },
        Action::RotateValidator { old: v(0).public(), new: v(1).public() },
    ] {
        let p = propose(&v(0), &s, action.clone(), 50);
        assert!(matches!(refusal(&s, &p), Refusal::BadProposal(_)), "{action:?}");
    }
    let p = propose(&v(0), &s, add_v4(), 50);
    let id = p.id();
    s.block(&[p]);
    // Only a voter of the proposal's set votes, once.
    assert_eq!(refusal(&s, &vote(&buyer(0), &s, id, true)), Refusal::NotValidator);
    s.block(&[vote(&v(1), &s, id, true)]);
    assert_eq!(refusal(&s, &vote(&v(1), &s, id, false)), Refusal::AlreadyVoted);
    // Only the proposer withdraws.
    let w = |by: &SecretKey, s: &State| {
        tx(by, Tx::GovWithdraw { proposal: id, seq: s.account(&by.public()).seq })
    };
    assert!(matches!(refusal(&s, &w(&v(1), &s)), Refusal::NotEntitled(_)));
    let a = s.block(&[w(&v(0), &s)]);
    assert!(s.proposal(&id).is_none() && outcomes(&[a]).is_empty());
    assert!(matches!(refusal(&s, &w(&v(0), &s)), Refusal::UnknownProposal(_)));
}

/// Two passed proposals that both remove the last but one validator: the second is void.
#[test]
fn a_passed_proposal_the_state_no_longer_allows_is_void() {
    let mut s = state(0, 0);
    let mut ids = Vec::new();
    for (i, effective) in [(1, 30), (2, 31)] {
        let p = propose(&v(0), &s, Action::RemoveValidator { key: v(i).public() }, effective);
        ids.push(p.id());
        s.block(&[p]);
    }
    let p = propose(&v(0), &s, Action::RemoveValidator { key: v(1).public() }, 31);
    let dup = p.id();
    s.block(&[p]);
    for id in [ids[0], ids[1], dup] {
        s.block(&[vote(&v(0), &s, id, true), vote(&v(1), &s, id, true), vote(&v(2), &s, id, true)]);
    }
    let applied = run_to(&mut s, 31);
    let mut got = outcomes(&applied);
    got.sort();
    let mut want =
        vec![(ids[0], Outcome::Enacted), (ids[1], Outcome::Enacted), (dup, Outcome::Void)];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        s.validators().iter().map(|x| x.key).collect::<Vec<_>>(),
        vec![v(0).public(), v(3).public()]
    );
    // One set change per block that changed it.
    assert_eq!(set_changes(&applied).len(), 2);
}

fn pass(s: &mut State, action: Action) -> u64 {
    let effective = s.height() + 1 + ENACTMENT_DELAY;
    let p = propose(&v(0), s, action, effective);
    let id = p.id();
    // Yes votes of the validators other than the proposer (power 1 each), enough to pass.
    let quorum = s.validator_set().quorum() as usize;
    let votes: Vec<Entry> = s
        .validators()
        .iter()
        .filter(|x| x.key != v(0).public())
        .filter_map(|x| (0..64).map(v).find(|k| k.public() == x.key))
        .take(quorum)
        .map(|k| vote(&k, s, id, true))
        .collect();
    let mut user = vec![p];
    user.extend(votes);
    s.block(&user);
    assert!(s.proposal(&id).unwrap().passed.is_some());
    effective
}

#[test]
fn fees_and_the_catalogue_change_at_the_effective_height() {
    let mut s = state(0, 0);
    let root_before = s.root();
    let effective = pass(&mut s, Action::SetFees { fee_bps: 300, penalty_bps: 4000 });
    run_to(&mut s, effective - 2);
    assert_eq!(s.params.fee_bps, 0);
    run_to(&mut s, effective - 1);
    assert_eq!((s.params.fee_bps, s.params.penalty_bps), (300, 4000));
    assert_ne!(s.root(), root_before);

    // The consensus parameters: none until set, then the block limits every node uses.
    assert_eq!(s.consensus_params(), None);
    let params = ConsensusParams {
        batch_interval_ms: 200,
        max_block_entries: 700,
        max_block_bytes: 1 << 20,
    };
    let effective = pass(&mut s, Action::SetConsensus { params });
    run_to(&mut s, effective - 1);
    assert_eq!(s.consensus_params(), Some(params));
    assert!(s.items().any(|i| i.kind == surplus_contracts::root::Kind::Consensus));
    let bad = ConsensusParams { batch_interval_ms: 5, ..params };
    let p = propose(&v(0), &s, Action::SetConsensus { params: bad }, s.height() + 20);
    assert!(matches!(refusal(&s, &p), Refusal::Malformed(_)), "a 5 ms batch is out of bounds");

    // A new region opens its markets.
    let region = Region { id: "ap-south-a".into(), description: "opened by vote".into() };
    let class = s.params.catalogue.classes[0].id.clone();
    let market = Market::new(&class, "ap-south-a");
    let t = s.now_ms() + 1_000;
    let early = offer_in(&provider(0), &market, 5, t);
    assert!(s.precheck(&early, t).is_err());
    let effective = pass(&mut s, Action::AddRegion { region });
    run_to(&mut s, effective - 1);
    assert!(s.params.catalogue.has_market(&market));
    let t = s.now_ms() + 1_000;
    let o = offer_in(&provider(0), &market, 6, t);
    let b = bid_in(&buyer(0), &market, 7, t);
    let a = s.block(&[o, b]);
    assert!(a.entries.iter().any(|e| e.kind == EntryKind::FILL), "the new market trades");

    // Retiring the region takes its resting orders out of the book and refuses new ones; the
    // running lease continues to its end but cannot be renewed.
    let t = s.now_ms() + 1_000;
    s.block(&[offer_in(&provider(1), &market, 8, t)]);
    assert!(s.book.orders().any(|r| r.order.order.market() == &market));
    let lease = s.leases().find(|l| l.fill.market == market).unwrap().id;
    let effective = pass(&mut s, Action::RetireRegion { id: "ap-south-a".into() });
    run_to(&mut s, effective - 1);
    assert!(!s.book.orders().any(|r| r.order.order.market() == &market));
    assert!(s.lease(&lease).is_some());
    let t = s.now_ms() + 1_000;
    let late = offer_in(&provider(0), &market, 9, t);
    assert!(s.precheck(&late, t).is_err());
    let renew =
        tx(&buyer(0), Tx::Renew { lease, hours: 1, seq: s.account(&buyer(0).public()).seq });
    assert!(
        matches!(refusal(&s, &renew), Refusal::RenewalRefused(m) if m.contains("left the catalogue"))
    );
    // The lease runs out and completes.
    let end = s.lease(&lease).unwrap().fill.end_ms;
    let h = s.height() + 1;
    s.apply_block(h, end, &[], Mode::Validate).unwrap();
    assert!(s.lease(&lease).is_none());
}

fn offer_in(p: &SecretKey, m: &Market, nonce: u64, now: u64) -> Entry {
    let o = surplus_market::Order::Offer(surplus_market::Offer {
        market: m.clone(),
        slots: 2,
        reserve: 10,
        expiry_ms: now + 48 * HOUR_MS,
        nonce,
        from_ms: now - 1,
        until_ms: now + 48 * HOUR_MS,
        min_hours: 1,
    });
    surplus_market::SignedOrder::sign(CHAIN, o, p).0
}

fn bid_in(b: &SecretKey, m: &Market, nonce: u64, now: u64) -> Entry {
    let o = surplus_market::Order::Bid(surplus_market::Bid {
        market: m.clone(),
        slots: 1,
        limit: 20,
        expiry_ms: now + HOUR_MS,
        nonce,
        hours: 2,
        earliest_ms: now - 1,
        latest_ms: now + HOUR_MS,
        fill: surplus_market::FillRule::AllOrNone,
    });
    surplus_market::SignedOrder::sign(CHAIN, o, b).0
}

#[test]
fn a_rotation_moves_credits_and_leases_payments_and_retires_the_old_key() {
    let (mut s, lease) = one_lease();
    let old = provider(1);
    let new = key("provider-new", 1);
    let balance = s.account(&old.public()).balance;
    let r = tx(&old, Tx::RotateKey { new_key: new.public(), seq: s.account(&old.public()).seq });
    let a = s.block(&[r]);
    assert!(set_changes(&[a]).is_empty(), "not a validator: the set is unchanged");
    assert_eq!(s.account(&old.public()).balance, 0);
    assert_eq!(s.account(&new.public()).balance, balance);
    assert_eq!(s.rotation(&old.public()).unwrap().new, new.public());
    assert_eq!(s.current_key(&old.public()), new.public());
    // The old key's resting offer left the book.
    assert!(!s.book.orders().any(|r| r.order.author == old.public()));
    // The old key signs nothing more.
    let t = tx(
        &old,
        Tx::Transfer { to: buyer(0).public(), amount: 1, seq: s.account(&old.public()).seq },
    );
    assert!(matches!(refusal(&s, &t), Refusal::KeyRotated(k) if k == new.public().to_string()));
    // Credits sent to the old key reach the new one.
    let seq = s.account(&buyer(0).public()).seq;
    s.block(&[tx(&buyer(0), Tx::Transfer { to: old.public(), amount: 7, seq })]);
    assert_eq!(s.account(&old.public()).balance, 0);
    assert_eq!(s.account(&new.public()).balance, balance + 7);
    // The lease's hours are paid to the new key, which also speaks for the lease.
    let h = s.height() + 1;
    s.apply_block(h, lease.fill.start_ms + 2 * HOUR_MS, &[], Mode::Validate).unwrap();
    assert!(s.account(&new.public()).balance > balance + 7);
    assert_eq!(s.account(&old.public()).balance, 0);
    let seq = s.account(&new.public()).seq;
    let end = tx(&new, Tx::Terminate { lease: lease.id, seq });
    s.block(&[end]);
    assert!(s.lease(&lease.id).is_none());
    // A key that has signed transactions of its own cannot be rotated to.
    let r = tx(
        &buyer(0),
        Tx::RotateKey { new_key: new.public(), seq: s.account(&buyer(0).public()).seq },
    );
    assert!(matches!(refusal(&s, &r), Refusal::RotationRefused(_)));
}

#[test]
fn a_validator_rotating_its_key_changes_the_set_from_the_next_block() {
    let mut s = state(0, 0);
    let r = tx(&v(2), Tx::RotateKey { new_key: v(20).public(), seq: 0 });
    let a = s.block(&[r]);
    let new = &set_changes(&[a])[0];
    assert_eq!(new.validators[2], v(20).public());
    assert!(!s.is_validator(&v(2).public()) && s.is_validator(&v(20).public()));
    // A lost key is replaced by a proposal.
    let effective =
        pass(&mut s, Action::RotateValidator { old: v(3).public(), new: v(30).public() });
    let applied = run_to(&mut s, effective - 1);
    assert_eq!(set_changes(&applied)[0].validators[3], v(30).public());
    assert_eq!(s.current_key(&v(3).public()), v(30).public());
    let p = propose(&v(3), &s, add_v4(), s.height() + 20);
    assert!(matches!(refusal(&s, &p), Refusal::KeyRotated(_)));
}

#[test]
fn a_proposal_round_trips_through_its_encoding() {
    let t = Tx::GovPropose { action: add_v4(), effective: 42, seq: 3 };
    assert_eq!(Tx::decode(t.kind(), &t.encode()).unwrap(), t);
    // A bad action type, a bad vote byte and a bad address are malformed.
    let mut bad = t.encode();
    bad[16] = 99;
    assert!(Tx::decode(EntryKind::GOV_PROPOSE, &bad).is_err());
    let vote = Tx::GovVote { proposal: [1; 32], yes: true, seq: 0 }.encode();
    let mut bad = vote.clone();
    bad[32] = 2;
    assert!(Tx::decode(EntryKind::GOV_VOTE, &bad).is_err());
    let t = Tx::GovPropose {
        action: Action::AddValidator {
            key: PublicKey([1; 32]),
            power: 1,
            address: "no slash".into(),
        },
        effective: 42,
        seq: 3,
    };
    assert!(Tx::decode(t.kind(), &t.encode()).is_err());
    let t = Tx::GovPropose {
        action: Action::AddValidator {
            key: PublicKey([1; 32]),
            power: 0,
            address: "/ip4/1.1.1.1".into(),
        },
        effective: 42,
        seq: 3,
    };
    assert!(Tx::decode(t.kind(), &t.encode()).is_err());
}
