//! Tampering with proofs, and snapshot restore (against our range proofs and jmt's).

mod common;

use common::{key_pool, value_bytes, Oracle};
use proptest::prelude::*;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use surplus_state::{
    value_hash, Hash, Proof, ProofError, RangeProof, Restore, RestoreError, Tree, PLACEHOLDER,
};

fn random_hash(rng: &mut impl RngCore) -> Hash {
    let mut h = [0u8; 32];
    rng.fill_bytes(&mut h);
    h
}

/// A tree of random keys plus the pool's long-prefix keys, and some keys known to be absent.
fn sample_tree(n: usize, seed: u64) -> (Tree, Vec<Hash>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut leaves: Vec<(Hash, Hash)> =
        (0..n).map(|_| (random_hash(&mut rng), random_hash(&mut rng))).collect();
    let pool = key_pool();
    // Every other pool key present: absent ones then share long prefixes with present ones.
    leaves.extend(pool.iter().step_by(2).map(|k| (*k, value_hash(k))));
    let mut absent: Vec<Hash> = pool.iter().skip(1).step_by(2).copied().collect();
    absent.extend((0..10).map(|_| random_hash(&mut rng)));
    (Tree::from_leaves(leaves), absent)
}

/// Flipping any one byte of an encoded proof makes it undecodable or unverifiable.
fn assert_tamper_evident(proof: &Proof, root: &Hash, key: &Hash, value: Option<&Hash>) {
    let bytes = proof.encode();
    assert_eq!(Proof::decode(&bytes).as_ref(), Ok(proof));
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            if let Ok(p) = Proof::decode(&b) {
                assert!(p.verify(root, key, value).is_err(), "flipped byte {i} of proof accepted");
            }
        }
    }
}

#[test]
fn proofs_verify_and_any_change_is_refused() {
    let (tree, absent) = sample_tree(300, 1);
    let root = tree.root();
    let present: Vec<(Hash, Hash)> = tree.iter().step_by(7).collect();
    for (k, v) in &present {
        let proof = tree.prove(k);
        assert_eq!(proof.leaf, Some((*k, *v)));
        proof.verify(&root, k, Some(v)).expect("inclusion verifies");
        assert_eq!(proof.verify(&root, k, None), Err(ProofError::KeyPresent));
        assert_tamper_evident(&proof, &root, k, Some(v));
        // Any other value, or any other key, is refused.
        for i in 0..32 {
            let mut v2 = *v;
            v2[i] ^= 1;
            assert!(matches!(
                proof.verify(&root, k, Some(&v2)),
                Err(ProofError::ValueMismatch { .. })
            ));
            let mut k2 = *k;
            k2[i] ^= 1;
            assert!(proof.verify(&root, &k2, Some(v)).is_err());
            // As an exclusion proof for another key, it holds only where k's lone leaf really is
            // on that key's path (jmt's rule too).
            if proof.verify(&root, &k2, None).is_ok() {
                assert_eq!(tree.get(&k2), None);
                assert_eq!(tree.prove(&k2), proof);
            }
        }
        let mut root2 = root;
        root2[0] ^= 1;
        assert!(matches!(proof.verify(&root2, k, Some(v)), Err(ProofError::RootMismatch { .. })));
    }
    let mut kinds = (0, 0);
    for k in &absent {
        assert_eq!(tree.get(k), None);
        let proof = tree.prove(k);
        match proof.leaf {
            None => kinds.0 += 1,
            Some(_) => kinds.1 += 1,
        }
        proof.verify(&root, k, None).expect("exclusion verifies");
        assert!(proof.verify(&root, k, Some(&[0; 32])).is_err());
        assert_tamper_evident(&proof, &root, k, None);
        // Another key: accepted only if it is absent too and has the very same proof (same empty
        // position, or same lone leaf on its path).
        for i in 0..32 {
            let mut k2 = *k;
            k2[i] ^= 0x80;
            if proof.verify(&root, &k2, None).is_ok() {
                assert_eq!(tree.get(&k2), None);
                assert_eq!(tree.prove(&k2), proof);
            }
        }
        if let Some((lk, lv)) = proof.leaf {
            // The leaf of an exclusion proof is present, and its own key cannot be excluded.
            assert_eq!(proof.verify(&root, &lk, None), Err(ProofError::KeyPresent));
            assert_eq!(tree.get(&lk), Some(lv));
        }
    }
    assert!(kinds.0 > 0 && kinds.1 > 0, "both kinds of exclusion proof exercised: {kinds:?}");
}

