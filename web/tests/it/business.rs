//! Buyer and operator routes: market history, resting orders, the operator page, the faucet,
//! and the book's answer cache.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use surplus_ledger::SecretKey;

use crate::{app, bid, call, commit, lease, next_nonce, offer, roomy, world};

const MARKET: &str = "gpu.a100@us-east-b";

#[actix_web::test]
async fn market_history_lists_clearing_prices() {
    let w = world();
    let app = app!(w.node, roomy());
    let uri = format!("/api/v1/markets/{MARKET}/history");
    let (s, v) = call!(app, TestRequest::get().uri(&uri));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, serde_json::json!([]));
    let id = lease!(app, w.node, &w.provider, &w.buyer);
    let lease = w.node.state().lease(&id).cloned().unwrap();
    let (_, v) = call!(app, TestRequest::get().uri(&uri));
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["price"], lease.fill.price);
    assert_eq!(v[0]["slots"], 1);
    assert_eq!(v[0]["height"], lease.height);
    lease!(app, w.node, &w.provider, &w.other);
    let (_, v) = call!(app, TestRequest::get().uri(&format!("{uri}?limit=1")));
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert!(v[0]["height"].as_u64().unwrap() > lease.height, "the latest one");

    for (u, s_want, code) in [
        (format!("{uri}?limit=0"), StatusCode::BAD_REQUEST, "bad_limit"),
        (format!("{uri}?limit=5000"), StatusCode::BAD_REQUEST, "bad_limit"),
        (format!("{uri}?since=1"), StatusCode::BAD_REQUEST, "bad_query"),
        ("/api/v1/markets/nomarket/history".into(), StatusCode::BAD_REQUEST, "bad_market"),
        ("/api/v1/markets/cpu.tiny@mars/history".into(), StatusCode::NOT_FOUND, "unknown_market"),
    ] {
        let (s, v) = call!(app, TestRequest::get().uri(&u));
        assert_eq!(s, s_want, "{u}: {v}");
        assert_eq!(v["error"]["code"], code, "{u}");
    }
}

#[actix_web::test]
async fn orders_of_an_account() {
    let w = world();
    let app = app!(w.node, roomy());
    let uri = |k: &SecretKey| format!("/api/v1/orders?account={}", k.public());
    let o = offer(&w.provider, 3, 100, next_nonce());
    commit!(app, w.node, &o);
    let offer_id = hex::encode(o.id());
    commit!(app, w.node, &bid(&w.buyer, 1, 50, next_nonce()));
    let (s, v) = call!(app, TestRequest::get().uri(&uri(&w.provider)));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["truncated"], false, "{v}");
    assert!(v.get("next").is_none(), "{v}");
    let v = &v["orders"];
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["id"], offer_id);
    assert_eq!(v[0]["side"], "offer");
    assert_eq!(v[0]["market"], MARKET);
    assert_eq!(v[0]["slots"], 3);
    assert_eq!(v[0]["price"], 100);
    assert!(v[0]["expiry_ms"].as_u64().unwrap() > 0);
    // The bid rests below the reserve.
    let (_, v) = call!(app, TestRequest::get().uri(&uri(&w.buyer)));
    assert_eq!(v["orders"][0]["side"], "bid");
    assert_eq!(v["orders"][0]["price"], 50);
    let (_, v) = call!(app, TestRequest::get().uri(&uri(&w.other)));
    assert_eq!(v, serde_json::json!({"orders": [], "truncated": false}));
    // A second resting bid: pages of one, the second after the first's place.
    commit!(app, w.node, &bid(&w.buyer, 1, 40, next_nonce()));
    let (_, first) = call!(app, TestRequest::get().uri(&format!("{}&limit=1", uri(&w.buyer))));
    assert_eq!((first["orders"].as_array().unwrap().len(), &first["truncated"]), (1, &true.into()));
    let next = first["next"].as_str().unwrap();
    let (_, second) =
        call!(app, TestRequest::get().uri(&format!("{}&limit=1&after={next}", uri(&w.buyer))));
    assert_eq!(second["truncated"], false, "{second}");
    assert_eq!(second["orders"][0]["price"], 40);
    assert_ne!(second["orders"][0]["id"], first["orders"][0]["id"]);

    for (u, code) in [
        ("/api/v1/orders".to_owned(), "bad_query"),
        ("/api/v1/orders?account=zz".to_owned(), "bad_key"),
        (format!("{}&page=3", uri(&w.buyer)), "bad_query"),
        (format!("{}&limit=0", uri(&w.buyer)), "bad_limit"),
        (format!("{}&limit=1001", uri(&w.buyer)), "bad_limit"),
        (format!("{}&after=3", uri(&w.buyer)), "bad_query"),
    ] {
        let (s, v) = call!(app, TestRequest::get().uri(&u));
        assert_eq!(s, StatusCode::BAD_REQUEST, "{u}: {v}");
        assert_eq!(v["error"]["code"], code, "{u}");
    }
}

