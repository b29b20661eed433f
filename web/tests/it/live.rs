//! Server-sent events, `/metrics`, `/openapi.json` and the rate limit on the new routes.

use std::pin::Pin;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::http::{header, Method, StatusCode};
use actix_web::test::TestRequest;
use surplus_web::Limits;

use crate::{app, bid, call, commit, lease, next_nonce, offer, roomy, world};

/// The next chunk of a streamed body, within a bounded time.
async fn chunk<B: MessageBody>(body: &mut Pin<Box<B>>) -> String {
    let next = futures::future::poll_fn(|cx| body.as_mut().poll_next(cx));
    let bytes = tokio::time::timeout(Duration::from_secs(5), next)
        .await
        .expect("a chunk within 5 s")
        .expect("the stream is open")
        .map_err(Into::into)
        .expect("no body error");
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Frames up to and including the first `event: {name}` one (at most 50 frames).
async fn until<B: MessageBody>(body: &mut Pin<Box<B>>, name: &str) -> (Vec<String>, String) {
    until_within(body, name, 50).await
}

/// Frames up to and including the first `event: {name}` one (at most `max` frames).
async fn until_within<B: MessageBody>(
    body: &mut Pin<Box<B>>,
    name: &str,
    max: usize,
) -> (Vec<String>, String) {
    let mut seen = Vec::new();
    for _ in 0..max {
        let c = chunk(body).await;
        if c.starts_with(&format!("event: {name}\n")) {
            return (seen, c);
        }
        seen.push(c);
    }
    panic!("no {name} event in {seen:?}");
}

fn data(frame: &str) -> serde_json::Value {
    let line = frame.lines().find_map(|l| l.strip_prefix("data: ")).expect("a data line");
    assert!(frame.ends_with("\n\n"), "{frame:?}");
    serde_json::from_str(line).unwrap()
}

#[actix_web::test]
async fn events_stream_blocks_fills_and_leases() {
    let w = world();
    let app = app!(w.node, roomy());
    let resp =
        actix_web::test::call_service(&app, TestRequest::get().uri("/api/v1/events").to_request())
            .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers().get(header::CONTENT_TYPE).unwrap(), "text/event-stream");
    assert_eq!(resp.headers().get(header::CACHE_CONTROL).unwrap(), "no-cache");
    let mut body = Box::pin(resp.into_body());
    assert!(chunk(&mut body).await.contains(": connected"));

    let head = w.node.status().height;
    let id = lease!(app, w.node, &w.provider, &w.buyer);
    // The node shows a block's state before it sends the block's events, so the stream may
    // still bring the head's own; the first block after it is the offer's.
    let v = loop {
        let (_, block) = until(&mut body, "block").await;
        let v = data(&block);
        if v["height"].as_u64() > Some(head) {
            break v;
        }
    };
    assert_eq!(v["type"], "block");
    assert_eq!(v["height"], head + 1);
    let (_, fill) = until(&mut body, "fill").await;
    let v = data(&fill);
    assert_eq!(v["lease"], hex::encode(id));
    assert_eq!(v["fill"]["buyer"], w.buyer.public().to_string());
    let (_, lease) = until(&mut body, "lease").await;
    assert_eq!(data(&lease)["lease"]["id"], hex::encode(id));
}

#[actix_web::test]
async fn events_filtered_by_account_and_lagging_clients_told() {
    let w = world();
    let app = app!(w.node, roomy());
    let open = |q: String| TestRequest::get().uri(&format!("/api/v1/events{q}")).to_request();
    let other =
        actix_web::test::call_service(&app, open(format!("?account={}", w.other.public()))).await;
    assert_eq!(other.status(), StatusCode::OK);
    let mut other = Box::pin(other.into_body());
    let buyer =
        actix_web::test::call_service(&app, open(format!("?account={}", w.buyer.public()))).await;
    let mut buyer = Box::pin(buyer.into_body());
    lease!(app, w.node, &w.provider, &w.buyer);
    // A marker block after the lease: everything before it has been delivered by then.
    let marker = commit!(app, w.node, &offer(&w.provider, 1, 100, next_nonce()));
    let mut seen = Vec::new();
    loop {
        let (before, b) = until(&mut other, "block").await;
        seen.extend(before);
        if data(&b)["height"] == marker {
            break;
        }
    }
    assert!(
        seen.iter().all(|f| !f.starts_with("event: fill") && !f.starts_with("event: lease")),
        "{seen:?}"
    );
    let (_, f) = until(&mut buyer, "fill").await;
    assert_eq!(data(&f)["fill"]["buyer"], w.buyer.public().to_string());

    // A client that falls behind the node's buffer is told so, then gets the newest events.
    // Each lease is at least two events (its fill, then the lease), so this many leases made
    // while the client reads nothing overflow the buffer.
    let resp = actix_web::test::call_service(&app, open(String::new())).await;
    let mut slow = Box::pin(resp.into_body());
    assert!(chunk(&mut slow).await.contains(": connected"));
    let first = w.node.status().height + 1;
    let leases = w.node.state().leases().count();
    let n = surplus_service::EVENT_CAPACITY / 2 + 10;
    let mut entries = vec![offer(&w.provider, n as u32, 100, next_nonce())];
    for i in 0..n {
        let key = if i % 2 == 0 { &w.buyer } else { &w.other };
        entries.push(bid(key, 1, 150, next_nonce()));
    }
    for e in &entries {
        w.node.submit(e.clone()).await.unwrap();
    }
    crate::wait_for("the leases and their grants", || {
        let state = w.node.state();
        let granted = state.leases().filter(|l| l.grant.is_some()).count();
        (granted == leases + n).then_some(())
    })
    .await;
    let (_, lagged) = until(&mut slow, "lagged").await;
    assert!(data(&lagged)["missed"].as_u64().unwrap() >= 10);
    // The stream goes on with the newest events it still holds: the first block's are gone.
    let (_, b) = until_within(&mut slow, "block", surplus_service::EVENT_CAPACITY).await;
    assert!(data(&b)["height"].as_u64().unwrap() > first, "{b}");

    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/events?account=nope"));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_key");
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/events?from=3"));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_query");
}

