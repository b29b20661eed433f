//! The JSON API under `/api/v1`, one module per resource. Hashes and keys are lowercase hex,
//! amounts integers in units, errors `{"error": {"code", "message"}}` ([`crate::ErrorBody`]).

mod accounts;
mod blocks;
mod chain;
mod checkpoints;
mod credentials;
mod decode;
mod entries;
mod events;
mod export;
mod faucet;
mod gateway;
mod governance;
mod leases;
mod markets;
mod metrics;
pub mod openapi;
mod operator;
mod orders;
pub(crate) mod routes;
mod state_proofs;
mod status;

use std::sync::Arc;
use surplus_contracts::Code;

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::{from_fn, ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use surplus_ledger::{parse_hex, Hash, PublicKey};

pub use accounts::AccountView;
pub use blocks::{
    BlockSummary, BlockView, CertificateView, CommitView, DEFAULT_BLOCKS, MAX_BLOCKS,
};
pub use chain::ChainView;
pub use credentials::{ChallengeView, CredentialRequest, CredentialToken};
pub use decode::{decode, EntryView};
pub use entries::EntryAt;
pub use entries::{BatchResult, Submit, SubmitMany, Submitted, SubmittedMany, MAX_BATCH_ENTRIES};
pub use events::{frame as event_frame, MAX_STREAMS_PER_IP, PROBE};
pub use faucet::FaucetRequest;
pub use gateway::{GatewayAnswer, GatewayRequest};
pub use governance::{GovernanceView, ParamsView, ProposalView, RotationView, SetPeriod};
pub use leases::{LeaseList, LeaseView, DEFAULT_LEASES, MAX_LEASES};
pub use markets::{
    BookOrder, BookSide, BookView, Level, MarketSummary, DEFAULT_HISTORY, MAX_BOOK_ORDERS,
    MAX_HISTORY,
};
pub use operator::{Earnings, OperatorView, MAX_OPERATOR_LEASES};
pub use orders::OrderView;

use crate::challenge::Challenges;
use crate::error::{ApiError, ApiResult};
use crate::limits::{rate_limit, Limits, RateLimiter};
use crate::node::Node;

/// What every handler shares.
pub(crate) struct Ctx {
    pub(crate) node: Arc<dyn Node>,
    pub(crate) challenges: Challenges,
    pub(crate) cache: markets::AnswerCache,
    pub(crate) streams: events::Streams,
    /// Open HTTP connections (`None` for an app not served by [`crate::serve`]).
    pub(crate) conns: Option<Arc<crate::conns::Connections>>,
}

/// Registers the API, `/healthz`, the limits and the JSON error handlers on `cfg`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig, node: Arc<dyn Node>, limits: Limits) {
    configure_shared(cfg, &Shared::new(node, &limits, None), &limits);
}

/// State every HTTP worker shares: issued challenges and rate-limit buckets must be one set
/// per node, not one per worker thread.
#[derive(Clone)]
pub(crate) struct Shared {
    ctx: web::Data<Ctx>,
    limiter: web::Data<RateLimiter>,
}

impl Shared {
    /// `conns`: the server's open connections, for `/metrics` (`None` for an app not served by
    /// [`crate::serve`]).
    pub(crate) fn new(
        node: Arc<dyn Node>,
        limits: &Limits,
        conns: Option<Arc<crate::conns::Connections>>,
    ) -> Self {
        Self {
            ctx: web::Data::new(Ctx {
                node,
                challenges: Challenges::default(),
                cache: markets::AnswerCache::default(),
                streams: events::Streams::new(limits.max_event_streams),
                conns,
            }),
            limiter: web::Data::new(RateLimiter::new(limits)),
        }
    }
}

