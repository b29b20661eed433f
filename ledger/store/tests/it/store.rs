//! The store: appends, refusals, reads, proofs, reopen checks.

use surplus_ledger::testutil::{certificate, TestChain};
use surplus_ledger::{
    verify_consistency, verify_inclusion, Blake3, Block, Checkpoint, Conflict, Entry, EntryKind,
    Hasher as _,
};
use surplus_store as store;
use surplus_store::{Error, Store};

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, store::Config::default()).unwrap()
}

fn filled(dir: &std::path::Path, blocks: usize, per_block: usize) -> (Store, TestChain) {
    let chain = TestChain::build("test-chain", blocks, per_block);
    let mut s = open(dir);
    for b in &chain.blocks {
        s.append(b).unwrap();
    }
    (s, chain)
}

fn rejected_field(r: Result<surplus_store::Appended, Error>) -> String {
    match r {
        Err(Error::Rejected(f)) => f.field,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn blocks_read_back_identically_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (s, chain) = filled(dir.path(), 5, 7);
    assert_eq!(s.height(), Some(5));
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.height(), Some(5));
    assert_eq!(s.tree_size(), chain.blocks.last().unwrap().header.tree_size);
    for (h, b) in chain.blocks.iter().enumerate() {
        assert_eq!(&s.block(h as u64).unwrap(), b);
    }
    let first = chain.blocks[2].header.tree_size;
    assert_eq!(s.entry(first).unwrap(), chain.blocks[3].entries[0]);
    assert_eq!(s.height_of_entry(first).unwrap(), 3);
    assert_eq!(s.height_of_entry(first - 1).unwrap(), 2);
    let from3: Vec<Block> = s.blocks(3).map(Result::unwrap).collect();
    assert_eq!(from3, chain.blocks[3..].to_vec());
    assert!(matches!(s.block(6), Err(Error::OutOfRange { .. })));
    assert!(matches!(s.entry(s.tree_size()), Err(Error::OutOfRange { .. })));
}

#[test]
fn group_commit_stores_every_block() {
    let dir = tempfile::tempdir().unwrap();
    let chain = TestChain::build("group", 6, 3);
    let mut s = open(dir.path());
    let acks = s.append_group(&chain.blocks).unwrap();
    assert_eq!(acks.len(), 7);
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.height(), Some(6));
    s.audit(&Default::default(), &mut surplus_ledger::NoHook, &mut |_| {}).unwrap();
}

#[test]
fn a_block_that_does_not_extend_the_head_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, base) = filled(dir.path(), 3, 2);
    let mut chain = base.clone();
    let entries = chain.signed_entries(2, 16);
    let good = chain.push_block(entries.clone());
    let head_before = s.checkpoint(None).unwrap();

    // Replay of an old block, and a block from the future.
    assert_eq!(rejected_field(s.append(&chain.blocks[2])), "header.height");
    let mut future = good.clone();
    future.header.height += 1;
    assert_eq!(rejected_field(s.append(&future)), "header.height");

    // Wrong previous hash: re-sign the certificate so only the link is wrong.
    let mut bad = good.clone();
    bad.header.prev_hash[0] ^= 1;
    bad.certificate = resign(&chain, &bad);
    assert_eq!(rejected_field(s.append(&bad)), "header.prev_hash");

    // Timestamp before the head's.
    let mut bad = good.clone();
    bad.header.timestamp_ms = chain.blocks[3].header.timestamp_ms - 1;
    bad.certificate = resign(&chain, &bad);
    assert_eq!(rejected_field(s.append(&bad)), "header.timestamp_ms");

    // Another chain's block.
    let other = TestChain::build("other-chain", 4, 2);
    let foreign = other.blocks[4].clone();
    assert_eq!(rejected_field(s.append(&foreign)), "header.chain_id");

    // Certificate: too few signatures, a forged one, one signed for another height.
    let hash = good.header.hash();
    let mut bad = good.clone();
    bad.certificate = certificate("test-chain", 4, 0, &hash, &chain.validators, &[0, 1]);
    assert_eq!(rejected_field(s.append(&bad)), "certificate");
    let mut bad = good.clone();
    bad.certificate.signatures[1].signature.0[5] ^= 0x10;
    assert_eq!(rejected_field(s.append(&bad)), "certificate");
    let mut bad = good.clone();
    bad.certificate = certificate("test-chain", 5, 0, &hash, &chain.validators, &[0, 1, 2]);
    assert_eq!(rejected_field(s.append(&bad)), "certificate");

    // Wrong Merkle root and tree size, forged entry signature.
    let mut bad = good.clone();
    bad.header.merkle_root[31] ^= 1;
    bad.certificate = resign(&chain, &bad);
    assert_eq!(rejected_field(s.append(&bad)), "header.merkle_root");
    let mut bad = good.clone();
    bad.header.tree_size += 1;
    bad.certificate = resign(&chain, &bad);
    assert_eq!(rejected_field(s.append(&bad)), "header.tree_size");
    // A forged entry signature under a correct root and certificate.
    let mut forged = entries.clone();
    forged[1] = forge(&forged[1]);
    let bad = base.clone().push_block(forged);
    assert_eq!(rejected_field(s.append(&bad)), "entry.signature");

    assert_eq!(s.checkpoint(None).unwrap(), head_before);
    s.append(&good).unwrap();
    assert_eq!(s.height(), Some(4));
    drop(s);
    let s = open(dir.path());
    s.audit(&Default::default(), &mut surplus_ledger::NoHook, &mut |_| {}).unwrap();
}

