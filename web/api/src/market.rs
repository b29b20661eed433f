//! Markets, books, resting orders and clearing prices.

use serde::{Deserialize, Serialize};
use surplus_ledger::{Hash, PublicKey};
use surplus_market::Market;
use utoipa::ToSchema;

/// One market of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MarketSummary {
    /// `class@region`.
    pub market: Market,
    /// The resource class.
    pub class: String,
    /// What the class is.
    pub description: String,
    /// The region.
    pub region: String,
    /// The last clearing price, units per slot-hour (none before the first trade).
    pub last_price: Option<u64>,
    /// What the region is (its place).
    #[serde(default)]
    pub region_description: String,
    /// Resting offers (sold-out ones included).
    pub offers: usize,
    /// Resting offers with at least one slot free now.
    #[serde(default)]
    pub offers_with_free_slots: usize,
    /// Slots free now over every resting offer.
    #[serde(default)]
    pub free_slots: u64,
    /// The lowest reserve of an offer with a slot free now, units per slot-hour: a bid at or
    /// above it can fill now (none when nothing is free).
    #[serde(default)]
    pub lowest_free_reserve: Option<u64>,
    /// Resting bids.
    pub bids: usize,
    /// Maintenance windows that providers announced for pools in this market (their capacity
    /// is off the market while they last; leases on them move or end at the window's start).
    #[serde(default)]
    pub maintenance: Vec<surplus_contracts::maintenance::Window>,
}

/// The resting book of one market.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BookView {
    /// The market.
    pub market: Market,
    /// The book's time (the last block's), ms.
    pub now_ms: u64,
    /// The last clearing price.
    pub last_price: Option<u64>,
    /// Sell side: depth from the lowest reserve up.
    pub offers: BookSide,
    /// Buy side: depth from the highest limit down.
    pub bids: BookSide,
}

/// One side of a book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BookSide {
    /// Slots by price, best price first (offers: free slots now; bids: slots still wanted).
    pub depth: Vec<Level>,
    /// The orders, in priority order, at most `limit`.
    pub orders: Vec<BookOrder>,
    /// Whether more orders rest than are listed.
    pub truncated: bool,
}

/// Slots at one price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Level {
    /// Units per slot-hour.
    pub price: u64,
    /// Slots.
    pub slots: u64,
    /// Orders at this price.
    pub orders: usize,
}

/// A resting order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BookOrder {
    /// The order id.
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub id: Hash,
    /// Its author (provider of an offer, buyer of a bid).
    pub author: PublicKey,
    /// Offers: the offer's slots. Bids: slots still wanted.
    pub slots: u32,
    /// Offers: slots not leased at the book's time. Bids: as `slots`.
    pub free: u32,
    /// Offers: the reserve. Bids: the limit. Units per slot-hour.
    pub price: u64,
    /// Offers: the shortest lease accepted. Bids: the lease duration. Hours.
    pub hours: u32,
    /// Offers: start of availability. Bids: earliest start. ms.
    pub window_start_ms: u64,
    /// Offers: end of availability. Bids: latest start. ms.
    pub window_end_ms: u64,
    /// When it leaves the book, ms.
    pub expiry_ms: u64,
    /// Height of the block that brought it.
    pub height: u64,
}

/// A resting order of the account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    /// `offer` or `bid`.
    pub side: String,
    /// The market.
    pub market: Market,
    /// The order as the book shows it.
    #[serde(flatten)]
    pub order: BookOrder,
}

/// A page of an account's resting orders (`GET /api/v1/orders`), oldest first: by the height
/// of the block that took each in, then by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderList {
    /// The orders of this page.
    pub orders: Vec<OrderView>,
    /// Whether the account has more orders after this page.
    pub truncated: bool,
    /// When truncated: the `after` value that asks for the next page (`HEIGHT-ID`, the last
    /// order of this page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One clearing of a market: the block, its time, the uniform price and the slots it filled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PricePoint {
    /// Height of the block.
    pub height: u64,
    /// Its timestamp, ms since the epoch.
    pub time_ms: u64,
    /// The clearing price, units per slot-hour.
    pub price: u64,
    /// Slots filled at that price.
    pub slots: u64,
}
