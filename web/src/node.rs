//! The boundary between the HTTP API and the node that serves it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use surplus_contracts::{Code, State};
use surplus_ledger::bundle::ProofBundle;
use surplus_ledger::{Block, Entry, Hash, PublicKey, SignedCheckpoint, ValidatorSet};
use surplus_market::Market;

use crate::metrics::Metrics;
pub use surplus_api::{
    CapacityPoint, DiskStatus, DiskUsed, Event, FaucetGrant, OrderStatus, Peer, PricePoint, Status,
    Submission,
};

/// What the API asks of the node; the node service implements it (`surplus-service`'s runtime,
/// which the web tests run in this process with `surplus_service::solo`).
#[async_trait::async_trait]
pub trait Node: Send + Sync + 'static {
    /// The latest committed state.
    fn state(&self) -> Arc<State>;
    /// The node's status.
    fn status(&self) -> Status;
    /// Admits an entry: validation, mempool, gossip. Returns the entry's id, or why it was
    /// refused ([`Refusal::code`] decides the HTTP status, see [`Refusal::http_status`]).
    async fn submit(&self, entry: Entry) -> Result<Hash, Refusal>;
    /// Admits several entries as [`Node::submit`] admits each, with one answer per entry in
    /// order; `Err` refuses the whole batch before any work is spent on it (the node sheds
    /// load, or takes no submissions now). This default submits them one after another; a node
    /// may check their signatures together and store them with one flush.
    async fn submit_many(
        &self,
        entries: Vec<Entry>,
    ) -> Result<Vec<Result<Hash, Refusal>>, Refusal> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            out.push(self.submit(e).await);
        }
        Ok(out)
    }
    /// What became of the entry `id` that this node acknowledged or saw: pending, committed,
    /// or dropped with why; `None` when the node knows nothing of it.
    async fn submission(&self, id: &Hash) -> Option<Submission>;
    /// Outcomes of the provisioning hooks (start and end) for a lease, shown to its buyer.
    fn provisioning(&self, lease: &Hash) -> Option<serde_json::Value>;
    /// The token this node minted for the lease, if it is the lease's provider and minted one.
    fn credential(&self, lease: &Hash) -> Option<Vec<u8>>;
    /// Access details that the start hook printed for the lease.
    fn access(&self, lease: &Hash) -> Option<serde_json::Value>;

    /// A lease that ended and left the live state, as it ended (the node's lease history).
    fn ended_lease(&self, lease: &Hash) -> Option<surplus_contracts::Lease>;
    /// Up to `limit` ended leases where `account` is the buyer or the provider, most recently
    /// made first; without an account, any, in id order.
    fn ended_leases(
        &self,
        account: Option<&PublicKey>,
        limit: usize,
    ) -> Vec<surplus_contracts::Lease>;
    /// What `provider`'s ended leases paid it in all (hours paid at their prices, before fees).
    fn ended_paid(&self, provider: &PublicKey) -> u64;

    /// A recent committed block's summary, if the node keeps it at hand.
    fn block(&self, height: u64) -> Option<RecentBlock>;

    // ---- The ledger (auditor) ----

    /// The whole committed block at `height` from the ledger store (header, certificate,
    /// entries); `Ok(None)` above the head. [`LedgerError::NotHeld`] for a block this node does
    /// not hold (it prunes, or started from a snapshot); `Failed` is a storage failure (an
    /// opaque 500).
    fn ledger_block(&self, height: u64) -> Result<Option<Block>, LedgerError>;

    /// The entry with global index `index` and the height of its block; `Ok(None)` past the
    /// end of the ledger.
    fn ledger_entry(&self, index: u64) -> Result<Option<(u64, Entry)>, LedgerError>;

    /// The inclusion proof of the entry that created `lease` (its fill, whose id is the lease
    /// id), against this node's latest signed checkpoint; `Ok(None)` for an unknown lease.
    fn lease_proof(&self, lease: &Hash) -> Result<Option<ProofBundle>, LedgerError>;

    /// The latest signed checkpoint this node holds from each signer (its own first).
    fn checkpoints(&self) -> Vec<SignedCheckpoint>;

    /// The validator set that decides block `height` (at most the head's + 1): genesis's, or
    /// the one the latest `validator-set` entry below `height` put in force.
    fn validator_set(&self, height: u64) -> Result<ValidatorSet, LedgerError>;

    /// Every validator set the ledger put in force, each with the first height it decides (0
    /// for the genesis set, which decides every block from 1), in height order.
    fn validator_history(&self) -> Result<Vec<(u64, ValidatorSet)>, LedgerError>;

    /// Writes (or reuses) an export of the whole ledger at the current head in the format of
    /// `surplus ledger export`, and returns its path and height. An export up to a minute old
    /// is reused; with `fresh`, one at most a few seconds old (the auditor asked for the head).
    /// [`LedgerError::NotHeld`] on a node that does not hold every block.
    async fn export(&self, fresh: bool) -> Result<(std::path::PathBuf, u64), LedgerError>;

    // ---- Markets (buyer) ----

    /// Clearing prices of `market`, oldest first, at most `limit` of the latest.
    fn price_history(&self, market: &Market, limit: usize) -> Vec<PricePoint>;

    // ---- Live updates, metrics, operator ----

    /// A receiver of what each committed block changed.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event>;

    /// Counters and gauges for `/metrics`.
    fn metrics(&self) -> Metrics;

    /// What the node knows of its own business beyond the state: inventory, leased capacity
    /// over time, peers.
    fn operator(&self) -> Operator;

    /// The token that opens the operator endpoints (`Authorization: Bearer TOKEN`); `None`:
    /// they are closed to everyone.
    fn operator_token(&self) -> Option<&str> {
        None
    }

    /// Operator only: ends `lease`, one of this node's leases as provider, early with the node
    /// key (the early termination penalty applies), recording `reason` beside the lease's
    /// provisioning record; the termination entry's id.
    async fn terminate_as_provider(&self, lease: Hash, reason: String) -> Result<Hash, Refusal> {
        let _ = (lease, reason);
        Err(Refusal::new(Code::NotEntitled, "this node does not provide leases"))
    }

    /// Operator only: announces a maintenance window for the inventory pool `m.pool` with the
    /// node key (`docs/operations.md`, Maintenance); what was submitted.
    async fn maintenance(
        &self,
        m: surplus_api::OperatorMaintenance,
    ) -> Result<surplus_api::MaintenanceSubmitted, Refusal> {
        let _ = m;
        Err(Refusal::new(Code::NotEntitled, "this node does not provide leases"))
    }

    /// Operator only: withdraws this node's offers in `market` (`offered` false: its free
    /// offers are cancelled and nothing new is offered there; its leases run on) or offers it
    /// again; durable across restarts. The markets withdrawn now.
    async fn set_offered(
        &self,
        market: surplus_market::Market,
        offered: bool,
    ) -> Result<Vec<surplus_market::Market>, Refusal> {
        let _ = (market, offered);
        Err(Refusal::new(Code::NotEntitled, "this node does not provide leases"))
    }

    /// The consortium as this node sees it: validators, blocks, providers' measured
    /// availability, incidents (`GET /api/v1/status/consortium`, `/status`).
    fn consortium(&self) -> surplus_api::ConsortiumStatus;

    /// Operator only: locks (`lock`) or takes back `amount` units of the node key's provider
    /// bond; what was submitted.
    async fn bond(&self, lock: bool, amount: u64) -> Result<surplus_api::BondSubmitted, Refusal> {
        let _ = (lock, amount);
        Err(Refusal::new(Code::NotEntitled, "this node does not provide leases"))
    }

    /// Operator only: ends this node's maintenance window for `pool`; what was submitted.
    async fn maintenance_done(
        &self,
        pool: String,
    ) -> Result<surplus_api::MaintenanceSubmitted, Refusal> {
        let _ = pool;
        Err(Refusal::new(Code::NotEntitled, "this node does not provide leases"))
    }

    /// Exchanges a lease's credential (already verified: `token_hash` is blake3 of a token that
    /// grants `write` on `lease`) for an OpenSSH user certificate of `public_key`, valid for the
    /// lease's principal until its end (`docs/operations.md`, SSH access). Refused with
    /// [`Code::NotProvider`] by a node that is not the lease's provider or has no SSH
    /// certificate authority.
    async fn ssh_certificate(
        &self,
        lease: Hash,
        token_hash: Hash,
        public_key: String,
    ) -> Result<surplus_api::SshCertificate, Refusal> {
        let _ = (lease, token_hash, public_key);
        Err(Refusal::new(Code::NotProvider, "this node issues no SSH certificates"))
    }

    /// Operator only: signs this node's vote on `proposal` with its node key (at the key's next
    /// sequence number, after any transaction of the node still pending) and submits it; the
    /// vote entry's id. Refused with [`Code::NotValidator`] by a node that is not a validator.
    async fn vote(&self, proposal: Hash, yes: bool) -> Result<Hash, Refusal> {
        let _ = (proposal, yes);
        Err(Refusal::new(Code::NotValidator, "this node does not vote"))
    }

    /// Devnet only: funds `account` with sample credits from the node's faucet key. Every node
    /// not started with a `[faucet]` (which only devnets have) refuses with
    /// [`Code::FaucetDisabled`].
    async fn faucet(&self, account: PublicKey) -> Result<FaucetGrant, Refusal>;
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
    /// The pool each of its provider's active leases runs on, where the node placed it.
    pub placed: std::collections::HashMap<Hash, String>,
    /// The capacity source's last reading, if one is configured.
    pub capacity: Option<surplus_api::CapacityView>,
    /// Markets whose offers the operator withdrew.
    pub withdrawn: Vec<surplus_market::Market>,
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
    /// The validators whose precommits its certificate holds.
    #[serde(default)]
    pub signers: Vec<PublicKey>,
}

/// Why a read of the ledger store gave nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerError {
    /// This node does not hold that part of the ledger: it prunes old block bodies, or started
    /// from a snapshot (404 `not_held`; the message names what it holds).
    NotHeld(String),
    /// The store failed (an opaque 500).
    Failed(String),
}

impl From<String> for LedgerError {
    fn from(s: String) -> Self {
        LedgerError::Failed(s)
    }
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerError::NotHeld(s) | LedgerError::Failed(s) => f.write_str(s),
        }
    }
}

impl LedgerError {
    /// The API error: 404 `not_held`, or an internal error about `what`.
    pub fn into_api(self, what: &str) -> crate::ApiError {
        match self {
            LedgerError::NotHeld(m) => crate::ApiError::new(surplus_contracts::Code::NotHeld, m),
            LedgerError::Failed(e) => crate::ApiError::Internal(format!("{what}: {e}")),
        }
    }
}
