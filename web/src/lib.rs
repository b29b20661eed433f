//! Surplus web: the JSON HTTP API every node serves, and the web UI.
//!
//! - [`Node`]: what the API asks of the node (state, status, submission, provisioning,
//!   credentials); the node implements it.
//! - [`configure`] registers the API on an actix-web app; [`serve`] binds and runs one.
//! - [`Limits`]: body size, a token bucket per client IP, worker threads.
//! - [`ApiError`]: the one error type; every error is `{"error": {"code", "message"}}`.
//! - [`api`]: the request and response types of each resource, for clients.
//! - [`challenge_bytes`]: what a buyer signs to fetch a lease's credential.
//!
//! Routes: `GET /healthz`, `GET /metrics` (Prometheus text), `GET /openapi.json` (the
//! reference of every route), the UI at `/`, and under `/api/v1`: `status`, `chain`,
//! `entries` (POST) and `entries/{index}`, `blocks` and `blocks/{height}`, `markets`,
//! `markets/{market}/history`, `book`, `orders`, `accounts/{key}`, `leases`, `leases/{id}`,
//! `leases/{id}/proof`, `leases/{id}/challenge` and `credential` (POST), `gateway` (POST),
//! `checkpoints`, `export`, `events` (server-sent events), `operator`, `faucet` (POST).
//! `docs/api.md` is the overview.
//!
//! ```no_run
//! # async fn run(node: std::sync::Arc<dyn surplus_web::Node>) -> std::io::Result<()> {
//! let (server, addr) =
//!     surplus_web::serve("127.0.0.1:0".parse().unwrap(), node, surplus_web::Limits::default())
//!         .await?;
//! println!("API at http://{addr}/api/v1");
//! server.await
//! # }
//! ```
#![warn(clippy::unwrap_used)]

pub mod api;
mod challenge;
mod error;
mod limits;
pub mod metrics;
mod node;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};

pub use challenge::{challenge_bytes, CHALLENGE_TAG, CHALLENGE_VALIDITY_MS, MAX_CHALLENGES};
pub use error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
pub use limits::{Limits, MAX_TRACKED_CLIENTS};
pub use metrics::{GossipCounts, Histogram, Metrics};
pub use node::{
    CapacityPoint, DiskStatus, DiskUsed, Event, FaucetGrant, LedgerError, Node, Operator, Peer,
    PricePoint, RecentBlock, Refusal, Status, Submission,
};

/// Registers the API, `/healthz` and the JSON error handling on an app:
/// `App::new().configure(|cfg| surplus_web::configure(cfg, node, limits))`.
pub fn configure(cfg: &mut web::ServiceConfig, node: Arc<dyn Node>, limits: Limits) {
    api::configure(cfg, node, limits);
}

/// Binds `addr` (port 0 picks a free port) and starts serving the API on `limits.workers`
/// threads. Returns the running server (await it, or stop it with `server.handle().stop(true)`)
/// and the bound address. The server does not handle signals: the node decides when to stop.
pub async fn serve(
    addr: SocketAddr,
    node: Arc<dyn Node>,
    limits: Limits,
) -> std::io::Result<(actix_web::dev::Server, SocketAddr)> {
    limits.validate().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("HTTP limits: {e}"))
    })?;
    let workers = limits.workers;
    let shared = api::Shared::new(node, &limits);
    let server = HttpServer::new(move || {
        let (shared, limits) = (shared.clone(), limits.clone());
        App::new().configure(move |cfg| api::configure_shared(cfg, &shared, &limits))
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(5)
    .bind(addr)
    .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen for HTTP on {addr}: {e}")))?;
    let bound = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other(format!("binding {addr} gave no address")))?;
    Ok((server.run(), bound))
}
