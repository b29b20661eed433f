//! `GET /api/v1/orders?account=KEY`: an account's resting orders, from the committed book.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use surplus_market::Order;

use super::markets::view;
use super::{parse_key, Ctx};
use crate::error::ApiResult;
pub use surplus_api::OrderView;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrdersQuery {
    account: String,
}

/// The account's resting orders, oldest first.
pub(crate) async fn list(
    ctx: web::Data<Ctx>,
    q: web::Query<OrdersQuery>,
) -> ApiResult<HttpResponse> {
    let account = parse_key(&q.account, "account")?;
    let state = ctx.node.state();
    let now_ms = state.book.now_ms();
    let mut out: Vec<OrderView> = state
        .book
        .orders()
        .filter(|r| r.order.author == account)
        .map(|r| {
            let (side, market) = match &r.order.order {
                Order::Offer(o) => ("offer", o.market.clone()),
                Order::Bid(b) => ("bid", b.market.clone()),
            };
            OrderView { side: side.into(), market, order: view(r, now_ms) }
        })
        .collect();
    out.sort_by_key(|o| (o.order.height, o.order.id));
    Ok(HttpResponse::Ok().json(out))
}
