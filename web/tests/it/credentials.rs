//! Fetching a lease's credential by signing a challenge, and the gateway.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use base64::Engine as _;
use serde_json::json;
use surplus_contracts::{credential, Tx};
use surplus_ledger::{parse_hex, Entry, Hash, SecretKey};
use surplus_web::{challenge_bytes, Node};

use crate::{app, call, commit, lease, roomy, submit_req, world, CHAIN};

fn challenge_uri(lease: &Hash) -> String {
    format!("/api/v1/leases/{}/challenge", hex::encode(lease))
}
fn credential_uri(lease: &Hash) -> String {
    format!("/api/v1/leases/{}/credential", hex::encode(lease))
}

/// The answer `key` gives to a challenge `v` for `lease`.
fn answer(v: &serde_json::Value, lease: &Hash, key: &SecretKey) -> serde_json::Value {
    let nonce = parse_hex::<32>(v["challenge"].as_str().unwrap(), "challenge").unwrap();
    let expires = v["expires_ms"].as_u64().unwrap();
    assert_eq!(v["chain_id"], CHAIN);
    let sig = key.sign(&challenge_bytes(CHAIN, lease, &nonce, expires));
    json!({"challenge": v["challenge"], "signature": sig.to_string()})
}

#[actix_web::test]
async fn only_the_buyer_gets_the_token_and_a_challenge_is_used_once() {
    let w = world();
    let app = app!(w.node, roomy());
    let id = lease!(app, w.node, &w.provider, &w.buyer);

    let (s, c) = call!(app, TestRequest::post().uri(&challenge_uri(&id)));
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["challenge"].as_str().unwrap().len(), 64);
    assert_eq!(c["lease"], hex::encode(id));
    let body = answer(&c, &id, &w.buyer);
    let (s, v) = call!(app, TestRequest::post().uri(&credential_uri(&id)).set_json(&body));
    assert_eq!(s, StatusCode::OK, "{v}");
    let token =
        base64::engine::general_purpose::URL_SAFE.decode(v["token"].as_str().unwrap()).unwrap();
    assert_eq!(Some(token.clone()), w.node.credential(&id));
    // The grant carries the same token sealed to the buyer, which only the buyer opens.
    let sealed = w.node.state().lease(&id).unwrap().grant.clone().unwrap().sealed;
    let opened = surplus_contracts::sealed::open(&sealed, &w.buyer, CHAIN, &id).unwrap();
    assert_eq!(opened, token);
    assert!(surplus_contracts::sealed::open(&sealed, &w.provider, CHAIN, &id).is_err());
    let (_, v) = call!(app, TestRequest::get().uri(&format!("/api/v1/leases/{}", hex::encode(id))));
    assert_eq!(v["lease"]["grant"]["sealed"], hex::encode(&sealed), "served with the lease");

    // The same challenge again: refused.
    let (s, v) = call!(app, TestRequest::post().uri(&credential_uri(&id)).set_json(&body));
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "challenge_unknown");

    // Someone else signing: refused, and the challenge is spent.
    let (_, c) = call!(app, TestRequest::post().uri(&challenge_uri(&id)));
    let stolen = answer(&c, &id, &w.other);
    let (s, v) = call!(app, TestRequest::post().uri(&credential_uri(&id)).set_json(&stolen));
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "not_buyer");
    assert!(v["error"]["message"].as_str().unwrap().contains(&w.buyer.public().to_string()));
    let honest = answer(&c, &id, &w.buyer);
    let (s, v) = call!(app, TestRequest::post().uri(&credential_uri(&id)).set_json(&honest));
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "challenge_unknown");

    // A challenge of one lease does not open another.
    let other_lease = lease!(app, w.node, &w.provider, &w.buyer);
    let (_, c) = call!(app, TestRequest::post().uri(&challenge_uri(&id)));
    let body = answer(&c, &other_lease, &w.buyer);
    let (s, v) = call!(app, TestRequest::post().uri(&credential_uri(&other_lease)).set_json(&body));
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "challenge_wrong_lease");

    // Bad input and unknown leases.
    let (s, v) = call!(
        app,
        TestRequest::post()
            .uri(&credential_uri(&id))
            .set_json(json!({"challenge": "xyz", "signature": "00"}))
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_challenge");
    let (s, v) = call!(app, TestRequest::post().uri(&challenge_uri(&[4; 32])));
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "unknown_lease");
}

