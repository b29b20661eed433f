//! Consensus: the Malachite (Tendermint) engine behind our own boundary.
//!
//! The rest of the node sees [`start`], the [`Pool`] it supplies (pending user entries), and the
//! [`Committed`] events it receives once a block is durable. Nothing else of the engine leaks
//! out: its context, codec and signing live in this module.

mod app;
pub mod chain;
pub mod codec;
pub mod context;
pub mod history;
mod pace;
pub mod signing;
pub mod snapshot;
pub mod statesync;
pub mod wal;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use libp2p::Multiaddr;
use malachitebft_app_channel::app::config::{
    ConsensusConfig, DiscoveryConfig, NodeConfig, P2pConfig, PubSubProtocol, ValueSyncConfig,
};
use malachitebft_app_channel::app::types::core::LinearTimeouts;
use malachitebft_app_channel::app::types::Keypair;
use malachitebft_app_channel::{
    ConsensusContext, NetworkContext, NetworkIdentity, RequestContext, SyncContext, WalContext,
};
use surplus_contracts::State;
use surplus_ledger::{Block, Entry, Header};
use tokio::sync::{mpsc, oneshot, Notify};

use chain::Chain;
use codec::WireCodec;
use context::{Address, Ctx};
use malachitebft_signing::Signer as _;
use signing::{ChainSigner, ChainVerifier, ProvenPeers};

/// Entries a proposal must leave out: those of the blocks committed last, which the pool may
/// still hold until the node has applied them. Cheap to clone (one shared set per block).
#[derive(Clone, Debug, Default)]
pub struct Skip(Vec<Arc<std::collections::HashSet<surplus_ledger::Hash>>>);

impl Skip {
    /// Whether the entry of this id is left out.
    pub fn contains(&self, id: &surplus_ledger::Hash) -> bool {
        self.0.iter().any(|ids| ids.contains(id))
    }
}

/// Where the node keeps user entries waiting for a block.
#[async_trait::async_trait]
pub trait Pool: Send + Sync + 'static {
    /// Entries for the next block, in arrival order, within the limits, leaving out those
    /// `skip` names (they count in neither limit: a backlog behind a block being applied still
    /// fills the next one).
    async fn pending(&self, max_entries: usize, max_bytes: usize, skip: Skip) -> Vec<Entry>;
    /// Whether anything waits.
    fn has_work(&self) -> bool;
    /// How many entries wait for a block (some may not fit the next one yet), leaving out
    /// those of a decided block not yet applied.
    fn waiting(&self) -> usize;
    /// Signalled whenever an entry arrives.
    fn notify(&self) -> Arc<Notify>;
    /// The most user entries this node's next proposal takes (the pace's limit, before each
    /// height): a pool may refuse new work while more than that waits, since what comes after
    /// it misses the next block.
    fn room(&self, _entries: usize) {}
    /// Height `height` was decided with `entries` user entries: until the node has applied it,
    /// they are still in the pool but wait for no block ([`Pool::waiting`] leaves them out).
    fn decided(&self, _height: u64, _entries: usize) {}
    /// Entries the state machine refused while building a block, with why: the pool drops
    /// those that can never fit (and says so), and keeps transactions that wait for earlier
    /// sequence numbers.
    async fn refused(&self, refused: Vec<(surplus_ledger::Hash, surplus_contracts::Refusal)>);
}

/// A block that is now durable in the ledger, with the state after it.
#[derive(Clone)]
pub struct Committed {
    /// The block with its certificate.
    pub block: Arc<Block>,
    /// The contract state after it.
    pub state: Arc<State>,
    /// The leases that ended in it and left the live state (already in the lease history).
    pub ended: Arc<Vec<surplus_contracts::Lease>>,
    /// What the block's auction did: orders taken in, cancelled, expired, refused; fills.
    pub outcome: Arc<surplus_market::Outcome>,
    /// When this node committed it (ms since the epoch).
    pub committed_ms: u64,
    /// It reached this node by value sync (the node was catching up), not in a round the node
    /// took part in: its commit time says nothing of its proposer's clock.
    pub synced: bool,
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
    /// The batch closes before `batch_interval` once a full proposal's worth of entries waits,
    /// but never sooner than this after the last block (clamped to the interval in force).
    pub min_batch_interval: Duration,
    /// With no work, a block this often anyway (time-driven settlement).
    pub idle_heartbeat: Duration,
    /// Most user entries in a block.
    pub max_block_entries: usize,
    /// Most bytes of user entries in a block.
    pub max_block_bytes: usize,
    /// How often sync exchanges status with peers.
    pub sync_status_interval: Duration,
    /// Snapshots and retention.
    pub storage: chain::Storage,
    /// The clock (block timestamps, what falls due) and the runtime the application runs on.
    pub env: crate::Env,
    /// Entries whose signatures the node verified on admission (shared with its mempool's
    /// admission), which blocks do not verify again.
    pub verified: Arc<surplus_contracts::VerifiedIds>,
}

