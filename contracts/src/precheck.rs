//! Admission: the checks a node makes before it accepts a user entry into its mempool or relays
//! it on gossip, against the last committed state.
//!
//! The block that finally includes the entry runs every rule of the state machine again, so
//! admission only has to be a sound filter: nothing it accepts can break a block, and it refuses
//! what could not execute next (bad signatures, unknown markets, replays, expired orders, bids
//! their author cannot pay, used sequence numbers, transitions of ended leases) so that none of
//! it is relayed or held. The transaction rules are the state machine's own
//! (`State::check_tx`), and refusals are the state machine's [`Refusal`] values.

use surplus_ledger::{Auth, Entry, EntryKind, Hash, PublicKey};
use surplus_market::{FillRule, Order, Rejection, SignedCancel, SignedOrder};

use crate::state::{Refusal, State};
use crate::Tx;

/// Largest payload of a user entry, bytes. A credential grant, the largest, is under 2.2 KiB
/// (16 revocation ids of 128 bytes); orders and cancels are far smaller.
pub const MAX_PAYLOAD: usize = 4 * 1024;

/// How far ahead of the account's next sequence number a transaction may be: enough for a
/// client to queue several transactions before a block, small enough that one author cannot
/// fill a mempool with transactions that can never execute.
pub const MAX_SEQ_AHEAD: u64 = 64;

/// How long after admission an order must stay valid, ms: about what gossip and the next block
/// take. [`State::admit`] refuses an order that expires, or whose window closes or becomes
/// shorter than its minimum lease, within it (`closes_too_soon`): such an order could not
/// reach a block, and peers would find it invalid on arrival.
pub const ADMISSION_HORIZON_MS: u64 = 2_000;

/// How far ahead of a node's clock a probe report's interval may end when the node admits it
/// (`docs/contracts.md` §10; the block's time decides): clocks differ a little.
pub const REPORT_EARLY_MS: u64 = 5_000;

/// What admission learned about an accepted entry; a mempool keeps it beside the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// The entry's id ([`Entry::id`]).
    pub id: Hash,
    /// Its kind.
    pub kind: EntryKind,
    /// When it stops being useful (an order's expiry; a cancel's target order's expiry); `None`
    /// for transactions, which do not expire.
    pub expiry_ms: Option<u64>,
    /// Who signed it.
    pub author: PublicKey,
    /// The order's nonce (orders only): an (author, nonce) pair is used once.
    pub nonce: Option<u64>,
    /// A transaction's sequence number, and whether it is ahead of the account's next (it waits
    /// for the ones before it).
    pub seq: Option<(u64, bool)>,
    /// Size of its canonical encoding, bytes.
    pub bytes: usize,
}

enum Decoded {
    Order(SignedOrder),
    Cancel(SignedCancel),
    Tx(Tx),
    Report(crate::supervision::Report),
}

impl State {
    /// Checks a user entry against this (committed) state at the node's time `now_ms`.
    ///
    /// In order: the kind is one users may submit; the payload size; the payload decodes; the
    /// signature verifies (strict rule, this chain); then per kind — orders: the market's field
    /// rules, the nonce is unused, and a bid's author can pay its smallest fill at its limit;
    /// cancels: the order rests in the book and belongs to the author; transactions: the
    /// sequence number is not already used (nor too far ahead), and the transaction's own rules
    /// hold against this state (the same rules the block's execution applies).
    pub fn precheck(&self, entry: &Entry, now_ms: u64) -> Result<Admitted, Refusal> {
        self.check_entry(entry, now_ms, true, 0)
    }

    /// [`State::precheck`] for a new entry (from a client or a peer): an order must also pass
    /// the market's rules at `now_ms` + [`ADMISSION_HORIZON_MS`], or it is refused as
    /// [`Refusal::ClosesTooSoon`].
    pub fn admit(&self, entry: &Entry, now_ms: u64) -> Result<Admitted, Refusal> {
        self.check_entry(entry, now_ms, true, ADMISSION_HORIZON_MS)
    }

