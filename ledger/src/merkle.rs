//! Merkle trees as defined by RFC 9162 (Certificate Transparency v2), section 2.1.
//!
//! Leaves are hashed as `H(0x00 || data)`, interior nodes as `H(0x01 || left || right)`, and the
//! empty tree's root is `H("")`. A tree of `n` leaves splits at the largest power of two below `n`,
//! so its left part is always a *complete subtree*: a perfect binary tree over an aligned range.
//!
//! The node `(level, index)` is the root of the complete subtree over leaves
//! `[index << level, (index + 1) << level)`; it exists in a tree of `n` leaves iff that range ends
//! at or before `n`. Such a node never changes once the tree has grown past it, so a store keeps
//! only these nodes (see [`NodeSource`]) and every other hash a proof needs is rebuilt from them in
//! `O(log n)` lookups.

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// A 32-byte digest: a leaf hash, an interior node or a tree root.
pub type Hash = [u8; 32];

/// Domain separation prefix of a leaf hash (RFC 9162, section 2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain separation prefix of an interior node hash (RFC 9162, section 2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// A hash function for the tree.
pub trait Hasher {
    /// The hash of a leaf holding `data`: `H(0x00 || data)`.
    fn leaf(data: &[u8]) -> Hash;
    /// The hash of an interior node: `H(0x01 || left || right)`.
    fn node(left: &Hash, right: &Hash) -> Hash;
    /// The root of the empty tree: `H("")`.
    fn empty() -> Hash;
}

/// BLAKE3, the hash function the ledger uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blake3;

impl Hasher for Blake3 {
    fn leaf(data: &[u8]) -> Hash {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&[LEAF_PREFIX]);
        hasher.update(data);
        *hasher.finalize().as_bytes()
    }

    fn node(left: &Hash, right: &Hash) -> Hash {
        // One contiguous 65-byte input is cheaper than three incremental updates.
        let mut input = [0u8; 65];
        input[0] = NODE_PREFIX;
        input[1..33].copy_from_slice(left);
        input[33..].copy_from_slice(right);
        *blake3::hash(&input).as_bytes()
    }

    fn empty() -> Hash {
        *blake3::hash(b"").as_bytes()
    }
}

/// SHA-256, the hash of RFC 9162's published test vectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sha256;

impl Hasher for Sha256 {
    fn leaf(data: &[u8]) -> Hash {
        sha2::Sha256::new().chain_update([LEAF_PREFIX]).chain_update(data).finalize().into()
    }

    fn node(left: &Hash, right: &Hash) -> Hash {
        sha2::Sha256::new()
            .chain_update([NODE_PREFIX])
            .chain_update(left)
            .chain_update(right)
            .finalize()
            .into()
    }

    fn empty() -> Hash {
        sha2::Sha256::digest(b"").into()
    }
}

/// Read access to the stored complete-subtree nodes of a tree.
///
/// The functions of this module only ask for nodes that exist in the tree size they are given,
/// that is `(index + 1) << level <= tree_size`, so a source may treat any other request as an
/// error.
pub trait NodeSource {
    /// Why a node could not be read.
    type Error;

    /// Root of the complete subtree at `level` covering leaves
    /// `[index << level, (index + 1) << level)`; level 0 holds the leaf hashes.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// The Merkle Tree Hash (RFC 9162, section 2.1.1) of a list of already-hashed leaves.
///
/// This is the reference definition, `O(n)`; [`Frontier`] and [`range_root`] compute the same
/// value incrementally or from stored nodes.
pub fn root<H: Hasher>(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => H::empty(),
        [leaf] => *leaf,
        _ => {
            let n = leaf_hashes.len();
            // The largest power of two strictly below n (n >= 2 here).
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            let (left, right) = leaf_hashes.split_at(k);
            H::node(&root::<H>(left), &root::<H>(right))
        }
    }
}

/// A proof that a leaf hash sits at `index` in the tree of `tree_size` leaves (RFC 9162,
/// section 2.1.3): the audit path, lowest level first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// Position of the leaf, counted from 0.
    pub index: u64,
    /// Number of leaves of the tree whose root the proof leads to.
    pub tree_size: u64,
    /// Sibling hashes from the leaf up to the root.
    pub path: Vec<Hash>,
}