/// Timeouts tuned for a datacenter network: one dead validator costs a round of ~0.7 s (the
/// node's `[consensus]` defaults; tests and the overhead bench use them).
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
    /// Committed blocks, in order ([`Running::next_commit`]).
    commits: mpsc::Receiver<Committed>,
    /// Commits taken off the channel during a reconnect, handed out first.
    early: std::collections::VecDeque<Committed>,
    /// Live view of the engine (peers, height).
    pub status: Arc<app::Status>,
    /// A read-only view of the ledger store at start ([`surplus_store::Store::view`]); call
    /// `view()` on it for later heads.
    pub ledger: surplus_store::Store,
    seed: [u8; 32],
    chain_id: String,
    env: crate::Env,
    /// The application task: gives the application back when asked to stop, fails if the
    /// engine stops. `None` once it has ended and its result was taken.
    task: Option<tokio::task::JoinHandle<Result<app::App>>>,
    stop_app: Option<oneshot::Sender<()>>,
    engine: malachitebft_app_channel::EngineHandle,
    /// Engine restarts since start ([`Running::reconnect`]).
    reconnects: u64,
    /// Validators' proofs of their consensus peer ids.
    proven: ProvenPeers,
    /// The leases that have left the live state.
    pub history: history::LeaseHistory,
}

impl Running {
    /// Stops the engine and the application, releasing the WAL and the stores.
    pub async fn stop(self) {
        if let Some(task) = self.task {
            task.abort();
            let _ = task.await;
        }
        self.engine.actor.stop_children_and_wait(None, Some(ENGINE_STOP)).await;
        self.engine.actor.stop(None);
        let _ = self.engine.handle.await;
    }

    /// The next committed block, in order; an error once the application has stopped on its
    /// own (the engine stopped, or a block could not be applied), and from then on. The first
    /// such error carries the application's own (for example the store's failed write), so a
    /// caller can tell a full disk from other stops by its type.
    pub async fn next_commit(&mut self) -> Result<Committed> {
        if let Some(c) = self.early.pop_front() {
            return Ok(c);
        }
        let Some(task) = self.task.as_mut() else { anyhow::bail!("consensus stopped") };
        let ended = tokio::select! {
            biased;
            c = self.commits.recv() => match c {
                Some(c) => return Ok(c),
                // The application dropped its end of the channel: it has ended or is ending.
                None => task.await,
            },
            r = &mut *task => r,
        };
        self.task = None;
        Err(match ended {
            Ok(Err(e)) => e.context("consensus stopped"),
            Ok(Ok(_)) => anyhow::anyhow!("consensus stopped"),
            Err(e) => anyhow::anyhow!("consensus stopped: {e}"),
        })
    }