    /// [`State::admit`] for an entry whose signature the caller has just verified (strict
    /// rule, this chain; a batch of submissions checks theirs together): every other check.
    pub fn admit_verified(&self, entry: &Entry, now_ms: u64) -> Result<Admitted, Refusal> {
        self.check_entry(entry, now_ms, false, ADMISSION_HORIZON_MS)
    }

    /// [`State::precheck`] for an entry whose signature was already verified on admission:
    /// only what a new block can change is checked again (nonces, sequence numbers, funds,
    /// the book, leases, expiry).
    pub fn recheck(&self, entry: &Entry, now_ms: u64) -> Result<Admitted, Refusal> {
        self.check_entry(entry, now_ms, false, 0)
    }

    fn check_entry(
        &self,
        entry: &Entry,
        now_ms: u64,
        verify_signature: bool,
        horizon_ms: u64,
    ) -> Result<Admitted, Refusal> {
        let kind = entry.kind;
        if !matches!(
            kind,
            EntryKind::ORDER
                | EntryKind::CANCEL
                | EntryKind::TRANSFER
                | EntryKind::LEASE_TRANSITION
                | EntryKind::MAINTENANCE
                | EntryKind::PROBE_REPORT
                | EntryKind::BOND
                | EntryKind::CREDENTIAL_GRANT
                | EntryKind::GOV_PROPOSE
                | EntryKind::GOV_VOTE
                | EntryKind::GOV_WITHDRAW
                | EntryKind::KEY_ROTATION
        ) {
            return Err(Refusal::NotUserEntry { kind: kind.0, name: kind.name().into() });
        }
        if entry.payload.len() > MAX_PAYLOAD {
            return Err(Refusal::TooLarge { bytes: entry.payload.len(), max: MAX_PAYLOAD });
        }
        let Auth::Signed { author, .. } = entry.auth else {
            return Err(Refusal::Unsigned);
        };
        let market = |r: Rejection| match r {
            Rejection::Malformed(d) => Refusal::Malformed(format!("{} payload: {d}", kind.name())),
            other => Refusal::Market(other),
        };
        let decoded = match kind {
            EntryKind::ORDER => Decoded::Order(SignedOrder::from_entry(entry).map_err(market)?),
            EntryKind::CANCEL => Decoded::Cancel(SignedCancel::from_entry(entry).map_err(market)?),
            EntryKind::PROBE_REPORT => Decoded::Report(
                crate::supervision::Report::decode(&entry.payload)
                    .map_err(|e| Refusal::Malformed(format!("{} payload: {e}", kind.name())))?,
            ),
            _ => Decoded::Tx(
                Tx::decode(kind, &entry.payload)
                    .map_err(|e| Refusal::Malformed(format!("{} payload: {e}", kind.name())))?,
            ),
        };
        if verify_signature && entry.verify_signature(&self.chain_id).is_err() {
            return Err(Refusal::BadSignature);
        }
        if self.rotation(&author).is_some() {
            return Err(Refusal::KeyRotated(self.current_key(&author).to_string()));
        }

        let encoded = entry.encode();
        let mut admitted = Admitted {
            id: surplus_ledger::encoding::tagged_hash(
                surplus_ledger::encoding::domain::ENTRY_ID,
                &encoded,
            ),
            kind,
            expiry_ms: None,
            author,
            nonce: None,
            seq: None,
            bytes: encoded.len(),
        };
        match decoded {
            Decoded::Order(o) => {
                surplus_market::validate(&o.order, &self.params.catalogue, now_ms)
                    .map_err(Refusal::Market)?;
                if horizon_ms > 0 {
                    // Only the time rules can fail later what passes now.
                    let later = now_ms.saturating_add(horizon_ms);
                    surplus_market::validate(&o.order, &self.params.catalogue, later)
                        .map_err(|rejection| Refusal::ClosesTooSoon { horizon_ms, rejection })?;
                }
                let nonce = o.order.nonce();
                if self.book.nonce_used(&author, nonce) || self.book.get(&o.id).is_some() {
                    return Err(Refusal::Market(Rejection::ReplayedNonce { nonce }));
                }
                self.check_bond(&author, &o.order)?;
                if let Order::Bid(b) = &o.order {
                    // The auction spends at most the buyer's balance and counts a bid only for
                    // the slots its buyer could pay at its own limit, at least its fill minimum
                    // (`surplus_market::auction`, budgets from `State::apply_block`): a bid
                    // whose minimum the balance cannot pay can never execute.
                    let min = match b.fill {
                        FillRule::AllOrNone => b.slots,
                        FillRule::AtLeast(m) => m.min(b.slots),
                    };
                    // `validate` checked that slots × hours × limit fits in 64 bits.
                    let needed = surplus_market::cost(min, b.hours, b.limit).unwrap_or(u64::MAX);
                    let balance = self.account(&author).balance;
                    if balance < needed {
                        return Err(Refusal::Unfunded { balance, needed });
                    }
                }
                admitted.expiry_ms = Some(o.order.expiry_ms());
                admitted.nonce = Some(nonce);
            }
            Decoded::Cancel(c) => {
                let Some(resting) = self.book.get(&c.cancel.order) else {
                    return Err(Refusal::Market(Rejection::UnknownOrder(hex::encode(
                        c.cancel.order,
                    ))));
                };
                if resting.order.author != author {
                    return Err(Refusal::Market(Rejection::NotAuthor));
                }
                // Once the order has expired the cancel has nothing left to do.
                admitted.expiry_ms = Some(resting.order.order.expiry_ms());
            }
            Decoded::Report(report) => {
                // The block's rules, against this state: a report that would count nothing,
                // or comes too early or too late, never reaches a block.
                // A report may reach a node whose clock is a little behind the reporter's
                // (the block's time decides in the end): a few seconds early is no fault of
                // the sender's.
                self.check_report(&author, &report, now_ms.saturating_add(REPORT_EARLY_MS))?;
                let closes = self.params.supervision.and_then(|s| {
                    let (_, end) = s.span(report.interval)?;
                    Some(end.saturating_add(u64::from(s.window) * s.interval_ms))
                });
                admitted.expiry_ms = closes;
            }
            Decoded::Tx(tx) => {
                let expected = self.account(&author).seq;
                let got = tx.seq();
                if got < expected {
                    return Err(Refusal::BadSequence { expected, got });
                }
                if got - expected > MAX_SEQ_AHEAD {
                    return Err(Refusal::SeqGap { expected, got });
                }
                self.check_tx(&author, &tx, self.height() + 1)?;
                if let Tx::Notice { end_ms, .. } = tx {
                    if end_ms < now_ms {
                        return Err(Refusal::NoticeRefused(format!(
                            "the notice's end, {end_ms} ms, has passed (now {now_ms} ms)"
                        )));
                    }
                }
                admitted.seq = Some((got, got > expected));
            }
        }
        Ok(admitted)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Allocation, Code, Genesis, Mode, Params};
    use surplus_ledger::testutil::key;
    use surplus_ledger::SecretKey;
    use surplus_market::{Bid, Catalogue, Market, Offer, HOUR_MS};

