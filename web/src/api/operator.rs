//! `GET /api/v1/operator`: this node's business: status, inventory, its provider's live offers
//! and leases, leased capacity over time, earnings, peers and checkpoints.

use actix_web::{web, HttpResponse};
use surplus_contracts::{Lease, LeaseStatus};
use surplus_market::Order;

use super::markets::view;
use super::orders::OrderView;
use super::Ctx;
pub use surplus_api::{Earnings, OperatorView};

/// Leases listed at most (the newest); earnings count them all.
pub const MAX_OPERATOR_LEASES: usize = 1000;

/// The operator's view.
pub(crate) async fn operator(ctx: web::Data<Ctx>) -> HttpResponse {
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
    HttpResponse::Ok().json(OperatorView {
        status,
        inventory: op.inventory,
        offers,
        leases,
        active_leases,
        leased: op.leased,
        earnings,
        peers: op.peers,
        checkpoints: ctx.node.checkpoints(),
    })
}