    /// Restarts the engine in this process, keeping the chain, its store and the commit
    /// channel: the engine's network is built anew under a fresh peer id (which the validator
    /// proves its own with a validator proof), so every peer sees a first connection from this
    /// node whatever old connections it still holds (gossipsub exchanges subscriptions only
    /// then), and the engine resumes from its WAL at the height in progress. For a validator
    /// whose consensus messages reach no peer after a partition healed (docs/reliability.md).
    pub async fn reconnect(&mut self) -> Result<()> {
        if let Some(s) = self.stop_app.take() {
            let _ = s.send(());
        }
        let Some(task) = self.task.as_mut() else {
            anyhow::bail!("consensus stopped before the reconnect")
        };
        // The application may be waiting to hand over a commit: take them meanwhile.
        let mut open = true;
        let ended = loop {
            tokio::select! {
                r = &mut *task => break r,
                c = self.commits.recv(), if open => match c {
                    Some(c) => self.early.push_back(c),
                    None => open = false,
                },
            }
        };
        self.task = None;
        let app = match ended {
            Ok(Ok(app)) => app,
            Ok(Err(e)) => return Err(e.context("consensus stopped before the reconnect")),
            Err(e) => anyhow::bail!("consensus stopped before the reconnect: {e}"),
        };
        // The engine's actors are the node actor's children: wait for them (the network actor
        // ends once its swarm, with every connection, is gone), or the new engine would dial
        // peers that still hold this node's old connections and the bug would stay.
        self.engine.actor.stop_children_and_wait(None, Some(ENGINE_STOP)).await;
        self.engine.actor.stop(None);
        let _ = (&mut self.engine.handle).await;
        wal_released(&app.settings.data_dir.join("consensus").join("wal")).await?;
        let identity = Keypair::generate_ed25519();
        let (channels, engine) = start_engine(
            &app.settings,
            &app.chain,
            &self.chain_id,
            self.seed,
            Some(identity),
            &self.proven,
        )
        .await?;
        let (stop_app, stopped) = oneshot::channel();
        self.task = Some(self.env.spawn(app.run(channels, stopped)));
        self.stop_app = Some(stop_app);
        self.engine = engine;
        self.reconnects += 1;
        self.status.restarted();
        tracing::info!(reconnects = self.reconnects, "consensus engine restarted in process");
        Ok(())
    }

    /// Engine restarts since start.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }
}

pub use app::Status;

/// How the engine's network carries proposals and votes: Malachite's broadcast, each message
/// sent once to every connected peer and never relayed (decision 0041). Validators connect to
/// one another directly (`engine_peers`), and a node that misses messages takes the decided
/// blocks by sync. Gossipsub, the engine's default, signed every message and verified every copy
/// it received, duplicates included: a fifth of a devnet's CPU at its empty-block rate.
pub const PUBSUB: PubSubProtocol = PubSubProtocol::Broadcast;

/// Whether the engine's network tells which peers take this validator's consensus messages
/// ([`Status::cut_off`]): gossipsub does (its mesh), broadcast does not.
pub const fn reach_is_known() -> bool {
    matches!(PUBSUB, PubSubProtocol::GossipSub(_))
}

/// The engine's configuration (the node's, and the overhead bench's bare engine).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The node's name in the engine's logs.
    pub moniker: String,
    /// Consensus and its network.
    pub consensus: ConsensusConfig,
    /// Value sync.
    pub value_sync: ValueSyncConfig,
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
    let storage = settings.storage.clone();
    let env = settings.env.clone();
    let mut chain = settings
        .env
        .spawn_blocking(move || {
            Chain::open(&dir, &gblock, gmaker, storage, Some(env), &mut |h, total| {
                if h % 1000 == 0 || h == total {
                    tracing::info!(height = h, total, "replayed the ledger");
                }
            })
        })
        .await??;
    chain.max_block_entries = settings.max_block_entries;
    chain.max_block_bytes = settings.max_block_bytes;
    chain.verified = settings.verified.clone();
    let address = Address(surplus_ledger::SecretKey::from_seed(seed).public());

    check_wal(&settings.data_dir, chain.head.height)?;
    let proven = ProvenPeers::new(chain.validators.validators.iter().map(|v| v.address.0 .0));
    let (channels, engine) =
        start_engine(&settings, &chain, &chain_id, seed, None, &proven).await?;

    let head = chain.head.clone();
    let state = Arc::new(chain.state().clone());
    let history = chain.history.clone();
    let ledger = chain.store.view().context("cannot open a read-only view of the ledger")?;
    let (tx, rx) = mpsc::channel(COMMIT_QUEUE);
    let status = Arc::new(app::Status::default());
    status.set_height(head.height);
    let env = settings.env.clone();
    let app = app::App::new(chain, settings, address, pool, tx, status.clone(), proven.clone());
    let (stop_app, stopped) = oneshot::channel();
    let task = env.spawn(app.run(channels, stopped));
    Ok(Running {
        head,
        state,
        commits: rx,
        early: Default::default(),
        status,
        ledger,
        seed,
        chain_id,
        env,
        task: Some(task),
        stop_app: Some(stop_app),
        history,
        engine,
        reconnects: 0,
        proven,
    })
}