    const CHAIN: &str = "admission-test";
    const NOW: u64 = 1_700_000_000_000;

    fn buyer() -> SecretKey {
        key("buyer", 0)
    }
    fn provider() -> SecretKey {
        key("provider", 0)
    }
    fn market() -> Market {
        Market::new("vm.4c16g", "eu-west-a")
    }

    fn state() -> State {
        let genesis = Genesis {
            validators: vec![key("validator", 0).public()],
            params: Params {
                catalogue: Catalogue::sample(),
                treasury: key("treasury", 0).public(),
                fee_bps: 0,
                penalty_bps: 0,
                notice_ms: crate::maintenance::DEFAULT_NOTICE_MS,
                supervision: None,
            },
            allocations: vec![Allocation { account: buyer().public(), amount: 10_000 }],
        };
        State::genesis(CHAIN, &genesis, NOW - 1000).unwrap()
    }

    fn bid(slots: u32, hours: u32, limit: u64, fill: FillRule, nonce: u64) -> Order {
        Order::Bid(Bid {
            market: market(),
            slots,
            hours,
            limit,
            earliest_ms: NOW,
            latest_ms: NOW + HOUR_MS,
            fill,
            expiry_ms: NOW + HOUR_MS,
            nonce,
        })
    }

    fn offer(nonce: u64) -> Order {
        Order::Offer(Offer {
            market: market(),
            slots: 10,
            from_ms: NOW,
            until_ms: NOW + 100 * HOUR_MS,
            reserve: 50,
            min_hours: 1,
            expiry_ms: NOW + HOUR_MS,
            nonce,
        })
    }

