//! The resting book and the per-block batch auction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use surplus_ledger::{Hash, PublicKey};

use crate::auction::{clear_market, ActiveBid, ActiveOffer};
use crate::catalogue::{Catalogue, Market};
use crate::order::{validate, Order, Rejection, SignedCancel, SignedOrder, HOUR_MS};

/// Slots of an offer leased over `[start_ms, end_ms)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The bid it went to.
    #[serde(with = "surplus_ledger::hex_hash")]
    pub bid: Hash,
    /// Lease start.
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub start_ms: u64,
    /// Lease end (exclusive).
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub end_ms: u64,
    /// Slots.
    pub slots: u32,
}

/// An order in the book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resting {
    /// The signed order.
    pub order: SignedOrder,
    /// Height of the block that brought it (priority: earlier first).
    pub height: u64,
    /// Bids: slots still wanted. Offers: the offer's slots.
    pub remaining: u32,
    /// Offers: the leases running on its slots (pruned when they end).
    pub allocations: Vec<Allocation>,
}

impl Resting {
    /// Slots of an offer not leased at `now_ms` (and so free for any lease starting then).
    pub fn free_at(&self, now_ms: u64) -> u32 {
        let used: u64 =
            self.allocations.iter().filter(|a| a.end_ms > now_ms).map(|a| u64::from(a.slots)).sum();
        u32::try_from(u64::from(self.remaining).saturating_sub(used)).unwrap_or(0)
    }
}

/// One trade: slots of an offer leased to a bid at the market's clearing price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Fill {
    /// The bid.
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub bid: Hash,
    /// The offer.
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub offer: Hash,
    /// The bid's author.
    pub buyer: PublicKey,
    /// The offer's author.
    pub provider: PublicKey,
    /// The market.
    pub market: Market,
    /// Slots leased.
    pub slots: u32,
    /// Lease start: the block time.
    pub start_ms: u64,
    /// Lease end (exclusive).
    pub end_ms: u64,
    /// The market's clearing price, units per slot-hour.
    pub price: u64,
}

impl Fill {
    /// Hours leased.
    pub fn hours(&self) -> u64 {
        (self.end_ms - self.start_ms) / HOUR_MS
    }
    /// What the buyer pays for the whole lease.
    pub fn cost(&self) -> u64 {
        // Bounded by the bid's validated cost, which fits in 64 bits.
        (u128::from(self.slots) * u128::from(self.hours()) * u128::from(self.price))
            .min(u128::from(u64::MAX)) as u64
    }
}

/// One block's input to the auction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Block height.
    pub height: u64,
    /// Block time, ms since the epoch.
    pub now_ms: u64,
    /// New orders, in any order (the auction sorts them by id).
    pub orders: Vec<SignedOrder>,
    /// Cancels, in any order.
    pub cancels: Vec<SignedCancel>,
}

/// What one block's auction did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Trades, market by market, in execution order.
    pub fills: Vec<Fill>,
    /// Clearing price of each market that traded.
    pub prices: BTreeMap<Market, u64>,
    /// New orders that entered the book, by id.
    #[serde(with = "hashes")]
    pub accepted: Vec<Hash>,
    /// New orders and cancels refused, with the reason, by id.
    pub rejected: Vec<Rejected>,
    /// Orders removed by a cancel, by id.
    #[serde(with = "hashes")]
    pub cancelled: Vec<Hash>,
    /// Orders that left the book because they expired or can no longer start, by id.
    #[serde(with = "hashes")]
    pub expired: Vec<Hash>,
}

/// A refused order or cancel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Its id.
    #[serde(with = "surplus_ledger::hex_hash")]
    pub id: Hash,
    /// Why.
    pub reason: Rejection,
}

