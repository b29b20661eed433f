//! Rebuilding a tree from snapshot chunks, each checked against the expected root as it arrives.

use thiserror::Error;

use crate::tree::{hash_of, Node};
use crate::{
    bit, hex, internal_hash, leaf_hash, Hash, RangeProof, Tree, MAX_SIBLINGS, PLACEHOLDER,
};

/// Why a chunk, or the finished restore, was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RestoreError {
    /// A chunk with no leaves.
    #[error("snapshot chunk is empty")]
    EmptyChunk,
    /// Two leaves of a chunk out of strictly increasing key order.
    #[error("snapshot chunk keys are not strictly increasing at index {0}")]
    NotIncreasing(usize),
    /// A chunk whose first key is not above the previous chunk's last key.
    #[error("snapshot chunk does not start after the previous chunk's last key")]
    NotAfterPrevious,
    /// A range proof with more right siblings than the last key's path can have.
    #[error("range proof has {given} right siblings, the path to the chunk's last key has room for {room}")]
    TooManyRightSiblings {
        /// The right siblings given.
        given: usize,
        /// The levels where the last key's bit is 0 (at most 256).
        room: usize,
    },
    /// The range proof runs out of right siblings, or the leaves so far out of left ones.
    #[error("range proof does not fit the path to the chunk's last key: missing a {0} sibling")]
    MissingSibling(&'static str),
    /// The leaves so far and the range proof give another root.
    #[error("snapshot chunk gives root {actual}, expected {expected}")]
    RootMismatch {
        /// The root the chunk and its proof give.
        actual: String,
        /// The expected root.
        expected: String,
    },
    /// At the end, the leaves received give another root (chunks are missing).
    #[error("restored tree has root {actual} with {leaves} leaves, expected {expected}")]
    Incomplete {
        /// The root of the leaves received.
        actual: String,
        /// The expected root.
        expected: String,
        /// The leaves received.
        leaves: usize,
    },
}

/// Rebuilds a tree from snapshot chunks (leaves in increasing key order across all chunks),
/// checking each chunk against the expected root as it arrives, like jmt's
/// `JellyfishMerkleRestore`: the leaves so far, with everything right of the chunk's last key
/// taken from the chunk's range proof, must hash to the expected root.
pub struct Restore {
    expected: Hash,
    tree: Tree,
    last: Option<Hash>,
}

impl Restore {
    /// Starts a restore of the tree whose root is `expected_root`.
    pub fn new(expected_root: Hash) -> Self {
        Restore { expected: expected_root, tree: Tree::new(), last: None }
    }

    /// Adds a chunk of leaves `(key_hash, value_hash)` with the range proof of its last key.
    /// Refuses (and leaves the restore unchanged, so that the chunk can be fetched elsewhere) a
    /// chunk that is empty, not strictly increasing, not after the previous chunk, or whose proof
    /// does not give the expected root.
    pub fn add_chunk(
        &mut self,
        leaves: &[(Hash, Hash)],
        proof: &RangeProof,
    ) -> Result<(), RestoreError> {
        let Some(&(last_key, last_value)) = leaves.last() else {
            return Err(RestoreError::EmptyChunk);
        };
        if let Some(i) = leaves.windows(2).position(|w| w[0].0 >= w[1].0) {
            return Err(RestoreError::NotIncreasing(i + 1));
        }
        if self.last.is_some_and(|prev| leaves[0].0 <= prev) {
            return Err(RestoreError::NotAfterPrevious);
        }
        let mut tree = self.tree.clone();
        tree.apply(leaves.iter().map(|&(k, v)| (k, Some(v))));
        check(&tree, &last_key, &last_value, proof, &self.expected)?;
        self.tree = tree;
        self.last = Some(last_key);
        Ok(())
    }

    /// The number of leaves accepted so far.
    pub fn leaves(&self) -> usize {
        self.tree.len()
    }

    /// The restored tree, if its root is the expected root (an empty tree is restored from zero
    /// chunks if the expected root is [`PLACEHOLDER`]).
    pub fn finish(self) -> Result<Tree, RestoreError> {
        let root = self.tree.root();
        if root != self.expected {
            return Err(RestoreError::Incomplete {
                actual: hex(&root),
                expected: hex(&self.expected),
                leaves: self.tree.len(),
            });
        }
        Ok(self.tree)
    }
}

/// jmt's `JellyfishMerkleRestore::verify`, over our tree of the leaves so far (`partial`, whose
/// greatest key is `key`).
fn check(
    partial: &Tree,
    key: &Hash,
    value: &Hash,
    proof: &RangeProof,
    expected: &Hash,
) -> Result<(), RestoreError> {
    let right = &proof.right_siblings;
    if right.len() > MAX_SIBLINGS {
        return Err(RestoreError::TooManyRightSiblings { given: right.len(), room: MAX_SIBLINGS });
    }
    // The left child hashes along the path to `key` in the partial tree, down to its leaf. These
    // subtrees hold only keys below `key`, all received, so they are final.
    let mut path_left: Vec<Hash> = Vec::new();
    let mut node = partial.root_node();
    let mut depth = 0;
    while let Some(Node::Internal(i)) = node {
        path_left.push(hash_of(i.left.as_ref()));
        node = if bit(key, depth) { i.right.as_ref() } else { i.left.as_ref() };
        depth += 1;
    }
    // Left siblings at every level where `key` goes right (empty below its leaf in the partial
    // tree), top-down; and the number of levels where it goes left.
    let mut left = Vec::new();
    let mut zeros = 0;
    for d in 0..256 {
        if bit(key, d) {
            left.push(path_left.get(d).copied().unwrap_or(PLACEHOLDER));
        } else {
            zeros += 1;
        }
    }
    if zeros < right.len() {
        return Err(RestoreError::TooManyRightSiblings { given: right.len(), room: zeros });
    }
    // Drop the levels below the path's real end, from the bottom: empty left siblings, and left
    // turns beyond those the proof has right siblings for.
    for d in (0..256).rev() {
        if bit(key, d) {
            if left.last() == Some(&PLACEHOLDER) {
                left.pop();
            } else {
                break;
            }
        } else if zeros > right.len() {
            zeros -= 1;
        } else {
            break;
        }
    }
    let levels = left.len() + right.len();
    let mut lefts = left.iter().rev();
    let mut rights = right.iter();
    let mut hash = leaf_hash(key, value);
    for d in (0..levels).rev() {
        hash = if bit(key, d) {
            internal_hash(lefts.next().ok_or(RestoreError::MissingSibling("left"))?, &hash)
        } else {
            internal_hash(&hash, rights.next().ok_or(RestoreError::MissingSibling("right"))?)
        };
    }
    if hash != *expected {
        return Err(RestoreError::RootMismatch { actual: hex(&hash), expected: hex(expected) });
    }
    Ok(())
}
