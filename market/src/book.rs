//! The resting book and the per-block batch auction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound::{self, Excluded, Included, Unbounded};
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use serde::{Deserialize, Serialize};
use surplus_ledger::{Hash, PublicKey};

use crate::auction::{clear_market_with, some_duration_fits, ActiveBid, ActiveOffer};
use crate::catalogue::{Catalogue, Market};
use crate::order::{validate_in, Order, Rejection, SignedCancel, SignedOrder, HOUR_MS};

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
    /// Offers: the leases running on its slots (dropped at the first clear at or after their
    /// end).
    pub allocations: Allocations,
}

impl Resting {
    /// Slots of an offer not leased at `now_ms` (and so free for any lease starting then).
    pub fn free_at(&self, now_ms: u64) -> u32 {
        let used = self.allocations.used_at(now_ms);
        u32::try_from(u64::from(self.remaining).saturating_sub(used)).unwrap_or(0)
    }

    /// When it leaves the book: bids at their expiry or once their latest start has passed,
    /// offers at their expiry or the end of their window.
    fn deadline(&self) -> u64 {
        match &self.order.order {
            Order::Bid(b) => b.expiry_ms.min(b.latest_ms.saturating_add(1)),
            Order::Offer(o) => o.expiry_ms.min(o.until_ms),
        }
    }
}

/// Up to this many allocations of an offer are a sorted list (a clone copies at most this many);
/// more are kept in persistent maps.
const FEW_ALLOCATIONS: usize = 8;

/// The leases running on an offer's slots, by (bid, start), with the sum of their slots. Most
/// offers hold a few: a short sorted list. An offer holding more keeps them in persistent maps,
/// by (bid, start) and by end, so that a clone shares everything with the original and adding,
/// ending or dropping one costs the log of their number. None (every bid, and every offer not
/// leased) is one null pointer.
#[derive(Clone, Debug, Default)]
pub struct Allocations(Option<Box<Held>>);

/// Allocations that are there.
#[derive(Clone, Debug)]
struct Held {
    repr: Repr,
    /// Sum of their slots.
    slots: u64,
}

#[derive(Clone, Debug)]
enum Repr {
    /// At most [`FEW_ALLOCATIONS`], sorted by (bid, start).
    Few(Vec<Allocation>),
    /// Behind a pointer, so that a few allocations carry no room for two maps.
    Many(Box<Many>),
}

#[derive(Clone, Debug)]
struct Many {
    by_key: imbl::OrdMap<(Hash, u64), Allocation>,
    /// (end, bid, start) of each.
    ends: imbl::OrdSet<(u64, Hash, u64)>,
}

impl PartialEq for Allocations {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Allocations {}

/// Where the allocation of (bid, start) is, or would go, in a sorted list.
fn find(list: &[Allocation], bid: &Hash, start_ms: u64) -> Result<usize, usize> {
    list.binary_search_by(|x| (&x.bid, x.start_ms).cmp(&(bid, start_ms)))
}

impl Allocations {
    /// None.
    pub fn new() -> Self {
        Self::default()
    }

    /// From a list; `Err` names an allocation whose (bid, start) comes twice.
    pub fn from_vec(list: Vec<Allocation>) -> Result<Self, String> {
        let mut out = Self::new();
        for (k, a) in list.into_iter().enumerate() {
            let (bid, start) = (a.bid, a.start_ms);
            if out.insert(a).is_some() {
                return Err(format!(
                    "allocations[{k}]: bid {} from {start} is given twice",
                    hex::encode(bid)
                ));
            }
        }
        Ok(out)
    }

