//! `GET /api/v1/markets` and `GET /api/v1/book?market=class@region[&limit=N]`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use surplus_contracts::Code;

use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use surplus_contracts::State;
use surplus_market::{Market, Order, Resting};

use super::Ctx;
use crate::error::{ApiError, ApiResult};
pub use surplus_api::{BookOrder, BookSide, BookView, Level, MarketSummary};

/// Most individual orders listed per side of a book (the depth always covers every order).
pub const MAX_BOOK_ORDERS: usize = 1000;
const DEFAULT_BOOK_ORDERS: usize = 100;

/// Every market of the catalogue.
pub(crate) async fn markets(ctx: web::Data<Ctx>) -> ApiResult<HttpResponse> {
    let state = ctx.node.state();
    if let Some(body) = ctx.cache.get(&state, &Key::Markets) {
        return Ok(json(body));
    }
    let catalogue = &state.params.catalogue;
    let out: Vec<MarketSummary> = catalogue
        .markets()
        .into_iter()
        .map(|m| {
            let (bids, offers) = state.book.market(&m);
            let description = catalogue
                .classes
                .iter()
                .find(|c| c.id == m.class)
                .map(|c| c.description.clone())
                .unwrap_or_default();
            let region_description = catalogue
                .regions
                .iter()
                .find(|r| r.id == m.region)
                .map(|r| r.description.clone())
                .unwrap_or_default();
            let now_ms = state.book.now_ms();
            let free: Vec<(u32, u64)> = offers
                .iter()
                .filter_map(|r| match &r.order.order {
                    Order::Offer(o) => Some((r.free_at(now_ms), o.reserve)),
                    Order::Bid(_) => None,
                })
                .filter(|(slots, _)| *slots > 0)
                .collect();
            MarketSummary {
                class: m.class.clone(),
                region: m.region.clone(),
                description,
                region_description,
                last_price: state.last_price(&m),
                offers: offers.len(),
                offers_with_free_slots: free.len(),
                free_slots: free.iter().map(|(s, _)| u64::from(*s)).sum(),
                lowest_free_reserve: free.iter().map(|(_, r)| *r).min(),
                bids: bids.len(),
                maintenance: state.maintenance().filter(|w| w.market == m).cloned().collect(),
                market: m,
            }
        })
        .collect();
    Ok(json(ctx.cache.put(&state, Key::Markets, &out)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BookQuery {
    market: String,
    limit: Option<usize>,
}

pub(crate) fn view(r: &Resting, now_ms: u64) -> BookOrder {
    let (price, hours, start, end, free) = match &r.order.order {
        Order::Offer(o) => (o.reserve, o.min_hours, o.from_ms, o.until_ms, r.free_at(now_ms)),
        Order::Bid(b) => (b.limit, b.hours, b.earliest_ms, b.latest_ms, r.remaining),
    };
    BookOrder {
        id: r.order.id,
        author: r.order.author,
        slots: r.remaining,
        free,
        price,
        hours,
        window_start_ms: start,
        window_end_ms: end,
        expiry_ms: r.order.order.expiry_ms(),
        height: r.height,
    }
}

fn side(orders: &[&Resting], now_ms: u64, limit: usize, best_high: bool) -> BookSide {
    let all: Vec<BookOrder> = orders.iter().map(|r| view(r, now_ms)).collect();
    let mut levels: BTreeMap<u64, Level> = BTreeMap::new();
    for o in &all {
        let l = levels.entry(o.price).or_insert(Level { price: o.price, slots: 0, orders: 0 });
        l.slots += u64::from(o.free);
        l.orders += 1;
    }
    let mut depth: Vec<Level> = levels.into_values().collect();
    if best_high {
        depth.reverse();
    }
    let truncated = all.len() > limit;
    BookSide { depth, orders: all.into_iter().take(limit).collect(), truncated }
}

/// The book of `market`.
pub(crate) async fn book(ctx: web::Data<Ctx>, q: web::Query<BookQuery>) -> ApiResult<HttpResponse> {
    let limit = q.limit.unwrap_or(DEFAULT_BOOK_ORDERS);
    let state = ctx.node.state();
    // The same book at the same state serializes to the same bytes: answer from the cache.
    let key = Key::Book(q.market.clone(), limit);
    if let Some(body) = ctx.cache.get(&state, &key) {
        return Ok(json(body));
    }
    let market: Market = q.market.parse().map_err(|e: String| ApiError::new(Code::BadMarket, e))?;
    if limit == 0 || limit > MAX_BOOK_ORDERS {
        return Err(ApiError::new(
            Code::BadLimit,
            format!("limit is {limit}, it must be 1 to {MAX_BOOK_ORDERS}"),
        ));
    }
    known(&state, &market)?;
    let now_ms = state.book.now_ms();
    let (bids, offers) = state.book.market(&market);
    let view = BookView {
        last_price: state.last_price(&market),
        now_ms,
        offers: side(&offers, now_ms, limit, false),
        bids: side(&bids, now_ms, limit, true),
        market,
    };
    Ok(json(ctx.cache.put(&state, key, &view)?))
}

fn known(state: &State, market: &Market) -> ApiResult<()> {
    if state.params.catalogue.has_market(market) {
        return Ok(());
    }
    Err(ApiError::new(
        Code::UnknownMarket,
        format!("{market} is not in the consortium's catalogue; GET /api/v1/markets lists them"),
    ))
}

fn json(body: Bytes) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(body)
}

/// Prices listed when no `limit` is given.
pub const DEFAULT_HISTORY: usize = 100;
/// Most prices one history answers with.
pub const MAX_HISTORY: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    limit: Option<usize>,
}

/// Clearing prices of one market, oldest first ([`crate::PricePoint`]).
pub(crate) async fn history(
    ctx: web::Data<Ctx>,
    market: web::Path<String>,
    q: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    let market: Market = market.parse().map_err(|e: String| ApiError::new(Code::BadMarket, e))?;
    let limit = q.limit.unwrap_or(DEFAULT_HISTORY);
    if limit == 0 || limit > MAX_HISTORY {
        return Err(ApiError::new(
            Code::BadLimit,
            format!("limit is {limit}, it must be 1 to {MAX_HISTORY}"),
        ));
    }
    known(&ctx.node.state(), &market)?;
    Ok(HttpResponse::Ok().json(ctx.node.price_history(&market, limit)))
}

/// Most answers the cache keeps for one state (beyond, it starts over).
const CACHE_ENTRIES: usize = 256;

/// What a cached answer answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// `GET markets`.
    Markets,
    /// `GET book?market=M&limit=N`: the market as asked, and the limit.
    Book(String, usize),
}

