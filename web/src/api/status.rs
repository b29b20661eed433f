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

/// `GET /api/v1/status/consortium`: the consortium as this node sees it.
pub(crate) async fn consortium(ctx: web::Data<Ctx>) -> HttpResponse {
    HttpResponse::Ok().json(ctx.node.consortium())
}

/// `GET /status`: the same as a page for people, without scripts (reload it for the latest).
pub(crate) async fn page(ctx: web::Data<Ctx>) -> HttpResponse {
    let c = ctx.node.consortium();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(crate::status_page::render(&c))
}