    /// How many.
    pub fn len(&self) -> usize {
        match self.0.as_deref().map(|h| &h.repr) {
            None => 0,
            Some(Repr::Few(list)) => list.len(),
            Some(Repr::Many(m)) => m.by_key.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each, by (bid, start).
    pub fn iter(&self) -> impl Iterator<Item = &Allocation> {
        let (few, many) = match self.0.as_deref().map(|h| &h.repr) {
            None => (None, None),
            Some(Repr::Few(list)) => (Some(list.iter()), None),
            Some(Repr::Many(m)) => (None, Some(m.by_key.values())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }

    /// The allocation of `bid` starting at `start_ms`.
    pub fn get(&self, bid: &Hash, start_ms: u64) -> Option<&Allocation> {
        match &self.0.as_deref()?.repr {
            Repr::Few(list) => find(list, bid, start_ms).ok().map(|i| &list[i]),
            Repr::Many(m) => m.by_key.get(&(*bid, start_ms)),
        }
    }

    /// Adds one, replacing (and returning) the one with its (bid, start).
    pub fn insert(&mut self, a: Allocation) -> Option<Allocation> {
        let old = self.remove(&a.bid, a.start_ms);
        let held =
            self.0.get_or_insert_with(|| Box::new(Held { repr: Repr::Few(Vec::new()), slots: 0 }));
        held.slots += u64::from(a.slots);
        match &mut held.repr {
            Repr::Few(list) if list.len() < FEW_ALLOCATIONS => {
                let at = find(list, &a.bid, a.start_ms).unwrap_or_else(|at| at);
                list.insert(at, a);
            }
            Repr::Few(list) => {
                let mut by_key = imbl::OrdMap::new();
                let mut ends = imbl::OrdSet::new();
                for x in std::mem::take(list).into_iter().chain([a]) {
                    ends.insert((x.end_ms, x.bid, x.start_ms));
                    by_key.insert((x.bid, x.start_ms), x);
                }
                held.repr = Repr::Many(Box::new(Many { by_key, ends }));
            }
            Repr::Many(m) => {
                m.ends.insert((a.end_ms, a.bid, a.start_ms));
                m.by_key.insert((a.bid, a.start_ms), a);
            }
        }
        old
    }

    /// Takes one out.
    pub fn remove(&mut self, bid: &Hash, start_ms: u64) -> Option<Allocation> {
        let held = self.0.as_deref_mut()?;
        let a = match &mut held.repr {
            Repr::Few(list) => list.remove(find(list, bid, start_ms).ok()?),
            Repr::Many(m) => {
                let a = m.by_key.remove(&(*bid, start_ms))?;
                m.ends.remove(&(a.end_ms, a.bid, a.start_ms));
                a
            }
        };
        held.slots -= u64::from(a.slots);
        if self.is_empty() {
            self.0 = None;
        }
        Some(a)
    }

    /// Slots held at `now_ms` (by allocations that have not ended by then).
    pub fn used_at(&self, now_ms: u64) -> u64 {
        let Some(held) = self.0.as_deref() else { return 0 };
        let ended: u64 = match &held.repr {
            Repr::Few(list) => {
                list.iter().filter(|a| a.end_ms <= now_ms).map(|a| u64::from(a.slots)).sum()
            }
            Repr::Many(m) => m
                .ends
                .range(..=(now_ms, [0xff; 32], u64::MAX))
                .filter_map(|(_, bid, start)| m.by_key.get(&(*bid, *start)))
                .map(|a| u64::from(a.slots))
                .sum(),
        };
        held.slots - ended
    }
}

impl FromIterator<Allocation> for Allocations {
    /// Later allocations replace earlier ones with the same (bid, start).
    fn from_iter<I: IntoIterator<Item = Allocation>>(iter: I) -> Self {
        let mut out = Self::new();
        for a in iter {
            out.insert(a);
        }
        out
    }
}

impl Serialize for Allocations {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Allocations {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_vec(Vec::<Allocation>::deserialize(d)?).map_err(serde::de::Error::custom)
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

/// Orders of one market: each side a map in priority order, so that an order enters, is found
/// and leaves in logarithmic time however deep the side is.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Side {
    /// The market, whose shared copy every order of the side and its index entry hold.
    market: Market,
    /// Each order behind its own pointer: a map node then holds 16 small entries, so that the
    /// first change after a clone of the book copies a few hundred bytes, not 16 whole orders.
    bids: OrdMap<Key, Arc<Resting>>,
    offers: OrdMap<Key, Arc<Resting>>,
}

impl Side {
    fn list(&self, bid: bool) -> &OrdMap<Key, Arc<Resting>> {
        if bid {
            &self.bids
        } else {
            &self.offers
        }
    }
    fn list_mut(&mut self, bid: bool) -> &mut OrdMap<Key, Arc<Resting>> {
        if bid {
            &mut self.bids
        } else {
            &mut self.offers
        }
    }
    fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.offers.is_empty()
    }
}

/// The resting book of every market, with the replay set of (author, nonce) pairs.
///
/// Every part is a persistent map (`imbl`), so a clone (one per block built, checked and
/// committed) shares everything with the original, and a block's work is in proportion to
/// what it changes: orders leave by a queue of deadlines and allocations by a queue of ends,
/// without visiting the others.
#[derive(Clone, Debug, Default)]
pub struct Book {
    markets: OrdMap<Market, Side>,
    /// Which market each resting order is in (shared with its side: no copy per order), and its
    /// rank there, so that finding it is a search of its side by key.
    index: OrdMap<Hash, (Market, Rank)>,
    /// (deadline, id) of every resting order: when it leaves the book.
    deadlines: OrdSet<(u64, Hash)>,
    /// (end, offer, bid, start) of every allocation of a resting offer.
    ends: OrdSet<(u64, Hash, Hash, u64)>,
    /// (author, nonce) of every order not yet expired, with its expiry.
    nonces: OrdMap<(PublicKey, u64), u64>,
    /// The same pairs by expiry, so that a block drops the expired ones without visiting the
    /// others.
    expiries: OrdSet<(u64, PublicKey, u64)>,
    /// Block time of the last clear; time never goes back (leases are computed from it).
    now_ms: u64,
    /// What changed since the last [`Book::take_changes`]: bookkeeping for the state root, not
    /// part of the book's value (equality ignores it).
    changes: Pending,
}

/// [`Changes`] as they happen: appended to (an item may come several times) and sorted once,
/// when taken, rather than kept sorted through every order of a block.
#[derive(Clone, Debug, Default)]
struct Pending {
    orders: Vec<Hash>,
    allocations: Vec<(Hash, Hash, u64)>,
    nonces: Vec<(PublicKey, u64, u64)>,
}

impl PartialEq for Book {
    fn eq(&self, other: &Self) -> bool {
        self.markets == other.markets
            && self.index == other.index
            && self.deadlines == other.deadlines
            && self.ends == other.ends
            && self.nonces == other.nonces
            && self.expiries == other.expiries
            && self.now_ms == other.now_ms
    }
}

impl Eq for Book {}

/// The resting orders, allocations and replay pairs a book changed: each is now different,
/// added or gone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Ids of resting orders added, changed or removed.
    pub orders: BTreeSet<Hash>,
    /// (offer, bid, start) of allocations added, changed or removed.
    pub allocations: BTreeSet<(Hash, Hash, u64)>,
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
        let (market, rank) = self.index.get(id)?;
        self.markets.get(market)?.list(rank.bid).get(&rank.key(id)).map(|r| r.as_ref())
    }

    /// Every resting order, by market, bids then offers, each in priority order.
    pub fn orders(&self) -> impl Iterator<Item = &Resting> {
        self.markets
            .values()
            .flat_map(|s| s.bids.values().chain(s.offers.values()))
            .map(|r| r.as_ref())
    }

    /// The resting orders of one market: (bids, offers), each in priority order.
    pub fn market(&self, market: &Market) -> (Vec<&Resting>, Vec<&Resting>) {
        match self.markets.get(market) {
            Some(s) => (
                s.bids.values().map(|r| r.as_ref()).collect(),
                s.offers.values().map(|r| r.as_ref()).collect(),
            ),
            None => (Vec::new(), Vec::new()),
        }
    }

    /// Whether the (author, nonce) pair is remembered (a new order using it is a replay).
    pub fn nonce_used(&self, author: &PublicKey, nonce: u64) -> bool {
        self.nonces.contains_key(&(*author, nonce))
    }

    /// Rebuilds a book from resting orders (for example read back from a file). Nonces of the
    /// given orders are remembered (a pair two orders share, until the later expiry); no other
    /// pair is (a book with more is rebuilt with [`Book::restore`]).
    pub fn from_resting(now_ms: u64, orders: Vec<Resting>) -> Self {
        let mut book = Self { now_ms, ..Self::new() };
        for r in orders {
            let (author, nonce) = (r.order.author, r.order.order.nonce());
            let expiry =
                r.order.order.expiry_ms().max(book.nonce_expiry(&author, nonce).unwrap_or(0));
            book.remember_nonce(author, nonce, expiry);
            book.insert(r);
        }
        book
    }

    /// Rebuilds the book exactly as the blocks left it, from its parts as the state root lists
    /// them (`docs/contracts.md` §5): the time of the last clear, every resting order in any
    /// order (offers with their allocations), and every remembered (author, nonce, expiry)
    /// triple. Every internal index is rebuilt, the orders are put back in priority order (the
    /// order every clear leaves them in), and no change is pending ([`Book::take_changes`] is
    /// empty).
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
        book.changes = Pending::default();
        Ok(book)
    }

    /// Remembers an (author, nonce) pair until `expiry_ms`. Private: the book keeps the pair of
    /// each resting order until at least the order's expiry, which admission relies on.
    fn remember_nonce(&mut self, author: PublicKey, nonce: u64, expiry_ms: u64) {
        if let Some(old) = self.nonces.insert((author, nonce), expiry_ms) {
            self.expiries.remove(&(old, author, nonce));
            self.changes.nonces.push((author, nonce, old));
        }
        self.expiries.insert((expiry_ms, author, nonce));
        self.changes.nonces.push((author, nonce, expiry_ms));
    }

    /// Forgets the pairs whose order has expired by `now_ms`.
    fn expire_nonces(&mut self, now_ms: u64) {
        while let Some(&(expiry, author, nonce)) = self.expiries.get_min() {
            if expiry > now_ms {
                break;
            }
            self.expiries.remove_min();
            self.nonces.remove(&(author, nonce));
            self.changes.nonces.push((author, nonce, expiry));
        }
    }

    /// What changed since the last call (or since the book was made), and starts afresh.
    pub fn take_changes(&mut self) -> Changes {
        let Pending { orders, allocations, nonces } = std::mem::take(&mut self.changes);
        Changes {
            orders: orders.into_iter().collect(),
            allocations: allocations.into_iter().collect(),
            nonces: nonces.into_iter().collect(),
        }
    }

    /// The resting orders among `ids`.
    pub fn find_many(&self, ids: &BTreeSet<Hash>) -> BTreeMap<Hash, &Resting> {
        ids.iter().filter_map(|id| Some((*id, self.get(id)?))).collect()
    }

    /// An allocation of a resting offer.
    pub fn allocation(&self, offer: &Hash, bid: &Hash, start_ms: u64) -> Option<&Allocation> {
        self.get(offer)?.allocations.get(bid, start_ms)
    }

    /// Puts an order in its place in its side, with its deadline and its allocations' ends.
    fn insert(&mut self, mut r: Resting) {
        let id = r.order.id;
        self.changes.orders.push(id);
        for a in r.allocations.iter() {
            self.changes.allocations.push((id, a.bid, a.start_ms));
            self.ends.insert((a.end_ms, id, a.bid, a.start_ms));
        }
        self.deadlines.insert((r.deadline(), id));
        let rank = Rank::of(&r);
        let market = self.side_mut(r.order.order.market()).market.clone();
        r.order.order.share_market(&market);
        self.index.insert(id, (market.clone(), rank));
        if let Some(side) = self.markets.get_mut(&market) {
            side.list_mut(rank.bid).insert(rank.key(&id), Arc::new(r));
        }
    }

    /// Admits a batch's new orders: each is decided in id order (a replay, its id resting or its
    /// (author, nonce) pair remembered or taken by an earlier order of the batch, is refused as
    /// such, whatever else is wrong with it), and the accepted ones' pairs are remembered. The
    /// accepted orders are returned in id order: they trade in this block's auction beside the
    /// resting ones, and enter the book after it, unless filled or cancelled (an order that
    /// leaves in the block that brought it never touches the book's maps). Sorts compare the
    /// first 8 bytes of ids and keys first (the rest only on a tie), not 32 each time.
    fn admit(
        &mut self,
        catalogue: &Catalogue,
        (height, now): (u64, u64),
        given: Vec<SignedOrder>,
        out: &mut Outcome,
    ) -> Vec<Fresh> {
        let mut by_id: Vec<(u64, u32)> =
            given.iter().enumerate().map(|(i, o)| (prefix(&o.id), i as u32)).collect();
        by_id.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| given[a.1 as usize].id.cmp(&given[b.1 as usize].id))
        });
        let orders: Vec<&SignedOrder> = by_id.iter().map(|&(_, i)| &given[i as usize]).collect();
        // Which pairs the book remembers, looked up in the pairs' order, and which the batch
        // uses more than once (only those need the batch's own record).
        let pair = |o: &SignedOrder| (o.author, o.order.nonce());
        let mut by_pair: Vec<(u64, u64, u32)> = orders
            .iter()
            .enumerate()
            .map(|(i, o)| (prefix(&o.author.0), o.order.nonce(), i as u32))
            .collect();
        by_pair.sort_unstable_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| orders[a.2 as usize].author.cmp(&orders[b.2 as usize].author))
        });
        let mut remembered = vec![false; orders.len()];
        let mut shared = vec![false; orders.len()];
        for (k, &(_, _, i)) in by_pair.iter().enumerate() {
            let i = i as usize;
            remembered[i] = self.nonces.contains_key(&pair(orders[i]));
            if let Some(&(_, _, j)) = by_pair.get(k + 1) {
                if pair(orders[j as usize]) == pair(orders[i]) {
                    shared[i] = true;
                    shared[j as usize] = true;
                }
            }
        }
        let mut taken: std::collections::HashSet<(PublicKey, u64)> = Default::default();
        // (market's place, the order's place in `given`)
        let mut accepted: Vec<(usize, usize)> = Vec::with_capacity(orders.len());
        let mut admitted = vec![false; orders.len()];
        for (i, &o) in orders.iter().enumerate() {
            // An order resting with this id has this order's pair, remembered until at least
            // its expiry: the index is asked only about an order expired by now (whose pair may
            // have been forgotten at the start of this clear while the order still rests until
            // the deadlines below take it).
            let replay = remembered[i]
                || (shared[i] && taken.contains(&pair(o)))
                || (o.order.expiry_ms() <= now && self.index.contains_key(&o.id));
            let result = if replay {
                Err(Rejection::ReplayedNonce { nonce: o.order.nonce() })
            } else {
                validate_in(&o.order, catalogue, now)
            };
            match result {
                Ok(place) => {
                    if shared[i] {
                        taken.insert(pair(o));
                    }
                    out.accepted.push(o.id);
                    accepted.push((place, by_id[i].1 as usize));
                    admitted[i] = true;
                }
                Err(reason) => out.rejected.push(Rejected { id: o.id, reason }),
            }
        }

        // The accepted orders' pairs, remembered in the pairs' order (already sorted above), then
        // queued by expiry.
        let mut by_expiry: Vec<(u64, u64, u64, u32)> = Vec::with_capacity(accepted.len());
        for &(p, nonce, i) in by_pair.iter().filter(|&&(_, _, i)| admitted[i as usize]) {
            let o = orders[i as usize];
            self.nonces.insert(pair(o), o.order.expiry_ms());
            by_expiry.push((o.order.expiry_ms(), p, nonce, i));
        }
        by_expiry.sort_unstable();
        for &(expiry_ms, _, nonce, i) in &by_expiry {
            let author = orders[i as usize].author;
            self.expiries.insert((expiry_ms, author, nonce));
            self.changes.nonces.push((author, nonce, expiry_ms));
        }
        // The accepted orders, in id order, to trade before they enter the book.
        let mut given: Vec<Option<SignedOrder>> = given.into_iter().map(Some).collect();
        accepted
            .into_iter()
            .filter_map(|(place, g)| Some((place, given[g].take()?)))
            .map(|(place, o)| {
                let remaining = match &o.order {
                    Order::Bid(b) => b.slots,
                    Order::Offer(of) => of.slots,
                };
                let r = Resting { order: o, height, remaining, allocations: Allocations::new() };
                Fresh { place, r, live: true }
            })
            .collect()
    }

    /// Puts a block's new orders in the book, as [`Book::insert`] does one, except that the ends
    /// of an offer's allocations (made by this block's auction) are already queued and recorded;
    /// each order comes with its market's place in the catalogue, and the orders in id order.
    /// Each map's inserts go in that map's order.
    fn insert_many(&mut self, rs: Vec<(usize, Resting)>) {
        let mut deadlines: Vec<(u64, u64, u32)> = Vec::with_capacity(rs.len());
        let mut names: Vec<Option<Market>> = Vec::new();
        for (k, (place, r)) in rs.iter().enumerate() {
            self.changes.orders.push(r.order.id);
            deadlines.push((r.deadline(), prefix(&r.order.id), k as u32));
            if names.len() <= *place {
                names.resize(place + 1, None);
            }
            if names[*place].is_none() {
                names[*place] = Some(self.side_mut(r.order.order.market()).market.clone());
            }
        }
        deadlines.sort_unstable();
        for (deadline, _, k) in deadlines {
            self.deadlines.insert((deadline, rs[k as usize].1.order.id));
        }
        // Into the index in id order, then into the sides market by market, each side in
        // priority order (the orders share the block's height: by price, then id); the sort
        // moves small keys, not the orders.
        let mut placed: Vec<(usize, bool, u64, u64, u32)> = Vec::with_capacity(rs.len());
        let mut orders: Vec<Option<(Rank, Resting)>> = Vec::with_capacity(rs.len());
        for (k, (place, mut r)) in rs.into_iter().enumerate() {
            let rank = Rank::of(&r);
            let key = rank.key(&r.order.id);
            let name = names[place].clone().unwrap_or_else(|| r.order.order.market().clone());
            r.order.order.share_market(&name);
            self.index.insert(key.id, (name, rank));
            placed.push((place, rank.bid, key.price, prefix(&key.id), k as u32));
            orders.push(Some((rank, r)));
        }
        placed.sort_unstable_by(|a, b| {
            (a.0, a.1, a.2, a.3).cmp(&(b.0, b.1, b.2, b.3)).then_with(|| {
                let id = |k: u32| orders[k as usize].as_ref().map(|(_, r)| r.order.id);
                id(a.4).cmp(&id(b.4))
            })
        });
        let mut placed = placed.into_iter().peekable();
        while let Some((place, ..)) = placed.peek().copied() {
            let market = names[place].clone().expect("every order's market is named above");
            let side = self.side_mut(&market);
            while let Some((.., k)) = placed.next_if(|x| x.0 == place) {
                if let Some((rank, r)) = orders[k as usize].take() {
                    side.list_mut(rank.bid).insert(rank.key(&r.order.id), Arc::new(r));
                }
            }
        }
    }

    /// The side of a market, made empty if it has none.
    fn side_mut(&mut self, market: &Market) -> &mut Side {
        if !self.markets.contains_key(market) {
            let side = Side { market: market.clone(), bids: OrdMap::new(), offers: OrdMap::new() };
            self.markets.insert(market.clone(), side);
        }
        self.markets.get_mut(market).expect("just made")
    }

    /// Takes an order out of the book, with its allocations; `None` if it does not rest.
    fn take(&mut self, id: &Hash) -> Option<Arc<Resting>> {
        let (market, rank) = self.index.remove(id)?;
        let side = self.markets.get_mut(&market)?;
        let r = side.list_mut(rank.bid).remove(&rank.key(id))?;
        if side.is_empty() {
            self.markets.remove(&market);
        }
        self.deadlines.remove(&(r.deadline(), *id));
        for a in r.allocations.iter() {
            self.changes.allocations.push((*id, a.bid, a.start_ms));
            self.ends.remove(&(a.end_ms, *id, a.bid, a.start_ms));
        }
        self.changes.orders.push(*id);
        Some(r)
    }

    /// A resting order to change in place (its position in its side does not change: priority
    /// depends on price, height and id only).
    fn order_mut(&mut self, id: &Hash) -> Option<&mut Resting> {
        let (market, rank) = self.index.get(id)?;
        let side = self.markets.get_mut(market)?;
        side.list_mut(rank.bid).get_mut(&rank.key(id)).map(Arc::make_mut)
    }

    /// Drops the allocations that have ended by `now_ms`.
    fn drop_ended_allocations(&mut self, now_ms: u64) {
        while let Some(&(end, offer, bid, start)) = self.ends.get_min() {
            if end > now_ms {
                break;
            }
            self.ends.remove_min();
            self.changes.allocations.push((offer, bid, start));
            if let Some(r) = self.order_mut(&offer) {
                r.allocations.remove(&bid, start);
                let id = r.order.id;
                self.changes.orders.push(id);
            }
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
        self.clear_owned(catalogue, batch.clone(), budgets)
    }

    /// [`Book::clear`] taking the batch, whose new orders then move into the book instead of
    /// being copied.
    pub fn clear_owned(
        &mut self,
        catalogue: &Catalogue,
        batch: Batch,
        budgets: &dyn Budgets,
    ) -> Result<Outcome, Error> {
        let now = batch.now_ms;
        if now < self.now_ms {
            return Err(Error::TimeWentBackwards { last_ms: self.now_ms, now_ms: now });
        }
        self.now_ms = now;
        let mut out = Outcome::default();
        self.expire_nonces(now);

        let Batch { height, orders, cancels, .. } = batch;
        let mut fresh = self.admit(catalogue, (height, now), orders, &mut out);

        let mut cancels: Vec<&SignedCancel> = cancels.iter().collect();
        cancels.sort_by_key(|c| c.id);
        let fresh_ids: HashMap<Hash, usize> = if cancels.is_empty() {
            HashMap::new()
        } else {
            fresh.iter().enumerate().map(|(i, f)| (f.r.order.id, i)).collect()
        };
        for c in cancels {
            let id = &c.cancel.order;
            let result = match fresh_ids.get(id).map(|&i| &mut fresh[i]) {
                // An order of this block, cancelled in it: as if it had entered and left.
                Some(f) if f.live => {
                    if f.r.order.author == c.author {
                        f.live = false;
                        Ok(())
                    } else {
                        Err(Rejection::NotAuthor)
                    }
                }
                _ => self.cancel(id, &c.author),
            };
            match result {
                Ok(()) => out.cancelled.push(*id),
                Err(reason) => out.rejected.push(Rejected { id: c.id, reason }),
            }
        }

        // The block's own orders cannot be due yet: validation wants their expiry and window
        // after the block time.
        while let Some(&(deadline, id)) = self.deadlines.get_min() {
            if deadline > now {
                break;
            }
            self.take(&id);
            out.expired.push(id);
        }
        out.expired.sort();
        self.drop_ended_allocations(now);

        // The block's orders by their market's place in the catalogue, each side in priority
        // order, to be read merged with the book's.
        let mut by_place: Vec<FreshSide> = Vec::new();
        for (i, f) in fresh.iter().enumerate().filter(|(_, f)| f.live) {
            if by_place.len() <= f.place {
                by_place.resize_with(f.place + 1, FreshSide::default);
            }
            let rank = Rank::of(&f.r);
            let entry = &mut by_place[f.place];
            let list = if rank.bid { &mut entry.bids } else { &mut entry.offers };
            list.push((rank.key(&f.r.order.id), i));
        }
        // Every market with resting or new orders, in order (a catalogue lists its markets in
        // the order of their names, so the places are in that order too), with its new orders.
        let mut markets: Vec<(Market, Option<usize>)> = Vec::new();
        {
            let mut book = self.markets.keys().peekable();
            for (place, side) in by_place.iter_mut().enumerate() {
                let Some(&(_, first)) = side.bids.first().or(side.offers.first()) else {
                    continue;
                };
                for list in [&mut side.bids, &mut side.offers] {
                    // The block's orders share its height: by price, then id.
                    list.sort_unstable_by(|(a, _), (b, _)| {
                        (a.price, prefix(&a.id))
                            .cmp(&(b.price, prefix(&b.id)))
                            .then_with(|| a.id.cmp(&b.id))
                    });
                }
                let market = fresh[first].r.order.order.market();
                while let Some(m) = book.next_if(|m| *m < market) {
                    markets.push((m.clone(), None));
                }
                book.next_if(|m| *m == market);
                markets.push((market.clone(), Some(place)));
            }
            markets.extend(book.map(|m| (m.clone(), None)));
        }
        debug_assert!(markets.windows(2).all(|w| w[0].0 < w[1].0));

        // Each buyer's budget met so far: (what it could spend at the start, spent since).
        let mut budget_of: HashMap<PublicKey, (u64, u64), ahash::RandomState> = HashMap::default();
        let no_fresh = FreshSide::default();
        // Lists rebuilt for each market, kept to reuse their room.
        let mut bid_at: Vec<(Key, Src)> = Vec::new();
        let mut offer_at: Vec<(Key, Src)> = Vec::new();
        let (mut bids, mut offers): (Vec<ActiveBid>, Vec<ActiveOffer>) = Default::default();
        for (market, place) in markets {
            let side = self.markets.get(&market);
            let new = place.map_or(&no_fresh, |p| &by_place[p]);
            let bids_from = |range: (Bound<Key>, Bound<Key>)| {
                let book = side.into_iter().flat_map(move |s| s.bids.range(range));
                let upper = range.1;
                let new = new.bids.iter().take_while(move |(k, _)| below_bound(k, upper));
                let new = new.filter(move |(k, _)| above_bound(k, range.0));
                merged(book, new, &fresh)
            };
            let all = (Unbounded, Unbounded);
            // Only orders whose prices cross can trade or set the price (`docs/auction.md`): offers
            // up to the highest active limit, bids down to the lowest active reserve; a side's
            // keys give each order's price without reading the order. The bids below only lend
            // their durations to the offers no crossing bid's duration fits, if any.
            let active_bid = |r: &Resting| match &r.order.order {
                Order::Bid(b) => b.earliest_ms <= now && r.remaining > 0,
                Order::Offer(_) => false,
            };
            let Some(max_limit) =
                bids_from(all).find(|(_, _, r)| active_bid(r)).map(|(k, _, _)| u64::MAX - k.price)
            else {
                continue;
            };
            // Where each active order is: an active order's `index` is its place here.
            bid_at.clear();
            offer_at.clear();
            offers.clear();
            bids.clear();
            let book_offers = side.into_iter().flat_map(|s| s.offers.iter());
            offers.extend(
                merged(book_offers, new.offers.iter(), &fresh)
                    .take_while(|(k, _, _)| k.price <= max_limit)
                    .filter_map(|(k, src, r)| match &r.order.order {
                        Order::Offer(o) if o.from_ms <= now => {
                            let free = r.free_at(now);
                            let max_hours =
                                u32::try_from((o.until_ms - now) / HOUR_MS).unwrap_or(u32::MAX);
                            (free > 0 && max_hours > 0).then(|| {
                                offer_at.push((k, src));
                                ActiveOffer {
                                    index: offer_at.len() - 1,
                                    reserve: o.reserve,
                                    free,
                                    min_hours: o.min_hours,
                                    max_hours,
                                    provider: r.order.author,
                                }
                            })
                        }
                        _ => None,
                    }),
            );
            let Some(min_reserve) = offers.first().map(|o| o.reserve) else { continue };
            // Bids with a limit below the lowest reserve have keys from this one on (none if the
            // lowest reserve is 0).
            let below = (u64::MAX - min_reserve).checked_add(1).map(|price| Key {
                price,
                height: 0,
                id: [0; 32],
            });
            let crossing = (Unbounded, below.map_or(Unbounded, Excluded));
            bids.extend(bids_from(crossing).filter_map(|(k, src, r)| match &r.order.order {
                Order::Bid(b) if active_bid(r) => {
                    let buyer = r.order.author;
                    let (budget, spent) =
                        *budget_of.entry(buyer).or_insert_with(|| (budgets.available(&buyer), 0));
                    bid_at.push((k, src));
                    let left = budget.saturating_sub(spent);
                    Some(ActiveBid::new(bid_at.len() - 1, b, r.remaining, buyer, left))
                }
                _ => None,
            }));
            let mut durations: Vec<u32> = bids.iter().map(|b| b.hours).collect();
            durations.sort_unstable();
            durations.dedup();
            if let Some(below) =
                below.filter(|_| !offers.iter().all(|o| some_duration_fits(&durations, o)))
            {
                durations.extend(bids_from((Included(below), Unbounded)).filter_map(
                    |(_, _, r)| match &r.order.order {
                        Order::Bid(b) if active_bid(r) => Some(b.hours),
                        _ => None,
                    },
                ));
                durations.sort_unstable();
                durations.dedup();
            }
            let Some(result) = clear_market_with(&bids, &offers, &durations) else { continue };
            out.prices.insert(market.clone(), result.price);
            let mut filled: Vec<Hash> = Vec::new();
            // The market's side, looked up once for all its trades.
            let mut book_side =
                if result.trades.is_empty() { None } else { self.markets.get_mut(&market) };
            for t in result.trades {
                let (bi, oi) = (bids[t.bid].index, offers[t.offer].index);
                let hours = bids[t.bid].hours;
                let end_ms = now + u64::from(hours) * HOUR_MS;
                let Some(bid) = resting_mut(&mut book_side, bid_at[bi], true, &mut fresh) else {
                    continue;
                };
                bid.remaining -= t.slots;
                let (bid_id, buyer) = (bid.order.id, bid.order.author);
                if bid.remaining == 0 && bid_at[bi].1 == Src::Book {
                    filled.push(bid_id);
                }
                let Some(offer) = resting_mut(&mut book_side, offer_at[oi], false, &mut fresh)
                else {
                    continue;
                };
                let (offer_id, provider) = (offer.order.id, offer.order.author);
                offer.allocations.insert(Allocation {
                    bid: bid_id,
                    start_ms: now,
                    end_ms,
                    slots: t.slots,
                });
                self.ends.insert((end_ms, offer_id, bid_id, now));
                self.changes.orders.push(bid_id);
                self.changes.orders.push(offer_id);
                self.changes.allocations.push((offer_id, bid_id, now));
                let fill = Fill {
                    bid: bid_id,
                    offer: offer_id,
                    buyer,
                    provider,
                    market: market.clone(),
                    slots: t.slots,
                    start_ms: now,
                    end_ms,
                    price: result.price,
                };
                budget_of.entry(fill.buyer).or_insert_with(|| (budgets.available(&buyer), 0)).1 +=
                    fill.cost();
                out.fills.push(fill);
            }
            // Filled bids leave the book.
            for id in filled {
                self.take(&id);
            }
        }
        // The block's orders still there enter the book: offers, and bids with slots still
        // wanted (a bid filled or cancelled in its own block never does).
        self.insert_many(
            fresh
                .into_iter()
                .filter(|f| {
                    f.live && (f.r.remaining > 0 || matches!(f.r.order.order, Order::Offer(_)))
                })
                .map(|f| (f.place, f.r))
                .collect(),
        );
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
        let Some(a) = self.allocation(offer, bid, start_ms).cloned() else { return false };
        let new_end = a.end_ms.min(end_ms);
        self.set_end(offer, a, new_end);
        true
    }

    /// Moves an allocation's end.
    fn set_end(&mut self, offer: &Hash, a: Allocation, end_ms: u64) {
        self.ends.remove(&(a.end_ms, *offer, a.bid, a.start_ms));
        self.ends.insert((end_ms, *offer, a.bid, a.start_ms));
        self.changes.orders.push(*offer);
        self.changes.allocations.push((*offer, a.bid, a.start_ms));
        if let Some(r) = self.order_mut(offer) {
            r.allocations.insert(Allocation { end_ms, ..a });
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
        let r = self.get(offer).ok_or("the offer is no longer in the book")?;
        let Order::Offer(o) = &r.order.order else { return Err("not an offer".into()) };
        if new_end_ms > o.until_ms {
            return Err(format!("the offer's window ends at {}, before {new_end_ms}", o.until_ms));
        }
        let a = r
            .allocations
            .get(bid, start_ms)
            .cloned()
            .ok_or("the lease holds no slots of this offer")?;
        let old_end = a.end_ms;
        // Peak use of the other leases over [old_end, new_end): it changes only where one starts.
        let others = || r.allocations.iter().filter(|x| !(&x.bid == bid && x.start_ms == start_ms));
        let use_at = |t: u64| -> u64 {
            others().filter(|a| a.start_ms <= t && t < a.end_ms).map(|a| u64::from(a.slots)).sum()
        };
        let peak = std::iter::once(old_end)
            .chain(others().map(|a| a.start_ms).filter(|s| (old_end..new_end_ms).contains(s)))
            .map(use_at)
            .max()
            .unwrap_or(0);
        if peak + u64::from(a.slots) > u64::from(r.remaining) {
            return Err(format!(
                "only {} of the offer's slots are free until {new_end_ms}",
                u64::from(r.remaining).saturating_sub(peak)
            ));
        }
        self.set_end(offer, a, new_end_ms);
        Ok(())
    }

    /// Takes every resting order of `author` out of the book (its key was rotated); returns
    /// their ids, in id order. Their nonces stay used.
    pub fn withdraw_author(&mut self, author: &PublicKey) -> Vec<Hash> {
        let mut ids: Vec<Hash> =
            self.orders().filter(|r| r.order.author == *author).map(|r| r.order.id).collect();
        ids.sort();
        for id in &ids {
            self.take(id);
        }
        ids
    }

    /// Takes every resting order of the markets `retired` picks out of the book (their class
    /// or region left the catalogue); returns their ids, in id order. Their nonces stay used.
    pub fn withdraw_markets(&mut self, retired: impl Fn(&Market) -> bool) -> Vec<Hash> {
        let mut ids: Vec<Hash> = self
            .markets
            .iter()
            .filter(|(m, _)| retired(m))
            .flat_map(|(_, s)| s.bids.values().chain(s.offers.values()).map(|r| r.order.id))
            .collect();
        ids.sort();
        for id in &ids {
            self.take(id);
        }
        ids
    }

    fn cancel(&mut self, id: &Hash, author: &PublicKey) -> Result<(), Rejection> {
        let r = self.get(id).ok_or_else(|| Rejection::UnknownOrder(hex::encode(id)))?;
        if &r.order.author != author {
            return Err(Rejection::NotAuthor);
        }
        self.take(id);
        Ok(())
    }
}

/// Where an order ranks in its side of its market: bids by higher limit first, offers by lower
/// reserve first, then earlier block, then smaller id.
/// One of a block's accepted orders, before it enters the book.
struct Fresh {
    /// Its market's place in the catalogue.
    place: usize,
    r: Resting,
    /// Not cancelled in its own block.
    live: bool,
}

/// A block's orders of one market, by key (priority order), with their places among the
/// block's accepted orders.
#[derive(Default)]
struct FreshSide {
    bids: Vec<(Key, usize)>,
    offers: Vec<(Key, usize)>,
}

/// Where an order taking part in an auction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    /// In the book.
    Book,
    /// Among the block's accepted orders, at this place.
    Fresh(usize),
}