/// A proof that the tree of `new_size` leaves extends the tree of `old_size` leaves (RFC 9162,
/// section 2.1.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// Number of leaves of the earlier tree.
    pub old_size: u64,
    /// Number of leaves of the later tree.
    pub new_size: u64,
    /// The proof hashes, in the order of RFC 9162's `SUBPROOF`.
    pub path: Vec<Hash>,
}

/// Why a proof or a range hash could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProveError<E> {
    /// The leaf is not in the tree.
    #[error("leaf index {index} is not below the tree size {tree_size}")]
    IndexOutOfRange {
        /// The requested leaf.
        index: u64,
        /// The size of the tree it was looked for in.
        tree_size: u64,
    },
    /// A consistency proof needs `0 < old_size <= new_size`.
    #[error("no consistency proof from size {old_size} to size {new_size}: need 0 < old <= new")]
    BadSizes {
        /// The requested earlier size.
        old_size: u64,
        /// The requested later size.
        new_size: u64,
    },
    /// The range's hash cannot be assembled from complete subtrees: `start > end`, or `start` is
    /// not a multiple of the largest power of two not above `end - start`.
    #[error("[{start}, {end}) is not a range whose hash can be built from complete subtrees")]
    BadRange {
        /// First leaf of the range.
        start: u64,
        /// One past the last leaf of the range.
        end: u64,
    },
    /// The node source failed.
    #[error("could not read a tree node")]
    Source(#[source] E),
}

/// Why a proof was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The proof claims a leaf that is not in the tree.
    #[error("leaf index {index} is not below the tree size {tree_size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        tree_size: u64,
    },
    /// The sizes of a consistency proof are not `0 < old_size <= new_size`.
    #[error("no consistency between size {old_size} and size {new_size}: need 0 < old <= new")]
    BadSizes {
        /// The claimed earlier size.
        old_size: u64,
        /// The claimed later size.
        new_size: u64,
    },
    /// The proof does not have the number of hashes its sizes call for.
    #[error("proof has {got} hashes, its sizes call for {expected}")]
    WrongLength {
        /// Number of hashes a proof for these sizes has.
        expected: usize,
        /// Number of hashes the proof has.
        got: usize,
    },
    /// The proof leads to another root than the one given.
    #[error("proof leads to root {} instead of {}", hex::encode(.computed), hex::encode(.expected))]
    RootMismatch {
        /// The root the proof was checked against.
        expected: Hash,
        /// The root the proof leads to.
        computed: Hash,
    },
}

/// Number of bits needed to write `x` (0 for 0).
fn bit_len(x: u64) -> u32 {
    u64::BITS - x.leading_zeros()
}

/// `x >> k`, and 0 once `k` shifts every bit out (plain `>>` panics in debug builds at 64).
fn shr(x: u64, k: u32) -> u64 {
    x.checked_shr(k).unwrap_or(0)
}

/// A level as the `u8` of [`NodeSource::node`]. Complete subtrees of a tree of at most
/// `u64::MAX` leaves sit below level 64, so no caller passes more than 63.
fn level_u8(level: u32) -> u8 {
    u8::try_from(level).unwrap_or(u8::MAX)
}

/// The hash of `[start, end)` folded from the complete subtrees that tile it, largest first.
///
/// The caller guarantees `start <= end` and that `start` is a multiple of the largest tile, which
/// makes every tile an aligned complete subtree. RFC 9162 nests the hash to the right
/// (`MTH(D) = node(first tile, MTH(rest))`), so the fold starts from the smallest tile.
fn fold_range<H: Hasher, E>(
    start: u64,
    end: u64,
    mut node: impl FnMut(u8, u64) -> Result<Hash, E>,
) -> Result<Hash, E> {
    let mut bits = end.saturating_sub(start);
    if bits == 0 {
        return Ok(H::empty());
    }
    let mut acc: Option<Hash> = None;
    while bits != 0 {
        let level = bits.trailing_zeros();
        // What remains of `bits` are the larger tiles, all to the left of this one.
        bits &= bits - 1;
        let tile_start = start + bits;
        let hash = node(level_u8(level), tile_start >> level)?;
        acc = Some(match acc {
            None => hash,
            Some(right) => H::node(&hash, &right),
        });
    }
    Ok(acc.unwrap_or_else(H::empty))
}