/// An inventory of one pool in another market than the tests trade in.
const INVENTORY: &str = "[[pool]]\nclass = \"vm.4c16g\"\nregion = \"eu-west-a\"\nslots = 8\n\
                         reserve = 1200\nmin_hours = 1\nhorizon_hours = 168\n\
                         offer_ttl_minutes = 60\n";

#[actix_web::test]
async fn operator_shows_offers_leases_and_earnings() {
    let mut spec = crate::spec();
    spec.inventory = Some(INVENTORY.into());
    let w = crate::world_of(spec);
    let app = app!(w.node, roomy());
    let id = lease!(app, w.node, &w.provider, &w.buyer);
    // The node offers its inventory's pool itself.
    let pool = surplus_market::Market::new("vm.4c16g", "eu-west-a");
    crate::wait_for("the inventory's offer", || {
        (w.node.state().book.market(&pool).1.len() == 1).then_some(())
    })
    .await;
    // Closed without the node's operator token, or with a wrong one.
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/operator"));
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::UNAUTHORIZED, &serde_json::json!("operator_only"))
    );
    let wrong = ("Authorization", format!("Bearer {}", "0".repeat(64)));
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/operator").insert_header(wrong));
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let token = w.node.operator_token().expect("the node has an operator token").to_owned();
    let bearer = ("Authorization", format!("Bearer {token}"));
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/operator").insert_header(bearer));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"]["public_key"], w.provider.public().to_string());
    assert_eq!(v["inventory"]["pool"][0]["slots"], 8, "{v}");
    let offers = v["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 2, "{v}");
    assert!(offers.iter().any(|o| o["market"] == "vm.4c16g@eu-west-a" && o["free"] == 8), "{v}");
    // The offer of two slots still rests with one free.
    let mine: Vec<_> = offers.iter().filter(|o| o["market"] == MARKET).collect();
    assert_eq!(mine.len(), 1, "{v}");
    assert_eq!(mine[0]["side"], "offer");
    assert_eq!(mine[0]["free"], 1);
    assert_eq!(v["leases"].as_array().unwrap().len(), 1);
    assert_eq!(v["leases"][0]["id"], hex::encode(id));
    assert_eq!(v["active_leases"], 1);
    let lease = w.node.state().lease(&id).cloned().unwrap();
    let e = &v["earnings"];
    assert_eq!(e["balance"], w.node.state().account(&w.provider.public()).balance);
    assert_eq!(e["paid"], lease.cost_between(0, lease.hours_paid));
    assert_eq!(e["escrow"], lease.escrow);
    assert!(lease.escrow > 0);
    let leased = v["leased"].as_array().unwrap();
    assert_eq!(leased.last().unwrap()["slots"], 1);
    assert_eq!(v["checkpoints"].as_array().unwrap().len(), 1);
    assert_eq!(v["peers"], serde_json::json!([]));
}