#[actix_web::test]
async fn event_streams_are_bounded() {
    let w = world();
    let app = app!(w.node, Limits { max_event_streams: 1, ..roomy() });
    let open = || TestRequest::get().uri("/api/v1/events").to_request();
    let first = actix_web::test::call_service(&app, open()).await;
    assert_eq!(first.status(), StatusCode::OK);
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/events"));
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "too_many_streams");
    // Closing a stream frees its place.
    drop(first);
    let again = actix_web::test::call_service(&app, open()).await;
    assert_eq!(again.status(), StatusCode::OK);
    drop(again);

    let bad = Limits { max_event_streams: 0, ..Limits::default() };
    assert!(bad.validate().unwrap_err().contains("max_event_streams"));
}

#[actix_web::test]
async fn metrics_in_prometheus_text() {
    let w = world();
    let app = app!(w.node, roomy());
    lease!(app, w.node, &w.provider, &w.buyer);
    // The node shows a block's state before it counts the block.
    crate::wait_for("the head block counted", || {
        (w.node.metrics().blocks_committed == w.node.status().height).then_some(())
    })
    .await;
    let resp =
        actix_web::test::call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ctype = resp.headers().get(header::CONTENT_TYPE).unwrap().to_str().unwrap().to_owned();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let text = String::from_utf8(actix_web::test::read_body(resp).await.to_vec()).unwrap();
    let height = w.node.status().height;
    for line in [
        format!("surplus_height {height}"),
        format!("surplus_blocks_committed_total {height}"),
        "# TYPE surplus_entries_committed_total counter".into(),
        "surplus_orders_accepted_total 2".into(),
        "surplus_entries_refused_total 0".into(),
        "# TYPE surplus_orders_per_second gauge".into(),
        "surplus_mempool_entries 0".into(),
        "surplus_peers 0".into(),
        "surplus_order_to_lease_seconds_bucket{le=\"+Inf\"} 1".into(),
        "surplus_order_to_lease_seconds_count 1".into(),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    let (s, v) = call!(app, TestRequest::post().uri("/metrics"));
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(v["error"]["code"], "method_not_allowed");
}

/// A concrete path for a documented one.
fn fill(path: &str, key: &str) -> String {
    path.replace("{market}", "gpu.a100@us-east-b")
        .replace("{height}", "0")
        .replace("{index}", "0")
        .replace("{id}", &"ab".repeat(32))
        .replace("{key}", key)
        .replace("{file}", "app.js")
}

#[actix_web::test]
async fn openapi_documents_every_route_and_every_documented_route_answers() {
    let w = world();
    let app = app!(w.node, roomy());
    let (s, doc) = call!(app, TestRequest::get().uri("/openapi.json"));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    let paths = doc["paths"].as_object().unwrap();
    // The contract, every route of it.
    for (method, path) in [
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("get", "/api/v1/status"),
        ("post", "/api/v1/entries"),
        ("get", "/api/v1/markets"),
        ("get", "/api/v1/book"),
        ("get", "/api/v1/accounts/{key}"),
        ("get", "/api/v1/leases"),
        ("get", "/api/v1/leases/{id}"),
        ("post", "/api/v1/leases/{id}/challenge"),
        ("post", "/api/v1/leases/{id}/credential"),
        ("post", "/api/v1/gateway"),
        ("get", "/api/v1/blocks/{height}"),
        ("get", "/api/v1/markets/{market}/history"),
        ("get", "/api/v1/orders"),
        ("get", "/api/v1/chain"),
        ("get", "/api/v1/governance"),
        ("get", "/api/v1/governance/proposals/{id}"),
        ("get", "/api/v1/blocks"),
        ("get", "/api/v1/entries/{index}"),
        ("get", "/api/v1/leases/{id}/proof"),
        ("get", "/api/v1/accounts/{key}/proof"),
        ("get", "/api/v1/leases/{id}/state-proof"),
        ("get", "/api/v1/checkpoints"),
        ("get", "/api/v1/export"),
        ("get", "/api/v1/events"),
        ("get", "/api/v1/operator"),
        ("post", "/api/v1/operator/votes"),
        ("post", "/api/v1/faucet"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} undocumented"
        );
    }
    let key = w.buyer.public().to_string();
    let mut n = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            n += 1;
            assert!(op["summary"].is_string(), "{method} {path}");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            if path.starts_with("/api/v1") {
                assert!(op["responses"]["429"].is_object(), "{method} {path}");
            }
            for p in op["parameters"].as_array().unwrap() {
                if p["in"] == "path" {
                    assert!(path.contains(&format!("{{{}}}", p["name"].as_str().unwrap())));
                }
            }
            let mut uri = fill(path, &key);
            if path == "/api/v1/book" {
                uri.push_str("?market=gpu.a100@us-east-b");
            }
            if path == "/api/v1/orders" {
                uri.push_str(&format!("?account={key}"));
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut req = TestRequest::default().method(m).uri(&uri);
            if op.get("requestBody").is_some() {
                req = req.set_json(serde_json::json!({}));
            }
            let resp = actix_web::test::call_service(&app, req.to_request()).await;
            let status = resp.status();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            if path == "/api/v1/events" {
                assert_eq!(status, StatusCode::OK);
                continue;
            }
            let body = actix_web::test::read_body(resp).await;
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_ne!(v["error"]["code"], "no_route", "{method} {uri}");
            let documented = op["responses"].as_object().unwrap();
            assert!(
                documented.contains_key(status.as_str()),
                "{method} {uri} answered {status}, undocumented: {v}"
            );
        }
    }
    assert_eq!(n, 42);

    // Every reference resolves.
    fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 30);
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").expect(r);
        assert!(doc["components"]["schemas"].get(name).is_some(), "{r} does not resolve");
    }
}