/// Where the audit path of the complete node `(level, index)` turns, in a tree of `size` leaves.
///
/// The *fork* is the highest ancestor of the node that is still a complete subtree. Below it every
/// sibling is a complete subtree; above it the path runs along the tree's right edge, where the
/// siblings are the complete subtrees tiling `[0, fork_start)` and, if the fork does not reach
/// the end of the tree, the hash of `[fork_end, size)`.
struct Walk {
    /// Levels from the node up to the fork.
    inner: u32,
    fork_start: u64,
    fork_end: u64,
}

impl Walk {
    /// The caller guarantees `(index + 1) << level <= size`.
    fn new(level: u32, index: u64, size: u64) -> Self {
        let inner = bit_len(index ^ shr(size, level)).saturating_sub(1);
        let fork_level = level + inner;
        let fork_start = shr(index, inner).checked_shl(fork_level).unwrap_or(0);
        let fork_end = fork_start.saturating_add(1u64.checked_shl(fork_level).unwrap_or(0));
        Walk { inner, fork_start, fork_end }
    }

    fn path_len(&self, size: u64) -> usize {
        self.inner as usize
            + usize::from(self.fork_end < size)
            + self.fork_start.count_ones() as usize
    }
}

/// Appends the audit path of the complete node `(level, index)` in a tree of `size` leaves, lowest
/// level first. The caller guarantees `(index + 1) << level <= size`.
fn push_path<H: Hasher, S: NodeSource>(
    src: &S,
    walk: &Walk,
    level: u32,
    index: u64,
    size: u64,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    for step in 0..walk.inner {
        out.push(src.node(level_u8(level + step), shr(index, step) ^ 1)?);
    }
    if walk.fork_end < size {
        // The fork's right sibling is not complete yet: hash what exists of it.
        out.push(fold_range::<H, _>(walk.fork_end, size, |l, i| src.node(l, i))?);
    }
    let mut left = walk.fork_start;
    while left != 0 {
        let l = left.trailing_zeros();
        out.push(src.node(level_u8(l), (left >> l) - 1)?);
        left &= left - 1;
    }
    Ok(())
}

/// Builds the inclusion proof of leaf `index` in the tree of `tree_size` leaves (RFC 9162,
/// section 2.1.3.1), in `O(log n)` node lookups.
///
/// The hasher is needed because one path entry, the right neighbour of the leaf's largest complete
/// ancestor, may be an incomplete subtree whose hash is folded from stored nodes.
pub fn prove_inclusion<H: Hasher, S: NodeSource>(
    src: &S,
    index: u64,
    tree_size: u64,
) -> Result<InclusionProof, ProveError<S::Error>> {
    if index >= tree_size {
        return Err(ProveError::IndexOutOfRange { index, tree_size });
    }
    let walk = Walk::new(0, index, tree_size);
    let mut path = Vec::with_capacity(walk.path_len(tree_size));
    push_path::<H, S>(src, &walk, 0, index, tree_size, &mut path).map_err(ProveError::Source)?;
    Ok(InclusionProof { index, tree_size, path })
}

/// Builds the consistency proof from the tree of `old_size` leaves to the tree of `new_size`
/// leaves (RFC 9162, section 2.1.4.1), in `O(log n)` node lookups.
///
/// Like the transparency-dev reference, a proof from the empty tree is refused: it would prove
/// nothing.
pub fn prove_consistency<H: Hasher, S: NodeSource>(
    src: &S,
    old_size: u64,
    new_size: u64,
) -> Result<ConsistencyProof, ProveError<S::Error>> {
    if old_size == 0 || old_size > new_size {
        return Err(ProveError::BadSizes { old_size, new_size });
    }
    if old_size == new_size {
        return Ok(ConsistencyProof { old_size, new_size, path: Vec::new() });
    }
    // The proof is the audit path, in the new tree, of the old tree's smallest (rightmost)
    // complete subtree, preceded by that subtree's own hash unless it is the whole old tree.
    let level = old_size.trailing_zeros();
    let index = (old_size - 1) >> level;
    let whole = old_size.is_power_of_two();
    let walk = Walk::new(level, index, new_size);
    let mut path = Vec::with_capacity(usize::from(!whole) + walk.path_len(new_size));
    if !whole {
        path.push(src.node(level_u8(level), index).map_err(ProveError::Source)?);
    }
    push_path::<H, S>(src, &walk, level, index, new_size, &mut path).map_err(ProveError::Source)?;
    Ok(ConsistencyProof { old_size, new_size, path })
}

