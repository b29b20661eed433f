//! Admission: the checks a node makes before it accepts a user entry into its mempool or relays
//! it on gossip.
//!
//! The checks run against the last committed [`State`]; the block that finally includes the
//! entry re-runs every rule of the state machine, so admission only has to be a sound filter:
//! nothing it accepts can break a block, and it refuses what could never execute (bad
//! signatures, unknown markets, replays, expired orders, bids their author cannot pay, stale
//! sequence numbers) so that none of it is relayed or held.

use surplus_contracts::{State, Tx};
use surplus_ledger::{Auth, Entry, EntryKind, Hash, PublicKey};
use surplus_market::{FillRule, Order, Rejection, SignedCancel, SignedOrder};

/// Largest payload of a user entry, bytes. A credential grant, the largest, is under 2.2 KiB
/// (16 revocation ids of 128 bytes); orders and cancels are far smaller.
pub const MAX_PAYLOAD: usize = 4 * 1024;

/// How far ahead of the account's next sequence number a transaction may be: enough for a
/// client to queue several transactions before a block, small enough that one author cannot
/// fill the mempool with transactions that can never execute.
pub const MAX_SEQ_AHEAD: u64 = 64;

/// What admission learned about an accepted entry; the mempool keeps it beside the entry.
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
    /// Size of its canonical encoding, bytes.
    pub bytes: usize,
}

/// Why an entry was refused. [`Refused::code`] is a stable machine code; the message says what
/// to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A kind users may not submit (fills, settlements, genesis records and unknown kinds).
    #[error(
        "entry kind {kind} ({name}) cannot be submitted by a user: send an order, a cancel, a \
         transfer, a lease transition or a credential grant"
    )]
    NotUserEntry {
        /// The kind found.
        kind: u16,
        /// Its name.
        name: &'static str,
    },
    /// The payload is larger than any valid user entry.
    #[error("the payload is {bytes} bytes, more than the {max} a user entry may carry")]
    TooLarge {
        /// Payload size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The entry is not signed.
    #[error("the entry is not signed: user entries must be signed by their author's key")]
    Unsigned,
    /// The payload does not decode as its kind.
    #[error("malformed {kind} payload: {detail}; re-encode it with a current client")]
    Malformed {
        /// The kind's name.
        kind: &'static str,
        /// What the decoder found.
        detail: String,
    },
    /// The signature does not verify (strict rule) for this chain.
    #[error(
        "bad signature: {0}; sign the entry with the author's key for this chain id \
         (a signature for another chain does not verify here)"
    )]
    BadSignature(String),
    /// The order names a market that is not in the catalogue.
    #[error("unknown market {0}: choose a class and region from the consortium's catalogue")]
    UnknownMarket(String),
    /// The order expired before it arrived.
    #[error("the order expired at {expiry_ms} (now {now_ms}): send it again with a later expiry")]
    Expired {
        /// Its expiry, ms since the epoch.
        expiry_ms: u64,
        /// The node's time, ms since the epoch.
        now_ms: u64,
    },
    /// The order breaks another field rule of the market.
    #[error("invalid order: {0}")]
    InvalidOrder(Rejection),
    /// The (author, nonce) pair was already used by an order the book remembers.
    #[error("nonce {nonce} was already used by this author: sign the order with a fresh nonce")]
    Replay {
        /// The nonce.
        nonce: u64,
    },
    /// The author's balance cannot pay for the smallest fill the bid allows at its limit.
    #[error(
        "the bid needs {needed} units to fill its minimum at its limit price, the balance is \
         {balance}: fund the account, or bid for fewer slots, hours or a lower limit"
    )]
    Unfunded {
        /// The author's balance, units.
        balance: u64,
        /// What the smallest fill costs at the bid's limit, units.
        needed: u64,
    },
    /// A cancel of an order the book does not hold.
    #[error(
        "no resting order {0} to cancel: it was never committed, or it was filled, expired or \
         cancelled already"
    )]
    UnknownOrder(String),
    /// A cancel by someone other than the order's author.
    #[error(
        "only the order's author may cancel it: sign the cancel with the key that signed the order"
    )]
    NotAuthor,
    /// A transaction whose sequence number the account has already used (a replay).
    #[error(
        "sequence number {got} was already used; the account's next is {expected}: sign the \
         transaction again with seq {expected}"
    )]
    StaleSeq {
        /// The account's next sequence number.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// A transaction too far ahead of the account's next sequence number.
    #[error(
        "sequence number {got} is more than {MAX_SEQ_AHEAD} ahead of the account's next, \
         {expected}: send the transactions before it first"
    )]
    SeqGap {
        /// The account's next sequence number.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// A transaction the state machine would refuse whatever comes before it.
    #[error("invalid transaction: {0}")]
    InvalidTx(String),
}

