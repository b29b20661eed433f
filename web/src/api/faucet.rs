//! `POST /api/v1/faucet {"account": hex}`: devnet sample credits.

use actix_web::{web, HttpResponse};

use super::{parse_key, Ctx};
use crate::error::{ApiError, ApiResult};
pub use surplus_api::FaucetRequest;

/// Funds the account: 202 with the [`crate::FaucetGrant`] (the transfer is pending until its
/// block commits); 404 `faucet_disabled` off devnet, 409 `faucet_spent` for a second request.
pub(crate) async fn faucet(
    ctx: web::Data<Ctx>,
    body: web::Json<FaucetRequest>,
) -> ApiResult<HttpResponse> {
    let account = parse_key(body.account.trim(), "account")?;
    let grant = ctx.node.faucet(account).await.map_err(ApiError::Refused)?;
    Ok(HttpResponse::Accepted().json(grant))
}
