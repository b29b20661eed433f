//! Status, entries, markets, book, accounts, leases: answers and bad input.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use surplus_contracts::Tx;
use surplus_ledger::{Entry, Signature};
use surplus_web::Submission;

use crate::{app, bid, call, commit, lease, offer, roomy, submit_req, world, CHAIN, FUNDS};

#[actix_web::test]
async fn status_healthz_and_unknown_routes() {
    let w = world();
    let app = app!(w.node, roomy());
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/status"));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["chain_id"], CHAIN);
    assert_eq!(v["public_key"], w.provider.public().to_string());
    // The block the node cut as it started (`world`), nothing since.
    assert_eq!(v["height"], 1);
    assert_eq!(v["validator"], true);
    assert_eq!(v["head_hash"].as_str().unwrap().len(), 64);

    let resp =
        actix_web::test::call_service(&app, TestRequest::get().uri("/healthz").to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(actix_web::test::read_body(resp).await, "ok");

    // The home page is the UI, served by the node itself; a block the node does not hold is a
    // JSON 404.
    let resp = actix_web::test::call_service(&app, TestRequest::get().uri("/").to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("content-security-policy").is_some());
    let page = actix_web::test::read_body(resp).await;
    assert!(String::from_utf8_lossy(&page).contains("/ui/app.js"));
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/blocks/2"));
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "unknown_block");
    let (s, _) = call!(app, TestRequest::get().uri("/api/v1/blocks/x"));
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/nope"));
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "no_route");
    assert!(v["error"]["message"].as_str().unwrap().contains("/api/v1/nope"));
    let (s, v) = call!(app, TestRequest::get().uri("/elsewhere"));
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "no_route");
    // A method a route does not serve is a JSON 405.
    let (s, v) = call!(app, TestRequest::delete().uri("/api/v1/status"));
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{v}");
    assert_eq!(v["error"]["code"], "method_not_allowed");
}

#[actix_web::test]
async fn a_batch_of_entries_answers_for_each() {
    let w = world();
    let app = app!(w.node, roomy());
    let hex_of = |e: &Entry| hex::encode(e.encode());
    let good = offer(&w.provider, 3, 100, 301);
    let buyer = bid(&w.buyer, 1, 50, 302);
    let mut forged = offer(&w.provider, 3, 100, 303);
    if let surplus_ledger::Auth::Signed { signature, .. } = &mut forged.auth {
        *signature = Signature([5; 64]);
    }
    let zero = offer(&w.provider, 0, 100, 304);
    let entries = serde_json::json!([
        hex_of(&good),
        "zz",
        hex_of(&forged),
        "0010",
        hex_of(&zero),
        hex_of(&good),
        hex_of(&buyer),
    ]);
    let req =
        |body: serde_json::Value| TestRequest::post().uri("/api/v1/submissions").set_json(body);
    let (s, v) = call!(app, req(serde_json::json!({"entries": entries})));
    assert_eq!(s, StatusCode::OK, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 7, "{v}");
    let id = |e: &Entry| serde_json::Value::from(hex::encode(e.id()));
    // Admitted, each answered as POST /api/v1/entries answers it alone (the second copy too).
    for (i, e) in [(0, &good), (5, &good), (6, &buyer)] {
        assert_eq!(results[i]["id"], id(e), "{i}: {v}");
        assert!(results[i].get("error").is_none(), "{i}: {v}");
    }
    // Refused, each with the code a single submission gets; an entry that decodes has its id.
    for (i, code, e) in [
        (1, "bad_hex", None),
        (2, "bad_signature", Some(&forged)),
        (3, "malformed_entry", None),
        (4, "zero_slots", Some(&zero)),
    ] {
        assert_eq!(results[i]["error"]["code"], code, "{i}: {v}");
        assert_eq!(results[i].get("id").cloned(), e.map(id), "{i}: {v}");
    }
    assert!(results[1]["error"]["message"].as_str().unwrap().contains("entries[1]"), "{v}");
    // The admitted ones are committed, as any submission is.
    let height = crate::committed(&*w.node, &good.id()).await;
    assert!(crate::committed(&*w.node, &buyer.id()).await >= height);
    assert!(!matches!(
        w.node.submission(&forged.id()).await,
        Some(Submission::Pending { .. } | Submission::Committed { .. })
    ));

    // A batch of nothing, or of too many, is refused whole.
    let (s, v) = call!(app, req(serde_json::json!({"entries": []})));
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "bad_request");
    let many = vec!["00"; surplus_web::api::MAX_BATCH_ENTRIES + 1];
    let (s, v) = call!(app, req(serde_json::json!({"entries": many})));
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("1 to 1000 entries"), "{v}");
}