impl Refused {
    /// A stable machine code for APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Refused::NotUserEntry { .. } => "not_user_entry",
            Refused::TooLarge { .. } => "too_large",
            Refused::Unsigned => "unsigned",
            Refused::Malformed { .. } => "malformed",
            Refused::BadSignature(_) => "bad_signature",
            Refused::UnknownMarket(_) => "unknown_market",
            Refused::Expired { .. } => "expired",
            Refused::InvalidOrder(_) => "invalid_order",
            Refused::Replay { .. } => "replay",
            Refused::Unfunded { .. } => "unfunded",
            Refused::UnknownOrder(_) => "unknown_order",
            Refused::NotAuthor => "not_author",
            Refused::StaleSeq { .. } => "stale_seq",
            Refused::SeqGap { .. } => "seq_gap",
            Refused::InvalidTx(_) => "invalid_tx",
        }
    }
}

/// Checks a user entry against the committed `state` at the node's time `now_ms`.
///
/// In order: the kind is one users may submit; the payload size; the payload decodes; the
/// signature verifies (strict rule, this chain); then per kind — orders: the market's field
/// rules, the nonce is unused, and a bid's author can pay its smallest fill at its limit;
/// cancels: the order rests in the book and belongs to the author; transactions: the sequence
/// number is not already used (nor too far ahead), and a transfer moves something its author has.
pub fn check(entry: &Entry, state: &State, now_ms: u64) -> Result<Admitted, Refused> {
    check_with(entry, state, now_ms, true)
}

/// [`check`] for an entry whose signature was already verified on admission: only what a new
/// block can change is checked again (nonces, sequence numbers, funds, the book, expiry).
pub fn recheck(entry: &Entry, state: &State, now_ms: u64) -> Result<Admitted, Refused> {
    check_with(entry, state, now_ms, false)
}

fn check_with(
    entry: &Entry,
    state: &State,
    now_ms: u64,
    verify_signature: bool,
) -> Result<Admitted, Refused> {
    let kind = entry.kind;
    if !matches!(
        kind,
        EntryKind::ORDER
            | EntryKind::CANCEL
            | EntryKind::TRANSFER
            | EntryKind::LEASE_TRANSITION
            | EntryKind::CREDENTIAL_GRANT
    ) {
        return Err(Refused::NotUserEntry { kind: kind.0, name: kind.name() });
    }
    if entry.payload.len() > MAX_PAYLOAD {
        return Err(Refused::TooLarge { bytes: entry.payload.len(), max: MAX_PAYLOAD });
    }
    let Auth::Signed { author, .. } = entry.auth else {
        return Err(Refused::Unsigned);
    };
    let malformed = |detail: String| Refused::Malformed { kind: kind.name(), detail };
    let decoded = match kind {
        EntryKind::ORDER => {
            Decoded::Order(SignedOrder::from_entry(entry).map_err(|r| match r {
                Rejection::Malformed(d) => malformed(d),
                other => malformed(other.to_string()),
            })?)
        }
        EntryKind::CANCEL => {
            Decoded::Cancel(SignedCancel::from_entry(entry).map_err(|r| match r {
                Rejection::Malformed(d) => malformed(d),
                other => malformed(other.to_string()),
            })?)
        }
        _ => Decoded::Tx(Tx::decode(kind, &entry.payload).map_err(|e| malformed(e.to_string()))?),
    };
    if verify_signature {
        entry
            .verify_signature(&state.chain_id)
            .map_err(|e| Refused::BadSignature(e.to_string()))?;
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
        bytes: encoded.len(),
    };
    match decoded {
        Decoded::Order(o) => {
            surplus_market::validate(&o.order, &state.params.catalogue, now_ms).map_err(
                |r| match r {
                    Rejection::UnknownMarket(m) => Refused::UnknownMarket(m),
                    Rejection::Expired { expiry_ms, now_ms } => {
                        Refused::Expired { expiry_ms, now_ms }
                    }
                    other => Refused::InvalidOrder(other),
                },
            )?;
            let nonce = o.order.nonce();
            if state.book.nonce_used(&author, nonce) || state.book.get(&o.id).is_some() {
                return Err(Refused::Replay { nonce });
            }
            if let Order::Bid(b) = &o.order {
                // The auction spends at most the buyer's balance and counts a bid only for the
                // slots its buyer could pay at its own limit, at least its fill minimum
                // (`surplus_market::auction`, budgets from `State::apply_block`): a bid whose
                // minimum the balance cannot pay can never execute.
                let min = match b.fill {
                    FillRule::AllOrNone => b.slots,
                    FillRule::AtLeast(m) => m.min(b.slots),
                };
                // `validate` checked that slots × hours × limit fits in 64 bits.
                let needed = surplus_market::cost(min, b.hours, b.limit).unwrap_or(u64::MAX);
                let balance = state.account(&author).balance;
                if balance < needed {
                    return Err(Refused::Unfunded { balance, needed });
                }
            }
            admitted.expiry_ms = Some(o.order.expiry_ms());
            admitted.nonce = Some(nonce);
        }
        Decoded::Cancel(c) => {
            let Some(resting) = state.book.get(&c.cancel.order) else {
                return Err(Refused::UnknownOrder(hex::encode(c.cancel.order)));
            };
            if resting.order.author != author {
                return Err(Refused::NotAuthor);
            }
            // Once the order has expired the cancel has nothing left to do.
            admitted.expiry_ms = Some(resting.order.order.expiry_ms());
        }
        Decoded::Tx(tx) => {
            let expected = state.account(&author).seq;
            let got = tx.seq();
            if got < expected {
                return Err(Refused::StaleSeq { expected, got });
            }
            if got - expected > MAX_SEQ_AHEAD {
                return Err(Refused::SeqGap { expected, got });
            }
            if let Tx::Transfer { to, amount, .. } = tx {
                // The same rules as the state machine's transfer, against the committed balance.
                if amount == 0 || to == author {
                    return Err(Refused::InvalidTx(
                        "a transfer must move at least one unit to another account".into(),
                    ));
                }
                let balance = state.account(&author).balance;
                if balance < amount {
                    return Err(Refused::Unfunded { balance, needed: amount });
                }
            }
        }
    }
    Ok(admitted)
}