/// The orders of one side in priority order: the book's merged with the block's (each already
/// in that order; keys are unique).
fn merged<'a>(
    book: impl Iterator<Item = (&'a Key, &'a Arc<Resting>)>,
    new: impl Iterator<Item = &'a (Key, usize)>,
    fresh: &'a [Fresh],
) -> impl Iterator<Item = (Key, Src, &'a Resting)> {
    let mut book = book.peekable();
    let mut new = new.peekable();
    std::iter::from_fn(move || {
        let from_book = match (book.peek(), new.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((b, _)), Some((n, _))) => *b < n,
        };
        if from_book {
            book.next().map(|(k, r)| (*k, Src::Book, r.as_ref()))
        } else {
            new.next().map(|&(k, i)| (k, Src::Fresh(i), &fresh[i].r))
        }
    })
}

/// A resting order of a market's side (`side`) or one of this block's, to change in place during
/// the auction.
fn resting_mut<'a>(
    side: &'a mut Option<&mut Side>,
    (key, src): (Key, Src),
    bid: bool,
    fresh: &'a mut [Fresh],
) -> Option<&'a mut Resting> {
    match src {
        Src::Book => side.as_mut()?.list_mut(bid).get_mut(&key).map(Arc::make_mut),
        Src::Fresh(i) => fresh.get_mut(i).map(|f| &mut f.r),
    }
}

