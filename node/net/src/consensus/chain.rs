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
use surplus_contracts::{Applied, State};
use surplus_ledger::{Auth, Block, Certificate, Checks, CommitSig, Entry, Header};
use surplus_store::{Config as StoreConfig, Store};

use super::context::{Address, ValidatorSet, ValueId};
use super::history::LeaseHistory;

/// Most checked blocks (each with a state copy) kept for the height in progress.
const MAX_CHECKED: usize = 16;

/// How far ahead of our clock a proposed block time may be.
pub const MAX_CLOCK_DRIFT_MS: u64 = 2_000;

/// An undecided value on disk: id, round, proposer, validity, block bytes.
pub type Undecided = (ValueId, i64, Address, bool, Vec<u8>);

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
    _db: sled::Db,
    checked: HashMap<ValueId, Checked>,
    /// Largest number of entries a block may hold.
    pub max_block_entries: usize,
    /// Largest encoded block.
    pub max_block_bytes: usize,
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
    /// values), writing the genesis block if the store is empty and replaying every block.
    pub fn open(
        dir: &Path,
        genesis: &Block,
        genesis_maker: BlockMaker,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        let checks = Checks { certificates: true, entry_signatures: false };
        let mut store =
            Store::open(&dir.join("ledger"), StoreConfig { checks }).with_context(|| {
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
        let history = LeaseHistory::open(&dir.join("history"))?;
        let mut maker = genesis_maker;
        let mut head = genesis.header.clone();
        for h in 1..=height {
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
            history.record(h, &applied.ended)?;
            head = block.header;
            progress(h, height);
        }
        let validators = ValidatorSet::new(&store_validators(&store)?)
            .map_err(|e| anyhow::anyhow!("genesis validators: {e}"))?;
        let db = sled::open(dir.join("consensus").join("values"))
            .context("cannot open the undecided-value store")?;
        let undecided = db.open_tree("undecided")?;
        let own = db.open_tree("own")?;
        Ok(Self {
            store,
            maker,
            head,
            validators,
            history,
            undecided,
            own,
            _db: db,
            checked: HashMap::new(),
            max_block_entries: 5_000,
            max_block_bytes: 4 << 20,
        })
    }

    /// The state after the head.
    pub fn state(&self) -> &State {
        &self.maker.state
    }

    /// Height of the head.
    pub fn height(&self) -> u64 {
        self.head.height
    }

    /// Builds our proposal for the next height from `user` entries.
    pub fn build(&mut self, user: &[Entry], now_ms: u64, proposer: Address) -> Result<Checked> {
        let mut maker = self.maker.clone();
        let timestamp = now_ms.max(self.head.timestamp_ms);
        let (block, applied) = maker.next(user, timestamp, proposer.0)?;
        let checked = Checked { block: Arc::new(block), maker, applied: Arc::new(applied) };
        self.cache(ValueId(checked.block.header.hash()), checked.clone());
        Ok(checked)
    }

    /// Checks a proposed block (encoded) for the next height by re-executing it.
    /// `now_ms` bounds the block time, unless `None` (a decided block: the quorum vouched).
    pub fn check(&mut self, bytes: &[u8], now_ms: Option<u64>) -> Result<Checked, Invalid> {
        // Size limits bind live proposals; a decided block was accepted by a quorum already.
        if now_ms.is_some() && bytes.len() > self.max_block_bytes.saturating_mul(2) + 65_536 {
            return Err(Invalid::Header(format!(
                "block of {} bytes exceeds the limit {}",
                bytes.len(),
                self.max_block_bytes
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
        if now_ms.is_some() && user.len() > self.max_block_entries {
            return Err(Invalid::Header(format!(
                "{} user entries exceed the limit {}",
                user.len(),
                self.max_block_entries
            )));
        }
        let mut maker = self.maker.clone();
        let (made, applied) = maker
            .next(&user, h.timestamp_ms, h.proposer)
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

    /// Keeps a checked block (with its state) until the height is decided; a stalled height
    /// cannot pile up states without bound.
    fn cache(&mut self, id: ValueId, checked: Checked) {
        if self.checked.len() >= MAX_CHECKED {
            self.checked.clear();
        }
        self.checked.insert(id, checked);
    }

    /// Persists an undecided value so that a restart can answer for it.
    pub fn store_undecided(
        &self,
        height: u64,
        round: i64,
        id: ValueId,
        proposer: Address,
        valid: bool,
        block: &[u8],
    ) -> Result<()> {
        let mut key = key_hr(height, round).to_vec();
        key.extend_from_slice(&id.0);
        let mut v = Vec::with_capacity(33 + block.len());
        v.extend_from_slice(&proposer.0 .0);
        v.push(u8::from(valid));
        v.extend_from_slice(block);
        self.undecided.insert(key, v)?;
        self.undecided.flush()?;
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
            out.push((id, round, proposer, v[32] == 1, v[33..].to_vec()));
        }
        Ok(out)
    }

    /// The block bytes of an undecided value, found by id at `height`.
    pub fn undecided_block(&self, height: u64, id: &ValueId) -> Result<Option<Vec<u8>>> {
        Ok(self.undecided_with(height, id)?.into_iter().next().map(|v| v.4))
    }

    /// Remembers the value we proposed at `height` and `round`.
    pub fn store_own(&self, height: u64, round: i64, id: ValueId) -> Result<()> {
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
        if height != self.head.height + 1 {
            bail!("decided height {height} does not follow our head {}", self.head.height);
        }
        let checked = match self.checked.get(&id) {
            Some(c) => c.clone(),
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
        self.store.append(&block).with_context(|| format!("cannot append block {height}"))?;
        self.history
            .record(height, &checked.applied.ended)
            .with_context(|| format!("cannot record the leases that ended in block {height}"))?;
        self.head = block.header.clone();
        self.maker = checked.maker.clone();
        self.checked.clear();
        self.prune(height)?;
        Ok(Checked { block: Arc::new(block), maker: checked.maker, applied: checked.applied })
    }

    fn prune(&self, height: u64) -> Result<()> {
        let end = (height + 1).to_be_bytes();
        for tree in [&self.undecided, &self.own] {
            let keys: Vec<_> = tree.range(..end.to_vec()).keys().collect::<Result<Vec<_>, _>>()?;
            for k in keys {
                tree.remove(k)?;
            }
        }
        Ok(())
    }

    /// The stored block at `height`, encoded, with its certificate.
    pub fn decided(&self, height: u64) -> Result<Option<Block>> {
        if height == 0 || height > self.head.height {
            return Ok(None);
        }
        Ok(Some(self.store.block(height)?))
    }
}

fn store_validators(store: &Store) -> Result<Vec<surplus_ledger::PublicKey>> {
    let state = store.state().context("the store has no genesis")?;
    Ok(state.validators.validators.clone())
}
