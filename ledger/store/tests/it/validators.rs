//! Validator-set changes in a store: the set in force at each height, kept through pruning and
//! reopening, checked by the audit from full blocks and from headers alone.

use surplus_ledger::testutil::{key, TestChain};
use surplus_ledger::{verify_inclusion, Blake3, Block, NoHook, SecretKey};
use surplus_store::{Config, Error, Store};

/// Genesis (validators 0..4), blocks 1 and 2, block 3 holding a validator-set entry (validators
/// 1, 2, 4 and 5 with powers 1, 1, 1 and 3), then blocks 4 to 9 decided by the new set.
fn changed() -> TestChain {
    let mut c = TestChain::new("set-change", 4, 8);
    for _ in 0..2 {
        let e = c.signed_entries(3, 48);
        c.push_block(e);
    }
    let keys: Vec<SecretKey> = [1, 2, 4, 5].iter().map(|i| key("validator", *i)).collect();
    c.change_validators(keys, vec![1, 1, 1, 3]);
    for _ in 0..6 {
        let e = c.signed_entries(3, 48);
        c.push_block(e);
    }
    c
}

fn keys(s: &surplus_ledger::ValidatorSet) -> Vec<String> {
    s.validators.iter().map(|k| k.to_string()).collect()
}

#[test]
fn the_set_in_force_follows_the_validator_set_entry_through_reopen_prune_and_audit() {
    let chain = changed();
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), Config::default()).unwrap();
    for b in &chain.blocks {
        s.append(b).unwrap();
    }
    let genesis: Vec<String> = (0..4).map(|i| key("validator", i).public().to_string()).collect();
    let new: Vec<String> =
        [1, 2, 4, 5].iter().map(|i| key("validator", *i).public().to_string()).collect();
    // Block 3 holds the entry and is still decided by the genesis set; block 4 by the new one.
    assert_eq!(keys(&s.validators_at(3).unwrap()), genesis);
    assert_eq!(keys(&s.validators_at(4).unwrap()), new);
    assert_eq!(s.validators_at(4).unwrap().powers, vec![1, 1, 1, 3]);
    assert_eq!(s.validators_at(4).unwrap().quorum(), 5);
    assert_eq!(keys(&s.state().unwrap().validators), new);

    // The record proves the entry under block 3's root.
    let changes = s.set_changes().unwrap();
    assert_eq!(changes.len(), 1);
    let c = &changes[0];
    assert_eq!(c.height(), 3);
    assert_eq!(c.entry, chain.blocks[3].entries[0]);
    verify_inclusion::<Blake3>(&c.entry.leaf_hash(), &c.proof, &chain.blocks[3].header.merkle_root)
        .unwrap();
    let full = s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    assert_eq!((full.head_height, full.from_height), (9, 0));
    drop(s);

    // Reopened, then pruned below the change: the set is read back from the record, and the
    // audit checks blocks 1 to 6 by header, block 4's against the new set.
    let mut s = Store::open(dir.path(), Config::default()).unwrap();
    assert_eq!(keys(&s.state().unwrap().validators), new);
    assert_eq!(keys(&s.validators_at(2).unwrap()), genesis);
    s.prune(7).unwrap();
    drop(s);
    let s = Store::open(dir.path(), Config::default()).unwrap();
    assert_eq!(keys(&s.validators_at(5).unwrap()), new);
    assert_eq!(s.set_changes().unwrap().len(), 1);
    let pruned = s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    assert_eq!((pruned.head_height, pruned.from_height), (9, 7));
    assert_eq!(pruned.head_hash, full.head_hash);

    // And the chain goes on under the new set.
    let mut more = chain.clone();
    let e = more.signed_entries(2, 48);
    let next = more.push_block(e);
    let mut s = s;
    s.append(&next).unwrap();
}