#[test]
fn exclusion_leaf_must_share_the_path() {
    let mut t = Tree::new();
    let a = [0u8; 32];
    let mut b = [0u8; 32];
    b[0] = 0x80;
    t.apply([(a, Some([1; 32])), (b, Some([2; 32]))]);
    let root = t.root();
    // Key c goes left (like a) but differs from a after 1 bit: a proves c absent at depth 1.
    let mut c = [0u8; 32];
    c[0] = 0x40;
    let p = t.prove(&c);
    assert_eq!(p.leaf, Some((a, [1; 32])));
    p.verify(&root, &c, None).expect("valid exclusion");
    // The same leaf cannot exclude a key on the other side.
    let mut d = b;
    d[31] = 9;
    assert_eq!(p.verify(&root, &d, None), Err(ProofError::PathMismatch { shared: 0, depth: 1 }));
    // An inclusion proof for another key is refused.
    assert!(matches!(p.verify(&root, &c, Some(&[1; 32])), Err(ProofError::KeyMismatch { .. })));
}

/// Cuts the tree's leaves into chunks of random sizes, each with its range proof.
fn chunks(tree: &Tree, rng: &mut impl Rng, max: usize) -> Vec<(Vec<(Hash, Hash)>, RangeProof)> {
    let leaves: Vec<_> = tree.iter().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < leaves.len() {
        let n = rng.gen_range(1..=max).min(leaves.len() - i);
        // Cut through range_from, as a server would.
        let chunk: Vec<_> = tree.range_from(&leaves[i].0).take(n).collect();
        assert_eq!(chunk, leaves[i..i + n]);
        let proof = tree.range_proof(&chunk[n - 1].0).expect("last key present");
        out.push((chunk, proof));
        i += n;
    }
    out
}

fn restore_all(
    root: Hash,
    chunks: &[(Vec<(Hash, Hash)>, RangeProof)],
) -> Result<Tree, RestoreError> {
    let mut r = Restore::new(root);
    for (c, p) in chunks {
        r.add_chunk(c, p)?;
    }
    r.finish()
}

