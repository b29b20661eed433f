//! The application side of consensus: the ledger store, the state after the head, and the
//! undecided blocks that must survive a crash.
//!
//! Every block, our own or a peer's, is checked by re-executing it on a copy of the state; the
//! copy is kept beside the block so that the decision commits it without running it again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use surplus_contracts::BlockMaker;
use surplus_contracts::{Applied, State, VerifiedIds};
use surplus_ledger::{Auth, Block, Certificate, Checks, CommitSig, Entry, Header};
use surplus_store::{Config as StoreConfig, Durability, Store};
use tokio::sync::watch;

use super::context::{Address, ValidatorSet, ValueId};
use super::history::LeaseHistory;
use super::snapshot;

/// Most checked blocks (each with a state copy) kept for the height in progress.
const MAX_CHECKED: usize = 16;

/// How far ahead of our clock a proposed block time may be.
pub const MAX_CLOCK_DRIFT_MS: u64 = 2_000;

/// Page cache of the undecided-value store (`consensus/values`), bytes.
pub const VALUES_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// An undecided value on disk: id, round, proposer, validity (`None`: stored before its check
/// finished, and not known since), block bytes.
pub type Undecided = (ValueId, i64, Address, Option<bool>, Vec<u8>);

/// The validity byte of a value stored before its check finished
/// ([`UndecidedWriter::write_unchecked`]).
const UNCHECKED: u8 = 2;

/// A block that re-executed cleanly, with the state after it.
#[derive(Clone)]
pub struct Checked {
    /// The block (without certificate).
    pub block: Arc<Block>,
    /// The maker (state) after it.
    pub maker: BlockMaker,
    /// What the state machine produced.
    pub applied: Arc<Applied>,
}

/// Snapshots and retention (the node's `[storage]` section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storage {
    /// Write a snapshot of the state after every block whose height is a multiple of this
    /// (0: never).
    pub snapshot_every: u64,
    /// How many of the newest snapshots to keep (at least one).
    pub snapshot_keep: usize,
    /// Keep the bodies of only the newest this many blocks (headers and certificates are always
    /// kept); `None` keeps every block (an archive node).
    pub retain_blocks: Option<u64>,
    /// The ledger's page cache, bytes.
    pub ledger_cache_bytes: u64,
    /// The lease history's page cache, bytes.
    pub history_cache_bytes: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            snapshot_every: 1_000,
            snapshot_keep: 2,
            retain_blocks: None,
            ledger_cache_bytes: surplus_store::CACHE_BYTES,
            history_cache_bytes: super::history::CACHE_BYTES,
        }
    }
}

/// A snapshot being written on the runtime's blocking pool.
type SnapshotTask = tokio::task::JoinHandle<Result<u64, snapshot::SnapshotError>>;

/// Why a proposed block is refused.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    /// Not decodable.
    #[error("undecodable block: {0}")]
    Decode(String),
    /// Not the next block, or a wrong header field.
    #[error("{0}")]
    Header(String),
    /// Re-execution differs.
    #[error("re-execution differs: {0}")]
    Execution(String),
}

/// The node's chain: store, head state, and undecided values.
pub struct Chain {
    /// The ledger store.
    pub store: Store,
    /// State after the head.
    pub maker: BlockMaker,
    /// The head header.
    pub head: Header,
    /// The validator set.
    pub validators: ValidatorSet,
    /// The leases that have left the live state.
    pub history: LeaseHistory,
    /// Undecided values: key height ‖ round ‖ value id → proposer ‖ validity ‖ block.
    undecided: sled::Tree,
    /// Our own proposals: key height ‖ round → value id.
    own: sled::Tree,
    /// Verdicts on values stored unchecked: the key of `undecided` → 1 valid, 0 invalid. Not
    /// flushed on their own: a verdict lost in a crash is found again by checking.
    validity: sled::Tree,
    _db: sled::Db,
    /// The data dir.
    dir: std::path::PathBuf,
    checked: HashMap<ValueId, Checked>,
    /// Largest number of entries a block may hold.
    pub max_block_entries: usize,
    /// Largest encoded block.
    pub max_block_bytes: usize,
    /// Snapshots and retention.
    storage: Storage,
    /// Where snapshots are written: on this runtime's blocking pool, or (without one, in tests)
    /// at once, before the commit returns.
    env: Option<crate::Env>,
    /// The snapshot being written, if any.
    snapshot_task: Option<SnapshotTask>,
    /// Height of the newest whole snapshot on disk.
    newest_snapshot: Option<u64>,
    /// Entries whose signatures this node verified on admission: building or checking a block
    /// does not verify them again.
    pub verified: Arc<VerifiedIds>,
    /// The height up to which blocks are on disk (those committed with
    /// [`Chain::commit_deferred`] may still be storing), or why storing failed.
    stored: Arc<watch::Sender<Result<u64, String>>>,
}

fn undecided_key(height: u64, round: i64, id: &ValueId) -> Vec<u8> {
    let mut key = key_hr(height, round).to_vec();
    key.extend_from_slice(&id.0);
    key
}

/// Writes a chain's undecided values: see [`Chain::writer`].
#[derive(Clone)]
pub struct UndecidedWriter {
    undecided: sled::Tree,
    validity: sled::Tree,
}

impl UndecidedWriter {
    fn insert(
        &self,
        height: u64,
        round: i64,
        id: ValueId,
        proposer: Address,
        validity: u8,
        block: &[u8],
    ) -> Result<()> {
        let mut v = Vec::with_capacity(33 + block.len());
        v.extend_from_slice(&proposer.0 .0);
        v.push(validity);
        v.extend_from_slice(block);
        self.undecided.insert(undecided_key(height, round, &id), v)?;
        Ok(())
    }

