//! The HTTP API through actix's test service, over the real node service: each test starts a
//! consortium of one (`surplus_service::solo`: admission, the journaled mempool, Malachite
//! deciding alone, the sled ledger, receipts, the provider's duties) and calls the API that
//! `surplus_web::configure` registers over it. Blocks are committed asynchronously, so a test
//! that needs an entry applied waits for it ([`committed`], [`wait_for`], `lease!`), always
//! within [`WAIT`].

mod business;
mod credentials;
mod governance;
mod ledger;
mod limits;
mod live;
mod resources;
mod state_proofs;
mod ui_fixture;

use std::sync::Arc;
use std::time::Duration;

use actix_web::test;
use surplus_ledger::{Entry, Hash, SecretKey};
use surplus_market::{Bid, FillRule, Market, Offer, Order, SignedOrder, HOUR_MS};
pub use surplus_service::solo::CHAIN;
use surplus_service::solo::{Solo, Spec};
use surplus_web::{Limits, Node, Submission};

/// Units each buyer starts with.
pub const FUNDS: u64 = 100_000_000;

/// The longest any test waits for the node to do something (commit an entry, grant a lease).
pub const WAIT: Duration = Duration::from_secs(20);

/// The provider (the node's own key), two funded buyers, and the running node.
pub struct World {
    /// The node as the API sees it (its key is `provider`).
    pub node: Arc<dyn Node>,
    /// The provider.
    pub provider: SecretKey,
    /// A funded buyer.
    pub buyer: SecretKey,
    /// Another funded buyer.
    pub other: SecretKey,
    /// The running node; dropping it stops the node.
    pub solo: Solo,
}

/// The provider's key: the node's.
pub fn provider_key() -> SecretKey {
    SecretKey::from_seed([1; 32])
}

/// What [`world`] starts: the provider's node with the two buyers funded, cutting a block only
/// when entries wait (its idle heartbeat is longer than any test), so that the heights and the
/// head a test sees are those its own entries made.
pub fn spec() -> Spec {
    let mut spec = Spec::new(provider_key())
        .fund(SecretKey::from_seed([2; 32]).public(), FUNDS)
        .fund(SecretKey::from_seed([3; 32]).public(), FUNDS);
    spec.heartbeat_ms = 600_000;
    spec
}

/// A fresh node with its keys.
pub fn world() -> World {
    world_of(spec())
}

/// A fresh node started from `spec` (made from [`spec`]), with the keys of [`world`]. Returns
/// once the node has committed the block it cuts as it starts (height 1), so that the first
/// entry of a test lands in block 2.
pub fn world_of(spec: Spec) -> World {
    let solo = Solo::start(spec).unwrap_or_else(|e| panic!("{e:#}"));
    let deadline = std::time::Instant::now() + WAIT;
    while solo.node().status().height < 1 {
        assert!(std::time::Instant::now() < deadline, "no first block within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    World {
        node: solo.node(),
        provider: provider_key(),
        buyer: SecretKey::from_seed([2; 32]),
        other: SecretKey::from_seed([3; 32]),
        solo,
    }
}

/// Limits that no test but the rate-limit tests reach.
pub fn roomy() -> Limits {
    Limits { per_ip_per_sec: 10_000, burst: 10_000, ..Limits::default() }
}

/// Polls `f` until it gives something, for at most [`WAIT`]; panics naming `what` if it never
/// does.
pub async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the entry `id` (acknowledged by `node`) is in a committed block; its height.
/// Panics if the node dropped it.
pub async fn committed(node: &dyn Node, id: &Hash) -> u64 {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match node.submission(id).await {
            Some(Submission::Committed { height }) => return height,
            Some(Submission::Dropped { code, message }) => {
                panic!("entry {} dropped: {code}: {message}", hex::encode(id))
            }
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "entry {} committed: not within {WAIT:?}",
            hex::encode(id)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the committed height is at least `height`.
pub async fn height_at_least(node: &dyn Node, height: u64) {
    wait_for(&format!("height {height}"), || (node.status().height >= height).then_some(())).await
}

/// Waits until the provider's node has done its part for `lease`: the start hook recorded, the
/// credential minted and its grant committed.
pub async fn granted(node: &dyn Node, lease: &Hash) {
    wait_for(&format!("lease {} granted", hex::encode(lease)), || {
        node.state().lease(lease)?.grant.as_ref()?;
        node.credential(lease)?;
        node.provisioning(lease).map(|_| ())
    })
    .await
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

/// Submits `entry` through the API, expects 202, and waits until it is committed; its height.
#[macro_export]
macro_rules! commit {
    ($app:expr, $node:expr, $entry:expr) => {{
        let entry: &surplus_ledger::Entry = $entry;
        let (s, v) = $crate::call!($app, $crate::submit_req(entry));
        assert_eq!(s, actix_web::http::StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["id"], hex::encode(entry.id()));
        $crate::committed(&*$node, &entry.id()).await
    }};
}

/// Makes a lease from `provider` to `buyer` through the API and waits for it (and, when the
/// node is its provider, for its grant); its id.
#[macro_export]
macro_rules! lease {
    ($app:expr, $node:expr, $provider:expr, $buyer:expr) => {{
        let node: &dyn surplus_web::Node = &*$node;
        let before: Vec<surplus_ledger::Hash> = node.state().leases().map(|l| l.id).collect();
        let nonce = $crate::next_nonce();
        let provider: &surplus_ledger::SecretKey = $provider;
        $crate::commit!($app, node, &$crate::offer(provider, 2, 100, nonce));
        let bid = $crate::bid($buyer, 1, 150, nonce);
        $crate::commit!($app, node, &bid);
        let id = $crate::wait_for("the new lease", || {
            let new: Vec<surplus_ledger::Hash> =
                node.state().leases().map(|l| l.id).filter(|id| !before.contains(id)).collect();
            assert!(new.len() <= 1, "one new lease, not {}", new.len());
            new.first().copied()
        })
        .await;
        if provider.public() == node.status().public_key {
            $crate::granted(node, &id).await;
        }
        id
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
