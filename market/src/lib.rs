//! Surplus market: the resource catalogue, signed orders, the resting book and the
//! uniform-price batch auction that clears every market once per block.
//!
//! - [`Catalogue`]: resource classes and regions from genesis; a [`Market`] is (class, region).
//! - [`Order`] ([`Offer`] or [`Bid`]) and [`Cancel`]: canonical payloads of signed ledger entries
//!   ([`SignedOrder`], [`SignedCancel`]); [`validate`] gives a typed [`Rejection`].
//! - [`Book`]: resting orders; [`Book::clear`] runs one block's auction and returns the
//!   [`Outcome`]: [`Fill`]s, clearing prices, accepted, rejected, cancelled and expired orders.
//!
//! Pure and deterministic: time is the block's, budgets come from the caller.
//!
//! ```
//! use surplus_market::*;
//! use surplus_ledger::testutil::key;
//!
//! let catalogue = Catalogue::sample();
//! let market = Market::new("vm.4c16g", "eu-west-a");
//! let now = 1_700_000_000_000;
//! let offer = Order::Offer(Offer {
//!     market: market.clone(), slots: 10, from_ms: now, until_ms: now + 100 * HOUR_MS,
//!     reserve: 50, min_hours: 1, expiry_ms: now + HOUR_MS, nonce: 1,
//! });
//! let bid = Order::Bid(Bid {
//!     market: market.clone(), slots: 4, hours: 24, limit: 70, earliest_ms: now, latest_ms: now,
//!     fill: FillRule::AllOrNone, expiry_ms: now + HOUR_MS, nonce: 1,
//! });
//! let (_, offer) = SignedOrder::sign("example", offer, &key("provider", 0));
//! let (_, bid) = SignedOrder::sign("example", bid, &key("buyer", 0));
//! let mut book = Book::new();
//! let batch = Batch { height: 1, now_ms: now, orders: vec![offer, bid], cancels: vec![] };
//! let outcome = book.clear(&catalogue, &batch, &|_: &surplus_ledger::PublicKey| u64::MAX).unwrap();
//! assert_eq!(outcome.prices[&market], 60); // midpoint of the marginal pair 50 and 70
//! assert_eq!(outcome.fills[0].slots, 4);
//! ```
#![warn(clippy::unwrap_used)]

mod auction;
mod book;
mod catalogue;
mod lenient;
mod order;
pub mod replay;

pub use auction::{clear_market, ActiveBid, ActiveOffer, MarketResult, Trade};
pub use book::{
    Allocation, Allocations, Batch, Book, Budgets, Changes, Error, Fill, Outcome, Rejected,
    Resting, RestoreError,
};
pub use catalogue::{validate_name, Catalogue, Class, Market, MarketName, Region, MAX_NAME_LEN};
pub use order::{
    cost, validate, validate_entries, Bid, Cancel, FillRule, Offer, Order, Rejection, SignedCancel,
    SignedOrder, Validated, HOUR_MS, MAX_EXPIRY_HORIZON_MS, MAX_HOURS, MAX_SLOTS,
    MAX_WINDOW_HORIZON_MS, UNITS_PER_CREDIT,
};
