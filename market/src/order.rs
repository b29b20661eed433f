//! Orders: offers, bids and cancels, their canonical payloads inside signed ledger entries, and
//! their validation with a typed reason for every rejection.

use serde::{Deserialize, Serialize};
use surplus_ledger::encoding::{DecodeError, Reader, Writer};
use surplus_ledger::{Auth, Entry, EntryKind, Hash, PublicKey, SecretKey, Signature};

use crate::catalogue::{validate_name, Catalogue, Market};

/// One hour in milliseconds.
pub const HOUR_MS: u64 = 3_600_000;
/// Most slots one order may name.
pub const MAX_SLOTS: u32 = 1_000_000;
/// Longest lease, in hours (five years).
pub const MAX_HOURS: u32 = 5 * 8_760;
/// Furthest an expiry may lie after the block time: 90 days. Bounds the replay set.
pub const MAX_EXPIRY_HORIZON_MS: u64 = 90 * 24 * HOUR_MS;
/// Furthest a bid may ask to start, or an offer's window may end, after the block time: one year
/// plus the longest lease.
pub const MAX_WINDOW_HORIZON_MS: u64 = (8_760 + MAX_HOURS as u64) * HOUR_MS;

/// Credits are fixed-point integers: one credit is 1,000,000 units. Prices are units per
/// slot-hour.
pub const UNITS_PER_CREDIT: u64 = 1_000_000;

/// How much of a bid must fill in one block for any of it to fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillRule {
    /// Every slot or none.
    AllOrNone,
    /// At least this many slots (1 = any partial fill).
    AtLeast(u32),
}

/// A sell order: a provider's spare slots in one market over a window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The market.
    pub market: Market,
    /// Slots available at once.
    pub slots: u32,
    /// Start of availability, ms since the epoch.
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub from_ms: u64,
    /// End of availability (exclusive), ms since the epoch.
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub until_ms: u64,
    /// Lowest price accepted, units per slot-hour.
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub reserve: u64,
    /// Shortest lease accepted, hours (0 or 1: any).
    pub min_hours: u32,
    /// The order leaves the book at this time, ms since the epoch.
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub expiry_ms: u64,
    /// Distinguishes otherwise equal orders; an (author, nonce) pair is used once.
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub nonce: u64,
}

/// A buy order: slots for a number of hours, starting within a window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    /// The market.
    pub market: Market,
    /// Slots wanted at once.
    pub slots: u32,
    /// Lease duration, hours.
    pub hours: u32,
    /// Highest price paid, units per slot-hour.
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub limit: u64,
    /// Earliest start, ms since the epoch.
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub earliest_ms: u64,
    /// Latest start, ms since the epoch.
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub latest_ms: u64,
    /// How much must fill at once.
    pub fill: FillRule,
    /// The order leaves the book at this time, ms since the epoch.
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub expiry_ms: u64,
    /// Distinguishes otherwise equal orders; an (author, nonce) pair is used once.
    #[serde(deserialize_with = "crate::lenient::u64")]
    pub nonce: u64,
}

/// Either side of the book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "side", rename_all = "snake_case")]
pub enum Order {
    /// Sell.
    Offer(Offer),
    /// Buy.
    Bid(Bid),
}

/// A cancellation of an order by its author.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// Id of the order to cancel.
    #[serde(with = "surplus_ledger::hex_hash")]
    pub order: Hash,
}

const SIDE_OFFER: u8 = 1;
const SIDE_BID: u8 = 2;
const FILL_AON: u8 = 1;
const FILL_AT_LEAST: u8 = 2;

impl Order {
    /// The market it is in.
    pub fn market(&self) -> &Market {
        match self {
            Order::Offer(o) => &o.market,
            Order::Bid(b) => &b.market,
        }
    }

