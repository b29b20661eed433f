//! Snapshots of the state (`docs/snapshots.md`): every item of the state, in key-hash order, cut
//! into chunks that each carry a range proof against a certified header's state root, with a
//! manifest naming the header, its certificate, the ledger's Merkle frontier and the chunks.
//!
//! A node writes one every `snapshot_every` blocks into `DATA_DIR/snapshots/<height>/`; a new
//! node fetches one from its peers (state sync) and starts from it; a node whose store starts
//! above genesis (synced or pruned) starts from its newest one instead of replaying. The format
//! is deterministic: every honest node writes the same bytes for the same height.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use surplus_contracts::root::{Item, Kind};
use surplus_contracts::{BlockMaker, State};
use surplus_ledger::encoding::{DecodeError, Reader, Writer};
use surplus_ledger::merkle::Frontier;
use surplus_ledger::{Block, Certificate, Hash, Header, SetChange, ValidatorSet};
use surplus_state::{RangeProof, Restore};

/// Domain tag that starts a manifest.
pub const MANIFEST_TAG: &[u8] = b"surplus/snapshot/v1/manifest";
/// Domain tag that starts a chunk.
pub const CHUNK_TAG: &[u8] = b"surplus/snapshot/v1/chunk";
/// A chunk is closed once its items' encodings reach this many bytes.
pub const CHUNK_TARGET_BYTES: usize = 1 << 20;
/// Largest chunk file accepted (a chunk closes at the target, and no item is near this).
pub const MAX_CHUNK_BYTES: usize = 8 << 20;
/// Largest manifest accepted.
pub const MAX_MANIFEST_BYTES: usize = 8 << 20;
/// Most chunks a manifest may list (with 72 bytes each, within the manifest limit).
pub const MAX_CHUNKS: usize = 100_000;
/// Largest natural key of an item.
const MAX_KEY: usize = 1 << 10;
/// Largest item value (the largest, an order's, holds its entry: at most 64 KiB and its framing).
const MAX_VALUE: usize = 1 << 20;
/// Name of a manifest file.
pub const MANIFEST_FILE: &str = "manifest.bin";

/// Why a snapshot, a manifest or a chunk is refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Not decodable.
    #[error("{what}: {source}")]
    Decode {
        /// What was decoded.
        what: String,
        /// Where and why.
        source: DecodeError,
    },
    /// Decodable but wrong.
    #[error("{0}")]
    Invalid(String),
    /// A chunk does not verify against the certified state root.
    #[error("chunk {index}: {reason}")]
    BadChunk {
        /// The chunk.
        index: u32,
        /// Why.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io { path: path.to_path_buf(), source }
}

/// One chunk as a manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    /// blake3 of the chunk's bytes.
    pub hash: Hash,
    /// Items in it.
    pub items: u32,
    /// Key hash of its last item.
    pub last_key: Hash,
}

/// What a snapshot holds, and how to check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The header whose state root the chunks restore.
    pub header: Header,
    /// Its commit certificate.
    pub certificate: Certificate,
    /// The ledger's Merkle frontier after that block (one hash per set bit of its tree size).
    pub frontier: Frontier,
    /// Items in the state.
    pub items: u64,
    /// The chunks, in key-hash order.
    pub chunks: Vec<ChunkInfo>,
    /// Every validator-set change below the header, in height order, with the header and
    /// certificate of its block: a node that knows only genesis follows them to the set that
    /// decides the header.
    pub set_changes: Vec<SetChange>,
}