mod hashes {
    use serde::{Deserialize, Deserializer, Serializer};
    use surplus_ledger::Hash;
    pub fn serialize<S: Serializer>(v: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| {
                surplus_ledger::parse_hex::<32>(s, "order id").map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

/// Orders of one market.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Side {
    bids: Vec<Resting>,
    offers: Vec<Resting>,
}

/// The resting book of every market, with the replay set of (author, nonce) pairs.
#[derive(Clone, Debug, Default)]
pub struct Book {
    markets: BTreeMap<Market, Side>,
    /// Which market each resting order is in, for cancels.
    index: HashMap<Hash, Market>,
    /// (author, nonce) of every order not yet expired, with its expiry.
    nonces: BTreeMap<(PublicKey, u64), u64>,
    /// The same pairs by expiry, so that a block drops the expired ones without visiting the
    /// others.
    expiries: BTreeSet<(u64, PublicKey, u64)>,
    /// Block time of the last clear; time never goes back (leases are computed from it).
    now_ms: u64,
    /// What changed since the last [`Book::take_changes`]: bookkeeping for the state root, not
    /// part of the book's value (equality ignores it).
    changes: Changes,
}

impl PartialEq for Book {
    fn eq(&self, other: &Self) -> bool {
        self.markets == other.markets
            && self.index == other.index
            && self.nonces == other.nonces
            && self.expiries == other.expiries
            && self.now_ms == other.now_ms
    }
}

impl Eq for Book {}

/// The resting orders and replay pairs a book changed: each is now different, added or gone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Ids of resting orders added, changed or removed.
    pub orders: BTreeSet<Hash>,
    /// (author, nonce, expiry) of replay pairs added or removed.
    pub nonces: BTreeSet<(PublicKey, u64, u64)>,
}

/// A batch the book cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Block times never decrease; the ledger guarantees it, so this is a caller's bug.
    #[error("block time {now_ms} is before the previous block's {last_ms}")]
    TimeWentBackwards {
        /// The previous block's time.
        last_ms: u64,
        /// This batch's time.
        now_ms: u64,
    },
}

/// Why [`Book::restore`] refuses its parts: they are not a book that blocks could have made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// A resting order that cannot be in the book as given.
    #[error("order {}: {reason}", hex::encode(id))]
    Order {
        /// The order's id.
        id: Hash,
        /// What is wrong with it.
        reason: String,
    },
    /// The same (author, nonce) pair is given twice.
    #[error("the replay pair ({author}, {nonce}) is given twice")]
    DuplicateNonce {
        /// The author.
        author: PublicKey,
        /// The nonce.
        nonce: u64,
    },
}

/// What a buyer can still spend, asked of the state machine (which owns balances).
pub trait Budgets {
    /// Credits (units) `buyer` can commit to new leases now.
    fn available(&self, buyer: &PublicKey) -> u64;
}

impl<F: Fn(&PublicKey) -> u64> Budgets for F {
    fn available(&self, buyer: &PublicKey) -> u64 {
        self(buyer)
    }
}

impl Book {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of resting orders.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no order rests.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// A resting order by id.
    pub fn get(&self, id: &Hash) -> Option<&Resting> {
        let market = self.index.get(id)?;
        let side = self.markets.get(market)?;
        side.bids.iter().chain(side.offers.iter()).find(|r| &r.order.id == id)
    }

    /// Every resting order, by market, bids then offers, each in priority order.
    pub fn orders(&self) -> impl Iterator<Item = &Resting> {
        self.markets.values().flat_map(|s| s.bids.iter().chain(s.offers.iter()))
    }

    /// The resting orders of one market: (bids, offers), each in priority order.
    pub fn market(&self, market: &Market) -> (&[Resting], &[Resting]) {
        match self.markets.get(market) {
            Some(s) => (&s.bids, &s.offers),
            None => (&[], &[]),
        }
    }

    /// Whether the (author, nonce) pair is remembered (a new order using it is a replay).
    pub fn nonce_used(&self, author: &PublicKey, nonce: u64) -> bool {
        self.nonces.contains_key(&(*author, nonce))
    }

