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
mod conns;
mod error;
mod limits;
pub mod metrics;
mod node;
mod status_page;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpServer, ResponseError};

pub use challenge::{challenge_bytes, CHALLENGE_TAG, CHALLENGE_VALIDITY_MS, MAX_CHALLENGES};
pub use error::{ApiError, ApiResult, ErrorBody, ErrorDetail, SHED_RETRY_AFTER_SECS};
pub use limits::{Limits, MAX_TRACKED_CLIENTS};
pub use metrics::{GossipCounts, Histogram, Metrics, ProbeCounts};
pub use node::{
    CapacityPoint, DiskStatus, DiskUsed, Event, FaucetGrant, LedgerError, Node, Operator,
    OrderStatus, Peer, PricePoint, RecentBlock, Refusal, Status, Submission,
};
pub use surplus_api::{
    Availability, BondSubmitted, CapacityView, ClassCapacity, ConsortiumStatus, Incident,
    IncidentKind, MaintenanceSubmitted, OperatorMaintenance, ProviderAvailability, SshCertificate,
    ValidatorUp,
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
    serve_with_metrics(addr, None, node, limits).await.map(|(server, api, _)| (server, api))
}

/// [`serve`], with `/metrics` on an address of its own when `metrics` is given: there it is
/// the only route, and the API's address answers it 404. Returns the server and the bound API
/// and metrics addresses.
pub async fn serve_with_metrics(
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
    node: Arc<dyn Node>,
    limits: Limits,
) -> std::io::Result<(actix_web::dev::Server, SocketAddr, Option<SocketAddr>)> {
    limits.validate().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("HTTP limits: {e}"))
    })?;
    let workers = limits.workers;
    let conns = conns::Connections::new(&limits);
    let shared = api::Shared::new(node, &limits, Some(conns.clone()));
    let (idle, per_worker) = (limits.idle_timeout, limits.max_connections.div_ceil(workers));
    let metrics_at = web::Data::new(MetricsAt::default());
    let at = metrics_at.clone();
    let mut server = HttpServer::new(move || {
        let (shared, limits) = (shared.clone(), limits.clone());
        App::new()
            .app_data(at.clone())
            .wrap(from_fn(split_metrics))
            .configure(move |cfg| api::configure_shared(cfg, &shared, &limits))
    })
    .workers(workers)
    // Counted and limited per client address at accept; the workers' own ceiling is a backstop.
    .on_connect(move |io, data| conns.on_connect(io, data))
    .max_connections(per_worker.saturating_add(1))
    .keep_alive(idle)
    .client_request_timeout(idle)
    .disable_signals()
    .shutdown_timeout(5)
    .bind(addr)
    .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen for HTTP on {addr}: {e}")))?;
    let bound = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other(format!("binding {addr} gave no address")))?;
    let mut metrics_bound = None;
    if let Some(m) = metrics {
        server = server.bind(m).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen for /metrics on {m}: {e}"))
        })?;
        let b = server.addrs().get(1).copied().ok_or_else(|| {
            std::io::Error::other(format!("binding {m} for /metrics gave no address"))
        })?;
        let _ = metrics_at.0.set(b);
        metrics_bound = Some(b);
    }
    Ok((server.run(), bound, metrics_bound))
}

/// The address `/metrics` is served on when it has one of its own (set once bound).
#[derive(Debug, Default)]
struct MetricsAt(std::sync::OnceLock<SocketAddr>);

/// With a metrics address: `/metrics` only there, and only `/metrics` there.
async fn split_metrics<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let at = req.app_data::<web::Data<MetricsAt>>().and_then(|m| m.0.get().copied());
    if let Some(at) = at {
        let on_metrics = req.app_config().local_addr() == at;
        if on_metrics != (req.path() == "/metrics") {
            let why = if on_metrics {
                "this address serves /metrics only"
            } else {
                "/metrics is served on the node's metrics address ([http] metrics_listen)"
            };
            let response = ApiError::new(surplus_contracts::Code::NotFound, why).error_response();
            return Ok(req.into_response(response).map_into_right_body());
        }
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}