#[test]
fn restore_rebuilds_the_tree_and_refuses_tampered_chunks() {
    let (tree, _) = sample_tree(2_000, 2);
    let root = tree.root();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let chunks = chunks(&tree, &mut rng, 200);
    assert!(chunks.len() > 5);

    let restored = restore_all(root, &chunks).expect("restores");
    assert_eq!(restored.root(), root);
    assert_eq!(restored.len(), tree.len());
    assert!(restored.iter().eq(tree.iter()));

    let mut r = Restore::new(root);
    for (n, (chunk, proof)) in chunks.iter().enumerate() {
        // Wrong order: a later chunk first.
        if let Some((later, later_proof)) = chunks.get(n + 1) {
            assert!(r.add_chunk(later, later_proof).is_err(), "chunk {} before {n}", n + 1);
        }
        // An earlier chunk again.
        if n > 0 {
            let (prev, prev_proof) = &chunks[n - 1];
            assert_eq!(r.add_chunk(prev, prev_proof), Err(RestoreError::NotAfterPrevious));
        }
        assert_eq!(r.add_chunk(&[], proof), Err(RestoreError::EmptyChunk));
        if chunk.len() > 1 {
            let mut swapped = chunk.clone();
            swapped.swap(0, 1);
            assert_eq!(r.add_chunk(&swapped, proof), Err(RestoreError::NotIncreasing(1)));
        }
        // One flipped byte anywhere: in a key, a value or a proof sibling.
        for _ in 0..6 {
            let mut c = chunk.clone();
            let mut p = proof.clone();
            let byte = rng.gen_range(0..32);
            let leaf = rng.gen_range(0..c.len());
            let mask = 1u8 << rng.gen_range(0..8);
            match rng.gen_range(0..3) {
                0 => c[leaf].0[byte] ^= mask,
                1 => c[leaf].1[byte] ^= mask,
                _ if !p.right_siblings.is_empty() => {
                    let i = rng.gen_range(0..p.right_siblings.len());
                    p.right_siblings[i][byte] ^= mask;
                }
                _ => c[0].1[byte] ^= 1,
            }
            assert!(r.add_chunk(&c, &p).is_err(), "tampered chunk {n} accepted");
            assert_eq!(r.leaves(), chunks[..n].iter().map(|c| c.0.len()).sum::<usize>());
        }
        // A proof with an extra or a missing sibling.
        let mut p = proof.clone();
        p.right_siblings.push(PLACEHOLDER);
        assert!(r.add_chunk(chunk, &p).is_err());
        if !proof.right_siblings.is_empty() {
            let mut p = proof.clone();
            p.right_siblings.pop();
            assert!(r.add_chunk(chunk, &p).is_err());
        }
        // The right chunk is still accepted after all those refusals.
        r.add_chunk(chunk, proof).expect("correct chunk accepted");
    }
    assert_eq!(r.finish().expect("finishes").root(), root);
}

#[test]
fn restore_refuses_a_gap_and_an_incomplete_snapshot() {
    let (tree, _) = sample_tree(500, 4);
    let root = tree.root();
    let chunks = chunks(&tree, &mut ChaCha8Rng::seed_from_u64(5), 60);
    // Skipping chunk 1: chunk 2's proof does not account for its leaves.
    let mut r = Restore::new(root);
    r.add_chunk(&chunks[0].0, &chunks[0].1).expect("first chunk");
    assert!(matches!(
        r.add_chunk(&chunks[2].0, &chunks[2].1),
        Err(RestoreError::RootMismatch { .. })
    ));
    // Stopping early.
    r.add_chunk(&chunks[1].0, &chunks[1].1).expect("second chunk");
    assert_eq!(r.leaves(), chunks[0].0.len() + chunks[1].0.len());
    assert!(matches!(r.finish(), Err(RestoreError::Incomplete { .. })));
    // Another tree's chunk against this root.
    let (other, _) = sample_tree(500, 6);
    let oc = chunks_of(&other);
    assert!(Restore::new(root).add_chunk(&oc.0, &oc.1).is_err());
}

fn chunks_of(tree: &Tree) -> (Vec<(Hash, Hash)>, RangeProof) {
    let c: Vec<_> = tree.iter().take(10).collect();
    let p = tree.range_proof(&c[9].0).expect("present");
    (c, p)
}

