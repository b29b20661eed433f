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
        lease: Lease,
    },
}

impl Event {
    /// Whether `account` is a party of the event (blocks concern everyone).
    pub fn concerns(&self, account: &PublicKey) -> bool {
        match self {
            Event::Block { .. } => true,
            Event::Fill { fill, .. } => fill.buyer == *account || fill.provider == *account,
            Event::Lease { lease, .. } => {
                lease.fill.buyer == *account || lease.fill.provider == *account
            }
        }
    }
}