    /// Rebuilds a book from resting orders (for example read back from a file). Nonces of the
    /// given orders are remembered; the caller supplies the others with [`Book::remember_nonce`].
    pub fn from_resting(now_ms: u64, orders: Vec<Resting>) -> Self {
        let mut book = Self { now_ms, ..Self::new() };
        for r in orders {
            book.remember_nonce(r.order.author, r.order.order.nonce(), r.order.order.expiry_ms());
            book.insert(r);
        }
        book.sort();
        book
    }

    /// Rebuilds the book exactly as the blocks left it, from its parts as the state root lists
    /// them (`docs/contracts.md` §5): the time of the last clear, every resting order in any
    /// order, and every remembered (author, nonce, expiry) triple. Every internal index is
    /// rebuilt, the orders are put back in priority order (the order every clear leaves them
    /// in), and no change is pending ([`Book::take_changes`] is empty).
    ///
    /// Refuses parts no sequence of blocks makes: an order twice, a bid with nothing left to
    /// fill or with allocations, an offer whose `remaining` is not its slots, an order whose
    /// (author, nonce) pair is not remembered until the order's expiry, a pair twice.
    pub fn restore(
        now_ms: u64,
        orders: Vec<Resting>,
        nonces: impl IntoIterator<Item = (PublicKey, u64, u64)>,
    ) -> Result<Self, RestoreError> {
        let mut book = Self { now_ms, ..Self::new() };
        for (author, nonce, expiry_ms) in nonces {
            if book.nonces.insert((author, nonce), expiry_ms).is_some() {
                return Err(RestoreError::DuplicateNonce { author, nonce });
            }
            book.expiries.insert((expiry_ms, author, nonce));
        }
        for r in orders {
            let id = r.order.id;
            let bad = |reason: String| RestoreError::Order { id, reason };
            if book.index.contains_key(&id) {
                return Err(bad("given twice".into()));
            }
            match &r.order.order {
                Order::Bid(b) => {
                    if r.remaining == 0 || r.remaining > b.slots {
                        return Err(bad(format!(
                            "a bid for {} slots cannot rest with {} still wanted",
                            b.slots, r.remaining
                        )));
                    }
                    if !r.allocations.is_empty() {
                        return Err(bad("a bid has no allocations".into()));
                    }
                }
                Order::Offer(o) => {
                    if r.remaining != o.slots {
                        return Err(bad(format!(
                            "an offer's remaining is its {} slots, not {}",
                            o.slots, r.remaining
                        )));
                    }
                }
            }
            // An order is accepted together with its pair, and both leave at its expiry.
            let (author, nonce, expiry) =
                (r.order.author, r.order.order.nonce(), r.order.order.expiry_ms());
            if book.nonces.get(&(author, nonce)) != Some(&expiry) {
                return Err(bad(format!(
                    "its (author, nonce {nonce}) pair is not remembered until its expiry {expiry}"
                )));
            }
            book.insert(r);
        }
        book.sort();
        book.changes = Changes::default();
        Ok(book)
    }

    /// Remembers an (author, nonce) pair until `expiry_ms`.
    pub fn remember_nonce(&mut self, author: PublicKey, nonce: u64, expiry_ms: u64) {
        if let Some(old) = self.nonces.insert((author, nonce), expiry_ms) {
            self.expiries.remove(&(old, author, nonce));
            self.changes.nonces.insert((author, nonce, old));
        }
        self.expiries.insert((expiry_ms, author, nonce));
        self.changes.nonces.insert((author, nonce, expiry_ms));
    }

    /// Forgets the pairs whose order has expired by `now_ms`.
    fn expire_nonces(&mut self, now_ms: u64) {
        while let Some(&(expiry, author, nonce)) = self.expiries.first() {
            if expiry > now_ms {
                break;
            }
            self.expiries.pop_first();
            self.nonces.remove(&(author, nonce));
            self.changes.nonces.insert((author, nonce, expiry));
        }
    }

    /// What changed since the last call (or since the book was made), and starts afresh.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// The resting orders among `ids`, found in one pass over the book.
    pub fn find_many(&self, ids: &BTreeSet<Hash>) -> BTreeMap<Hash, &Resting> {
        if ids.is_empty() {
            return BTreeMap::new();
        }
        self.orders().filter(|r| ids.contains(&r.order.id)).map(|r| (r.order.id, r)).collect()
    }