#[actix_web::test]
async fn new_routes_are_rate_limited_but_metrics_are_not() {
    let w = world();
    let app = app!(w.node, Limits { per_ip_per_sec: 1, burst: 2, ..Limits::default() });
    for _ in 0..2 {
        let (s, _) = call!(app, TestRequest::get().uri("/api/v1/chain"));
        assert_eq!(s, StatusCode::OK);
    }
    let resp = actix_web::test::call_service(
        &app,
        TestRequest::get().uri("/api/v1/markets/gpu.a100@us-east-b/history").to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get(header::RETRY_AFTER).is_some());
    for _ in 0..5 {
        let (s, _) = call!(app, TestRequest::get().uri("/metrics"));
        assert_eq!(s, StatusCode::OK);
    }
}

#[actix_web::test]
async fn one_client_ip_cannot_hold_every_event_stream() {
    let w = world();
    let app = app!(w.node, roomy());
    let from = |ip: &str| events_from(ip).to_request();
    let mut held = Vec::new();
    for _ in 0..surplus_web::api::MAX_STREAMS_PER_IP {
        let r = actix_web::test::call_service(&app, from("10.0.0.1")).await;
        assert_eq!(r.status(), StatusCode::OK);
        held.push(r);
    }
    let r = actix_web::test::call_service(&app, from("10.0.0.1")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: serde_json::Value = actix_web::test::read_body_json(r).await;
    assert_eq!(v["error"]["code"], "too_many_client_streams");
    // Another client still gets one, and the first gets one back once it closes one.
    let other = actix_web::test::call_service(&app, from("10.0.0.2")).await;
    assert_eq!(other.status(), StatusCode::OK);
    held.pop();
    let back = actix_web::test::call_service(&app, from("10.0.0.1")).await;
    assert_eq!(back.status(), StatusCode::OK);
}

#[actix_web::test]
async fn the_last_quarter_of_event_streams_is_kept_for_clients_that_hold_none() {
    let w = world();
    // 8 streams: the last 2 only for addresses that hold none.
    let app = app!(w.node, Limits { max_event_streams: 8, ..roomy() });
    let from = |ip: &str| events_from(ip).to_request();
    let mut held = Vec::new();
    let open = |ip: &'static str, want: StatusCode| {
        let (app, req) = (&app, from(ip));
        async move {
            let r = actix_web::test::call_service(app, req).await;
            assert_eq!(r.status(), want, "{ip}");
            r
        }
    };
    for _ in 0..4 {
        held.push(open("10.0.0.1", StatusCode::OK).await);
    }
    held.push(open("10.0.0.2", StatusCode::OK).await);
    held.push(open("10.0.0.2", StatusCode::OK).await);
    // Six open: an address that holds one already is refused the reserve.
    let r = open("10.0.0.2", StatusCode::SERVICE_UNAVAILABLE).await;
    let v: serde_json::Value = actix_web::test::read_body_json(r).await;
    assert_eq!(v["error"]["code"], "too_many_streams");
    assert!(v["error"]["message"].as_str().unwrap().contains("clients that hold none"), "{v}");
    // Addresses with none take the last two; then every slot is open.
    held.push(open("10.0.0.3", StatusCode::OK).await);
    held.push(open("10.0.0.4", StatusCode::OK).await);
    open("10.0.0.5", StatusCode::SERVICE_UNAVAILABLE).await;
    let resp =
        actix_web::test::call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
    let text = String::from_utf8(actix_web::test::read_body(resp).await.to_vec()).unwrap();
    assert!(text.contains("surplus_event_streams_open 8"), "{text}");
    drop(held);
}

