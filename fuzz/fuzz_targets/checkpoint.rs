//! Signed checkpoints, as gossiped on the checkpoints topic: decode, verify, round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use surplus_ledger::SignedCheckpoint;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = SignedCheckpoint::decode(data) {
        let _ = c.verify();
        assert_eq!(SignedCheckpoint::decode(&c.encode()).ok(), Some(c));
    }
});