    /// Stores a received value before its check has finished, durable on return: what the
    /// engine is told of must survive a crash, and the disk's wait overlaps the check. Its
    /// verdict comes with [`Chain::set_validity`]; a value whose verdict was lost is checked
    /// again when read.
    ///
    /// A value already stored as valid under the same key is kept: a relayed copy with the
    /// same header but other entries must not replace it (it fails its check and is ignored).
    /// The same bytes are not written again; other bytes replace a value not known valid, and
    /// the verdict on the old bytes goes with them.
    pub fn write_unchecked(
        &self,
        (height, round, id): (u64, i64, ValueId),
        proposer: Address,
        block: &[u8],
    ) -> Result<()> {
        let key = undecided_key(height, round, &id);
        if let Some(old) = self.undecided.get(&key)? {
            let known_valid = match old.get(32) {
                Some(&UNCHECKED) => self.validity.get(&key)?.is_some_and(|b| b[..] == [1]),
                b => b == Some(&1),
            };
            if known_valid || old.get(33..) == Some(block) {
                return Ok(());
            }
        }
        self.validity.remove(&key)?;
        self.insert(height, round, id, proposer, UNCHECKED, block)?;
        self.undecided.flush()?;
        Ok(())
    }
}

/// The height up to which a chain's blocks are on disk, to wait on: the vote signer signs
/// nothing at a height before the block under it is stored, so that a crash can never make a
/// validator forget a block it voted on top of.
#[derive(Clone, Debug)]
pub struct Stored(watch::Receiver<Result<u64, String>>);

impl Stored {
    /// Waits until block `height` is on disk; an error if storing a block failed.
    pub async fn reached(&self, height: u64) -> std::result::Result<(), String> {
        let mut rx = self.0.clone();
        let r = rx.wait_for(|s| !matches!(s, Ok(h) if *h < height)).await;
        match r.as_deref() {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(why)) => Err(why.clone()),
            Err(_) => Err("the chain is closed".into()),
        }
    }
}

/// A committed block on its way to disk: [`Storing::sync`] stores it (on any thread).
pub struct Storing {
    height: u64,
    durability: Durability,
    stored: Arc<watch::Sender<Result<u64, String>>>,
    /// The undecided values, their verdicts and own proposals, whose heights up to this
    /// block's are dropped once it is stored.
    values: [sled::Tree; 3],
}

impl Storing {
    /// Makes the block durable and says so to [`Stored`] waiters, then drops the undecided
    /// values of its height and below (needed until then to commit it again after a crash).
    pub fn sync(self) -> Result<()> {
        match self.durability.sync() {
            Ok(()) => {
                self.stored.send_modify(|s| {
                    if let Ok(h) = s {
                        *h = (*h).max(self.height);
                    }
                });
                let end = (self.height + 1).to_be_bytes();
                for tree in &self.values {
                    for k in tree.range(..end.to_vec()).keys() {
                        tree.remove(k?)?;
                    }
                }
                Ok(())
            }
            Err(e) => {
                let why = format!("cannot store block {}", self.height);
                let _ = self.stored.send_replace(Err(format!("{why}: {e}")));
                // The store's error keeps its type: the node tells a failed write by it.
                Err(anyhow::Error::new(e).context(why))
            }
        }
    }
}

fn user_entries(block: &Block) -> Vec<Entry> {
    block.entries.iter().filter(|e| matches!(e.auth, Auth::Signed { .. })).cloned().collect()
}

fn key_hr(height: u64, round: i64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&height.to_be_bytes());
    k[8..].copy_from_slice(&(round as u64).to_be_bytes());
    k
}

impl Chain {
    /// Opens the chain in `dir` (`dir/ledger` for the store, `dir/consensus` for undecided
    /// values, `dir/snapshots`), writing the genesis block if the store is empty. The state is
    /// rebuilt by replaying every block from genesis, or, on a store that starts above genesis
    /// (synced from a snapshot, or pruned), from the newest snapshot it can replay from.
    pub fn open(
        dir: &Path,
        genesis: &Block,
        genesis_maker: BlockMaker,
        storage: Storage,
        env: Option<crate::Env>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        let checks = Checks { certificates: true, entry_signatures: false };
        let config = StoreConfig { checks, cache_bytes: storage.ledger_cache_bytes };
        let mut store = Store::open(&dir.join("ledger"), config).with_context(|| {
            format!("cannot open the ledger in {}", dir.join("ledger").display())
        })?;
        match store.height() {
            None => {
                store.append(genesis).context("cannot write the genesis block")?;
            }
            Some(_) => {
                let (ours, _) = store.read_head(0)?;
                if ours.hash() != genesis.header.hash() {
                    bail!(
                        "the data dir {} holds chain `{}` with genesis {}, but the genesis file \
                         describes `{}` with genesis {}: use a fresh --data-dir or the matching \
                         genesis file",
                        dir.display(),
                        ours.chain_id,
                        hex::encode(ours.hash()),
                        genesis.header.chain_id,
                        hex::encode(genesis.header.hash())
                    );
                }
            }
        }
        let height = store.height().unwrap_or(0);
        let history = LeaseHistory::open(&dir.join("history"), storage.history_cache_bytes)?;
        let snapshots = snapshot::dir_of(dir);
        let (mut maker, from) = if store.base() == 0 {
            (genesis_maker, 0)
        } else {
            resume_from_snapshot(&store, &snapshots, dir)?
        };
        let mut head = maker.prev().clone();
        for h in from + 1..=height {
            let block = store.block(h)?;
            let (made, applied) = maker
                .next(&user_entries(&block), block.header.timestamp_ms, block.header.proposer)
                .with_context(|| format!("replaying block {h}"))?;
            if made.header != block.header {
                bail!(
                    "replaying block {h} gives header {}, the store holds {}: the store was \
                     written by different code or is damaged; run `surplus audit --data-dir {}`",
                    hex::encode(made.header.hash()),
                    hex::encode(block.header.hash()),
                    dir.display()
                );
            }
            // Repairs a crash between a block's append and its record in the history.
            history.record_block(h, &applied, &maker.state)?;
            head = block.header;
            progress(h, height);
        }
        let newest_snapshot = snapshot::heights(&snapshots).last().copied();
        let validators = ValidatorSet::from_ledger(&store_validators(&store)?)
            .map_err(|e| anyhow::anyhow!("validators: {e}"))?;
        // It holds the values of the heights not yet decided, cleared at each commit: a small
        // page cache is plenty (sled's default is 1 GiB).
        let db = sled::Config::new()
            .path(dir.join("consensus").join("values"))
            .cache_capacity(VALUES_CACHE_BYTES)
            .open()
            .context("cannot open the undecided-value store")?;
        let undecided = db.open_tree("undecided")?;
        let own = db.open_tree("own")?;
        let validity = db.open_tree("validity")?;
        let head_height = head.height;
        Ok(Self {
            store,
            maker,
            head,
            validators,
            history,
            undecided,
            own,
            validity,
            _db: db,
            dir: dir.to_path_buf(),
            checked: HashMap::new(),
            max_block_entries: 5_000,
            max_block_bytes: 4 << 20,
            storage,
            env,
            snapshot_task: None,
            newest_snapshot,
            verified: Arc::default(),
            stored: Arc::new(watch::channel(Ok(head_height)).0),
        })
    }