impl Manifest {
    /// The height.
    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// `tag ‖ bytes(header ‖ certificate) ‖ u64 tree_size ‖ u32 n ‖ n hashes ‖ u64 items ‖
    /// u32 chunks ‖ (hash ‖ u32 items ‖ last key)* ‖ u32 changes ‖ bytes(set change)*`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(1024 + self.chunks.len() * 72);
        let head = Block {
            header: self.header.clone(),
            entries: Vec::new(),
            certificate: self.certificate.clone(),
        }
        .encode_head();
        w.tag(MANIFEST_TAG).bytes(&head).u64(self.frontier.size());
        w.u32(self.frontier.hashes().len() as u32);
        for h in self.frontier.hashes() {
            w.raw(h);
        }
        w.u64(self.items).u32(self.chunks.len() as u32);
        for c in &self.chunks {
            w.raw(&c.hash).u32(c.items).raw(&c.last_key);
        }
        w.u32(self.set_changes.len() as u32);
        for c in &self.set_changes {
            w.bytes(&c.encode());
        }
        w.finish()
    }

    /// Decodes [`Manifest::encode`]'s format (structure only: see [`Manifest::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let dec = |source| SnapshotError::Decode { what: "snapshot manifest".into(), source };
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(SnapshotError::Invalid(format!(
                "snapshot manifest of {} bytes exceeds {MAX_MANIFEST_BYTES}",
                bytes.len()
            )));
        }
        let mut r = Reader::new(bytes);
        expect_tag(&mut r, MANIFEST_TAG, "manifest.tag").map_err(dec)?;
        let head = r.bytes("manifest.head", 1 << 20).map_err(dec)?;
        let (header, certificate) = surplus_ledger::decode_head(head).map_err(dec)?;
        let size = r.u64("manifest.tree_size").map_err(dec)?;
        let n = r.u32("manifest.frontier_len").map_err(dec)? as usize;
        if n != size.count_ones() as usize {
            return Err(SnapshotError::Invalid(format!(
                "snapshot manifest: a frontier of tree size {size} has {} hashes, not {n}",
                size.count_ones()
            )));
        }
        let mut hashes = Vec::with_capacity(n);
        for _ in 0..n {
            hashes.push(r.array::<32>("manifest.frontier").map_err(dec)?);
        }
        let frontier = Frontier::from_parts(size, hashes).map_err(SnapshotError::Invalid)?;
        let items = r.u64("manifest.items").map_err(dec)?;
        let count = r.u32("manifest.chunks").map_err(dec)? as usize;
        if count > MAX_CHUNKS || count.saturating_mul(68) > r.remaining() {
            return Err(SnapshotError::Invalid(format!(
                "snapshot manifest lists {count} chunks in {} bytes",
                r.remaining()
            )));
        }
        let mut chunks = Vec::with_capacity(count);
        let mut total = 0u64;
        for _ in 0..count {
            let hash = r.array::<32>("manifest.chunk.hash").map_err(dec)?;
            let n = r.u32("manifest.chunk.items").map_err(dec)?;
            let last_key = r.array::<32>("manifest.chunk.last_key").map_err(dec)?;
            total += u64::from(n);
            chunks.push(ChunkInfo { hash, items: n, last_key });
        }
        let changes = r.u32("manifest.set_changes").map_err(dec)? as usize;
        if changes > r.remaining() / 64 {
            return Err(SnapshotError::Invalid(format!(
                "snapshot manifest lists {changes} set changes in {} bytes",
                r.remaining()
            )));
        }
        let mut set_changes = Vec::with_capacity(changes);
        for _ in 0..changes {
            let bytes = r.bytes("manifest.set_change", 1 << 20).map_err(dec)?;
            set_changes.push(SetChange::decode(bytes).map_err(dec)?);
        }
        r.finish().map_err(dec)?;
        if total != items {
            return Err(SnapshotError::Invalid(format!(
                "snapshot manifest: its chunks hold {total} items, it says {items}"
            )));
        }
        Ok(Manifest { header, certificate, frontier, items, chunks, set_changes })
    }

    /// blake3 of the encoding: peers that hold the same snapshot give the same hash.
    pub fn hash(&self) -> Hash {
        *blake3::hash(&self.encode()).as_bytes()
    }

    /// Checks what the chunks cannot: the header is of `chain_id`, above genesis, decided by a
    /// quorum of the set in force at its height (its certificate), which the set changes lead
    /// to from `genesis` (the genesis validators, each change decided by the set before it), and
    /// the frontier gives its Merkle root.
    pub fn verify(&self, chain_id: &str, genesis: &ValidatorSet) -> Result<(), SnapshotError> {
        let h = &self.header;
        if self.set_changes.last().is_some_and(|c| c.height() >= h.height) {
            return Err(SnapshotError::Invalid(format!(
                "snapshot of height {} lists a set change at or above it",
                h.height
            )));
        }
        let sets = surplus_ledger::follow_set_changes(chain_id, genesis, &self.set_changes)
            .map_err(|e| SnapshotError::Invalid(format!("snapshot set changes: {e}")))?;
        let validators = sets.values().next_back().unwrap_or(genesis);
        if h.chain_id != chain_id {
            return Err(SnapshotError::Invalid(format!(
                "snapshot of chain `{}`, this node follows `{chain_id}`",
                h.chain_id
            )));
        }
        if h.height == 0 {
            return Err(SnapshotError::Invalid("snapshot of the genesis block".into()));
        }
        self.certificate.verify(chain_id, h.height, &h.hash(), validators).map_err(|e| {
            SnapshotError::Invalid(format!("snapshot header {}: certificate: {e}", h.height))
        })?;
        if self.frontier.size() != h.tree_size {
            return Err(SnapshotError::Invalid(format!(
                "snapshot frontier covers {} entries, header {} says {}",
                self.frontier.size(),
                h.height,
                h.tree_size
            )));
        }
        if self.frontier.root::<surplus_ledger::Blake3>() != h.merkle_root {
            return Err(SnapshotError::Invalid(format!(
                "snapshot frontier does not give header {}'s Merkle root",
                h.height
            )));
        }
        Ok(())
    }
}

