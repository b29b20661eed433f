//! Maintenance windows, notices and moves (`docs/contracts.md` §9): a notice given in time ends
//! the lease at its time with the exact refund and no penalty; a late one costs the penalty;
//! what the rules refuse changes nothing.

use surplus_contracts::maintenance::Window;
use surplus_contracts::{
    Code, LeaseStatus, Mode, Refusal, Settlement, SettlementReason, State, Tx,
};
use surplus_ledger::EntryKind;
use surplus_market::{Market, HOUR_MS};

use crate::helpers::*;

/// Provider 0 leases buyer 0 two slots for 10 hours at 100 (fee 5 %, penalty 20 %), made at T0.
fn leased() -> (State, surplus_ledger::Hash) {
    let mut s = state(500, 2_000);
    s.apply_block(
        1,
        T0,
        &[offer(&provider(0), 4, 100, 50, 1, T0), bid(&buyer(0), 2, 10, 100, 1, T0)],
        Mode::Validate,
    )
    .unwrap();
    let lease = s.leases().next().unwrap().id;
    (s, lease)
}

fn refusal(s: &mut State, height: u64, t: u64, e: surplus_ledger::Entry) -> Refusal {
    let before = s.root();
    let r = match s.apply_block(height, t, &[e], Mode::Validate) {
        Err(surplus_contracts::Error::Refused { refusal, .. }) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(s.root(), before, "a refused block changes nothing");
    r
}

fn settlement(a: &surplus_contracts::Applied) -> Settlement {
    let e = a.entries.iter().find(|e| e.kind == EntryKind::SETTLEMENT).expect("a settlement");
    Settlement::decode(&e.payload).unwrap()
}

#[test]
fn a_notice_in_time_ends_the_lease_at_its_time_with_the_exact_refund_and_no_penalty() {
    let (mut s, lease) = leased();
    let notice_ms = s.params.notice_ms;
    assert_eq!(notice_ms, 24 * HOUR_MS, "the default notice period");
    // A lease of 10 hours cannot get 24 hours' notice: give the window at 3.5 h a chain whose
    // period is shorter.
    let mut s2 = {
        let mut g = genesis(500, 2_000);
        g.params.notice_ms = HOUR_MS;
        State::genesis(CHAIN, &g, T0).unwrap()
    };
    s2.apply_block(
        1,
        T0,
        &[offer(&provider(0), 4, 100, 50, 1, T0), bid(&buyer(0), 2, 10, 100, 1, T0)],
        Mode::Validate,
    )
    .unwrap();
    assert_eq!(s2.leases().next().unwrap().id, lease, "the same lease on both chains");
    let end = T0 + 3 * HOUR_MS + HOUR_MS / 2;
    let t1 = T0 + HOUR_MS / 2;
    s2.apply_block(
        2,
        t1,
        &[tx(&provider(0), Tx::Notice { lease, end_ms: end, seq: 0 })],
        Mode::Validate,
    )
    .unwrap();
    let n = s2.lease(&lease).unwrap().notice.unwrap();
    assert_eq!((n.end_ms, n.given_ms, n.in_time), (end, t1, true));
    // The buyer cannot renew past the notice.
    let r = refusal(&mut s2, 3, t1 + 1, tx(&buyer(0), Tx::Renew { lease, hours: 1, seq: 0 }));
    assert_eq!(r.code(), Code::RenewalRefused);
    let provider_before = s2.account(&provider(0).public()).balance;
    let buyer_before = s2.account(&buyer(0).public()).balance;
    // A block after the notice's end: hours 1 to 3 are paid, the rest refunded.
    let a = s2.apply_block(3, end + 10 * 60_000, &[], Mode::Validate).unwrap();
    assert!(s2.lease(&lease).is_none(), "it left the live state");
    let l = a.ended.iter().find(|l| l.id == lease).unwrap();
    assert_eq!(
        (l.status, l.fill.end_ms, l.hours_paid, l.escrow),
        (LeaseStatus::EndedByNotice, end, 3, 0)
    );
    let st = settlement(&a);
    assert_eq!(st.reason, SettlementReason::Notice);
    // Hours 0..3 at 2 slots × 100: 600, of which hour 0 was paid... in block 2 (30 minutes
    // in, nothing): all 600 now, 5 % fee.
    assert_eq!((st.hours_paid, st.to_provider + st.fee, st.fee), (3, 600, 30));
    assert_eq!((st.refund, st.penalty), (2 * 7 * 100, 0));
    assert_eq!(s2.account(&provider(0).public()).balance, provider_before + 570);
    assert_eq!(s2.account(&buyer(0).public()).balance, buyer_before + 1_400);
    assert_eq!(s2.total_credits(), u128::from(s2.supply()));
    // On the default chain the same notice is late: the provider pays 20 % of the refund.
    s.apply_block(
        2,
        t1,
        &[tx(&provider(0), Tx::Notice { lease, end_ms: end, seq: 0 })],
        Mode::Validate,
    )
    .unwrap();
    assert!(!s.lease(&lease).unwrap().notice.unwrap().in_time);
    let a = s.apply_block(3, end, &[], Mode::Validate).unwrap();
    let st = settlement(&a);
    assert_eq!((st.reason, st.refund, st.penalty), (SettlementReason::Notice, 1_400, 280));
}

#[test]
fn notices_the_rules_do_not_allow_are_refused() {
    let (mut s, lease) = leased();
    let t = T0 + HOUR_MS;
    let notice = |end_ms, seq| Tx::Notice { lease, end_ms, seq };
    // By the buyer.
    let r = refusal(&mut s, 2, t, tx(&buyer(0), notice(t + HOUR_MS, 0)));
    assert_eq!(r.code(), Code::NotEntitled);
    // At or after the lease's own end.
    let r = refusal(&mut s, 2, t, tx(&provider(0), notice(T0 + 10 * HOUR_MS, 0)));
    assert_eq!(r.code(), Code::NoticeRefused);
    // Before the block's time.
    let r = refusal(&mut s, 2, t, tx(&provider(0), notice(t - 1, 0)));
    assert_eq!(r.code(), Code::NoticeRefused);
    // Another provider's.
    let r = refusal(&mut s, 2, t, tx(&provider(1), notice(t + HOUR_MS, 0)));
    assert_eq!(r.code(), Code::NotEntitled);
    // One notice, then only an earlier one.
    s.apply_block(2, t, &[tx(&provider(0), notice(t + 2 * HOUR_MS, 0))], Mode::Validate).unwrap();
    let r = refusal(&mut s, 3, t + 1, tx(&provider(0), notice(t + 3 * HOUR_MS, 1)));
    assert_eq!(r.code(), Code::NoticeRefused);
    s.apply_block(3, t + 1, &[tx(&provider(0), notice(t + HOUR_MS, 1))], Mode::Validate).unwrap();
    assert_eq!(s.lease(&lease).unwrap().notice.unwrap().end_ms, t + HOUR_MS);
    // Admission says the same as the block.
    let e = tx(&buyer(0), notice(t + HOUR_MS / 2, 0));
    assert_eq!(s.precheck(&e, t + 2).unwrap_err().code(), Code::NotEntitled);
}

#[test]
fn windows_open_replace_close_and_expire_as_state_items() {
    let (mut s, lease) = leased();
    let p = provider(0);
    let window = |pool: &str, start_ms, until_ms, seq| Tx::Maintenance {
        pool: pool.into(),
        market: market(),
        start_ms,
        until_ms,
        reason: "kernel update".into(),
        seq,
    };
    let t = T0 + HOUR_MS;
    s.apply_block(2, t, &[tx(&p, window("pve-a", t + HOUR_MS, 0, 0))], Mode::Validate).unwrap();
    let w: Vec<&Window> = s.windows_of(&p.public()).collect();
    assert_eq!(w.len(), 1);
    assert_eq!(
        (w[0].pool.as_str(), w[0].start_ms, w[0].until_ms, w[0].height),
        ("pve-a", t + HOUR_MS, 0, 2)
    );
    // The items rebuild the same state.
    let back = State::from_items(s.items()).unwrap();
    assert_eq!(back.root(), s.root());
    assert_eq!(back.maintenance().count(), 1);
    // A second window for the same pool replaces the first; another pool adds one.
    s.apply_block(
        3,
        t + 1,
        &[
            tx(&p, window("pve-a", t + 2 * HOUR_MS, t + 3 * HOUR_MS, 1)),
            tx(&p, window("pve-b", t + 2 * HOUR_MS, 0, 2)),
        ],
        Mode::Validate,
    )
    .unwrap();
    assert_eq!(s.windows_of(&p.public()).count(), 2);
    assert_eq!(s.windows_of(&provider(1).public()).count(), 0);
    // A move names a pool; only the lease's provider records one.
    s.apply_block(
        4,
        t + 2,
        &[tx(&p, Tx::Move { lease, pool: "pve-b".into(), seq: 3 })],
        Mode::Validate,
    )
    .unwrap();
    let r = refusal(&mut s, 5, t + 3, tx(&buyer(0), Tx::Move { lease, pool: "x".into(), seq: 0 }));
    assert_eq!(r.code(), Code::NotEntitled);
    // Refused: a bad pool name, an unknown market, an inverted window, closing what is not
    // open.
    let r = refusal(&mut s, 5, t + 3, tx(&p, window("bad name", t, 0, 4)));
    assert_eq!(r.code(), Code::MaintenanceRefused);
    let mut unknown = window("pve-c", t, 0, 4);
    if let Tx::Maintenance { market, .. } = &mut unknown {
        *market = Market::new("vm.nope", "eu-west-a");
    }
    assert_eq!(refusal(&mut s, 5, t + 3, tx(&p, unknown)).code(), Code::MaintenanceRefused);
    let r = refusal(&mut s, 5, t + 3, tx(&p, window("pve-c", t + 5, t + 5, 4)));
    assert_eq!(r.code(), Code::MaintenanceRefused);
    let done = |pool: &str, seq| Tx::MaintenanceDone { pool: pool.into(), seq };
    let r = refusal(&mut s, 5, t + 3, tx(&provider(1), done("pve-a", 0)));
    assert_eq!(r.code(), Code::MaintenanceRefused);
    // Done closes pve-b; pve-a closes by itself at its end.
    s.apply_block(5, t + 3, &[tx(&p, done("pve-b", 4))], Mode::Validate).unwrap();
    let pools: Vec<String> = s.windows_of(&p.public()).map(|w| w.pool.clone()).collect();
    assert_eq!(pools, vec!["pve-a".to_string()]);
    s.apply_block(6, t + 3 * HOUR_MS, &[], Mode::Validate).unwrap();
    assert_eq!(s.maintenance().count(), 0);
    let back = State::from_items(s.items()).unwrap();
    assert_eq!(back.root(), s.root());
}