/// Registers the API on `cfg` with state shared across workers.
pub(crate) fn configure_shared(cfg: &mut web::ServiceConfig, shared: &Shared, limits: &Limits) {
    let max_body = limits.max_body_bytes;
    cfg.app_data(shared.ctx.clone())
        .app_data(shared.limiter.clone())
        .app_data(
            web::JsonConfig::default()
                .limit(max_body)
                .error_handler(move |e, req| json_error(e, req, max_body).into()),
        )
        .app_data(web::PathConfig::default().error_handler(|e, req| path_error(e, req).into()))
        .app_data(web::QueryConfig::default().error_handler(|e, req| query_error(e, req).into()))
        .configure(crate::ui::configure);
    let mut scope = web::scope(routes::API)
        .wrap(ErrorHandlers::new().default_handler(json_errors))
        .wrap(from_fn(rate_limit));
    // One resource per path, with a route per method.
    let mut paths: Vec<&'static str> = Vec::new();
    let all = routes::routes();
    for r in &all {
        if r.handler.is_some() && !paths.contains(&r.path) {
            paths.push(r.path);
        }
    }
    for path in paths {
        let mut resource = web::resource(path.strip_prefix(routes::API).unwrap_or(path))
            .default_service(web::to(method_not_allowed));
        for r in all.iter().filter(|r| r.path == path) {
            if let Some(handler) = r.handler {
                resource = resource.route(handler().method(r.method.clone()));
            }
        }
        if path.starts_with(routes::API) {
            scope = scope.service(resource);
        } else {
            cfg.service(resource);
        }
    }
    cfg.service(scope.default_service(web::to(not_found))).default_service(web::to(not_found));
}

/// Any path nothing serves.
async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        Code::NoRoute,
        format!(
            "nothing is served at {} {}; the API lives under /api/v1; GET /openapi.json lists \
             every route",
            req.method(),
            req.path()
        ),
    )
    .error_response()
}

/// A method a path does not serve.
async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    not_allowed(&req).error_response()
}

fn not_allowed(req: &HttpRequest) -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.path()),
    )
}

/// Turns error responses that are not JSON yet (a method a route does not serve) into JSON.
fn json_errors<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let (req, res) = res.into_parts();
    let err = match res.status() {
        StatusCode::METHOD_NOT_ALLOWED => not_allowed(&req),
        StatusCode::NOT_FOUND => ApiError::new(Code::NotFound, format!("{} not found", req.path())),
        s if s.is_server_error() => ApiError::Internal(format!("{s} from {}", req.path())),
        s => ApiError::new(Code::BadRequest, s.canonical_reason().unwrap_or("bad request")),
    };
    let res: HttpResponse<BoxBody> = err.error_response();
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, res).map_into_right_body()))
}

fn json_error(e: JsonPayloadError, req: &HttpRequest, limit: usize) -> ApiError {
    match e {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(
                Code::PayloadTooLarge,
                format!("the request body exceeds the limit of {limit} bytes"),
            )
        }
        JsonPayloadError::ContentType => ApiError::new(
            Code::UnsupportedMediaType,
            "the request body must be JSON (Content-Type: application/json)",
        ),
        JsonPayloadError::Deserialize(e) => ApiError::new(
            Code::BadJson,
            format!("the JSON body is not what {} {} takes: {e}", req.method(), req.path()),
        ),
        other => ApiError::new(Code::BadBody, format!("cannot read the body: {other}")),
    }
}

fn path_error(e: PathError, req: &HttpRequest) -> ApiError {
    ApiError::new(Code::BadPath, format!("{}: {e}", req.path()))
}

fn query_error(e: QueryPayloadError, req: &HttpRequest) -> ApiError {
    ApiError::new(Code::BadQuery, format!("the query of {} is not valid: {e}", req.path()))
}

/// Runs `f` on the node off the HTTP workers: ledger reads touch the disk, and the workers are
/// few.
pub(crate) async fn off_worker<T: Send + 'static>(
    ctx: &Ctx,
    f: impl FnOnce(&dyn Node) -> T + Send + 'static,
) -> ApiResult<T> {
    let node = ctx.node.clone();
    web::block(move || f(&*node))
        .await
        .map_err(|e| ApiError::Internal(format!("a blocking task failed: {e}")))
}

/// Parses a 32-byte hash in hex, naming `what` in the 400.
pub(crate) fn parse_hash(s: &str, what: &str) -> ApiResult<Hash> {
    parse_hex::<32>(s, what).map_err(|e| ApiError::new(Code::BadHex, e))
}

/// Parses a public key in hex, naming `what` in the 400.
pub(crate) fn parse_key(s: &str, what: &str) -> ApiResult<PublicKey> {
    parse_hex::<32>(s, what).map(PublicKey).map_err(|e| ApiError::new(Code::BadKey, e))
}

/// Wall-clock time, ms since the epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
