//! `GET /api/v1/chain`: the chain id, the genesis validator set and the quorum.

use actix_web::{web, HttpResponse};

use super::Ctx;
pub use surplus_api::ChainView;

/// The chain id and validator set.
pub(crate) async fn chain(ctx: web::Data<Ctx>) -> HttpResponse {
    let validators = ctx.node.validators();
    let quorum = if validators.is_empty() { 0 } else { validators.len() * 2 / 3 + 1 };
    HttpResponse::Ok().json(ChainView { chain_id: ctx.node.status().chain_id, validators, quorum })
}
