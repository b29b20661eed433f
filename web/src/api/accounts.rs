//! `GET /api/v1/accounts/{key}`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use surplus_ledger::PublicKey;

use super::{parse_key, Ctx};
use crate::error::ApiResult;

/// An account's committed state (an account never seen is empty).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// The account's key.
    pub account: PublicKey,
    /// Spendable units.
    pub balance: u64,
    /// The sequence number its next transaction must carry.
    pub seq: u64,
}

/// One account.
pub(crate) async fn account(
    ctx: web::Data<Ctx>,
    key: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let account = parse_key(&key, "account key")?;
    let a = ctx.node.state().account(&account);
    Ok(HttpResponse::Ok().json(AccountView { account, balance: a.balance, seq: a.seq }))
}
