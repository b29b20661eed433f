//! Blocks and their parts as peers (sync) and files hand them over: blocks, headers with their
//! certificates, validator sets, and the genesis records. Round-trips where there is an
//! encoder; nothing may panic or allocate beyond the input's size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use surplus_contracts::{Allocation, Params};
use surplus_ledger::{decode_head, Block, ValidatorSet};

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Block::decode(data) {
        assert_eq!(Block::decode(&b.encode()).ok(), Some(b.clone()));
        let (h, c) = decode_head(&b.encode_head()).expect("a block's head decodes");
        assert_eq!((h, c), (b.header.clone(), b.certificate.clone()));
    }
    let _ = decode_head(data);
    if let Ok(v) = ValidatorSet::decode(data) {
        assert_eq!(ValidatorSet::decode(&v.encode()).ok(), Some(v));
    }
    let _ = Params::decode(data);
    let _ = Allocation::decode(data);
});