#[test]
fn restore_edge_cases() {
    // Empty tree: zero chunks.
    assert_eq!(Restore::new(PLACEHOLDER).finish().expect("empty").root(), PLACEHOLDER);
    assert!(matches!(Restore::new([1; 32]).finish(), Err(RestoreError::Incomplete { .. })));
    // One leaf: a chunk with an empty proof.
    let t = Tree::from_leaves([([7; 32], [8; 32])]);
    let p = t.range_proof(&[7; 32]).expect("present");
    assert!(p.right_siblings.is_empty());
    let mut r = Restore::new(t.root());
    assert!(r.add_chunk(&[([7; 32], [9; 32])], &p).is_err());
    r.add_chunk(&[([7; 32], [8; 32])], &p).expect("one leaf");
    assert_eq!(r.finish().expect("done").root(), t.root());
    // Two keys differing only in the last bit: 255 right siblings for the first (254 placeholders).
    let (a, mut b) = ([0u8; 32], [0u8; 32]);
    b[31] = 1;
    let t = Tree::from_leaves([(a, [1; 32]), (b, [2; 32])]);
    let p = t.range_proof(&a).expect("present");
    assert_eq!(p.right_siblings.len(), 256);
    assert_eq!(t.range_proof(&[5; 32]), None);
    let mut r = Restore::new(t.root());
    r.add_chunk(&[(a, [1; 32])], &p).expect("first");
    r.add_chunk(&[(b, [2; 32])], &t.range_proof(&b).expect("present")).expect("second");
    assert_eq!(r.finish().expect("done").root(), t.root());
    // Too many right siblings for the path.
    let bad = RangeProof { right_siblings: vec![PLACEHOLDER; 257] };
    assert!(matches!(
        Restore::new(t.root()).add_chunk(&[(a, [1; 32])], &bad),
        Err(RestoreError::TooManyRightSiblings { .. })
    ));
    // Encoding round trip.
    assert_eq!(RangeProof::decode(&p.encode()), Ok(p));
}

/// Restores from jmt's own range proofs (reduced to hashes), which must also equal ours.
#[test]
fn restore_from_jmt_range_proofs() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut oracle = Oracle::new();
    let mut changes: Vec<(Hash, Option<Vec<u8>>)> =
        (0..1_000).map(|_| (random_hash(&mut rng), Some(rng.gen::<[u8; 4]>().to_vec()))).collect();
    changes.extend(key_pool().into_iter().map(|k| (k, Some(value_bytes(1)))));
    let root = oracle.apply(&changes);
    // Some deletions in a second version.
    let deletes: Vec<(Hash, Option<Vec<u8>>)> =
        changes.iter().step_by(3).map(|(k, _)| (*k, None)).collect();
    let root2 = oracle.apply(&deletes);
    assert_ne!(root, root2);

    let mut tree = Tree::new();
    tree.apply(changes.iter().map(|(k, v)| (*k, v.as_deref().map(value_hash))));
    tree.apply(deletes.iter().map(|(k, _)| (*k, None)));
    assert_eq!(tree.root(), root2);

    let leaves: Vec<_> = tree.iter().collect();
    let mut r = Restore::new(root2);
    for chunk in leaves.chunks(37) {
        let last = chunk[chunk.len() - 1].0;
        let jmt_proof = oracle.range_proof(&last);
        assert_eq!(Some(&jmt_proof), tree.range_proof(&last).as_ref());
        r.add_chunk(chunk, &jmt_proof).expect("jmt chunk accepted");
    }
    assert_eq!(r.finish().expect("restored").root(), root2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random trees over long-prefix and random keys, random chunkings: restore gives the root.
    #[test]
    fn restore_any_chunking(
        pool_keys in prop::collection::vec(any::<bool>(), key_pool().len()),
        random_keys in prop::collection::vec(any::<[u8; 32]>(), 0..80),
        seed in any::<u64>(),
        max in 1usize..20,
    ) {
        let pool = key_pool();
        let leaves: Vec<(Hash, Hash)> = pool.iter().zip(&pool_keys).filter(|(_, on)| **on)
            .map(|(k, _)| (*k, value_hash(k)))
            .chain(random_keys.iter().map(|k| (*k, value_hash(k))))
            .collect();
        let tree = Tree::from_leaves(leaves);
        let chunks = chunks(&tree, &mut ChaCha8Rng::seed_from_u64(seed), max);
        let restored = restore_all(tree.root(), &chunks).expect("restores");
        prop_assert_eq!(restored.root(), tree.root());
        prop_assert_eq!(restored.len(), tree.len());
    }
}