fn expect_tag(r: &mut Reader<'_>, tag: &[u8], field: &'static str) -> Result<(), DecodeError> {
    let at = r.position();
    let got = r.short_bytes(field)?;
    if got != tag {
        return Err(r.invalid_at(field, at, format!("expected {}", String::from_utf8_lossy(tag))));
    }
    Ok(())
}

/// One chunk: the items of a key-hash range, with the range proof of the last one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Height of the snapshot.
    pub height: u64,
    /// Position in the manifest.
    pub index: u32,
    /// The items, in key-hash order.
    pub items: Vec<Item>,
    /// The range proof of the last item's key.
    pub proof: RangeProof,
}

impl Chunk {
    /// `tag ‖ u64 height ‖ u32 index ‖ u32 n ‖ (u8 kind ‖ bytes key ‖ bytes value)* ‖
    /// bytes proof`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(CHUNK_TARGET_BYTES + 4096);
        w.tag(CHUNK_TAG).u64(self.height).u32(self.index).u32(self.items.len() as u32);
        for it in &self.items {
            w.u8(it.kind as u8).bytes(&it.key).bytes(&it.value);
        }
        w.bytes(&self.proof.encode());
        w.finish()
    }

    /// Decodes [`Chunk::encode`]'s format.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let dec = |source| SnapshotError::Decode { what: "snapshot chunk".into(), source };
        if bytes.len() > MAX_CHUNK_BYTES {
            return Err(SnapshotError::Invalid(format!(
                "snapshot chunk of {} bytes exceeds {MAX_CHUNK_BYTES}",
                bytes.len()
            )));
        }
        let mut r = Reader::new(bytes);
        expect_tag(&mut r, CHUNK_TAG, "chunk.tag").map_err(dec)?;
        let height = r.u64("chunk.height").map_err(dec)?;
        let index = r.u32("chunk.index").map_err(dec)?;
        let n = r.u32("chunk.items").map_err(dec)? as usize;
        if n.saturating_mul(9) > r.remaining() {
            return Err(SnapshotError::Invalid(format!(
                "snapshot chunk says {n} items in {} bytes",
                r.remaining()
            )));
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let at = r.position();
            let k = r.u8("chunk.item.kind").map_err(dec)?;
            let kind = Kind::from_u8(k).ok_or_else(|| {
                dec(r.invalid_at("chunk.item.kind", at, format!("unknown kind {k}")))
            })?;
            let key = r.bytes("chunk.item.key", MAX_KEY).map_err(dec)?.to_vec();
            let value = r.bytes("chunk.item.value", MAX_VALUE).map_err(dec)?.to_vec();
            items.push(Item { kind, key, value });
        }
        let proof = r.bytes("chunk.proof", 256 * 32 + 64).map_err(dec)?;
        let proof = RangeProof::decode(proof)
            .map_err(|e| SnapshotError::Invalid(format!("snapshot chunk proof: {e}")))?;
        r.finish().map_err(dec)?;
        Ok(Chunk { height, index, items, proof })
    }
}

/// Where [`build`] hands each encoded chunk, with its index.
pub type ChunkSink<'a> = dyn FnMut(u32, &[u8]) -> Result<(), SnapshotError> + 'a;

/// Items a snapshot holds in memory at a time, about (some 200 bytes each): the state is taken
/// in parts by the first two bytes of the items' key hashes, each part read from the state in
/// one walk that encodes only its own items.
pub const ITEMS_PER_PART: usize = 1 << 18;

/// Cuts the state into chunks (deterministically) and hands each, encoded, to `sink`; returns
/// the manifest. The state must be the state after `header`.
pub fn build(
    state: &State,
    header: &Header,
    certificate: &Certificate,
    frontier: &Frontier,
    set_changes: Vec<SetChange>,
    sink: &mut ChunkSink<'_>,
) -> Result<Manifest, SnapshotError> {
    build_in_parts(state, header, certificate, frontier, set_changes, ITEMS_PER_PART, sink)
}

