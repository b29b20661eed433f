//! Supervision (`docs/contracts.md` §10): a quorum of the other validators' down reports makes
//! an interval down and the buyer gets its exact cost back; one liar, a provider about itself,
//! a duplicate or a late report change nothing; a lease below its market's target earns the
//! schedule's credit; the bond backs offers, leases and penalties.

use surplus_contracts::supervision::{Credit, CreditReason, Report, Supervision};
use surplus_contracts::{
    Applied, BlockMaker, Code, Genesis, LeaseStatus, Mode, Refusal, Settlement, State, Tx,
};
use surplus_ledger::testutil::key;
use surplus_ledger::{Entry, EntryKind, Hash, SecretKey};
use surplus_market::HOUR_MS;

use crate::helpers::*;

const S: u64 = 60_000;

fn validator(i: u64) -> SecretKey {
    key("validator", i)
}

/// The sample consortium with supervision on (1-minute intervals, reports for 5 intervals,
/// more than half of the vantage points and at least 2) and terms on `vm.4c16g`: 99.5 %
/// availability, 10 % credit, a bond of 10 units a slot. Validator 0 also has credits, to
/// sell as a provider.
fn supervised(penalty_bps: u16) -> Genesis {
    let mut g = genesis(0, penalty_bps);
    g.params.supervision =
        Some(Supervision { interval_ms: S, window: 5, quorum_bps: 5_000, min_down: 2 });
    let class = g.params.catalogue.classes.iter_mut().find(|c| c.id == "vm.4c16g").unwrap();
    class.attributes.insert("terms.availability_bps".into(), 9_950);
    class.attributes.insert("terms.credit_bps".into(), 1_000);
    class.attributes.insert("terms.bond_per_slot".into(), 10);
    g.allocations
        .push(surplus_contracts::Allocation { account: validator(0).public(), amount: 1_000_000 });
    g
}

fn report(v: &SecretKey, interval: u64, down: &[Hash]) -> Entry {
    let r = Report { interval, down: down.to_vec() };
    Entry::signed(CHAIN, EntryKind::PROBE_REPORT, r.encode(), v)
}

