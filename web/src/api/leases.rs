//! `GET /api/v1/leases[?account=KEY&limit=N]` and `GET /api/v1/leases/{id}`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use surplus_contracts::Code;
use surplus_contracts::Lease;

use super::{parse_hash, parse_key, Ctx};
use crate::error::{ApiError, ApiResult};
pub use surplus_api::{LeaseList, LeaseView};

/// Leases listed when no `limit` is given.
pub const DEFAULT_LEASES: usize = 100;
/// Most leases one list answers with.
pub const MAX_LEASES: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    account: Option<String>,
    limit: Option<usize>,
}

/// Leases where `account` is buyer or provider (all leases without it), at most `limit`: the
/// live ones, then those that ended.
pub(crate) async fn list(ctx: web::Data<Ctx>, q: web::Query<ListQuery>) -> ApiResult<HttpResponse> {
    let limit = q.limit.unwrap_or(DEFAULT_LEASES);
    if limit == 0 || limit > MAX_LEASES {
        return Err(ApiError::new(
            Code::BadLimit,
            format!("limit is {limit}, it must be 1 to {MAX_LEASES}"),
        ));
    }
    let account = q.account.as_deref().map(|k| parse_key(k, "account")).transpose()?;
    let state = ctx.node.state();
    // An account's leases come from the state's indexes by buyer and by provider, not from a
    // walk over every live lease.
    let mut matching: Box<dyn Iterator<Item = &Lease>> = match &account {
        Some(k) => Box::new(state.account_leases(k)),
        None => Box::new(state.leases()),
    };
    // The live leases in id order, then the ended ones (the node's lease history).
    let mut leases: Vec<Lease> = matching.by_ref().take(limit).cloned().collect();
    let mut truncated = matching.next().is_some();
    if !truncated {
        let room = limit - leases.len();
        let mut ended = ctx.node.ended_leases(account.as_ref(), room + 1);
        truncated = ended.len() > room;
        ended.truncate(room);
        leases.extend(ended);
    }
    Ok(HttpResponse::Ok().json(LeaseList { leases, truncated }))
}

/// One lease with its provisioning.
pub(crate) async fn one(ctx: web::Data<Ctx>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_hash(&id, "lease id")?;
    let state = ctx.node.state();
    let lease =
        state.lease(&id).cloned().or_else(|| ctx.node.ended_lease(&id)).ok_or_else(|| {
            ApiError::new(Code::UnknownLease, format!("no lease {} on this chain", hex::encode(id)))
        })?;
    Ok(HttpResponse::Ok().json(LeaseView { lease, provisioning: ctx.node.provisioning(&id) }))
}

/// The inclusion proof of the lease's fill against this node's signed checkpoint
/// ([`surplus_ledger::bundle::ProofBundle`]), to verify offline.
pub(crate) async fn proof(ctx: web::Data<Ctx>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_hash(&id, "lease id")?;
    let bundle = super::off_worker(&ctx, move |n| n.lease_proof(&id))
        .await?
        .map_err(|e| e.into_api(&format!("proving lease {}", hex::encode(id))))?
        .ok_or_else(|| {
            ApiError::new(Code::UnknownLease, format!("no lease {} on this chain", hex::encode(id)))
        })?;
    Ok(HttpResponse::Ok().json(bundle))
}