/// Checks the engine's WAL before the engine opens it ([`wal`]): a damaged one stops the start
/// with the file named and what to do; a missing one (on a node with blocks) or an incomplete
/// last entry is logged once at WARN, with the file.
fn check_wal(data_dir: &std::path::Path, head: u64) -> Result<()> {
    let path = data_dir.join("consensus").join("wal");
    match wal::check(&path).with_context(|| format!("cannot read {}", path.display()))? {
        Err(damaged) => Err(anyhow::anyhow!("{damaged}. {}", damaged.advice(head))),
        Ok(wal::Found::Missing) if head > 0 => {
            tracing::warn!(
                wal = %path.display(),
                height = head + 1,
                "the consensus WAL is missing: the engine starts a new one, without any vote this \
                 validator may have cast in the height in progress; if it was deleted by mistake \
                 while the node was in that height, restore it before the node votes again"
            );
            Ok(())
        }
        Ok(wal::Found::Readable { torn, entries }) if torn > 0 => {
            tracing::warn!(
                wal = %path.display(),
                entries,
                torn_bytes = torn,
                "the consensus WAL ends in an incomplete entry (a write cut short, as by a crash); \
                 the engine drops it and replays the whole entries before it"
            );
            Ok(())
        }
        Ok(_) => Ok(()),
    }
}

/// How long the engine's actors may take to stop.
const ENGINE_STOP: Duration = Duration::from_secs(10);

/// How long a stopped engine's WAL thread may take to let go of its file.
const WAL_RELEASE: Duration = Duration::from_secs(10);

/// Waits until no one holds the WAL's lock. A stopped engine's WAL actor tells its writer
/// thread to shut down without waiting for it, and the next engine cannot open the WAL while
/// the old thread holds its lock (found by the partition test: "Failed to acquire exclusive
/// advisory lock").
async fn wal_released(path: &std::path::Path) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAL_RELEASE;
    loop {
        let file = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
        };
        // The WAL's own lock (`advisory-lock`, as Malachite's WAL takes it); released when
        // `file` closes.
        use advisory_lock::{AdvisoryFileLock, FileLockError, FileLockMode};
        match AdvisoryFileLock::try_lock(&file, FileLockMode::Exclusive) {
            Ok(()) => return Ok(()),
            Err(FileLockError::AlreadyLocked) if tokio::time::Instant::now() < deadline => {
                drop(file);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => anyhow::bail!(
                "the consensus WAL {} is still locked by the stopped engine: {e}",
                path.display()
            ),
        }
    }
}

/// The consensus addresses the engine dials: the configured peers, then the address each other
/// validator of the set in force registered by governance (`docs/governance.md`), once each.
fn engine_peers(settings: &Settings, chain: &Chain, own: &Address) -> Vec<Multiaddr> {
    let mut peers = settings.peers.clone();
    for v in chain.maker.state.validators() {
        if v.key == own.0 || v.address.is_empty() {
            continue;
        }
        match v.address.parse::<Multiaddr>() {
            Ok(a) if a != settings.listen && !peers.contains(&a) => peers.push(a),
            Ok(_) => {}
            Err(e) => tracing::warn!(
                validator = %v.key,
                address = %v.address,
                "a validator's registered address is not a multiaddr, not dialled: {e}"
            ),
        }
    }
    peers
}

