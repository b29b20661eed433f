//! `GET /metrics`: the node's metrics in the Prometheus text format.

use actix_web::{web, HttpResponse};

use super::Ctx;
use crate::metrics::PROMETHEUS_CONTENT_TYPE;

/// The exposition ([`crate::Metrics::to_prometheus`]).
pub(crate) async fn metrics(ctx: web::Data<Ctx>) -> HttpResponse {
    let mut body = ctx.node.metrics().to_prometheus();
    body.push_str(&format!(
        "# HELP surplus_event_streams_open Event streams (GET /api/v1/events) open now.\n\
         # TYPE surplus_event_streams_open gauge\nsurplus_event_streams_open {}\n",
        ctx.streams.open()
    ));
    if let Some(conns) = &ctx.conns {
        body.push_str(&format!(
            "# HELP surplus_http_connections_open HTTP connections open now.\n\
             # TYPE surplus_http_connections_open gauge\nsurplus_http_connections_open {}\n\
             # HELP surplus_http_connections_refused_total HTTP connections shut down at accept: \
             over [http] max_connections or max_connections_per_ip.\n\
             # TYPE surplus_http_connections_refused_total counter\n\
             surplus_http_connections_refused_total {}\n",
            conns.open(),
            conns.refused()
        ));
    }
    HttpResponse::Ok().content_type(PROMETHEUS_CONTENT_TYPE).body(body)
}
