//! jmt 0.12.0 (BLAKE3) as the oracle: roots after every batch, proofs and range proofs, byte for
//! byte once jmt's sibling nodes are reduced to their hashes.

mod common;

use std::collections::BTreeMap;

use common::{key_pool, value_bytes, Oracle};
use jmt::{KeyHash, RootHash};
use proptest::prelude::*;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use surplus_state::{value_hash, Hash, Tree, PLACEHOLDER};

/// One change: an index into the key pool, and a value number or a deletion.
type Change = (usize, Option<u8>);

fn batches() -> impl Strategy<Value = Vec<Vec<Change>>> {
    let change = (0..key_pool().len(), prop::option::weighted(0.7, 0..4u8));
    prop::collection::vec(prop::collection::vec(change, 0..14), 1..10)
}

/// Checks every key of the pool: our proof verifies and equals jmt's; jmt's raw proof verifies
/// against our root; range proofs equal jmt's for present keys.
fn check_proofs(ours: &Tree, oracle: &Oracle, model: &BTreeMap<Hash, Hash>, pool: &[Hash]) {
    let root = ours.root();
    for k in pool {
        let proof = ours.prove(k);
        let present = model.get(k);
        assert_eq!(ours.get(k).as_ref(), present);
        proof.verify(&root, k, present).expect("our proof verifies");
        if oracle.version.is_none() {
            continue;
        }
        let (jmt_value, jmt_proof) = oracle.prove(k);
        assert_eq!(proof, jmt_proof, "proof for {k:?}");
        assert_eq!(jmt_value.as_deref().map(value_hash).as_ref(), present);
        let raw = oracle.raw_proof(k);
        match &jmt_value {
            Some(v) => raw.verify_existence(RootHash(root), KeyHash(*k), v).expect("jmt verifies"),
            None => raw.verify_nonexistence(RootHash(root), KeyHash(*k)).expect("jmt verifies"),
        }
        let range = ours.range_proof(k);
        assert_eq!(range.is_some(), present.is_some());
        if let Some(range) = range {
            assert_eq!(range, oracle.range_proof(k), "range proof for {k:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn roots_proofs_and_persistence_match_jmt(batches in batches()) {
        let pool = key_pool();
        let mut ours = Tree::new();
        // Never cloned: its nodes are all uniquely owned, so it takes the in-place update path.
        let mut unshared = Tree::new();
        let mut oracle = Oracle::new();
        let mut model: BTreeMap<Hash, Hash> = BTreeMap::new();
        for batch in &batches {
            let before = ours.clone();
            let before_root = ours.root();
            let before_leaves: Vec<_> = ours.iter().collect();

            let changes: Vec<(Hash, Option<Vec<u8>>)> =
                batch.iter().map(|&(i, v)| (pool[i], v.map(value_bytes))).collect();
            ours.apply(changes.iter().map(|(k, v)| (*k, v.as_deref().map(value_hash))));
            unshared.apply(changes.iter().map(|(k, v)| (*k, v.as_deref().map(value_hash))));
            let jmt_root = oracle.apply(&changes);
            for (k, v) in &changes {
                match v {
                    Some(v) => model.insert(*k, value_hash(v)),
                    None => model.remove(k),
                };
            }

            prop_assert_eq!(ours.root(), jmt_root);
            prop_assert_eq!(unshared.root(), jmt_root);
            prop_assert_eq!(unshared.len(), model.len());
            prop_assert_eq!(oracle.root(), jmt_root);
            prop_assert_eq!(ours.len(), model.len());
            prop_assert_eq!(ours.is_empty(), model.is_empty());
            let leaves: Vec<_> = ours.iter().collect();
            let expected: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(&leaves, &expected);
            prop_assert_eq!(Tree::from_leaves(leaves.iter().rev().copied()).root(), ours.root());
            if model.is_empty() {
                prop_assert_eq!(ours.root(), PLACEHOLDER);
            }
            // Persistence: the clone taken before the batch is untouched.
            prop_assert_eq!(before.root(), before_root);
            prop_assert_eq!(before.iter().collect::<Vec<_>>(), before_leaves);

            check_proofs(&ours, &oracle, &model, &pool);
        }
    }
}

fn random_hash(rng: &mut impl RngCore) -> Hash {
    let mut h = [0u8; 32];
    rng.fill_bytes(&mut h);
    h
}

/// Larger random trees (5,000 keys), then a third deleted and some updated, in mixed batches.
#[test]
fn large_random_tree_matches_jmt() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let keys: Vec<Hash> = (0..5_000).map(|_| random_hash(&mut rng)).collect();
    let mut ours = Tree::new();
    let mut oracle = Oracle::new();
    let mut model = BTreeMap::new();
    for round in 0..6 {
        let mut changes: Vec<(Hash, Option<Vec<u8>>)> = Vec::new();
        for _ in 0..1_500 {
            let k = keys[rng.gen_range(0..keys.len())];
            let delete = round >= 3 && rng.gen_bool(0.4);
            changes.push((k, (!delete).then(|| rng.gen::<[u8; 8]>().to_vec())));
        }
        // Odd rounds update a tree whose previous version stays alive (the shared path, on two
        // threads for this many changes); even rounds the sole owner's (in place).
        let before = (round % 2 == 1).then(|| ours.clone());
        let before_root = ours.root();
        ours.apply(changes.iter().map(|(k, v)| (*k, v.as_deref().map(value_hash))));
        assert_eq!(ours.root(), oracle.apply(&changes), "round {round}");
        if let Some(before) = before {
            assert_eq!(before.root(), before_root, "round {round}: the previous version changed");
            assert_eq!(before.iter().count(), model.len());
        }
        for (k, v) in &changes {
            match v {
                Some(v) => model.insert(*k, value_hash(v)),
                None => model.remove(k),
            };
        }
        assert_eq!(ours.len(), model.len());
        assert_eq!(Tree::from_leaves(model.iter().map(|(k, v)| (*k, *v))).root(), ours.root());
    }
    // A sample of proofs, present and absent.
    let root = ours.root();
    for k in keys.iter().step_by(97).chain([[0u8; 32], [0xff; 32]].iter()) {
        let proof = ours.prove(k);
        assert_eq!(proof, oracle.prove(k).1);
        proof.verify(&root, k, model.get(k)).expect("verifies");
        if model.contains_key(k) {
            assert_eq!(ours.range_proof(k), Some(oracle.range_proof(k)));
        }
    }
    // Delete everything: back to the placeholder, as in jmt.
    let all: Vec<(Hash, Option<Vec<u8>>)> = keys.iter().map(|k| (*k, None)).collect();
    ours.apply(all.iter().map(|(k, _)| (*k, None)));
    assert_eq!(ours.root(), PLACEHOLDER);
    assert_eq!(oracle.apply(&all), PLACEHOLDER);
    assert!(ours.is_empty());
}
