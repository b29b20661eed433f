//! Body size and per-IP rate limits.

use actix_web::http::{header, StatusCode};
use actix_web::test::TestRequest;
use surplus_web::Limits;

use crate::{app, call, world};

#[actix_web::test]
async fn oversized_body_is_a_json_413() {
    let w = world();
    let app = app!(w.node, Limits { max_body_bytes: 2048, ..crate::roomy() });
    let big = "00".repeat(4096);
    let (s, v) = call!(
        app,
        TestRequest::post().uri("/api/v1/entries").set_json(serde_json::json!({"entry": big}))
    );
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["error"]["code"], "payload_too_large");
    assert!(v["error"]["message"].as_str().unwrap().contains("2048"));
}

#[actix_web::test]
async fn each_address_has_its_own_bucket() {
    let w = world();
    let app = app!(w.node, Limits { per_ip_per_sec: 1, burst: 2, ..Limits::default() });
    let from = |ip: &str| {
        TestRequest::get().uri("/api/v1/status").peer_addr(format!("{ip}:4000").parse().unwrap())
    };
    for _ in 0..2 {
        let (s, _) = call!(app, from("10.0.0.1"));
        assert_eq!(s, StatusCode::OK);
    }
    let resp = actix_web::test::call_service(&app, from("10.0.0.1").to_request()).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 =
        resp.headers().get(header::RETRY_AFTER).unwrap().to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    let v: serde_json::Value =
        serde_json::from_slice(&actix_web::test::read_body(resp).await).unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    // Another client is not affected; /healthz is never limited.
    let (s, _) = call!(app, from("10.0.0.2"));
    assert_eq!(s, StatusCode::OK);
    let resp = actix_web::test::call_service(
        &app,
        TestRequest::get().uri("/healthz").peer_addr("10.0.0.1:4000".parse().unwrap()).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[actix_web::test]
async fn serve_binds_a_free_port_and_answers_over_tcp() {
    use std::io::{Read, Write};
    let w = world();
    let node: std::sync::Arc<dyn surplus_web::Node> = w.node.clone();
    let (server, addr) =
        surplus_web::serve("127.0.0.1:0".parse().unwrap(), node, Limits::default()).await.unwrap();
    assert_ne!(addr.port(), 0);
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);
    let response = actix_web::rt::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(&format!("\"chain_id\":\"{}\"", crate::CHAIN)), "{response}");
    handle.stop(true).await;
    running.await.unwrap().unwrap();
    let bad = Limits { workers: 0, ..Limits::default() };
    let node: std::sync::Arc<dyn surplus_web::Node> = w.node.clone();
    let err = surplus_web::serve("127.0.0.1:0".parse().unwrap(), node, bad).await.err().unwrap();
    assert!(err.to_string().contains("workers"), "{err}");
}

/// A batch of submissions costs its client one token per entry, as that many requests would:
/// the batch goes through, and the client's next request waits until its bucket refills.
#[actix_web::test]
async fn a_batch_costs_one_request_per_entry() {
    let w = world();
    let app = app!(w.node, Limits { per_ip_per_sec: 1, burst: 2, ..Limits::default() });
    let from = |ip: &str, r: TestRequest| r.peer_addr(format!("{ip}:4000").parse().unwrap());
    // Five entries that do not decode: each is answered, none reaches the node.
    let batch = serde_json::json!({"entries": ["00", "01", "02", "03", "04"]});
    let post = || TestRequest::post().uri("/api/v1/submissions").set_json(&batch);
    let (s, v) = call!(app, from("10.0.0.1", post()));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 5);
    // Two tokens, five spent: three owed, so the next request waits (four seconds, less what
    // has passed since; the exact sums are the limiter's unit test).
    let resp = actix_web::test::call_service(
        &app,
        from("10.0.0.1", TestRequest::get().uri("/api/v1/status")).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 =
        resp.headers().get(header::RETRY_AFTER).unwrap().to_str().unwrap().parse().unwrap();
    assert!((2..=4).contains(&retry), "{retry}");
    // Another client is not affected.
    let (s, _) = call!(app, from("10.0.0.2", TestRequest::get().uri("/api/v1/status")));
    assert_eq!(s, StatusCode::OK);
}