/// The Merkle Tree Hash of leaves `[start, end)`, assembled from complete-subtree nodes in
/// `O(log n)` lookups.
///
/// `start` must be a multiple of the largest power of two not above `end - start`, so that the
/// range is tiled by aligned complete subtrees. That holds for every prefix `[0, n)` and for every
/// subtree of the form `start` a multiple of `bit_ceil(end - start)`. `start == end` gives the
/// empty root.
pub fn range_root<H: Hasher, S: NodeSource>(
    src: &S,
    start: u64,
    end: u64,
) -> Result<Hash, ProveError<S::Error>> {
    let Some(len) = end.checked_sub(start) else {
        return Err(ProveError::BadRange { start, end });
    };
    if len != 0 {
        let largest_tile = 1u64 << (63 - len.leading_zeros());
        if start & (largest_tile - 1) != 0 {
            return Err(ProveError::BadRange { start, end });
        }
    }
    fold_range::<H, _>(start, end, |l, i| src.node(l, i)).map_err(ProveError::Source)
}

fn check_root(computed: Hash, expected: &Hash) -> Result<(), ProofError> {
    if computed == *expected {
        Ok(())
    } else {
        Err(ProofError::RootMismatch { expected: *expected, computed })
    }
}

/// Splits the audit path of leaf `index` in a tree of `size >= 1` leaves: the first `inner`
/// entries are siblings below the point where the paths to `index` and to `size - 1` meet, on
/// either side; the remaining `border` entries are left siblings along the right edge.
fn decompose(index: u64, size: u64) -> (usize, usize) {
    let inner = bit_len(index ^ (size - 1));
    (inner as usize, shr(index, inner).count_ones() as usize)
}

/// Hashes up through siblings that sit left or right as the bits of `index` say.
fn chain_inner<H: Hasher>(mut seed: Hash, path: &[Hash], index: u64) -> Hash {
    for (step, sibling) in (0u32..).zip(path) {
        seed = if shr(index, step) & 1 == 0 {
            H::node(&seed, sibling)
        } else {
            H::node(sibling, &seed)
        };
    }
    seed
}

/// Like [`chain_inner`] but only through left siblings: the same walk in the older tree, where
/// the right siblings did not exist yet.
fn chain_inner_right<H: Hasher>(mut seed: Hash, path: &[Hash], index: u64) -> Hash {
    for (step, sibling) in (0u32..).zip(path) {
        if shr(index, step) & 1 == 1 {
            seed = H::node(sibling, &seed);
        }
    }
    seed
}

/// Hashes up the right edge, where every sibling is on the left.
fn chain_border<H: Hasher>(seed: Hash, path: &[Hash]) -> Hash {
    path.iter().fold(seed, |acc, sibling| H::node(sibling, &acc))
}

/// Checks that `proof` leads from `leaf_hash` to `root` (RFC 9162, section 2.1.3.2).
///
/// A proof has exactly as many hashes as its index and size call for (at most 64); any other
/// length is rejected before hashing. As in RFC 9162, the root does not commit to the tree size:
/// a proof can also verify under another size whose path has the same shape.
pub fn verify_inclusion<H: Hasher>(
    leaf_hash: &Hash,
    proof: &InclusionProof,
    root: &Hash,
) -> Result<(), ProofError> {
    let InclusionProof { index, tree_size, ref path } = *proof;
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    let (inner, border) = decompose(index, tree_size);
    let expected = inner + border;
    let wrong_length = ProofError::WrongLength { expected, got: path.len() };
    if path.len() != expected {
        return Err(wrong_length);
    }
    let (inner_path, border_path) = path.split_at_checked(inner).ok_or(wrong_length)?;
    let computed = chain_border::<H>(chain_inner::<H>(*leaf_hash, inner_path, index), border_path);
    check_root(computed, root)
}

