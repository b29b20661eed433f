//! What a peer sends during state sync (`docs/snapshots.md`, `docs/network.md` "Snapshot
//! protocol"): snapshot manifests and chunks, and the snapshot protocol's requests. The first
//! byte picks the type; a decoded manifest or chunk must re-encode to exactly its bytes, and a
//! decoded request to an equal request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use surplus_net::consensus::snapshot::{Chunk, Manifest};
use surplus_net::snapfetch::SnapRequest;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    match which % 3 {
        0 => {
            if let Ok(m) = Manifest::decode(bytes) {
                assert_eq!(m.encode(), bytes);
            }
        }
        1 => {
            if let Ok(c) = Chunk::decode(bytes) {
                assert_eq!(c.encode(), bytes);
            }
        }
        _ => {
            if let Ok(r) = SnapRequest::decode(bytes) {
                assert_eq!(SnapRequest::decode(&r.encode()).ok(), Some(r));
            }
        }
    }
});
