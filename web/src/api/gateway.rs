//! `POST /api/v1/gateway`: the provider's gateway checks a presented token and answers with the
//! lease's access details.

use actix_web::{web, HttpResponse};
use base64::Engine as _;
use surplus_contracts::credential::{self, Refusal, Request};
use surplus_contracts::Code;

use super::{now_ms, parse_hash, Ctx};
use crate::error::{ApiError, ApiResult};
pub use surplus_api::{GatewayAnswer, GatewayRequest};

fn decode_token(s: &str) -> ApiResult<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let s = s.trim();
    [URL_SAFE, URL_SAFE_NO_PAD, STANDARD, STANDARD_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
        .ok_or_else(|| ApiError::new(Code::BadToken, "the token is not base64"))
}

fn refused(r: Refusal) -> ApiError {
    ApiError::new(r.code(), r.to_string())
}

/// Verifies the token against the committed state (lease, provider key, revocations) at the
/// wall-clock time.
pub(crate) async fn gateway(
    ctx: web::Data<Ctx>,
    body: web::Json<GatewayRequest>,
) -> ApiResult<HttpResponse> {
    let token = decode_token(&body.token)?;
    let state = ctx.node.state();
    let lease_id = match &body.lease {
        Some(h) => parse_hash(h, "lease")?,
        None => {
            let me = ctx.node.status().public_key;
            let scope = credential::inspect(&token, &me).map_err(|r| match r {
                Refusal::Forged => ApiError::new(
                    Code::TokenNotOurs,
                    format!(
                        "the token is not rooted in this node's key {me}; present it to the \
                         gateway of the lease's provider, or name the lease"
                    ),
                ),
                other => refused(other),
            })?;
            parse_hash(&scope.lease, "the token's lease").map_err(|_| {
                refused(Refusal::Malformed("the token's lease is not a hash".into()))
            })?
        }
    };
    let request = Request { lease: lease_id, operation: body.operation.clone(), now_ms: now_ms() };
    let scope = credential::authorize(&state, &token, &request).map_err(|r| match r {
        // Ended leases leave the live state; the node's history tells how they ended.
        Refusal::UnknownLease(_) => {
            match ctx.node.ended_lease(&lease_id).and_then(|l| credential::how_ended(l.status)) {
                Some(how) => refused(Refusal::LeaseEnded(how)),
                None => refused(r),
            }
        }
        other => refused(other),
    })?;
    Ok(HttpResponse::Ok().json(GatewayAnswer {
        lease: lease_id,
        access: ctx.node.access(&lease_id),
        scope,
    }))
}