/// [`build`], holding about `per_part` items at a time. The chunks are the same whatever the
/// parts: every item in key-hash order, cut greedily at [`CHUNK_TARGET_BYTES`], a part's last
/// items carried into the next part's first chunk.
pub fn build_in_parts(
    state: &State,
    header: &Header,
    certificate: &Certificate,
    frontier: &Frontier,
    set_changes: Vec<SetChange>,
    per_part: usize,
    sink: &mut ChunkSink<'_>,
) -> Result<Manifest, SnapshotError> {
    let tree = state.tree();
    if tree.root() != header.state_root {
        return Err(SnapshotError::Invalid(format!(
            "the state's root {} is not header {}'s state root",
            hex::encode(tree.root()),
            header.height
        )));
    }
    // The first two bytes of each item's key hash, in the order the state gives its items (the
    // same in every walk); no value is encoded.
    let mut prefixes: Vec<u16> = Vec::new();
    state
        .items_where(|kind, key| {
            let h = surplus_contracts::root::key_hash(kind, key);
            prefixes.push(u16::from_be_bytes([h[0], h[1]]));
            false
        })
        .for_each(drop);
    let parts = prefixes.len().div_ceil(per_part.max(1)).clamp(1, 1 << 16);
    let mut chunks = Vec::new();
    let mut items_total = 0u64;
    let mut pending: Vec<(Hash, Item)> = Vec::new();
    let mut emit =
        |items: &[(Hash, Item)], chunks: &mut Vec<ChunkInfo>| -> Result<(), SnapshotError> {
            let last_key = items[items.len() - 1].0;
            let proof = tree.range_proof(&last_key).ok_or_else(|| {
                SnapshotError::Invalid(format!("no range proof for key {}", hex::encode(last_key)))
            })?;
            let index = chunks.len() as u32;
            let chunk = Chunk {
                height: header.height,
                index,
                items: items.iter().map(|(_, i)| i.clone()).collect(),
                proof,
            };
            let encoded = chunk.encode();
            sink(index, &encoded)?;
            chunks.push(ChunkInfo {
                hash: *blake3::hash(&encoded).as_bytes(),
                items: items.len() as u32,
                last_key,
            });
            Ok(())
        };
    for p in 0..parts {
        // Part p: the items whose key hash starts with two bytes in [p * 65536 / parts,
        // (p + 1) * 65536 / parts).
        let (lo, hi) = (p * 65_536 / parts, (p + 1) * 65_536 / parts);
        let mut next = prefixes.iter();
        let mut part: Vec<(Hash, Item)> = state
            .items_where(|_, _| next.next().is_some_and(|x| (lo..hi).contains(&usize::from(*x))))
            .map(|i| (i.key_hash(), i))
            .collect();
        part.sort_unstable_by_key(|a| a.0);
        items_total += part.len() as u64;
        pending.append(&mut part);
        // Whole chunks; what is left (under the target) waits for the next part's items.
        let mut start = 0usize;
        loop {
            let mut end = start;
            let mut bytes = 0usize;
            while end < pending.len() && bytes < CHUNK_TARGET_BYTES {
                bytes += pending[end].1.key.len() + pending[end].1.value.len() + 9;
                end += 1;
            }
            if bytes < CHUNK_TARGET_BYTES && p + 1 < parts {
                break;
            }
            if end == start {
                break;
            }
            emit(&pending[start..end], &mut chunks)?;
            start = end;
        }
        pending.drain(..start);
    }
    Ok(Manifest {
        header: header.clone(),
        certificate: certificate.clone(),
        frontier: frontier.clone(),
        items: items_total,
        chunks,
        set_changes,
    })
}

/// Rebuilds the state from a manifest's chunks, checking each against the certified state root
/// as it arrives (in order).
pub struct Restorer {
    manifest: Manifest,
    restore: Restore,
    items: Vec<Item>,
    next: usize,
}

