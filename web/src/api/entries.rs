//! `POST /api/v1/entries`: submit a signed entry (order, cancel, transfer, lease transition).

use actix_web::{web, HttpResponse};
use surplus_contracts::Code;
use surplus_ledger::Entry;

use super::Ctx;
use crate::error::{ApiError, ApiResult};
pub use surplus_api::{EntryAt, SubmissionView, Submit, Submitted};

/// Decodes the entry and hands it to the node; the node's refusal becomes the error.
pub(crate) async fn submit(
    ctx: web::Data<Ctx>,
    body: web::Json<Submit>,
) -> ApiResult<HttpResponse> {
    let bytes = hex::decode(body.entry.trim())
        .map_err(|e| ApiError::new(Code::BadHex, format!("entry is not hex: {e}")))?;
    let entry = Entry::decode(&bytes)
        .map_err(|e| ApiError::new(Code::MalformedEntry, format!("entry does not decode: {e}")))?;
    let id = ctx.node.submit(entry).await.map_err(ApiError::Refused)?;
    Ok(HttpResponse::Accepted().json(Submitted { id }))
}

/// What became of a submitted entry.
pub(crate) async fn submission(
    ctx: web::Data<Ctx>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = super::parse_hash(&id, "entry id")?;
    let submission = ctx.node.submission(&id).await.ok_or_else(|| {
        ApiError::new(
            Code::UnknownSubmission,
            format!(
                "this node has no record of entry {}: it never acknowledged nor saw it, or \
                 forgot it long ago",
                hex::encode(id)
            ),
        )
    })?;
    Ok(HttpResponse::Ok().json(SubmissionView { id, submission }))
}

/// The entry at global index `index`.
pub(crate) async fn one(ctx: web::Data<Ctx>, index: web::Path<u64>) -> ApiResult<HttpResponse> {
    let index = index.into_inner();
    let (height, entry) = super::off_worker(&ctx, move |n| n.ledger_entry(index))
        .await?
        .map_err(|e| e.into_api(&format!("reading entry {index}")))?
        .ok_or_else(|| {
            ApiError::new(
                Code::UnknownEntry,
                format!("the ledger has no entry {index} (yet); GET /api/v1/status shows the head"),
            )
        })?;
    let view = super::decode::EntryView::new(index, &entry);
    Ok(HttpResponse::Ok().json(EntryAt {
        index,
        height,
        id: view.id,
        kind: view.kind.clone(),
        entry: hex::encode(entry.encode()),
        decoded: view.decoded.clone(),
        view,
    }))
}
