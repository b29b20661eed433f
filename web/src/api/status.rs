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

/// `/`: a plain page with the node's status and the API's entry points, until the web UI lands.
pub(crate) async fn home(ctx: web::Data<Ctx>) -> HttpResponse {
    let s = ctx.node.status();
    let esc = |t: &str| t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Surplus {node}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head><body style=\"font-family:sans-serif;max-width:40em;margin:2em auto\">\
         <h1>Surplus node {node}</h1><p>Chain <b>{chain}</b>, height <b>{height}</b>, {peers} peers, \
         {role}, {mempool} pending orders.</p><ul>\
         <li><a href=\"/api/v1/status\">/api/v1/status</a></li>\
         <li><a href=\"/api/v1/markets\">/api/v1/markets</a></li>\
         <li><a href=\"/api/v1/leases\">/api/v1/leases</a></li></ul>\
         <p>The buyer, operator and auditor interface is served here once it is built; the JSON API \
         above and the <code>surplus</code> client commands work today.</p></body></html>",
        node = esc(&s.node),
        chain = esc(&s.chain_id),
        height = s.height,
        peers = s.peers,
        role = if s.validator { "validator" } else { "follower" },
        mempool = s.mempool,
    );
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body)
}
