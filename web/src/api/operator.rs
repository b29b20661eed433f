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
pub use surplus_api::{
    Earnings, LeaseProvisioning, OperatorMaintenance, OperatorMaintenanceDone, OperatorTermination,
    OperatorView, PoolUse,
};

/// Leases listed at most (the newest); earnings count them all.
pub const MAX_OPERATOR_LEASES: usize = 1000;
/// Leases whose provisioning record is listed at most (the newest).
pub const MAX_PROVISIONING: usize = 100;

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
    let offers: Vec<OrderView> = state
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
    let mut leases: Vec<Lease> = state.provided_by(&me).cloned().collect();
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
    let pools = pools_in_use(op.inventory.as_ref(), &offers, &leases, &op.placed, &state, &me);
    let provisioning = leases
        .iter()
        .take(MAX_PROVISIONING)
        .filter_map(|l| {
            let record = ctx.node.provisioning(&l.id)?;
            Some(LeaseProvisioning { lease: l.id, record })
        })
        .collect();
    Ok(HttpResponse::Ok().json(OperatorView {
        status,
        inventory: op.inventory,
        offers,
        leases,
        active_leases,
        leased: op.leased,
        earnings,
        peers: op.peers,
        pools,
        provisioning,
        capacity: op.capacity,
        withdrawn: op.withdrawn,
        checkpoints: ctx.node.checkpoints(),
        watched: watched(&state, &me),
        bond: state.account(&me).bond,
    }))
}

/// `me`'s live leases as the other datacenters see them (`docs/operations.md`, Supervision):
/// each interval with down reports, who reported it down and who did not.
fn watched(
    state: &surplus_contracts::State,
    me: &surplus_ledger::PublicKey,
) -> Vec<surplus_api::LeaseWatch> {
    let sup = state.params.supervision;
    let mut out: Vec<surplus_api::LeaseWatch> = state
        .provided_by(me)
        .map(|l| surplus_api::LeaseWatch {
            lease: l.id,
            probe: l.probe.clone(),
            down_ms: l.down_ms,
            credited: l.credited,
            intervals: Vec::new(),
        })
        .collect();
    out.sort_by_key(|w| w.lease);
    let validators: Vec<surplus_ledger::PublicKey> =
        state.validators().iter().map(|v| v.key).collect();
    for t in state.tallies() {
        let Ok(i) = out.binary_search_by_key(&t.lease, |w| w.lease) else { continue };
        let Some((start_ms, end_ms)) = sup.and_then(|s| s.span(t.interval)) else { continue };
        let provider = state.lease(&t.lease).map(|l| state.current_key(&l.fill.provider));
        let silent = validators
            .iter()
            .filter(|v| Some(**v) != provider && !t.down.contains(v))
            .copied()
            .collect();
        out[i].intervals.push(surplus_api::IntervalWatch {
            interval: t.interval,
            start_ms,
            end_ms,
            down: t.down.clone(),
            silent,
            decided: t.decided,
        });
    }
    out
}

/// Each inventory pool (`pool` tables of the inventory as the node read it) with the slots the
/// provider offers and has free in its market, its leased slots (on the pool and in the
/// market) and its open maintenance window.
fn pools_in_use(
    inventory: Option<&serde_json::Value>,
    offers: &[OrderView],
    leases: &[Lease],
    placed: &std::collections::HashMap<surplus_ledger::Hash, String>,
    state: &surplus_contracts::State,
    me: &surplus_ledger::PublicKey,
) -> Vec<PoolUse> {
    use surplus_contracts::provider::{pool_of, Pool};
    let pools: Vec<Pool> =
        inventory.and_then(|i| serde_json::from_value(i["pool"].clone()).ok()).unwrap_or_default();
    let active: Vec<&Lease> = leases.iter().filter(|l| l.status == LeaseStatus::Active).collect();
    pools
        .iter()
        .map(|p| {
            let market = p.market();
            let name = p.name();
            let mine = offers.iter().filter(|o| o.market == market);
            let (offered, free) = mine.fold((0u64, 0u64), |(s, f), o| {
                (s + u64::from(o.order.slots), f + u64::from(o.order.free))
            });
            let in_market: Vec<&&Lease> =
                active.iter().filter(|l| l.fill.market == market).collect();
            let leased = in_market
                .iter()
                .filter(|l| {
                    pool_of(&pools, &market, placed.get(&l.id).cloned()).as_deref() == Some(&name)
                })
                .map(|l| u64::from(l.fill.slots))
                .sum();
            PoolUse {
                maintenance: state.windows_of(me).find(|w| w.pool == name).cloned(),
                name,
                capacity: u64::from(p.slots),
                offered,
                free,
                leased,
                leased_in_market: in_market.iter().map(|l| u64::from(l.fill.slots)).sum(),
                market,
            }
        })
        .collect()
}

