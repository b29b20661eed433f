//! `POST /api/v1/entries`: submit a signed entry (order, cancel, transfer, lease transition).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use surplus_ledger::{Entry, Hash};

use super::Ctx;
use crate::error::{ApiError, ApiResult};

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
        .map_err(|e| ApiError::bad_request("bad_hex", format!("entry is not hex: {e}")))?;
    let entry = Entry::decode(&bytes).map_err(|e| {
        ApiError::bad_request("malformed_entry", format!("entry does not decode: {e}"))
    })?;
    let id = ctx.node.submit(entry).await.map_err(ApiError::Refused)?;
    Ok(HttpResponse::Accepted().json(Submitted { id }))
}
