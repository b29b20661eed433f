//! `GET /api/v1/operator`: this node's business: status, inventory, its provider's live offers
//! and leases, leased capacity over time, earnings, peers and checkpoints.

use actix_web::{web, HttpRequest, HttpResponse};
use surplus_contracts::Code;
use surplus_contracts::{Lease, LeaseStatus};
use surplus_market::Order;

use super::markets::view;
use super::orders::OrderView;
use super::Ctx;
use crate::error::{ApiError, ApiResult};
pub use surplus_api::{Earnings, OperatorView};

/// Leases listed at most (the newest); earnings count them all.
pub const MAX_OPERATOR_LEASES: usize = 1000;

/// Checks that `req` carries the node's operator token (`Authorization: Bearer TOKEN`).
pub(crate) fn operator_only(req: &HttpRequest, ctx: &Ctx) -> ApiResult<()> {
    let Some(token) = ctx.node.operator_token() else {
        return Err(ApiError::new(
            Code::OperatorOnly,
            "this node has no operator token, so its operator endpoints are closed",
        ));
    };
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Compared as hashes: the time taken says nothing about how much of the token matched.
    let hash = |t: &str| blake3::hash(t.as_bytes());
    match given {
        Some(g) if hash(g) == hash(token) => Ok(()),
        Some(_) => Err(ApiError::new(Code::OperatorOnly, "the operator token is wrong")),
        None => Err(ApiError::new(
            Code::OperatorOnly,
            "this route is for the node's operator: send Authorization: Bearer TOKEN",
        )),
    }
}

/// The operator's view.
pub(crate) async fn operator(req: HttpRequest, ctx: web::Data<Ctx>) -> ApiResult<HttpResponse> {
    operator_only(&req, &ctx)?;
    let status = ctx.node.status();
    let me = status.public_key;
    let op = ctx.node.operator();
    let state = ctx.node.state();
    let now_ms = state.book.now_ms();
    let offers = state
        .book
        .orders()
        .filter(|r| r.order.author == me)
        .filter_map(|r| match &r.order.order {
            Order::Offer(o) => Some(OrderView {
                side: "offer".into(),
                market: o.market.clone(),
                order: view(r, now_ms),
            }),
            Order::Bid(_) => None,
        })
        .collect();
    let mut leases: Vec<Lease> =
        state.leases().filter(|l| l.fill.provider == me).cloned().collect();
    let live_paid =
        leases.iter().map(|l| l.cost_between(0, l.hours_paid)).fold(0, u64::saturating_add);
    let earnings = Earnings {
        balance: state.account(&me).balance,
        paid: live_paid.saturating_add(ctx.node.ended_paid(&me)),
        escrow: leases.iter().map(|l| l.escrow).fold(0, u64::saturating_add),
    };
    // The most recent ended leases too (the list is cut to the most recent anyway).
    leases.extend(ctx.node.ended_leases(Some(&me), MAX_OPERATOR_LEASES));
    let active_leases = leases.iter().filter(|l| l.status == LeaseStatus::Active).count();
    leases.sort_by(|a, b| b.height.cmp(&a.height).then(a.id.cmp(&b.id)));
    leases.truncate(MAX_OPERATOR_LEASES);
    Ok(HttpResponse::Ok().json(OperatorView {
        status,
        inventory: op.inventory,
        offers,
        leases,
        active_leases,
        leased: op.leased,
        earnings,
        peers: op.peers,
        checkpoints: ctx.node.checkpoints(),
    }))
}