fn resign(chain: &TestChain, b: &Block) -> surplus_ledger::Certificate {
    certificate(
        &chain.chain_id,
        b.header.height,
        0,
        &b.header.hash(),
        &chain.validators,
        &[0, 1, 2, 3],
    )
}

fn forge(e: &Entry) -> Entry {
    let mut f = e.clone();
    if let surplus_ledger::Auth::Signed { signature, .. } = &mut f.auth {
        signature.0[0] ^= 1;
    }
    f
}

#[test]
fn a_genesis_without_validators_or_with_a_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let chain = TestChain::build("g", 1, 1);
    let mut g = chain.blocks[0].clone();
    g.entries.retain(|e| e.kind != EntryKind::VALIDATORS);
    assert!(matches!(s.append(&g), Err(Error::Rejected(_))));
    let mut g = chain.blocks[0].clone();
    g.certificate.round = 1;
    assert_eq!(rejected_field(s.append(&g)), "certificate");
    // A non-genesis block first.
    assert_eq!(rejected_field(s.append(&chain.blocks[1])), "header.height");
    assert_eq!(s.height(), None);
}

#[test]
fn inclusion_and_consistency_proofs_verify_against_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _chain) = filled(dir.path(), 8, 13);
    let head = s.checkpoint(None).unwrap();
    for index in [0, 1, 9, 50, head.tree_size - 1] {
        let p = s.prove_inclusion(index, None).unwrap();
        let leaf = s.entry(index).unwrap().leaf_hash();
        verify_inclusion::<Blake3>(&leaf, &p, &head.root).unwrap();
    }
    // Against an older checkpoint.
    let old = s.checkpoint(Some(3)).unwrap();
    let p = s.prove_inclusion(5, Some(old.tree_size)).unwrap();
    verify_inclusion::<Blake3>(&s.entry(5).unwrap().leaf_hash(), &p, &old.root).unwrap();
    let c = s.prove_consistency(old.tree_size, None).unwrap();
    verify_consistency::<Blake3>(&old.root, &head.root, &c).unwrap();
    old.check_consistent(&head, Some(&c)).unwrap();
    assert!(matches!(s.prove_inclusion(head.tree_size, None), Err(Error::OutOfRange { .. })));
    assert!(matches!(
        s.prove_inclusion(0, Some(head.tree_size + 1)),
        Err(Error::OutOfRange { .. })
    ));
}

#[test]
fn signed_checkpoints_reveal_a_forked_history() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (a, _) = filled(dir_a.path(), 4, 5);
    // Same genesis and validators, a different block 4.
    let mut chain = TestChain::build("test-chain", 3, 5);
    let e = chain.signed_entries(6, 9);
    chain.push_block(e);
    let mut b = open(dir_b.path());
    for blk in &chain.blocks {
        b.append(blk).unwrap();
    }
    let node = surplus_ledger::testutil::key("node", 1);
    let ca = a.checkpoint(None).unwrap().sign(&node);
    let cb = b.checkpoint(None).unwrap().sign(&node);
    ca.verify().unwrap();
    let decoded = surplus_ledger::SignedCheckpoint::decode(&cb.encode()).unwrap();
    assert_eq!(decoded, cb);
    assert_eq!(
        ca.checkpoint.check_consistent(&cb.checkpoint, None),
        Err(Conflict::HeaderFork { height: 4 })
    );
    // A consistency proof from b's height-3 tree does not lead to a's head.
    let b3: Checkpoint = b.checkpoint(Some(3)).unwrap();
    let proof = b.prove_consistency(b3.tree_size, None).unwrap();
    assert!(matches!(
        b3.check_consistent(&ca.checkpoint, Some(&proof)),
        Err(Conflict::NotAnExtension { .. })
    ));
    // A tampered checkpoint fails its signature.
    let mut t = ca.clone();
    t.checkpoint.tree_size += 1;
    assert!(t.verify().is_err());
}

