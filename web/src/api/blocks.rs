//! `GET /api/v1/blocks/{height}`: a committed block's header and hash.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use surplus_ledger::Header;

use super::Ctx;
use crate::error::{ApiError, ApiResult};

/// A block header as served.
#[derive(Debug, Serialize)]
pub struct BlockView {
    /// Height.
    pub height: u64,
    /// Header hash (hex).
    pub hash: String,
    /// The header.
    pub header: Header,
}

/// The header at `height`, if the node still holds it in its recent window.
pub(crate) async fn block(ctx: web::Data<Ctx>, height: web::Path<u64>) -> ApiResult<HttpResponse> {
    let height = height.into_inner();
    let header = ctx.node.header(height).ok_or_else(|| {
        ApiError::not_found(
            "unknown_block",
            format!("this node has no block {height} in its recent window (or not yet)"),
        )
    })?;
    Ok(HttpResponse::Ok().json(BlockView { height, hash: hex::encode(header.hash()), header }))
}
