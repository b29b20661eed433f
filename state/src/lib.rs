//! Surplus authenticated state: a persistent binary sparse Merkle tree whose root, proofs and
//! range proofs are those of the `jmt` crate (0.12.0), hashed with BLAKE3 (decision 0015).
//!
//! The tree only sees 32-byte *key hashes* and 32-byte *value hashes*; how the state's items map
//! to them (`docs/contracts.md` §5) is the caller's business. [`value_hash`] is `blake3(value)`.
//!
//! # The commitment
//!
//! - A key hash is read as a path of 256 bits, the most significant bit of byte 0 first. Bit `0`
//!   goes left, bit `1` goes right.
//! - `leaf = blake3("JMT::LeafNode" ‖ key_hash ‖ value_hash)` ([`leaf_hash`]).
//! - `internal = blake3("JMT::IntrnalNode" ‖ left ‖ right)` ([`internal_hash`]; "Intrnal" is
//!   jmt's spelling).
//! - An empty subtree hashes to the 32 ASCII bytes `SPARSE_MERKLE_PLACEHOLDER_HASH__`
//!   ([`PLACEHOLDER`]).
//! - A subtree holding exactly one leaf *is* that leaf: there are no internal nodes above a leaf
//!   down to its depth, which is one more than the longest common prefix it shares with any other
//!   key (0 if it is alone in the tree).
//! - The root of the empty tree is [`PLACEHOLDER`]; the root of a one-leaf tree is that leaf's
//!   hash.
//!
//! The prefixes are raw ASCII, with no length byte.
//!
//! # Proofs
//!
//! A [`Proof`] for a key hash `k` is what the walk from the root towards `k` meets: one sibling
//! hash per internal node passed, and where the walk stops, either the leaf found there (which is
//! `k`'s own leaf for an inclusion proof, or a different leaf sharing `k`'s path for an exclusion
//! proof) or nothing (an empty position: exclusion). Siblings are listed bottom-up: `siblings[0]`
//! is the sibling of the node where the walk stopped, at depth `siblings.len() - 1`. Empty
//! siblings are present as [`PLACEHOLDER`]; nothing is omitted. This is jmt's
//! `SparseMerkleProof` with each sibling node reduced to its hash.
//!
//! To verify against `root`: start from the leaf's hash (or [`PLACEHOLDER`] if there is no leaf)
//! and for `i` in `0..siblings.len()`, at depth `d = siblings.len() - 1 - i`, hash
//! `internal(siblings[i], h)` if bit `d` of `k` is 1, otherwise `internal(h, siblings[i])`; the
//! result must be `root`. Before that, [`Proof::verify`] checks that there are at most 256
//! siblings; for inclusion, that the leaf's key is `k` and its value hash the claimed one; for
//! exclusion with a leaf, that the leaf's key is not `k` and shares at least `siblings.len()`
//! leading bits with `k`.
//!
//! ## Proof encoding (a public format)
//!
//! ```text
//! flag: u8            0x00 = no leaf, 0x01 = a leaf follows
//! [key_hash: 32 bytes, value_hash: 32 bytes]      only if flag = 0x01
//! count: u16, big-endian, at most 256
//! count × sibling: 32 bytes each, bottom-up
//! ```
//!
//! A [`RangeProof`] is `count: u16 big-endian (≤ 256)` followed by that many 32-byte hashes,
//! bottom-up. Decoding refuses short input, trailing bytes, a count above 256 and a flag other
//! than 0 or 1.
//!
//! # Snapshots
//!
//! A snapshot is the leaves in increasing key-hash order, cut into chunks ([`Tree::range_from`]).
//! Each chunk carries the [`RangeProof`] of its last key ([`Tree::range_proof`]): the hashes of the
//! siblings *on the right* of that key's path (the levels where the key's bit is 0), bottom-up,
//! exactly as jmt's `SparseMerkleRangeProof`. The receiver ([`Restore`]) knows every leaf up to
//! that key, so it computes the left siblings itself, and checks each chunk against the expected
//! root as it arrives.
//!
//! ```
//! use surplus_state::{value_hash, Restore, Tree, PLACEHOLDER};
//!
//! let key = |i: u8| value_hash(&[b'k', i]);
//! let mut tree = Tree::new();
//! assert_eq!(tree.root(), PLACEHOLDER);
//! tree.apply((0..10).map(|i| (key(i), Some(value_hash(&[i])))));
//! let before = tree.clone(); // O(1); shares every node
//! tree.apply([(key(3), None)]);
//! assert_eq!(tree.len(), 9);
//! assert_eq!(before.len(), 10);
//!
//! let proof = tree.prove(&key(4));
//! proof.verify(&tree.root(), &key(4), Some(&value_hash(&[4]))).unwrap();
//! tree.prove(&key(3)).verify(&tree.root(), &key(3), None).unwrap();
//!
//! let leaves: Vec<_> = tree.iter().collect();
//! let mut restore = Restore::new(tree.root());
//! for chunk in leaves.chunks(4) {
//!     let proof = tree.range_proof(&chunk[chunk.len() - 1].0).unwrap();
//!     restore.add_chunk(chunk, &proof).unwrap();
//! }
//! assert_eq!(restore.finish().unwrap().root(), tree.root());
//! ```
#![warn(clippy::unwrap_used)]

