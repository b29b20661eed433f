//! The node, its chain and accounts, the operator's view, the faucet, and the error body.

use serde::{Deserialize, Serialize};
use surplus_contracts::Lease;
use surplus_ledger::{Hash, PublicKey, SignedCheckpoint};
use utoipa::ToSchema;

use crate::market::OrderView;

/// The node's status, as `GET /api/v1/status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub head_hash: Hash,
    /// Connected peers.
    pub peers: usize,
    /// Whether the node is in the validator set.
    pub validator: bool,
    /// Entries waiting in the mempool.
    pub mempool: usize,
    /// Whether the node has caught up with its peers.
    pub synced: bool,
    /// The data directory's disk as the node last measured it; while `low`, new submissions
    /// are refused (503 `unavailable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskStatus>,
    /// This node's clock less its peers', ms (positive: ahead), from the times of the last
    /// blocks other validators proposed; absent until there are a few. Past 10,000 either way
    /// the node refuses submissions (503 `clock_skew`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<i64>,
}

/// Bytes each part of a node's data directory takes on disk (allocated blocks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiskUsed {
    /// The ledger store (`ledger/`).
    pub ledger: u64,
    /// The consensus engine's WAL and undecided values (`consensus/`).
    pub consensus: u64,
    /// The journal of acknowledged entries and their receipts (`journal.log`, `mempool/`).
    pub journal: u64,
    /// Provisioning records and minted credentials (`provisioning/`, `credentials/`).
    pub provisioning: u64,
    /// State snapshots (`snapshots/`), if the node keeps any.
    pub snapshots: u64,
    /// Ledger exports served by the API (`exports/`).
    pub exports: u64,
}

impl DiskUsed {
    /// Each part's name (as `/metrics` labels it) and bytes.
    pub fn parts(&self) -> [(&'static str, u64); 6] {
        [
            ("ledger", self.ledger),
            ("consensus", self.consensus),
            ("journal", self.journal),
            ("provisioning", self.provisioning),
            ("snapshots", self.snapshots),
            ("exports", self.exports),
        ]
    }
}

/// The data directory's filesystem and what the node's parts of it take, as the node measured
/// it last (every few seconds).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiskStatus {
    /// Bytes free for the node on the data directory's filesystem.
    pub free_bytes: u64,
    /// Size of that filesystem, bytes.
    pub total_bytes: u64,
    /// Free bytes below which the node refuses new submissions (`[disk] min_free_bytes`; 0:
    /// never).
    pub min_free_bytes: u64,
    /// Free space is below `min_free_bytes`: new submissions are refused until it is back.
    pub low: bool,
    /// Bytes each part of the data directory takes on disk.
    pub used_bytes: DiskUsed,
    /// When it was measured, ms since the Unix epoch.
    pub measured_ms: u64,
    /// Submissions refused for lack of disk since the node started.
    pub refused: u64,
    /// Why the last measurement failed, if it did (the node then keeps its previous verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A connected peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Peer {
    /// libp2p peer id.
    pub id: String,
    /// The address it is connected at.
    pub address: String,
    /// This node's gossip score of the peer (negative after invalid messages; below −80 the
    /// node ignores it), when known.
    pub score: Option<f64>,
    /// The node key its peer id was made from (a Surplus node's peer id is its node key's).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub key: Option<PublicKey>,
    /// The name it announced (its `[node] name`; self-declared, not checked).
    #[serde(default)]
    pub name: Option<String>,
}

/// Leased capacity at one block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CapacityPoint {
    /// Height.
    pub height: u64,
    /// Block time, ms.
    pub time_ms: u64,
    /// Slots in active leases of this provider.
    pub slots: u64,
}

/// What the faucet gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FaucetGrant {
    /// The funded account.
    pub account: PublicKey,
    /// Units transferred.
    pub amount: u64,
    /// Id of the transfer entry (pending until its block commits).
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub entry: Hash,
}

