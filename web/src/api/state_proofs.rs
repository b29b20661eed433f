//! `GET /api/v1/accounts/{key}/proof` and `GET /api/v1/leases/{id}/state-proof`: an account or
//! a lease (or its absence) proven against the state root of the head block, with the block's
//! header and commit certificate ([`surplus_api::StateProof`]), to verify offline with
//! `surplus state verify-proof`.

use actix_web::{web, HttpResponse};
use surplus_contracts::Code;
use surplus_ledger::Hash;

use super::{off_worker, parse_hash, parse_key, Ctx};
use crate::error::{ApiError, ApiResult};
pub use surplus_api::{StateProof, Subject};

/// An account's state proof.
pub(crate) async fn account(
    ctx: web::Data<Ctx>,
    key: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let key = parse_key(&key, "account key")?;
    answer(&ctx, Subject::Account(key)).await
}

/// A lease's state proof (an exclusion proof for an id that is no live lease).
pub(crate) async fn lease(ctx: web::Data<Ctx>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id: Hash = parse_hash(&id, "lease id")?;
    answer(&ctx, Subject::Lease(id)).await
}

/// Proves `subject` in the head state against the head block, read from the ledger store (the
/// block carries the certificate). The state and the block must agree on the state root; if
/// they do not (which would be a bug), no proof is given.
async fn answer(ctx: &Ctx, subject: Subject) -> ApiResult<HttpResponse> {
    let state = ctx.node.state();
    let height = state.height();
    if height == 0 {
        return Err(ApiError::new(
            Code::Unavailable,
            "no certified block yet: the genesis block carries no commit certificate, so there \
             is nothing to prove the state against; retry once block 1 is committed",
        ));
    }
    let doc = off_worker(ctx, move |n| {
        let block = n
            .ledger_block(height)
            .map_err(|e| e.into_api(&format!("reading block {height}")))?
            .ok_or_else(|| {
                ApiError::new(
                    Code::Unavailable,
                    format!("block {height} is not in the ledger store yet; retry"),
                )
            })?;
        StateProof::build(&state, block.header, block.certificate, subject)
            .map_err(|e| ApiError::Internal(format!("state proof at height {height}: {e}")))
    })
    .await??;
    Ok(HttpResponse::Ok().json(doc))
}
