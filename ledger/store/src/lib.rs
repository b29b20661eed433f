//! Surplus store: the append-only block store of a node's ledger, on sled by default behind
//! the small [`Backend`] trait, and the single-file [`export`] an auditor verifies offline.
//!
//! Its own crate so that the pure crates (`surplus-ledger`, `surplus-market`,
//! `surplus-contracts`) never link the storage engine.
//!
//! Layout (one key space, big-endian numbers so that keys sort by height and index):
//! - `meta/head` → head height (u64), head header hash (32), tree size (u64)
//! - `H` height → header and certificate ([`Block::encode_head`])
//! - `E` index → entry ([`Entry::encode`]), by global index
//! - `N` level index → Merkle node of a complete subtree (levels 1 and up; a level-0 node is
//!   stored only for a frontier leaf whose entry is not held, see below)
//! - `meta/base` → base height (u64), entries before it (u64), oldest header held (u64): only in
//!   a store that does not hold every block in full
//!
//! Every block is written in one atomic batch together with the new head record, so a crash
//! leaves a block all there or not at all; `append` flushes before it returns.
//!
//! # Stores that do not start at genesis
//!
//! A store started from a snapshot ([`Store::open_at_base`]) or pruned ([`Store::prune`])
//! holds, besides genesis in full: every header and certificate from
//! [`Store::oldest_header`] to the head, every block in full from [`Store::base`] to the head,
//! and the Merkle nodes of the frontier at the base's start ([`Store::entries_from`] entries,
//! the tree size of the header before the base), which with the nodes that later appends
//! complete answer every inclusion proof of an entry from `entries_from` on and every
//! consistency proof from a tree of at least `entries_from` entries. Reads of anything older
//! fail with [`Error::Pruned`].
//!
//! Pruning writes the new `meta/base` record first (one batch, flushed), and only then deletes
//! what it no longer covers, in batches. A crash in between leaves data below the base, which
//! nothing reads and the next `prune` sweeps away (it scans from the start of each range).
//!
//! A store opened from a directory keeps the headers of the blocks below its base in
//! `surplus-headers`, a file of its own (see `headerlog`): pruning copies them there, synced,
//! before it deletes them from the engine.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use surplus_ledger::encoding::{DecodeError, Reader, Writer};
use surplus_ledger::merkle::{
    self, Blake3, ConsistencyProof, Frontier, Hasher, InclusionProof, NodeSource, ProveError,
};
use surplus_ledger::verify::{self, BlockSource, Hook, Progress, Report};
use surplus_ledger::{
    decode_head, Advance, Block, ChainState, Checkpoint, Checks, Entry, Failure, Hash, Header,
    SetChange, ValidatorSet,
};

use crate::headerlog::HeaderLog;
use crate::headfile::{Durable, HeadFile};

pub use crate::headerlog::{HEADERS_FILE, INDEX_FILE as HEADERS_INDEX_FILE};

pub mod export;
mod headerlog;
mod headfile;

/// A failure of the storage engine itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Key-value pairs in key order, as a backend returns them.
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), BackendError>> + 'a>;

/// An ordered key-value engine that can write a batch atomically and durably.
pub trait Backend: Send + Sync {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;
    /// Writes every pair, all or none.
    fn apply(&self, batch: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), BackendError>;
    /// Makes everything applied so far durable.
    fn flush(&self) -> Result<(), BackendError>;
    /// Pairs with keys in `[start, end)`, in key order.
    fn range<'a>(&'a self, start: &[u8], end: &[u8]) -> KvIter<'a>;
    /// Removes every key, all or none (pruning). An engine that cannot delete refuses.
    fn remove(&self, keys: Vec<Vec<u8>>) -> Result<(), BackendError> {
        let _ = keys;
        Err(BackendError("this storage engine cannot delete (prune)".into()))
    }
}

/// sled's page cache per store unless [`Config::cache_bytes`] says otherwise. Its own default
/// (1 GiB) let a node's memory grow with its ledger: the soak test measured +2.5 to +3 MiB of
/// RSS per 1,000 blocks, matching the growth of the data directory, well past the node's own
/// bounded windows.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The sled engine.
#[derive(Debug, Clone)]
pub struct SledBackend {
    db: sled::Db,
}

impl SledBackend {
    /// Opens (or creates) a sled database in `dir` with a page cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, BackendError> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // We flush explicitly after each append; sled's timer would only add writes.
            .flush_every_ms(None);
        // sled 0.34 panics instead of failing on some damaged files (seen with single flipped
        // bits in its log); a damaged store must be an error that names the directory.
        let open = || {
            // A handle this process dropped a moment ago can hold the file lock in sled's
            // background threads for a few milliseconds: wait for it, a bounded while.
            let mut result = config.open();
            for _ in 0..50 {
                match &result {
                    Err(e) if is_lock_error(e) => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        result = config.open();
                    }
                    _ => break,
                }
            }
            result
        };
        let opened =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(open)).map_err(|panic| {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("no detail");
                BackendError(format!(
                    "the sled database in {} is damaged and cannot be opened ({what})",
                    dir.display()
                ))
            })?;
        let db = opened.map_err(|e| {
            let hint = match &e {
                e if is_lock_error(e) => " (another process, such as a running node, has it open)",
                _ => "",
            };
            BackendError(format!("cannot open the sled database in {}{hint}: {e}", dir.display()))
        })?;
        Ok(Self { db })
    }

    /// The underlying database (tests use it to damage a store on purpose).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}

/// sled reports a held file lock as an I/O error of kind `Other` with this text.
fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

fn sled_err(e: sled::Error) -> BackendError {
    BackendError(format!("sled: {e}"))
}

impl Backend for SledBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.db.get(key).map_err(sled_err)?.map(|v| v.to_vec()))
    }
    fn apply(&self, batch: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), BackendError> {
        let mut b = sled::Batch::default();
        for (k, v) in batch {
            b.insert(k, v);
        }
        self.db.apply_batch(b).map_err(sled_err)
    }
    fn flush(&self) -> Result<(), BackendError> {
        self.db.flush().map(|_| ()).map_err(sled_err)
    }
    fn range<'a>(&'a self, start: &[u8], end: &[u8]) -> KvIter<'a> {
        Box::new(
            self.db
                .range(start.to_vec()..end.to_vec())
                .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(sled_err)),
        )
    }
    fn remove(&self, keys: Vec<Vec<u8>>) -> Result<(), BackendError> {
        let mut b = sled::Batch::default();
        for k in keys {
            b.remove(k);
        }
        self.db.apply_batch(b).map_err(sled_err)
    }
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage engine failed.
    #[error("storage engine: {0}")]
    Backend(#[from] BackendError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A block was refused: it does not extend the head, or fails a check.
    #[error("block refused at {0}")]
    Rejected(Failure),
    /// The store on disk is damaged; nothing is served from it.
    #[error("the store is damaged at {0}")]
    Damaged(Failure),
    /// The store holds no block yet.
    #[error("the ledger is empty: it holds no genesis block")]
    Empty,
    /// An append through a read-only view ([`Store::view`]).
    #[error("this is a read-only view of the ledger; append through the store itself")]
    ReadOnly,
    /// A height, entry or tree size beyond what the store holds.
    #[error("{what} {value} is beyond the ledger (it holds {limit})")]
    OutOfRange {
        /// What was asked for.
        what: &'static str,
        /// The value asked for.
        value: u64,
        /// What the store holds.
        limit: u64,
    },
    /// Data this store does not hold: it was pruned, or the store started from a snapshot's
    /// base above it.
    #[error(
        "{what} {value} is not held: this store holds blocks from {base} (pruned or synced from \
         a snapshot)"
    )]
    Pruned {
        /// What was asked for (`block`, `entry`, `tree size`).
        what: &'static str,
        /// The value asked for.
        value: u64,
        /// The store's base ([`Store::base`]).
        base: u64,
    },
    /// [`Store::open_at_base`] on a directory that already holds a ledger.
    #[error("{0} already holds a ledger: a store starts from a base only in an empty directory")]
    NotEmpty(PathBuf),
    /// A proof was asked for sizes that make none.
    #[error("no such proof: {0}")]
    Proof(String),
    /// An export file is not usable.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Options of a store.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Checks run on every appended block beyond the structural ones (certificates and entry
    /// signatures by default).
    pub checks: Checks,
    /// The storage engine's page cache, bytes ([`CACHE_BYTES`] by default).
    pub cache_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self { checks: Checks::default(), cache_bytes: CACHE_BYTES }
    }
}

/// What `append` reports once a block is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Height of the block.
    pub height: u64,
    /// Its header hash.
    pub hash: Hash,
    /// Entries in the ledger after it.
    pub tree_size: u64,
}

