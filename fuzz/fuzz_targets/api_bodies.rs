//! The HTTP API's JSON bodies: each request type the node deserializes, then the decoding its
//! handler does next (hex entries, base64 tokens and their credentials, keys). The first byte
//! picks the type.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use surplus_ledger::{Entry, PublicKey};
use surplus_api::{CredentialRequest, FaucetRequest, GatewayRequest, Submit};

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = data.split_first() else { return };
    match which % 4 {
        0 => {
            if let Ok(s) = serde_json::from_slice::<Submit>(body) {
                if let Ok(bytes) = hex::decode(s.entry.trim()) {
                    let _ = Entry::decode(&bytes);
                }
            }
        }
        1 => {
            if let Ok(c) = serde_json::from_slice::<CredentialRequest>(body) {
                let _ = hex::decode(&c.challenge);
                let _ = hex::decode(&c.signature);
            }
        }
        2 => {
            if let Ok(g) = serde_json::from_slice::<GatewayRequest>(body) {
                use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
                let token = [URL_SAFE, URL_SAFE_NO_PAD, STANDARD]
                    .iter()
                    .find_map(|e| e.decode(g.token.trim()).ok());
                if let Some(t) = token {
                    let provider = PublicKey([9; 32]);
                    let _ = surplus_contracts::credential::inspect(&t, &provider);
                }
                if let Some(l) = g.lease {
                    let _ = hex::decode(l);
                }
            }
        }
        _ => {
            let _ = serde_json::from_slice::<FaucetRequest>(body);
        }
    }
});
