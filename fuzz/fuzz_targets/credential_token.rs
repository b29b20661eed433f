//! Lease credentials (biscuit tokens) as buyers present them to a gateway: parse, read the
//! scope, verify a request. Under a fixed provider key, nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use surplus_contracts::credential::{inspect, verify, Request};
use surplus_ledger::SecretKey;

fuzz_target!(|data: &[u8]| {
    let provider = SecretKey::from_seed([7; 32]).public();
    let _ = inspect(data, &provider);
    let request = Request { lease: [1; 32], operation: "read".into(), now_ms: 1_700_000_000_000 };
    let _ = verify(data, &provider, &request, &|_| false);
});