    /// Holds `market`'s shared copy of its market's names if that is its market (the book's
    /// orders share one copy per market).
    pub(crate) fn share_market(&mut self, market: &Market) {
        let mine = match self {
            Order::Offer(o) => &mut o.market,
            Order::Bid(b) => &mut b.market,
        };
        if *mine == *market {
            *mine = market.clone();
        }
    }
    /// Its expiry.
    pub fn expiry_ms(&self) -> u64 {
        match self {
            Order::Offer(o) => o.expiry_ms,
            Order::Bid(b) => b.expiry_ms,
        }
    }
    /// Its nonce.
    pub fn nonce(&self) -> u64 {
        match self {
            Order::Offer(o) => o.nonce,
            Order::Bid(b) => b.nonce,
        }
    }

    /// The canonical payload of an `order` entry (see `docs/orders.md`).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(96);
        match self {
            Order::Offer(o) => {
                w.u8(SIDE_OFFER);
                write_market(&mut w, &o.market);
                w.u32(o.slots).u64(o.reserve).u64(o.expiry_ms).u64(o.nonce);
                w.u64(o.from_ms).u64(o.until_ms).u32(o.min_hours);
            }
            Order::Bid(b) => {
                w.u8(SIDE_BID);
                write_market(&mut w, &b.market);
                w.u32(b.slots).u64(b.limit).u64(b.expiry_ms).u64(b.nonce);
                w.u32(b.hours).u64(b.earliest_ms).u64(b.latest_ms);
                match b.fill {
                    FillRule::AllOrNone => w.u8(FILL_AON),
                    FillRule::AtLeast(n) => w.u8(FILL_AT_LEAST).u32(n),
                };
            }
        }
        w.finish()
    }

    /// Decodes an order payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let at = r.position();
        let side = r.u8("order.side")?;
        let market = read_market(&mut r)?;
        let slots = r.u32("order.slots")?;
        let price = r.u64("order.price")?;
        let expiry_ms = r.u64("order.expiry_ms")?;
        let nonce = r.u64("order.nonce")?;
        let order = match side {
            SIDE_OFFER => Order::Offer(Offer {
                market,
                slots,
                reserve: price,
                expiry_ms,
                nonce,
                from_ms: r.u64("offer.from_ms")?,
                until_ms: r.u64("offer.until_ms")?,
                min_hours: r.u32("offer.min_hours")?,
            }),
            SIDE_BID => {
                let hours = r.u32("bid.hours")?;
                let earliest_ms = r.u64("bid.earliest_ms")?;
                let latest_ms = r.u64("bid.latest_ms")?;
                let at_fill = r.position();
                let fill = match r.u8("bid.fill")? {
                    FILL_AON => FillRule::AllOrNone,
                    FILL_AT_LEAST => FillRule::AtLeast(r.u32("bid.fill.min_slots")?),
                    other => {
                        return Err(r.invalid_at(
                            "bid.fill",
                            at_fill,
                            format!("unknown fill rule {other}"),
                        ))
                    }
                };
                Order::Bid(Bid {
                    market,
                    slots,
                    hours,
                    limit: price,
                    earliest_ms,
                    latest_ms,
                    fill,
                    expiry_ms,
                    nonce,
                })
            }
            other => return Err(r.invalid_at("order.side", at, format!("unknown side {other}"))),
        };
        r.finish()?;
        Ok(order)
    }
}

impl Cancel {
    /// The canonical payload of a `cancel` entry: the order id.
    pub fn encode(&self) -> Vec<u8> {
        self.order.to_vec()
    }
    /// Decodes a cancel payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let order = r.array("cancel.order")?;
        r.finish()?;
        Ok(Self { order })
    }
}

fn write_market(w: &mut Writer, m: &Market) {
    w.short_bytes(m.class.as_bytes()).short_bytes(m.region.as_bytes());
}

fn read_market(r: &mut Reader<'_>) -> Result<Market, DecodeError> {
    let mut name = |field: &'static str, what: &str| -> Result<String, DecodeError> {
        let at = r.position();
        let bytes = r.short_bytes(field)?;
        let s =
            std::str::from_utf8(bytes).map_err(|_| r.invalid_at(field, at, "not UTF-8".into()))?;
        validate_name(what, s).map_err(|e| r.invalid_at(field, at, e))?;
        Ok(s.to_owned())
    };
    let class = name("order.market.class", "class")?;
    let region = name("order.market.region", "region")?;
    Ok(Market::from_names(class, region))
}

