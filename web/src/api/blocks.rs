//! `GET /api/v1/blocks?before=H&limit=N` (newest first) and `GET /api/v1/blocks/{height}` (the
//! whole block from the ledger, entries decoded).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use surplus_contracts::Code;
use surplus_ledger::{Block, Certificate, Header, PublicKey};

use super::decode::EntryView;
use super::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::node::{LedgerError, RecentBlock};
pub use surplus_api::{BlockSummary, BlockView, CertificateView, CommitView};

/// Blocks listed when no `limit` is given.
pub const DEFAULT_BLOCKS: u64 = 20;
/// Most blocks one list answers with.
pub const MAX_BLOCKS: u64 = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    before: Option<u64>,
    limit: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BlockQuery {
    entries: Option<bool>,
}

fn summary(header: &Header, entries: usize) -> BlockSummary {
    BlockSummary {
        height: header.height,
        hash: header.hash(),
        time_ms: header.timestamp_ms,
        entries,
        proposer: header.proposer,
        tree_size: header.tree_size,
    }
}

/// Blocks below `before` (the head's and older without it), newest first, at most `limit`.
pub(crate) async fn list(ctx: web::Data<Ctx>, q: web::Query<ListQuery>) -> ApiResult<HttpResponse> {
    let limit = q.limit.unwrap_or(DEFAULT_BLOCKS);
    if limit == 0 || limit > MAX_BLOCKS {
        return Err(ApiError::new(
            Code::BadLimit,
            format!("limit is {limit}, it must be 1 to {MAX_BLOCKS}"),
        ));
    }
    let head = ctx.node.status().height;
    let top = q.before.unwrap_or(head.saturating_add(1)).min(head.saturating_add(1));
    let out = super::off_worker(&ctx, move |node| {
        let mut out = Vec::new();
        for height in (top.saturating_sub(limit)..top).rev() {
            if let Some(r) = node.block(height) {
                out.push(summary(&r.header, r.entries));
                continue;
            }
            match node.ledger_block(height) {
                Ok(Some(b)) => out.push(summary(&b.header, b.entries.len())),
                Ok(None) => {}
                // The blocks below are not held either.
                Err(LedgerError::NotHeld(_)) => break,
                Err(e) => return Err(e.into_api(&format!("reading block {height}"))),
            }
        }
        Ok(out)
    })
    .await??;
    Ok(HttpResponse::Ok().json(out))
}

fn full(
    block: Block,
    recent: Option<RecentBlock>,
    validators: &[PublicKey],
    with_entries: bool,
) -> BlockView {
    let Block { header, entries, certificate } = block;
    let Certificate { round, signatures } = certificate;
    let first = header.tree_size.saturating_sub(entries.len() as u64);
    BlockView {
        height: header.height,
        hash: header.hash(),
        certificate: Some(CertificateView {
            round,
            signatures: signatures
                .into_iter()
                .map(|s| CommitView {
                    validator: s.validator,
                    signer: validators.get(usize::from(s.validator)).copied(),
                    signature: s.signature,
                })
                .collect(),
        }),
        entry_count: entries.len(),
        entries: with_entries.then(|| {
            entries.iter().enumerate().map(|(i, e)| EntryView::new(first + i as u64, e)).collect()
        }),
        committed_ms: recent.as_ref().map(|r| r.committed_ms),
        filled_bids: recent.map(|r| r.filled_bids),
        header,
    }
}

/// The block at `height`: from the ledger, with the recent window's commit time when held.
/// `?entries=false` leaves the entries out (`entries` is then null): what a client polling
/// every block for its commit time and fills needs.
pub(crate) async fn block(
    ctx: web::Data<Ctx>,
    height: web::Path<u64>,
    q: web::Query<BlockQuery>,
) -> ApiResult<HttpResponse> {
    let height = height.into_inner();
    let recent = ctx.node.block(height);
    let view = match super::off_worker(&ctx, move |n| n.ledger_block(height)).await? {
        Ok(Some(b)) => {
            // The certificate names validators of the set that decides this height.
            let set =
                super::off_worker(&ctx, move |n| n.validator_set(height)).await?.map_err(|e| {
                    e.into_api(&format!("reading the validator set of height {height}"))
                })?;
            full(b, recent, &set.validators, q.entries.unwrap_or(true))
        }
        Ok(None) => None.ok_or_else(|| unknown(height, &ctx))?,
        Err(e) => return Err(e.into_api(&format!("reading block {height}"))),
    };
    Ok(HttpResponse::Ok().json(view))
}

fn unknown(height: u64, ctx: &Ctx) -> ApiError {
    ApiError::new(
        Code::UnknownBlock,
        format!(
            "this node has no block {height}; its head is at height {}",
            ctx.node.status().height
        ),
    )
}
