//! `GET /api/v1/blocks/{height}`: a recent committed block's header, hash, commit time on this
//! node and the bids that filled in it.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::node::RecentBlock;

/// A block as served.
#[derive(Debug, Serialize)]
pub struct BlockView {
    /// Height.
    pub height: u64,
    /// Header hash (hex).
    pub hash: String,
    /// The summary.
    #[serde(flatten)]
    pub block: RecentBlock,
}

/// The block at `height`, if the node still holds it in its recent window.
pub(crate) async fn block(ctx: web::Data<Ctx>, height: web::Path<u64>) -> ApiResult<HttpResponse> {
    let height = height.into_inner();
    let block = ctx.node.block(height).ok_or_else(|| {
        ApiError::not_found(
            "unknown_block",
            format!("this node has no block {height} in its recent window (or not yet)"),
        )
    })?;
    Ok(HttpResponse::Ok().json(BlockView { height, hash: hex::encode(block.header.hash()), block }))
}
