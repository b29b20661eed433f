//! Consensus: the Malachite (Tendermint) engine behind our own boundary.
//!
//! The rest of the node sees [`start`], the [`Pool`] it supplies (pending user entries), and the
//! [`Committed`] events it receives once a block is durable. Nothing else of the engine leaks
//! out: its context, codec and signing live in this module.

mod app;
pub mod chain;
pub mod codec;
pub mod context;
pub mod signing;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use libp2p::Multiaddr;
use malachitebft_app_channel::app::config::{
    ConsensusConfig, NodeConfig, P2pConfig, PubSubProtocol, ValueSyncConfig,
};
use malachitebft_app_channel::app::types::core::LinearTimeouts;
use malachitebft_app_channel::app::types::Keypair;
use malachitebft_app_channel::{
    ConsensusContext, NetworkContext, NetworkIdentity, RequestContext, SyncContext, WalContext,
};
use surplus_contracts::{Applied, State};
use surplus_ledger::{Block, Entry, Header};
use tokio::sync::{mpsc, Notify};

use chain::Chain;
use codec::WireCodec;
use context::{Address, Ctx};
use signing::{ChainSigner, ChainVerifier};

/// Where the node keeps user entries waiting for a block.
pub trait Pool: Send + Sync + 'static {
    /// Entries for the next block, in arrival order, within the limits.
    fn pending(&self, max_entries: usize, max_bytes: usize) -> Vec<Entry>;
    /// Whether anything waits.
    fn has_work(&self) -> bool;
    /// Signalled whenever an entry arrives.
    fn notify(&self) -> Arc<Notify>;
}

/// A block that is now durable in the ledger, with the state after it.
#[derive(Clone)]
pub struct Committed {
    /// The block with its certificate.
    pub block: Arc<Block>,
    /// The contract state after it.
    pub state: Arc<State>,
    /// What the state machine produced (fills, refusals).
    pub applied: Option<Arc<Applied>>,
    /// When this node committed it (ms since the epoch).
    pub committed_ms: u64,
}

/// Consensus settings (the node's config maps onto these).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The node's data dir (the ledger, undecided values and the engine's WAL go below it).
    pub data_dir: PathBuf,
    /// The node's name in logs.
    pub moniker: String,
    /// The engine's own listen address (a separate swarm from the order gossip).
    pub listen: Multiaddr,
    /// The other nodes' consensus addresses.
    pub peers: Vec<Multiaddr>,
    /// Round timeouts.
    pub timeouts: LinearTimeouts,
    /// While there is work, a block at least this often; orders wait up to this long to be
    /// auctioned together.
    pub batch_interval: Duration,
    /// With no work, a block this often anyway (time-driven settlement).
    pub idle_heartbeat: Duration,
    /// Most user entries in a block.
    pub max_block_entries: usize,
    /// Most bytes of user entries in a block.
    pub max_block_bytes: usize,
    /// How often sync exchanges status with peers.
    pub sync_status_interval: Duration,
}

/// Timeouts tuned for a datacenter network: one dead validator costs a round of ~0.7 s.
pub fn default_timeouts() -> LinearTimeouts {
    LinearTimeouts {
        propose: Duration::from_millis(300),
        propose_delta: Duration::from_millis(100),
        prevote: Duration::from_millis(200),
        prevote_delta: Duration::from_millis(100),
        precommit: Duration::from_millis(200),
        precommit_delta: Duration::from_millis(100),
        rebroadcast: Duration::from_millis(1_000),
        max_timeout: Duration::from_secs(10),
    }
}

/// What a running engine gives back.
pub struct Running {
    /// Head header and state at start.
    pub head: Header,
    /// State at start.
    pub state: Arc<State>,
    /// Committed blocks, in order.
    pub commits: mpsc::UnboundedReceiver<Committed>,
    /// Whether this node votes.
    pub validator: bool,
    /// Live view of the engine (peers, height).
    pub status: Arc<app::Status>,
    /// The engine's task; ends when the engine stops.
    pub task: tokio::task::JoinHandle<Result<()>>,
}

