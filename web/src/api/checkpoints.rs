//! `GET /api/v1/checkpoints`: the latest signed checkpoint this node holds from each signer.

use actix_web::{web, HttpResponse};

use super::Ctx;

/// `[SignedCheckpoint]`, this node's own first.
pub(crate) async fn list(ctx: web::Data<Ctx>) -> HttpResponse {
    HttpResponse::Ok().json(ctx.node.checkpoints())
}
