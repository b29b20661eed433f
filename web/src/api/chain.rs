//! `GET /api/v1/chain`: the chain id, the genesis validator set and the quorum.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use surplus_ledger::PublicKey;

use super::Ctx;

/// The chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainView {
    /// The chain id entries are signed for.
    pub chain_id: String,
    /// Validator keys, in genesis order (a certificate names a validator by its index here).
    pub validators: Vec<PublicKey>,
    /// Signatures that decide a block: more than two thirds of the validators.
    pub quorum: usize,
}

/// The chain id and validator set.
pub(crate) async fn chain(ctx: web::Data<Ctx>) -> HttpResponse {
    let validators = ctx.node.validators();
    let quorum = if validators.is_empty() { 0 } else { validators.len() * 2 / 3 + 1 };
    HttpResponse::Ok().json(ChainView { chain_id: ctx.node.status().chain_id, validators, quorum })
}