    /// Lowest height whose block this node can serve (1 on an archive).
    pub fn first_block(&self) -> u64 {
        self.store.base().max(1)
    }

    /// Height of the newest whole snapshot on disk.
    pub fn newest_snapshot(&self) -> Option<u64> {
        self.newest_snapshot
    }

    /// After a commit: takes in a finished snapshot (then, with retention, drops the block
    /// bodies a restart no longer needs, and old snapshots), and starts a snapshot of this
    /// block's state if its height calls for one. Snapshot failures are logged, never fatal:
    /// the next one tries again.
    fn after_commit(&mut self, block: &Block) -> Result<()> {
        if self.snapshot_task.as_ref().is_some_and(|t| t.is_finished()) {
            if let Some(task) = self.snapshot_task.take() {
                let done = futures::FutureExt::now_or_never(task);
                self.snapshot_written(done.map(|r| r.map_err(|e| e.to_string())))?;
            }
        }
        let h = block.header.height;
        let every = self.storage.snapshot_every;
        if every > 0 && h.is_multiple_of(every) {
            if self.snapshot_task.is_some() {
                tracing::warn!(
                    height = h,
                    "skipping a snapshot: the previous one is still being written"
                );
            } else {
                let root = snapshot::dir_of(&self.dir);
                let state = self.maker.state.clone();
                let header = block.header.clone();
                let certificate = block.certificate.clone();
                let frontier = self.maker.frontier().clone();
                // Every set change so far is below the next block: the snapshot carries them.
                let changes = self.store.set_changes()?;
                let write = move || {
                    snapshot::write(&root, &state, &header, &certificate, &frontier, changes)
                        .map(|m| m.height())
                };
                match &self.env {
                    Some(env) => self.snapshot_task = Some(env.spawn_blocking(write)),
                    None => self.snapshot_written(Some(Ok(write())))?,
                }
            }
        }
        Ok(())
    }

    /// Takes in the outcome of a snapshot write (`None`: it could not be read).
    fn snapshot_written(
        &mut self,
        outcome: Option<Result<Result<u64, snapshot::SnapshotError>, String>>,
    ) -> Result<()> {
        match outcome {
            Some(Ok(Ok(h))) => {
                tracing::info!(height = h, "wrote a state snapshot");
                self.newest_snapshot = Some(h);
                self.retain()?;
            }
            Some(Ok(Err(e))) => tracing::warn!(error = %e, "cannot write a state snapshot"),
            Some(Err(e)) => tracing::error!(error = %e, "the snapshot writer failed"),
            None => tracing::error!("the snapshot writer's outcome is lost"),
        }
        Ok(())
    }

    /// With retention (`retain_blocks = N`), moves the store's base to just after the newest
    /// snapshot at least N blocks old: the bodies before it are dropped, and that snapshot (the
    /// base snapshot, from which a restart or an audit re-executes) is kept with every newer
    /// one. Without retention, all but the newest `snapshot_keep` snapshots are dropped.
    fn retain(&mut self) -> Result<()> {
        let root = snapshot::dir_of(&self.dir);
        if let Some(keep) = self.storage.retain_blocks {
            let limit = self.head.height.saturating_sub(keep.max(1));
            let base = snapshot::heights(&root).into_iter().filter(|s| *s <= limit).max();
            if let Some(s) = base.filter(|s| s + 1 > self.store.base()) {
                let pruned = self.store.prune(s + 1).with_context(|| {
                    format!("cannot drop the block bodies below height {}", s + 1)
                })?;
                tracing::info!(
                    below = s + 1,
                    blocks = pruned.blocks,
                    headers_moved = pruned.headers,
                    "dropped old block bodies; moved their headers to the header file"
                );
            }
        }
        // With retention every snapshot from the base on is kept: each may be the base of a
        // later prune (the newest at least retain_blocks below the head), so pruning never
        // waits for a snapshot that retention deleted.
        let keep_from = match self.storage.retain_blocks {
            Some(_) => self.store.base().saturating_sub(1),
            None => u64::MAX,
        };
        if let Err(e) = snapshot::prune(&root, self.storage.snapshot_keep, keep_from) {
            tracing::warn!(error = %e, "cannot remove old snapshots");
        }
        Ok(())
    }