    fn insert(&mut self, r: Resting) {
        self.changes.orders.insert(r.order.id);
        let market = r.order.order.market();
        self.index.insert(r.order.id, market.clone());
        if !self.markets.contains_key(market) {
            self.markets.insert(market.clone(), Side::default());
        }
        let Some(side) = self.markets.get_mut(r.order.order.market()) else { return };
        match r.order.order {
            Order::Bid(_) => side.bids.push(r),
            Order::Offer(_) => side.offers.push(r),
        }
    }

    fn sort(&mut self) {
        for side in self.markets.values_mut() {
            // Ids are unique, so priority is a total order and an unstable sort is deterministic.
            side.bids.sort_unstable_by(bid_priority);
            side.offers.sort_unstable_by(offer_priority);
        }
    }

    /// Runs one block: admits the new orders, applies cancels, drops expired orders, then clears
    /// every market in a uniform-price batch auction. Deterministic: the same book and batch give
    /// the same outcome whatever the order of `batch.orders` and `batch.cancels`.
    pub fn clear(
        &mut self,
        catalogue: &Catalogue,
        batch: &Batch,
        budgets: &dyn Budgets,
    ) -> Result<Outcome, Error> {
        let now = batch.now_ms;
        if now < self.now_ms {
            return Err(Error::TimeWentBackwards { last_ms: self.now_ms, now_ms: now });
        }
        self.now_ms = now;
        let mut out = Outcome::default();
        self.expire_nonces(now);

        let mut orders: Vec<&SignedOrder> = batch.orders.iter().collect();
        orders.sort_by_key(|o| o.id);
        for o in orders {
            let reason =
                if self.index.contains_key(&o.id) || self.nonce_used(&o.author, o.order.nonce()) {
                    Some(Rejection::ReplayedNonce { nonce: o.order.nonce() })
                } else {
                    validate(&o.order, catalogue, now).err()
                };
            if let Some(reason) = reason {
                out.rejected.push(Rejected { id: o.id, reason });
                continue;
            }
            self.remember_nonce(o.author, o.order.nonce(), o.order.expiry_ms());
            let remaining = match &o.order {
                Order::Bid(b) => b.slots,
                Order::Offer(of) => of.slots,
            };
            self.insert(Resting {
                order: o.clone(),
                height: batch.height,
                remaining,
                allocations: Vec::new(),
            });
            out.accepted.push(o.id);
        }

        let mut cancels: Vec<&SignedCancel> = batch.cancels.iter().collect();
        cancels.sort_by_key(|c| c.id);
        for c in cancels {
            match self.cancel(&c.cancel.order, &c.author) {
                Ok(()) => out.cancelled.push(c.cancel.order),
                Err(reason) => out.rejected.push(Rejected { id: c.id, reason }),
            }
        }

        for side in self.markets.values_mut() {
            let keep = |r: &Resting| match &r.order.order {
                Order::Bid(b) => b.expiry_ms > now && b.latest_ms >= now,
                Order::Offer(o) => o.expiry_ms > now && o.until_ms > now,
            };
            for r in side.bids.iter().chain(side.offers.iter()).filter(|r| !keep(r)) {
                out.expired.push(r.order.id);
            }
            side.bids.retain(keep);
            side.offers.retain(keep);
            for o in &mut side.offers {
                let before = o.allocations.len();
                o.allocations.retain(|a| a.end_ms > now);
                if o.allocations.len() != before {
                    self.changes.orders.insert(o.order.id);
                }
            }
        }
        for id in &out.expired {
            self.index.remove(id);
            self.changes.orders.insert(*id);
        }
        out.expired.sort();
        self.sort();

        let mut spent: HashMap<PublicKey, u64> = HashMap::new();
        let mut available: HashMap<PublicKey, u64> = HashMap::new();
        for (market, side) in self.markets.iter_mut() {
            let bids: Vec<ActiveBid> = side
                .bids
                .iter()
                .enumerate()
                .filter_map(|(i, r)| match &r.order.order {
                    Order::Bid(b) if b.earliest_ms <= now && r.remaining > 0 => {
                        let buyer = r.order.author;
                        let budget =
                            *available.entry(buyer).or_insert_with(|| budgets.available(&buyer));
                        let left = budget.saturating_sub(spent.get(&buyer).copied().unwrap_or(0));
                        Some(ActiveBid::new(i, b, r.remaining, buyer, left))
                    }
                    _ => None,
                })
                .collect();
            let offers: Vec<ActiveOffer> = side
                .offers
                .iter()
                .enumerate()
                .filter_map(|(i, r)| match &r.order.order {
                    Order::Offer(o) if o.from_ms <= now => {
                        let free = r.free_at(now);
                        let max_hours =
                            u32::try_from((o.until_ms - now) / HOUR_MS).unwrap_or(u32::MAX);
                        (free > 0 && max_hours > 0).then_some(ActiveOffer {
                            index: i,
                            reserve: o.reserve,
                            free,
                            min_hours: o.min_hours,
                            max_hours,
                            provider: r.order.author,
                        })
                    }
                    _ => None,
                })
                .collect();
            let Some(result) = clear_market(&bids, &offers) else { continue };
            out.prices.insert(market.clone(), result.price);
            for t in result.trades {
                let bid = &mut side.bids[bids[t.bid].index];
                let offer = &mut side.offers[offers[t.offer].index];
                let hours = bids[t.bid].hours;
                let end_ms = now + u64::from(hours) * HOUR_MS;
                bid.remaining -= t.slots;
                self.changes.orders.insert(bid.order.id);
                self.changes.orders.insert(offer.order.id);
                offer.allocations.push(Allocation {
                    bid: bid.order.id,
                    start_ms: now,
                    end_ms,
                    slots: t.slots,
                });
                let fill = Fill {
                    bid: bid.order.id,
                    offer: offer.order.id,
                    buyer: bid.order.author,
                    provider: offer.order.author,
                    market: market.clone(),
                    slots: t.slots,
                    start_ms: now,
                    end_ms,
                    price: result.price,
                };
                *spent.entry(fill.buyer).or_insert(0) += fill.cost();
                out.fills.push(fill);
            }
            for r in side.bids.iter().filter(|r| r.remaining == 0) {
                self.index.remove(&r.order.id);
            }
            side.bids.retain(|r| r.remaining > 0);
        }
        self.markets.retain(|_, s| !s.bids.is_empty() || !s.offers.is_empty());
        Ok(out)
    }

