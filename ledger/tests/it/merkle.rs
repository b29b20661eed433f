//! Merkle trees: the public RFC 9162 vectors of transparency-dev/merkle, a differential check
//! against the `ct-merkle` crate and the RFC's recursive definitions, and property tests.

use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use sha2_11::Digest as _;
use surplus_ledger::{
    prove_consistency, prove_inclusion, range_root, root, verify_consistency, verify_inclusion,
    Blake3, ConsistencyProof, Frontier, Hash, Hasher, InclusionProof, MemoryTree, NodeSource,
    ProofError, ProveError, Sha256,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Leaf data that differs for every index, so no two leaves (and, with overwhelming probability,
/// no two nodes) share a hash; the tamper tests rely on that.
fn leaf_data(i: u64, rng: &mut StdRng) -> Vec<u8> {
    let mut data = i.to_le_bytes().to_vec();
    let extra = rng.gen_range(0..24);
    data.extend((0..extra).map(|_| rng.gen::<u8>()));
    data
}

fn random_tree<H: Hasher>(n: u64, seed: u64) -> (Vec<Vec<u8>>, MemoryTree<H>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let data: Vec<Vec<u8>> = (0..n).map(|i| leaf_data(i, &mut rng)).collect();
    let tree = data.iter().map(|d| H::leaf(d)).collect();
    (data, tree)
}

/// Largest power of two strictly below `n >= 2`: where RFC 9162 splits a tree of `n` leaves.
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Serves the nodes of a tree but refuses any node that is not a complete subtree lying inside
/// `[lo, hi)`: proof generation may only read nodes of the tree size it was given.
struct Bounded<'a, H: Hasher> {
    tree: &'a MemoryTree<H>,
    lo: u64,
    hi: u64,
}

impl<H: Hasher> NodeSource for Bounded<'_, H> {
    type Error = String;

    fn node(&self, level: u8, index: u64) -> Result<Hash, String> {
        let first = u128::from(index) << level.min(64);
        let end = (u128::from(index) + 1) << level.min(64);
        if level >= 64 || first < u128::from(self.lo) || end > u128::from(self.hi) {
            return Err(format!("node ({level}, {index}) is outside [{}, {})", self.lo, self.hi));
        }
        self.tree.node(level, index).ok_or_else(|| format!("node ({level}, {index}) not stored"))
    }
}

fn bounded<H: Hasher>(tree: &MemoryTree<H>, hi: u64) -> Bounded<'_, H> {
    Bounded { tree, lo: 0, hi }
}

/// RFC 9162 `PATH(m, D[n])`, straight from its recursive definition.
fn rfc_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split_point(n as u64) as usize;
    let mut path;
    if m < k {
        path = rfc_path(m, &leaves[..k]);
        path.push(root::<Sha256>(&leaves[k..]));
    } else {
        path = rfc_path(m - k, &leaves[k..]);
        path.push(root::<Sha256>(&leaves[..k]));
    }
    path
}

/// RFC 9162 `SUBPROOF(m, D[n], b)`, straight from its recursive definition.
fn rfc_subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if complete { Vec::new() } else { vec![root::<Sha256>(leaves)] };
    }
    let k = split_point(n as u64) as usize;
    let mut proof;
    if m <= k {
        proof = rfc_subproof(m, &leaves[..k], complete);
        proof.push(root::<Sha256>(&leaves[k..]));
    } else {
        proof = rfc_subproof(m - k, &leaves[k..], false);
        proof.push(root::<Sha256>(&leaves[..k]));
    }
    proof
}

/// On which side each sibling of leaf `m`'s audit path sits in a tree of `n` leaves (true: left),
/// lowest first, from RFC 9162's recursion; `None` if there is no such leaf.
///
/// An inclusion proof's hashing depends on its index and size only through this shape, so a
/// proof re-labelled with another index or size verifies exactly when the shape is unchanged:
/// RFC 9162 roots do not commit to the tree size.
fn inclusion_shape(m: u64, n: u64) -> Option<Vec<bool>> {
    fn walk(m: u64, n: u64, out: &mut Vec<bool>) {
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            walk(m, k, out);
            out.push(false);
        } else {
            walk(m - k, n - k, out);
            out.push(true);
        }
    }
    (m < n).then(|| {
        let mut out = Vec::new();
        walk(m, n, &mut out);
        out
    })
}

