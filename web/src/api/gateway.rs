//! `POST /api/v1/gateway`: the provider's gateway checks a presented token and answers with the
//! lease's access details.

use actix_web::{web, HttpResponse};
use base64::Engine as _;
use surplus_contracts::credential::{self, Refusal, Request};
use surplus_contracts::Code;

use super::{now_ms, parse_hash, Ctx};
use crate::error::{ApiError, ApiResult};
pub use surplus_api::{GatewayAnswer, GatewayRequest, SshCertificateRequest};

/// `POST /api/v1/leases/{id}/ssh-certificate`: the lease's credential (granting `write`) and an
/// SSH public key → an OpenSSH user certificate from the provider's authority.
pub(crate) async fn ssh_certificate(
    ctx: web::Data<Ctx>,
    path: web::Path<String>,
    body: web::Json<SshCertificateRequest>,
) -> ApiResult<HttpResponse> {
    let lease_id = parse_hash(&path, "id")?;
    let token = decode_token(&body.token)?;
    let state = ctx.node.state();
    let request = Request { lease: lease_id, operation: "write".into(), now_ms: now_ms() };
    authorize(&ctx, &state, &token, &request)?;
    let token_hash = *blake3::hash(&token).as_bytes();
    let cert = ctx
        .node
        .ssh_certificate(lease_id, token_hash, body.public_key.clone())
        .await
        .map_err(ApiError::Refused)?;
    Ok(HttpResponse::Ok().json(cert))
}

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

/// `credential::authorize`, telling an ended lease (which left the live state: the node's
/// history tells how it ended) from an unknown one.
fn authorize(
    ctx: &Ctx,
    state: &surplus_contracts::State,
    token: &[u8],
    request: &Request,
) -> ApiResult<surplus_contracts::credential::Scope> {
    credential::authorize(state, token, request).map_err(|r| match r {
        Refusal::UnknownLease(_) => {
            let ended = ctx.node.ended_lease(&request.lease);
            match ended.and_then(|l| credential::how_ended(l.status)) {
                Some(how) => refused(Refusal::LeaseEnded(how)),
                None => refused(r),
            }
        }
        other => refused(other),
    })
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
    let scope = authorize(&ctx, &state, &token, &request)?;
    Ok(HttpResponse::Ok().json(GatewayAnswer {
        lease: lease_id,
        access: ctx.node.access(&lease_id),
        scope,
    }))
}