/// `GET /api/v1/events` from client address `ip`.
fn events_from(ip: &str) -> TestRequest {
    TestRequest::get().uri("/api/v1/events").peer_addr(format!("{ip}:4000").parse().unwrap())
}

/// The next `order` frame's data.
async fn next_order<B: MessageBody>(body: &mut Pin<Box<B>>) -> serde_json::Value {
    let (_, frame) = until(body, "order").await;
    let v = data(&frame);
    assert_eq!(v["type"], "order", "{v}");
    v
}

/// Order frames: the author's stream follows its bid from resting to partly filled to
/// cancelled (and the provider's stream its offer); another account's stream gets none.
#[actix_web::test]
async fn order_events_follow_a_bid_from_resting_to_cancelled() {
    use surplus_market::{Bid, FillRule, Order, SignedCancel, SignedOrder, HOUR_MS};
    let w = world();
    let app = app!(w.node, roomy());
    let stream = |key: &surplus_ledger::PublicKey| {
        TestRequest::get().uri(&format!("/api/v1/events?account={key}")).to_request()
    };
    let resp = actix_web::test::call_service(&app, stream(&w.buyer.public())).await;
    let mut body = Box::pin(resp.into_body());
    let resp = actix_web::test::call_service(&app, stream(&w.provider.public())).await;
    let mut provider_body = Box::pin(resp.into_body());
    // A bid of 3 slots at 1 unit: nothing sells that low, so it rests.
    let now = crate::now_ms();
    let b = Order::Bid(Bid {
        market: crate::market(),
        slots: 3,
        hours: 24,
        limit: 1,
        earliest_ms: now,
        latest_ms: now + HOUR_MS,
        fill: FillRule::AtLeast(1),
        expiry_ms: now + HOUR_MS,
        nonce: next_nonce(),
    });
    let (entry, _) = SignedOrder::sign(crate::CHAIN, b, &w.buyer);
    let id = hex::encode(entry.id());
    commit!(app, w.node, &entry);
    let v = next_order(&mut body).await;
    assert_eq!((v["order"].as_str(), v["status"].as_str()), (Some(id.as_str()), Some("resting")));
    assert_eq!((v["side"].as_str(), v["remaining"].as_u64()), (Some("bid"), Some(3)));
    assert_eq!(v["account"], w.buyer.public().to_string());
    assert_eq!(v["market"], crate::market().to_string());

    // An offer of 1 slot at 1 unit fills a third of it.
    let o = offer(&w.provider, 1, 1, next_nonce());
    commit!(app, w.node, &o);
    let v = next_order(&mut body).await;
    assert_eq!(
        (v["order"].as_str(), v["status"].as_str()),
        (Some(id.as_str()), Some("partly_filled"))
    );
    assert_eq!(v["remaining"], 2);
    let v = next_order(&mut provider_body).await;
    assert_eq!(v["order"], hex::encode(o.id()));
    assert_eq!((v["side"].as_str(), v["status"].as_str()), (Some("offer"), Some("partly_filled")));

    // The buyer cancels the rest.
    let (cancel, _) = SignedCancel::sign(crate::CHAIN, entry.id(), &w.buyer);
    commit!(app, w.node, &cancel);
    let v = next_order(&mut body).await;
    assert_eq!((v["order"].as_str(), v["status"].as_str()), (Some(id.as_str()), Some("cancelled")));
    assert!(v.get("remaining").is_none(), "{v}");
}
