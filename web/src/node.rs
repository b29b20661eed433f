//! The boundary between the HTTP API and the node that serves it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use surplus_contracts::{Code, Lease, State};
use surplus_ledger::bundle::ProofBundle;
use surplus_ledger::{Block, Entry, Hash, PublicKey, SignedCheckpoint};
use surplus_market::{Fill, Market};

use crate::metrics::Metrics;

/// What the API asks of the node. The node implements it; tests implement it with a stand-in
/// (`testnode::TestNode`, feature `test-utils`).
#[async_trait::async_trait]
pub trait Node: Send + Sync + 'static {
    /// The latest committed state.
    fn state(&self) -> Arc<State>;
    /// The node's status.
    fn status(&self) -> Status;
    /// Admits an entry: validation, mempool, gossip. Returns the entry's id, or why it was
    /// refused ([`Refusal::code`] decides the HTTP status, see [`Refusal::http_status`]).
    async fn submit(&self, entry: Entry) -> Result<Hash, Refusal>;
    /// What became of the entry `id` that this node acknowledged or saw: pending, committed,
    /// or dropped with why; `None` when the node knows nothing of it.
    fn submission(&self, id: &Hash) -> Option<Submission>;
    /// Outcomes of the provisioning hooks (start and end) for a lease, shown to its buyer.
    fn provisioning(&self, lease: &Hash) -> Option<serde_json::Value>;
    /// The token this node minted for the lease, if it is the lease's provider and minted one.
    fn credential(&self, lease: &Hash) -> Option<Vec<u8>>;
    /// Access details that the start hook printed for the lease.
    fn access(&self, lease: &Hash) -> Option<serde_json::Value>;

    /// A recent committed block's summary, if the node keeps it at hand.
    fn block(&self, height: u64) -> Option<RecentBlock> {
        let _ = height;
        None
    }

    // ---- The ledger (auditor) ----

    /// The whole committed block at `height` from the ledger store (header, certificate,
    /// entries); `Ok(None)` above the head. `Err` is a storage failure (an opaque 500).
    fn ledger_block(&self, height: u64) -> Result<Option<Block>, String> {
        let _ = height;
        Err(NOT_SERVED.into())
    }

    /// The entry with global index `index` and the height of its block; `Ok(None)` past the
    /// end of the ledger.
    fn ledger_entry(&self, index: u64) -> Result<Option<(u64, Entry)>, String> {
        let _ = index;
        Err(NOT_SERVED.into())
    }

    /// The inclusion proof of the entry that created `lease` (its fill, whose id is the lease
    /// id), against this node's latest signed checkpoint; `Ok(None)` for an unknown lease.
    fn lease_proof(&self, lease: &Hash) -> Result<Option<ProofBundle>, String> {
        let _ = lease;
        Err(NOT_SERVED.into())
    }

    /// The latest signed checkpoint this node holds from each signer (its own first).
    fn checkpoints(&self) -> Vec<SignedCheckpoint> {
        Vec::new()
    }

    /// The genesis validator set, in genesis order.
    fn validators(&self) -> Vec<PublicKey> {
        Vec::new()
    }

    /// Writes (or reuses) an export of the whole ledger at the current head in the format of
    /// `surplus ledger export`, and returns its path and height.
    async fn export(&self) -> Result<(std::path::PathBuf, u64), String> {
        Err(NOT_SERVED.into())
    }

    // ---- Markets (buyer) ----

    /// Clearing prices of `market`, oldest first, at most `limit` of the latest.
    fn price_history(&self, market: &Market, limit: usize) -> Vec<PricePoint> {
        let _ = (market, limit);
        Vec::new()
    }

    // ---- Live updates, metrics, operator ----

    /// A receiver of what each committed block changed; `None` if the node publishes nothing.
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Event>> {
        None
    }

    /// Counters and gauges for `/metrics`.
    fn metrics(&self) -> Metrics {
        Metrics::default()
    }

    /// What the node knows of its own business beyond the state: inventory, leased capacity
    /// over time, peers.
    fn operator(&self) -> Operator {
        Operator::default()
    }

    /// Devnet only: funds `account` with sample credits from the node's faucet key. The
    /// default, and every node not started by `surplus devnet`, refuses with
    /// [`Code::FaucetDisabled`].
    async fn faucet(&self, account: PublicKey) -> Result<FaucetGrant, Refusal> {
        let _ = account;
        Err(Refusal::new(Code::FaucetDisabled, "this node has no faucet (devnet only)"))
    }
}