const HEAD_KEY: &[u8] = b"meta/head";
const BASE_KEY: &[u8] = b"meta/base";
/// Keys removed per batch when pruning.
const PRUNE_BATCH: usize = 4096;
/// Most headers one prune moves into the header file: a store pruned before it had one moves
/// its older headers over several prunes.
const HEADERS_MOVED_PER_PRUNE: u64 = 65_536;
/// Name of the acknowledged-head file in a store directory.
pub const HEAD_FILE: &str = "surplus-head";

fn header_key(height: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(b'H');
    k.extend_from_slice(&height.to_be_bytes());
    k
}
fn entry_key(index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(b'E');
    k.extend_from_slice(&index.to_be_bytes());
    k
}
/// Key of the record of a block's `validator-set` entry (kept through pruning).
fn set_key(height: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(b'V');
    k.extend_from_slice(&height.to_be_bytes());
    k
}
fn node_key(level: u8, index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(10);
    k.push(b'N');
    k.push(level);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeadRecord {
    height: u64,
    hash: Hash,
    tree_size: u64,
}

impl HeadRecord {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(48);
        w.u64(self.height).raw(&self.hash).u64(self.tree_size);
        w.finish()
    }
    fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let out = Self {
            height: r.u64("head.height")?,
            hash: r.array("head.hash")?,
            tree_size: r.u64("head.tree_size")?,
        };
        r.finish()?;
        Ok(out)
    }
}

/// What a store that does not hold every block holds (the `meta/base` record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Base {
    /// Lowest height after genesis whose block is held in full; so is every block above it.
    height: u64,
    /// Entries before that block: the stored nodes give the frontier of this size, and every
    /// entry from this index on is held.
    tree_size: u64,
    /// Lowest height after genesis whose header is held; so is every header above it. At most
    /// `height - 1`: the header before the base is the one whose root the frontier gives.
    oldest_header: u64,
}

impl Base {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(24);
        w.u64(self.height).u64(self.tree_size).u64(self.oldest_header);
        w.finish()
    }
    fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let out = Self {
            height: r.u64("base.height")?,
            tree_size: r.u64("base.tree_size")?,
            oldest_header: r.u64("base.oldest_header")?,
        };
        r.finish()?;
        Ok(out)
    }
}

/// What [`Store::prune`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The store's base after pruning ([`Store::base`]).
    pub base: u64,
    /// Blocks whose entries this call stopped holding.
    pub blocks: u64,
    /// Entries deleted (with any left by an interrupted earlier prune).
    pub entries: u64,
    /// Merkle nodes deleted.
    pub nodes: u64,
    /// Headers (with their certificates) moved from the engine into the header file.
    pub headers: u64,
    /// Bytes of keys and values deleted.
    pub bytes: u64,
}

/// What a store holds, by kind of record ([`Store::usage`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// One line per kind, in the order of the key space.
    pub kinds: Vec<KindUsage>,
}

/// The records of one kind in a store.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KindUsage {
    /// `headers` (headers with their commit certificates), `entries`, `merkle-nodes`,
    /// `validator-sets` or `meta`.
    pub kind: &'static str,
    /// Records held.
    pub records: u64,
    /// Bytes of their keys and values (what the engine holds, before its own overhead); for
    /// headers in the header file, the bytes of their records there.
    pub bytes: u64,
}

impl Usage {
    /// Bytes of every kind together.
    pub fn bytes(&self) -> u64 {
        self.kinds.iter().map(|k| k.bytes).sum()
    }

    /// The line of `kind`, if the store holds any.
    pub fn kind(&self, kind: &str) -> Option<&KindUsage> {
        self.kinds.iter().find(|k| k.kind == kind)
    }
}

/// The kind of a record by the first byte of its key (the layout in the crate's docs).
fn kind_of(key: &[u8]) -> &'static str {
    match key.first() {
        Some(b'H') => "headers",
        Some(b'E') => "entries",
        Some(b'N') => "merkle-nodes",
        Some(b'V') => "validator-sets",
        Some(b'm') => "meta",
        _ => "other",
    }
}

/// The ledger store.
pub struct Store {
    backend: Arc<dyn Backend>,
    config: Config,
    /// A view from [`Store::view`]: reads only.
    read_only: bool,
    state: Option<ChainState>,
    /// Merkle nodes of the upper levels, read once from the backend and kept: proofs touch
    /// them most, and there are few (about one per 128 entries, levels 8 and up together), at
    /// most [`UPPER_NODES_CAP`].
    upper_nodes: Arc<RwLock<HashMap<(u8, u64), Hash>>>,
    /// The acknowledged head, recorded outside the engine (stores opened from a directory);
    /// shared with the [`Durability`] handles that record it off the appending thread.
    head_file: Option<Arc<Mutex<HeadFile>>>,
    /// The headers of pruned blocks, outside the engine (stores opened from a directory);
    /// shared with the views.
    headers: Option<Arc<HeaderLog>>,
    /// What the store holds, if not every block from genesis.
    base: Option<Base>,
    /// Entries of the genesis block (always held).
    genesis_size: u64,
    /// The validator sets by the first height each decides: genesis's from 0, then one per
    /// `validator-set` entry, read from the set-change records.
    sets: BTreeMap<u64, ValidatorSet>,
}

/// Lowest Merkle level kept in memory: levels 8 and up hold about one node per 128 entries.
const CACHED_LEVEL: u8 = 8;

/// Most upper Merkle nodes kept in memory (about 6 MiB). Past it the cache starts afresh, so a
/// ledger of any length keeps a bounded cache of the nodes its recent proofs touched.
pub const UPPER_NODES_CAP: usize = 65_536;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("chain", &self.state.as_ref().map(|s| &s.chain_id))
            .field("height", &self.height())
            .finish()
    }
}

/// Makes what a store appended durable, off the appending thread: see [`Store::durability`].
pub struct Durability {
    backend: Arc<dyn Backend>,
    head: Option<(Arc<Mutex<HeadFile>>, Durable)>,
}

impl Durability {
    /// Flushes the engine, then records the head this handle was taken at as acknowledged
    /// (never replacing a newer record: handles may finish out of order).
    pub fn sync(&self) -> Result<(), Error> {
        self.backend.flush()?;
        match &self.head {
            Some((file, d)) => write_head(file, d),
            None => Ok(()),
        }
    }
}

fn write_head(file: &Mutex<HeadFile>, d: &Durable) -> Result<(), Error> {
    let mut file = file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    file.write_newer(d).map_err(|source| Error::Io { path: file.path().to_path_buf(), source })
}

