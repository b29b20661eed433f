//! Deterministic sample chains for tests and benchmarks (feature `test-utils`).

use crate::block::{
    vote_bytes, Block, Certificate, CommitSig, Entry, EntryKind, Header, ValidatorSet, VoteKind,
    HEADER_VERSION,
};
use crate::crypto::SecretKey;
use crate::merkle::{Blake3, Frontier};
use crate::Hash;

/// ed25519's challenge `k = SHA-512(R ‖ A ‖ M) mod ℓ`.
pub fn challenge(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> curve25519_dalek::Scalar {
    use sha2::Digest as _;
    let h = sha2::Sha512::new().chain_update(r).chain_update(a).chain_update(msg).finalize();
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&h);
    curve25519_dalek::Scalar::from_bytes_mod_order_wide(&wide)
}

/// A key and its owner's signature over `msg`, made as an attacker holding the key could: the
/// key is `[a]B + T_key` and `R = [r]B + T_r`, with `s = r + k·a` and the `T`s the torsion points
/// `EIGHT_TORSION[key_torsion]` and `EIGHT_TORSION[r_torsion]` (index 0 is the identity, 4 has
/// order 2, 2 and 6 order 4, odd indices order 8). With both indices 0 it is an honest signature.
pub fn owner_signature(
    a: [u8; 32],
    r: [u8; 32],
    key_torsion: usize,
    r_torsion: usize,
    msg: &[u8],
) -> (crate::PublicKey, crate::Signature) {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
    let (a, r) = (
        curve25519_dalek::Scalar::from_bytes_mod_order(a),
        curve25519_dalek::Scalar::from_bytes_mod_order(r),
    );
    let key = (a * B + EIGHT_TORSION[key_torsion % 8]).compress().to_bytes();
    let big_r = (r * B + EIGHT_TORSION[r_torsion % 8]).compress().to_bytes();
    let s = r + challenge(&big_r, &key, msg) * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&big_r);
    sig[32..].copy_from_slice(&s.to_bytes());
    (crate::PublicKey(key), crate::Signature(sig))
}

/// A key derived from a label and a number, the same on every machine.
pub fn key(label: &str, i: u64) -> SecretKey {
    let mut h = blake3::Hasher::new();
    h.update(b"surplus/test-key/");
    h.update(label.as_bytes());
    h.update(&i.to_be_bytes());
    SecretKey::from_seed(*h.finalize().as_bytes())
}

/// Signs a commit certificate for `header_hash` with the validators at `signers`.
pub fn certificate(
    chain_id: &str,
    height: u64,
    round: u32,
    header_hash: &Hash,
    validators: &[SecretKey],
    signers: &[usize],
) -> Certificate {
    let msg = vote_bytes(chain_id, height, round, VoteKind::Precommit, Some(header_hash));
    let mut signatures: Vec<CommitSig> = signers
        .iter()
        .map(|&i| CommitSig { validator: i as u16, signature: validators[i].sign(&msg) })
        .collect();
    signatures.sort_by_key(|s| s.validator);
    Certificate { round, signatures }
}

/// The first round in which validator `proposer` proposes at `height` (the engine's proposer of
/// height h in round r is validator (h − 1 + r) mod n): the round a certificate of a block it
/// built can have at the earliest.
pub fn proposer_round(validators: usize, height: u64, proposer: usize) -> u32 {
    let n = validators.max(1) as u64;
    ((proposer as u64 + n - height.saturating_sub(1) % n) % n) as u32
}

/// A chain being built block by block, with valid certificates and signed entries.
#[derive(Debug, Clone)]
pub struct TestChain {
    /// Chain id.
    pub chain_id: String,
    /// Validator keys (genesis order).
    pub validators: Vec<SecretKey>,
    /// Keys that author entries.
    pub users: Vec<SecretKey>,
    /// Blocks so far, genesis first.
    pub blocks: Vec<Block>,
    frontier: Frontier,
    prev_hash: Hash,
    next_height: u64,
    timestamp_ms: u64,
    counter: u64,
}