/// An order with its author, signature and id, as it travels and rests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOrder {
    /// The order id: the id of its ledger entry (blake3 of the signed form).
    #[serde(with = "surplus_ledger::hex_hash")]
    pub id: Hash,
    /// Who signed it: the provider of an offer, the buyer of a bid.
    pub author: PublicKey,
    /// The order.
    pub order: Order,
    /// The author's signature over the entry's signing bytes.
    pub signature: Signature,
}

/// A cancel with its author.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCancel {
    /// Id of the cancel entry.
    #[serde(with = "surplus_ledger::hex_hash")]
    pub id: Hash,
    /// Who signed it.
    pub author: PublicKey,
    /// The cancellation.
    pub cancel: Cancel,
    /// The signature.
    pub signature: Signature,
}

impl SignedOrder {
    /// Signs `order` for chain `chain_id`: the ledger entry that carries it, and the order.
    pub fn sign(chain_id: &str, order: Order, key: &SecretKey) -> (Entry, SignedOrder) {
        let entry = Entry::signed(chain_id, EntryKind::ORDER, order.encode(), key);
        let signed = Self::from_entry(&entry).unwrap_or_else(|e| unreachable!("just encoded: {e}"));
        (entry, signed)
    }

    /// Reads an order from its ledger entry (the signature is not checked here).
    pub fn from_entry(entry: &Entry) -> Result<Self, Rejection> {
        if entry.kind != EntryKind::ORDER {
            return Err(Rejection::WrongKind { kind: entry.kind.0 });
        }
        let Auth::Signed { author, signature } = entry.auth else {
            return Err(Rejection::Unsigned);
        };
        let order =
            Order::decode(&entry.payload).map_err(|e| Rejection::Malformed(e.to_string()))?;
        Ok(Self { id: entry.id(), author, order, signature })
    }

    /// The ledger entry for this order.
    pub fn to_entry(&self) -> Entry {
        Entry {
            kind: EntryKind::ORDER,
            auth: Auth::Signed { author: self.author, signature: self.signature },
            payload: self.order.encode(),
        }
    }
}

impl SignedCancel {
    /// Signs a cancel of `order` for chain `chain_id`.
    pub fn sign(chain_id: &str, order: Hash, key: &SecretKey) -> (Entry, SignedCancel) {
        let entry = Entry::signed(chain_id, EntryKind::CANCEL, Cancel { order }.encode(), key);
        let signed = Self::from_entry(&entry).unwrap_or_else(|e| unreachable!("just encoded: {e}"));
        (entry, signed)
    }

    /// Reads a cancel from its ledger entry (the signature is not checked here).
    pub fn from_entry(entry: &Entry) -> Result<Self, Rejection> {
        if entry.kind != EntryKind::CANCEL {
            return Err(Rejection::WrongKind { kind: entry.kind.0 });
        }
        let Auth::Signed { author, signature } = entry.auth else {
            return Err(Rejection::Unsigned);
        };
        let cancel =
            Cancel::decode(&entry.payload).map_err(|e| Rejection::Malformed(e.to_string()))?;
        Ok(Self { id: entry.id(), author, cancel, signature })
    }
}