impl Store {
    /// Opens the sled store in `dir` (created if absent) and checks its head.
    ///
    /// Beside the engine's files it keeps `surplus-head`, the last head `append` acknowledged;
    /// a store that opens at an older head (the engine lost blocks) is reported as damaged.
    pub fn open(dir: &Path, config: Config) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.into(), source })?;
        let head_path = dir.join(HEAD_FILE);
        let (head_file, acknowledged) = HeadFile::open(&head_path)
            .map_err(|source| Error::Io { path: head_path.clone(), source })?;
        let (headers, torn) = HeaderLog::open(dir)
            .map_err(|source| Error::Io { path: dir.join(HEADERS_FILE), source })?;
        let headers = Arc::new(headers);
        let backend = Arc::new(SledBackend::open(dir, config.cache_bytes)?);
        let mut store =
            Self::on_backend(backend, config, Arc::default(), Some(headers.clone()), false)?;
        let acknowledged = acknowledged.map_err(|reason| {
            Error::Damaged(Failure::block(store.height().unwrap_or(0), "surplus-head", reason))
        })?;
        store.check_acknowledged(acknowledged)?;
        if torn.is_some() {
            // Opening checked that the engine holds every header past the good records.
            headers.cut_torn_tail().map_err(|source| Error::Io { path: headers.path(), source })?;
        }
        store.head_file = Some(Arc::new(Mutex::new(head_file)));
        Ok(store)
    }

    /// Compares the engine's head with the last acknowledged one.
    fn check_acknowledged(&self, acknowledged: Option<Durable>) -> Result<(), Error> {
        let Some(ack) = acknowledged else {
            return match self.height() {
                // Blocks in the engine but no record of acknowledging any: the file was lost.
                Some(h) => Err(Error::Damaged(Failure::block(
                    h,
                    "surplus-head",
                    "the store holds blocks but its head record file is missing or empty",
                ))),
                None => Ok(()),
            };
        };
        let have = self.height();
        if have.is_none_or(|h| h < ack.height) {
            let first_lost = have.map_or(0, |h| h + 1);
            return Err(Error::Damaged(Failure::block(
                first_lost,
                "store",
                format!(
                    "blocks {first_lost} to {} were acknowledged but the storage engine no longer \
                     holds them (its files are damaged); restore this node from a peer or a backup",
                    ack.height
                ),
            )));
        }
        let (header, _) = self.read_head(ack.height)?;
        if header.hash() != ack.hash || header.tree_size != ack.tree_size {
            return Err(Error::Damaged(Failure::block(
                ack.height,
                "header",
                format!(
                    "the acknowledged block {} hashed to {}, the stored one to {}",
                    ack.height,
                    hex::encode(ack.hash),
                    hex::encode(header.hash())
                ),
            )));
        }
        Ok(())
    }

    /// Records the current head as acknowledged (after the engine flushed it).
    fn record_head(&mut self) -> Result<(), Error> {
        match self.head_durable() {
            Some((file, d)) => write_head(&file, &d),
            None => Ok(()),
        }
    }

    fn head_durable(&self) -> Option<(Arc<Mutex<HeadFile>>, Durable)> {
        let (file, state) = (self.head_file.as_ref()?, self.state.as_ref()?);
        let d = Durable {
            height: state.head.height,
            tree_size: state.frontier.size(),
            hash: state.head_hash,
        };
        Some((file.clone(), d))
    }

    /// What makes everything appended so far durable, to run on another thread while this
    /// store goes on (a consensus node stores one block while it checks the next):
    /// [`Durability::sync`] flushes the engine, then records the head as acknowledged. Until
    /// it returns, the blocks appended with [`Store::append_deferred`] may be lost in a crash.
    pub fn durability(&self) -> Durability {
        Durability { backend: self.backend.clone(), head: self.head_durable() }
    }

    /// Opens a store on any backend and checks its head: the head record, the head header's
    /// hash, the entry count and the Merkle root rebuilt from stored nodes must all agree.
    pub fn with_backend(backend: Box<dyn Backend>, config: Config) -> Result<Self, Error> {
        Self::on_backend(Arc::from(backend), config, Arc::default(), None, false)
    }

    /// A second, read-only handle on the same storage, at the head stored now: it serves
    /// blocks, entries, proofs and exports while this store goes on appending (a reader, such
    /// as an HTTP server, opens a new view to see later blocks). Appending through it fails
    /// with [`Error::ReadOnly`]. Opening costs a few reads (genesis, head, the Merkle frontier).
    pub fn view(&self) -> Result<Store, Error> {
        Self::on_backend(
            self.backend.clone(),
            self.config,
            self.upper_nodes.clone(),
            self.headers.clone(),
            true,
        )
    }

    fn on_backend(
        backend: Arc<dyn Backend>,
        config: Config,
        upper_nodes: Arc<RwLock<HashMap<(u8, u64), Hash>>>,
        headers: Option<Arc<HeaderLog>>,
        read_only: bool,
    ) -> Result<Self, Error> {
        let mut store = Self {
            backend,
            config,
            read_only,
            state: None,
            upper_nodes,
            head_file: None,
            headers,
            base: None,
            genesis_size: 0,
            sets: BTreeMap::new(),
        };
        let Some(raw) = store.backend.get(HEAD_KEY)? else {
            // An empty store must be empty: no block without a head record.
            if store.backend.get(BASE_KEY)?.is_some() {
                return Err(Error::Damaged(Failure::block(
                    0,
                    "meta/head",
                    "a base record is stored but the head record is missing",
                )));
            }
            if let Some(r) = store.backend.range(b"H", b"I").next() {
                let (k, _) = r?;
                return Err(Error::Damaged(Failure::block(
                    key_number(&k),
                    "meta/head",
                    "blocks are stored but the head record is missing",
                )));
            }
            if let Some(held) = store.headers.as_ref().and_then(|h| h.heights()) {
                return Err(Error::Damaged(Failure::block(
                    held.start,
                    "headers",
                    format!(
                        "the header file holds headers {} to {} but the engine holds no block",
                        held.start,
                        held.end - 1
                    ),
                )));
            }
            return Ok(store);
        };
        let head = HeadRecord::decode(&raw)
            .map_err(|e| Error::Damaged(Failure::block(0, "meta/head", e.to_string())))?;
        let damaged = |field: &str, reason: String| {
            Error::Damaged(Failure::block(head.height, field, reason))
        };

        let genesis = store.read_block(0)?;
        let validators = surplus_ledger::genesis_validators(&genesis).map_err(Error::Damaged)?;
        store.genesis_size = genesis.header.tree_size;
        let base = match store.backend.get(BASE_KEY)? {
            Some(raw) => Some(Base::decode(&raw).map_err(|e| damaged("meta/base", e.to_string()))?),
            None => None,
        };
        store.check_header_log(base.map_or(1, |b| b.oldest_header), head.height, read_only)?;
        if let Some(base) = base {
            store.check_base(base, head.height)?;
            store.base = Some(base);
        }
        let (header, _) = store.read_head(head.height)?;
        let hash = header.hash();
        if hash != head.hash {
            return Err(damaged(
                "header",
                format!(
                    "hashes to {}, the head record says {}",
                    hex::encode(hash),
                    hex::encode(head.hash)
                ),
            ));
        }
        if header.height != head.height || header.tree_size != head.tree_size {
            return Err(damaged(
                "meta/head",
                format!(
                    "head record (height {}, {} entries) disagrees with the header (height {}, {} entries)",
                    head.height, head.tree_size, header.height, header.tree_size
                ),
            ));
        }
        if head.tree_size > store.entries_from().max(1) {
            // The entry, or the frontier leaf standing for it when it is not held.
            match store.nodes().node(0, head.tree_size - 1) {
                Ok(_) => {}
                Err(NodeError::Backend(e)) => return Err(e.into()),
                Err(NodeError::Missing { .. }) => {
                    return Err(damaged(
                        "entries",
                        format!("entry {} is missing", head.tree_size - 1),
                    ))
                }
            }
        }
        // Data past the head record is what a crash between an append and its head record
        // leaves, for the store that appends. A view of a live store reads the head record and
        // then the rest, while the store goes on appending: the next block may be stored by then
        // and is no damage.
        if !read_only
            && (store.backend.get(&entry_key(head.tree_size))?.is_some()
                || store.backend.get(&header_key(head.height + 1))?.is_some())
        {
            return Err(damaged("meta/head", "data beyond the head record is stored".into()));
        }
        let frontier = Frontier::from_source(&store.nodes(), head.tree_size)
            .map_err(|e| damaged("merkle", e.to_string()))?;
        let root = frontier.root::<Blake3>();
        if root != header.merkle_root {
            return Err(Error::Damaged(store.locate_frontier_damage(head.tree_size, &header)?));
        }
        store.load_sets(validators.clone())?;
        let validators = store.sets.values().next_back().cloned().unwrap_or(validators);
        store.state = Some(ChainState {
            chain_id: genesis.header.chain_id.clone(),
            validators,
            head: header,
            head_hash: hash,
            frontier,
        });
        Ok(store)
    }

    /// Checks the header file against the engine: it starts at the oldest header held, ends
    /// below the head, the engine holds every header from its end on (it deletes them only
    /// once the file holds them), and the first of those links to the file's last.
    fn check_header_log(&self, oldest: u64, head: u64, read_only: bool) -> Result<(), Error> {
        let Some(log) = &self.headers else { return Ok(()) };
        // The engine first: a prune that runs meanwhile (beside a view) appends to the file
        // before it deletes from the engine, so the file read after covers what went.
        let next_held = match self.backend.range(&header_key(1), b"I").next() {
            Some(r) => key_number(&r?.0),
            None => head + 1,
        };
        let Some(held) = log.heights() else { return Ok(()) };
        let damaged =
            |height: u64, reason: String| Error::Damaged(Failure::block(height, "headers", reason));
        if held.start != oldest {
            return Err(damaged(
                held.start,
                format!(
                    "the header file starts at height {}, the oldest header held is {oldest}",
                    held.start
                ),
            ));
        }
        // A view reads the head record before the file: its store may have appended and pruned
        // past that head meanwhile.
        if held.end > head && !read_only {
            return Err(damaged(
                held.end - 1,
                format!("the header file holds headers up to {}, the head is {head}", held.end - 1),
            ));
        }
        if next_held > held.end {
            return Err(damaged(
                held.end,
                format!(
                    "headers {} to {} are neither in the header file nor in the engine",
                    held.end,
                    next_held - 1
                ),
            ));
        }
        let (last, _) = self.read_head(held.end - 1)?;
        let (next, _) = self.read_head(held.end)?;
        if next.prev_hash != last.hash() {
            return Err(damaged(
                held.end - 1,
                format!(
                    "the last header in the header file does not link to header {} in the engine",
                    held.end
                ),
            ));
        }
        Ok(())
    }

    /// Checks a `meta/base` record against the headers and Merkle nodes it claims are held.
    fn check_base(&self, base: Base, head: u64) -> Result<(), Error> {
        let damaged = |reason: String| Error::Damaged(Failure::block(head, "meta/base", reason));
        if base.height < 2
            || base.height > head + 1
            || base.oldest_header == 0
            || base.oldest_header >= base.height
        {
            return Err(damaged(format!(
                "base {} with oldest header {} does not fit a head at {head}",
                base.height, base.oldest_header
            )));
        }
        if base.tree_size < self.genesis_size {
            return Err(damaged(format!(
                "{} entries before the base is fewer than genesis holds",
                base.tree_size
            )));
        }
        // Read before `base` is set, so that a missing header is damage, not "pruned".
        self.read_head(base.oldest_header)?;
        let (before, _) = self.read_head(base.height - 1)?;
        if before.tree_size != base.tree_size {
            return Err(damaged(format!(
                "the base record says {} entries before block {}, its header says {}",
                base.tree_size, base.height, before.tree_size
            )));
        }
        let frontier = Frontier::from_source(&self.nodes(), base.tree_size)
            .map_err(|e| Error::Damaged(Failure::block(before.height, "merkle", e.to_string())))?;
        let root = frontier.root::<Blake3>();
        if root != before.merkle_root {
            return Err(Error::Damaged(Failure::block(
                before.height,
                "merkle",
                format!(
                    "the stored frontier at the base gives root {}, the header says {}",
                    hex::encode(root),
                    hex::encode(before.merkle_root)
                ),
            )));
        }
        Ok(())
    }

    /// Finds which stored frontier node disagrees with the entries under it (slow: it reads
    /// those entries; only called once damage is known).
    fn locate_frontier_damage(&self, tree_size: u64, header: &Header) -> Result<Failure, Error> {
        let nodes = self.nodes();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            let width = 1u64 << level;
            if tree_size - start < width {
                continue;
            }
            if start < self.entries_from() {
                // Its entries are not all held: nothing to recompute it from.
                start += width;
                continue;
            }
            let index = start >> level;
            let mut leaves = Vec::new();
            for r in self.backend.range(&entry_key(start), &entry_key(start + width)) {
                leaves.push(Blake3::leaf(&r?.1));
            }
            let recomputed = merkle::root::<Blake3>(&leaves);
            let last = start + width - 1;
            if nodes.node(level, index).ok() != Some(recomputed) {
                let height = self.height_of_entry_upto(last, self.base(), header.height)?;
                return Ok(Failure::entry(
                    height,
                    last,
                    format!("merkle node (level {level}, index {index})"),
                    "the stored node does not match the entries under it",
                ));
            }
            start += width;
        }
        Ok(Failure::block(
            header.height,
            "header.merkle_root",
            "the stored Merkle nodes agree with the entries but not with the head header",
        ))
    }

    fn nodes(&self) -> Nodes<'_> {
        Nodes { backend: &*self.backend, cache: &self.upper_nodes }
    }

    /// The validator set that decides block `height`: genesis's, or the one put in force by
    /// the latest `validator-set` entry below `height`. `None` for an empty store.
    pub fn validators_at(&self, height: u64) -> Option<ValidatorSet> {
        self.sets.range(..=height).next_back().map(|(_, set)| set.clone())
    }

    /// Every validator set this store knows, each with the height it is keyed by (0 for the
    /// genesis set, which decides every block from 1; otherwise the first block it decides), in
    /// height order.
    pub fn set_history(&self) -> Vec<(u64, ValidatorSet)> {
        self.sets.iter().map(|(h, s)| (*h, s.clone())).collect()
    }

    /// Every set change recorded, in height order: each block's `validator-set` entry with its
    /// inclusion proof under that block's root (held even where the entries are pruned).
    pub fn set_changes(&self) -> Result<Vec<SetChange>, Error> {
        let mut out = Vec::new();
        for r in self.backend.range(b"V", b"W") {
            let (k, v) = r?;
            let height = key_number(&k);
            let change = SetChange::decode(&v).map_err(|e| {
                Error::Damaged(Failure::block(height, "validator_set", e.to_string()))
            })?;
            if change.height() != height {
                return Err(Error::Damaged(Failure::block(
                    height,
                    "validator_set",
                    format!("the record under this height is for height {}", change.height()),
                )));
            }
            out.push(change);
        }
        Ok(out)
    }

    /// Reads the set-change records, follows them from the genesis set and checks each
    /// against its block's header where that is held.
    fn load_sets(&mut self, genesis: ValidatorSet) -> Result<(), Error> {
        let changes = self.set_changes()?;
        let chain_id = self.read_block(0)?.header.chain_id;
        for c in &changes {
            let height = c.height();
            if height == 0 || self.height().is_some_and(|h| height > h) {
                return Err(Error::Damaged(Failure::block(
                    height,
                    "validator_set",
                    "a set-change record for a block that is not stored",
                )));
            }
            match self.read_head(height) {
                Ok((header, _)) if header == c.header => {}
                Ok(_) => {
                    return Err(Error::Damaged(Failure::block(
                        height,
                        "validator_set",
                        "the set-change record holds another header than the stored block",
                    )))
                }
                // A store started from a snapshot's base holds no header below it.
                Err(Error::Pruned { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.sets = surplus_ledger::follow_set_changes(&chain_id, &genesis, &changes)
            .map_err(Error::Damaged)?;
        Ok(())
    }

    /// The record of `block`'s `validator-set` entry (its `i`th), proved under its root from
    /// the stored nodes and those the block completes.
    fn set_change_record(
        &self,
        block: &Block,
        i: usize,
        adv: &Advance,
    ) -> Result<SetChange, Error> {
        let size = block.header.tree_size;
        let index = size - block.entries.len() as u64 + i as u64;
        let fresh: HashMap<(u8, u64), Hash> =
            adv.nodes.iter().map(|(l, i, h)| ((*l, *i), *h)).collect();
        let source = Pending { stored: self.nodes(), fresh };
        let proof = merkle::prove_inclusion::<Blake3, _>(&source, index, size)
            .map_err(|e| self.prove_error(e, "entry", index))?;
        Ok(SetChange {
            header: block.header.clone(),
            certificate: block.certificate.clone(),
            entry: block.entries[i].clone(),
            proof,
        })
    }

    /// The chain state at the head, if there is a genesis block.
    pub fn state(&self) -> Option<&ChainState> {
        self.state.as_ref()
    }
    /// The head header.
    pub fn head(&self) -> Option<&Header> {
        self.state.as_ref().map(|s| &s.head)
    }
    /// Height of the head.
    pub fn height(&self) -> Option<u64> {
        self.head().map(|h| h.height)
    }
    /// Entries in the ledger.
    pub fn tree_size(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.frontier.size())
    }

    /// Lowest height after genesis whose block (entries and all) this store holds, 0 for a
    /// store that holds every block. Every block from it to the head is held, so is genesis;
    /// the blocks between are pruned or were never synced. After [`Store::open_at_base`] with
    /// the header of block `b` it is `b + 1`; after [`Store::prune`]`(below)`, `below`.
    pub fn base(&self) -> u64 {
        self.base.map_or(0, |b| b.height)
    }

    /// Counts every record the store holds, by kind, with the bytes of its key and value: what a
    /// node's ledger spends its disk on (`surplus ledger usage`). Reads the whole store. The
    /// headers of pruned blocks, in the header file, count under `headers` with the bytes of
    /// their records there.
    pub fn usage(&self) -> Result<Usage, Error> {
        let mut usage = Usage::default();
        for r in self.backend.range(&[], &[0xff]) {
            let (k, v) = r?;
            let kind = kind_of(&k);
            let bytes = (k.len() + v.len()) as u64;
            match usage.kinds.last_mut() {
                Some(last) if last.kind == kind => {
                    last.records += 1;
                    last.bytes += bytes;
                }
                _ => match usage.kinds.iter_mut().find(|u| u.kind == kind) {
                    Some(u) => {
                        u.records += 1;
                        u.bytes += bytes;
                    }
                    None => usage.kinds.push(KindUsage { kind, records: 1, bytes }),
                },
            }
        }
        // The headers in the header file count with those in the engine, at their size there.
        if let Some((records, bytes)) = self.headers.as_ref().map(|h| h.size()) {
            match usage.kinds.iter_mut().find(|u| u.kind == "headers") {
                Some(u) => {
                    u.records += records;
                    u.bytes += bytes;
                }
                None if records > 0 => {
                    usage.kinds.push(KindUsage { kind: "headers", records, bytes });
                }
                None => {}
            }
        }
        Ok(usage)
    }

    /// Lowest height after genesis whose header and certificate this store holds: every header
    /// from it to the head is held. 1 unless the store started from a snapshot's base
    /// ([`Store::open_at_base`]), whose header is the oldest held; pruning keeps every header.
    pub fn oldest_header(&self) -> u64 {
        self.base.map_or(1, |b| b.oldest_header)
    }

    /// Index of the first entry held after genesis's: entries from it on are all held, and so
    /// are inclusion proofs of them and consistency proofs from trees of at least this size.
    /// 0 for a store that holds every block.
    pub fn entries_from(&self) -> u64 {
        self.base.map_or(0, |b| b.tree_size)
    }

    fn pruned(&self, what: &'static str, value: u64) -> Error {
        Error::Pruned { what, value, base: self.base() }
    }

    /// The base recorded in the engine now: a read-only view opened before its store pruned
    /// finds the data it expects gone, and reports that as pruned rather than damaged.
    fn recorded_base(&self) -> Option<Base> {
        let raw = self.backend.get(BASE_KEY).ok()??;
        Base::decode(&raw).ok()
    }

    /// `Error::Pruned` if entry `index` is below the base recorded now, else `damaged`.
    fn missing_entry(&self, what: &'static str, value: u64, index: u64, damaged: Error) -> Error {
        match self.recorded_base() {
            Some(b) if index >= self.genesis_size && index < b.tree_size => {
                Error::Pruned { what, value, base: b.height }
            }
            _ => damaged,
        }
    }

    /// Whether the Merkle node `(level, index)` is kept: every node whose subtree ends past
    /// the base's start, and the frontier nodes at that start.
    fn node_held(&self, level: u8, index: u64) -> bool {
        let Some(base) = self.base else { return true };
        let end = index.checked_add(1).and_then(|i| i.checked_shl(u32::from(level)));
        let start_bits = base.tree_size >> level;
        end.is_none_or(|e| e > base.tree_size) || (start_bits & 1 == 1 && index == start_bits - 1)
    }

    /// Starts a store in the empty directory `dir` from a snapshot's base instead of genesis:
    /// it holds `genesis`, the header and certificate `base` of a later block, and the Merkle
    /// `frontier` after that block, and [`Store::append`] goes on from the block after it.
    ///
    /// Refused unless `genesis` is a valid genesis block, `changes` are the set changes below
    /// the base in height order, each decided by the set in force at its height
    /// ([`surplus_ledger::follow_set_changes`]), `base` is a block after genesis of the same
    /// chain that passes the header checks `append` runs with certificates checked (its
    /// certificate decides it for the set those changes put in force, its proposer may propose
    /// it; at height 1 it links to genesis), and `frontier` has the base's tree size and gives
    /// its Merkle root. Everything is written in one batch and flushed before this returns.
    pub fn open_at_base(
        dir: &Path,
        config: Config,
        genesis: &Block,
        base: &(Header, surplus_ledger::Certificate),
        frontier: &Frontier,
        changes: &[SetChange],
    ) -> Result<Store, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.into(), source })?;
        let head_path = dir.join(HEAD_FILE);
        let (head_file, acknowledged) = HeadFile::open(&head_path)
            .map_err(|source| Error::Io { path: head_path.clone(), source })?;
        if acknowledged != Ok(None) {
            return Err(Error::NotEmpty(dir.into()));
        }
        let (headers, torn) = HeaderLog::open(dir)
            .map_err(|source| Error::Io { path: dir.join(HEADERS_FILE), source })?;
        if torn.is_some() || headers.heights().is_some() {
            return Err(Error::NotEmpty(dir.into()));
        }
        let backend: Arc<dyn Backend> = Arc::new(SledBackend::open(dir, config.cache_bytes)?);
        if backend.range(b"", &[0xff]).next().is_some() {
            return Err(Error::NotEmpty(dir.into()));
        }
        let (mut state, _) = ChainState::genesis(genesis).map_err(Error::Rejected)?;
        let (header, certificate) = base;
        let at = header.height;
        if let Some(c) = changes.iter().find(|c| c.height() >= at) {
            return Err(Error::Rejected(Failure::block(
                c.height(),
                "validator_set",
                format!("a set change at height {}, not below the base {at}", c.height()),
            )));
        }
        let sets = surplus_ledger::follow_set_changes(&state.chain_id, &state.validators, changes)
            .map_err(Error::Rejected)?;
        if let Some((_, set)) = sets.range(..=at).next_back() {
            state.validators = set.clone();
        }
        let refuse =
            |field: &str, reason: String| Error::Rejected(Failure::block(at, field, reason));
        if at == 0 {
            return Err(refuse("header.height", "a base is a block after genesis".into()));
        }
        if header.tree_size < genesis.header.tree_size {
            return Err(refuse(
                "header.tree_size",
                format!(
                    "{} entries, fewer than genesis's {}",
                    header.tree_size, genesis.header.tree_size
                ),
            ));
        }
        if frontier.size() != header.tree_size {
            return Err(refuse(
                "frontier",
                format!(
                    "the frontier holds {} entries, the base header {}",
                    frontier.size(),
                    header.tree_size
                ),
            ));
        }
        let root = frontier.root::<Blake3>();
        if root != header.merkle_root {
            return Err(refuse(
                "frontier",
                format!(
                    "the frontier gives root {}, the base header says {}",
                    hex::encode(root),
                    hex::encode(header.merkle_root)
                ),
            ));
        }
        // The checks `append` runs, on the base as a block without entries whose parent is
        // whatever it links to (genesis itself at height 1): the frontier stands for the
        // entries, so the tree size and root are checked against it.
        let parent = if at == 1 {
            state.clone()
        } else {
            ChainState {
                head: Header { height: at - 1, timestamp_ms: 0, ..header.clone() },
                head_hash: header.prev_hash,
                ..state.clone()
            }
        };
        let parent = ChainState { frontier: frontier.clone(), ..parent };
        let block =
            Block { header: header.clone(), entries: Vec::new(), certificate: certificate.clone() };
        let adv = parent
            .check_next(&block, Checks { certificates: true, entry_signatures: true })
            .map_err(Error::Rejected)?;

        let mut batch = Vec::with_capacity(genesis.entries.len() + 70);
        batch.push((header_key(0), genesis.encode_head()));
        for (i, e) in genesis.entries.iter().enumerate() {
            batch.push((entry_key(i as u64), e.encode()));
        }
        batch.push((header_key(at), block.encode_head()));
        let size = frontier.size();
        let levels = (0..64u32).rev().filter(|l| size >> l & 1 == 1);
        for (level, hash) in levels.zip(frontier.hashes()) {
            batch.push((node_key(level as u8, (size >> level) - 1), hash.to_vec()));
        }
        for c in changes {
            batch.push((set_key(c.height()), c.encode()));
        }
        let rec = HeadRecord { height: at, hash: adv.hash, tree_size: size };
        batch.push((HEAD_KEY.to_vec(), rec.encode()));
        let base = Base { height: at + 1, tree_size: size, oldest_header: at };
        batch.push((BASE_KEY.to_vec(), base.encode()));
        backend.apply(batch)?;
        backend.flush()?;
        let mut store =
            Self::on_backend(backend, config, Arc::default(), Some(Arc::new(headers)), false)?;
        store.head_file = Some(Arc::new(Mutex::new(head_file)));
        store.record_head()?;
        Ok(store)
    }

    /// Stops holding the entries of the blocks below `below` (genesis and the head are always
    /// kept, so `below` is capped at the head), and the Merkle nodes only they needed. Every
    /// header and certificate is kept, so the hash chain and the certified roots stay
    /// checkable from genesis; [`Store::base`] becomes `below`. A `below` at or under the
    /// current base changes nothing but still sweeps what an interrupted earlier prune left.
    ///
    /// The new base is recorded first (flushed), then the data below it deleted in batches:
    /// a crash in between leaves data that nothing reads and the next call removes.
    pub fn prune(&mut self, below: u64) -> Result<Pruned, Error> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let head = self.height().ok_or(Error::Empty)?;
        let target = below.min(head);
        let old = self.base().max(1);
        let mut out = Pruned::default();
        if target > old {
            let (before, _) = self.read_head(target - 1)?;
            let base = Base {
                height: target,
                tree_size: before.tree_size,
                oldest_header: self.oldest_header(),
            };
            let mut batch = vec![(BASE_KEY.to_vec(), base.encode())];
            if base.tree_size % 2 == 1 {
                // The frontier's leaf: its entry goes, its hash must stay.
                let leaf = base.tree_size - 1;
                let hash = self.nodes().node(0, leaf).map_err(|e| self.node_error(e))?;
                batch.push((node_key(0, leaf), hash.to_vec()));
            }
            self.backend.apply(batch)?;
            self.backend.flush()?;
            self.base = Some(base);
            out.blocks = target - old;
            if let Ok(mut c) = self.upper_nodes.write() {
                c.clear();
            }
        }
        if let Some(base) = self.base {
            let moved_below = self.move_headers(base.height)?;
            self.sweep(base, &mut out)?;
            if let Some(end) = moved_below {
                out.headers +=
                    self.sweep_range(header_key(1), &header_key(end), None, &mut out.bytes)?;
            }
            self.backend.flush()?;
        }
        out.base = self.base();
        Ok(out)
    }

    /// Copies the headers below `below` that the header file does not hold yet into it (at
    /// most [`HEADERS_MOVED_PER_PRUNE`]), synced. Returns the height below which the file
    /// holds every header, so that the engine's copies may go; `None` for a store without
    /// a header file.
    fn move_headers(&self, below: u64) -> Result<Option<u64>, Error> {
        let Some(log) = &self.headers else { return Ok(None) };
        let from = log.heights().map_or(self.oldest_header(), |held| held.end);
        let to = below.min(from.saturating_add(HEADERS_MOVED_PER_PRUNE));
        let mut chunk = Vec::with_capacity(PRUNE_BATCH);
        for height in from..to {
            let raw = self.backend.get(&header_key(height))?.ok_or_else(|| {
                Error::Damaged(Failure::block(
                    height,
                    "header",
                    "no header is stored at this height",
                ))
            })?;
            match decode_head(&raw) {
                Ok((header, _)) if header.height == height => {}
                Ok((header, _)) => {
                    return Err(Error::Damaged(Failure::block(
                        height,
                        "header.height",
                        format!("the header stored at height {height} says {}", header.height),
                    )))
                }
                Err(e) => {
                    return Err(Error::Damaged(Failure::block(height, "header", e.to_string())))
                }
            }
            chunk.push((height, raw));
            if chunk.len() == PRUNE_BATCH || height + 1 == to {
                log.append(&chunk).map_err(|source| Error::Io { path: log.path(), source })?;
                chunk.clear();
            }
        }
        // Before the engine's copies go, the file must give back each of them exactly: a crash
        // during an append may have left any of its pages unwritten, not only the last. The
        // first that differs, and all after it, are cut away and moved again at the next prune.
        let Some(held) = log.heights() else { return Ok(Some(from)) };
        let io = |source| Error::Io { path: log.path(), source };
        let mut height = match self.backend.range(&header_key(1), b"I").next() {
            Some(r) => key_number(&r?.0).max(held.start),
            None => held.end,
        };
        while height < held.end {
            let engine = self.backend.get(&header_key(height))?;
            if engine.is_none() || log.get_indexed(height).map_err(io)? != engine {
                log.truncate_to(height).map_err(io)?;
                return Ok(Some(height));
            }
            height += 1;
        }
        Ok(Some(held.end))
    }

    /// Deletes every entry and Merkle node below `base` that it does not keep.
    fn sweep(&self, base: Base, out: &mut Pruned) -> Result<(), Error> {
        out.entries += self.sweep_range(
            entry_key(self.genesis_size),
            &entry_key(base.tree_size),
            None,
            &mut out.bytes,
        )?;
        for level in 0..64u8 {
            let end = base.tree_size >> level;
            if end == 0 {
                break;
            }
            let keep = (end & 1 == 1).then(|| node_key(level, end - 1));
            out.nodes += self.sweep_range(
                node_key(level, 0),
                &node_key(level, end),
                keep.as_deref(),
                &mut out.bytes,
            )?;
        }
        Ok(())
    }

    /// Deletes the keys in `[start, end)` but `keep`, in batches; returns how many.
    fn sweep_range(
        &self,
        start: Vec<u8>,
        end: &[u8],
        keep: Option<&[u8]>,
        bytes: &mut u64,
    ) -> Result<u64, Error> {
        let mut from = start;
        let mut removed = 0u64;
        loop {
            let mut keys = Vec::new();
            let mut last = None;
            for r in self.backend.range(&from, end).take(PRUNE_BATCH) {
                let (k, v) = r?;
                last = Some(k.clone());
                if Some(k.as_slice()) != keep {
                    *bytes += (k.len() + v.len()) as u64;
                    keys.push(k);
                }
            }
            let Some(mut last) = last else { return Ok(removed) };
            removed += keys.len() as u64;
            if !keys.is_empty() {
                self.backend.remove(keys)?;
            }
            // The least key after `last`.
            last.push(0);
            from = last;
        }
    }

    /// Appends one block durably: checked, written atomically, flushed before returning.
    pub fn append(&mut self, block: &Block) -> Result<Appended, Error> {
        let out = self.append_deferred(block)?;
        self.flush()?;
        Ok(out)
    }

    /// Appends several blocks with one flush at the end (group commit). Each block is still
    /// atomic; after a crash a prefix of the group is stored. Durable once this returns.
    pub fn append_group(&mut self, blocks: &[Block]) -> Result<Vec<Appended>, Error> {
        let mut out = Vec::with_capacity(blocks.len());
        let mut result = Ok(());
        for b in blocks {
            match self.append_deferred(b) {
                Ok(a) => out.push(a),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Whatever was applied is flushed even if a later block was refused.
        self.flush()?;
        result.map(|()| out)
    }

    /// Checks and applies one block without waiting for the disk. Not durable until
    /// [`Store::flush`]: use for a group of blocks, then flush.
    pub fn append_deferred(&mut self, block: &Block) -> Result<Appended, Error> {
        self.append_deferred_with(block, self.config.checks)
    }

    /// [`Store::append_deferred`] with other expensive checks than the store's own: for a
    /// caller that has just run them itself (a consensus engine verified every signature of
    /// the certificate it decided with). The structural checks always run.
    pub fn append_deferred_with(
        &mut self,
        block: &Block,
        checks: Checks,
    ) -> Result<Appended, Error> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let (adv, next_state) = match &self.state {
            None => {
                let (state, adv) = ChainState::genesis(block).map_err(Error::Rejected)?;
                (adv, Some(state))
            }
            Some(s) => (s.check_next(block, checks).map_err(Error::Rejected)?, None),
        };
        let first = block.header.tree_size - block.entries.len() as u64;
        let mut batch = Vec::with_capacity(block.entries.len() + adv.nodes.len() + 2);
        batch.push((header_key(block.header.height), block.encode_head()));
        for (i, e) in block.entries.iter().enumerate() {
            batch.push((entry_key(first + i as u64), e.encode()));
        }
        // Leaf hashes (level 0) are not stored: they are the hash of the stored entry.
        for (level, index, hash) in adv.nodes.iter().filter(|n| n.0 > 0) {
            batch.push((node_key(*level, *index), hash.to_vec()));
        }
        let change = match &adv.validators {
            Some((i, _)) => Some(self.set_change_record(block, *i, &adv)?),
            None => None,
        };
        if let Some(c) = &change {
            batch.push((set_key(c.height()), c.encode()));
        }
        let rec = HeadRecord {
            height: block.header.height,
            hash: adv.hash,
            tree_size: block.header.tree_size,
        };
        batch.push((HEAD_KEY.to_vec(), rec.encode()));
        self.backend.apply(batch)?;
        if let Some((_, set)) = &adv.validators {
            self.sets.insert(block.header.height + 1, set.clone());
        }
        match next_state {
            Some(s) => {
                self.genesis_size = s.frontier.size();
                self.sets = BTreeMap::from([(0, s.validators.clone())]);
                self.state = Some(s);
            }
            None => {
                if let Some(s) = self.state.as_mut() {
                    s.commit(block, adv);
                }
            }
        }
        Ok(Appended { height: rec.height, hash: rec.hash, tree_size: rec.tree_size })
    }

    /// Makes every applied block durable.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.backend.flush()?;
        self.record_head()
    }

    fn check_height(&self, height: u64) -> Result<(), Error> {
        match self.height() {
            None => Err(Error::Empty),
            Some(h) if height > h => {
                Err(Error::OutOfRange { what: "height", value: height, limit: h })
            }
            Some(_) => Ok(()),
        }
    }

    /// Header and certificate at `height`.
    pub fn read_head(&self, height: u64) -> Result<(Header, surplus_ledger::Certificate), Error> {
        if height > 0 && height < self.oldest_header() {
            return Err(self.pruned("block", height));
        }
        let in_file = || match &self.headers {
            Some(log) => log.get(height).map_err(|e| match e {
                headerlog::ReadError::Io(source) => Error::Io { path: log.path(), source },
                headerlog::ReadError::Damaged(why) => Error::Damaged(Failure::block(
                    height,
                    "header",
                    format!("{}: {why}", log.path().display()),
                )),
            }),
            None => Ok(None),
        };
        let raw = match in_file()? {
            Some(raw) => raw,
            // A prune beside this read (a view's) may have moved it meanwhile: the engine's copy
            // goes only once the file holds it.
            None => match self.backend.get(&header_key(height))? {
                Some(raw) => raw,
                None => in_file()?.ok_or_else(|| {
                    Error::Damaged(Failure::block(
                        height,
                        "header",
                        "no header is stored at this height",
                    ))
                })?,
            },
        };
        let (header, cert) = decode_head(&raw)
            .map_err(|e| Error::Damaged(Failure::block(height, "header", e.to_string())))?;
        if header.height != height {
            return Err(Error::Damaged(Failure::block(
                height,
                "header.height",
                format!("the header stored at height {height} says {}", header.height),
            )));
        }
        Ok((header, cert))
    }

    /// The block at `height`.
    pub fn block(&self, height: u64) -> Result<Block, Error> {
        self.check_height(height)?;
        if height > 0 && height < self.base() {
            return Err(self.pruned("block", height));
        }
        self.read_block(height)
    }

    fn read_block(&self, height: u64) -> Result<Block, Error> {
        let (header, certificate) = self.read_head(height)?;
        let first = if height == 0 { 0 } else { self.read_head(height - 1)?.0.tree_size };
        let entries = self.read_entries(height, first, header.tree_size)?;
        Ok(Block { header, entries, certificate })
    }

    fn read_entries(&self, height: u64, first: u64, end: u64) -> Result<Vec<Entry>, Error> {
        if end < first {
            return Err(Error::Damaged(Failure::block(
                height,
                "header.tree_size",
                format!("{end} is below the previous block's {first}"),
            )));
        }
        let mut entries = Vec::with_capacity(
            (end - first).min(surplus_ledger::MAX_BLOCK_ENTRIES as u64) as usize,
        );
        let mut expected = first;
        for r in self.backend.range(&entry_key(first), &entry_key(end)) {
            let (k, v) = r?;
            let index = key_number(&k);
            if index != expected {
                let damaged = Error::Damaged(Failure::entry(
                    height,
                    expected,
                    "entry",
                    "missing from the store",
                ));
                return Err(self.missing_entry("block", height, expected, damaged));
            }
            let e = Entry::decode(&v).map_err(|e| {
                Error::Damaged(Failure::entry(height, index, "entry", e.to_string()))
            })?;
            entries.push(e);
            expected += 1;
        }
        if expected != end {
            let damaged =
                Error::Damaged(Failure::entry(height, expected, "entry", "missing from the store"));
            return Err(self.missing_entry("block", height, expected, damaged));
        }
        Ok(entries)
    }

    /// The entry with global index `index`.
    pub fn entry(&self, index: u64) -> Result<Entry, Error> {
        let size = self.tree_size();
        if index >= size {
            return Err(Error::OutOfRange { what: "entry", value: index, limit: size });
        }
        if index >= self.genesis_size && index < self.entries_from() {
            return Err(self.pruned("entry", index));
        }
        let raw = self.backend.get(&entry_key(index))?.ok_or_else(|| {
            let damaged = Error::Damaged(Failure::entry(
                self.height_of_entry(index).unwrap_or(0),
                index,
                "entry",
                "missing",
            ));
            self.missing_entry("entry", index, index, damaged)
        })?;
        Entry::decode(&raw).map_err(|e| {
            Error::Damaged(Failure::entry(
                self.height_of_entry(index).unwrap_or(0),
                index,
                "entry",
                e.to_string(),
            ))
        })
    }

    /// Height of the block holding entry `index` (binary search over headers).
    pub fn height_of_entry(&self, index: u64) -> Result<u64, Error> {
        let head = self.height().ok_or(Error::Empty)?;
        if index >= self.tree_size() {
            return Err(Error::OutOfRange { what: "entry", value: index, limit: self.tree_size() });
        }
        if index < self.genesis_size {
            return Ok(0);
        }
        if index < self.entries_from() {
            return Err(self.pruned("entry", index));
        }
        self.height_of_entry_upto(index, self.base(), head)
    }

    /// First height in `[lo, head]` whose tree size exceeds `index` (binary search over
    /// headers, all of which must be held).
    fn height_of_entry_upto(&self, index: u64, lo: u64, head: u64) -> Result<u64, Error> {
        let (mut lo, mut hi) = (lo, head);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.read_head(mid)?.0.tree_size > index {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    /// An unsigned checkpoint for the block at `height` (the head if `None`).
    pub fn checkpoint(&self, height: Option<u64>) -> Result<Checkpoint, Error> {
        let state = self.state.as_ref().ok_or(Error::Empty)?;
        let header = match height {
            None => state.head.clone(),
            Some(h) => {
                self.check_height(h)?;
                self.read_head(h)?.0
            }
        };
        Ok(Checkpoint {
            chain_id: state.chain_id.clone(),
            height: header.height,
            tree_size: header.tree_size,
            root: header.merkle_root,
            header_hash: header.hash(),
        })
    }

    /// Inclusion proof of entry `index` in the tree of `tree_size` entries (the head's if `None`).
    pub fn prove_inclusion(
        &self,
        index: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, Error> {
        let size = self.proof_size(tree_size)?;
        if index < self.entries_from() && index < size {
            return Err(self.pruned("entry", index));
        }
        merkle::prove_inclusion::<Blake3, _>(&self.nodes(), index, size)
            .map_err(|e| self.prove_error(e, "entry", index))
    }

    /// Consistency proof from the tree of `old_size` entries to the one of `new_size`.
    pub fn prove_consistency(
        &self,
        old_size: u64,
        new_size: Option<u64>,
    ) -> Result<ConsistencyProof, Error> {
        let size = self.proof_size(new_size)?;
        if old_size > 0 && old_size < self.entries_from() && old_size <= size {
            return Err(self.pruned("tree size", old_size));
        }
        merkle::prove_consistency::<Blake3, _>(&self.nodes(), old_size, size)
            .map_err(|e| self.prove_error(e, "tree size", old_size))
    }

    fn proof_size(&self, tree_size: Option<u64>) -> Result<u64, Error> {
        let have = self.tree_size();
        let size = tree_size.unwrap_or(have);
        if size > have {
            return Err(Error::OutOfRange { what: "tree size", value: size, limit: have });
        }
        Ok(size)
    }

    /// A node that could not be read: damage, or a prune since this view opened.
    fn node_error(&self, e: NodeError) -> Error {
        match e {
            NodeError::Backend(b) => Error::Backend(b),
            NodeError::Missing { level, index } => Error::Damaged(Failure::block(
                self.height().unwrap_or(0),
                "merkle",
                format!("node at level {level}, index {index} is missing"),
            )),
        }
    }

    fn prove_error(&self, e: ProveError<NodeError>, what: &'static str, value: u64) -> Error {
        match e {
            ProveError::Source(e @ NodeError::Missing { .. }) => {
                let damaged = self.node_error(e);
                match self.recorded_base() {
                    Some(b) if b.height > self.base() => {
                        Error::Pruned { what, value, base: b.height }
                    }
                    _ => damaged,
                }
            }
            ProveError::Source(e) => self.node_error(e),
            ProveError::IndexOutOfRange { index, tree_size } => {
                Error::OutOfRange { what: "entry", value: index, limit: tree_size }
            }
            other => Error::Proof(other.to_string()),
        }
    }

    /// Verifies the whole store from genesis, stored Merkle nodes and head record included.
    ///
    /// A store that does not hold every block is verified from what it holds: genesis, the
    /// header chain from [`Store::oldest_header`] (with its certificates), the stored frontier
    /// at the base against the certified root before it, and every block from [`Store::base`]
    /// in full; the report's `from_height` and `headers_from` say so.
    pub fn audit(
        &self,
        options: &verify::Options,
        hook: &mut dyn Hook,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Report, Failure> {
        let mut src = StoreSource::new(self);
        verify::verify(&mut src, options, hook, progress)
    }

    /// The blocks from `from` to the head, in order.
    pub fn blocks(&self, from: u64) -> impl Iterator<Item = Result<Block, Error>> + '_ {
        let end = self.height().map_or(0, |h| h + 1);
        (from..end).map(move |h| self.block(h))
    }

    /// Writes the whole ledger to one file (see [`crate::export`]); a store that does not hold
    /// every block refuses with [`Error::Pruned`].
    pub fn export(
        &self,
        path: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<crate::export::Summary, Error> {
        crate::export::write(self, path, progress)
    }
}

/// The height or index after a key's one-byte prefix.
fn key_number(k: &[u8]) -> u64 {
    k.get(1..9).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_be_bytes)
}

/// Error of the stored-node source.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The engine failed.
    #[error(transparent)]
    Backend(BackendError),
    /// A node that must exist is not stored (or is not 32 bytes).
    #[error("Merkle node at level {level}, index {index} is missing or malformed")]
    Missing {
        /// Level.
        level: u8,
        /// Index.
        index: u64,
    },
}

/// Stored Merkle nodes, through the store's cache of upper levels.
struct Nodes<'a> {
    backend: &'a dyn Backend,
    cache: &'a RwLock<HashMap<(u8, u64), Hash>>,
}

