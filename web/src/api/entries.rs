//! `POST /api/v1/entries`: submit a signed entry (order, cancel, transfer, lease transition).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use surplus_contracts::Code;
use surplus_ledger::{Entry, Hash};

use super::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::node::Submission;

/// The body: `{"entry": "<hex of Entry::encode()>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    /// The entry's canonical encoding, hex.
    pub entry: String,
}

/// The answer (202): the entry's id, which is also an order's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// The entry's id.
    #[serde(with = "surplus_ledger::hex_hash")]
    pub id: Hash,
}

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

/// The answer of `GET /api/v1/submissions/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmissionView {
    /// The entry's id.
    #[serde(with = "surplus_ledger::hex_hash")]
    pub id: Hash,
    /// Its fate.
    #[serde(flatten)]
    pub submission: Submission,
}

/// What became of a submitted entry.
pub(crate) async fn submission(
    ctx: web::Data<Ctx>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = super::parse_hash(&id, "entry id")?;
    let submission = ctx.node.submission(&id).ok_or_else(|| {
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

/// One committed entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntryAt {
    /// Global index in the ledger.
    pub index: u64,
    /// Height of its block.
    pub height: u64,
    /// The entry id (hex).
    #[serde(with = "surplus_ledger::hex_hash")]
    pub id: Hash,
    /// Kind name.
    pub kind: String,
    /// The entry's canonical encoding, hex (what `POST /api/v1/entries` takes).
    pub entry: String,
    /// The entry in parts, its payload decoded.
    pub view: super::decode::EntryView,
    /// The payload decoded, when it decodes (as `view.decoded`).
    pub decoded: Option<serde_json::Value>,
}

/// The entry at global index `index`.
pub(crate) async fn one(ctx: web::Data<Ctx>, index: web::Path<u64>) -> ApiResult<HttpResponse> {
    let index = index.into_inner();
    let (height, entry) = super::off_worker(&ctx, move |n| n.ledger_entry(index))
        .await?
        .map_err(|e| super::ledger_error(format!("reading entry {index}: {e}")))?
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