    /// The state after the head.
    pub fn state(&self) -> &State {
        &self.maker.state
    }

    /// Height of the head.
    pub fn height(&self) -> u64 {
        self.head.height
    }

    /// The block limits in force for the next block: most user entries and largest block, as
    /// governance set them (`docs/governance.md`), else this node's configuration.
    pub fn block_limits(&self) -> (usize, usize) {
        match self.state().consensus_params() {
            Some(c) => (c.max_block_entries as usize, c.max_block_bytes as usize),
            None => (self.max_block_entries, self.max_block_bytes),
        }
    }

    /// Builds our proposal for the next height from `user` entries.
    pub fn build(&mut self, user: &[Entry], now_ms: u64, proposer: Address) -> Result<Checked> {
        let mut maker = self.maker.clone();
        let timestamp = now_ms.max(self.head.timestamp_ms);
        let (block, applied) =
            maker.next_with(user, timestamp, proposer.0, Some(&self.verified))?;
        let checked = Checked { block: Arc::new(block), maker, applied: Arc::new(applied) };
        self.cache(ValueId(checked.block.header.hash()), checked.clone());
        Ok(checked)
    }

    /// Checks a proposed block (encoded) for the next height by re-executing it.
    /// `now_ms` bounds the block time, unless `None` (a decided block: the quorum vouched).
    pub fn check(&mut self, bytes: &[u8], now_ms: Option<u64>) -> Result<Checked, Invalid> {
        // Size limits bind live proposals; a decided block was accepted by a quorum already.
        let (max_entries, max_bytes) = self.block_limits();
        if now_ms.is_some() && bytes.len() > max_bytes.saturating_mul(2) + 65_536 {
            return Err(Invalid::Header(format!(
                "block of {} bytes exceeds the limit {max_bytes}",
                bytes.len(),
            )));
        }
        let block = Block::decode(bytes).map_err(|e| Invalid::Decode(e.to_string()))?;
        let id = ValueId(block.header.hash());
        if let Some(c) = self.checked.get(&id) {
            // Same header is not enough: the entries must be the ones that were checked.
            if c.block.entries == block.entries {
                return Ok(c.clone());
            }
            return Err(Invalid::Execution("entries differ from the checked block".into()));
        }
        let h = &block.header;
        let next = self.head.height + 1;
        if h.height != next {
            return Err(Invalid::Header(format!(
                "height {} is not the next height {next}",
                h.height
            )));
        }
        if h.prev_hash != self.head.hash() {
            return Err(Invalid::Header("prev_hash is not our head".into()));
        }
        if h.timestamp_ms < self.head.timestamp_ms {
            return Err(Invalid::Header("block time goes back".into()));
        }
        if let Some(now_ms) = now_ms.filter(|n| h.timestamp_ms > n + MAX_CLOCK_DRIFT_MS) {
            return Err(Invalid::Header(format!(
                "block time {} is {} ms ahead of ours",
                h.timestamp_ms,
                h.timestamp_ms - now_ms
            )));
        }
        if self.validators.index_of(&Address(h.proposer)).is_none() {
            return Err(Invalid::Header("the proposer is not a validator".into()));
        }
        let user = user_entries(&block);
        if now_ms.is_some() && user.len() > max_entries {
            return Err(Invalid::Header(format!(
                "{} user entries exceed the limit {max_entries}",
                user.len(),
            )));
        }
        let mut maker = self.maker.clone();
        let (made, applied) = maker
            .next_with(&user, h.timestamp_ms, h.proposer, Some(&self.verified))
            .map_err(|e| Invalid::Execution(e.to_string()))?;
        if made.entries != block.entries {
            return Err(Invalid::Execution(format!(
                "{} entries re-executed, {} proposed, or they differ",
                made.entries.len(),
                block.entries.len()
            )));
        }
        if made.header != block.header {
            return Err(Invalid::Execution("the header differs (roots or size)".into()));
        }
        let checked = Checked { block: Arc::new(block), maker, applied: Arc::new(applied) };
        self.cache(id, checked.clone());
        Ok(checked)
    }

    /// Whether the block named `id` was checked already (a check of it is then a lookup).
    pub fn has_checked(&self, id: &ValueId) -> bool {
        self.checked.contains_key(id)
    }

    /// Keeps a checked block (with its state) until the height is decided; a stalled height
    /// cannot pile up states without bound.
    fn cache(&mut self, id: ValueId, checked: Checked) {
        if self.checked.len() >= MAX_CHECKED {
            self.checked.clear();
        }
        self.checked.insert(id, checked);
    }

    /// Persists an undecided value so that a restart can answer for it: durable on return.
    pub fn store_undecided(
        &self,
        height: u64,
        round: i64,
        id: ValueId,
        proposer: Address,
        valid: bool,
        block: &[u8],
    ) -> Result<()> {
        self.writer().insert(height, round, id, proposer, u8::from(valid), block)?;
        self.undecided.flush()?;
        Ok(())
    }

    /// Writes undecided values from another thread (while this chain checks them).
    pub fn writer(&self) -> UndecidedWriter {
        UndecidedWriter { undecided: self.undecided.clone(), validity: self.validity.clone() }
    }

    /// Records the verdict on a value stored unchecked (not flushed: see `validity`).
    pub fn set_validity(&self, height: u64, round: i64, id: ValueId, valid: bool) -> Result<()> {
        self.validity.insert(undecided_key(height, round, &id), &[u8::from(valid)])?;
        Ok(())
    }