    /// Block time of the last clear.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Every remembered (author, nonce) pair with its expiry, sorted.
    pub fn nonces(&self) -> Vec<(PublicKey, u64, u64)> {
        self.nonces.iter().map(|((a, n), e)| (*a, *n, *e)).collect()
    }

    /// The expiry of a remembered (author, nonce) pair.
    pub fn nonce_expiry(&self, author: &PublicKey, nonce: u64) -> Option<u64> {
        self.nonces.get(&(*author, nonce)).copied()
    }

    /// Number of remembered (author, nonce) pairs.
    pub fn nonce_count(&self) -> usize {
        self.nonces.len()
    }

    fn offer_mut(&mut self, offer: &Hash) -> Option<&mut Resting> {
        let market = self.index.get(offer)?;
        self.markets.get_mut(market)?.offers.iter_mut().find(|r| &r.order.id == offer)
    }

    /// The reserve price of a resting offer.
    pub fn offer_reserve(&self, offer: &Hash) -> Option<u64> {
        match &self.get(offer)?.order.order {
            Order::Offer(o) => Some(o.reserve),
            Order::Bid(_) => None,
        }
    }

    /// Ends a lease's hold on its offer's slots at `end_ms` (an early termination). Returns
    /// whether the allocation was found (an expired offer no longer holds any).
    pub fn end_allocation(&mut self, offer: &Hash, bid: &Hash, start_ms: u64, end_ms: u64) -> bool {
        let Some(r) = self.offer_mut(offer) else { return false };
        let id = r.order.id;
        match r.allocations.iter_mut().find(|a| &a.bid == bid && a.start_ms == start_ms) {
            Some(a) => {
                a.end_ms = a.end_ms.min(end_ms);
                self.changes.orders.insert(id);
                true
            }
            None => false,
        }
    }