/// The engine rolling back to an older head (as sled does when its log is damaged) is reported,
/// naming the first lost block, rather than served as a shorter ledger.
#[test]
fn acknowledged_blocks_missing_from_the_engine_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut chain = TestChain::build("rollback", 3, 2);
    let mut s = open(&db);
    s.append_group(&chain.blocks).unwrap();
    drop(s);
    // Keep the engine's files at height 3, acknowledge two more blocks, then put them back.
    let saved = dir.path().join("saved");
    std::fs::create_dir_all(&saved).unwrap();
    for f in ["db", "conf"] {
        std::fs::copy(db.join(f), saved.join(f)).unwrap();
    }
    let mut s = open(&db);
    for _ in 0..2 {
        let e = chain.signed_entries(2, 8);
        s.append(&chain.push_block(e)).unwrap();
    }
    drop(s);
    for f in ["db", "conf"] {
        std::fs::copy(saved.join(f), db.join(f)).unwrap();
    }
    match Store::open(&db, store::Config::default()) {
        Err(Error::Damaged(f)) => {
            assert_eq!((f.height, f.field.as_str()), (4, "store"), "{f}");
            assert!(f.reason.contains("blocks 4 to 5 were acknowledged"), "{f}");
        }
        other => panic!("expected damage, got {other:?}"),
    }
    // Without its head record the store is refused too.
    std::fs::remove_file(db.join(store::HEAD_FILE)).unwrap();
    assert!(matches!(Store::open(&db, store::Config::default()), Err(Error::Damaged(_))));
}

/// Found by the web tests on the real node (`surplus_service::solo`): a view opened while the
/// node appended read the head record, then found the next block stored and called the store
/// damaged, so that the node failed to start or answered a lease proof with a 500.
#[test]
fn web_tests_a_view_opened_during_an_append_is_not_damaged() {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use surplus_store::{Backend, BackendError, KvIter};

    /// A backend that can answer one read of the head record with an older record: the
    /// interleaving of a view's reads with an append.
    #[derive(Default)]
    struct Racing {
        map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
        stale_head: Mutex<Option<Vec<u8>>>,
    }
    struct Handle(Arc<Racing>);
    impl Backend for Handle {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
            if key == b"meta/head" {
                if let Some(old) = self.0.stale_head.lock().unwrap().take() {
                    return Ok(Some(old));
                }
            }
            Ok(self.0.map.lock().unwrap().get(key).cloned())
        }
        fn apply(&self, batch: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), BackendError> {
            self.0.map.lock().unwrap().extend(batch);
            Ok(())
        }
        fn flush(&self) -> Result<(), BackendError> {
            Ok(())
        }
        fn range<'a>(&'a self, start: &[u8], end: &[u8]) -> KvIter<'a> {
            let map = self.0.map.lock().unwrap();
            let pairs: Vec<_> = map
                .range(start.to_vec()..end.to_vec())
                .map(|(k, v)| Ok((k.clone(), v.clone())))
                .collect();
            Box::new(pairs.into_iter())
        }
    }

    let racing = Arc::new(Racing::default());
    let mut chain = TestChain::build("test-chain", 3, 4);
    let mut s =
        Store::with_backend(Box::new(Handle(racing.clone())), store::Config::default()).unwrap();
    for b in &chain.blocks {
        s.append(b).unwrap();
    }
    let head_before = racing.map.lock().unwrap().get(&b"meta/head"[..]).cloned();
    let entries = chain.signed_entries(5, 40);
    s.append(&chain.push_block(entries)).unwrap();

    // The view read the head record before the append and the rest after it.
    *racing.stale_head.lock().unwrap() = head_before.clone();
    let view = s.view().unwrap();
    assert_eq!(view.height(), Some(3));
    assert_eq!(s.view().unwrap().height(), Some(4));

    // The store that appends still takes data past its head record for a crash's damage.
    *racing.stale_head.lock().unwrap() = head_before;
    let reopened = Store::with_backend(Box::new(Handle(racing)), store::Config::default());
    assert!(matches!(reopened, Err(Error::Damaged(_))), "{reopened:?}");
}

#[test]
fn a_view_reads_the_head_it_opened_at_while_the_store_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = TestChain::build("test-chain", 3, 4);
    let mut s = open(dir.path());
    for b in &chain.blocks {
        s.append(b).unwrap();
    }
    let old = s.view().unwrap();
    assert_eq!(old.height(), Some(3));

    let entries = chain.signed_entries(5, 40);
    let next = chain.push_block(entries);
    s.append(&next).unwrap();

    // The old view stays at its head: whole blocks only, and proofs against its own tree.
    assert_eq!(old.height(), Some(3));
    assert!(matches!(old.block(4), Err(Error::OutOfRange { .. })));
    let size = old.tree_size();
    let proof = old.prove_inclusion(size - 1, None).unwrap();
    let leaf = Blake3::leaf(&old.entry(size - 1).unwrap().encode());
    verify_inclusion::<Blake3>(&leaf, &proof, &old.checkpoint(None).unwrap().root).unwrap();

    // A new view sees the new block, identical to what was appended.
    let mut new = s.view().unwrap();
    assert_eq!(new.height(), Some(4));
    assert_eq!(new.block(4).unwrap(), next);
    assert_eq!(new.checkpoint(None).unwrap(), s.checkpoint(None).unwrap());

    // Nothing is appended through a view, and the store is unchanged by the attempt.
    let another = chain.push_block(Vec::new());
    assert!(matches!(new.append(&another), Err(Error::ReadOnly)));
    assert_eq!(s.height(), Some(4));
    s.append(&another).unwrap();
    assert_eq!(s.view().unwrap().height(), Some(5));
}