    fn order(o: Order, k: &SecretKey) -> Entry {
        SignedOrder::sign(CHAIN, o, k).0
    }

    fn tx(t: Tx, k: &SecretKey) -> Entry {
        Entry::signed(CHAIN, t.kind(), t.encode(), k)
    }

    fn code(e: &Entry, s: &State) -> &'static str {
        let r = s.precheck(e, NOW).unwrap_err();
        // Every refusal explains itself.
        assert!(r.explain().len() > 40, "{r}");
        r.code().as_str()
    }

    fn check(e: &Entry, s: &State, now: u64) -> Result<Admitted, Refusal> {
        s.precheck(e, now)
    }

    #[test]
    fn valid_entries_are_admitted_with_their_facts() {
        let s = state();
        let e = order(offer(7), &provider());
        let a = check(&e, &s, NOW).unwrap();
        assert_eq!(a.id, e.id());
        assert_eq!(a.kind, EntryKind::ORDER);
        assert_eq!(a.expiry_ms, Some(NOW + HOUR_MS));
        assert_eq!(a.author, provider().public());
        assert_eq!(a.nonce, Some(7));
        assert_eq!(a.bytes, e.encode().len());

        // 4 slots × 24 h × 100 = 9,600 ≤ 10,000.
        let e = order(bid(4, 24, 100, FillRule::AllOrNone, 1), &buyer());
        assert_eq!(check(&e, &s, NOW).unwrap().nonce, Some(1));

        let t = Tx::Transfer { to: provider().public(), amount: 5, seq: 0 };
        let a = check(&tx(t, &buyer()), &s, NOW).unwrap();
        assert_eq!((a.kind, a.expiry_ms, a.nonce), (EntryKind::TRANSFER, None, None));
        // A transaction queued a little ahead of the account's next sequence number.
        let t = Tx::Transfer { to: provider().public(), amount: 5, seq: MAX_SEQ_AHEAD };
        let a = check(&tx(t, &buyer()), &s, NOW).unwrap();
        assert_eq!((a.kind, a.seq), (EntryKind::TRANSFER, Some((MAX_SEQ_AHEAD, true))));
        // A transition of a lease the chain does not have can never apply: refused now, not
        // accepted and dropped later.
        let t = Tx::Terminate { lease: [1; 32], seq: 0 };
        assert_eq!(code(&tx(t, &buyer()), &s), "unknown_lease");
    }

    #[test]
    fn system_and_unknown_kinds_are_not_user_entries() {
        let s = state();
        for kind in [
            EntryKind::FILL,
            EntryKind::SETTLEMENT,
            EntryKind::LEASE,
            EntryKind::REVOCATION,
            EntryKind::VALIDATORS,
            EntryKind::GENESIS_PARAMS,
            EntryKind::GENESIS_ALLOCATION,
            EntryKind(999),
        ] {
            let e = Entry::signed(CHAIN, kind, vec![1, 2, 3], &buyer());
            assert_eq!(code(&e, &s), "not_user_entry");
        }
    }

    #[test]
    fn size_signature_and_encoding_faults() {
        let s = state();
        let e = Entry::signed(CHAIN, EntryKind::ORDER, vec![0; MAX_PAYLOAD + 1], &buyer());
        assert_eq!(code(&e, &s), "too_large");

        let mut e = order(offer(1), &provider());
        e.auth = Auth::System;
        assert_eq!(code(&e, &s), "unsigned");

        let e = Entry::signed(CHAIN, EntryKind::ORDER, vec![9, 9, 9], &buyer());
        assert_eq!(code(&e, &s), "malformed");
        let e = Entry::signed(CHAIN, EntryKind::CANCEL, vec![1; 31], &buyer());
        assert_eq!(code(&e, &s), "malformed");
        let e = Entry::signed(CHAIN, EntryKind::TRANSFER, vec![1; 5], &buyer());
        assert_eq!(code(&e, &s), "malformed");

        // Signed for another chain; and a flipped payload byte.
        let e = SignedOrder::sign("other-chain", offer(1), &provider()).0;
        assert_eq!(code(&e, &s), "bad_signature");
        let mut e = order(offer(1), &provider());
        let last = e.payload.len() - 1;
        e.payload[last] ^= 1;
        assert_eq!(code(&e, &s), "bad_signature");
    }

    #[test]
    fn order_rules() {
        let s = state();
        let mut o = offer(1);
        if let Order::Offer(x) = &mut o {
            x.market = Market::new("vm.nonexistent", "eu-west-a");
        }
        assert_eq!(code(&order(o, &provider()), &s), "unknown_market");

        let e = order(offer(1), &provider());
        let r = check(&e, &s, NOW + HOUR_MS).unwrap_err();
        assert_eq!(
            r,
            Refusal::Market(Rejection::Expired { expiry_ms: NOW + HOUR_MS, now_ms: NOW + HOUR_MS })
        );
        assert_eq!(r.code(), Code::Expired);

        let e = order(bid(0, 24, 100, FillRule::AllOrNone, 1), &buyer());
        assert_eq!(check(&e, &s, NOW).unwrap_err(), Refusal::Market(Rejection::ZeroSlots));
        // Each order rule has its own code, the reason docs/orders.md names.
        assert_eq!(code(&e, &s), "zero_slots");
        let e = order(bid(2, 24, 100, FillRule::AtLeast(3), 1), &buyer());
        assert_eq!(code(&e, &s), "bad_fill_rule");
        let e = order(bid(1, 0, 100, FillRule::AllOrNone, 1), &buyer());
        assert_eq!(code(&e, &s), "bad_duration");
    }

    #[test]
    fn a_new_order_must_stay_valid_for_the_admission_horizon() {
        let s = state();
        let h = ADMISSION_HORIZON_MS;
        let too_soon = |o: Order, k: &SecretKey, now: u64| {
            let e = order(o, k);
            // Valid now: the precheck (a restart's re-admission) keeps it.
            assert!(s.precheck(&e, now).is_ok());
            let r = s.admit(&e, now).unwrap_err();
            assert_eq!(r.code(), Code::ClosesTooSoon, "{r}");
            assert!(r.code().is_circumstantial());
            assert!(r.explain().contains("2000 ms"), "{}", r.explain());
            r
        };
        // An order that expires within the horizon.
        let r = too_soon(offer(1), &provider(), NOW + HOUR_MS - h + 1);
        assert!(matches!(r, Refusal::ClosesTooSoon { rejection: Rejection::Expired { .. }, .. }));
        // A bid whose window closes 5 ms after now.
        let mut b = bid(1, 1, 100, FillRule::AllOrNone, 2);
        if let Order::Bid(x) = &mut b {
            x.latest_ms = NOW + 5;
        }
        let r = too_soon(b, &buyer(), NOW);
        assert!(matches!(
            r,
            Refusal::ClosesTooSoon { rejection: Rejection::WindowInPast { .. }, .. }
        ));
        // An offer whose window is its minimum lease plus 5 ms.
        let mut o = offer(3);
        if let Order::Offer(x) = &mut o {
            x.until_ms = NOW + HOUR_MS + 5;
        }
        let r = too_soon(o, &provider(), NOW);
        assert!(matches!(
            r,
            Refusal::ClosesTooSoon { rejection: Rejection::WindowTooShort { .. }, .. }
        ));
        // Valid 1 ms past the horizon: admitted.
        let e = order(offer(4), &provider());
        assert!(s.admit(&e, NOW + HOUR_MS - h - 1).is_ok());
        // Cancels and transactions have no horizon.
        let t = Tx::Transfer { to: provider().public(), amount: 5, seq: 0 };
        assert!(s.admit(&tx(t, &buyer()), NOW).is_ok());
    }

    #[test]
    fn bids_must_be_able_to_pay_their_smallest_fill() {
        let s = state();
        // All or none: 5 × 24 × 100 = 12,000 > 10,000.
        let e = order(bid(5, 24, 100, FillRule::AllOrNone, 1), &buyer());
        assert_eq!(
            check(&e, &s, NOW).unwrap_err(),
            Refusal::Unfunded { balance: 10_000, needed: 12_000 }
        );
        assert_eq!(code(&e, &s), "unfunded");
        // The same bid accepting a partial fill of 4 slots can execute: admitted.
        let e = order(bid(5, 24, 100, FillRule::AtLeast(4), 2), &buyer());
        assert!(check(&e, &s, NOW).is_ok());
        // Someone with no balance at all.
        let e = order(bid(1, 1, 1, FillRule::AllOrNone, 1), &key("pauper", 0));
        assert_eq!(code(&e, &s), "unfunded");
    }

    /// A state after one block that committed `entries`.
    fn after(entries: &[Entry]) -> State {
        let mut s = state();
        let applied = s.apply_block(1, NOW, entries, Mode::Propose).unwrap();
        assert!(applied.refused.is_empty(), "{:?}", applied.refused);
        s
    }

    #[test]
    fn replays_and_cancels() {
        let resting = order(offer(3), &provider());
        let s = after(std::slice::from_ref(&resting));
        // The same entry again, and another order with the same nonce.
        assert_eq!(code(&resting, &s), "replayed_nonce");
        // The re-check after a block (no signature work) refuses it the same way.
        assert_eq!(
            s.recheck(&resting, NOW).unwrap_err(),
            Refusal::Market(Rejection::ReplayedNonce { nonce: 3 })
        );
        let mut o = offer(3);
        if let Order::Offer(x) = &mut o {
            x.slots = 9;
        }
        assert_eq!(
            check(&order(o, &provider()), &s, NOW).unwrap_err(),
            Refusal::Market(Rejection::ReplayedNonce { nonce: 3 })
        );

        let (cancel, _) = SignedCancel::sign(CHAIN, resting.id(), &provider());
        let a = check(&cancel, &s, NOW).unwrap();
        assert_eq!((a.kind, a.expiry_ms), (EntryKind::CANCEL, Some(NOW + HOUR_MS)));
        let (cancel, _) = SignedCancel::sign(CHAIN, resting.id(), &buyer());
        assert_eq!(code(&cancel, &s), "not_author");
        let (cancel, _) = SignedCancel::sign(CHAIN, [7; 32], &provider());
        assert_eq!(code(&cancel, &s), "unknown_order");
    }

    #[test]
    fn transaction_sequence_and_funds() {
        let first = tx(Tx::Transfer { to: provider().public(), amount: 10, seq: 0 }, &buyer());
        let s = after(std::slice::from_ref(&first));
        assert_eq!(s.account(&buyer().public()).seq, 1);
        let r = check(&first, &s, NOW).unwrap_err();
        assert_eq!(r, Refusal::BadSequence { expected: 1, got: 0 });
        assert_eq!(r.code().as_str(), "bad_sequence");

        let far = tx(Tx::Terminate { lease: [1; 32], seq: 1 + MAX_SEQ_AHEAD + 1 }, &buyer());
        assert_eq!(code(&far, &s), "seq_gap");

        let t = tx(Tx::Transfer { to: provider().public(), amount: 0, seq: 1 }, &buyer());
        assert_eq!(code(&t, &s), "empty_transfer");
        let t = tx(Tx::Transfer { to: buyer().public(), amount: 1, seq: 1 }, &buyer());
        assert_eq!(code(&t, &s), "empty_transfer");
        let t = tx(Tx::Transfer { to: provider().public(), amount: 1_000_000, seq: 1 }, &buyer());
        assert_eq!(
            check(&t, &s, NOW).unwrap_err(),
            Refusal::InsufficientBalance { balance: 9_990, needed: 1_000_000 }
        );
    }
}
