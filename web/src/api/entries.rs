//! `POST /api/v1/entries`: submit a signed entry (order, cancel, transfer, lease transition).

use actix_web::{web, HttpRequest, HttpResponse};
use surplus_contracts::Code;
use surplus_ledger::{Entry, Hash};

use super::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::limits::RateLimiter;
pub use surplus_api::{
    BatchResult, EntryAt, SubmissionView, Submit, SubmitMany, Submitted, SubmittedMany,
    MAX_BATCH_ENTRIES,
};

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

/// Decodes each entry and hands those that decode to the node together; one result per entry,
/// in order. The body as a whole must be well formed (1 to [`MAX_BATCH_ENTRIES`] entries), and
/// a node that sheds load refuses the whole batch (503, nothing taken).
pub(crate) async fn submit_many(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    body: web::Json<SubmitMany>,
) -> ApiResult<HttpResponse> {
    let SubmitMany { entries } = body.into_inner();
    if entries.is_empty() || entries.len() > MAX_BATCH_ENTRIES {
        return Err(ApiError::new(
            Code::BadRequest,
            format!(
                "a batch holds 1 to {MAX_BATCH_ENTRIES} entries, not {}; send more in further \
                 requests",
                entries.len()
            ),
        ));
    }
    // Each entry counts against the client's rate as one request would: a batch is not a way
    // around the per-address limit.
    if let Some(limiter) = req.app_data::<web::Data<RateLimiter>>() {
        let client = req.peer_addr().map(|a| a.ip());
        limiter.charge(client, entries.len() - 1, std::time::Instant::now());
    }
    let decoded: Vec<Result<Entry, ApiError>> = entries
        .iter()
        .enumerate()
        .map(|(i, hex_entry)| {
            let bytes = hex::decode(hex_entry.trim()).map_err(|e| {
                ApiError::new(Code::BadHex, format!("entries[{i}] is not hex: {e}"))
            })?;
            Entry::decode(&bytes).map_err(|e| {
                ApiError::new(Code::MalformedEntry, format!("entries[{i}] does not decode: {e}"))
            })
        })
        .collect();
    let ids: Vec<Option<Hash>> = decoded.iter().map(|d| d.as_ref().ok().map(Entry::id)).collect();
    let (good, bad): (Vec<_>, Vec<_>) =
        decoded.into_iter().enumerate().partition(|(_, d)| d.is_ok());
    let good_at: Vec<usize> = good.iter().map(|(i, _)| *i).collect();
    let answers = if good.is_empty() {
        Vec::new()
    } else {
        let entries = good.into_iter().filter_map(|(_, d)| d.ok()).collect();
        ctx.node.submit_many(entries).await.map_err(ApiError::Refused)?
    };
    let mut results: Vec<BatchResult> =
        ids.into_iter().map(|id| BatchResult { id, error: None }).collect();
    for (i, answer) in good_at.into_iter().zip(answers) {
        if let Err(refusal) = answer {
            results[i].error = Some(ApiError::Refused(refusal).body().error);
        }
    }
    for (i, error) in bad {
        if let Err(e) = error {
            results[i].error = Some(e.body().error);
        }
    }
    Ok(HttpResponse::Ok().json(SubmittedMany { results }))
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