/// Checks that the tree with root `new_root` extends the tree with root `old_root` (RFC 9162,
/// section 2.1.4.2).
///
/// Sizes must satisfy `0 < old_size <= new_size`; equal sizes take an empty proof and equal
/// roots. A proof has exactly as many hashes as its sizes call for (at most 65, reached only in
/// trees of more than 2^63 leaves); any other length is rejected before hashing.
pub fn verify_consistency<H: Hasher>(
    old_root: &Hash,
    new_root: &Hash,
    proof: &ConsistencyProof,
) -> Result<(), ProofError> {
    let ConsistencyProof { old_size, new_size, ref path } = *proof;
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::BadSizes { old_size, new_size });
    }
    if old_size == new_size {
        if !path.is_empty() {
            return Err(ProofError::WrongLength { expected: 0, got: path.len() });
        }
        return check_root(*old_root, new_root);
    }
    // Walk from the old tree's smallest complete subtree (level `shift`) up the new tree.
    let shift = old_size.trailing_zeros();
    let (inner, border) = decompose(old_size - 1, new_size);
    // old_size < new_size puts the meeting point above level `shift`.
    let inner = inner.saturating_sub(shift as usize);
    // When the old tree is itself complete, its root starts the walk and is not in the proof.
    let whole = old_size.is_power_of_two();
    let expected = usize::from(!whole) + inner + border;
    let wrong_length = ProofError::WrongLength { expected, got: path.len() };
    if path.len() != expected {
        return Err(wrong_length);
    }
    let (seed, rest) = if whole {
        (*old_root, path.as_slice())
    } else {
        let (first, rest) = path.split_first().ok_or(wrong_length.clone())?;
        (*first, rest)
    };
    let (inner_path, border_path) = rest.split_at_checked(inner).ok_or(wrong_length)?;
    let mask = (old_size - 1) >> shift;
    let old = chain_border::<H>(chain_inner_right::<H>(seed, inner_path, mask), border_path);
    check_root(old, old_root)?;
    let new = chain_border::<H>(chain_inner::<H>(seed, inner_path, mask), border_path);
    check_root(new, new_root)
}

/// The right edge of a growing tree: the roots of the complete subtrees of its size's binary
/// decomposition.
///
/// It holds one hash per set bit of the size, so at most 64, and gives the root and the newly
/// completed nodes of each append without reading the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    // One hash per set bit of `size`, largest subtree (leftmost) first; the levels are the bits.
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves of the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the complete subtrees, one per set bit of the size, largest (leftmost)
    /// first: with [`Frontier::size`], all a frontier is (to write it in a snapshot).
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The frontier of a tree of `size` leaves from its [`Frontier::hashes`]; refuses a number
    /// of hashes other than the number of set bits of `size`.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Frontier, String> {
        if hashes.len() != size.count_ones() as usize {
            return Err(format!(
                "a frontier of {size} leaves has {} hashes, not {}",
                size.count_ones(),
                hashes.len()
            ));
        }
        Ok(Frontier { size, hashes })
    }

    /// Appends a leaf hash and appends to `completed` every complete-subtree node it completed,
    /// leaf first: `(level, index, hash)`. The leaf itself is `(0, size_before, leaf_hash)`.
    ///
    /// A tree cannot outgrow `u64::MAX` leaves: at that size the call changes nothing and reports
    /// nothing.
    pub fn push<H: Hasher>(&mut self, leaf_hash: Hash, completed: &mut Vec<(u8, u64, Hash)>) {
        let Some(new_size) = self.size.checked_add(1) else {
            return;
        };
        let mut index = self.size;
        let mut hash = leaf_hash;
        completed.push((0, index, hash));
        // Each trailing one bit of the old size is a complete subtree just left of the new leaf
        // and of the same height as what has been merged so far.
        for level in 1..=self.size.trailing_ones() {
            let Some(left) = self.hashes.pop() else {
                break;
            };
            hash = H::node(&left, &hash);
            index >>= 1;
            completed.push((level_u8(level), index, hash));
        }
        self.hashes.push(hash);
        self.size = new_size;
    }

    /// The Merkle Tree Hash of the tree.
    pub fn root<H: Hasher>(&self) -> Hash {
        let mut subtrees = self.hashes.iter().rev();
        let Some(last) = subtrees.next() else {
            return H::empty();
        };
        subtrees.fold(*last, |acc, left| H::node(left, &acc))
    }

    /// Rebuilds the frontier of a tree of `size` leaves from stored nodes, in one lookup per set
    /// bit of `size`.
    pub fn from_source<S: NodeSource>(src: &S, size: u64) -> Result<Self, S::Error> {
        let mut hashes = Vec::with_capacity(size.count_ones() as usize);
        let mut rest = size;
        while rest != 0 {
            let level = 63 - rest.leading_zeros();
            // The subtree for this bit starts where the larger ones end: at `size` with this bit
            // and those below it cleared.
            hashes.push(src.node(level_u8(level), (size >> level) - 1)?);
            rest &= !(1u64 << level);
        }
        Ok(Frontier { size, hashes })
    }
}