/// What each hash of a consistency proof stands for, from RFC 9162's `SUBPROOF` recursion.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// The old tree's rightmost complete subtree, the start of both walks.
    Seed,
    /// A subtree right of the old tree: only in the new tree.
    Right,
    /// A subtree left of the walk: in both trees.
    Left,
}

/// The [`Step`]s of the consistency proof from `m` to `n` leaves, `None` if there is none. As for
/// [`inclusion_shape`], verification depends on the sizes only through this.
fn consistency_shape(m: u64, n: u64) -> Option<Vec<Step>> {
    fn sub(m: u64, n: u64, complete: bool, out: &mut Vec<Step>) {
        if m == n {
            if !complete {
                out.push(Step::Seed);
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            sub(m, k, complete, out);
            out.push(Step::Right);
        } else {
            sub(m - k, n - k, false, out);
            out.push(Step::Left);
        }
    }
    (m > 0 && m <= n).then(|| {
        let mut out = Vec::new();
        sub(m, n, true, &mut out);
        out
    })
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut out = *hash;
    out[bit / 8 % 32] ^= 1 << (bit % 8);
    out
}

// ---------------------------------------------------------------------------------------------
// 1. Public vectors (transparency-dev/merkle testdata, SHA-256)
// ---------------------------------------------------------------------------------------------

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/merkle")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionCase {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyCase {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn base64(field: &str) -> Vec<u8> {
    BASE64.decode(field).unwrap()
}

/// A vector field as a [`Hash`]. Some vectors hold roots or proof entries that are not 32 bytes
/// (empty strings, "don't care" placeholders, garbage). The reference verifier only ever compares
/// such a value for equality or hashes it as is, so any injective map to 32 bytes keeps its
/// outcome: a 32-byte value passes through, any other goes through SHA-256 under a tag that no
/// tree hash uses.
fn field_hash(field: &str) -> Hash {
    let bytes = base64(field);
    <Hash>::try_from(bytes.as_slice()).unwrap_or_else(|_| {
        sha2_11::Sha256::new_with_prefix(b"not a 32-byte digest:")
            .chain_update(&bytes)
            .finalize()
            .into()
    })
}

fn proof_hashes(proof: &Option<Vec<String>>) -> Vec<Hash> {
    proof.iter().flatten().map(|p| field_hash(p)).collect()
}

