//! A node that implements only the required methods of `Node` (every ledger, event and faucet
//! method left to its default): the new routes answer with JSON errors a client can act on.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use surplus_contracts::State;
use surplus_ledger::{Entry, Hash};
use surplus_web::testnode::TestNode;
use surplus_web::{Node, Refusal, Status, Submission};

use crate::{app, call, roomy, world};

struct Bare(Arc<TestNode>);

#[async_trait::async_trait]
impl Node for Bare {
    fn state(&self) -> Arc<State> {
        self.0.state()
    }
    fn status(&self) -> Status {
        self.0.status()
    }
    async fn submit(&self, entry: Entry) -> Result<Hash, Refusal> {
        self.0.submit(entry).await
    }
    fn submission(&self, id: &Hash) -> Option<Submission> {
        self.0.submission(id)
    }
    fn provisioning(&self, lease: &Hash) -> Option<serde_json::Value> {
        self.0.provisioning(lease)
    }
    fn credential(&self, lease: &Hash) -> Option<Vec<u8>> {
        self.0.credential(lease)
    }
    fn access(&self, lease: &Hash) -> Option<serde_json::Value> {
        self.0.access(lease)
    }
}

#[actix_web::test]
async fn defaults_answer_not_served() {
    let w = world();
    let bare = Arc::new(Bare(w.node.clone()));
    let app = app!(bare, roomy());
    for (uri, status, code) in [
        ("/api/v1/entries/0", StatusCode::NOT_FOUND, "ledger_not_served"),
        ("/api/v1/blocks/0", StatusCode::NOT_FOUND, "unknown_block"),
        (
            &*format!("/api/v1/leases/{}/proof", "00".repeat(32)),
            StatusCode::NOT_FOUND,
            "ledger_not_served",
        ),
        ("/api/v1/export", StatusCode::NOT_FOUND, "ledger_not_served"),
        ("/api/v1/events", StatusCode::NOT_FOUND, "events_not_served"),
    ] {
        let (s, v) = call!(app, TestRequest::get().uri(uri));
        assert_eq!(s, status, "{uri}: {v}");
        assert_eq!(v["error"]["code"], code, "{uri}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/blocks"));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, serde_json::json!([]));
    let (_, v) = call!(app, TestRequest::get().uri("/api/v1/checkpoints"));
    assert_eq!(v, serde_json::json!([]));
    let (_, v) = call!(app, TestRequest::get().uri("/api/v1/chain"));
    assert_eq!(v["quorum"], 0);
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/markets/gpu.a100@us-east-b/history"));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, serde_json::json!([]));
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/operator"));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["inventory"], serde_json::Value::Null);
    let key = w.buyer.public().to_string();
    let (s, v) = call!(
        app,
        TestRequest::post().uri("/api/v1/faucet").set_json(serde_json::json!({"account": key}))
    );
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "faucet_disabled");
    let resp =
        actix_web::test::call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = actix_web::test::read_body(resp).await;
    assert!(String::from_utf8_lossy(&text).contains("surplus_order_to_lease_seconds_count 0"));
}
