//! Re-running one block's auction from a file: what an auditor uses to re-execute a block, and
//! what `surplus market clear` reads. The format is described in `docs/auction.md`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use surplus_ledger::{Entry, EntryKind, Hash, PublicKey, Signature};

use crate::book::{Allocation, Allocations, Batch, Book, Outcome, Resting};
use crate::catalogue::Catalogue;
use crate::order::{Order, SignedCancel, SignedOrder};

/// Format name of an auction input file.
pub const FORMAT: &str = "surplus-auction-input/v1";

/// An order or cancel as it appears in an input file: either the hex of its ledger entry, or
/// its fields with author and signature (the id is computed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum InputEntry {
    /// `{"entry": "<hex of the entry encoding>"}`.
    Encoded {
        /// Hex of [`Entry::encode`].
        entry: String,
    },
    /// `{"author": .., "signature": .., "order": {..}}`.
    Order {
        /// The author's key.
        author: PublicKey,
        /// The author's signature.
        signature: Signature,
        /// The order.
        order: Order,
    },
    /// `{"author": .., "signature": .., "cancel": "<order id hex>"}`.
    Cancel {
        /// The author's key.
        author: PublicKey,
        /// The author's signature.
        signature: Signature,
        /// The id of the order to cancel.
        #[serde(with = "surplus_ledger::hex_hash")]
        cancel: surplus_ledger::Hash,
    },
}

impl<'de> Deserialize<'de> for InputEntry {
    /// By the fields present, so that an error inside an order names its field (a plain
    /// untagged enum would only say that no form matched).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            entry: Option<String>,
            author: Option<PublicKey>,
            signature: Option<Signature>,
            order: Option<Order>,
            cancel: Option<String>,
        }
        let raw = Raw::deserialize(d)?;
        match raw {
            Raw {
                entry: Some(entry),
                author: None,
                signature: None,
                order: None,
                cancel: None,
            } => Ok(Self::Encoded { entry }),
            Raw {
                entry: None,
                author: Some(author),
                signature: Some(signature),
                order: Some(order),
                cancel: None,
            } => Ok(Self::Order { author, signature, order }),
            Raw {
                entry: None,
                author: Some(author),
                signature: Some(signature),
                order: None,
                cancel: Some(cancel),
            } => {
                let cancel = surplus_ledger::parse_hex::<32>(&cancel, "cancel")
                    .map_err(serde::de::Error::custom)?;
                Ok(Self::Cancel { author, signature, cancel })
            }
            _ => Err(serde::de::Error::custom(
                "expected {\"entry\": hex}, or \"author\" and \"signature\" with one of \"order\" \
                 or \"cancel\"",
            )),
        }
    }
}

/// A resting order in an input file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputResting {
    /// The order.
    #[serde(flatten)]
    pub entry: InputEntry,
    /// Height of the block that brought it.
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub height: u64,
    /// Bids: slots still wanted; offers: the offer's slots (defaults to the order's slots).
    #[serde(default)]
    pub remaining: Option<u32>,
    /// Offers: leases running on its slots.
    #[serde(default)]
    pub allocations: Vec<Allocation>,
}

/// One auction to re-run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuctionInput {
    /// Always [`FORMAT`].
    pub format: String,
    /// The chain the orders were signed for.
    pub chain_id: String,
    /// Height of the block.
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub height: u64,
    /// Block time, ms since the epoch.
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub now_ms: u64,
    /// The consortium's catalogue.
    pub catalogue: Catalogue,
    /// The resting book before the block.
    #[serde(default)]
    pub book: Vec<InputResting>,
    /// The block's new orders and cancels.
    #[serde(default)]
    pub orders: Vec<InputEntry>,
    /// What each buyer can spend, in units (absent: nothing).
    #[serde(default, deserialize_with = "crate::lenient::u64_values")]
    pub balances: BTreeMap<PublicKey, u64>,
}

/// Why an input file cannot be run. Each names the element at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Wrong `format`.
    #[error("format is {0:?}, expected {FORMAT:?}")]
    Format(String),
    /// The chain id is malformed.
    #[error("chain_id: {0}")]
    ChainId(String),
    /// The catalogue is not valid.
    #[error("catalogue: {0}")]
    Catalogue(String),
    /// An entry is malformed, not an order or cancel, or badly signed.
    #[error("{place}: {reason}")]
    Entry {
        /// Where, e.g. `orders[3]` or `book[0]`.
        place: String,
        /// What is wrong.
        reason: String,
    },
    /// The auction refused the batch.
    #[error("{0}")]
    Auction(String),
}

