//! `GET /metrics`: the node's metrics in the Prometheus text format.

use actix_web::{web, HttpResponse};

use super::Ctx;
use crate::metrics::PROMETHEUS_CONTENT_TYPE;

/// The exposition ([`crate::Metrics::to_prometheus`]).
pub(crate) async fn metrics(ctx: web::Data<Ctx>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(PROMETHEUS_CONTENT_TYPE)
        .body(ctx.node.metrics().to_prometheus())
}