fn read_inclusion(path: &Path) -> InclusionCase {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn read_consistency(path: &Path) -> ConsistencyCase {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn check_inclusion_case(case: &InclusionCase) -> Result<(), String> {
    let leaf = base64(&case.leaf_hash);
    // RFC 9162 takes a hash-sized leaf hash; the reference refuses any other before verifying.
    let leaf = <Hash>::try_from(leaf.as_slice())
        .map_err(|_| format!("leaf hash has {} bytes", leaf.len()))?;
    let proof = InclusionProof {
        index: case.leaf_idx,
        tree_size: case.tree_size,
        path: proof_hashes(&case.proof),
    };
    verify_inclusion::<Sha256>(&leaf, &proof, &field_hash(&case.root)).map_err(|e| e.to_string())
}

fn check_consistency_case(case: &ConsistencyCase) -> Result<(), String> {
    let proof = ConsistencyProof {
        old_size: case.size1,
        new_size: case.size2,
        path: proof_hashes(&case.proof),
    };
    verify_consistency::<Sha256>(&field_hash(&case.root1), &field_hash(&case.root2), &proof)
        .map_err(|e| e.to_string())
}

/// `None`, after saying why, when shared/ is not beside the workspace.
fn vector_files() -> Option<(Vec<PathBuf>, Vec<PathBuf>)> {
    let dir = vectors_dir();
    if !dir.is_dir() {
        println!("merkle vectors skipped: {} is not a directory", dir.display());
        return None;
    }
    Some((json_files(&dir.join("inclusion")), json_files(&dir.join("consistency"))))
}

#[test]
fn public_vectors_verify_or_are_rejected() {
    let Some((inclusion, consistency)) = vector_files() else {
        return;
    };
    let mut checked = 0;
    for path in &inclusion {
        let case = read_inclusion(path);
        let result = check_inclusion_case(&case);
        assert_eq!(
            result.is_err(),
            case.want_err,
            "{} ({}): {result:?}",
            path.display(),
            case.desc
        );
        checked += 1;
    }
    for path in &consistency {
        let case = read_consistency(path);
        let result = check_consistency_case(&case);
        assert_eq!(
            result.is_err(),
            case.want_err,
            "{} ({}): {result:?}",
            path.display(),
            case.desc
        );
        checked += 1;
    }
    println!("checked {checked} merkle vector cases");
    assert!(checked >= 150, "only {checked} merkle vector cases found");
}

// ---------------------------------------------------------------------------------------------
// 2. Differential: ct-merkle 0.3 and the RFC's recursive definitions
// ---------------------------------------------------------------------------------------------

type CtSha256 = sha2_11::Sha256;
type CtTree = ct_merkle::mem_backed_tree::MemoryBackedTree<CtSha256, Vec<u8>>;

fn ct_root(hash: Hash, size: u64) -> ct_merkle::RootHash<CtSha256> {
    ct_merkle::RootHash::new(hash.into(), size)
}

fn concat(path: &[Hash]) -> Vec<u8> {
    path.concat()
}

fn split(bytes: &[u8]) -> Vec<Hash> {
    assert_eq!(bytes.len() % 32, 0);
    bytes.chunks_exact(32).map(|c| c.try_into().unwrap()).collect()
}

/// Up to `count` distinct values in `lo..=hi`, always including both ends.
fn sample(rng: &mut StdRng, lo: u64, hi: u64, count: usize) -> Vec<u64> {
    if hi - lo < count as u64 {
        return (lo..=hi).collect();
    }
    let mut out: Vec<u64> = (0..count).map(|_| rng.gen_range(lo..=hi)).collect();
    out.extend([lo, hi]);
    out.sort_unstable();
    out.dedup();
    out
}

#[test]
fn matches_ct_merkle() {
    let mut rng = StdRng::seed_from_u64(0x5eed_00c7);
    let mut ct = CtTree::new();
    let mut ours = MemoryTree::<Sha256>::new();
    let mut data = Vec::new();
    let larger = [511, 512, 513, 1000, 1023, 1024, 1025, 2047, 2048, 2049, 3000];
    let (mut inclusion_checked, mut consistency_checked) = (0, 0);
    for n in 1..=3000u64 {
        let d = leaf_data(n - 1, &mut rng);
        ct.push(d.clone());
        ours.push(Sha256::leaf(&d));
        data.push(d);
        if n > 300 && !larger.contains(&n) {
            continue;
        }

        let tree_root = ours.root();
        assert_eq!(ct.root().as_bytes().as_slice(), tree_root, "root of {n} leaves");
        assert_eq!(root::<Sha256>(ours.leaves()), tree_root);

        for index in sample(&mut rng, 0, n - 1, 24) {
            let proof = prove_inclusion::<Sha256, _>(&bounded(&ours, n), index, n).unwrap();
            let theirs = ct.prove_inclusion(index as usize);
            assert_eq!(concat(&proof.path), theirs.as_bytes(), "inclusion of {index} in {n}");
            // Each side's proof verifies under the other's verifier.
            let leaf = Sha256::leaf(&data[index as usize]);
            let ct_proof =
                ct_merkle::InclusionProof::<CtSha256>::try_from_bytes(concat(&proof.path)).unwrap();
            ct_root(tree_root, n)
                .verify_inclusion(&data[index as usize], index, &ct_proof)
                .unwrap();
            let from_ct = InclusionProof { index, tree_size: n, path: split(theirs.as_bytes()) };
            assert_eq!(verify_inclusion::<Sha256>(&leaf, &from_ct, &tree_root), Ok(()));
            inclusion_checked += 1;
        }

        for old in sample(&mut rng, 1, n, 24) {
            let old_root = range_root::<Sha256, _>(&ours, 0, old).unwrap();
            let proof = prove_consistency::<Sha256, _>(&bounded(&ours, n), old, n).unwrap();
            let theirs = ct.prove_consistency((n - old) as usize);
            assert_eq!(concat(&proof.path), theirs.as_bytes(), "consistency {old} -> {n}");
            let ct_proof =
                ct_merkle::ConsistencyProof::<CtSha256>::try_from_bytes(concat(&proof.path))
                    .unwrap();
            ct_root(tree_root, n).verify_consistency(&ct_root(old_root, old), &ct_proof).unwrap();
            let from_ct =
                ConsistencyProof { old_size: old, new_size: n, path: split(theirs.as_bytes()) };
            assert_eq!(verify_consistency::<Sha256>(&old_root, &tree_root, &from_ct), Ok(()));
            consistency_checked += 1;
        }
    }
    println!(
        "ct-merkle: {inclusion_checked} inclusion and {consistency_checked} consistency proofs"
    );
}

/// Every proof of every tree up to 64 leaves equals RFC 9162's recursive `PATH` and `SUBPROOF`.
#[test]
fn proofs_equal_the_rfc_definitions() {
    let (_, tree) = random_tree::<Sha256>(64, 1);
    let leaves = tree.leaves();
    for n in 1..=64u64 {
        let prefix = &leaves[..n as usize];
        for m in 0..n {
            let proof = prove_inclusion::<Sha256, _>(&bounded(&tree, n), m, n).unwrap();
            assert_eq!(proof.path, rfc_path(m as usize, prefix), "PATH({m}, D[{n}])");
        }
        for old in 1..=n {
            let proof = prove_consistency::<Sha256, _>(&bounded(&tree, n), old, n).unwrap();
            assert_eq!(
                proof.path,
                rfc_subproof(old as usize, prefix, true),
                "PROOF({old}, D[{n}])"
            );
        }
    }
}

/// Proof generation reads only nodes of the requested tree size, from a store that holds more.
#[test]
fn proofs_read_only_nodes_of_their_tree_size() {
    let (_, tree) = random_tree::<Sha256>(300, 2);
    for n in 1..=140u64 {
        for m in 0..n {
            prove_inclusion::<Sha256, _>(&bounded(&tree, n), m, n).unwrap();
        }
        for old in 1..=n {
            prove_consistency::<Sha256, _>(&bounded(&tree, n), old, n).unwrap();
        }
    }
    // The same holds far beyond what can be checked one by one: a source that refuses everything
    // outside the size fails the call instead of being read past it.
    let err = prove_inclusion::<Sha256, _>(&bounded(&tree, 5), 0, 6).unwrap_err();
    assert!(matches!(err, ProveError::Source(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// 3. Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Every inclusion proof verifies; a flipped bit anywhere in the path or the root is caught,
    /// and a flipped bit of the index or size is caught unless it leaves the path's shape as is
    /// (in which case RFC 9162 cannot tell the sizes apart, and the proof must still verify).
    #[test]
    fn inclusion_proofs_verify_and_tampering_is_caught(
        n in 1u64..=200,
        seed in any::<u64>(),
        pick in any::<prop::sample::Index>(),
        hash_bit in 0usize..256,
        int_bit in 0u32..64,
    ) {
        let (_, tree) = random_tree::<Sha256>(n, seed);
        let tree_root = tree.root();
        for index in 0..n {
            let leaf = tree.leaves()[index as usize];
            let proof = prove_inclusion::<Sha256, _>(&tree, index, n).unwrap();
            prop_assert_eq!(verify_inclusion::<Sha256>(&leaf, &proof, &tree_root), Ok(()));

            prop_assert!(verify_inclusion::<Sha256>(&leaf, &proof, &flip(&tree_root, hash_bit)).is_err());
            prop_assert!(verify_inclusion::<Sha256>(&flip(&leaf, hash_bit), &proof, &tree_root).is_err());
            if !proof.path.is_empty() {
                let mut bad = proof.clone();
                let at = pick.index(bad.path.len());
                bad.path[at] = flip(&bad.path[at], hash_bit);
                prop_assert!(verify_inclusion::<Sha256>(&leaf, &bad, &tree_root).is_err());
            }
            let shape = inclusion_shape(index, n);
            for (bad_index, bad_size) in [(index ^ (1 << int_bit), n), (index, n ^ (1 << int_bit))] {
                let bad = InclusionProof { index: bad_index, tree_size: bad_size, ..proof.clone() };
                let verified = verify_inclusion::<Sha256>(&leaf, &bad, &tree_root).is_ok();
                prop_assert_eq!(
                    verified,
                    inclusion_shape(bad_index, bad_size) == shape,
                    "index {} size {} relabelled as index {} size {}", index, n, bad_index, bad_size
                );
            }
        }
    }

    /// `range_root` equals the Merkle Tree Hash of the slice for every range it accepts, reads
    /// only nodes inside the range, and accepts exactly the ranges tiled by aligned subtrees.
    #[test]
    fn range_root_matches_the_slice(seed in any::<u64>(), a in 0u64..=3000, b in 0u64..=3000) {
        let n = 3000;
        let (_, tree) = random_tree::<Blake3>(n, seed % 4);
        let (start, end) = (a.min(b), a.max(b));
        // Half the time, align start so that the range is accepted.
        let start = if seed % 2 == 0 && end > start {
            let tile = 1u64 << (63 - (end - start).leading_zeros());
            start - start % tile
        } else {
            start
        };
        let result = range_root::<Blake3, _>(&Bounded { tree: &tree, lo: start, hi: end }, start, end);
        let len = end - start;
        let aligned = len == 0 || start % (1u64 << (63 - len.leading_zeros())) == 0;
        if aligned {
            prop_assert_eq!(result, Ok(root::<Blake3>(&tree.leaves()[start as usize..end as usize])));
        } else {
            prop_assert_eq!(result, Err(ProveError::BadRange { start, end }));
        }
    }
}

/// Consistency proofs verify for every `0 < old <= new <= 64`; a flipped bit in the path or
/// either root is caught, and so is a flipped bit of either size unless it leaves the proof's
/// shape as is.
#[test]
fn consistency_proofs_verify_and_tampering_is_caught() {
    let (_, tree) = random_tree::<Sha256>(64, 3);
    let roots: Vec<Hash> = (0..=64).map(|n| root::<Sha256>(&tree.leaves()[..n])).collect();
    let (mut checked, mut aliased) = (0, 0);
    for new in 1..=64u64 {
        for old in 1..=new {
            let (old_root, new_root) = (roots[old as usize], roots[new as usize]);
            let proof = prove_consistency::<Sha256, _>(&bounded(&tree, new), old, new).unwrap();
            assert_eq!(verify_consistency::<Sha256>(&old_root, &new_root, &proof), Ok(()));

            let bit = (old * 31 + new * 17) as usize % 256;
            assert!(verify_consistency::<Sha256>(&flip(&old_root, bit), &new_root, &proof).is_err());
            assert!(verify_consistency::<Sha256>(&old_root, &flip(&new_root, bit), &proof).is_err());
            for at in 0..proof.path.len() {
                let mut bad = proof.clone();
                bad.path[at] = flip(&bad.path[at], bit + at);
                assert!(verify_consistency::<Sha256>(&old_root, &new_root, &bad).is_err());
            }
            let mut longer = proof.clone();
            longer.path.push(new_root);
            assert!(verify_consistency::<Sha256>(&old_root, &new_root, &longer).is_err());
            if let Some((_, shorter)) = proof.path.split_last() {
                let bad = ConsistencyProof { path: shorter.to_vec(), ..proof.clone() };
                assert!(verify_consistency::<Sha256>(&old_root, &new_root, &bad).is_err());
            }

            let shape = consistency_shape(old, new);
            for bit in (0..8).chain([31, 62, 63]) {
                for (bad_old, bad_new) in [(old ^ (1 << bit), new), (old, new ^ (1 << bit))] {
                    let bad =
                        ConsistencyProof { old_size: bad_old, new_size: bad_new, ..proof.clone() };
                    let verified = verify_consistency::<Sha256>(&old_root, &new_root, &bad).is_ok();
                    aliased += usize::from(verified);
                    assert_eq!(
                        verified,
                        consistency_shape(bad_old, bad_new) == shape,
                        "{old} -> {new} relabelled as {bad_old} -> {bad_new}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 64 * 65 / 2);
    // Both outcomes occur: e.g. the proof from 4 to 5 leaves is also one from 4 to 7.
    assert!(aliased > 0);
}

/// `Frontier::push` gives the root of `root()` and `MemoryTree` at every size up to 1100, reports
/// exactly the nodes each leaf completes, and `Frontier::from_source` rebuilds it from a store
/// holding a larger tree.
#[test]
fn frontier_agrees_with_root_and_memory_tree() {
    const MAX: u64 = 1100;
    let (_, full) = random_tree::<Blake3>(MAX, 4);
    let leaves = full.leaves();
    let mut frontier = Frontier::new();
    let mut tree = MemoryTree::<Blake3>::new();
    let mut completed = Vec::new();
    for n in 0..=MAX {
        let expected = root::<Blake3>(&leaves[..n as usize]);
        assert_eq!(frontier.size(), n);
        assert_eq!(frontier.root::<Blake3>(), expected, "frontier root at size {n}");
        assert_eq!(tree.root(), expected, "memory tree root at size {n}");
        assert_eq!(tree.frontier(), &frontier);
        assert_eq!(Frontier::from_source(&bounded(&full, n), n), Ok(frontier.clone()));
        if n == MAX {
            break;
        }

        completed.clear();
        frontier.push::<Blake3>(leaves[n as usize], &mut completed);
        tree.push(leaves[n as usize]);
        let expected_nodes: Vec<(u8, u64)> =
            (0..=n.trailing_ones()).map(|level| (level as u8, n >> level)).collect();
        let reported: Vec<(u8, u64)> = completed.iter().map(|&(l, i, _)| (l, i)).collect();
        assert_eq!(reported, expected_nodes, "nodes completed by leaf {n}");
        for &(level, index, hash) in &completed {
            assert_eq!(full.node(level, index), Some(hash), "node ({level}, {index})");
            let first = (index << level) as usize;
            assert_eq!(hash, root::<Blake3>(&leaves[first..first + (1 << level)]));
        }
    }
}

#[test]
fn proofs_round_trip_through_json() {
    let (_, tree) = random_tree::<Blake3>(21, 5);
    let inclusion = prove_inclusion::<Blake3, _>(&tree, 13, 21).unwrap();
    let json = serde_json::to_string(&inclusion).unwrap();
    assert_eq!(serde_json::from_str::<InclusionProof>(&json).unwrap(), inclusion);
    let consistency = prove_consistency::<Blake3, _>(&tree, 6, 21).unwrap();
    let json = serde_json::to_string(&consistency).unwrap();
    assert_eq!(serde_json::from_str::<ConsistencyProof>(&json).unwrap(), consistency);
    assert_eq!(
        verify_consistency::<Blake3>(
            &range_root::<Blake3, _>(&tree, 0, 6).unwrap(),
            &tree.root(),
            &consistency
        ),
        Ok(())
    );
    // A proof made with one hash function does not verify under the other.
    let leaf = tree.leaves()[13];
    assert!(matches!(
        verify_inclusion::<Sha256>(&leaf, &inclusion, &tree.root()),
        Err(ProofError::RootMismatch { .. })
    ));
}
