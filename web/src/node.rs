//! The boundary between the HTTP API and the node that serves it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use surplus_contracts::State;
use surplus_ledger::{Entry, Hash, PublicKey};

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

/// Why the node refused an entry: a stable machine-readable `code` and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    /// Stable code, such as [`Refusal::MEMPOOL_FULL`].
    pub code: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Refusal {
    /// The mempool is full: try again later (HTTP 503).
    pub const MEMPOOL_FULL: &'static str = "mempool_full";
    /// The client sends too fast (HTTP 429).
    pub const RATE_LIMITED: &'static str = "rate_limited";
    /// The same entry is already pending or committed (HTTP 409).
    pub const DUPLICATE: &'static str = "duplicate";
    /// The order's (author, nonce) pair was already used (HTTP 409).
    pub const REPLAYED_NONCE: &'static str = "replayed_nonce";
    /// The transaction's sequence number is not the account's next one (HTTP 409).
    pub const BAD_SEQUENCE: &'static str = "bad_sequence";

    /// A refusal with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }

    /// The HTTP status the API answers with: 503 for a full mempool, 429 for a rate limit, 409
    /// for conflicts with what the node already holds, 400 for everything else (the entry
    /// itself is wrong).
    pub fn http_status(&self) -> u16 {
        match self.code.as_str() {
            Self::MEMPOOL_FULL => 503,
            Self::RATE_LIMITED => 429,
            Self::DUPLICATE | Self::REPLAYED_NONCE | Self::BAD_SEQUENCE => 409,
            _ => 400,
        }
    }
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