#[actix_web::test]
async fn a_node_that_is_not_the_provider_says_so() {
    let w = world();
    // A lease whose provider is another key than the node's.
    let third = SecretKey::from_seed([9; 32]);
    let app = app!(w.node, roomy());
    let id = lease!(app, w.node, &third, &w.buyer);
    let (s, v) = call!(app, TestRequest::post().uri(&challenge_uri(&id)));
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_provider");
    assert!(v["error"]["message"].as_str().unwrap().contains(&third.public().to_string()));
    // Nor is it this node's to end.
    let token = w.node.operator_token().expect("an operator token").to_owned();
    let req = TestRequest::post()
        .uri("/api/v1/operator/terminations")
        .set_json(json!({"lease": hex::encode(id), "reason": "not mine"}))
        .insert_header(("Authorization", format!("Bearer {token}")));
    let (s, v) = call!(app, req);
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_entitled")));
}

async fn fetch_token(node: &std::sync::Arc<dyn Node>, id: &Hash, buyer: &SecretKey) -> String {
    let app = app!(node, roomy());
    let (_, c) = call!(app, TestRequest::post().uri(&challenge_uri(id)));
    let (s, v) =
        call!(app, TestRequest::post().uri(&credential_uri(id)).set_json(answer(&c, id, buyer)));
    assert_eq!(s, StatusCode::OK, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn gateway_accepts_until_revoked_or_ended() {
    // A start hook that hands out access details (it ignores the lease event on its stdin).
    let mut spec = crate::spec();
    spec.provisioning.kind = surplus_service::config::HookKind::Exec;
    spec.provisioning.command =
        ["sh", "-c", r#"cat >/dev/null; echo '{"host": "127.0.0.1"}'"#].map(String::from).to_vec();
    let w = crate::world_of(spec);
    let app = app!(w.node, roomy());
    let id = lease!(app, w.node, &w.provider, &w.buyer);
    let token = fetch_token(&w.node, &id, &w.buyer).await;
    let gw = |body: serde_json::Value| TestRequest::post().uri("/api/v1/gateway").set_json(body);

    let (s, v) = call!(app, gw(json!({"token": token, "operation": "read"})));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["lease"], hex::encode(id));
    assert_eq!(v["access"]["host"], "127.0.0.1");
    assert_eq!(v["scope"]["buyer"], w.buyer.public().to_string());
    // Naming the lease gives the same; the default operation is read.
    let (s, _) = call!(app, gw(json!({"token": token, "lease": hex::encode(id)})));
    assert_eq!(s, StatusCode::OK);
    // Outside the token's scope, garbage, another provider's token.
    let (s, v) = call!(app, gw(json!({"token": token, "operation": "launch-missiles"})));
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "operation_not_allowed");
    let (s, v) = call!(app, gw(json!({"token": "!!!"})));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_token");
    let junk = base64::engine::general_purpose::URL_SAFE.encode(b"not a token");
    let (s, v) = call!(app, gw(json!({"token": junk})));
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "token_malformed");
    // One code, one status: an unknown lease is 404 here as everywhere.
    let (s, v) = call!(app, gw(json!({"token": token, "lease": hex::encode([8u8; 32])})));
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "unknown_lease");

    // The provider replaces the token, as its node grants one: it mints a new token with its
    // key and records the grant on the ledger, which revokes the old token.
    let lease = w.node.state().lease(&id).cloned().unwrap();
    let cred =
        credential::mint(&lease, &w.provider, &credential::OPERATIONS, &mut rand::rngs::OsRng)
            .unwrap();
    let grant = Tx::Grant {
        lease: id,
        token_hash: cred.token_hash,
        revocation_ids: cred.revocation_ids.clone(),
        seq: w.node.state().account(&w.provider.public()).seq,
        sealed: Vec::new(),
    };
    commit!(app, w.node, &Entry::signed(CHAIN, grant.kind(), grant.encode(), &w.provider));
    let (s, v) = call!(app, gw(json!({"token": token})));
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "token_revoked");
    let fresh = base64::engine::general_purpose::URL_SAFE.encode(&cred.token);
    let (s, v) = call!(app, gw(json!({"token": fresh})));
    assert_eq!(s, StatusCode::OK, "{v}");

    // The buyer terminates the lease: the gateway refuses from then on.
    let t = Tx::Terminate { lease: id, seq: w.node.state().account(&w.buyer.public()).seq };
    commit!(app, w.node, &Entry::signed(CHAIN, t.kind(), t.encode(), &w.buyer));
    let (s, v) = call!(app, gw(json!({"token": fresh})));
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "lease_ended");
    assert!(v["error"]["message"].as_str().unwrap().contains("terminated by its buyer"));

    // Terminating it again can never apply: refused at once (409), not accepted and dropped.
    let t = Tx::Terminate { lease: id, seq: w.node.state().account(&w.buyer.public()).seq };
    let (s, v) = call!(app, submit_req(&Entry::signed(CHAIN, t.kind(), t.encode(), &w.buyer)));
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "lease_not_active");
}

