//! What a node decodes from a message on the orders topic: the framing of its entries, each
//! entry, then its payload as the order, cancel or transaction its kind names, and its
//! signature. Canonical encodings must round-trip; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use surplus_contracts::{decode_fill, decode_revocation, Settlement, Tx};
use surplus_ledger::{Entry, EntryKind};
use surplus_market::{Cancel, Order, SignedCancel, SignedOrder};

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = surplus_net::gossip_batch::unpack(data) {
        let encoded: Vec<Vec<u8>> = entries.iter().map(Entry::encode).collect();
        let again = surplus_net::gossip_batch::unpack(&surplus_net::gossip_batch::pack(&encoded));
        assert_eq!(again.as_ref(), Ok(&entries), "a message re-encodes");
    }
    if let Ok(e) = Entry::decode(data) {
        let again = Entry::decode(&e.encode()).expect("a decoded entry re-encodes");
        assert_eq!(again, e);
        let _ = e.verify_signature("surplus-devnet");
        let _ = SignedOrder::from_entry(&e);
        let _ = SignedCancel::from_entry(&e);
        if let Ok(tx) = Tx::decode(e.kind, &e.payload) {
            assert_eq!(Tx::decode(e.kind, &tx.encode()).ok(), Some(tx));
        }
    }
    // The payload decoders on their own, as the state machine and the API call them.
    if let Ok(o) = Order::decode(data) {
        assert_eq!(Order::decode(&o.encode()).ok(), Some(o));
    }
    if let Ok(c) = Cancel::decode(data) {
        assert_eq!(Cancel::decode(&c.encode()).ok(), Some(c));
    }
    for kind in [
        EntryKind::TRANSFER,
        EntryKind::LEASE_TRANSITION,
        EntryKind::CREDENTIAL_GRANT,
        EntryKind::GOV_PROPOSE,
        EntryKind::GOV_VOTE,
        EntryKind::GOV_WITHDRAW,
        EntryKind::KEY_ROTATION,
        EntryKind::MAINTENANCE,
        EntryKind::BOND,
    ] {
        let _ = Tx::decode(kind, data);
    }
    let _ = surplus_contracts::supervision::Report::decode(data);
    let _ = surplus_contracts::supervision::Credit::decode(data);
    let _ = Settlement::decode(data);
    let _ = decode_fill(data);
    let _ = decode_revocation(data);
    let _ = surplus_contracts::governance::decode_outcome(data);
});
