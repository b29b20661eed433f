//! The web UI: static files compiled into the binary and served by the node itself (no build
//! step, no requests to other sites). `GET /` is the single page; `GET /ui/{file}` its assets.

use actix_web::http::header;
use actix_web::{web, HttpResponse, ResponseError};

/// Every file of the UI: name, content type, contents.
const FILES: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../ui/index.html")),
    ("style.css", "text/css; charset=utf-8", include_str!("../ui/style.css")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../ui/app.js")),
    ("blake3.js", "text/javascript; charset=utf-8", include_str!("../ui/blake3.js")),
    ("encoding.js", "text/javascript; charset=utf-8", include_str!("../ui/encoding.js")),
    ("keys.js", "text/javascript; charset=utf-8", include_str!("../ui/keys.js")),
    ("verify.js", "text/javascript; charset=utf-8", include_str!("../ui/verify.js")),
    ("charts.js", "text/javascript; charset=utf-8", include_str!("../ui/charts.js")),
];

/// Registers `GET /` and `GET /ui/{file}`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index)).route("/ui/{file}", web::get().to(asset));
}

fn serve(name: &str) -> Option<HttpResponse> {
    let (_, ctype, body) = FILES.iter().find(|(n, _, _)| *n == name)?;
    Some(
        HttpResponse::Ok()
            .content_type(*ctype)
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            // Nothing but this node: scripts, styles, images and requests stay on this origin.
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
                 frame-ancestors 'none'",
            ))
            .body(*body),
    )
}

async fn index() -> HttpResponse {
    serve("index.html").unwrap_or_else(|| HttpResponse::InternalServerError().finish())
}

async fn asset(name: web::Path<String>) -> HttpResponse {
    serve(&name).unwrap_or_else(|| {
        crate::ApiError::not_found("no_such_file", format!("the UI has no file {name}"))
            .error_response()
    })
}
