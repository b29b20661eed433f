//! Serves the API and the web UI over a real node service in this process
//! (`surplus_service::solo`: a consortium of one, with a faucet, and an inventory from which the
//! node offers sample capacity itself), to work on the UI and run
//! `tests/browser/buyer-flow.mjs` without a devnet:
//!
//! ```sh
//! cargo run -p surplus-web --example ui_solo -- 127.0.0.1:32100
//! SURPLUS_UI=http://127.0.0.1:32100/ node tests/browser/buyer-flow.mjs
//! ```

use surplus_ledger::SecretKey;
use surplus_service::solo::{Solo, Spec};
use surplus_web::Limits;

/// Sample pools: class, region, slots and reserve (units per slot-hour).
const POOLS: [(&str, &str, u32, u64); 3] = [
    ("vm.2c8g", "eu-west-a", 8, 40_000),
    ("vm.4c16g", "eu-west-a", 8, 80_000),
    ("gpu.a100", "us-east-b", 8, 2_000_000),
];

fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:32100".into());
    let addr: std::net::SocketAddr =
        addr.parse().map_err(|e| anyhow::anyhow!("bad address {addr}: {e}"))?;
    let mut spec = Spec::new(SecretKey::from_seed([1; 32]));
    spec.faucet = Some((SecretKey::from_seed([9; 32]), 100_000_000));
    spec.inventory = Some(
        POOLS
            .iter()
            .map(|(class, region, slots, reserve)| {
                format!(
                    "[[pool]]\nclass = \"{class}\"\nregion = \"{region}\"\nslots = {slots}\n\
                     reserve = {reserve}\n"
                )
            })
            .collect(),
    );
    let solo = Solo::start(spec)?;
    // The node serves its API on a port the system picked; serve it at `addr` too.
    let node = solo.node();
    actix_web::rt::System::new().block_on(async move {
        let limits = Limits { per_ip_per_sec: 10_000, burst: 10_000, ..Limits::default() };
        let (server, bound) = surplus_web::serve(addr, node, limits).await?;
        println!("UI and API over a solo node: http://{bound}/ (also at {})", solo.url());
        let handle = server.handle();
        tokio::select! {
            served = server => served?,
            _ = tokio::signal::ctrl_c() => handle.stop(true).await,
        }
        // Stops the node and removes its directory.
        solo.stop()
    })
}