pub use app::Status;

#[derive(Clone, Debug)]
struct EngineConfig {
    moniker: String,
    consensus: ConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &ConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut ConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

/// Opens the chain and starts the engine. `seed` is the node key's 32-byte seed; the node votes
/// if its key is in the genesis validator set.
pub async fn start(
    settings: Settings,
    seed: [u8; 32],
    genesis: (Block, surplus_contracts::BlockMaker),
    pool: Arc<dyn Pool>,
) -> Result<Running> {
    let chain_id = genesis.0.header.chain_id.clone();
    let dir = settings.data_dir.clone();
    let (gblock, gmaker) = genesis;
    let mut chain = tokio::task::spawn_blocking(move || {
        Chain::open(&dir, &gblock, gmaker, &mut |h, total| {
            if h % 1000 == 0 || h == total {
                tracing::info!(height = h, total, "replayed the ledger");
            }
        })
    })
    .await??;
    chain.max_block_entries = settings.max_block_entries;
    chain.max_block_bytes = settings.max_block_bytes;

    let secret = surplus_ledger::SecretKey::from_seed(seed);
    let address = Address(secret.public());
    let validator = chain.validators.index_of(&address).is_some();

    let keypair = Keypair::ed25519_from_bytes(seed).context("node key")?;
    let mut p2p = P2pConfig {
        listen_addr: settings.listen.clone(),
        persistent_peers: settings.peers.clone(),
        protocol: PubSubProtocol::default(),
        ..P2pConfig::default()
    };
    p2p.pubsub_max_size = bytesize_mib(8 + (settings.max_block_bytes >> 20) as u64);
    p2p.rpc_max_size = bytesize_mib(64);
    let consensus = ConsensusConfig { p2p, ..ConsensusConfig::default() };
    let value_sync = ValueSyncConfig {
        status_update_interval: settings.sync_status_interval,
        request_timeout: Duration::from_secs(5),
        max_response_size: bytesize_mib(64),
        max_request_size: bytesize_mib(1),
        ..ValueSyncConfig::default()
    };
    let config = EngineConfig { moniker: settings.moniker.clone(), consensus, value_sync };
    let identity = NetworkIdentity::new(
        settings.moniker.clone(),
        keypair,
        validator.then(|| hex::encode(address.0 .0)),
    );
    let verifier = Box::new(ChainVerifier::new(&chain_id));
    let consensus_ctx = if validator {
        ConsensusContext::new_validator(
            address,
            verifier,
            Box::new(ChainSigner::new(&chain_id, seed)),
        )
    } else {
        ConsensusContext::new_full_node(address, verifier)
    };
    let wal_dir = settings.data_dir.join("consensus");
    std::fs::create_dir_all(&wal_dir)?;
    let (channels, engine) = malachitebft_app_channel::start_engine(
        Ctx,
        config,
        WalContext::new(wal_dir.join("wal"), WireCodec),
        NetworkContext::new(identity, WireCodec),
        consensus_ctx,
        SyncContext::new(WireCodec),
        RequestContext::new(64),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the consensus engine: {e}"))?;

    let head = chain.head.clone();
    let state = Arc::new(chain.state().clone());
    let (tx, rx) = mpsc::unbounded_channel();
    let status = Arc::new(app::Status::default());
    status.set_height(head.height);
    let app = app::App::new(chain, settings, address, pool, tx, status.clone());
    let task = tokio::spawn(async move {
        let r = app.run(channels).await;
        engine.actor.stop(None);
        r
    });
    Ok(Running { head, state, commits: rx, validator, status, task })
}

fn bytesize_mib(n: u64) -> bytesize::ByteSize {
    bytesize::ByteSize::mib(n)
}
