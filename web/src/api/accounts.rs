//! `GET /api/v1/accounts/{key}`.

use actix_web::{web, HttpResponse};

use super::{parse_key, Ctx};
use crate::error::ApiResult;
pub use surplus_api::AccountView;

/// One account.
pub(crate) async fn account(
    ctx: web::Data<Ctx>,
    key: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let account = parse_key(&key, "account key")?;
    let state = ctx.node.state();
    let a = state.account(&account);
    Ok(HttpResponse::Ok().json(AccountView {
        account,
        balance: a.balance,
        seq: a.seq,
        bond: a.bond,
        bond_in_use: state.bond_in_use(&account),
    }))
}
