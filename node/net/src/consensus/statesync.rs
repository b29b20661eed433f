//! State sync (`docs/snapshots.md`): a new or wiped node fetches a snapshot's chunks from
//! several peers, checks each against the certified state root as it arrives, writes the
//! snapshot into its own data dir and starts its ledger at the snapshot's header. Chain::open
//! then loads that snapshot instead of replaying from genesis, and consensus sync fetches the
//! blocks after it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use libp2p::PeerId;
use surplus_ledger::Checks;
use surplus_ledger::{Block, Hash};
use surplus_store::{Config as StoreConfig, Store};

use super::snapshot::{self, Manifest, Restorer};
use crate::snapfetch::{SnapshotClient, SnapshotSource};

/// Chunk requests in flight at once.
const WINDOW: usize = 8;

/// Serves this node's snapshots from its data dir.
pub struct LocalSnapshots {
    root: PathBuf,
}

impl LocalSnapshots {
    /// The snapshots of the data dir `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        LocalSnapshots { root: snapshot::dir_of(data_dir) }
    }
}

impl SnapshotSource for LocalSnapshots {
    fn latest(&self) -> Option<Vec<u8>> {
        let h = *snapshot::heights(&self.root).last()?;
        snapshot::read_manifest(&self.root, h).ok()
    }
    fn chunk(&self, height: u64, index: u32) -> Option<Vec<u8>> {
        snapshot::read_chunk(&self.root, height, index)
    }
}

/// Whether the data dir `data_dir` holds no ledger yet (state sync applies only then).
pub fn ledger_is_empty(data_dir: &Path) -> Result<bool> {
    let ledger_dir = data_dir.join("ledger");
    if !ledger_dir.exists() {
        return Ok(true);
    }
    let store = Store::open(&ledger_dir, store_config())
        .with_context(|| format!("cannot open the ledger in {}", ledger_dir.display()))?;
    Ok(store.height().is_none())
}

/// What a state sync did.
#[derive(Clone, Debug)]
pub struct Synced {
    /// Height of the snapshot the node starts from.
    pub height: u64,
    /// Items of the state.
    pub items: u64,
    /// Chunks fetched and checked.
    pub chunks: usize,
    /// Bytes of the chunks.
    pub bytes: u64,
    /// Peers that served the chosen snapshot.
    pub sources: usize,
    /// Peers refused, with why.
    pub penalised: Vec<(PeerId, String)>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Progress of a sync, for the log and a progress bar.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Height of the snapshot.
    pub height: u64,
    /// Chunks checked so far.
    pub done: usize,
    /// Chunks in all.
    pub total: usize,
}

