//! `GET /api/v1/orders?account=KEY[&limit=N][&after=HEIGHT-ID]`: a page of an account's resting
//! orders, from the committed book.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use surplus_contracts::Code;
use surplus_ledger::Hash;
use surplus_market::Order;

use super::markets::view;
use super::{parse_key, Ctx};
use crate::error::{ApiError, ApiResult};
pub use surplus_api::{OrderList, OrderView};

/// Orders listed when no `limit` is given.
pub const DEFAULT_ORDERS: usize = 100;
/// Most orders one page answers with.
pub const MAX_ORDERS: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrdersQuery {
    account: String,
    limit: Option<usize>,
    after: Option<String>,
}

/// The place of an order in the list: `HEIGHT-ID` (decimal height, 64 hex digits).
fn cursor(height: u64, id: &Hash) -> String {
    format!("{height}-{}", hex::encode(id))
}

fn parse_cursor(text: &str) -> Result<(u64, Hash), ApiError> {
    let bad = || {
        ApiError::new(
            Code::BadQuery,
            format!("after is {text:?}; it must be HEIGHT-ID as a page's `next` gives it"),
        )
    };
    let (height, id) = text.split_once('-').ok_or_else(bad)?;
    let height = height.parse::<u64>().map_err(|_| bad())?;
    let id = surplus_ledger::parse_hex::<32>(id, "id").map_err(|_| bad())?;
    Ok((height, id))
}

/// The account's resting orders after `after` (from the first without it), oldest first, at
/// most `limit`.
pub(crate) async fn list(
    ctx: web::Data<Ctx>,
    q: web::Query<OrdersQuery>,
) -> ApiResult<HttpResponse> {
    let account = parse_key(&q.account, "account")?;
    let limit = q.limit.unwrap_or(DEFAULT_ORDERS);
    if limit == 0 || limit > MAX_ORDERS {
        return Err(ApiError::new(
            Code::BadLimit,
            format!("limit is {limit}, it must be 1 to {MAX_ORDERS}"),
        ));
    }
    let after = q.after.as_deref().map(parse_cursor).transpose()?;
    let state = ctx.node.state();
    let now_ms = state.book.now_ms();
    let mut mine: Vec<_> = state
        .book
        .orders()
        .filter(|r| r.order.author == account)
        .filter(|r| after.is_none_or(|a| (r.height, r.order.id) > a))
        .collect();
    mine.sort_unstable_by_key(|r| (r.height, r.order.id));
    let truncated = mine.len() > limit;
    mine.truncate(limit);
    let next = truncated.then(|| mine.last().map(|r| cursor(r.height, &r.order.id))).flatten();
    let orders = mine
        .into_iter()
        .map(|r| {
            let (side, market) = match &r.order.order {
                Order::Offer(o) => ("offer", o.market.clone()),
                Order::Bid(b) => ("bid", b.market.clone()),
            };
            OrderView { side: side.into(), market, order: view(r, now_ms) }
        })
        .collect();
    Ok(HttpResponse::Ok().json(OrderList { orders, truncated, next }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_bad_ones_are_refused() {
        let id = [7u8; 32];
        assert_eq!(parse_cursor(&cursor(42, &id)).unwrap(), (42, id));
        for bad in ["", "42", "x-00", "42-zz", &format!("-{}", hex::encode(id)), "42-0707"] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
    }
}