    /// Undecided values stored for `height` (and `round`, if given).
    pub fn undecided_at(&self, height: u64, round: Option<i64>) -> Result<Vec<Undecided>> {
        let prefix: Vec<u8> = match round {
            Some(r) => key_hr(height, r).to_vec(),
            None => height.to_be_bytes().to_vec(),
        };
        self.scan_undecided(prefix, None)
    }

    /// The undecided values stored for `height` under `id` (any round).
    pub fn undecided_with(&self, height: u64, id: &ValueId) -> Result<Vec<Undecided>> {
        self.scan_undecided(height.to_be_bytes().to_vec(), Some(id))
    }

    /// Values under `prefix`, only those named `id` if given (others are never copied).
    fn scan_undecided(&self, prefix: Vec<u8>, id: Option<&ValueId>) -> Result<Vec<Undecided>> {
        let mut out = Vec::new();
        for kv in self.undecided.scan_prefix(prefix) {
            let (k, v) = kv?;
            if k.len() != 48 || v.len() < 33 || id.is_some_and(|id| k[16..48] != id.0) {
                continue;
            }
            let round = u64::from_be_bytes(k[8..16].try_into()?) as i64;
            let id = ValueId(k[16..48].try_into()?);
            let proposer = Address(surplus_ledger::PublicKey(v[..32].try_into()?));
            let valid = match v[32] {
                UNCHECKED => self.validity.get(&k)?.map(|b| b.first() == Some(&1)),
                b => Some(b == 1),
            };
            out.push((id, round, proposer, valid, v[33..].to_vec()));
        }
        Ok(out)
    }

    /// The block bytes of an undecided value, found by id at `height`.
    pub fn undecided_block(&self, height: u64, id: &ValueId) -> Result<Option<Vec<u8>>> {
        Ok(self.undecided_with(height, id)?.into_iter().next().map(|v| v.4))
    }

    /// Persists the value we propose at `height` and `round` (its block, and that it is ours,
    /// re-proposed after a restart): both durable on return, in one flush (the two trees
    /// share one database, and a flush of one covers the other).
    pub fn store_proposal(
        &self,
        height: u64,
        round: i64,
        id: ValueId,
        proposer: Address,
        block: &[u8],
    ) -> Result<()> {
        self.writer().insert(height, round, id, proposer, 1, block)?;
        self.own.insert(key_hr(height, round), &id.0)?;
        self.own.flush()?;
        Ok(())
    }

    /// The value we proposed at `height` in any round, if any (re-proposed after a restart).
    pub fn own_at(&self, height: u64) -> Result<Option<ValueId>> {
        for kv in self.own.scan_prefix(height.to_be_bytes()) {
            let (_, v) = kv?;
            if v.len() == 32 {
                return Ok(Some(ValueId(v[..].try_into()?)));
            }
        }
        Ok(None)
    }

    /// Commits the decided value `id` at `height` with its certificate: durable before return.
    pub fn commit(
        &mut self,
        height: u64,
        id: ValueId,
        round: u32,
        signatures: &[(Address, [u8; 64])],
    ) -> Result<Checked> {
        let (checked, storing) = self.commit_deferred(height, id, round, signatures)?;
        storing.sync()?;
        Ok(checked)
    }

    /// The height up to which this chain's blocks are on disk, to wait on.
    pub fn stored(&self) -> Stored {
        Stored(self.stored.subscribe())
    }

    /// Commits the decided value `id` at `height` with its certificate, as the engine decided
    /// it, without waiting for the disk: the block is this chain's head on return, durable once
    /// the returned [`Storing`] is synced (on another thread while the next height runs).
    ///
    /// The engine verified every signature of `signatures` (each vote as it arrived, or the
    /// synced certificate as a whole), so the store checks the certificate's structure and
    /// quorum here, not the signatures again.
    pub fn commit_deferred(
        &mut self,
        height: u64,
        id: ValueId,
        round: u32,
        signatures: &[(Address, [u8; 64])],
    ) -> Result<(Checked, Storing)> {
        if height != self.head.height + 1 {
            bail!("decided height {height} does not follow our head {}", self.head.height);
        }
        // Taken, not cloned: the other candidates of this height are dropped below anyway.
        let checked = match self.checked.remove(&id) {
            Some(c) => c,
            None => {
                let bytes = self.undecided_block(height, &id)?.with_context(|| {
                    format!("decided value {id} at height {height} is unknown to this node")
                })?;
                self.check(&bytes, None)
                    .map_err(|e| anyhow::anyhow!("decided value {id} does not re-execute: {e}"))?
            }
        };
        let mut sigs: Vec<CommitSig> = signatures
            .iter()
            .filter_map(|(a, s)| {
                self.validators.index_of(a).map(|i| CommitSig {
                    validator: i as u16,
                    signature: surplus_ledger::Signature(*s),
                })
            })
            .collect();
        sigs.sort_by_key(|s| s.validator);
        sigs.dedup_by_key(|s| s.validator);
        let mut block = (*checked.block).clone();
        block.certificate = Certificate { round, signatures: sigs };
        let in_force = &self.store.state().context("the store has no genesis")?.validators;
        block
            .certificate
            .check_quorum(in_force)
            .with_context(|| format!("the certificate of block {height}"))?;
        let checks = Checks { certificates: false, entry_signatures: false };
        self.store
            .append_deferred_with(&block, checks)
            .with_context(|| format!("cannot append block {height}"))?;
        let storing = Storing {
            height,
            durability: self.store.durability(),
            stored: self.stored.clone(),
            values: [self.undecided.clone(), self.validity.clone(), self.own.clone()],
        };
        if surplus_ledger::set_change(&block, 0)?.is_some() {
            // The block's validator-set entry decides the heights after it.
            self.validators = ValidatorSet::from_ledger(&store_validators(&self.store)?)
                .map_err(|e| anyhow::anyhow!("validators after block {height}: {e}"))?;
        }
        self.history
            .record_block(height, &checked.applied, &checked.maker.state)
            .with_context(|| format!("cannot record the leases that ended in block {height}"))?;
        self.head = block.header.clone();
        // The replaced head and the other candidates of this height: what only they held is
        // freed off the commit's path.
        let replaced = std::mem::replace(&mut self.maker, checked.maker.clone());
        surplus_contracts::drop_in_background((replaced, std::mem::take(&mut self.checked)));
        self.after_commit(&block)?;
        let checked =
            Checked { block: Arc::new(block), maker: checked.maker, applied: checked.applied };
        Ok((checked, storing))
    }

