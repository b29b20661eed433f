//! The web UI: static files compiled into the binary and served by the node itself (no build
//! step, no requests to other sites). `GET /` is the single page; `GET /ui/{file}` its assets.

use actix_web::http::header;
use actix_web::{web, HttpResponse, ResponseError};
use surplus_contracts::Code;

/// Every file of the UI: name, content type, contents.
const FILES: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../ui/index.html")),
    ("style.css", "text/css; charset=utf-8", include_str!("../ui/style.css")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../ui/app.js")),
    ("blake3.js", "text/javascript; charset=utf-8", include_str!("../ui/blake3.js")),
    ("encoding.js", "text/javascript; charset=utf-8", include_str!("../ui/encoding.js")),
    ("keys.js", "text/javascript; charset=utf-8", include_str!("../ui/keys.js")),
    ("verify.js", "text/javascript; charset=utf-8", include_str!("../ui/verify.js")),
    ("stateproof.js", "text/javascript; charset=utf-8", include_str!("../ui/stateproof.js")),
    ("ed25519.js", "text/javascript; charset=utf-8", include_str!("../ui/ed25519.js")),
    ("charts.js", "text/javascript; charset=utf-8", include_str!("../ui/charts.js")),
    ("sealed.js", "text/javascript; charset=utf-8", include_str!("../ui/sealed.js")),
];

/// Registers `GET /`, `GET /ui/{file}` and `GET /favicon.ico`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/ui/{file}", web::get().to(asset))
        .route("/favicon.ico", web::get().to(favicon));
}

/// Browsers ask for /favicon.ico whatever the page says; "no icon" (204) keeps a 404 out of the
/// console, and they remember it for a day.
async fn favicon() -> HttpResponse {
    HttpResponse::NoContent().insert_header((header::CACHE_CONTROL, "max-age=86400")).finish()
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
                 frame-ancestors 'none'; form-action 'self'",
            ))
            .body(*body),
    )
}

async fn index() -> HttpResponse {
    serve("index.html").unwrap_or_else(|| HttpResponse::InternalServerError().finish())
}

async fn asset(name: web::Path<String>) -> HttpResponse {
    serve(&name).unwrap_or_else(|| {
        crate::ApiError::new(Code::NoSuchFile, format!("the UI has no file {name}"))
            .error_response()
    })
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use actix_web::test::{call_service, init_service, TestRequest};
    use actix_web::App;

    #[actix_web::test]
    async fn favicon_is_no_content_not_an_error() {
        let app = init_service(App::new().configure(super::configure)).await;
        let resp = call_service(&app, TestRequest::get().uri("/favicon.ico").to_request()).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let resp = call_service(&app, TestRequest::get().uri("/ui/app.js").to_request()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get("content-security-policy").is_some());
    }
}