mod proof;
mod reclaim;
mod restore;
mod tree;

pub use proof::{Proof, ProofError, RangeProof, MAX_SIBLINGS};
pub use reclaim::drop_in_background;
pub use restore::{Restore, RestoreError};
pub use tree::Tree;

/// A 32-byte hash: a key hash, a value hash or a node hash.
pub type Hash = [u8; 32];

/// The hash of an empty subtree, and the root of the empty tree (jmt's
/// `SPARSE_MERKLE_PLACEHOLDER_HASH`).
pub const PLACEHOLDER: Hash = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";

const LEAF_PREFIX: &[u8; 13] = b"JMT::LeafNode";
const INTERNAL_PREFIX: &[u8; 16] = b"JMT::IntrnalNode";

/// The value hash of a leaf: `blake3(value)`.
pub fn value_hash(value: &[u8]) -> Hash {
    *blake3::hash(value).as_bytes()
}

/// The hash of a leaf: `blake3("JMT::LeafNode" ‖ key_hash ‖ value_hash)`.
pub fn leaf_hash(key_hash: &Hash, value_hash: &Hash) -> Hash {
    let mut buf = [0u8; 13 + 64];
    buf[..13].copy_from_slice(LEAF_PREFIX);
    buf[13..45].copy_from_slice(key_hash);
    buf[45..].copy_from_slice(value_hash);
    *blake3::hash(&buf).as_bytes()
}

/// The hash of an internal node: `blake3("JMT::IntrnalNode" ‖ left ‖ right)`.
pub fn internal_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 16 + 64];
    buf[..16].copy_from_slice(INTERNAL_PREFIX);
    buf[16..48].copy_from_slice(left);
    buf[48..].copy_from_slice(right);
    *blake3::hash(&buf).as_bytes()
}

/// Bit `depth` of `key`, the most significant bit of byte 0 being bit 0. `true` = right.
#[inline]
pub(crate) fn bit(key: &Hash, depth: usize) -> bool {
    key[depth >> 3] & (0x80 >> (depth & 7)) != 0
}

/// The number of leading bits `a` and `b` share (256 if equal).
pub(crate) fn common_prefix_bits(a: &Hash, b: &Hash) -> usize {
    for i in 0..32 {
        let x = a[i] ^ b[i];
        if x != 0 {
            return i * 8 + x.leading_zeros() as usize;
        }
    }
    256
}

/// Lower-case hex, for error messages.
pub(crate) fn hex(hash: &Hash) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(64);
    for b in hash {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_msb_first() {
        let mut k = [0u8; 32];
        k[0] = 0b1000_0000;
        k[31] = 1;
        assert!(bit(&k, 0));
        assert!(!bit(&k, 1));
        assert!(bit(&k, 255));
        assert!(!bit(&k, 254));
    }

    #[test]
    fn common_prefix() {
        let a = [0u8; 32];
        let mut b = [0u8; 32];
        assert_eq!(common_prefix_bits(&a, &b), 256);
        b[31] = 1;
        assert_eq!(common_prefix_bits(&a, &b), 255);
        b[0] = 0x10;
        assert_eq!(common_prefix_bits(&a, &b), 3);
    }

    #[test]
    fn hashes_use_raw_prefixes() {
        let k = [1u8; 32];
        let v = [2u8; 32];
        let mut h = blake3::Hasher::new();
        h.update(b"JMT::LeafNode");
        h.update(&k);
        h.update(&v);
        assert_eq!(leaf_hash(&k, &v), *h.finalize().as_bytes());
        let mut h = blake3::Hasher::new();
        h.update(b"JMT::IntrnalNode");
        h.update(&k);
        h.update(&v);
        assert_eq!(internal_hash(&k, &v), *h.finalize().as_bytes());
        assert_eq!(value_hash(b"abc"), *blake3::hash(b"abc").as_bytes());
        assert_eq!(&PLACEHOLDER, b"SPARSE_MERKLE_PLACEHOLDER_HASH__");
    }
}