/// A renewal re-issues the credential: the provider's node mints one valid to the lease's new
/// end and grants it, which revokes the old one. Once the lease has ended, no credential is
/// handed out (`lease_ended`), at the challenge or at the fetch.
#[actix_web::test]
async fn a_renewal_reissues_the_credential_and_an_ended_lease_has_none() {
    let w = world();
    let app = app!(w.node, roomy());
    let id = lease!(app, w.node, &w.provider, &w.buyer);
    let provider = w.provider.public();
    let until = |t: &str| {
        let bytes = base64::engine::general_purpose::URL_SAFE.decode(t).unwrap();
        u64::try_from(credential::inspect(&bytes, &provider).unwrap().valid_until).unwrap()
    };
    let first = fetch_token(&w.node, &id, &w.buyer).await;
    let lease = w.node.state().lease(&id).cloned().unwrap();
    assert_eq!(until(&first), lease.fill.end_ms);
    let old = lease.grant.unwrap().token_hash;

    let r = Tx::Renew { lease: id, hours: 1, seq: w.node.state().account(&w.buyer.public()).seq };
    commit!(app, w.node, &Entry::signed(CHAIN, r.kind(), r.encode(), &w.buyer));
    let new_end = lease.fill.end_ms + surplus_market::HOUR_MS;
    assert_eq!(w.node.state().lease(&id).unwrap().fill.end_ms, new_end);
    crate::wait_for("the renewed lease's new grant", || {
        let g = w.node.state().lease(&id)?.grant.clone()?;
        (g.token_hash != old).then_some(())
    })
    .await;
    let second = fetch_token(&w.node, &id, &w.buyer).await;
    assert_eq!(until(&second), new_end, "the new credential runs to the renewed end");
    let gw = |t: &str| TestRequest::post().uri("/api/v1/gateway").set_json(json!({"token": t}));
    let (s, v) = call!(app, gw(&first));
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("token_revoked")));
    let (s, v) = call!(app, gw(&second));
    assert_eq!(s, StatusCode::OK, "{v}");

    // The buyer ends the lease: neither a challenge nor the credential is given any more.
    let (_, c) = call!(app, TestRequest::post().uri(&challenge_uri(&id)));
    let t = Tx::Terminate { lease: id, seq: w.node.state().account(&w.buyer.public()).seq };
    commit!(app, w.node, &Entry::signed(CHAIN, t.kind(), t.encode(), &w.buyer));
    let (s, v) = call!(app, TestRequest::post().uri(&challenge_uri(&id)));
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "lease_ended");
    assert!(v["error"]["message"].as_str().unwrap().contains("terminated by its buyer"), "{v}");
    let body = answer(&c, &id, &w.buyer);
    let (s, v) = call!(app, TestRequest::post().uri(&credential_uri(&id)).set_json(&body));
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("lease_ended")));
}

/// The operator ends one of the node's leases early with a reason: the node signs the
/// termination (the provider's), the lease ends, its credential is refused, and the reason is
/// kept with the lease's record; bad requests are refused before anything is signed.
#[actix_web::test]
async fn the_operator_ends_a_lease_early_and_says_why() {
    let w = world();
    let app = app!(w.node, roomy());
    let id = lease!(app, w.node, &w.provider, &w.buyer);
    let token = w.node.operator_token().expect("an operator token").to_owned();
    let bearer = ("Authorization", format!("Bearer {token}"));
    let end = |body: serde_json::Value| {
        TestRequest::post().uri("/api/v1/operator/terminations").set_json(body)
    };
    let body = json!({"lease": hex::encode(id), "reason": "rack 12 loses power at noon"});
    let (s, e) = call!(app, end(body.clone()));
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("operator_only")));
    let (s, e) = call!(
        app,
        end(json!({"lease": hex::encode(id), "reason": "  "})).insert_header(bearer.clone())
    );
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));
    let (s, e) = call!(
        app,
        end(json!({"lease": hex::encode([5u8; 32]), "reason": "x"})).insert_header(bearer.clone())
    );
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_lease")));

    let (s, v) = call!(app, end(body.clone()).insert_header(bearer.clone()));
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let entry = surplus_ledger::parse_hex::<32>(v["id"].as_str().unwrap(), "id").unwrap();
    crate::committed(&*w.node, &entry).await;
    let ended = w.node.ended_lease(&id).expect("the lease ended");
    assert_eq!(ended.status, surplus_contracts::LeaseStatus::TerminatedByProvider);
    let record = w.node.provisioning(&id).expect("its record");
    assert_eq!(record["terminated"]["reason"], "rack 12 loses power at noon", "{record}");
    // Ended: a second request is refused as such.
    let (s, e) = call!(app, end(body).insert_header(bearer));
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("lease_not_active")));
    let (s, e) = call!(app, TestRequest::post().uri(&challenge_uri(&id)));
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("lease_ended")));
}