enum Parsed {
    Order(SignedOrder),
    Cancel(SignedCancel),
}

/// Where an input entry is in the file: named in an error only (no string per entry).
#[derive(Clone, Copy, Debug)]
enum Place {
    Book(usize),
    Orders(usize),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Book(i) => write!(f, "book[{i}]"),
            Place::Orders(i) => write!(f, "orders[{i}]"),
        }
    }
}

/// Every input entry's signature, checked together (strict rule, over the cores).
#[derive(Default)]
struct Signatures {
    batch: surplus_ledger::BatchVerifier,
    places: Vec<Place>,
}

/// Decodes one input entry and queues its signature in `signatures` (checked for all entries at
/// once, while the auction runs; a bad one fails the run).
fn parse(
    place: Place,
    chain_id: &str,
    e: &InputEntry,
    signatures: &mut Signatures,
) -> Result<Parsed, InputError> {
    let bad = |reason: String| InputError::Entry { place: place.to_string(), reason };
    let entry = match e {
        InputEntry::Encoded { entry } => {
            let bytes = hex::decode(entry).map_err(|e| bad(format!("entry is not hex: {e}")))?;
            Entry::decode(&bytes).map_err(|e| bad(format!("entry does not decode: {e}")))?
        }
        InputEntry::Order { author, signature, order } => Entry {
            kind: EntryKind::ORDER,
            auth: surplus_ledger::Auth::Signed { author: *author, signature: *signature },
            payload: order.encode(),
        },
        InputEntry::Cancel { author, signature, cancel } => Entry {
            kind: EntryKind::CANCEL,
            auth: surplus_ledger::Auth::Signed { author: *author, signature: *signature },
            payload: crate::order::Cancel { order: *cancel }.encode(),
        },
    };
    let surplus_ledger::Auth::Signed { author, signature } = entry.auth else {
        return Err(bad("the entry is not signed".into()));
    };
    signatures.batch.push(
        author,
        Entry::signing_bytes(chain_id, entry.kind, &author, &entry.payload),
        signature,
    );
    signatures.places.push(place);
    match entry.kind {
        EntryKind::ORDER => SignedOrder::from_entry(&entry).map(Parsed::Order),
        EntryKind::CANCEL => SignedCancel::from_entry(&entry).map(Parsed::Cancel),
        other => {
            return Err(bad(format!("entry kind {} is neither an order nor a cancel", other.0)))
        }
    }
    .map_err(|e| bad(e.to_string()))
}