/// Whether `key` lies below an upper bound.
fn below_bound(key: &Key, bound: Bound<Key>) -> bool {
    match bound {
        Unbounded => true,
        Included(b) => *key <= b,
        Excluded(b) => *key < b,
    }
}

/// Whether `key` lies above a lower bound.
fn above_bound(key: &Key, bound: Bound<Key>) -> bool {
    match bound {
        Unbounded => true,
        Included(b) => *key >= b,
        Excluded(b) => *key > b,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rank {
    bid: bool,
    price: u64,
    height: u64,
}

impl Rank {
    fn of(r: &Resting) -> Self {
        let (bid, price) = match &r.order.order {
            Order::Bid(b) => (true, b.limit),
            Order::Offer(o) => (false, o.reserve),
        };
        Self { bid, price, height: r.height }
    }

    /// The key of the order of this rank and `id` in its side.
    fn key(&self, id: &Hash) -> Key {
        let price = if self.bid { u64::MAX - self.price } else { self.price };
        Key { price, height: self.height, id: *id }
    }
}

/// The first 8 bytes of an id or key, to sort by before comparing all 32.
fn prefix(bytes: &[u8; 32]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(head)
}

/// An order's key in its side: the map's order is the priority order. `price` is the reserve of
/// an offer and `u64::MAX` minus the limit of a bid, so that the smaller key goes first on both
/// sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    price: u64,
    height: u64,
    id: Hash,
}