impl TestChain {
    /// A chain with `validators` validators and `users` entry authors, and its genesis block.
    pub fn new(chain_id: &str, validators: usize, users: usize) -> Self {
        let vkeys: Vec<SecretKey> = (0..validators as u64).map(|i| key("validator", i)).collect();
        let ukeys: Vec<SecretKey> = (0..users as u64).map(|i| key("user", i)).collect();
        let set = ValidatorSet::new(vkeys.iter().map(|k| k.public()).collect())
            .expect("test validator keys are distinct");
        let mut c = Self {
            chain_id: chain_id.to_owned(),
            validators: vkeys,
            users: ukeys,
            blocks: Vec::new(),
            frontier: Frontier::new(),
            prev_hash: [0; 32],
            next_height: 0,
            timestamp_ms: 1_700_000_000_000,
            counter: 0,
        };
        let mut entries = vec![Entry::system(EntryKind::VALIDATORS, set.encode())];
        for (i, u) in c.users.iter().enumerate() {
            let mut payload = u.public().0.to_vec();
            payload.extend_from_slice(&(1_000_000u64 * (i as u64 + 1)).to_be_bytes());
            entries.push(Entry::system(EntryKind::GENESIS_ALLOCATION, payload));
        }
        c.push_block(entries);
        c
    }

    /// `n` entries signed by the users in turn, with distinct payloads of about `size` bytes.
    pub fn signed_entries(&mut self, n: usize, size: usize) -> Vec<Entry> {
        (0..n)
            .map(|_| {
                self.counter += 1;
                let author = &self.users[(self.counter as usize) % self.users.len()];
                let mut payload = self.counter.to_be_bytes().to_vec();
                payload.resize(size.max(8), 0xab);
                Entry::signed(&self.chain_id, EntryKind::ORDER, payload, author)
            })
            .collect()
    }

    /// Makes the next block from `entries` (header, certificate from all validators), keeps it,
    /// and returns a copy.
    pub fn push_block(&mut self, entries: Vec<Entry>) -> Block {
        let height = self.next_height;
        self.next_height += 1;
        let mut nodes = Vec::new();
        for e in &entries {
            self.frontier.push::<Blake3>(e.leaf_hash(), &mut nodes);
        }
        let mut state_root = [0u8; 32];
        state_root[..8].copy_from_slice(&height.to_be_bytes());
        let header = Header {
            version: HEADER_VERSION,
            chain_id: self.chain_id.clone(),
            height,
            prev_hash: self.prev_hash,
            timestamp_ms: self.timestamp_ms + height * 500,
            tree_size: self.frontier.size(),
            merkle_root: self.frontier.root::<Blake3>(),
            state_root,
            // The proposer of round 0, as the engine picks it.
            proposer: self.validators[(height.saturating_sub(1) as usize) % self.validators.len()]
                .public(),
        };
        let hash = header.hash();
        let certificate = if height == 0 {
            Certificate::default()
        } else {
            let all: Vec<usize> = (0..self.validators.len()).collect();
            certificate(&self.chain_id, height, 0, &hash, &self.validators, &all)
        };
        self.prev_hash = hash;
        let block = Block { header, entries, certificate };
        self.blocks.push(block.clone());
        block
    }

    /// Makes the next block hold a validator-set entry for `keys` with `powers` (in force from
    /// the block after it, which the new set certifies), keeps it and returns a copy.
    pub fn change_validators(&mut self, keys: Vec<SecretKey>, powers: Vec<u64>) -> Block {
        let set = ValidatorSet::weighted(keys.iter().map(|k| k.public()).collect(), powers)
            .expect("a valid test validator set");
        let block =
            self.push_block(vec![Entry::system(EntryKind::VALIDATOR_SET, set.encode_weighted())]);
        self.validators = keys;
        block
    }

    /// Continues the chain `TestChain::new(chain_id, 4, 8)` from a stored head (its blocks
    /// are not kept here: `blocks` starts empty).
    pub fn resume(state: &crate::ChainState) -> Self {
        let mut c = Self::new(&state.chain_id, state.validators.validators.len(), 8);
        c.blocks.clear();
        c.frontier = state.frontier.clone();
        c.prev_hash = state.head_hash;
        c.next_height = state.head.height + 1;
        c.counter = state.frontier.size();
        c
    }

    /// A chain of `blocks` blocks after genesis, each with `per_block` signed entries.
    pub fn build(chain_id: &str, blocks: usize, per_block: usize) -> Self {
        let mut c = Self::new(chain_id, 4, 8);
        for _ in 0..blocks {
            let entries = c.signed_entries(per_block, 64);
            c.push_block(entries);
        }
        c
    }
}

/// The median wall time of 5 runs of `f`, for the ratios the benchmarks print beside criterion's
/// own measurements.
pub fn median_of_5(f: &mut dyn FnMut()) -> std::time::Duration {
    let mut t: Vec<std::time::Duration> = (0..5)
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    t.sort();
    t[2]
}