/// Starts the Malachite engine (its network, WAL, sync) for `chain`. The engine's network runs
/// under the peer id of `fresh` when given (proved the validator's own by a validator proof),
/// else under the one derived from the node key.
async fn start_engine(
    settings: &Settings,
    chain: &Chain,
    chain_id: &str,
    seed: [u8; 32],
    fresh: Option<Keypair>,
    proven: &ProvenPeers,
) -> Result<(malachitebft_app_channel::Channels<Ctx>, malachitebft_app_channel::EngineHandle)> {
    let address = Address(surplus_ledger::SecretKey::from_seed(seed).public());
    let validator = chain.validators.index_of(&address).is_some();
    let keypair = match fresh.clone() {
        Some(k) => k,
        None => Keypair::ed25519_from_bytes(seed).context("node key")?,
    };
    let persistent_peers = engine_peers(settings, chain, &address);
    // Malachite refuses a sixth inbound connection from one IP address (a defence against one
    // host posing as many peers), persistent peers included: every member of a consortium
    // whose nodes share an address (behind one NAT, or on one machine like a devnet) beyond
    // the fifth could never connect. Each known node may hold two connections (one each way).
    let known = persistent_peers.len() + chain.validators.validators.len() + 1;
    let discovery = DiscoveryConfig {
        max_connections_per_ip: DiscoveryConfig::default().max_connections_per_ip.max(2 * known),
        ..DiscoveryConfig::default()
    };
    let mut p2p = P2pConfig {
        listen_addr: settings.listen.clone(),
        persistent_peers,
        discovery,
        protocol: PUBSUB,
        ..P2pConfig::default()
    };
    // Room for the largest block governance may allow (16 MiB), whatever this node's own limit.
    let largest = settings.max_block_bytes.max(16 << 20);
    p2p.pubsub_max_size = bytesize_mib(8 + (largest >> 20) as u64);
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
    let identity = match (validator, fresh) {
        (true, Some(_)) => {
            let peer_id = keypair.public().to_peer_id().to_bytes();
            let proof = ChainSigner::new(chain_id, seed)
                .sign_validator_proof(address.0 .0.to_vec(), peer_id)
                .await
                .map_err(|e| anyhow::anyhow!("cannot sign the validator proof: {e}"))?;
            let bytes =
                malachitebft_app_channel::app::types::codec::Codec::encode(&WireCodec, &proof)?;
            NetworkIdentity::new_validator(
                settings.moniker.clone(),
                keypair,
                hex::encode(address.0 .0),
                bytes,
            )
        }
        _ => NetworkIdentity::new(
            settings.moniker.clone(),
            keypair,
            validator.then(|| hex::encode(address.0 .0)),
        ),
    };
    let verifier = Box::new(ChainVerifier::recording(chain_id, proven.clone()));
    let consensus_ctx = if validator {
        ConsensusContext::new_validator(
            address,
            verifier,
            Box::new(ChainSigner::new(chain_id, seed).after_stored(chain.stored())),
        )
    } else {
        ConsensusContext::new_full_node(address, verifier)
    };
    let wal_dir = settings.data_dir.join("consensus");
    std::fs::create_dir_all(&wal_dir)?;
    malachitebft_app_channel::start_engine(
        Ctx,
        config,
        WalContext::new(wal_dir.join("wal"), WireCodec),
        NetworkContext::new(identity, WireCodec),
        consensus_ctx,
        SyncContext::new(WireCodec),
        RequestContext::new(64),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the consensus engine: {e}"))
}

/// Committed blocks waiting for the node to take them. Past this the engine waits (back
/// pressure): a node that falls behind applying its own commits must not buffer without bound.
pub const COMMIT_QUEUE: usize = 64;

fn bytesize_mib(n: u64) -> bytesize::ByteSize {
    bytesize::ByteSize::mib(n)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use surplus_contracts::{Genesis, Params};
    use surplus_ledger::{EntryKind, SecretKey};
    use surplus_market::Catalogue;

    use super::*;

    /// A pool over a plain list (the node's real mempool is tested on its own).
    #[derive(Default)]
    struct ListPool {
        entries: Mutex<Vec<Entry>>,
        notify: Arc<Notify>,
    }

    #[async_trait::async_trait]
    impl Pool for ListPool {
        async fn pending(&self, max_entries: usize, _max_bytes: usize, _: Skip) -> Vec<Entry> {
            let mut e = self.entries.lock().unwrap();
            let n = e.len().min(max_entries);
            e.drain(..n).collect()
        }
        fn has_work(&self) -> bool {
            !self.entries.lock().unwrap().is_empty()
        }
        fn waiting(&self) -> usize {
            self.entries.lock().unwrap().len()
        }
        fn notify(&self) -> Arc<Notify> {
            self.notify.clone()
        }
        async fn refused(&self, _: Vec<(surplus_ledger::Hash, surplus_contracts::Refusal)>) {
            // `pending` drained them already.
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    fn genesis(keys: &[SecretKey], buyer: &SecretKey) -> (Block, surplus_contracts::BlockMaker) {
        let g = Genesis {
            validators: keys.iter().map(|k| k.public()).collect(),
            params: Params {
                catalogue: Catalogue::sample(),
                treasury: keys[0].public(),
                fee_bps: 0,
                penalty_bps: 0,
                notice_ms: surplus_contracts::maintenance::DEFAULT_NOTICE_MS,
                supervision: None,
            },
            allocations: vec![surplus_contracts::Allocation {
                account: buyer.public(),
                amount: 1_000_000_000,
            }],
        };
        surplus_contracts::BlockMaker::genesis("consensus-test", &g, 1_700_000_000_000).unwrap()
    }

    async fn node(
        i: usize,
        dirs: &[tempfile::TempDir],
        ports: &[u16],
        keys: &[SecretKey],
        buyer: &SecretKey,
        pool: Arc<ListPool>,
    ) -> Running {
        node_with(i, dirs, ports, keys, buyer, pool, |_| ()).await
    }

    async fn node_with(
        i: usize,
        dirs: &[tempfile::TempDir],
        ports: &[u16],
        keys: &[SecretKey],
        buyer: &SecretKey,
        pool: Arc<ListPool>,
        tweak: impl FnOnce(&mut Settings),
    ) -> Running {
        let mut settings = Settings {
            data_dir: dirs[i].path().to_owned(),
            moniker: format!("n{i}"),
            listen: format!("/ip4/127.0.0.1/tcp/{}", ports[i]).parse().unwrap(),
            peers: (0..ports.len())
                .filter(|&j| j != i)
                .map(|j| format!("/ip4/127.0.0.1/tcp/{}", ports[j]).parse().unwrap())
                .collect(),
            timeouts: default_timeouts(),
            batch_interval: Duration::from_millis(50),
            min_batch_interval: Duration::from_millis(20),
            idle_heartbeat: Duration::from_millis(200),
            max_block_entries: 1000,
            max_block_bytes: 1 << 20,
            sync_status_interval: Duration::from_millis(500),
            storage: chain::Storage::default(),
            env: crate::Env::system(),
            verified: Arc::default(),
        };
        tweak(&mut settings);
        start(settings, keys[i].seed(), genesis(keys, buyer), pool).await.unwrap()
    }

    /// With a batch interval far longer than the test may run, blocks still come while the pool
    /// holds a full block: the interval drops to its lower bound, and 10 transfers with a block
    /// limit of 5 are committed on every node in 2 blocks or more, neither waiting it out.
    /// (Each node's pool holds all 10 and forgets what it proposed; a proposer drops entries
    /// already in a recent block, so stale copies make empty blocks, not duplicates.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_full_pool_closes_the_batch_at_the_lower_bound() {
        let keys: Vec<SecretKey> =
            (0..4).map(|i| SecretKey::from_seed([i as u8 + 11; 32])).collect();
        let buyer = SecretKey::from_seed([78; 32]);
        let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let pools: Vec<Arc<ListPool>> = (0..4).map(|_| Arc::default()).collect();
        let entries: Vec<Entry> = (0..10)
            .map(|seq| {
                let tx = surplus_contracts::Tx::Transfer { to: keys[1].public(), amount: 1, seq };
                Entry::signed("consensus-test", tx.kind(), tx.encode(), &buyer)
            })
            .collect();
        for p in &pools {
            p.entries.lock().unwrap().extend(entries.iter().cloned());
        }
        let mut nodes = Vec::new();
        for (i, pool) in pools.iter().enumerate() {
            nodes.push(
                node_with(i, &dirs, &ports, &keys, &buyer, pool.clone(), |s| {
                    s.batch_interval = Duration::from_secs(120);
                    s.idle_heartbeat = Duration::from_secs(120);
                    s.min_batch_interval = Duration::from_millis(20);
                    s.max_block_entries = 5;
                })
                .await,
            );
        }
        // Bounded wait, well under one batch interval: every node sees all 10 applied.
        let mut applied = [0usize; 4];
        let mut blocks_with = [0usize; 4];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while applied.iter().any(|&n| n < 10) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the batch waited out its interval: {applied:?} of 10 applied"
            );
            for (i, n) in nodes.iter_mut().enumerate() {
                while let Ok(c) = n.commits.try_recv() {
                    let k = c.block.entries.iter().filter(|e| entries.contains(e)).count();
                    assert!(k <= 5, "a block over the limit");
                    applied[i] += k;
                    blocks_with[i] += usize::from(k > 0);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(blocks_with.iter().all(|&b| b >= 2), "{blocks_with:?}");
        for n in nodes {
            n.stop().await;
        }
    }

    /// Four validators on loopback agree on blocks; a transfer submitted to one node's pool is
    /// in the same block on all; a stopped validator restarts from its data dir and catches up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn four_validators_agree_and_a_restarted_one_catches_up() {
        let keys: Vec<SecretKey> =
            (0..4).map(|i| SecretKey::from_seed([i as u8 + 1; 32])).collect();
        let buyer = SecretKey::from_seed([77; 32]);
        let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let pools: Vec<Arc<ListPool>> = (0..4).map(|_| Arc::default()).collect();
        let mut nodes = Vec::new();
        for (i, pool) in pools.iter().enumerate() {
            nodes.push(Some(node(i, &dirs, &ports, &keys, &buyer, pool.clone()).await));
        }
        let tx = surplus_contracts::Tx::Transfer { to: keys[1].public(), amount: 5, seq: 0 };
        let entry = Entry::signed("consensus-test", tx.kind(), tx.encode(), &buyer);
        assert_eq!(entry.kind, EntryKind::TRANSFER);
        for p in &pools {
            p.entries.lock().unwrap().push(entry.clone());
            p.notify.notify_one();
        }
        // Wait (bounded) until every node committed the transfer and 5 more blocks.
        let mut heads: Vec<Vec<Committed>> = vec![Vec::new(); 4];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            for (i, n) in nodes.iter_mut().enumerate() {
                while let Ok(c) = n.as_mut().unwrap().commits.try_recv() {
                    heads[i].push(c);
                }
            }
            if heads.iter().all(|h| h.len() >= 6) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no progress: {:?}",
                heads.iter().map(Vec::len).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for i in 1..4 {
            for (a, b) in heads[0].iter().zip(&heads[i]) {
                assert_eq!(a.block.header, b.block.header, "node {i} differs");
            }
        }
        let with_tx =
            heads[0].iter().find(|c| c.block.entries.contains(&entry)).expect("tx in a block");
        assert_eq!(with_tx.state.account(&keys[1].public()).balance, 5);

        // Stop node 3, let the others go on, restart it: it catches up to the same head.
        nodes[3].take().unwrap().stop().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let target = nodes[0].as_ref().unwrap().status.height() + 3;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while nodes[0].as_ref().unwrap().status.height() < target {
            assert!(tokio::time::Instant::now() < deadline, "three validators stalled");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let restarted = node(3, &dirs, &ports, &keys, &buyer, pools[3].clone()).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while restarted.status.height() < target {
            assert!(tokio::time::Instant::now() < deadline, "restarted node did not catch up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        nodes[3] = Some(restarted);

        // Node 0 restarts its engine in process, under a fresh peer id: it keeps its chain and
        // commit channel, and its next proposals, published under the new id, are taken by the
        // others on the strength of its validator proof and committed. One restart does it.
        let me = keys[0].public();
        let n0 = nodes[0].as_mut().unwrap();
        while n0.commits.try_recv().is_ok() {}
        let mut next = n0.status.height() + 1;
        n0.reconnect().await.expect("reconnect");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let (mut proposed, mut seen) = (0, 0);
        while proposed == 0 && seen < 40 && tokio::time::Instant::now() < deadline {
            let Ok(c) = tokio::time::timeout(Duration::from_secs(1), n0.next_commit()).await else {
                continue;
            };
            let c = c.expect("node 0 keeps committing after its reconnect");
            assert_eq!(c.block.header.height, next, "commits in order, none lost");
            next += 1;
            seen += 1;
            proposed += usize::from(c.block.header.proposer == me);
        }
        assert!(proposed > 0, "node 0 proposed none of {seen} blocks after its engine restart");
        assert_eq!(n0.reconnects(), 1);
        for n in nodes.into_iter().flatten() {
            n.stop().await;
        }
    }
}