impl Restorer {
    /// Starts restoring the snapshot `manifest` describes (checked by [`Manifest::verify`]).
    pub fn new(manifest: Manifest) -> Self {
        let restore = Restore::new(manifest.header.state_root);
        let items = Vec::with_capacity(manifest.items.min(1 << 24) as usize);
        Restorer { manifest, restore, items, next: 0 }
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Index of the next chunk wanted, or `None` once all are in.
    pub fn next(&self) -> Option<u32> {
        (self.next < self.manifest.chunks.len()).then_some(self.next as u32)
    }

    /// Adds chunk `index` (the next one): refused, leaving the restore unchanged, unless its
    /// bytes hash as the manifest lists, it is of this height and index, and its items with its
    /// range proof give the certified state root.
    pub fn add(&mut self, index: u32, bytes: &[u8]) -> Result<(), SnapshotError> {
        let bad = |reason: String| SnapshotError::BadChunk { index, reason };
        if self.next() != Some(index) {
            return Err(bad(format!("expected chunk {:?} next", self.next())));
        }
        let info = &self.manifest.chunks[index as usize];
        if *blake3::hash(bytes).as_bytes() != info.hash {
            return Err(bad("its bytes do not hash as the manifest lists".into()));
        }
        let chunk = Chunk::decode(bytes).map_err(|e| bad(e.to_string()))?;
        if chunk.height != self.manifest.height() || chunk.index != index {
            return Err(bad(format!(
                "it is chunk {} of height {}, expected chunk {index} of {}",
                chunk.index,
                chunk.height,
                self.manifest.height()
            )));
        }
        if chunk.items.len() != info.items as usize {
            return Err(bad(format!(
                "it holds {} items, the manifest says {}",
                chunk.items.len(),
                info.items
            )));
        }
        let leaves: Vec<(Hash, Hash)> =
            chunk.items.iter().map(|i| (i.key_hash(), i.value_hash())).collect();
        if leaves.last().map(|l| l.0) != Some(info.last_key) {
            return Err(bad("its last key is not the manifest's".into()));
        }
        self.restore.add_chunk(&leaves, &chunk.proof).map_err(|e| bad(e.to_string()))?;
        self.items.extend(chunk.items);
        self.next += 1;
        Ok(())
    }

    /// The restored state and a block maker that goes on after the snapshot's header.
    pub fn finish(self) -> Result<(Manifest, BlockMaker), SnapshotError> {
        let tree = self.restore.finish().map_err(|e| SnapshotError::Invalid(e.to_string()))?;
        let state = State::from_items(self.items)
            .map_err(|e| SnapshotError::Invalid(format!("snapshot state: {e}")))?;
        if state.tree().root() != tree.root() {
            return Err(SnapshotError::Invalid(
                "the snapshot's items do not rebuild the certified state".into(),
            ));
        }
        let maker =
            BlockMaker::resume(state, self.manifest.header.clone(), self.manifest.frontier.clone())
                .map_err(|e| SnapshotError::Invalid(format!("snapshot state: {e}")))?;
        Ok((self.manifest, maker))
    }
}

/// The snapshots directory of a data dir.
pub fn dir_of(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

fn height_dir(root: &Path, height: u64) -> PathBuf {
    root.join(format!("{height:020}"))
}

fn chunk_file(index: u32) -> String {
    format!("chunk-{index:06}.bin")
}

/// Writes snapshot files into a temporary directory, then renames it into place: a crash
/// leaves either no snapshot of that height or a whole one.
pub struct Writing {
    root: PathBuf,
    tmp: PathBuf,
}

impl Writing {
    /// Starts writing the snapshot of `height` under `root`.
    pub fn start(root: &Path, height: u64) -> Result<Self, SnapshotError> {
        let tmp = root.join(format!(".tmp-{height:020}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(Writing { root: root.to_path_buf(), tmp })
    }

    /// Writes chunk `index`.
    pub fn chunk(&self, index: u32, bytes: &[u8]) -> Result<(), SnapshotError> {
        write_synced(&self.tmp.join(chunk_file(index)), bytes)
    }

    /// Writes the manifest and moves the snapshot into place; returns its directory.
    pub fn finish(self, manifest: &Manifest) -> Result<PathBuf, SnapshotError> {
        write_synced(&self.tmp.join(MANIFEST_FILE), &manifest.encode())?;
        sync_dir(&self.tmp)?;
        let dest = height_dir(&self.root, manifest.height());
        if dest.exists() {
            fs::remove_dir_all(&dest).map_err(io(&dest))?;
        }
        fs::rename(&self.tmp, &dest).map_err(io(&dest))?;
        sync_dir(&self.root)?;
        Ok(dest)
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let mut f = fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Writes the snapshot of `state` (the state after `header`) under `root`; returns the
/// manifest.
pub fn write(
    root: &Path,
    state: &State,
    header: &Header,
    certificate: &Certificate,
    frontier: &Frontier,
    set_changes: Vec<SetChange>,
) -> Result<Manifest, SnapshotError> {
    let w = Writing::start(root, header.height)?;
    let manifest =
        build(state, header, certificate, frontier, set_changes, &mut |i, b| w.chunk(i, b))?;
    w.finish(&manifest)?;
    Ok(manifest)
}

/// The heights of the whole snapshots under `root`, lowest first (leftover temporary
/// directories of an interrupted write are not listed).
pub fn heights(root: &Path) -> Vec<u64> {
    let Ok(dir) = fs::read_dir(root) else { return Vec::new() };
    let mut out: Vec<u64> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let h = name.parse::<u64>().ok().filter(|_| name.len() == 20)?;
            e.path().join(MANIFEST_FILE).is_file().then_some(h)
        })
        .collect();
    out.sort_unstable();
    out
}

/// Removes the snapshots below height `keep_from` except the newest `keep` (at least one is
/// kept), and leftover temporary directories; returns the heights removed. A node with
/// retention passes its base snapshot as `keep_from` (every newer snapshot may become a later
/// base); an archive node `u64::MAX`.
pub fn prune(root: &Path, keep: usize, keep_from: u64) -> Result<Vec<u64>, SnapshotError> {
    if let Ok(dir) = fs::read_dir(root) {
        for e in dir.filter_map(|e| e.ok()) {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                let p = e.path();
                fs::remove_dir_all(&p).map_err(io(&p))?;
            }
        }
    }
    let hs = heights(root);
    let drop: Vec<u64> = hs[..hs.len().saturating_sub(keep.max(1))]
        .iter()
        .copied()
        .filter(|h| *h < keep_from)
        .collect();
    for h in &drop {
        let p = height_dir(root, *h);
        fs::remove_dir_all(&p).map_err(io(&p))?;
    }
    Ok(drop)
}

/// The manifest bytes of the snapshot of `height` under `root`.
pub fn read_manifest(root: &Path, height: u64) -> Result<Vec<u8>, SnapshotError> {
    let p = height_dir(root, height).join(MANIFEST_FILE);
    fs::read(&p).map_err(io(&p))
}

/// The bytes of chunk `index` of the snapshot of `height` under `root`, `None` if absent.
pub fn read_chunk(root: &Path, height: u64, index: u32) -> Option<Vec<u8>> {
    if index as usize >= MAX_CHUNKS {
        return None;
    }
    fs::read(height_dir(root, height).join(chunk_file(index))).ok()
}

/// Loads the snapshot of `height` under `root`, checking every chunk against the manifest's
/// certified state root (and the manifest against the `genesis` validators).
pub fn load(
    root: &Path,
    height: u64,
    chain_id: &str,
    genesis: &ValidatorSet,
) -> Result<(Manifest, BlockMaker), SnapshotError> {
    let manifest = Manifest::decode(&read_manifest(root, height)?)?;
    if manifest.height() != height {
        return Err(SnapshotError::Invalid(format!(
            "the snapshot in {} is of height {}",
            height_dir(root, height).display(),
            manifest.height()
        )));
    }
    manifest.verify(chain_id, genesis)?;
    let mut r = Restorer::new(manifest);
    while let Some(i) = r.next() {
        let p = height_dir(root, height).join(chunk_file(i));
        let bytes = fs::read(&p).map_err(io(&p))?;
        r.add(i, &bytes)?;
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use surplus_contracts::testutil as t;
    use surplus_ledger::PublicKey;

    /// Genesis validators, and the maker after a certified block on a state with 30,000 extra
    /// accounts (several chunks), and that block.
    fn sample() -> (ValidatorSet, BlockMaker, Block) {
        let (g, mut maker) = BlockMaker::genesis(t::CHAIN, &t::genesis(100, 1000), t::T0).unwrap();
        let accounts = (0..30_000u64).map(|i| {
            let mut k = [7u8; 32];
            k[..8].copy_from_slice(&i.to_be_bytes());
            (PublicKey(k), i)
        });
        maker.state.populate(accounts, []);
        let proposer = surplus_ledger::testutil::key("validator", 0).public();
        let entries = [
            t::offer(&t::provider(0), 5, 20, 100, 1, t::T0),
            t::bid(&t::buyer(0), 2, 10, 30, 1, t::T0),
        ];
        let (b, _) = maker.next(&entries, t::T0, proposer).unwrap();
        (surplus_ledger::genesis_validators(&g).unwrap(), maker, t::certify(b))
    }

    fn written() -> (tempfile::TempDir, ValidatorSet, BlockMaker, Block, Manifest) {
        let (vs, maker, b) = sample();
        let dir = tempfile::tempdir().unwrap();
        let m = write(
            dir.path(),
            &maker.state,
            &b.header,
            &b.certificate,
            maker.frontier(),
            Vec::new(),
        )
        .unwrap();
        (dir, vs, maker, b, m)
    }

    #[test]
    fn a_snapshot_loads_back_to_the_same_state_and_is_deterministic() {
        let (dir, vs, maker, b, m) = written();
        assert!(m.chunks.len() >= 3, "{} chunks", m.chunks.len());
        assert_eq!(m.items, maker.state.items().count() as u64);
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        let (m2, loaded) = load(dir.path(), 1, t::CHAIN, &vs).unwrap();
        assert_eq!(m2, m);
        assert!(loaded.state == maker.state);
        assert_eq!(loaded.prev(), &b.header);
        // Every chunk but the last reaches the target; the same state gives the same bytes.
        for (i, c) in m.chunks.iter().enumerate() {
            let bytes = read_chunk(dir.path(), 1, i as u32).unwrap();
            assert_eq!(*blake3::hash(&bytes).as_bytes(), c.hash);
            if i + 1 < m.chunks.len() {
                assert!(bytes.len() >= CHUNK_TARGET_BYTES && bytes.len() < 2 * CHUNK_TARGET_BYTES);
            }
        }
        let again = tempfile::tempdir().unwrap();
        let m3 = write(
            again.path(),
            &maker.state,
            &b.header,
            &b.certificate,
            maker.frontier(),
            Vec::new(),
        )
        .unwrap();
        assert_eq!(m3.hash(), m.hash());
        // The next block is the same from the loaded maker.
        let proposer = surplus_ledger::testutil::key("validator", 1).public();
        let (mut a, mut c) = (maker.clone(), loaded);
        let next = t::T0 + 3_600_000;
        assert_eq!(a.next(&[], next, proposer).unwrap().0, c.next(&[], next, proposer).unwrap().0);
    }

    /// However many parts the state is read in, the chunks and the manifest are the same.
    #[test]
    fn a_snapshot_taken_in_parts_is_the_same_snapshot() {
        let (_, maker, b) = sample();
        let build_with = |per_part: usize| {
            let mut chunks: Vec<Vec<u8>> = Vec::new();
            let m = build_in_parts(
                &maker.state,
                &b.header,
                &b.certificate,
                maker.frontier(),
                Vec::new(),
                per_part,
                &mut |i, bytes| {
                    assert_eq!(i as usize, chunks.len());
                    chunks.push(bytes.to_vec());
                    Ok(())
                },
            )
            .unwrap();
            (m, chunks)
        };
        let (whole, whole_chunks) = build_with(usize::MAX);
        assert!(whole_chunks.len() >= 3);
        assert_eq!(whole.items, maker.state.items().count() as u64);
        for per_part in [1_000, 4_096, 29_999] {
            let (m, chunks) = build_with(per_part);
            assert_eq!(m, whole, "{per_part} items a part");
            assert!(chunks == whole_chunks, "{per_part} items a part");
        }
    }

    #[test]
    fn chunks_out_of_order_damaged_or_rehashed_are_refused() {
        let (dir, vs, _, _, m) = written();
        let chunk = |i: u32| read_chunk(dir.path(), 1, i).unwrap();
        m.verify(t::CHAIN, &vs).unwrap();

        let mut r = Restorer::new(m.clone());
        let e = r.add(1, &chunk(1)).unwrap_err().to_string();
        assert!(e.contains("expected chunk Some(0)"), "{e}");
        let mut bad = chunk(0);
        bad[200] ^= 1;
        let e = r.add(0, &bad).unwrap_err().to_string();
        assert!(e.contains("do not hash as the manifest lists"), "{e}");
        // The same chunk with the manifest rehashed to match: the proof check refuses it.
        let mut m2 = m.clone();
        m2.chunks[0].hash = *blake3::hash(&bad).as_bytes();
        let mut r2 = Restorer::new(m2);
        let e = r2.add(0, &bad).unwrap_err().to_string();
        assert!(e.starts_with("chunk 0:"), "{e}");
        // A chunk of the right position but another index inside: refused.
        let e = r.add(0, &chunk(1)).unwrap_err().to_string();
        assert!(e.contains("chunk 0"), "{e}");
        // The honest chunks go in, in order, after the refusals.
        for i in 0..m.chunks.len() as u32 {
            r.add(i, &chunk(i)).unwrap();
        }
        assert_eq!(r.next(), None);
        r.finish().unwrap();

        // Stopping early is refused at the end.
        let mut r = Restorer::new(m.clone());
        r.add(0, &chunk(0)).unwrap();
        assert!(r.finish().is_err());
    }

    #[test]
    fn a_manifest_follows_the_set_changes_below_it_from_genesis() {
        use surplus_ledger::merkle::InclusionProof;
        use surplus_ledger::testutil::{certificate, key};
        use surplus_ledger::{Blake3, Entry, EntryKind};
        let (_dir, vs, _maker, b, m) = written();
        let old: Vec<_> = (0..4).map(|i| key("validator", i)).collect();
        let new: Vec<_> = [1u64, 2, 4, 5].iter().map(|i| key("validator", *i)).collect();
        let set =
            ValidatorSet::weighted(new.iter().map(|k| k.public()).collect(), vec![1, 1, 1, 3])
                .unwrap();
        // Block 2 of a ledger whose only entry is the change (proposed by validator 1, the
        // genesis set's proposer of height 2), decided by the genesis set.
        let entry = Entry::system(EntryKind::VALIDATOR_SET, set.encode_weighted());
        let mut tree = Frontier::new();
        tree.push::<Blake3>(entry.leaf_hash(), &mut Vec::new());
        let header = Header {
            height: 2,
            tree_size: 1,
            merkle_root: tree.root::<Blake3>(),
            proposer: old[1].public(),
            ..b.header.clone()
        };
        let change = SetChange {
            certificate: certificate(t::CHAIN, 2, 0, &header.hash(), &old, &[0, 1, 2]),
            header,
            entry,
            proof: InclusionProof { index: 0, tree_size: 1, path: Vec::new() },
        };
        let mut m = m;
        m.header.height = 5;
        m.set_changes = vec![change];
        // The snapshot's block decided by the genesis set, which no longer decides height 5.
        m.certificate = certificate(t::CHAIN, 5, 0, &m.header.hash(), &old, &[0, 1, 2, 3]);
        let e = m.verify(t::CHAIN, &vs).unwrap_err().to_string();
        assert!(e.contains("certificate"), "{e}");
        // By the new set: power 5 of 6.
        m.certificate = certificate(t::CHAIN, 5, 0, &m.header.hash(), &new, &[1, 2, 3]);
        m.verify(t::CHAIN, &vs).unwrap();
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        // A change its set did not decide, or one not below the snapshot, is refused.
        let mut forged = m.clone();
        forged.set_changes[0].certificate.signatures.truncate(2);
        let e = forged.verify(t::CHAIN, &vs).unwrap_err().to_string();
        assert!(e.contains("set changes"), "{e}");
        let mut late = m.clone();
        late.header.height = 2;
        let e = late.verify(t::CHAIN, &vs).unwrap_err().to_string();
        assert!(e.contains("at or above"), "{e}");
    }

    #[test]
    fn a_manifest_of_another_chain_or_without_a_quorum_is_refused() {
        let (_dir, vs, _, _, m) = written();
        let e = m.verify("other-chain", &vs).unwrap_err().to_string();
        assert!(e.contains("other-chain"), "{e}");
        let mut weak = m.clone();
        weak.certificate.signatures.truncate(2);
        let e = weak.verify(t::CHAIN, &vs).unwrap_err().to_string();
        assert!(e.contains("certificate"), "{e}");
        let mut moved = m.clone();
        moved.header.timestamp_ms += 1;
        assert!(moved.verify(t::CHAIN, &vs).is_err(), "the certificate no longer decides it");
        let mut short = m.clone();
        short.frontier = Frontier::new();
        let e = short.verify(t::CHAIN, &vs).unwrap_err().to_string();
        assert!(e.contains("frontier"), "{e}");
        // Bytes: truncated, trailing, counts that do not add up.
        let bytes = m.encode();
        assert!(Manifest::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Manifest::decode(&longer).is_err());
        let mut lie = m.clone();
        lie.items += 1;
        assert!(Manifest::decode(&lie.encode()).unwrap_err().to_string().contains("items"));
        assert!(Chunk::decode(&[0xff; 10]).is_err());
    }

    #[test]
    fn old_snapshots_and_leftovers_are_removed() {
        let (vs, maker, b) = sample();
        let dir = tempfile::tempdir().unwrap();
        for h in [5u64, 10, 15, 20] {
            let mut header = b.header.clone();
            header.height = h;
            let w = Writing::start(dir.path(), h).unwrap();
            w.finish(&Manifest {
                header,
                certificate: b.certificate.clone(),
                frontier: maker.frontier().clone(),
                items: 0,
                chunks: Vec::new(),
                set_changes: Vec::new(),
            })
            .unwrap();
        }
        std::fs::create_dir_all(dir.path().join(".tmp-00000000000000000025")).unwrap();
        assert_eq!(heights(dir.path()), vec![5, 10, 15, 20]);
        assert_eq!(prune(dir.path(), 1, 10).unwrap(), vec![5]);
        assert_eq!(heights(dir.path()), vec![10, 15, 20]);
        assert_eq!(prune(dir.path(), 2, u64::MAX).unwrap(), vec![10]);
        assert_eq!(heights(dir.path()), vec![15, 20]);
        assert!(!dir.path().join(".tmp-00000000000000000025").exists());
        // A header moved to another height is no longer the certified one.
        let e = load(dir.path(), 15, t::CHAIN, &vs).unwrap_err().to_string();
        assert!(e.contains("snapshot header 15: certificate"), "{e}");
    }
}