#[actix_web::test]
async fn faucet_funds_once_and_refuses_elsewhere() {
    let fresh = SecretKey::from_seed([42; 32]).public();
    let body = serde_json::json!({"account": fresh.to_string()});
    {
        // A node without a `[faucet]`.
        let w = world();
        let app = app!(w.node, roomy());
        let (s, v) = call!(app, TestRequest::post().uri("/api/v1/faucet").set_json(&body));
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        assert_eq!(v["error"]["code"], "faucet_disabled");
    }

    let mut spec = crate::spec();
    spec.faucet = Some((SecretKey::from_seed([4; 32]), 1_000));
    let w = crate::world_of(spec);
    let app = app!(w.node, roomy());
    let (s, v) = call!(app, TestRequest::post().uri("/api/v1/faucet").set_json(&body));
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["account"], fresh.to_string());
    assert_eq!(v["amount"], 1_000);
    assert_eq!(v["entry"].as_str().unwrap().len(), 64);
    let entry = surplus_ledger::parse_hex::<32>(v["entry"].as_str().unwrap(), "entry").unwrap();
    crate::committed(&*w.node, &entry).await;
    assert_eq!(w.node.state().account(&fresh).balance, 1_000);
    let (s, v) = call!(app, TestRequest::post().uri("/api/v1/faucet").set_json(&body));
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "faucet_spent");

    let bad = [
        (serde_json::json!({"account": "nothex"}), StatusCode::BAD_REQUEST, "bad_key"),
        (
            serde_json::json!({"account": fresh.to_string(), "amount": 5}),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (serde_json::json!({}), StatusCode::BAD_REQUEST, "bad_json"),
    ];
    for (b, status, code) in bad {
        let (s, v) = call!(app, TestRequest::post().uri("/api/v1/faucet").set_json(&b));
        assert_eq!(s, status, "{b}: {v}");
        assert_eq!(v["error"]["code"], code, "{b}");
    }
    let (s, v) = call!(
        app,
        TestRequest::post()
            .uri("/api/v1/faucet")
            .insert_header(("content-type", "text/plain"))
            .set_payload("hi")
    );
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/faucet"));
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{v}");
    assert_eq!(v["error"]["code"], "method_not_allowed");
}

#[actix_web::test]
async fn oversize_faucet_body_is_a_413() {
    let w = world();
    let app = app!(w.node, surplus_web::Limits { max_body_bytes: 1024, ..roomy() });
    let big = serde_json::json!({"account": "0".repeat(4096)});
    let (s, v) = call!(app, TestRequest::post().uri("/api/v1/faucet").set_json(&big));
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "payload_too_large");
}

#[actix_web::test]
async fn cached_book_and_markets_follow_the_state() {
    let w = world();
    let app = app!(w.node, roomy());
    let get = |uri: &str| TestRequest::get().uri(uri).to_request();
    let uri = format!("/api/v1/book?market={MARKET}&limit=5");
    let first =
        actix_web::test::read_body(actix_web::test::call_service(&app, get(&uri)).await).await;
    let again =
        actix_web::test::read_body(actix_web::test::call_service(&app, get(&uri)).await).await;
    assert_eq!(first, again);
    let (_, m) = call!(app, TestRequest::get().uri("/api/v1/markets"));
    // A new order is a new state: the answers change.
    commit!(app, w.node, &offer(&w.provider, 2, 100, next_nonce()));
    let (_, v) = call!(app, TestRequest::get().uri(&uri));
    assert_eq!(v["offers"]["orders"].as_array().unwrap().len(), 1, "{v}");
    let (_, m2) = call!(app, TestRequest::get().uri("/api/v1/markets"));
    assert_ne!(m, m2);
    let mine = m2.as_array().unwrap().iter().find(|x| x["market"] == MARKET).unwrap();
    assert_eq!(mine["offers"], 1);
    // Another limit is another answer; a bad request is never cached as a good one.
    let (_, v) =
        call!(app, TestRequest::get().uri(&format!("/api/v1/book?market={MARKET}&limit=1")));
    assert_eq!(v["offers"]["orders"].as_array().unwrap().len(), 1);
    for _ in 0..2 {
        let (s, _) =
            call!(app, TestRequest::get().uri(&format!("/api/v1/book?market={MARKET}&limit=0")));
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = call!(app, TestRequest::get().uri("/api/v1/book?market=cpu.x@nowhere"));
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
}
