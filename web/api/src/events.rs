//! What a committed block changed, as the event stream sends it.

use serde::{Deserialize, Serialize};
use surplus_contracts::Lease;
use surplus_ledger::{Hash, PublicKey};
use surplus_market::Fill;
use utoipa::ToSchema;

/// What a committed block changed, as `GET /api/v1/events` streams it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A block was committed.
    Block {
        /// Height.
        height: u64,
        /// Header hash (hex).
        #[serde(with = "surplus_ledger::hex_hash")]
        #[schema(schema_with = surplus_ledger::schema::hash)]
        hash: Hash,
        /// Block time, ms.
        time_ms: u64,
        /// Entries in the block.
        entries: usize,
        /// Entries in the ledger after it.
        tree_size: u64,
    },
    /// A bid filled against an offer; `lease` is the new lease's id.
    Fill {
        /// The new lease (the fill entry's id).
        #[serde(with = "surplus_ledger::hex_hash")]
        #[schema(schema_with = surplus_ledger::schema::hash)]
        lease: Hash,
        /// Height of the block.
        height: u64,
        /// The fill.
        fill: Fill,
    },
    /// A lease was created or changed (grant, renewal, settlement, end).
    Lease {
        /// Height of the block.
        height: u64,
        /// The lease as it is after the block.
        lease: Box<Lease>,
    },
    /// A governance entry of the block: a proposal, vote, withdrawal, key rotation, a
    /// proposal's outcome, or a new validator set.
    Governance {
        /// Height of the block.
        height: u64,
        /// The entry's kind: `gov-propose`, `gov-vote`, `gov-withdraw`, `key-rotation`,
        /// `gov-outcome` or `validator-set`.
        kind: String,
        /// The proposal it concerns (a proposal's id is its `gov-propose` entry's id).
        #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hash")]
        #[schema(value_type = Option<String>)]
        proposal: Option<Hash>,
        /// Who signed it (none for `gov-outcome` and `validator-set`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        author: Option<PublicKey>,
        /// A vote's choice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        yes: Option<bool>,
        /// A `gov-outcome`'s outcome.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<surplus_contracts::Outcome>,
    },
    /// What a block did to an order (its author's stream gets it): it entered the book, was
    /// partly or wholly filled, cancelled, expired, or dropped by the book with a reason.
    Order {
        /// Height of the block.
        height: u64,
        /// The order (its entry's id).
        #[serde(with = "surplus_ledger::hex_hash")]
        #[schema(schema_with = surplus_ledger::schema::hash)]
        order: Hash,
        /// Its author.
        #[schema(value_type = String)]
        account: PublicKey,
        /// `bid` or `offer`.
        side: String,
        /// The market.
        #[schema(value_type = String)]
        market: surplus_market::Market,
        /// Where the order is after the block.
        status: OrderStatus,
        /// Bids still resting: the slots still wanted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remaining: Option<u32>,
        /// Why the book dropped it (`dropped`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// Where an order is after a block ([`Event::Order`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// In the book, nothing filled yet.
    Resting,
    /// In the book, partly filled (a bid with slots still wanted; an offer with leases on it).
    PartlyFilled,
    /// Wholly filled: it left the book.
    Filled,
    /// Cancelled by its author: it left the book.
    Cancelled,
    /// Its expiry passed, or its window can no longer hold a lease: it left the book.
    Expired,
    /// Refused by the book when its block ran (with the reason).
    Dropped,
}

mod opt_hash {
    use serde::{Deserialize, Deserializer, Serializer};
    use surplus_ledger::Hash;

    pub fn serialize<S: Serializer>(h: &Option<Hash>, s: S) -> Result<S::Ok, S::Error> {
        match h {
            Some(h) => s.serialize_str(&hex::encode(h)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Hash>, D::Error> {
        let Some(s) = Option::<String>::deserialize(d)? else { return Ok(None) };
        let v = hex::decode(&s).map_err(serde::de::Error::custom)?;
        v.try_into().map(Some).map_err(|_| serde::de::Error::custom("a hash is 32 bytes"))
    }
}

impl Event {
    /// Whether `account` is a party of the event (blocks concern everyone).
    pub fn concerns(&self, account: &PublicKey) -> bool {
        match self {
            Event::Block { .. } | Event::Governance { .. } => true,
            Event::Fill { fill, .. } => fill.buyer == *account || fill.provider == *account,
            Event::Lease { lease, .. } => {
                lease.fill.buyer == *account || lease.fill.provider == *account
            }
            Event::Order { account: a, .. } => a == account,
        }
    }
}