/// The longest reason an operator may give for a termination, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// `POST /api/v1/operator/maintenance`: the node announces a maintenance window for a pool.
pub(crate) async fn maintenance(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: web::Json<OperatorMaintenance>,
) -> ApiResult<HttpResponse> {
    operator_only(&req, &ctx)?;
    let mut m = body.into_inner();
    m.pool = m.pool.trim().to_owned();
    m.reason = m.reason.trim().to_owned();
    if m.reason.is_empty() || m.reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::new(
            Code::BadRequest,
            format!("say why in 1 to {MAX_REASON_CHARS} characters (buyers see it)"),
        ));
    }
    let done = ctx.node.maintenance(m).await.map_err(ApiError::Refused)?;
    Ok(HttpResponse::Accepted().json(done))
}

/// `POST /api/v1/operator/offers`: the operator withdraws this node's offers in a market, or
/// offers it again.
pub(crate) async fn offers(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: web::Json<surplus_api::OperatorOffers>,
) -> ApiResult<HttpResponse> {
    operator_only(&req, &ctx)?;
    let market: surplus_market::Market =
        body.market.trim().parse().map_err(|e: String| ApiError::new(Code::BadMarket, e))?;
    if !ctx.node.state().params.catalogue.has_market(&market) {
        return Err(ApiError::new(
            Code::UnknownMarket,
            format!("{market} is not a market of the catalogue"),
        ));
    }
    let withdrawn = ctx.node.set_offered(market, body.offered).await.map_err(ApiError::Refused)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "withdrawn": withdrawn })))
}

/// `POST /api/v1/operator/bond`: the node locks or takes back units of its provider bond.
pub(crate) async fn bond(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: web::Json<surplus_api::OperatorBond>,
) -> ApiResult<HttpResponse> {
    operator_only(&req, &ctx)?;
    let lock = match body.action.as_str() {
        "lock" => true,
        "release" => false,
        other => {
            return Err(ApiError::new(
                Code::BadJson,
                format!("action is \"lock\" or \"release\", not {other:?}"),
            ))
        }
    };
    let done = ctx.node.bond(lock, body.amount).await.map_err(ApiError::Refused)?;
    Ok(HttpResponse::Accepted().json(done))
}

/// `POST /api/v1/operator/maintenance/done`: the node ends its maintenance window for a pool.
pub(crate) async fn maintenance_done(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: web::Json<OperatorMaintenanceDone>,
) -> ApiResult<HttpResponse> {
    operator_only(&req, &ctx)?;
    let pool = body.into_inner().pool.trim().to_owned();
    let done = ctx.node.maintenance_done(pool).await.map_err(ApiError::Refused)?;
    Ok(HttpResponse::Accepted().json(done))
}

/// `POST /api/v1/operator/terminations`: the node ends one of its leases as provider.
pub(crate) async fn terminate(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: web::Json<OperatorTermination>,
) -> ApiResult<HttpResponse> {
    operator_only(&req, &ctx)?;
    let lease = super::parse_hash(body.lease.trim(), "lease")?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::new(
            Code::BadRequest,
            format!("say why in 1 to {MAX_REASON_CHARS} characters (the buyer may ask)"),
        ));
    }
    let id = ctx
        .node
        .terminate_as_provider(lease, reason.to_owned())
        .await
        .map_err(ApiError::Refused)?;
    Ok(HttpResponse::Accepted().json(surplus_api::Submitted { id }))
}
