//! `GET /api/v1/events[?account=KEY]`: what each committed block changed, as server-sent
//! events (`event: block|fill|lease`, `data: <Event JSON>`), with a keep-alive comment every
//! [`KEEP_ALIVE`] and `event: lagged` when this client fell behind and missed events.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use surplus_contracts::Code;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use surplus_ledger::PublicKey;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use super::{parse_key, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::node::Event;

/// Time between keep-alive comments on an idle stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    account: Option<String>,
}

/// Event streams one client IP may hold open at once, so that one client cannot take every
/// stream of the node.
pub const MAX_STREAMS_PER_IP: usize = 4;

type PerIp = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// Open event streams, bounded in all and per client IP.
#[derive(Debug)]
pub(crate) struct Streams {
    open: Arc<AtomicUsize>,
    per_ip: PerIp,
    max: usize,
}

impl Streams {
    pub(crate) fn new(max: usize) -> Self {
        Self { open: Arc::new(AtomicUsize::new(0)), per_ip: PerIp::default(), max }
    }

    /// A slot for one more stream, if fewer than the maximum are open in all and from `ip`.
    fn acquire(&self, ip: Option<std::net::IpAddr>) -> Result<Slot, ApiError> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ip) = ip {
            if per_ip.get(&ip).copied().unwrap_or(0) >= MAX_STREAMS_PER_IP {
                return Err(ApiError::new(
                    Code::TooManyClientStreams,
                    format!(
                        "{ip} already holds {MAX_STREAMS_PER_IP} event streams open; close one \
                         first (one stream carries every event of an account)"
                    ),
                ));
            }
        }
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1))
            .map_err(|_| {
                ApiError::new(
                    Code::TooManyStreams,
                    format!(
                        "this node serves {} event streams at most and all are open; retry later",
                        self.max
                    ),
                )
            })?;
        if let Some(ip) = ip {
            *per_ip.entry(ip).or_insert(0) += 1;
        }
        Ok(Slot { open: self.open.clone(), per_ip: self.per_ip.clone(), ip })
    }
}

/// One open stream; closing it (the client went away) frees the slot.
struct Slot {
    open: Arc<AtomicUsize>,
    per_ip: PerIp,
    ip: Option<std::net::IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

struct Stream {
    rx: Receiver<Event>,
    account: Option<PublicKey>,
    keep_alive: tokio::time::Interval,
    opened: bool,
    _slot: Slot,
}

/// The frame of one event.
pub fn frame(event: &Event) -> Bytes {
    let name = match event {
        Event::Block { .. } => "block",
        Event::Fill { .. } => "fill",
        Event::Lease { .. } => "lease",
    };
    // An event is plain data; serializing it cannot fail, and JSON holds no raw newline.
    let data = serde_json::to_string(event).unwrap_or_else(|_| "null".into());
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

async fn next(mut s: Stream) -> Option<(Result<Bytes, Infallible>, Stream)> {
    if !s.opened {
        s.opened = true;
        return Some((Ok(Bytes::from_static(b"retry: 3000\n: connected\n\n")), s));
    }
    loop {
        tokio::select! {
            r = s.rx.recv() => match r {
                Ok(ev) if s.account.is_none_or(|a| ev.concerns(&a)) => {
                    return Some((Ok(frame(&ev)), s));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    let b = format!("event: lagged\ndata: {{\"missed\":{n}}}\n\n");
                    return Some((Ok(Bytes::from(b)), s));
                }
                Err(RecvError::Closed) => return None,
            },
            _ = s.keep_alive.tick() => {
                return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), s));
            }
        }
    }
}

/// Opens a stream: 503 when too many streams are open, 429 when one client holds too many.
pub(crate) async fn events(
    req: actix_web::HttpRequest,
    ctx: web::Data<Ctx>,
    q: web::Query<EventsQuery>,
) -> ApiResult<HttpResponse> {
    let account = q.account.as_deref().map(|k| parse_key(k, "account")).transpose()?;
    let rx = ctx.node.subscribe();
    let slot = ctx.streams.acquire(req.peer_addr().map(|a| a.ip()))?;
    let start = tokio::time::Instant::now() + KEEP_ALIVE;
    let state = Stream {
        rx,
        account,
        keep_alive: tokio::time::interval_at(start, KEEP_ALIVE),
        opened: false,
        _slot: slot,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures::stream::unfold(state, next)))
}