pub(crate) const NOT_SERVED: &str = "this node does not serve the ledger";

/// One clearing of a market: the block, its time, the uniform price and the slots it filled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// What a committed block changed, as `GET /api/v1/events` streams it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A block was committed.
    Block {
        /// Height.
        height: u64,
        /// Header hash (hex).
        #[serde(with = "surplus_ledger::hex_hash")]
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

/// The node's own business, for the operator page.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Operator {
    /// The inventory file as the node read it (pools, slots, reserve prices), if any.
    pub inventory: Option<serde_json::Value>,
    /// Slots this node's provider account had leased, sampled per block, oldest first.
    pub leased: Vec<CapacityPoint>,
    /// Connected peers (peer id and address).
    pub peers: Vec<Peer>,
}

/// Leased capacity at one block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityPoint {
    /// Height.
    pub height: u64,
    /// Block time, ms.
    pub time_ms: u64,
    /// Slots in active leases of this provider.
    pub slots: u64,
}

/// A connected peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    /// libp2p peer id.
    pub id: String,
    /// The address it is connected at.
    pub address: String,
    /// This node's gossip score of the peer (negative after invalid messages; below −80 the
    /// node ignores it), when known.
    pub score: Option<f64>,
}

/// What the faucet gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaucetGrant {
    /// The funded account.
    pub account: PublicKey,
    /// Units transferred.
    pub amount: u64,
    /// Id of the transfer entry (pending until its block commits).
    #[serde(with = "surplus_ledger::hex_hash")]
    pub entry: Hash,
}

/// The node's status, as `GET /api/v1/status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The chain id entries must be signed for.
    pub chain_id: String,
    /// The node's name from its configuration.
    pub node: String,
    /// The node's key: validator key and provider account.
    pub public_key: PublicKey,
    /// Height of the last committed block.
    pub height: u64,
    /// Hash of the last committed block's header.
    #[serde(with = "surplus_ledger::hex_hash")]
    pub head_hash: Hash,
    /// Connected peers.
    pub peers: usize,
    /// Whether the node is in the validator set.
    pub validator: bool,
    /// Entries waiting in the mempool.
    pub mempool: usize,
    /// Whether the node has caught up with its peers.
    pub synced: bool,
}

/// Why the node refused a request or an entry: a stable [`Code`] (which decides the HTTP
/// status) and a message for people that says what is wrong and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    /// Stable code.
    pub code: Code,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// The HTTP status the API answers with ([`Code::status`]).
    pub fn http_status(&self) -> u16 {
        self.code.status()
    }
}

impl From<&surplus_contracts::Refusal> for Refusal {
    fn from(r: &surplus_contracts::Refusal) -> Self {
        Self::new(r.code(), r.explain())
    }
}

/// What became of a submitted entry (`GET /api/v1/submissions/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Submission {
    /// Waiting in the node's mempool for a block.
    Pending {
        /// A transaction ahead of its account's next sequence number, waiting for the ones
        /// before it.
        waits_for_seq: bool,
    },
    /// In the committed block at `height`.
    Committed {
        /// The block's height.
        height: u64,
    },
    /// Left the mempool without being committed; it will not be.
    Dropped {
        /// Why, as a refusal code.
        code: Code,
        /// What happened, for a person.
        message: String,
    },
}

/// What a node keeps at hand about a recent block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentBlock {
    /// The header.
    pub header: surplus_ledger::Header,
    /// When this node committed it, ms since the epoch.
    pub committed_ms: u64,
    /// Ids of the bids that filled in it.
    pub filled_bids: Vec<String>,
    /// Entries in the block.
    pub entries: usize,
}