fn refusal(s: &mut State, height: u64, t: u64, e: Entry) -> Refusal {
    let before = s.root();
    let r = match s.apply_block(height, t, &[e], Mode::Validate) {
        Err(surplus_contracts::Error::Refused { refusal, .. }) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(s.root(), before, "a refused block changes nothing");
    r
}

fn credits(a: &Applied) -> Vec<Credit> {
    a.entries
        .iter()
        .filter(|e| e.kind == EntryKind::CREDIT)
        .map(|e| Credit::decode(&e.payload).unwrap())
        .collect()
}

/// `seller` (bond locked) leases buyer 0 two slots for `hours` at 100, at T0.
fn leased(g: &Genesis, seller: &SecretKey, hours: u32) -> (State, Hash) {
    let mut s = State::genesis(CHAIN, g, T0).unwrap();
    s.apply_block(1, T0, &[tx(seller, Tx::Bond { amount: 1_000, seq: 0 })], Mode::Validate)
        .unwrap();
    s.apply_block(
        2,
        T0,
        &[offer(seller, 4, 100, 50, 1, T0), bid(&buyer(0), 2, hours, 100, 1, T0)],
        Mode::Validate,
    )
    .unwrap();
    let lease = s.leases().next().unwrap().id;
    (s, lease)
}

#[test]
fn a_quorum_of_down_reports_credits_the_interval_exactly_and_one_liar_changes_nothing() {
    let (mut s, lease) = leased(&supervised(0), &provider(0), 10);
    let i = T0 / S + 5;
    let t = (i + 1) * S + 1_000;
    let (buyer_before, provider_before) =
        (s.account(&buyer(0).public()).balance, s.account(&provider(0).public()).balance);
    // Too early: the interval has not ended at the block's time.
    let r = refusal(&mut s, 3, (i + 1) * S - 1, report(&validator(0), i, &[lease]));
    assert_eq!(r.code(), Code::ReportRefused);
    // Too early on one clock is in time on another: circumstantial, as a lease ended or a
    // report counted already at a peer ahead of the relayer.
    assert!(r.code().is_circumstantial());
    // A key that is not a validator is no vantage point.
    let r = refusal(&mut s, 3, t, report(&buyer(1), i, &[lease]));
    assert_eq!(r.code(), Code::NotValidator);

    // Two of the four vantage points: half, not more than half.
    let a = s
        .apply_block(
            3,
            t,
            &[report(&validator(0), i, &[lease]), report(&validator(1), i, &[lease])],
            Mode::Validate,
        )
        .unwrap();
    assert!(credits(&a).is_empty());
    let tally = s.tallies().next().unwrap();
    assert_eq!((tally.interval, tally.down.len(), tally.decided), (i, 2, 0));
    // The same key again counts nothing.
    let r = refusal(&mut s, 4, t + 1, report(&validator(1), i, &[lease]));
    assert_eq!(r.code(), Code::ReportRefused);
    // A liar alone says another interval was down: nothing is decided.
    let a =
        s.apply_block(4, t + 1, &[report(&validator(3), i - 1, &[lease])], Mode::Validate).unwrap();
    assert!(credits(&a).is_empty());

    // The third makes it down: one minute of two slots at 100 a slot-hour, ⌊2 × 100 / 60⌋ = 3.
    let a = s.apply_block(5, t + 2, &[report(&validator(2), i, &[lease])], Mode::Validate).unwrap();
    let c = credits(&a);
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].reason, c[0].interval, c[0].due, c[0].from_balance, c[0].from_bond),
        (CreditReason::Down, i, 3, 3, 0)
    );
    let l = s.lease(&lease).unwrap();
    assert_eq!((l.down_ms, l.credited), (S, 3));
    assert_eq!(s.account(&buyer(0).public()).balance, buyer_before + 3);
    assert_eq!(s.account(&provider(0).public()).balance, provider_before - 3);
    // The fourth changes nothing more.
    let a = s.apply_block(6, t + 3, &[report(&validator(3), i, &[lease])], Mode::Validate).unwrap();
    assert!(credits(&a).is_empty());
    assert_eq!(s.lease(&lease).unwrap().credited, 3);
    assert_eq!(s.total_credits(), u128::from(s.supply()));

    // After the window (5 intervals) the interval takes no reports, and its tallies are gone.
    let late = (i + 1 + 5) * S;
    let r = refusal(&mut s, 7, late, report(&validator(0), i, &[lease]));
    assert_eq!(r.code(), Code::ReportRefused);
    s.apply_block(7, late, &[], Mode::Validate).unwrap();
    assert!(s.tallies().all(|t| t.interval != i));
}

#[test]
fn a_provider_cannot_report_its_own_lease_and_its_vantage_point_is_not_counted() {
    // Validator 0 sells: the other three validators are the vantage points.
    let (mut s, lease) = leased(&supervised(0), &validator(0), 10);
    let i = T0 / S + 2;
    let t = (i + 1) * S;
    let r = refusal(&mut s, 3, t, report(&validator(0), i, &[lease]));
    assert_eq!(r.code(), Code::ReportRefused);
    // Two of three is more than half.
    let a = s
        .apply_block(
            3,
            t,
            &[report(&validator(1), i, &[lease]), report(&validator(2), i, &[lease])],
            Mode::Validate,
        )
        .unwrap();
    assert_eq!(credits(&a).len(), 1);
    assert_eq!(s.lease(&lease).unwrap().down_ms, S);
}