/// A node that a [`MemoryTree`] does not hold: it is not a complete subtree of the tree so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no complete subtree at level {level}, index {index} in a tree of {tree_size} leaves")]
pub struct MissingNode {
    /// The requested level.
    pub level: u8,
    /// The requested index on that level.
    pub index: u64,
    /// The number of leaves in the tree.
    pub tree_size: u64,
}

/// A whole tree in memory: every complete-subtree node, level by level.
///
/// Meant for tests, tools and small trees; it stores about two hashes per leaf.
pub struct MemoryTree<H: Hasher> {
    // levels[l][i] is the node (l, i); levels[0] holds the leaf hashes.
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
    // Reused across pushes so appending does not allocate once the levels have room.
    completed: Vec<(u8, u64, Hash)>,
    hasher: PhantomData<fn() -> H>,
}

impl<H: Hasher> MemoryTree<H> {
    /// An empty tree.
    pub fn new() -> Self {
        MemoryTree {
            levels: Vec::new(),
            frontier: Frontier::new(),
            completed: Vec::new(),
            hasher: PhantomData,
        }
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf_hash: Hash) {
        self.completed.clear();
        self.frontier.push::<H>(leaf_hash, &mut self.completed);
        for &(level, _, hash) in &self.completed {
            // A node completes right after its left neighbours on the same level, so it always
            // lands at the end of its level.
            match self.levels.get_mut(usize::from(level)) {
                Some(nodes) => nodes.push(hash),
                None => self.levels.push(vec![hash]),
            }
        }
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.frontier.size()
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The Merkle Tree Hash of the tree.
    pub fn root(&self) -> Hash {
        self.frontier.root::<H>()
    }

    /// The leaf hashes, in order.
    pub fn leaves(&self) -> &[Hash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// The complete-subtree node `(level, index)`, if the tree has it.
    pub fn node(&self, level: u8, index: u64) -> Option<Hash> {
        let nodes = self.levels.get(usize::from(level))?;
        nodes.get(usize::try_from(index).ok()?).copied()
    }

    /// The frontier of the tree.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }
}

impl<H: Hasher> NodeSource for MemoryTree<H> {
    type Error = MissingNode;

    fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        MemoryTree::node(self, level, index).ok_or(MissingNode {
            level,
            index,
            tree_size: self.len(),
        })
    }
}

impl<H: Hasher> Default for MemoryTree<H> {
    fn default() -> Self {
        Self::new()
    }
}

// Written out because a derive would demand `H: Clone` / `H: Debug` of the marker type.
impl<H: Hasher> Clone for MemoryTree<H> {
    fn clone(&self) -> Self {
        MemoryTree {
            levels: self.levels.clone(),
            frontier: self.frontier.clone(),
            completed: Vec::new(),
            hasher: PhantomData,
        }
    }
}

impl<H: Hasher> fmt::Debug for MemoryTree<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTree")
            .field("len", &self.len())
            .field("root", &hex::encode(self.root()))
            .finish_non_exhaustive()
    }
}

impl<H: Hasher> Extend<Hash> for MemoryTree<H> {
    fn extend<I: IntoIterator<Item = Hash>>(&mut self, leaf_hashes: I) {
        for leaf_hash in leaf_hashes {
            self.push(leaf_hash);
        }
    }
}