/// The chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainView {
    /// The chain id entries are signed for.
    pub chain_id: String,
    /// The height whose block this validator set decides: `?height=` if given, otherwise the
    /// block after the head.
    pub height: u64,
    /// Validator keys, in the set's order (a certificate names a validator by its index here).
    pub validators: Vec<PublicKey>,
    /// Each validator's voting power, in the same order (1 for every genesis validator).
    pub powers: Vec<u64>,
    /// The set's total voting power.
    pub total_power: u64,
    /// Voting power that decides a block: more than two thirds of `total_power` (with powers of
    /// 1, the number of signatures).
    pub quorum: u64,
}

/// An account's committed state (an account never seen is empty).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    /// The account's key.
    pub account: PublicKey,
    /// Spendable units.
    pub balance: u64,
    /// The sequence number its next transaction must carry.
    pub seq: u64,
    /// Units locked in its provider bond (`docs/contracts.md` §10).
    #[serde(default)]
    pub bond: u64,
    /// The part of the bond its live leases as a provider hold (their slots at each market's
    /// `terms.bond_per_slot`): a new offer needs a bond of this plus the offer's own slots at
    /// its market's terms.
    #[serde(default)]
    pub bond_in_use: u64,
}

/// The body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaucetRequest {
    /// The account to fund (public key, hex).
    pub account: String,
}

/// What the provider earned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Earnings {
    /// The provider account's spendable balance.
    pub balance: u64,
    /// Paid for the hours settled so far on its leases (before the consortium fee).
    pub paid: u64,
    /// Held in escrow on its leases, paid as hours pass.
    pub escrow: u64,
}

/// `POST /api/v1/operator/terminations`: the node, as provider, ends one of its leases early.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorTermination {
    /// The lease id (hex).
    pub lease: String,
    /// Why (1 to 500 characters): kept in the lease's provisioning record and the node log,
    /// not on the ledger.
    pub reason: String,
}

/// `POST /api/v1/operator/maintenance`: the node announces a maintenance window for one of its
/// pools (`docs/operations.md`, Maintenance).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorMaintenance {
    /// The pool, by its inventory name.
    pub pool: String,
    /// When the work starts, ms since the epoch; default: now plus the consortium's notice
    /// period (the genesis parameter `notice_ms`).
    #[serde(default)]
    pub start_ms: Option<u64>,
    /// When the window ends by itself, ms; default: when the operator ends it.
    #[serde(default)]
    pub until_ms: Option<u64>,
    /// Why (1 to 500 characters), shown to buyers on the ledger.
    pub reason: String,
    /// Start sooner than the notice period allows: leases that cannot move then pay the
    /// provider's early termination penalty.
    #[serde(default)]
    pub emergency: bool,
}

/// `POST /api/v1/operator/offers`: the operator withdraws this node's offers in a market (its
/// free capacity leaves the market; leases run on), or offers it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorOffers {
    /// The market, `class@region`.
    pub market: String,
    /// `false`: withdraw (cancel the free offers, offer nothing new); `true`: offer again.
    pub offered: bool,
}

/// `POST /api/v1/operator/maintenance/done`: the node ends a maintenance window of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorMaintenanceDone {
    /// The pool, by its inventory name.
    pub pool: String,
}

/// What the node submitted for a maintenance window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MaintenanceSubmitted {
    /// The entry's id (`GET /api/v1/submissions/{id}` follows it).
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub id: Hash,
    /// The pool.
    pub pool: String,
    /// The pool's market.
    #[schema(value_type = String)]
    pub market: surplus_market::Market,
    /// When the work starts, ms (0 for the end of a window).
    pub start_ms: u64,
    /// When it ends by itself, ms; 0: when the operator ends it.
    pub until_ms: u64,
    /// The consortium's notice period, ms: a notice given at least this long ahead costs no
    /// penalty.
    pub notice_ms: u64,
}

