//! `GET /api/v1/status` and `GET /healthz`.

use actix_web::{web, HttpResponse};

use super::Ctx;

/// The node's status ([`crate::Status`]).
pub(crate) async fn status(ctx: web::Data<Ctx>) -> HttpResponse {
    HttpResponse::Ok().json(ctx.node.status())
}

/// Liveness: 200 `ok` while the HTTP server runs.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok")
}
