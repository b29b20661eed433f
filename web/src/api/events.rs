//! `GET /api/v1/events[?account=KEY]`: what each committed block changed, as server-sent
//! events (`event: block|fill|lease|governance|order`, `data: <Event JSON>`), with a comment line every
//! [`PROBE`] and `event: lagged` when this client fell behind and missed events.
//!
//! The comment is the keep-alive, and how the node notices a client that left: the server only
//! learns that a connection closed when a write to it fails, so a stream that wrote nothing for
//! 15 s held its slot that long after its client had gone (found by an outside test: 16
//! addresses × 4 streams took every slot, and the slots stayed taken 15–27 s after the clients
//! left). With a 2-byte comment every second a stream's slot is free within about two seconds
//! of its client closing the connection.

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

/// Time between the comment lines (`:`) every stream gets: the keep-alive, and the write that
/// finds a closed connection.
pub const PROBE: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    account: Option<String>,
}

/// Event streams one client IP may hold open at once, so that one client cannot take every
/// stream of the node.
pub const MAX_STREAMS_PER_IP: usize = 4;

type PerIp = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// Open event streams, bounded in all and per client IP, with a share of the slots kept for
/// clients that hold none.
#[derive(Debug)]
pub(crate) struct Streams {
    open: Arc<AtomicUsize>,
    per_ip: PerIp,
    max: usize,
    /// Slots only a client IP holding no stream may take: a quarter of the maximum.
    reserve: usize,
}

impl Streams {
    pub(crate) fn new(max: usize) -> Self {
        let open = Arc::new(AtomicUsize::new(0));
        Self { open, per_ip: PerIp::default(), max, reserve: max / 4 }
    }

    /// Streams open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// A slot for one more stream, if fewer than the maximum are open in all and from `ip`, and,
    /// for an IP that already holds a stream, fewer than the maximum less the reserve.
    fn acquire(&self, ip: Option<std::net::IpAddr>) -> Result<Slot, ApiError> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let held = ip.and_then(|ip| per_ip.get(&ip).copied()).unwrap_or(0);
        let cap = if held == 0 { self.max } else { self.max - self.reserve };
        if let Some(ip) = ip {
            if held >= MAX_STREAMS_PER_IP {
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
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < cap).then_some(n + 1))
            .map_err(|_| {
                let why = if cap < self.max {
                    format!(
                        "this node serves {} event streams at most, keeps the last {} for clients \
                         that hold none, and {ip} holds {held}; close one or retry later",
                        self.max,
                        self.reserve,
                        ip = ip.map(|i| i.to_string()).unwrap_or_default(),
                    )
                } else {
                    format!(
                        "this node serves {} event streams at most and all are open; retry later",
                        self.max
                    )
                };
                ApiError::new(Code::TooManyStreams, why)
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
    probe: tokio::time::Interval,
    opened: bool,
    _slot: Slot,
}

/// The frame of one event.
pub fn frame(event: &Event) -> Bytes {
    let name = match event {
        Event::Block { .. } => "block",
        Event::Fill { .. } => "fill",
        Event::Lease { .. } => "lease",
        Event::Governance { .. } => "governance",
        Event::Order { .. } => "order",
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
            _ = s.probe.tick() => {
                return Some((Ok(Bytes::from_static(b":\n")), s));
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
    let start = tokio::time::Instant::now() + PROBE;
    let mut probe = tokio::time::interval_at(start, PROBE);
    // A stream that fell behind gets its next comment a period later, not a burst.
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = Stream { rx, account, probe, opened: false, _slot: slot };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures::stream::unfold(state, next)))
}