impl AuctionInput {
    /// Checks every element and re-runs the auction.
    pub fn run(&self) -> Result<(Book, Outcome), InputError> {
        if self.format != FORMAT {
            return Err(InputError::Format(self.format.clone()));
        }
        surplus_ledger::validate_chain_id(&self.chain_id).map_err(InputError::ChainId)?;
        let catalogue = self.catalogue.clone().validated().map_err(InputError::Catalogue)?;
        let mut signatures = Signatures::default();
        let mut resting = Vec::with_capacity(self.book.len());
        let mut seen: HashMap<Hash, usize> = HashMap::with_capacity(self.book.len());
        let mut pairs: HashMap<(PublicKey, u64), usize> = HashMap::with_capacity(self.book.len());
        for (i, r) in self.book.iter().enumerate() {
            let at = Place::Book(i);
            let place = || at.to_string();
            let parsed = parse(at, &self.chain_id, &r.entry, &mut signatures)?;
            let Parsed::Order(order) = parsed else {
                return Err(InputError::Entry {
                    place: place(),
                    reason: "a cancel cannot rest in the book".into(),
                });
            };
            let slots = match &order.order {
                Order::Bid(b) => b.slots,
                Order::Offer(o) => o.slots,
            };
            let remaining = r.remaining.unwrap_or(slots);
            if remaining > slots || remaining == 0 {
                return Err(InputError::Entry {
                    place: place(),
                    reason: format!("remaining {remaining} must be 1 to the order's {slots} slots"),
                });
            }
            if r.height > self.height {
                return Err(InputError::Entry {
                    place: place(),
                    reason: format!(
                        "rests since height {}, after the block's {}",
                        r.height, self.height
                    ),
                });
            }
            if let Some(j) = seen.insert(order.id, i) {
                return Err(InputError::Entry {
                    place: place(),
                    reason: format!("the same order as book[{j}]: an order rests once"),
                });
            }
            if let Some(j) = pairs.insert((order.author, order.order.nonce()), i) {
                return Err(InputError::Entry {
                    place: place(),
                    reason: format!(
                        "the same author and nonce as book[{j}]: a nonce is used by one order"
                    ),
                });
            }
            check_resting(&order, &r.allocations, &catalogue, self.now_ms)
                .map_err(|reason| InputError::Entry { place: place(), reason })?;
            let allocations = Allocations::from_vec(r.allocations.clone())
                .map_err(|reason| InputError::Entry { place: place(), reason })?;
            resting.push(Resting { order, height: r.height, remaining, allocations });
        }
        let mut batch = Batch {
            height: self.height,
            now_ms: self.now_ms,
            orders: Vec::new(),
            cancels: Vec::new(),
        };
        for (i, e) in self.orders.iter().enumerate() {
            match parse(Place::Orders(i), &self.chain_id, e, &mut signatures)? {
                Parsed::Order(o) => batch.orders.push(o),
                Parsed::Cancel(c) => batch.cancels.push(c),
            }
        }
        // The auction runs while the signatures are checked on the other threads, as if every
        // one were good; a bad one discards its result (the same answer as checking first, in
        // the time of the longer of the two rather than their sum).
        let balances = &self.balances;
        let budget = |k: &PublicKey| balances.get(k).copied().unwrap_or(0);
        let Signatures { batch: mut queued, places } = signatures;
        let (checked, cleared) = std::thread::scope(|scope| {
            let checking = scope.spawn(move || queued.verify());
            let mut book = Book::from_resting(0, resting);
            let cleared =
                book.clear_owned(&catalogue, batch, &budget).map(|outcome| (book, outcome));
            let checked = checking.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (checked, cleared)
        });
        checked.map_err(|(i, why)| InputError::Entry {
            place: places[i].to_string(),
            reason: format!("signature: {why}"),
        })?;
        cleared.map_err(|e| InputError::Auction(e.to_string()))
    }
}

/// The rules an order resting in the book must have passed when it was admitted, as far as they
/// do not depend on the time of its admission (the auction expires what has expired since), and
/// the leases on an offer's slots: each of at least one slot over a non-empty time within the
/// offer's window, never more slots at once than the offer has.
fn check_resting(
    order: &SignedOrder,
    allocations: &[Allocation],
    catalogue: &Catalogue,
    now_ms: u64,
) -> Result<(), String> {
    use crate::order::Rejection as R;
    match crate::order::validate(&order.order, catalogue, now_ms) {
        Ok(())
        | Err(
            R::Expired { .. }
            | R::ExpiryTooFar { .. }
            | R::WindowInPast { .. }
            | R::WindowTooFar { .. }
            | R::WindowTooShort { .. },
        ) => {}
        Err(e) => return Err(e.to_string()),
    }
    let Order::Offer(offer) = &order.order else {
        if allocations.is_empty() {
            return Ok(());
        }
        return Err("a bid has no allocations (only an offer's slots are leased)".into());
    };
    for (k, a) in allocations.iter().enumerate() {
        if a.slots == 0 || a.start_ms >= a.end_ms {
            return Err(format!(
                "allocations[{k}]: {} slots from {} to {}: at least one slot over a non-empty time",
                a.slots, a.start_ms, a.end_ms
            ));
        }
        if a.start_ms < offer.from_ms || a.end_ms > offer.until_ms {
            return Err(format!(
                "allocations[{k}]: {}..{} lies outside the offer's window {}..{}",
                a.start_ms, a.end_ms, offer.from_ms, offer.until_ms
            ));
        }
        // The most slots in use at once is reached at some allocation's start.
        let at_once: u64 = allocations
            .iter()
            .filter(|b| b.start_ms <= a.start_ms && a.start_ms < b.end_ms)
            .map(|b| u64::from(b.slots))
            .sum();
        if at_once > u64::from(offer.slots) {
            return Err(format!(
                "allocations: {at_once} slots leased at {}, the offer has {}",
                a.start_ms, offer.slots
            ));
        }
    }
    Ok(())
}
