//! Maintenance windows and lease notices (`docs/contracts.md` §9): a provider takes one of its
//! pools out of the market for a window and tells each affected buyer on the ledger, so that a
//! lease it cannot move ends at the window's start with an exact refund and, when the notice was
//! given in time, no penalty.
//!
//! A pool is the provider's own name for a set of machines in one market; the ledger knows it
//! only by that name. The windows are state items, so every node (and a browser) can show a
//! market's upcoming maintenance before anyone bids.

use serde::{Deserialize, Serialize};
use surplus_ledger::encoding::{DecodeError, Reader, Writer};
use surplus_ledger::PublicKey;
use surplus_market::{Market, HOUR_MS};

/// The notice period that makes a lease's notice penalty-free, unless the genesis parameters
/// say otherwise (24 hours).
pub const DEFAULT_NOTICE_MS: u64 = 24 * HOUR_MS;
/// Longest pool name, bytes.
pub const MAX_POOL_NAME: usize = 64;
/// Longest reason of a window, bytes of UTF-8.
pub const MAX_REASON: usize = 512;
/// Most windows one provider may have open at once.
pub const MAX_WINDOWS: usize = 64;
/// Furthest ahead a window may start: a year.
pub const MAX_WINDOW_AHEAD_MS: u64 = 366 * 24 * HOUR_MS;

/// Whether `name` is a valid pool name: 1 to 64 bytes of ASCII letters, digits and `._@-`.
pub fn check_pool_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_POOL_NAME {
        return Err(format!("a pool name has 1 to {MAX_POOL_NAME} bytes, not {}", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "._@-".contains(*c))) {
        return Err(format!("a pool name has only letters, digits and ._@- (found {c:?})"));
    }
    Ok(())
}

/// A pool's maintenance window, as the state holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Window {
    /// The provider (the key that signed the notice).
    pub provider: PublicKey,
    /// The provider's name for the pool.
    pub pool: String,
    /// The pool's market.
    pub market: Market,
    /// When the work starts, ms since the epoch: leases on the pool that were not moved end
    /// then.
    pub start_ms: u64,
    /// When the window ends by itself, ms; 0 while it lasts until the provider says it is done.
    pub until_ms: u64,
    /// What the provider said about it.
    pub reason: String,
    /// The block that recorded it.
    pub height: u64,
}

impl Window {
    /// The natural key of its state item: `provider ‖ short(pool)`.
    pub fn key(provider: &PublicKey, pool: &str) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&provider.0).short_bytes(pool.as_bytes());
        w.finish()
    }

    /// Its state item's value: `provider ‖ short(pool) ‖ short(class) ‖ short(region) ‖
    /// start_ms ‖ until_ms ‖ var(reason) ‖ height`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128 + self.reason.len());
        w.raw(&self.provider.0).short_bytes(self.pool.as_bytes());
        w.short_bytes(self.market.class.as_bytes()).short_bytes(self.market.region.as_bytes());
        w.u64(self.start_ms).u64(self.until_ms).bytes(self.reason.as_bytes()).u64(self.height);
        w.finish()
    }

    /// Decodes a state item's value.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let provider = PublicKey(r.array("maintenance.provider")?);
        let pool = text(&mut r, "maintenance.pool", false)?;
        let class = text(&mut r, "maintenance.class", false)?;
        let region = text(&mut r, "maintenance.region", false)?;
        let w = Window {
            provider,
            pool,
            market: Market::from_names(class, region),
            start_ms: r.u64("maintenance.start_ms")?,
            until_ms: r.u64("maintenance.until_ms")?,
            reason: text(&mut r, "maintenance.reason", true)?,
            height: r.u64("maintenance.height")?,
        };
        r.finish()?;
        Ok(w)
    }
}

/// A `short` (or, `long`, a `var` of at most [`MAX_REASON`] bytes) of UTF-8.
pub(crate) fn text(
    r: &mut Reader<'_>,
    field: &'static str,
    long: bool,
) -> Result<String, DecodeError> {
    let at = r.position();
    let b = if long { r.bytes(field, MAX_REASON)? } else { r.short_bytes(field)? };
    String::from_utf8(b.to_vec()).map_err(|_| r.invalid_at(field, at, "not UTF-8".into()))
}

/// The notice a provider gave a lease: it ends at `end_ms` (`docs/contracts.md` §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notice {
    /// When the lease ends, ms since the epoch.
    pub end_ms: u64,
    /// The time of the block that recorded the notice, ms.
    pub given_ms: u64,
    /// Whether it was given at least the consortium's notice period ahead (`notice_ms` of the
    /// parameters in force then): if so the provider pays no penalty.
    pub in_time: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_and_windows() {
        assert!(check_pool_name("pve-a.rack1@eu").is_ok());
        assert!(check_pool_name("").is_err());
        assert!(check_pool_name("a b").is_err());
        assert!(check_pool_name(&"x".repeat(65)).is_err());
        let w = Window {
            provider: PublicKey([7; 32]),
            pool: "pve-a".into(),
            market: Market::new("vm.4c16g", "eu-west-a"),
            start_ms: 5,
            until_ms: 0,
            reason: "kernel update".into(),
            height: 3,
        };
        assert_eq!(Window::decode(&w.encode()).unwrap(), w);
        let mut long = w.encode();
        long.push(0);
        assert!(Window::decode(&long).is_err());
    }
}