#[test]
fn a_lease_below_its_target_earns_the_schedule_credit_at_its_end() {
    // A one-hour lease down one minute of sixty: 98.3 % < 99.5 %.
    let (mut s, lease) = leased(&supervised(0), &provider(0), 1);
    let buyer_before = s.account(&buyer(0).public()).balance;
    let i = T0 / S + 10;
    let t = (i + 1) * S;
    let votes: Vec<Entry> = (0..3).map(|v| report(&validator(v), i, &[lease])).collect();
    s.apply_block(3, t, &votes, Mode::Validate).unwrap();
    let a = s.apply_block(4, T0 + HOUR_MS, &[], Mode::Validate).unwrap();
    let settlement = a.entries.iter().find(|e| e.kind == EntryKind::SETTLEMENT).unwrap();
    let settlement = Settlement::decode(&settlement.payload).unwrap();
    // The hour is paid in full (200); the down minute came back as a credit, and 10 % of 200.
    assert_eq!(settlement.to_provider, 200);
    let c = credits(&a);
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].reason, c[0].due, c[0].from_balance), (CreditReason::BelowTarget, 20, 20));
    assert_eq!(a.ended[0].status, LeaseStatus::Completed);
    assert_eq!(a.ended[0].credited, 3 + 20);
    assert_eq!(s.account(&buyer(0).public()).balance, buyer_before + 3 + 20);
    assert_eq!(s.total_credits(), u128::from(s.supply()));
}

#[test]
fn an_offer_needs_the_bond_which_stays_locked_while_leases_or_offers_remain() {
    let g = supervised(2_000);
    let mut s = State::genesis(CHAIN, &g, T0).unwrap();
    // No bond: the offer of 4 slots needs 40 units.
    let r = refusal(&mut s, 1, T0, offer(&provider(0), 4, 100, 50, 1, T0));
    assert_eq!(r.code(), Code::BondRequired);
    assert_eq!(r, Refusal::BondRequired { bond: 0, needed: 40 });
    // A peer whose state is behind the bond's block refuses an offer its author's node
    // admitted: the relayer did nothing wrong (gossip ignores, does not penalise).
    assert!(r.code().is_circumstantial());
    let r = refusal(&mut s, 1, T0, tx(&provider(0), Tx::Bond { amount: 0, seq: 0 }));
    assert_eq!(r.code(), Code::BondRefused);
    s.apply_block(1, T0, &[tx(&provider(0), Tx::Bond { amount: 40, seq: 0 })], Mode::Validate)
        .unwrap();
    assert_eq!(s.account(&provider(0).public()).bond, 40);
    s.apply_block(2, T0, &[offer(&provider(0), 4, 100, 50, 1, T0)], Mode::Validate).unwrap();
    // With the offer resting the bond is locked.
    let r = refusal(&mut s, 3, T0, tx(&provider(0), Tx::Unbond { amount: 1, seq: 1 }));
    assert_eq!(r.code(), Code::BondLocked);
    assert!(r.code().is_circumstantial());
    s.apply_block(3, T0, &[bid(&buyer(0), 2, 10, 100, 1, T0)], Mode::Validate).unwrap();
    let lease = s.leases().next().unwrap().id;
    // A second offer of 4 slots now needs 40 + 2 × 10 for the lease.
    let r = refusal(&mut s, 4, T0, offer(&provider(0), 4, 100, 50, 2, T0));
    assert_eq!(r, Refusal::BondRequired { bond: 40, needed: 60 });
    // The provider empties its balance, then walks away from the lease: the penalty (20 % of
    // the 2,000 refunded) comes from the bond as far as it goes.
    let balance = s.account(&provider(0).public()).balance;
    let t = T0 + HOUR_MS / 2;
    s.apply_block(
        4,
        t,
        &[tx(&provider(0), Tx::Transfer { to: provider(2).public(), amount: balance, seq: 1 })],
        Mode::Validate,
    )
    .unwrap();
    assert_eq!(s.account(&provider(0).public()).balance, 0);
    let buyer_before = s.account(&buyer(0).public()).balance;
    let a = s
        .apply_block(5, t, &[tx(&provider(0), Tx::Terminate { lease, seq: 2 })], Mode::Validate)
        .unwrap();
    let st = a.entries.iter().find(|e| e.kind == EntryKind::SETTLEMENT).unwrap();
    let st = Settlement::decode(&st.payload).unwrap();
    assert_eq!((st.refund, st.penalty), (2_000, 40), "the bond pays what the balance cannot");
    assert_eq!(s.account(&provider(0).public()).bond, 0);
    assert_eq!(s.account(&buyer(0).public()).balance, buyer_before + 2_000 + 40);
    assert_eq!(s.total_credits(), u128::from(s.supply()));
    // Nothing is left to take back; a peer whose state is behind a bond's block says the same
    // of an honest relayer's unbond, so gossip ignores it rather than penalising.
    let r = refusal(&mut s, 6, t, tx(&provider(0), Tx::Unbond { amount: 1, seq: 3 }));
    assert_eq!(r, Refusal::InsufficientBond { bond: 0, needed: 1 });
    assert!(r.code().is_circumstantial());
    let r = refusal(&mut s, 6, t, tx(&provider(0), Tx::Unbond { amount: 0, seq: 3 }));
    assert_eq!(r.code(), Code::BondRefused);
    assert!(!r.code().is_circumstantial(), "a zero amount is wrong in every state");
}