impl<H: Hasher> FromIterator<Hash> for MemoryTree<H> {
    fn from_iter<I: IntoIterator<Item = Hash>>(leaf_hashes: I) -> Self {
        let mut tree = Self::new();
        tree.extend(leaf_hashes);
        tree
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    #[test]
    fn empty_roots() {
        // SHA-256 and BLAKE3 of the empty string.
        assert_eq!(
            Sha256::empty(),
            hex32("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(
            Blake3::empty(),
            hex32("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
        );
        assert_eq!(root::<Blake3>(&[]), Blake3::empty());
        assert_eq!(MemoryTree::<Blake3>::new().root(), Blake3::empty());
        // Leaves and nodes are domain-separated: a 64-byte leaf is not the node over its halves.
        let (a, b) = (Blake3::leaf(b"a"), Blake3::leaf(b"b"));
        assert_ne!(Blake3::leaf(&[a, b].concat()), Blake3::node(&a, &b));
        assert_eq!(Blake3::node(&a, &b), *blake3::hash(&[&[1u8][..], &a, &b].concat()).as_bytes());
    }

    /// A tree of any size whose leaves are all equal, so that every node of a level is the same
    /// hash; it refuses any node that is not a complete subtree of `size`.
    struct Uniform {
        levels: [Hash; 64],
        size: u64,
    }

    impl Uniform {
        fn new(size: u64) -> Self {
            let mut levels = [Sha256::leaf(b"x"); 64];
            for l in 1..64 {
                levels[l] = Sha256::node(&levels[l - 1], &levels[l - 1]);
            }
            Uniform { levels, size }
        }
    }

    impl NodeSource for Uniform {
        type Error = (u8, u64);

        fn node(&self, level: u8, index: u64) -> Result<Hash, (u8, u64)> {
            let fits = level < 64 && (u128::from(index) + 1) << level <= u128::from(self.size);
            self.levels.get(usize::from(level)).filter(|_| fits).copied().ok_or((level, index))
        }
    }

    #[test]
    fn proofs_at_the_edges_of_u64() {
        let half = 1u64 << 63;
        for size in [1, 2, 3, half - 1, half, half + 1, u64::MAX - 1, u64::MAX] {
            let src = Uniform::new(size);
            let tree_root = range_root::<Sha256, _>(&src, 0, size).unwrap();
            assert_eq!(Frontier::from_source(&src, size).unwrap().root::<Sha256>(), tree_root);
            for index in
                [0, 1, size / 2, size.saturating_sub(2), size - 1].into_iter().filter(|&i| i < size)
            {
                let proof = prove_inclusion::<Sha256, _>(&src, index, size).unwrap();
                assert!(proof.path.len() <= 64);
                assert_eq!(verify_inclusion::<Sha256>(&src.levels[0], &proof, &tree_root), Ok(()));
            }
            for old in [1, 2, 3, half - 1, half, half + 1, size - 1, size] {
                if old == 0 || old > size {
                    continue;
                }
                let old_root = range_root::<Sha256, _>(&src, 0, old).unwrap();
                let proof = prove_consistency::<Sha256, _>(&src, old, size).unwrap();
                assert!(proof.path.len() <= 65);
                assert_eq!(verify_consistency::<Sha256>(&old_root, &tree_root, &proof), Ok(()));
            }
        }
        // The longest consistency proof: from an odd size to just past 2^63.
        let src = Uniform::new(half + 1);
        let proof = prove_consistency::<Sha256, _>(&src, 3, half + 1).unwrap();
        assert_eq!(proof.path.len(), 65);
    }

    #[test]
    fn bad_inputs_are_rejected_without_panicking() {
        let h = Sha256::leaf(b"x");
        let inclusion =
            |index, tree_size, len| InclusionProof { index, tree_size, path: vec![h; len] };
        for (index, size) in [(0, 0), (1, 1), (u64::MAX, u64::MAX), (u64::MAX, 0)] {
            assert_eq!(
                verify_inclusion::<Sha256>(&h, &inclusion(index, size, 0), &h),
                Err(ProofError::IndexOutOfRange { index, tree_size: size })
            );
        }
        for (index, size) in [(0, 1), (0, u64::MAX), (u64::MAX - 1, u64::MAX), (5, 1 << 40)] {
            for len in [0, 1, 63, 64, 65, 1000] {
                let proof = inclusion(index, size, len);
                let result = verify_inclusion::<Sha256>(&h, &proof, &h);
                let (inner, border) = decompose(index, size);
                if len == inner + border {
                    assert!(matches!(result, Err(ProofError::RootMismatch { .. })) || len == 0);
                } else {
                    assert_eq!(
                        result,
                        Err(ProofError::WrongLength { expected: inner + border, got: len })
                    );
                }
            }
        }
        let consistency =
            |old_size, new_size, len| ConsistencyProof { old_size, new_size, path: vec![h; len] };
        for (old, new) in [(0, 0), (0, 1), (2, 1), (u64::MAX, 0), (0, u64::MAX)] {
            assert_eq!(
                verify_consistency::<Sha256>(&h, &h, &consistency(old, new, 0)),
                Err(ProofError::BadSizes { old_size: old, new_size: new })
            );
        }
        assert_eq!(verify_consistency::<Sha256>(&h, &h, &consistency(7, 7, 0)), Ok(()));
        assert_eq!(
            verify_consistency::<Sha256>(&h, &h, &consistency(7, 7, 1)),
            Err(ProofError::WrongLength { expected: 0, got: 1 })
        );
        assert!(matches!(
            verify_consistency::<Sha256>(&h, &Sha256::empty(), &consistency(7, 7, 0)),
            Err(ProofError::RootMismatch { .. })
        ));
        for (old, new) in
            [(1, 2), (3, 7), (1, u64::MAX), (u64::MAX - 1, u64::MAX), (3, (1 << 63) + 1)]
        {
            for len in [0, 1, 2, 64, 65, 66, 1000] {
                let result = verify_consistency::<Sha256>(&h, &h, &consistency(old, new, len));
                assert!(result.is_err(), "{old} -> {new} with {len} hashes");
            }
        }
    }

    #[test]
    fn prove_rejects_bad_arguments() {
        let tree: MemoryTree<Sha256> = (0..5u8).map(|i| Sha256::leaf(&[i])).collect();
        assert_eq!(
            prove_inclusion::<Sha256, _>(&tree, 5, 5),
            Err(ProveError::IndexOutOfRange { index: 5, tree_size: 5 })
        );
        assert_eq!(
            prove_inclusion::<Sha256, _>(&tree, 0, 0),
            Err(ProveError::IndexOutOfRange { index: 0, tree_size: 0 })
        );
        for (old, new) in [(0, 0), (0, 3), (4, 3)] {
            assert_eq!(
                prove_consistency::<Sha256, _>(&tree, old, new),
                Err(ProveError::BadSizes { old_size: old, new_size: new })
            );
        }
        assert_eq!(prove_consistency::<Sha256, _>(&tree, 5, 5).map(|p| p.path), Ok(vec![]));
        // Asking about a bigger tree than the source holds surfaces the source's error.
        assert!(matches!(prove_inclusion::<Sha256, _>(&tree, 0, 6), Err(ProveError::Source(_))));
        assert!(matches!(prove_consistency::<Sha256, _>(&tree, 3, 6), Err(ProveError::Source(_))));
        for (start, end) in [(1, 0), (1, 3), (3, 5), (2, 6), (1, u64::MAX), (u64::MAX, 0)] {
            assert_eq!(
                range_root::<Sha256, _>(&tree, start, end),
                Err(ProveError::BadRange { start, end })
            );
        }
        assert_eq!(range_root::<Sha256, _>(&tree, 3, 3), Ok(Sha256::empty()));
        assert_eq!(range_root::<Sha256, _>(&tree, u64::MAX, u64::MAX), Ok(Sha256::empty()));
        assert_eq!(range_root::<Sha256, _>(&tree, 2, 4), Ok(root::<Sha256>(&tree.leaves()[2..4])));
        assert_eq!(range_root::<Sha256, _>(&tree, 4, 5), Ok(tree.leaves()[4]));
        assert_eq!(range_root::<Sha256, _>(&tree, 2, 5), Ok(root::<Sha256>(&tree.leaves()[2..5])));
    }

    #[test]
    fn frontier_reports_completed_nodes_and_stops_at_u64_max() {
        let mut frontier = Frontier::new();
        let mut completed = Vec::new();
        let leaves: Vec<Hash> = (0..8u8).map(|i| Sha256::leaf(&[i])).collect();
        for leaf in &leaves[..7] {
            frontier.push::<Sha256>(*leaf, &mut completed);
        }
        completed.clear();
        frontier.push::<Sha256>(leaves[7], &mut completed);
        let levels: Vec<(u8, u64)> = completed.iter().map(|&(l, i, _)| (l, i)).collect();
        assert_eq!(levels, [(0, 7), (1, 3), (2, 1), (3, 0)]);
        assert_eq!(completed[3].2, root::<Sha256>(&leaves));

        let mut full = Frontier::from_source(&Uniform::new(u64::MAX), u64::MAX).unwrap();
        let before = full.clone();
        completed.clear();
        full.push::<Sha256>(leaves[0], &mut completed);
        assert_eq!(full, before);
        assert!(completed.is_empty());
    }

    #[test]
    fn errors_explain_themselves() {
        let err = ProofError::RootMismatch { expected: [0; 32], computed: [0xab; 32] };
        assert!(err.to_string().contains(&"ab".repeat(32)));
        let err: ProveError<MissingNode> =
            ProveError::Source(MissingNode { level: 2, index: 9, tree_size: 30 });
        assert!(std::error::Error::source(&err).unwrap().to_string().contains("level 2, index 9"));
    }
}
