//! State proofs: `GET /api/v1/accounts/{key}/proof` and `GET /api/v1/leases/{id}/state-proof`,
//! served by a real node and verified with the library's checks against the validator set of
//! the node's genesis file; every one-byte change of the value, the proof, the header or the
//! certificate fails.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use surplus_api::{Proven, StateProof};
use surplus_ledger::{Hash, SecretKey, ValidatorSet};
use surplus_service::genesis::GenesisFile;

use crate::{app, call, lease, roomy, world, World, CHAIN};

/// The chain id and validator set of the node's genesis file: the verifier's trusted source.
fn trusted(w: &World) -> (String, ValidatorSet) {
    let g = GenesisFile::load(&w.solo.dir().join("genesis.json")).unwrap();
    let set = ValidatorSet::new(g.validators.iter().map(|v| v.public_key).collect()).unwrap();
    (g.chain_id, set)
}

/// Flips one bit of the byte at `at` of the hex string `s`.
fn flip_hex(s: &str, at: usize) -> String {
    let mut b = hex::decode(s).unwrap();
    b[at] ^= 0x10;
    hex::encode(b)
}

/// Asserts that `doc` fails verification, with a reason containing `why`.
fn refused(doc: &StateProof, chain: &str, set: &ValidatorSet, why: &str) {
    match doc.verify(chain, set) {
        Ok(c) => panic!("a tampered proof verified ({why}): {c:?}"),
        Err(e) => assert!(e.contains(why), "{e:?} does not say {why:?}"),
    }
}

/// Every single-bit change of the value, the proof, the header's state root, height and time,
/// and the certificate's signature fails.
fn tamper_everywhere(doc: &StateProof, chain: &str, set: &ValidatorSet) {
    if let Some(v) = &doc.value {
        for at in 0..hex::decode(v).unwrap().len() {
            let mut d = doc.clone();
            d.value = Some(flip_hex(v, at));
            assert!(d.verify(chain, set).is_err(), "value byte {at}");
        }
    }
    for at in 0..hex::decode(&doc.proof).unwrap().len() {
        let mut d = doc.clone();
        d.proof = flip_hex(&doc.proof, at);
        assert!(d.verify(chain, set).is_err(), "proof byte {at}");
    }
    for at in 0..32 {
        let mut d = doc.clone();
        d.header.state_root[at] ^= 1;
        refused(&d, chain, set, "header_hash");
        // Even with the header hash rewritten to match, the certificate no longer does.
        d.header_hash = hex::encode(d.header.hash());
        refused(&d, chain, set, "certificate");
    }
    let mut d = doc.clone();
    d.header.timestamp_ms += 1;
    d.header_hash = hex::encode(d.header.hash());
    refused(&d, chain, set, "certificate");
    for at in 0..64 {
        let mut d = doc.clone();
        d.certificate.signatures[0].signature.0[at] ^= 1;
        refused(&d, chain, set, "certificate");
    }
    let mut d = doc.clone();
    d.certificate.signatures.clear();
    refused(&d, chain, set, "quorum");
}