    /// The stored block at `height`, encoded, with its certificate.
    pub fn decided(&self, height: u64) -> Result<Option<Block>> {
        if height < self.first_block() || height > self.head.height {
            return Ok(None);
        }
        Ok(Some(self.store.block(height)?))
    }
}

/// The validator set in force for the block after the store's head.
fn store_validators(store: &Store) -> Result<surplus_ledger::ValidatorSet> {
    let state = store.state().context("the store has no genesis")?;
    Ok(state.validators.clone())
}

/// The maker after the newest snapshot that a store starting above genesis can replay from (its
/// bodies start right after the snapshot's height or earlier), and that height. Snapshots that
/// fail their checks are skipped, newest first.
fn resume_from_snapshot(store: &Store, root: &Path, dir: &Path) -> Result<(BlockMaker, u64)> {
    let first = store.base();
    let head = store.height().unwrap_or(0);
    let state = store.state().context("the store has no genesis")?;
    let mut tried = Vec::new();
    for s in snapshot::heights(root).into_iter().rev() {
        if s > head || s + 1 < first {
            continue;
        }
        let genesis = store.validators_at(0).context("the store has no genesis")?;
        let loaded =
            snapshot::load(root, s, &state.chain_id, &genesis).and_then(|(manifest, maker)| {
                let (stored, _) = store
                    .read_head(s)
                    .map_err(|e| snapshot::SnapshotError::Invalid(e.to_string()))?;
                if stored.hash() != manifest.header.hash() {
                    return Err(snapshot::SnapshotError::Invalid(format!(
                        "its header is not the stored header {s}"
                    )));
                }
                Ok(maker)
            });
        match loaded {
            Ok(maker) => {
                tracing::info!(height = s, "state loaded from a snapshot");
                return Ok((maker, s));
            }
            Err(e) => {
                tracing::warn!(height = s, error = %e, "cannot use a snapshot");
                tried.push(format!("{s}: {e}"));
            }
        }
    }
    bail!(
        "the ledger in {} holds blocks from height {first} only (pruned, or synced from a \
         snapshot), and no usable snapshot at or after height {} is in {}{}; start this node \
         again with an empty data dir and `--sync snapshot`",
        dir.display(),
        first.saturating_sub(1),
        root.display(),
        if tried.is_empty() { String::new() } else { format!(" (tried {})", tried.join("; ")) }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use surplus_contracts::testutil as t;
    use surplus_ledger::testutil::{certificate, key};
    use surplus_ledger::SecretKey;

    fn validators() -> Vec<SecretKey> {
        (0..4).map(|i| key("validator", i)).collect()
    }

    /// Builds the next block from `user` as round 0's proposer and commits it with a quorum's
    /// certificate, as the engine would.
    fn commit_next(chain: &mut Chain, user: &[Entry], now: u64) -> Checked {
        let vs = validators();
        let h = chain.height() + 1;
        let proposer = Address(vs[((h - 1) % 4) as usize].public());
        let checked = chain.build(user, now, proposer).unwrap();
        let hash = checked.block.header.hash();
        chain.commit(h, ValueId(hash), 0, &signatures(h, &hash, &[0, 1, 2])).unwrap()
    }

    fn open(dir: &Path, storage: Storage) -> Result<Chain> {
        let (g, maker) = BlockMaker::genesis(t::CHAIN, &t::genesis(100, 1000), t::T0).unwrap();
        Chain::open(dir, &g, maker, storage, None, &mut |_, _| {})
    }

    /// 20 blocks (the first makes leases) with a snapshot every 3 (written at once: no runtime).
    fn twenty_blocks(chain: &mut Chain) -> u64 {
        let mut now = t::T0;
        let first = [
            t::offer(&t::provider(0), 5, 20, 100, 1, now),
            t::bid(&t::buyer(0), 2, 10, 30, 1, now),
            t::bid(&t::buyer(1), 3, 5, 25, 1, now),
        ];
        commit_next(chain, &first, now);
        for h in 2..=20 {
            now += 20 * 60_000;
            commit_next(chain, &[], now);
            if h % 3 == 0 {
                assert_eq!(chain.newest_snapshot(), Some(h), "snapshot {h} written");
            }
        }
        now
    }

    /// The quorum's signatures on block `h` with `hash`, as the engine hands them over.
    fn signatures(h: u64, hash: &surplus_ledger::Hash, who: &[usize]) -> Vec<(Address, [u8; 64])> {
        let vs = validators();
        let cert = certificate(t::CHAIN, h, 0, hash, &vs, who);
        cert.signatures
            .iter()
            .map(|s| (Address(vs[usize::from(s.validator)].public()), s.signature.0))
            .collect()
    }

    /// A deferred commit is the head at once, on disk (and so for `Stored` waiters) only after
    /// its sync, which also drops the height's undecided values; a certificate short of a
    /// quorum is refused even though its signatures are not checked again.
    #[test]
    fn a_deferred_commit_is_stored_by_its_sync() {
        use futures::FutureExt;
        let dir = tempfile::tempdir().unwrap();
        let mut chain = open(dir.path(), Storage::default()).unwrap();
        let proposer = Address(validators()[0].public());
        let checked = chain.build(&[], t::T0, proposer).unwrap();
        let hash = checked.block.header.hash();
        let bytes = checked.block.encode();
        chain.store_undecided(1, 0, ValueId(hash), proposer, true, &bytes).unwrap();
        let short = signatures(1, &hash, &[0, 1]);
        let e = chain.commit_deferred(1, ValueId(hash), 0, &short).err().expect("refused");
        assert!(format!("{e:#}").contains("quorum"), "{e:#}");
        let stored = chain.stored();
        let (_, storing) =
            chain.commit_deferred(1, ValueId(hash), 0, &signatures(1, &hash, &[0, 1, 2])).unwrap();
        assert_eq!(chain.height(), 1);
        assert!(stored.reached(1).now_or_never().is_none(), "not stored before the sync");
        assert_eq!(stored.reached(0).now_or_never(), Some(Ok(())));
        storing.sync().unwrap();
        assert_eq!(stored.reached(1).now_or_never(), Some(Ok(())));
        assert!(chain.undecided_at(1, None).unwrap().is_empty(), "pruned once stored");
        drop(chain);
        let chain = open(dir.path(), Storage::default()).unwrap();
        assert_eq!(chain.height(), 1);
        assert_eq!(chain.head.hash(), hash);
    }

    /// A received value is stored before its check: it reads back without a verdict until one
    /// is recorded, and survives a restart (the verdict, not flushed on its own, may not). A
    /// value known valid is never replaced by other bytes under its key.
    #[test]
    fn a_value_stored_unchecked_reads_back_without_a_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let mut chain = open(dir.path(), Storage::default()).unwrap();
        let proposer = Address(validators()[0].public());
        let block = chain.build(&[], t::T0, proposer).unwrap().block.encode();
        let id = ValueId(surplus_ledger::Block::decode_header(&block).unwrap().hash());
        chain.writer().write_unchecked((1, 0, id), proposer, &block).unwrap();
        let read = chain.undecided_at(1, Some(0)).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!((read[0].0, read[0].2, read[0].3, &read[0].4), (id, proposer, None, &block));
        chain.set_validity(1, 0, id, false).unwrap();
        assert_eq!(chain.undecided_at(1, Some(0)).unwrap()[0].3, Some(false));
        // Other bytes under the same key replace a value not known valid, verdict and all...
        let other = [&block[..], b"x"].concat();
        chain.writer().write_unchecked((1, 0, id), proposer, &other).unwrap();
        let read = chain.undecided_at(1, Some(0)).unwrap();
        assert_eq!((read[0].3, &read[0].4), (None, &other));
        chain.writer().write_unchecked((1, 0, id), proposer, &block).unwrap();
        chain.set_validity(1, 0, id, true).unwrap();
        // ...but never one known valid (a relayed copy with other entries).
        chain.writer().write_unchecked((1, 0, id), proposer, &other).unwrap();
        let read = chain.undecided_at(1, Some(0)).unwrap();
        assert_eq!((read[0].3, &read[0].4), (Some(true), &block));
        drop(chain);
        let chain = open(dir.path(), Storage::default()).unwrap();
        assert_eq!(chain.undecided_block(1, &id).unwrap(), Some(block));
    }

    /// With retention, the bodies before the newest snapshot at least `retain_blocks` old are
    /// dropped (headers kept), that snapshot and the newest two are kept; the chain restarts from
    /// its newest snapshot (no body before the base is left to replay), or the one before if the
    /// newest is damaged; a pruned block is not served.
    #[test]
    fn a_pruned_chain_restarts_from_its_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage {
            snapshot_every: 3,
            snapshot_keep: 2,
            retain_blocks: Some(4),
            ..Storage::default()
        };
        let mut chain = open(dir.path(), storage.clone()).unwrap();
        let now = twenty_blocks(&mut chain);
        let root = snapshot::dir_of(dir.path());
        // At 18: the newest snapshot at most 18 - 4 = 14 is 12, so the base is 13.
        assert_eq!(snapshot::heights(&root), vec![12, 15, 18]);
        assert_eq!(chain.store.base(), 13);
        assert_eq!(chain.first_block(), 13);
        assert!(matches!(chain.store.block(12), Err(surplus_store::Error::Pruned { .. })));
        assert!(chain.decided(12).unwrap().is_none());
        assert_eq!(chain.decided(13).unwrap().unwrap().header.height, 13);
        assert!(chain.store.read_head(5).is_ok(), "headers are kept");
        assert!(chain.state().lease_count() > 0, "the state holds leases");
        let (head, state) = (chain.head.clone(), chain.state().clone());
        drop(chain);

        let mut chain = open(dir.path(), storage.clone()).unwrap();
        assert_eq!(chain.head, head);
        assert!(*chain.state() == state, "the state rebuilt from snapshot 18 and blocks 19-20");
        commit_next(&mut chain, &[], now + 60_000);
        assert_eq!(chain.newest_snapshot(), Some(21));
        // At 21: the base snapshot is 15 (at most 17), the base 16.
        assert_eq!(snapshot::heights(&root), vec![15, 18, 21]);
        assert_eq!(chain.store.base(), 16);
        let (head, state) = (chain.head.clone(), chain.state().clone());
        drop(chain);

        // A damaged newest snapshot: the one before serves.
        let chunk = root.join(format!("{:020}", 21)).join("chunk-000000.bin");
        let mut bytes = std::fs::read(&chunk).unwrap();
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
        std::fs::write(&chunk, bytes).unwrap();
        let chain = open(dir.path(), storage.clone()).unwrap();
        assert_eq!(chain.head, head);
        assert!(*chain.state() == state, "the state rebuilt from snapshot 18 (no block after)");
        drop(chain);

        // No usable snapshot at or after the base: a clear refusal, not a wrong state.
        for h in [15, 18] {
            std::fs::remove_dir_all(root.join(format!("{h:020}"))).unwrap();
        }
        let e = open(dir.path(), storage).err().expect("no snapshot to start from").to_string();
        assert!(e.contains("holds blocks from height 16") && e.contains("--sync snapshot"), "{e}");
    }

    /// Retention that reaches further back than the newest `snapshot_keep` snapshots still
    /// prunes: the snapshots from the base on are kept until one is old enough to be the next
    /// base.
    #[test]
    fn retention_longer_than_the_kept_snapshots_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage {
            snapshot_every: 3,
            snapshot_keep: 1,
            retain_blocks: Some(7),
            ..Storage::default()
        };
        let mut chain = open(dir.path(), storage).unwrap();
        twenty_blocks(&mut chain);
        // At 18: the newest snapshot at most 18 - 7 = 11 is 9, so the base is 10; 9 and every
        // newer snapshot are kept.
        assert_eq!(chain.store.base(), 10);
        assert_eq!(snapshot::heights(&snapshot::dir_of(dir.path())), vec![9, 12, 15, 18]);
        assert!(matches!(chain.store.block(9), Err(surplus_store::Error::Pruned { .. })));
    }

    /// A block that applies a passed proposal's change before its effective height (the
    /// `gov-outcome` and `validator-set` entries one block early) is refused, live or decided;
    /// the same change at its height is accepted, and changes the set from the block after.
    #[test]
    fn a_change_applied_before_its_effective_height_is_refused() {
        use surplus_contracts::{Action, Tx};
        let dir = tempfile::tempdir().unwrap();
        let mut chain = open(dir.path(), Storage::default()).unwrap();
        let vs = validators();
        let mut now = t::T0;
        let effective = 1 + surplus_contracts::governance::ENACTMENT_DELAY + 3;
        let action = Action::AddValidator {
            key: key("validator", 4).public(),
            power: 1,
            address: "/ip4/127.0.0.1/tcp/7104".into(),
        };
        let propose = t::tx(&vs[0], Tx::GovPropose { action, effective, seq: 0 });
        let id = propose.id();
        commit_next(&mut chain, &[propose], now);
        let votes: Vec<Entry> = (0..3)
            .map(|i| {
                let seq = u64::from(i == 0);
                t::tx(&vs[i], Tx::GovVote { proposal: id, yes: true, seq })
            })
            .collect();
        now += 1_000;
        commit_next(&mut chain, &votes, now);
        assert!(chain.state().proposal(&id).unwrap().passed.is_some());
        while chain.height() < effective - 3 {
            now += 1_000;
            commit_next(&mut chain, &[], now);
        }
        // The honest blocks effective - 2 and effective - 1 (which enacts), built aside.
        let proposer = |h: u64| Address(vs[((h - 1) % 4) as usize].public());
        let mut aside = chain.maker.clone();
        let (early, _) = aside.next(&[], now + 1_000, proposer(effective - 2).0).unwrap();
        let (enacting, _) = aside.next(&[], now + 2_000, proposer(effective - 1).0).unwrap();
        let change: Vec<Entry> = enacting
            .entries
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    surplus_ledger::EntryKind::GOV_OUTCOME
                        | surplus_ledger::EntryKind::VALIDATOR_SET
                )
            })
            .cloned()
            .collect();
        assert_eq!(change.len(), 2, "the enacting block holds the outcome and the new set");
        // The change one block early: refused, as a proposal and as a decided block.
        // (Its header is the honest block's: re-execution finds the entries differ first.)
        let mut forged = early.clone();
        forged.entries.extend(change);
        let bytes = forged.encode();
        let e = chain.check(&bytes, Some(now + 1_000)).err().expect("refused");
        assert!(matches!(e, Invalid::Execution(_)), "{e}");
        assert!(chain.check(&bytes, None).is_err());
        // The honest blocks pass; the set changes from effective on.
        assert!(chain.check(&early.encode(), Some(now + 1_000)).is_ok());
        commit_next(&mut chain, &[], now + 1_000);
        assert_eq!(chain.validators.validators.len(), 4);
        commit_next(&mut chain, &[], now + 2_000);
        assert_eq!(chain.height(), effective - 1);
        assert_eq!(chain.validators.validators.len(), 5);
        assert_eq!(chain.state().validators()[4].key, key("validator", 4).public());
    }

    /// An archive keeps every block and only the newest snapshots.
    #[test]
    fn an_archive_keeps_every_block() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage {
            snapshot_every: 3,
            snapshot_keep: 2,
            retain_blocks: None,
            ..Storage::default()
        };
        let mut chain = open(dir.path(), storage.clone()).unwrap();
        twenty_blocks(&mut chain);
        assert_eq!(snapshot::heights(&snapshot::dir_of(dir.path())), vec![15, 18]);
        assert_eq!(chain.store.base(), 0);
        assert_eq!(chain.decided(1).unwrap().unwrap().header.height, 1);
        let (head, state) = (chain.head.clone(), chain.state().clone());
        drop(chain);
        let chain = open(dir.path(), storage).unwrap();
        assert_eq!(chain.head, head);
        assert!(*chain.state() == state);
    }
}