/// Syncs the state into the empty data dir `data_dir` from the peers `client` reaches: picks the
/// newest snapshot whose manifest verifies against the genesis validators (the one most peers
/// serve, among equal heights), fetches its chunks from every peer that serves it (a peer whose
/// chunk is refused is penalised and the chunk fetched from another), and writes the snapshot
/// and the ledger's base.
pub async fn sync(
    client: &SnapshotClient,
    env: &crate::Env,
    data_dir: &Path,
    genesis: &Block,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Synced> {
    let started = env.now_ms();
    let chain_id = genesis.header.chain_id.clone();
    let validators = surplus_ledger::genesis_validators(genesis)
        .map_err(|e| anyhow::anyhow!("genesis validators: {e}"))?;
    let ledger_dir = data_dir.join("ledger");
    if !ledger_is_empty(data_dir)? {
        bail!(
            "{} already holds a ledger: state sync starts a node with an empty data dir",
            ledger_dir.display()
        );
    }
    let mut penalised = Vec::new();

    // The manifests on offer.
    let peers = client.peers();
    if peers.is_empty() {
        bail!("no peer to sync from: none of the bootstrap peers could be reached");
    }
    let asks = peers.iter().map(|p| {
        let client = client.clone();
        let p = *p;
        async move { (p, client.latest(p).await) }
    });
    let mut offers: HashMap<Hash, (Manifest, Vec<PeerId>)> = HashMap::new();
    for (peer, answer) in futures::future::join_all(asks).await {
        match answer {
            Ok(Some(bytes)) => {
                match Manifest::decode(&bytes)
                    .and_then(|m| m.verify(&chain_id, &validators).map(|_| m))
                {
                    Ok(m) => offers.entry(m.hash()).or_insert_with(|| (m, Vec::new())).1.push(peer),
                    Err(e) => {
                        let why = format!("refused its snapshot manifest: {e}");
                        client.penalise(peer, &why);
                        penalised.push((peer, why));
                    }
                }
            }
            Ok(None) => tracing::info!(%peer, "peer holds no snapshot"),
            Err(e) => tracing::warn!(%peer, error = %e, "cannot ask a peer for its snapshot"),
        }
    }
    let Some((manifest, mut sources)) =
        offers.into_values().max_by_key(|(m, peers)| (m.height(), peers.len()))
    else {
        bail!(
            "none of the {} peers reached offers a snapshot that verifies; they may not have \
             written one yet (every `snapshot_every` blocks)",
            peers.len()
        );
    };
    // Requests go round the sources in peer-id order, the first (chunk 0) to the lowest.
    sources.sort();
    let height = manifest.height();
    let total = manifest.chunks.len();
    tracing::info!(
        height,
        chunks = total,
        items = manifest.items,
        peers = sources.len(),
        "syncing a snapshot"
    );

    let root = snapshot::dir_of(data_dir);
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let writing = snapshot::Writing::start(&root, height)?;
    let mut restorer = Restorer::new(manifest);
    let mut inflight: BTreeMap<u32, (PeerId, tokio::task::JoinHandle<_>)> = BTreeMap::new();
    let mut turn = 0usize;
    let mut bytes = 0u64;
    let mut done = 0usize;
    progress(Progress { height, done, total });
    while let Some(next) = restorer.next() {
        // Keep the window full, spreading requests over the sources.
        let mut i = next;
        while inflight.len() < WINDOW && (i as usize) < total {
            if let std::collections::btree_map::Entry::Vacant(slot) = inflight.entry(i) {
                if sources.is_empty() {
                    bail!("no peer left that serves snapshot {height} correctly (chunk {i})");
                }
                let peer = sources[turn % sources.len()];
                turn += 1;
                let client = client.clone();
                let task = env.spawn(async move { client.chunk(peer, height, i).await });
                slot.insert((peer, task));
            }
            i += 1;
        }
        let (peer, task) = inflight.remove(&next).expect("the next chunk is requested");
        let answer = task.await.context("a chunk request task failed")?;
        let refused = match answer {
            Ok(Some(data)) => match restorer.add(next, &data) {
                Ok(()) => {
                    writing.chunk(next, &data)?;
                    bytes += data.len() as u64;
                    done += 1;
                    progress(Progress { height, done, total });
                    None
                }
                Err(e) => Some(format!("served a bad chunk: {e}")),
            },
            Ok(None) => Some(format!("does not have chunk {next} of its snapshot {height}")),
            Err(e) => Some(format!("chunk {next}: {e}")),
        };
        if let Some(why) = refused {
            tracing::warn!(%peer, reason = %why, "refusing a snapshot peer");
            client.penalise(peer, &why);
            penalised.push((peer, why));
            sources.retain(|p| *p != peer);
            // Its other requests are asked again of the others.
            let theirs: Vec<u32> =
                inflight.iter().filter(|(_, (p, _))| *p == peer).map(|(i, _)| *i).collect();
            for i in theirs {
                if let Some((_, t)) = inflight.remove(&i) {
                    t.abort();
                }
            }
        }
    }
    for (_, (_, t)) in inflight {
        t.abort();
    }
    let (manifest, _maker) = restorer.finish()?;
    writing.finish(&manifest)?;
    Store::open_at_base(
        &ledger_dir,
        store_config(),
        genesis,
        &(manifest.header.clone(), manifest.certificate.clone()),
        &manifest.frontier,
        &manifest.set_changes,
    )
    .with_context(|| {
        format!("cannot start the ledger in {} at the snapshot", ledger_dir.display())
    })?;
    Ok(Synced {
        height,
        items: manifest.items,
        chunks: total,
        bytes,
        sources: sources.len(),
        penalised,
        elapsed: Duration::from_millis(env.now_ms().saturating_sub(started)),
    })
}

/// The store's checks, as [`super::chain::Chain::open`] opens it (the default page cache: the
/// store is open only while the node syncs; the chain reopens it with the node's own).
fn store_config() -> StoreConfig {
    StoreConfig {
        checks: Checks { certificates: true, entry_signatures: false },
        ..StoreConfig::default()
    }
}