#[actix_web::test]
async fn account_proofs_verify_offline_and_fail_when_changed() {
    let w = world();
    let app = app!(w.node, roomy());
    let (chain, set) = trusted(&w);
    let buyer = w.buyer.public();
    let (s, v) = call!(app, TestRequest::get().uri(&format!("/api/v1/accounts/{buyer}/proof")));
    assert_eq!(s, StatusCode::OK, "{v}");
    let doc: StateProof = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(doc.format, "surplus-state-proof/v1");
    assert_eq!(doc.chain_id, CHAIN);
    assert_eq!(doc.kind, "account");
    assert_eq!(doc.key, buyer.to_string());
    let state = w.node.state();
    assert_eq!(doc.header.height, state.height());
    assert_eq!(doc.header.state_root, state.root());
    let want = state.account(&buyer);
    assert_eq!(
        v["decoded"],
        serde_json::json!({"balance": want.balance, "seq": want.seq, "bond": want.bond})
    );
    let check = doc.verify(&chain, &set).unwrap();
    assert_eq!(check.proven, Proven::Account(buyer, Some(want.clone())));
    assert_eq!(check.height, state.height());
    assert_eq!(check.state_root, state.root());
    assert_eq!((check.signers, check.validators), (1, 1));

    tamper_everywhere(&doc, &chain, &set);
    // The decoded JSON must agree with the value bytes.
    let mut d = doc.clone();
    d.decoded = Some(serde_json::json!({"balance": want.balance + 1, "seq": want.seq}));
    refused(&d, &chain, &set, "disagree");
    let mut d = doc.clone();
    d.decoded = None;
    refused(&d, &chain, &set, "decoded");
    // Claiming absence with the inclusion proof fails.
    let mut d = doc.clone();
    d.value = None;
    d.decoded = None;
    refused(&d, &chain, &set, "exclusion");
    // Another key with this proof fails.
    let mut d = doc.clone();
    d.key = w.other.public().to_string();
    d.key_hash = hex::encode(surplus_contracts::root::key_hash(
        surplus_contracts::root::Kind::Account,
        &w.other.public().0,
    ));
    refused(&d, &chain, &set, "proof fails");

    // The trust anchor decides: another validator set, another chain id.
    let stranger = ValidatorSet::new(vec![SecretKey::from_seed([99; 32]).public()]).unwrap();
    refused(&doc, &chain, &stranger, "certificate");
    refused(&doc, "another-chain", &set, "chain");

    // An account the state has never held: an exclusion proof that verifies as absent.
    let nobody = SecretKey::from_seed([77; 32]).public();
    let (s, v) = call!(app, TestRequest::get().uri(&format!("/api/v1/accounts/{nobody}/proof")));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["value"], serde_json::Value::Null);
    assert_eq!(v["decoded"], serde_json::Value::Null);
    let doc: StateProof = serde_json::from_value(v).unwrap();
    assert_eq!(doc.verify(&chain, &set).unwrap().proven, Proven::Account(nobody, None));
    tamper_everywhere(&doc, &chain, &set);
    // Claiming a value for it fails.
    let mut d = doc.clone();
    d.value = Some(hex::encode(
        surplus_contracts::root::account_item(&nobody, &surplus_contracts::Account::default())
            .value,
    ));
    d.decoded = Some(serde_json::json!({"balance": 0, "seq": 0}));
    refused(&d, &chain, &set, "inclusion");

    // Bad keys: 400 with the API's codes.
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/accounts/zz/proof"));
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "bad_key");
    let short = "ab".repeat(31);
    let (s, v) = call!(app, TestRequest::get().uri(&format!("/api/v1/accounts/{short}/proof")));
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "bad_key");
}

#[actix_web::test]
async fn lease_proofs_verify_offline_and_unknown_ids_are_proven_absent() {
    let w = world();
    let app = app!(w.node, roomy());
    let (chain, set) = trusted(&w);
    let id: Hash = lease!(app, w.node, &w.provider, &w.buyer);
    let uri = format!("/api/v1/leases/{}/state-proof", hex::encode(id));
    let (s, v) = call!(app, TestRequest::get().uri(&uri));
    assert_eq!(s, StatusCode::OK, "{v}");
    let doc: StateProof = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(doc.kind, "lease");
    let state = w.node.state();
    let lease = state.lease(&id).cloned().unwrap();
    assert_eq!(v["decoded"], serde_json::to_value(&lease).unwrap());
    let check = doc.verify(&chain, &set).unwrap();
    assert_eq!(check.proven, Proven::Lease(id, Some(Box::new(lease.clone()))));
    assert_eq!(check.header_hash, doc.header.hash());
    tamper_everywhere(&doc, &chain, &set);
    // A lease whose JSON says something its bytes do not.
    let mut d = doc.clone();
    let mut changed = lease.clone();
    changed.escrow += 1;
    d.decoded = Some(serde_json::to_value(&changed).unwrap());
    refused(&d, &chain, &set, "disagree");
    let mut d = doc.clone();
    d.decoded.as_mut().unwrap()["hours"] = serde_json::json!("many");
    refused(&d, &chain, &set, "not a lease");
    // The lease's proof is no proof of the buyer's account.
    let mut d = doc.clone();
    d.kind = "account".into();
    d.key_hash =
        hex::encode(surplus_contracts::root::key_hash(surplus_contracts::root::Kind::Account, &id));
    assert!(d.verify(&chain, &set).is_err());

    // An id that is no lease: proven absent.
    let unknown = [0xab; 32];
    let (s, v) = call!(
        app,
        TestRequest::get().uri(&format!("/api/v1/leases/{}/state-proof", hex::encode(unknown)))
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    let doc: StateProof = serde_json::from_value(v).unwrap();
    assert_eq!(doc.verify(&chain, &set).unwrap().proven, Proven::Lease(unknown, None));
    tamper_everywhere(&doc, &chain, &set);

    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/leases/xyz/state-proof"));
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "bad_hex");
}
