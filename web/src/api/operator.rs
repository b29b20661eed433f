//! `GET /api/v1/operator`: this node's business: status, inventory, its provider's live offers
//! and leases, leased capacity over time, earnings, peers and checkpoints.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use surplus_contracts::{Lease, LeaseStatus};
use surplus_ledger::SignedCheckpoint;
use surplus_market::Order;

use super::markets::view;
use super::orders::OrderView;
use super::Ctx;
use crate::node::{CapacityPoint, Peer, Status};

/// Leases listed at most (the newest); earnings count them all.
pub const MAX_OPERATOR_LEASES: usize = 1000;

/// What the provider earned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Earnings {
    /// The provider account's spendable balance.
    pub balance: u64,
    /// Paid for the hours settled so far on its leases (before the consortium fee).
    pub paid: u64,
    /// Held in escrow on its leases, paid as hours pass.
    pub escrow: u64,
}

/// The operator page's data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatorView {
    /// The node's status (its key is the provider account).
    pub status: Status,
    /// The inventory as the node read it.
    pub inventory: Option<serde_json::Value>,
    /// The provider's resting offers.
    pub offers: Vec<OrderView>,
    /// Leases where it is the provider, newest first, at most [`MAX_OPERATOR_LEASES`].
    pub leases: Vec<Lease>,
    /// Active leases among them.
    pub active_leases: usize,
    /// Slots leased, sampled per block, oldest first.
    pub leased: Vec<CapacityPoint>,
    /// Earnings.
    pub earnings: Earnings,
    /// Connected peers.
    pub peers: Vec<Peer>,
    /// The latest signed checkpoint from each signer.
    pub checkpoints: Vec<SignedCheckpoint>,
}

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
    let earnings = Earnings {
        balance: state.account(&me).balance,
        paid: leases.iter().map(|l| l.cost_between(0, l.hours_paid)).fold(0, u64::saturating_add),
        escrow: leases.iter().map(|l| l.escrow).fold(0, u64::saturating_add),
    };
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