/// The stored nodes and those a block about to be stored completes (leaves included).
struct Pending<'a> {
    stored: Nodes<'a>,
    fresh: HashMap<(u8, u64), Hash>,
}

impl NodeSource for Pending<'_> {
    type Error = NodeError;
    fn node(&self, level: u8, index: u64) -> Result<Hash, NodeError> {
        match self.fresh.get(&(level, index)) {
            Some(h) => Ok(*h),
            None => self.stored.node(level, index),
        }
    }
}

impl NodeSource for Nodes<'_> {
    type Error = NodeError;
    fn node(&self, level: u8, index: u64) -> Result<Hash, NodeError> {
        if level == 0 {
            if let Some(e) = self.backend.get(&entry_key(index)).map_err(NodeError::Backend)? {
                return Ok(Blake3::leaf(&e));
            }
            // A frontier leaf whose entry is pruned or was never held.
            let v = self.backend.get(&node_key(0, index)).map_err(NodeError::Backend)?;
            return v
                .and_then(|v| <Hash>::try_from(v.as_slice()).ok())
                .ok_or(NodeError::Missing { level, index });
        }
        let cached = level >= CACHED_LEVEL;
        if cached {
            if let Some(h) = self.cache.read().ok().and_then(|c| c.get(&(level, index)).copied()) {
                return Ok(h);
            }
        }
        let v = self.backend.get(&node_key(level, index)).map_err(NodeError::Backend)?;
        let h = v
            .and_then(|v| <Hash>::try_from(v.as_slice()).ok())
            .ok_or(NodeError::Missing { level, index })?;
        if cached {
            if let Ok(mut c) = self.cache.write() {
                if c.len() >= UPPER_NODES_CAP {
                    c.clear();
                }
                c.insert((level, index), h);
            }
        }
        Ok(h)
    }
}

