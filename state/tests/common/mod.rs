//! Shared test helpers: jmt 0.12.0 with a BLAKE3 hasher as the oracle, and reading jmt's proofs.

#![allow(dead_code)]

use jmt::mock::MockTreeStore;
use jmt::proof::{SparseMerkleProof, SparseMerkleRangeProof};
use jmt::{JellyfishMerkleTree, KeyHash, SimpleHasher};
use surplus_state::{internal_hash, leaf_hash, value_hash, Hash, Proof, RangeProof, PLACEHOLDER};

/// BLAKE3 for jmt.
pub struct Blake3(blake3::Hasher);

impl SimpleHasher for Blake3 {
    fn new() -> Self {
        Blake3(blake3::Hasher::new())
    }
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finalize(self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// A jmt tree in memory, one version per batch.
pub struct Oracle {
    pub store: MockTreeStore,
    /// The latest version written, if any.
    pub version: Option<u64>,
}

impl Default for Oracle {
    fn default() -> Self {
        Self::new()
    }
}

impl Oracle {
    pub fn new() -> Self {
        Oracle { store: MockTreeStore::default(), version: None }
    }

    fn jmt(&self) -> JellyfishMerkleTree<'_, MockTreeStore, Blake3> {
        JellyfishMerkleTree::new(&self.store)
    }

    /// Applies one batch of `(key_hash, Some(value bytes) | None)` in order (jmt puts them one at
    /// a time, so the last change to a key wins) as the next version; returns the new root.
    pub fn apply(&mut self, changes: &[(Hash, Option<Vec<u8>>)]) -> Hash {
        let version = self.version.map_or(0, |v| v + 1);
        let (root, batch) = self
            .jmt()
            .put_value_set(changes.iter().map(|(k, v)| (KeyHash(*k), v.clone())), version)
            .expect("jmt put_value_set");
        self.store.write_tree_update_batch(batch).expect("jmt write");
        self.version = Some(version);
        root.0
    }

    pub fn root(&self) -> Hash {
        match self.version {
            None => PLACEHOLDER,
            Some(v) => self.jmt().get_root_hash(v).expect("jmt root").0,
        }
    }

    /// jmt's proof for `key`, reduced to ours, and the value it found.
    pub fn prove(&self, key: &Hash) -> (Option<Vec<u8>>, Proof) {
        let v = self.version.expect("a version");
        let (value, proof) = self.jmt().get_with_proof(KeyHash(*key), v).expect("jmt proof");
        (value, reduce_proof(&proof))
    }

    /// The raw jmt proof, to check that jmt itself accepts what we accept.
    pub fn raw_proof(&self, key: &Hash) -> SparseMerkleProof<Blake3> {
        let v = self.version.expect("a version");
        self.jmt().get_with_proof(KeyHash(*key), v).expect("jmt proof").1
    }

    /// jmt's range proof for `last_key`, reduced to ours.
    pub fn range_proof(&self, last_key: &Hash) -> RangeProof {
        let v = self.version.expect("a version");
        let proof = self.jmt().get_range_proof(KeyHash(*last_key), v).expect("jmt range proof");
        reduce_range_proof(&proof)
    }
}

/// Reads a borsh-encoded `SparseMerkleNode` (0 = Null, 1 = Internal{left, right},
/// 2 = Leaf{key_hash, value_hash}) and returns its hash.
fn node_hash(r: &mut &[u8]) -> Hash {
    let tag = take(r, 1)[0];
    match tag {
        0 => PLACEHOLDER,
        1 => {
            let (l, rr) = (hash(r), hash(r));
            internal_hash(&l, &rr)
        }
        2 => {
            let (k, v) = (hash(r), hash(r));
            leaf_hash(&k, &v)
        }
        t => panic!("unknown SparseMerkleNode tag {t}"),
    }
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (a, b) = r.split_at(n);
    *r = b;
    a
}

fn hash(r: &mut &[u8]) -> Hash {
    take(r, 32).try_into().expect("32 bytes")
}

fn nodes(r: &mut &[u8]) -> Vec<Hash> {
    let n = u32::from_le_bytes(take(r, 4).try_into().expect("4 bytes")) as usize;
    (0..n).map(|_| node_hash(r)).collect()
}

/// jmt's `SparseMerkleProof` through its borsh encoding (`leaf: Option<SparseMerkleLeafNode>`,
/// `siblings: Vec<SparseMerkleNode>`, a zero-size `PhantomData`), each sibling reduced to its hash.
pub fn reduce_proof(proof: &SparseMerkleProof<Blake3>) -> Proof {
    let bytes = borsh::to_vec(proof).expect("borsh");
    let mut r = bytes.as_slice();
    let leaf = match take(&mut r, 1)[0] {
        0 => None,
        1 => Some((hash(&mut r), hash(&mut r))),
        t => panic!("bad Option tag {t}"),
    };
    let siblings = nodes(&mut r);
    assert!(r.is_empty(), "unread bytes in jmt proof");
    Proof { leaf, siblings }
}

/// jmt's `SparseMerkleRangeProof` through its borsh encoding (`right_siblings:
/// Vec<SparseMerkleNode>`), each sibling reduced to its hash.
pub fn reduce_range_proof(proof: &SparseMerkleRangeProof<Blake3>) -> RangeProof {
    let bytes = borsh::to_vec(proof).expect("borsh");
    let mut r = bytes.as_slice();
    let right_siblings = nodes(&mut r);
    assert!(r.is_empty(), "unread bytes in jmt range proof");
    RangeProof { right_siblings }
}

/// A pool of key hashes with long shared prefixes: keys differing only in the last bits, keys
/// sharing 128 bits, all-zero and all-one keys, and random ones.
pub fn key_pool() -> Vec<Hash> {
    let mut keys = Vec::new();
    for i in 0..8u8 {
        let mut k = [0u8; 32];
        k[31] = i; // share 253 bits; 0 and 1 differ only in the last bit
        keys.push(k);
    }
    for i in 0..6u8 {
        let mut k = [0xab; 32];
        k[16] = i;
        keys.push(k);
    }
    let mut k = [0xff; 32];
    keys.push(k);
    k[31] = 0xfe;
    keys.push(k);
    for i in 0..16u8 {
        keys.push(value_hash(&[b'p', i]));
    }
    keys
}

/// A value's bytes from a small number, so that updates sometimes keep the same value.
pub fn value_bytes(v: u8) -> Vec<u8> {
    vec![b'v', v]
}
