//! The JSON API under `/api/v1`, one module per resource. Hashes and keys are lowercase hex,
//! amounts integers in units, errors `{"error": {"code", "message"}}` ([`crate::ErrorBody`]).

mod accounts;
mod blocks;
mod credentials;
mod entries;
mod gateway;
mod leases;
mod markets;
mod status;

use std::sync::Arc;

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::{from_fn, ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use surplus_ledger::{parse_hex, Hash, PublicKey};

pub use accounts::AccountView;
pub use credentials::{ChallengeView, CredentialRequest, CredentialToken};
pub use entries::{Submit, Submitted};
pub use gateway::{GatewayAnswer, GatewayRequest};
pub use leases::{LeaseList, LeaseView, DEFAULT_LEASES, MAX_LEASES};
pub use markets::{BookOrder, BookSide, BookView, Level, MarketSummary, MAX_BOOK_ORDERS};

use crate::challenge::Challenges;
use crate::error::{ApiError, ApiResult};
use crate::limits::{rate_limit, Limits, RateLimiter};
use crate::node::Node;

/// What every handler shares.
pub(crate) struct Ctx {
    pub(crate) node: Arc<dyn Node>,
    pub(crate) challenges: Challenges,
}

/// Registers the API, `/healthz`, the limits and the JSON error handlers on `cfg`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig, node: Arc<dyn Node>, limits: Limits) {
    configure_shared(cfg, &Shared::new(node, &limits), &limits);
}

/// State every HTTP worker shares: issued challenges and rate-limit buckets must be one set
/// per node, not one per worker thread.
#[derive(Clone)]
pub(crate) struct Shared {
    ctx: web::Data<Ctx>,
    limiter: web::Data<RateLimiter>,
}

impl Shared {
    pub(crate) fn new(node: Arc<dyn Node>, limits: &Limits) -> Self {
        Self {
            ctx: web::Data::new(Ctx { node, challenges: Challenges::default() }),
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
        .route("/healthz", web::get().to(status::healthz))
        .configure(crate::ui::configure)
        .service(
            web::scope("/api/v1")
                .wrap(ErrorHandlers::new().default_handler(json_errors))
                .wrap(from_fn(rate_limit))
                .service(web::resource("/status").route(web::get().to(status::status)))
                .service(web::resource("/blocks/{height}").route(web::get().to(blocks::block)))
                .service(web::resource("/entries").route(web::post().to(entries::submit)))
                .service(web::resource("/markets").route(web::get().to(markets::markets)))
                .service(web::resource("/book").route(web::get().to(markets::book)))
                .service(web::resource("/accounts/{key}").route(web::get().to(accounts::account)))
                .service(web::resource("/leases").route(web::get().to(leases::list)))
                .service(web::resource("/leases/{id}").route(web::get().to(leases::one)))
                .service(
                    web::resource("/leases/{id}/challenge")
                        .route(web::post().to(credentials::challenge)),
                )
                .service(
                    web::resource("/leases/{id}/credential")
                        .route(web::post().to(credentials::credential)),
                )
                .service(web::resource("/gateway").route(web::post().to(gateway::gateway)))
                .default_service(web::to(not_found)),
        )
        .default_service(web::to(not_found));
}

/// Any path nothing serves.
async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::not_found(
        "no_route",
        format!(
            "nothing is served at {} {}; the API lives under /api/v1 (status, entries, markets, \
             book, accounts, leases, gateway)",
            req.method(),
            req.path()
        ),
    )
    .error_response()
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
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            path: req.path().to_owned(),
        },
        StatusCode::NOT_FOUND => {
            ApiError::not_found("not_found", format!("{} not found", req.path()))
        }
        s if s.is_server_error() => ApiError::Internal(format!("{s} from {}", req.path())),
        s => ApiError::BadRequest {
            code: "bad_request",
            message: s.canonical_reason().unwrap_or("bad request").to_owned(),
        },
    };
    let res: HttpResponse<BoxBody> = err.error_response();
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, res).map_into_right_body()))
}

fn json_error(e: JsonPayloadError, req: &HttpRequest, limit: usize) -> ApiError {
    match e {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::PayloadTooLarge { limit }
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) => ApiError::bad_request(
            "bad_json",
            format!("the JSON body is not what {} {} takes: {e}", req.method(), req.path()),
        ),
        other => ApiError::bad_request("bad_body", format!("cannot read the body: {other}")),
    }
}

fn path_error(e: PathError, req: &HttpRequest) -> ApiError {
    ApiError::bad_request("bad_path", format!("{}: {e}", req.path()))
}

fn query_error(e: QueryPayloadError, req: &HttpRequest) -> ApiError {
    ApiError::bad_request("bad_query", format!("the query of {} is not valid: {e}", req.path()))
}

/// Parses a 32-byte hash in hex, naming `what` in the 400.
pub(crate) fn parse_hash(s: &str, what: &str) -> ApiResult<Hash> {
    parse_hex::<32>(s, what).map_err(|e| ApiError::bad_request("bad_hex", e))
}

/// Parses a public key in hex, naming `what` in the 400.
pub(crate) fn parse_key(s: &str, what: &str) -> ApiResult<PublicKey> {
    parse_hex::<32>(s, what).map(PublicKey).map_err(|e| ApiError::bad_request("bad_key", e))
}

/// Wall-clock time, ms since the epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