#[test]
fn a_bond_comes_back_once_the_leases_ended_and_the_offers_are_gone() {
    let (mut s, lease) = leased(&supervised(0), &provider(0), 1);
    let r = refusal(&mut s, 3, T0 + 1, tx(&provider(0), Tx::Unbond { amount: 1_000, seq: 1 }));
    assert_eq!(r.code(), Code::BondLocked);
    // The lease completes and the offer expires (50 h).
    s.apply_block(3, T0 + HOUR_MS, &[], Mode::Validate).unwrap();
    assert!(s.lease(&lease).is_none());
    s.apply_block(4, T0 + 51 * HOUR_MS, &[], Mode::Validate).unwrap();
    let before = s.account(&provider(0).public()).balance;
    s.apply_block(
        5,
        T0 + 51 * HOUR_MS,
        &[tx(&provider(0), Tx::Unbond { amount: 1_000, seq: 1 })],
        Mode::Validate,
    )
    .unwrap();
    let a = s.account(&provider(0).public());
    assert_eq!((a.bond, a.balance), (0, before + 1_000));
}

#[test]
fn the_audit_re_executes_reports_and_credits() {
    let g = supervised(0);
    let (genesis_block, mut maker) = BlockMaker::genesis(CHAIN, &g, T0).unwrap();
    let proposer = validator(0).public();
    let mut blocks = vec![genesis_block];
    let (b, _) =
        maker.next(&[tx(&provider(0), Tx::Bond { amount: 100, seq: 0 })], T0, proposer).unwrap();
    blocks.push(certify(b));
    let (b, _) = maker
        .next(
            &[offer(&provider(0), 4, 100, 50, 1, T0), bid(&buyer(0), 2, 1, 100, 1, T0)],
            T0,
            proposer,
        )
        .unwrap();
    blocks.push(certify(b));
    let lease = maker.state.leases().next().unwrap().id;
    let i = T0 / S + 3;
    let votes: Vec<Entry> = (0..3).map(|v| report(&validator(v), i, &[lease])).collect();
    let (b, _) = maker.next(&votes, (i + 1) * S, proposer).unwrap();
    assert!(b.entries.iter().any(|e| e.kind == EntryKind::CREDIT));
    blocks.push(certify(b));
    let (b, _) = maker.next(&[], T0 + HOUR_MS, proposer).unwrap();
    blocks.push(certify(b));
    let audit = |blocks: Vec<surplus_ledger::Block>| {
        surplus_ledger::verify(
            &mut surplus_ledger::VecSource::new(blocks),
            &Default::default(),
            &mut surplus_contracts::Replay::new(),
            &mut |_| {},
        )
    };
    let report = audit(blocks.clone());
    assert!(report.is_ok(), "{report:?}");
    // A credit the reports do not justify is found.
    let mut forged = blocks.clone();
    let at = forged[3].entries.iter().position(|e| e.kind == EntryKind::CREDIT).unwrap();
    let mut c = Credit::decode(&forged[3].entries[at].payload).unwrap();
    c.due += 1;
    forged[3].entries[at].payload = c.encode();
    let forged = reseal(forged);
    let f = audit(forged).unwrap_err();
    assert_eq!((f.height, f.field.as_str()), (3, "entries"), "{f}");
}