#[actix_web::test]
async fn entries_accepted_refused_and_malformed() {
    let w = world();
    let app = app!(w.node, roomy());
    let e = offer(&w.provider, 3, 100, 1);
    let height = commit!(app, w.node, &e);
    assert_eq!(w.node.status().height, height);

    // The same order again: the node's refusal, 409 for a replayed nonce.
    let (s, v) = call!(app, submit_req(&e));
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "replayed_nonce");

    // A forged signature: 400 with the node's code.
    let mut forged = offer(&w.provider, 3, 100, 2);
    if let surplus_ledger::Auth::Signed { signature, .. } = &mut forged.auth {
        *signature = Signature([5; 64]);
    }
    let (s, v) = call!(app, submit_req(&forged));
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "bad_signature");

    // A transfer, then (once it is committed) another with the sequence number it used: 409.
    let t = Tx::Transfer { to: w.other.public(), amount: 5, seq: 0 };
    commit!(app, w.node, &Entry::signed(CHAIN, t.kind(), t.encode(), &w.buyer));
    let t = Tx::Transfer { to: w.other.public(), amount: 6, seq: 0 };
    let (s, v) = call!(app, submit_req(&Entry::signed(CHAIN, t.kind(), t.encode(), &w.buyer)));
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "bad_sequence");
    assert!(v["error"]["message"].as_str().unwrap().contains("next is 1"), "{v}");
    // A transfer over the balance says so in its own words.
    let t = Tx::Transfer { to: w.other.public(), amount: u64::MAX, seq: 1 };
    let (s, v) = call!(app, submit_req(&Entry::signed(CHAIN, t.kind(), t.encode(), &w.buyer)));
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "insufficient_balance");
    assert!(!v["error"]["message"].as_str().unwrap().contains("bid"), "{v}");
    // An order breaking one rule gets that rule's code, not a generic one.
    let (s, v) = call!(app, submit_req(&offer(&w.provider, 0, 100, 9)));
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "zero_slots");

    // What became of the accepted ones.
    let (s, v) =
        call!(app, TestRequest::get().uri(&format!("/api/v1/submissions/{}", hex::encode(e.id()))));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((v["status"].as_str(), v["height"].as_u64()), (Some("committed"), Some(height)));
    let (s, v) = call!(
        app,
        TestRequest::get().uri(&format!("/api/v1/submissions/{}", hex::encode([3u8; 32])))
    );
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "unknown_submission");

    // Not hex; hex that is not an entry (the decoder's message).
    let req = |body: serde_json::Value| TestRequest::post().uri("/api/v1/entries").set_json(body);
    let (s, v) = call!(app, req(serde_json::json!({"entry": "zz"})));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_hex");
    let (s, v) = call!(app, req(serde_json::json!({"entry": "0010"})));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "malformed_entry");
    assert!(v["error"]["message"].as_str().unwrap().contains("entry."), "{v}");
    // JSON of the wrong shape, JSON that is not JSON, no content type.
    let (s, v) = call!(app, req(serde_json::json!({"entri": "00"})));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_json");
    assert!(v["error"]["message"].as_str().unwrap().contains("entri"), "{v}");
    let (s, v) = call!(
        app,
        TestRequest::post()
            .uri("/api/v1/entries")
            .insert_header(("content-type", "application/json"))
            .set_payload("{\"entry\": ")
    );
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_json");
    let (s, v) = call!(app, TestRequest::post().uri("/api/v1/entries").set_payload("{}"));
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(v["error"]["code"], "unsupported_media_type");
}

#[actix_web::test]
async fn a_full_mempool_refuses_with_503() {
    let mut spec = crate::spec();
    spec.mempool_capacity = Some(2);
    let w = crate::world_of(spec);
    let app = app!(w.node, roomy());
    // Transfers ahead of the buyer's next sequence number (0) wait in the mempool for the one
    // before them, which does not come: they fill it.
    for seq in 1..=2 {
        let t = Tx::Transfer { to: w.other.public(), amount: 1, seq };
        let e = Entry::signed(CHAIN, t.kind(), t.encode(), &w.buyer);
        let (s, v) = call!(app, submit_req(&e));
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        assert_eq!(
            w.node.submission(&e.id()).await,
            Some(Submission::Pending { waits_for_seq: true })
        );
    }
    let (s, v) = call!(app, submit_req(&offer(&w.provider, 3, 100, 3)));
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "mempool_full");
    assert_eq!(w.node.status().mempool, 2);
}

