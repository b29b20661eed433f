//! `GET /api/v1/export`: the whole ledger in the format of `surplus ledger export`, streamed
//! from the file the node wrote.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use tokio::io::AsyncReadExt;

use super::Ctx;
use crate::error::{ApiError, ApiResult};

const CHUNK: usize = 64 * 1024;

/// `?fresh=true`: an export of the head (one at most a few seconds old), not one up to a minute
/// old.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    fresh: Option<bool>,
}

/// The export file, as an attachment named after the chain and height.
pub(crate) async fn export(
    ctx: web::Data<Ctx>,
    q: web::Query<ExportQuery>,
) -> ApiResult<HttpResponse> {
    let fresh = q.fresh.unwrap_or(false);
    let (path, height) = ctx.node.export(fresh).await.map_err(|e| e.into_api("exporting"))?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::Internal(format!("opening the export {}: {e}", path.display())))?;
    let len = file.metadata().await.ok().map(|m| m.len());
    let chain = ctx.node.status().chain_id;
    let name: String = format!("{chain}-{height}.surplus-ledger")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .collect();
    let stream = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), Some(file)))
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the ledger export");
                Some((Err(e), None))
            }
        }
    });
    let mut res = HttpResponse::Ok();
    res.content_type("application/octet-stream")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")))
        .insert_header(("X-Ledger-Height", height.to_string()));
    Ok(match len {
        Some(len) => res.no_chunking(len).streaming(stream),
        None => res.streaming(stream),
    })
}
