//! The HTTP API through actix's test service, on a real contracts state. The node behind it is
//! `testnode::TestNode`, a stand-in for the real node at the `Node` boundary: it applies each
//! submitted entry as a block of its own (no mempool, gossip or consensus).

mod bare;
mod business;
mod credentials;
mod ledger;
mod limits;
mod live;
mod resources;
mod ui_fixture;

use std::sync::Arc;

use actix_web::test;
use surplus_ledger::{Entry, SecretKey};
use surplus_market::{Bid, FillRule, Market, Offer, Order, SignedOrder, HOUR_MS};
use surplus_web::testnode::{TestNode, CHAIN};
use surplus_web::Limits;

/// Units each buyer starts with.
pub const FUNDS: u64 = 100_000_000;

/// The provider (the node's own key), two funded buyers.
pub struct World {
    /// The node (its key is `provider`).
    pub node: Arc<TestNode>,
    /// The provider.
    pub provider: SecretKey,
    /// A funded buyer.
    pub buyer: SecretKey,
    /// Another funded buyer.
    pub other: SecretKey,
}

/// A fresh node with its keys.
pub fn world() -> World {
    let provider = SecretKey::from_seed([1; 32]);
    let buyer = SecretKey::from_seed([2; 32]);
    let other = SecretKey::from_seed([3; 32]);
    let node = Arc::new(TestNode::new(
        provider.clone(),
        &[(buyer.public(), FUNDS), (other.public(), FUNDS)],
    ));
    World { node, provider, buyer, other }
}

/// Limits that no test but the rate-limit tests reach.
pub fn roomy() -> Limits {
    Limits { per_ip_per_sec: 10_000, burst: 10_000, ..Limits::default() }
}

/// The API as a test service over `node` with `limits`.
#[macro_export]
macro_rules! app {
    ($node:expr, $limits:expr) => {{
        let node: std::sync::Arc<dyn surplus_web::Node> = $node.clone();
        let limits = $limits;
        actix_web::test::init_service(
            actix_web::App::new().configure(move |cfg| surplus_web::configure(cfg, node, limits)),
        )
        .await
    }};
}

/// Sends a `TestRequest` and gives the status and the JSON body (`Value::Null` if not JSON).
#[macro_export]
macro_rules! call {
    ($app:expr, $req:expr) => {{
        let resp = actix_web::test::call_service(&$app, $req.to_request()).await;
        let status = resp.status();
        let body = actix_web::test::read_body(resp).await;
        (
            status,
            serde_json::from_slice::<serde_json::Value>(&body).unwrap_or(serde_json::Value::Null),
        )
    }};
}

/// Makes a lease from `provider` to `buyer` through the API; its id.
#[macro_export]
macro_rules! lease {
    ($app:expr, $node:expr, $provider:expr, $buyer:expr) => {{
        let before: Vec<surplus_ledger::Hash> = $node.state().leases().map(|l| l.id).collect();
        let nonce = $crate::next_nonce();
        let (s, v) =
            $crate::call!($app, $crate::submit_req(&$crate::offer($provider, 2, 100, nonce)));
        assert_eq!(s, actix_web::http::StatusCode::ACCEPTED, "{v}");
        let (s, v) = $crate::call!($app, $crate::submit_req(&$crate::bid($buyer, 1, 150, nonce)));
        assert_eq!(s, actix_web::http::StatusCode::ACCEPTED, "{v}");
        let new: Vec<surplus_ledger::Hash> =
            $node.state().leases().map(|l| l.id).filter(|id| !before.contains(id)).collect();
        assert_eq!(new.len(), 1, "one new lease");
        new[0]
    }};
}

/// Wall-clock ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The market every test trades in.
pub fn market() -> Market {
    Market::new("gpu.a100", "us-east-b")
}

/// An offer of `slots` slots at `reserve`, open for two days.
pub fn offer(key: &SecretKey, slots: u32, reserve: u64, nonce: u64) -> Entry {
    let now = now_ms();
    let o = Order::Offer(Offer {
        market: market(),
        slots,
        from_ms: now,
        until_ms: now + 48 * HOUR_MS,
        reserve,
        min_hours: 1,
        expiry_ms: now + 24 * HOUR_MS,
        nonce,
    });
    SignedOrder::sign(CHAIN, o, key).0
}

/// A bid for `slots` slots for 24 hours at up to `limit`.
pub fn bid(key: &SecretKey, slots: u32, limit: u64, nonce: u64) -> Entry {
    let now = now_ms();
    let b = Order::Bid(Bid {
        market: market(),
        slots,
        hours: 24,
        limit,
        earliest_ms: now,
        latest_ms: now + HOUR_MS,
        fill: FillRule::AllOrNone,
        expiry_ms: now + HOUR_MS,
        nonce,
    });
    SignedOrder::sign(CHAIN, b, key).0
}

/// `POST /api/v1/entries` with `entry`.
pub fn submit_req(entry: &Entry) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/api/v1/entries")
        .set_json(serde_json::json!({"entry": hex::encode(entry.encode())}))
}

/// A nonce no other order of the test binary uses.
pub fn next_nonce() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1000);
    N.fetch_add(1, Ordering::Relaxed)
}