    /// Extends a lease's hold on its offer's slots to `new_end_ms`, if the offer still rests, its
    /// window reaches that far, and its other leases leave the slots free meanwhile.
    pub fn extend_allocation(
        &mut self,
        offer: &Hash,
        bid: &Hash,
        start_ms: u64,
        new_end_ms: u64,
    ) -> Result<(), String> {
        let r = self.offer_mut(offer).ok_or("the offer is no longer in the book")?;
        let Order::Offer(o) = &r.order.order else { return Err("not an offer".into()) };
        if new_end_ms > o.until_ms {
            return Err(format!("the offer's window ends at {}, before {new_end_ms}", o.until_ms));
        }
        let pos = r
            .allocations
            .iter()
            .position(|a| &a.bid == bid && a.start_ms == start_ms)
            .ok_or("the lease holds no slots of this offer")?;
        let (old_end, slots) = (r.allocations[pos].end_ms, r.allocations[pos].slots);
        // Peak use of the other leases over [old_end, new_end): it changes only where one starts.
        let others = || r.allocations.iter().enumerate().filter(|(i, _)| *i != pos).map(|(_, a)| a);
        let use_at = |t: u64| -> u64 {
            others().filter(|a| a.start_ms <= t && t < a.end_ms).map(|a| u64::from(a.slots)).sum()
        };
        let peak = std::iter::once(old_end)
            .chain(others().map(|a| a.start_ms).filter(|s| (old_end..new_end_ms).contains(s)))
            .map(use_at)
            .max()
            .unwrap_or(0);
        if peak + u64::from(slots) > u64::from(r.remaining) {
            return Err(format!(
                "only {} of the offer's slots are free until {new_end_ms}",
                u64::from(r.remaining).saturating_sub(peak)
            ));
        }
        r.allocations[pos].end_ms = new_end_ms;
        let id = r.order.id;
        self.changes.orders.insert(id);
        Ok(())
    }

    fn cancel(&mut self, id: &Hash, author: &PublicKey) -> Result<(), Rejection> {
        let market =
            self.index.get(id).ok_or_else(|| Rejection::UnknownOrder(hex::encode(id)))?.clone();
        let side = self
            .markets
            .get_mut(&market)
            .ok_or_else(|| Rejection::UnknownOrder(hex::encode(id)))?;
        for list in [&mut side.bids, &mut side.offers] {
            if let Some(pos) = list.iter().position(|r| &r.order.id == id) {
                if &list[pos].order.author != author {
                    return Err(Rejection::NotAuthor);
                }
                list.remove(pos);
                self.index.remove(id);
                self.changes.orders.insert(*id);
                return Ok(());
            }
        }
        Err(Rejection::UnknownOrder(hex::encode(id)))
    }
}

/// Bids: higher limit first, then earlier block, then smaller id.
fn bid_priority(a: &Resting, b: &Resting) -> std::cmp::Ordering {
    let price = |r: &Resting| match &r.order.order {
        Order::Bid(b) => b.limit,
        Order::Offer(_) => 0,
    };
    price(b).cmp(&price(a)).then(a.height.cmp(&b.height)).then(a.order.id.cmp(&b.order.id))
}

/// Offers: lower reserve first, then earlier block, then smaller id.
fn offer_priority(a: &Resting, b: &Resting) -> std::cmp::Ordering {
    let price = |r: &Resting| match &r.order.order {
        Order::Offer(o) => o.reserve,
        Order::Bid(_) => u64::MAX,
    };
    price(a).cmp(&price(b)).then(a.height.cmp(&b.height)).then(a.order.id.cmp(&b.order.id))
}