/// Why an order or a cancel was refused. Every variant says what to change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum Rejection {
    /// The bytes are not an order.
    #[error("malformed order: {0}")]
    Malformed(String),
    /// The entry is not of the kind expected.
    #[error("entry kind {kind} is not an order or a cancel")]
    WrongKind {
        /// The kind found.
        kind: u16,
    },
    /// Orders must be signed by their author.
    #[error("the order is not signed")]
    Unsigned,
    /// The signature does not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The market is not in the catalogue.
    #[error("unknown market {0}: not in the consortium's catalogue")]
    UnknownMarket(String),
    /// Zero slots.
    #[error("the order names zero slots")]
    ZeroSlots,
    /// Too many slots.
    #[error("{slots} slots exceed the limit of {MAX_SLOTS}")]
    TooManySlots {
        /// Slots named.
        slots: u32,
    },
    /// Zero hours, or more than the longest lease.
    #[error("a lease of {hours} hours is outside 1 to {MAX_HOURS}")]
    BadDuration {
        /// Hours named.
        hours: u32,
    },
    /// A bid's limit of zero.
    #[error("a bid's limit price must be at least 1 unit per slot-hour")]
    ZeroLimit,
    /// slots × hours × price does not fit in 64 bits.
    #[error("slots × hours × price overflows the credit range")]
    CostOverflow,
    /// A window whose end is not after its start.
    #[error("the window is inverted: {from_ms} is not before {until_ms}")]
    WindowInverted {
        /// Start.
        from_ms: u64,
        /// End.
        until_ms: u64,
    },
    /// A window that ends before the block time.
    #[error("the window ended at {until_ms}, before the block time {now_ms}")]
    WindowInPast {
        /// End of the window.
        until_ms: u64,
        /// Block time.
        now_ms: u64,
    },
    /// A window further ahead than allowed.
    #[error(
        "the window reaches {until_ms}, more than {MAX_WINDOW_HORIZON_MS} ms after the block time"
    )]
    WindowTooFar {
        /// End of the window.
        until_ms: u64,
    },
    /// An offer's window shorter than its own minimum lease, or than one hour.
    #[error("the offer's window is shorter than its minimum lease of {min_hours} hours")]
    WindowTooShort {
        /// The minimum lease.
        min_hours: u32,
    },
    /// A fill rule the bid cannot meet.
    #[error("fill rule asks for at least {min} of {slots} slots")]
    BadFillRule {
        /// Minimum slots.
        min: u32,
        /// Slots of the bid.
        slots: u32,
    },
    /// Expired before it arrived.
    #[error("expired at {expiry_ms}, block time {now_ms}")]
    Expired {
        /// Expiry.
        expiry_ms: u64,
        /// Block time.
        now_ms: u64,
    },
    /// Expiry further ahead than allowed.
    #[error("expiry {expiry_ms} is more than 90 days after the block time")]
    ExpiryTooFar {
        /// Expiry.
        expiry_ms: u64,
    },
    /// The (author, nonce) pair was used by an order still remembered.
    #[error("nonce {nonce} was already used by this author")]
    ReplayedNonce {
        /// The nonce.
        nonce: u64,
    },
    /// A cancel for an order the book does not hold (never seen, filled, expired or cancelled).
    #[error("no resting order {0} to cancel")]
    UnknownOrder(String),
    /// A cancel by someone other than the order's author.
    #[error("only the order's author may cancel it")]
    NotAuthor,
}

/// Checks an order's fields against the catalogue and the block time (not its signature, nor
/// the replay set: see [`crate::Book`]).
pub fn validate(order: &Order, catalogue: &Catalogue, now_ms: u64) -> Result<(), Rejection> {
    validate_in(order, catalogue, now_ms).map(|_| ())
}

