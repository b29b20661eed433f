//! Serves the API and the web UI over the in-process `TestNode` (one validator, every entry
//! committed as its own block, a faucet, sample offers by the node's key), to work on the UI
//! and run `tests/browser/buyer-flow.mjs` without a devnet:
//!
//! ```sh
//! cargo run -p surplus-web --features test-utils --example ui_testnode -- 127.0.0.1:32100
//! SURPLUS_UI=http://127.0.0.1:32100/ node tests/browser/buyer-flow.mjs
//! ```

use std::sync::Arc;

use surplus_ledger::SecretKey;
use surplus_market::{Market, Offer, Order, SignedOrder, HOUR_MS};
use surplus_web::testnode::{TestNode, CHAIN};
use surplus_web::{Limits, Node};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:32100".into());
    let addr = addr.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad address {addr}: {e}"))
    })?;
    let provider = SecretKey::from_seed([1; 32]);
    let faucet = SecretKey::from_seed([9; 32]);
    let node = Arc::new(TestNode::new(provider.clone(), &[(faucet.public(), 1_000_000_000_000)]));
    node.set_faucet(Some((faucet, 100_000_000)));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(std::io::Error::other)?
        .as_millis() as u64;
    for (i, (class, region, reserve)) in [
        ("vm.2c8g", "eu-west-a", 40_000),
        ("vm.4c16g", "eu-west-a", 80_000),
        ("gpu.a100", "us-east-b", 2_000_000),
    ]
    .into_iter()
    .enumerate()
    {
        let offer = Order::Offer(Offer {
            market: Market::new(class, region),
            slots: 8,
            from_ms: now,
            until_ms: now + 7 * 24 * HOUR_MS,
            reserve,
            min_hours: 1,
            expiry_ms: now + 7 * 24 * HOUR_MS,
            nonce: i as u64 + 1,
        });
        let (entry, _) = SignedOrder::sign(CHAIN, offer, &provider);
        node.submit(entry).await.map_err(std::io::Error::other)?;
    }
    let limits = Limits { per_ip_per_sec: 10_000, burst: 10_000, ..Limits::default() };
    let (server, bound) = surplus_web::serve(addr, node, limits).await?;
    println!("UI and API over a test node: http://{bound}/");
    server.await
}