#[actix_web::test]
async fn markets_and_book() {
    let w = world();
    let app = app!(w.node, roomy());
    // Two offers and two bids that do not cross, in whichever blocks the node puts them.
    let mut orders = Vec::new();
    for (i, reserve) in [(1, 200), (2, 300)] {
        orders.push(offer(&w.provider, 4, reserve, i));
    }
    for (i, (key, limit)) in [(&w.buyer, 50), (&w.other, 50)].into_iter().enumerate() {
        orders.push(bid(key, 1, limit, i as u64 + 1));
    }
    for e in &orders {
        let (s, v) = call!(app, submit_req(e));
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    }
    for e in &orders {
        crate::committed(&*w.node, &e.id()).await;
    }
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/markets"));
    assert_eq!(s, StatusCode::OK);
    let markets = v.as_array().unwrap();
    assert_eq!(markets.len(), 15);
    let gpu = markets.iter().find(|m| m["market"] == "gpu.a100@us-east-b").unwrap();
    assert_eq!(gpu["offers"], 2);
    assert_eq!(gpu["bids"], 2);
    assert_eq!(gpu["last_price"], serde_json::Value::Null);
    assert!(gpu["description"].as_str().unwrap().contains("A100"));

    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/book?market=gpu.a100@us-east-b"));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["offers"]["depth"][0], serde_json::json!({"price": 200, "slots": 4, "orders": 1}));
    assert_eq!(v["offers"]["depth"][1]["price"], 300);
    assert_eq!(v["bids"]["depth"], serde_json::json!([{"price": 50, "slots": 2, "orders": 2}]));
    let o = &v["offers"]["orders"][0];
    assert_eq!(o["author"], w.provider.public().to_string());
    assert_eq!(o["slots"], 4);
    assert_eq!(o["price"], 200);
    assert!(o["window_end_ms"].as_u64() > o["window_start_ms"].as_u64());
    assert_eq!(v["offers"]["truncated"], false);
    let (_, v) =
        call!(app, TestRequest::get().uri("/api/v1/book?market=gpu.a100@us-east-b&limit=1"));
    assert_eq!(v["offers"]["orders"].as_array().unwrap().len(), 1);
    assert_eq!(v["offers"]["truncated"], true);

    // A crossing bid trades; the market shows its price.
    commit!(app, w.node, &bid(&w.buyer, 1, 250, 9));
    let (_, v) = call!(app, TestRequest::get().uri("/api/v1/markets"));
    let gpu = v.as_array().unwrap().iter().find(|m| m["market"] == "gpu.a100@us-east-b").unwrap();
    assert!(gpu["last_price"].as_u64().unwrap() >= 200, "{gpu}");

    // Bad input.
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/book?market=gpu.a100"));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_market");
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/book?market=gpu.h100@us-east-b"));
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "unknown_market");
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/book"));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_query");
    assert!(v["error"]["message"].as_str().unwrap().contains("market"), "{v}");
    let (s, _) =
        call!(app, TestRequest::get().uri("/api/v1/book?market=gpu.a100@us-east-b&limit=0"));
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn accounts_and_leases() {
    let w = world();
    let app = app!(w.node, roomy());
    let uri = format!("/api/v1/accounts/{}", w.buyer.public());
    let (s, v) = call!(app, TestRequest::get().uri(&uri));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        serde_json::json!({"account": w.buyer.public().to_string(), "balance": FUNDS, "seq": 0, "bond": 0, "bond_in_use": 0})
    );
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/accounts/abc"));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_key");

    let first = lease!(app, w.node, &w.provider, &w.buyer);
    let second = lease!(app, w.node, &w.provider, &w.other);
    // Escrow left the buyer's balance.
    let (_, v) = call!(app, TestRequest::get().uri(&uri));
    assert!(v["balance"].as_u64().unwrap() < FUNDS);

    let (s, v) =
        call!(app, TestRequest::get().uri(&format!("/api/v1/leases?account={}", w.buyer.public())));
    assert_eq!(s, StatusCode::OK);
    let leases = v["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0]["id"], hex::encode(first));
    assert_eq!(leases[0]["fill"]["buyer"], w.buyer.public().to_string());
    assert_eq!(leases[0]["status"], "active");
    let (_, v) = call!(
        app,
        TestRequest::get().uri(&format!("/api/v1/leases?account={}", w.provider.public()))
    );
    assert_eq!(v["leases"].as_array().unwrap().len(), 2);
    let (_, v) = call!(app, TestRequest::get().uri("/api/v1/leases?limit=1"));
    assert_eq!(v["leases"].as_array().unwrap().len(), 1);
    assert_eq!(v["truncated"], true);
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/leases?limit=1001"));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_limit");
    let (s, _) = call!(app, TestRequest::get().uri("/api/v1/leases?limit=x"));
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, v) =
        call!(app, TestRequest::get().uri(&format!("/api/v1/leases/{}", hex::encode(second))));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["lease"]["fill"]["buyer"], w.other.public().to_string());
    assert_eq!(v["provisioning"]["start"]["ok"], true);
    assert!(v["lease"]["grant"]["token_hash"].is_string(), "{v}");
    let (s, v) =
        call!(app, TestRequest::get().uri(&format!("/api/v1/leases/{}", hex::encode([9u8; 32]))));
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "unknown_lease");
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/leases/123"));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_hex");
}