/// Reads a store block by block for the audit, and checks its derived data.
struct StoreSource<'a> {
    store: &'a Store,
    /// Next height to read in full.
    next: u64,
    first_entry: u64,
    /// Next height to read as a header only, and the end of those.
    next_header: u64,
    headers_end: u64,
    head: Option<HeadRecord>,
    head_error: Option<Failure>,
}

impl<'a> StoreSource<'a> {
    fn new(store: &'a Store) -> Self {
        let (head, head_error) = match store.backend.get(HEAD_KEY) {
            Ok(Some(raw)) => match HeadRecord::decode(&raw) {
                Ok(h) => (Some(h), None),
                Err(e) => (None, Some(Failure::block(0, "meta/head", e.to_string()))),
            },
            Ok(None) => {
                (None, Some(Failure::block(0, "meta/head", "no head record: the store is empty")))
            }
            Err(e) => (None, Some(Failure::block(0, "meta/head", e.to_string()))),
        };
        let (next_header, headers_end) = store.base.map_or((1, 1), |b| (b.oldest_header, b.height));
        Self { store, next: 0, first_entry: 0, next_header, headers_end, head, head_error }
    }
}

impl BlockSource for StoreSource<'_> {
    fn next_block(&mut self) -> Option<Result<Block, Failure>> {
        if let Some(f) = self.head_error.take() {
            return Some(Err(f));
        }
        let head = self.head?;
        if self.next > head.height {
            return None;
        }
        let height = self.next;
        // After genesis, the full blocks start at the base.
        self.next = if height == 0 { self.store.base().max(1) } else { height + 1 };
        let result = (|| {
            let (header, certificate) = self.store.read_head(height)?;
            let entries = self.store.read_entries(height, self.first_entry, header.tree_size)?;
            self.first_entry = if height == 0 {
                self.store.entries_from().max(header.tree_size)
            } else {
                header.tree_size
            };
            Ok(Block { header, entries, certificate })
        })();
        Some(result.map_err(|e| match e {
            Error::Damaged(f) => f,
            other => Failure::block(height, "store", other.to_string()),
        }))
    }

    fn next_header(&mut self) -> Option<Result<(Header, surplus_ledger::Certificate), Failure>> {
        if self.next_header >= self.headers_end {
            return None;
        }
        let height = self.next_header;
        self.next_header += 1;
        Some(self.store.read_head(height).map_err(|e| match e {
            Error::Damaged(f) => f,
            other => Failure::block(height, "store", other.to_string()),
        }))
    }

    fn set_change(&mut self, header: &Header) -> Result<Option<SetChange>, Failure> {
        let height = header.height;
        match self.store.backend.get(&set_key(height)) {
            Ok(None) => Ok(None),
            Ok(Some(v)) => SetChange::decode(&v)
                .map(Some)
                .map_err(|e| Failure::block(height, "validator_set", e.to_string())),
            Err(e) => Err(Failure::block(height, "store", e.to_string())),
        }
    }

    fn set_changes_below(&mut self, height: u64) -> Result<Vec<SetChange>, Failure> {
        let mut all = self.store.set_changes().map_err(|e| match e {
            Error::Damaged(f) => f,
            other => Failure::block(height, "store", other.to_string()),
        })?;
        all.retain(|c| c.height() < height);
        Ok(all)
    }

    fn frontier_at(&mut self, header: &Header) -> Result<Frontier, Failure> {
        Frontier::from_source(&self.store.nodes(), header.tree_size)
            .map_err(|e| Failure::block(header.height, "merkle", e.to_string()))
    }

    fn len_hint(&self) -> Option<u64> {
        let skipped = self.store.base.map_or(0, |b| b.oldest_header - 1);
        self.head.map(|h| h.height + 1 - skipped)
    }

    fn check_derived(&mut self, block: &Block, advance: &Advance) -> Result<(), Failure> {
        let height = block.header.height;
        // The set-change record: there exactly when the block has a validator-set entry, and
        // naming that entry.
        let recorded = self.set_change(&block.header)?;
        match (&advance.validators, recorded) {
            (None, None) => {}
            (Some((i, _)), Some(rec))
                if rec.entry == block.entries[*i]
                    && rec.header == block.header
                    && rec.certificate == block.certificate =>
            {
                rec.check(Some(block.header.tree_size - block.entries.len() as u64))?;
            }
            (Some(_), _) => {
                return Err(Failure::block(
                    height,
                    "validator_set",
                    "the block's validator-set entry has no matching set-change record",
                ))
            }
            (None, Some(_)) => {
                return Err(Failure::block(
                    height,
                    "validator_set",
                    "a set-change record for a block without a validator-set entry",
                ))
            }
        }
        // A block completes a contiguous run of nodes on each level: read each run with one
        // range scan rather than one lookup per node.
        let mut levels: Vec<Vec<(u64, Hash)>> = Vec::new();
        // Level 0 is not stored (the audit hashed the entries themselves); genesis completed
        // nodes that a pruned store no longer keeps.
        for (level, index, hash) in
            advance.nodes.iter().filter(|n| n.0 > 0 && self.store.node_held(n.0, n.1))
        {
            let l = usize::from(*level);
            if levels.len() <= l {
                levels.resize_with(l + 1, Vec::new);
            }
            levels[l].push((*index, *hash));
        }
        for (level, run) in levels.iter().enumerate() {
            let (Some(first), Some(last)) = (run.first(), run.last()) else { continue };
            let level = level as u8;
            let fail = |index: u64, reason: String| Failure {
                height,
                entry: index
                    .checked_add(1)
                    .and_then(|i| i.checked_shl(u32::from(level)))
                    .map(|e| e - 1),
                field: format!("merkle node (level {level}, index {index})"),
                reason,
            };
            let mut stored =
                self.store.backend.range(&node_key(level, first.0), &node_key(level, last.0 + 1));
            for (index, hash) in run {
                match stored.next() {
                    Some(Ok((k, v))) if k == node_key(level, *index) => {
                        if v.as_slice() != hash.as_slice() {
                            return Err(fail(
                                *index,
                                format!(
                                    "stored {}, entries give {}",
                                    hex::encode(&v),
                                    hex::encode(hash)
                                ),
                            ));
                        }
                    }
                    Some(Err(e)) => return Err(fail(*index, e.to_string())),
                    _ => return Err(fail(*index, "missing from the store".into())),
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, state: &ChainState) -> Result<(), Failure> {
        let Some(head) = self.head else { return Ok(()) };
        let height = state.head.height;
        if head.hash != state.head_hash || head.tree_size != state.frontier.size() {
            return Err(Failure::block(
                height,
                "meta/head",
                "the head record disagrees with the verified head",
            ));
        }
        let backend = &*self.store.backend;
        let beyond = backend.get(&header_key(height + 1)).ok().flatten().is_some()
            || backend.get(&entry_key(head.tree_size)).ok().flatten().is_some();
        if beyond {
            return Err(Failure::block(
                height,
                "meta/head",
                "data beyond the head record is stored",
            ));
        }
        Ok(())
    }
}