/// [`validate`], returning the order's market's place in the catalogue
/// ([`Catalogue::market_index`]).
pub(crate) fn validate_in(
    order: &Order,
    catalogue: &Catalogue,
    now_ms: u64,
) -> Result<usize, Rejection> {
    let market = order.market();
    let Some(place) = catalogue.market_index(market) else {
        return Err(Rejection::UnknownMarket(market.to_string()));
    };
    let expiry_ms = order.expiry_ms();
    if expiry_ms <= now_ms {
        return Err(Rejection::Expired { expiry_ms, now_ms });
    }
    if expiry_ms - now_ms > MAX_EXPIRY_HORIZON_MS {
        return Err(Rejection::ExpiryTooFar { expiry_ms });
    }
    let check_slots = |slots: u32| match slots {
        0 => Err(Rejection::ZeroSlots),
        s if s > MAX_SLOTS => Err(Rejection::TooManySlots { slots: s }),
        _ => Ok(()),
    };
    let horizon = now_ms.saturating_add(MAX_WINDOW_HORIZON_MS);
    match order {
        Order::Offer(o) => {
            check_slots(o.slots)?;
            if o.from_ms >= o.until_ms {
                return Err(Rejection::WindowInverted { from_ms: o.from_ms, until_ms: o.until_ms });
            }
            if o.until_ms <= now_ms {
                return Err(Rejection::WindowInPast { until_ms: o.until_ms, now_ms });
            }
            if o.until_ms > horizon {
                return Err(Rejection::WindowTooFar { until_ms: o.until_ms });
            }
            if o.min_hours > MAX_HOURS {
                return Err(Rejection::BadDuration { hours: o.min_hours });
            }
            let window_hours = (o.until_ms - o.from_ms.max(now_ms)) / HOUR_MS;
            if window_hours < u64::from(o.min_hours.max(1)) {
                return Err(Rejection::WindowTooShort { min_hours: o.min_hours.max(1) });
            }
            // The whole window sold at the reserve must be representable.
            cost(o.slots, u32::try_from(window_hours).unwrap_or(u32::MAX), o.reserve)
                .ok_or(Rejection::CostOverflow)?;
        }
        Order::Bid(b) => {
            check_slots(b.slots)?;
            if b.hours == 0 || b.hours > MAX_HOURS {
                return Err(Rejection::BadDuration { hours: b.hours });
            }
            if b.limit == 0 {
                return Err(Rejection::ZeroLimit);
            }
            cost(b.slots, b.hours, b.limit).ok_or(Rejection::CostOverflow)?;
            if b.earliest_ms > b.latest_ms {
                return Err(Rejection::WindowInverted {
                    from_ms: b.earliest_ms,
                    until_ms: b.latest_ms,
                });
            }
            if b.latest_ms < now_ms {
                return Err(Rejection::WindowInPast { until_ms: b.latest_ms, now_ms });
            }
            if b.latest_ms > horizon {
                return Err(Rejection::WindowTooFar { until_ms: b.latest_ms });
            }
            if let FillRule::AtLeast(min) = b.fill {
                if min == 0 || min > b.slots {
                    return Err(Rejection::BadFillRule { min, slots: b.slots });
                }
            }
        }
    }
    Ok(place)
}

/// slots × hours × price, or `None` if it does not fit in 64 bits.
pub fn cost(slots: u32, hours: u32, price: u64) -> Option<u64> {
    let c = u128::from(slots) * u128::from(hours) * u128::from(price);
    u64::try_from(c).ok()
}

/// Reads and fully validates signed order and cancel entries at block time `now_ms`: decoding,
/// the author's signature (strict rule, all checked together over the cores, then one by one
/// only if one fails, to name each bad one), and for orders the field rules of [`validate`]. The replay check needs the book
/// ([`crate::Book::nonce_used`]).
pub fn validate_entries(
    chain_id: &str,
    entries: &[Entry],
    catalogue: &Catalogue,
    now_ms: u64,
) -> Vec<Result<Validated, Rejection>> {
    let mut batch = surplus_ledger::BatchVerifier::new();
    let mut out: Vec<Result<Validated, Rejection>> = entries
        .iter()
        .map(|e| {
            let v = match e.kind {
                EntryKind::CANCEL => Validated::Cancel(SignedCancel::from_entry(e)?),
                _ => {
                    let o = SignedOrder::from_entry(e)?;
                    validate(&o.order, catalogue, now_ms)?;
                    Validated::Order(o)
                }
            };
            if let Auth::Signed { author, signature } = &e.auth {
                batch.push(
                    *author,
                    Entry::signing_bytes(chain_id, e.kind, author, &e.payload),
                    *signature,
                );
            }
            Ok(v)
        })
        .collect();
    // Only entries that passed the checks above were queued; a failed batch is re-checked one
    // by one so that every bad signature is named, not just the first.
    if batch.verify().is_err() {
        for (e, r) in entries.iter().zip(out.iter_mut()) {
            if r.is_ok() {
                if let Err(why) = e.verify_signature(chain_id) {
                    *r = Err(Rejection::BadSignature(why.to_string()));
                }
            }
        }
    }
    out
}

/// A signed entry that passed [`validate_entries`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Validated {
    /// An order.
    Order(SignedOrder),
    /// A cancel.
    Cancel(SignedCancel),
}