/// Serialized answers by what they answer.
type Answers = HashMap<Key, Bytes>;

/// Serialized answers derived from one committed state only, reused until the state changes:
/// a repeated request copies bytes instead of walking and serializing the book again. The
/// cache holds the state it was built from, so its identity cannot be reused by another.
#[derive(Default)]
pub(crate) struct AnswerCache {
    inner: RwLock<Option<(Arc<State>, Answers)>>,
}

impl AnswerCache {
    /// The answer to `key` at `state`, if cached.
    pub(crate) fn get(&self, state: &Arc<State>, key: &Key) -> Option<Bytes> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let (at, answers) = inner.as_ref()?;
        if !Arc::ptr_eq(at, state) {
            return None;
        }
        answers.get(key).cloned()
    }

    /// Serializes `value` and keeps it as the answer to `key` at `state`.
    pub(crate) fn put<T: Serialize>(
        &self,
        state: &Arc<State>,
        key: Key,
        value: &T,
    ) -> ApiResult<Bytes> {
        let body = Bytes::from(
            serde_json::to_vec(value)
                .map_err(|e| ApiError::Internal(format!("serializing an answer: {e}")))?,
        );
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match inner.as_mut() {
            Some((at, answers)) if Arc::ptr_eq(at, state) => {
                if answers.len() >= CACHE_ENTRIES {
                    answers.clear();
                }
                answers.insert(key, body.clone());
            }
            // Only a newer state replaces the cache (a slow request of an older one does not).
            Some((at, _)) if at.height() > state.height() => {}
            _ => *inner = Some((state.clone(), HashMap::from([(key, body.clone())]))),
        }
        Ok(body)
    }
}