#[test]
fn the_provider_records_a_probe_target_and_nobody_else_can() {
    use surplus_contracts::supervision::ProbeTarget;
    let (mut s, lease) = leased(&supervised(0), &provider(0), 10);
    let target = ProbeTarget::Tcp { address: "127.0.0.1:2222".into() };
    let r = refusal(
        &mut s,
        3,
        T0 + 1,
        tx(&buyer(0), Tx::Probe { lease, target: target.clone(), seq: 0 }),
    );
    assert_eq!(r.code(), Code::NotEntitled);
    s.apply_block(
        3,
        T0 + 1,
        &[tx(&provider(0), Tx::Probe { lease, target: target.clone(), seq: 1 })],
        Mode::Validate,
    )
    .unwrap();
    assert_eq!(s.lease(&lease).unwrap().probe, Some(target));
    // Targets that are not host:port, or not http(s), or with an impossible status, do not
    // decode.
    for bad in [
        ProbeTarget::Tcp { address: "no-port".into() },
        ProbeTarget::Tcp { address: "h:0".into() },
        ProbeTarget::Http { url: "ftp://x".into(), status: 200 },
        ProbeTarget::Http { url: "https://x/".into(), status: 200 },
        ProbeTarget::Http { url: "http://x/".into(), status: 99 },
    ] {
        let e = tx(&provider(0), Tx::Probe { lease, target: bad, seq: 2 });
        let r = refusal(&mut s, 4, T0 + 2, e);
        assert_eq!(r.code(), Code::Malformed);
    }
}

#[test]
fn a_state_with_bonds_tallies_outages_and_probe_targets_restores_from_its_items() {
    use surplus_contracts::supervision::ProbeTarget;
    let (mut s, lease) = leased(&supervised(0), &provider(0), 10);
    let target = ProbeTarget::Http { url: "http://127.0.0.1:8080/healthz".into(), status: 200 };
    s.apply_block(
        3,
        T0 + 1,
        &[tx(&provider(0), Tx::Probe { lease, target, seq: 1 })],
        Mode::Validate,
    )
    .unwrap();
    let i = T0 / S + 5;
    let t = (i + 1) * S + 1_000;
    let down: Vec<Entry> = (0..3).map(|v| report(&validator(v), i, &[lease])).collect();
    s.apply_block(4, t, &down, Mode::Validate).unwrap();
    // One report of a later interval leaves an undecided tally.
    s.apply_block(5, t + S, &[report(&validator(0), i + 1, &[lease])], Mode::Validate).unwrap();
    let l = s.lease(&lease).unwrap();
    assert!(l.down_ms > 0 && l.credited > 0 && l.probe.is_some());
    assert!(s.account(&provider(0).public()).bond > 0);
    // The lease's two slots at 10 units a slot hold 20 of the bond.
    assert_eq!(s.bond_in_use(&provider(0).public()), 20);
    assert_eq!(s.tallies().map(|t| t.decided).collect::<Vec<_>>(), vec![1, 0]);
    // A snapshot of it (every item, in any order) is the same state, root and all.
    let mut items: Vec<_> = s.items().collect();
    items.reverse();
    let back = State::from_items(items).expect("the state's own items");
    assert_eq!(back.root(), s.root());
    assert_eq!(back, s);
}