/// What the datacenter's capacity source says, against what the provider has leased
/// (`[capacity]`, docs/operations.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CapacityView {
    /// The source's kind: `exec`, `http` or `prometheus`.
    pub source: String,
    /// When the source last answered, ms (0: never; the node then offers nothing).
    pub at_ms: u64,
    /// Why its last reading failed, if it did (the last good one still counts).
    pub error: Option<String>,
    /// The share of the reported capacity kept for the datacenter's own use, percent.
    pub headroom_percent: u8,
    /// Each class the source reported or the provider leases.
    pub classes: Vec<ClassCapacity>,
    /// Whether some class has more leased than the source allows (`short` > 0): the node
    /// offers none of it, and runs every lease on.
    pub alert: bool,
}

/// One class's capacity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClassCapacity {
    /// The class.
    pub class: String,
    /// Free slots the source reported.
    pub reported: u64,
    /// What may be sold: the reported slots less the headroom.
    pub sellable: u64,
    /// Slots of the provider's active leases of the class.
    pub leased: u64,
    /// Leased slots beyond what may be sold (0 when all is well).
    pub short: u64,
}

/// How much of an inventory pool is used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PoolUse {
    /// The pool's name (the inventory's `name`, else its market).
    #[serde(default)]
    pub name: String,
    /// Its open maintenance window, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<surplus_contracts::maintenance::Window>,
    /// The pool's market.
    #[schema(value_type = String)]
    pub market: surplus_market::Market,
    /// Slots the pool has (the inventory's `slots`).
    pub capacity: u64,
    /// Slots of the provider's resting offers in the market (pools of one market are offered
    /// together).
    pub offered: u64,
    /// Of those, free now.
    pub free: u64,
    /// Slots of the provider's active leases placed on this pool (`leased_in_market` for the
    /// market's).
    pub leased: u64,
    /// Slots of the provider's active leases in the pool's market.
    #[serde(default)]
    pub leased_in_market: u64,
}

/// The hook runs of one lease (`start` and `end`, each `{ok, attempts, error, finished_ms}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaseProvisioning {
    /// The lease.
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub lease: Hash,
    /// Its record (access details left out: they are the buyer's).
    pub record: serde_json::Value,
}

/// The operator page's data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OperatorView {
    /// The node's status (its key is the provider account).
    pub status: Status,
    /// The inventory as the node read it.
    pub inventory: Option<serde_json::Value>,
    /// The provider's resting offers.
    pub offers: Vec<OrderView>,
    /// Leases where it is the provider, newest first, at most 1,000.
    pub leases: Vec<Lease>,
    /// Active leases among them.
    pub active_leases: usize,
    /// Slots leased, sampled per block, oldest first.
    pub leased: Vec<CapacityPoint>,
    /// Earnings.
    pub earnings: Earnings,
    /// Connected peers.
    pub peers: Vec<Peer>,
    /// Each inventory pool's use: capacity, offered, free now and leased slots.
    #[serde(default)]
    pub pools: Vec<PoolUse>,
    /// The provisioning record (hook runs, an early end's reason) of the newest leases, at most
    /// 100.
    #[serde(default)]
    pub provisioning: Vec<LeaseProvisioning>,
    /// The capacity source's last reading, if the node has one configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityView>,
    /// Markets whose offers the operator withdrew (`POST /api/v1/operator/offers`).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub withdrawn: Vec<surplus_market::Market>,
    /// The latest signed checkpoint from each signer.
    pub checkpoints: Vec<SignedCheckpoint>,
    /// Its live leases as the other datacenters see them: probe target, time found down,
    /// credits, and the reports of the intervals still open.
    #[serde(default)]
    pub watched: Vec<crate::LeaseWatch>,
    /// The node key's provider bond, units.
    #[serde(default)]
    pub bond: u64,
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A stable code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, such as `bad_request` or `not_found`.
    #[schema(value_type = surplus_contracts::Code)]
    pub code: String,
    /// What is wrong and how to fix it.
    pub message: String,
}