#[test]
fn a_block_after_the_change_decided_by_the_old_set_is_refused() {
    let chain = changed();
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), Config::default()).unwrap();
    for b in &chain.blocks[..4] {
        s.append(b).unwrap();
    }
    // Block 4 as the genesis set would have decided it.
    let mut block: Block = chain.blocks[4].clone();
    let all: Vec<SecretKey> = (0..4).map(|i| key("validator", i)).collect();
    block.certificate = surplus_ledger::testutil::certificate(
        "set-change",
        4,
        0,
        &block.header.hash(),
        &all,
        &[0, 1, 2, 3],
    );
    match s.append(&block) {
        Err(Error::Rejected(f)) => {
            assert_eq!((f.height, f.field.as_str()), (4, "certificate"), "{f}")
        }
        other => panic!("expected a refused certificate, got {other:?}"),
    }
    // Three of the four new validators hold power 3 of 6: no quorum either.
    let new: Vec<SecretKey> = [1, 2, 4, 5].iter().map(|i| key("validator", *i)).collect();
    block.certificate = surplus_ledger::testutil::certificate(
        "set-change",
        4,
        0,
        &block.header.hash(),
        &new,
        &[0, 1, 2],
    );
    match s.append(&block) {
        Err(Error::Rejected(f)) => assert!(f.reason.contains("quorum"), "{f}"),
        other => panic!("expected no quorum, got {other:?}"),
    }
    s.append(&chain.blocks[4]).unwrap();
}

/// The Merkle frontier after block `height` of `chain`.
fn frontier_at(chain: &TestChain, height: usize) -> surplus_ledger::Frontier {
    let mut f = surplus_ledger::Frontier::new();
    let mut sink = Vec::new();
    for b in &chain.blocks[..=height] {
        for e in &b.entries {
            f.push::<Blake3>(e.leaf_hash(), &mut sink);
        }
    }
    f
}

#[test]
fn a_store_started_above_a_set_change_follows_it_from_genesis() {
    let chain = changed();
    let full_dir = tempfile::tempdir().unwrap();
    let mut full = Store::open(full_dir.path(), Config::default()).unwrap();
    for b in &chain.blocks {
        full.append(b).unwrap();
    }
    let changes = full.set_changes().unwrap();
    let base = &chain.blocks[6];
    let head = (base.header.clone(), base.certificate.clone());
    let open = |changes: &[surplus_ledger::SetChange]| {
        let dir = tempfile::tempdir().unwrap();
        let r = Store::open_at_base(
            dir.path(),
            Config::default(),
            &chain.blocks[0],
            &head,
            &frontier_at(&chain, 6),
            changes,
        );
        (dir, r)
    };
    // Without the change, block 6's certificate is checked against the genesis set and fails.
    match open(&[]).1 {
        Err(Error::Rejected(f)) => assert_eq!((f.height, f.field.as_str()), (6, "certificate")),
        other => panic!("expected the base's certificate refused, got {other:?}"),
    }
    // A change whose block the genesis set did not decide is refused.
    let mut forged = changes.clone();
    forged[0].certificate.signatures.truncate(1);
    match open(&forged).1 {
        Err(Error::Rejected(f)) => assert_eq!((f.height, f.field.as_str()), (3, "certificate")),
        other => panic!("expected the change's certificate refused, got {other:?}"),
    }
    // With it: the store knows the new set, appends blocks 7 to 9, reopens and audits.
    let (dir, s) = open(&changes);
    let mut s = s.unwrap();
    assert_eq!(s.validators_at(7).unwrap().powers, vec![1, 1, 1, 3]);
    assert_eq!(s.validators_at(2).unwrap().powers, vec![1; 4]);
    for b in &chain.blocks[7..] {
        s.append(b).unwrap();
    }
    drop(s);
    let s = Store::open(dir.path(), Config::default()).unwrap();
    assert_eq!(s.set_changes().unwrap(), changes);
    let report = s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    assert_eq!((report.head_height, report.headers_from), (9, 6));
    assert_eq!(report.head_hash, chain.blocks[9].header.hash());
}