enum Decoded {
    Order(SignedOrder),
    Cancel(SignedCancel),
    Tx(Tx),
}

#[cfg(test)]
mod tests {
    use super::*;
    use surplus_contracts::{Allocation, Genesis, Mode, Params};
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
        let r = check(e, s, NOW).unwrap_err();
        // Every refusal explains itself.
        assert!(r.to_string().len() > 20, "{r}");
        r.code()
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
        let t = Tx::Terminate { lease: [1; 32], seq: MAX_SEQ_AHEAD };
        assert_eq!(check(&tx(t, &buyer()), &s, NOW).unwrap().kind, EntryKind::LEASE_TRANSITION);
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
        assert_eq!(r, Refused::Expired { expiry_ms: NOW + HOUR_MS, now_ms: NOW + HOUR_MS });
        assert_eq!(r.code(), "expired");

        let e = order(bid(0, 24, 100, FillRule::AllOrNone, 1), &buyer());
        assert_eq!(check(&e, &s, NOW).unwrap_err(), Refused::InvalidOrder(Rejection::ZeroSlots));
        assert_eq!(code(&e, &s), "invalid_order");
    }

    #[test]
    fn bids_must_be_able_to_pay_their_smallest_fill() {
        let s = state();
        // All or none: 5 × 24 × 100 = 12,000 > 10,000.
        let e = order(bid(5, 24, 100, FillRule::AllOrNone, 1), &buyer());
        assert_eq!(
            check(&e, &s, NOW).unwrap_err(),
            Refused::Unfunded { balance: 10_000, needed: 12_000 }
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
        assert_eq!(code(&resting, &s), "replay");
        // The re-check after a block (no signature work) refuses it the same way.
        assert_eq!(recheck(&resting, &s, NOW).unwrap_err(), Refused::Replay { nonce: 3 });
        let mut o = offer(3);
        if let Order::Offer(x) = &mut o {
            x.slots = 9;
        }
        assert_eq!(
            check(&order(o, &provider()), &s, NOW).unwrap_err(),
            Refused::Replay { nonce: 3 }
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
        assert_eq!(r, Refused::StaleSeq { expected: 1, got: 0 });
        assert_eq!(r.code(), "stale_seq");

        let far = tx(Tx::Terminate { lease: [1; 32], seq: 1 + MAX_SEQ_AHEAD + 1 }, &buyer());
        assert_eq!(code(&far, &s), "seq_gap");

        let t = tx(Tx::Transfer { to: provider().public(), amount: 0, seq: 1 }, &buyer());
        assert_eq!(code(&t, &s), "invalid_tx");
        let t = tx(Tx::Transfer { to: buyer().public(), amount: 1, seq: 1 }, &buyer());
        assert_eq!(code(&t, &s), "invalid_tx");
        let t = tx(Tx::Transfer { to: provider().public(), amount: 1_000_000, seq: 1 }, &buyer());
        assert_eq!(
            check(&t, &s, NOW).unwrap_err(),
            Refused::Unfunded { balance: 9_990, needed: 1_000_000 }
        );
    }

    #[test]
    fn codes_are_distinct() {
        let all = [
            Refused::NotUserEntry { kind: 1, name: "x" },
            Refused::TooLarge { bytes: 1, max: 0 },
            Refused::Unsigned,
            Refused::Malformed { kind: "order", detail: String::new() },
            Refused::BadSignature(String::new()),
            Refused::UnknownMarket(String::new()),
            Refused::Expired { expiry_ms: 0, now_ms: 0 },
            Refused::InvalidOrder(Rejection::ZeroSlots),
            Refused::Replay { nonce: 0 },
            Refused::Unfunded { balance: 0, needed: 1 },
            Refused::UnknownOrder(String::new()),
            Refused::NotAuthor,
            Refused::StaleSeq { expected: 1, got: 0 },
            Refused::SeqGap { expected: 0, got: 100 },
            Refused::InvalidTx(String::new()),
        ];
        let codes: std::collections::BTreeSet<&str> = all.iter().map(Refused::code).collect();
        assert_eq!(codes.len(), all.len());
    }
}
