//! `GET /api/v1/chain`: the chain id and the validator set that decides a height, with voting
//! powers and the quorum.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::{ApiError, ApiResult, Code, Ctx};
pub use surplus_api::ChainView;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainQuery {
    height: Option<u64>,
}

/// The chain id and the validator set in force at `?height=` (default: the block after the
/// head).
pub(crate) async fn chain(
    ctx: web::Data<Ctx>,
    q: web::Query<ChainQuery>,
) -> ApiResult<HttpResponse> {
    let status = ctx.node.status();
    let next = status.height + 1;
    let height = q.height.unwrap_or(next);
    if height > next {
        return Err(ApiError::new(
            Code::UnknownBlock,
            format!(
                "the validator set of height {height} is not known yet: this node's head is at \
                 height {}, so it knows the set up to height {next}",
                status.height
            ),
        ));
    }
    let set = super::off_worker(&ctx, move |n| n.validator_set(height))
        .await?
        .map_err(|e| e.into_api(&format!("reading the validator set of height {height}")))?;
    Ok(HttpResponse::Ok().json(ChainView {
        chain_id: status.chain_id,
        height,
        total_power: set.total_power(),
        quorum: set.quorum(),
        validators: set.validators,
        powers: set.powers,
    }))
}
