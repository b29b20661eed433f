//! Stores that do not hold every block: started from a snapshot's base, or pruned. Reads of
//! what is not held say so, proofs above the base verify, the audit runs from the base, and a
//! prune interrupted between its steps reopens cleanly.

use std::path::Path;

use surplus_ledger::testutil::TestChain;
use surplus_ledger::{
    verify_consistency, verify_inclusion, Blake3, Block, Frontier, Hook, HookFailure, NoHook,
};
use surplus_store as store;
use surplus_store::{Error, SledBackend, Store};

fn config() -> store::Config {
    store::Config::default()
}

/// The Merkle frontier after block `height` of `chain`.
fn frontier_at(chain: &TestChain, height: usize) -> Frontier {
    let mut f = Frontier::new();
    let mut sink = Vec::new();
    for b in &chain.blocks[..=height] {
        for e in &b.entries {
            f.push::<Blake3>(e.leaf_hash(), &mut sink);
        }
    }
    f
}

fn head_of(b: &Block) -> (surplus_ledger::Header, surplus_ledger::Certificate) {
    (b.header.clone(), b.certificate.clone())
}

fn based(dir: &Path, chain: &TestChain, at: usize) -> Result<Store, Error> {
    Store::open_at_base(
        dir,
        config(),
        &chain.blocks[0],
        &head_of(&chain.blocks[at]),
        &frontier_at(chain, at),
        &[],
    )
}

fn full(dir: &Path, chain: &TestChain) -> Store {
    let mut s = Store::open(dir, config()).unwrap();
    for b in &chain.blocks {
        s.append(b).unwrap();
    }
    s
}

fn pruned_base(r: Result<impl std::fmt::Debug, Error>) -> u64 {
    match r {
        Err(Error::Pruned { base, .. }) => base,
        other => panic!("expected Error::Pruned, got {other:?}"),
    }
}

fn refused_field(r: Result<Store, Error>) -> String {
    match r {
        Err(Error::Rejected(f)) => f.field,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Every inclusion proof from `entries_from` and consistency proof from a block's tree size at
/// or above it verifies against the head root.
fn proofs_above_base_verify(s: &Store, chain: &TestChain) {
    let size = s.tree_size();
    let root = s.head().unwrap().merkle_root;
    for index in s.entries_from()..size {
        let proof = s.prove_inclusion(index, None).unwrap();
        let leaf = s.entry(index).unwrap().leaf_hash();
        verify_inclusion::<Blake3>(&leaf, &proof, &root).unwrap();
    }
    for b in &chain.blocks {
        let old = b.header.tree_size;
        if old >= s.entries_from().max(1) && old <= size {
            let proof = s.prove_consistency(old, None).unwrap();
            verify_consistency::<Blake3>(&b.header.merkle_root, &root, &proof).unwrap();
        }
    }
}

#[test]
fn a_store_started_at_a_base_appends_reopens_and_audits_from_the_base() {
    let chain = TestChain::build("base-chain", 10, 5);
    // Tree sizes 9 (genesis), 14, 19, 24...: bases with odd and even sizes, and height 1.
    for at in [1usize, 4, 5] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = based(dir.path(), &chain, at).unwrap();
        let at = at as u64;
        assert_eq!(s.height(), Some(at));
        assert_eq!((s.base(), s.oldest_header()), (at + 1, at));
        assert_eq!(s.entries_from(), chain.blocks[at as usize].header.tree_size);
        for b in &chain.blocks[at as usize + 1..] {
            s.append(b).unwrap();
        }
        drop(s);

        let s = Store::open(dir.path(), config()).unwrap();
        assert_eq!(s.height(), Some(10));
        assert_eq!(s.base(), at + 1);
        assert_eq!(&s.block(0).unwrap(), &chain.blocks[0]);
        assert_eq!(pruned_base(s.block(at)), at + 1);
        assert_eq!(s.read_head(at).unwrap().0, chain.blocks[at as usize].header);
        if at > 1 {
            assert_eq!(pruned_base(s.read_head(at - 1)), at + 1);
            assert_eq!(pruned_base(s.checkpoint(Some(1))), at + 1);
        }
        for h in at + 1..=10 {
            assert_eq!(&s.block(h).unwrap(), &chain.blocks[h as usize]);
        }
        let first = s.entries_from();
        assert_eq!(s.entry(first).unwrap(), chain.blocks[at as usize + 1].entries[0]);
        assert_eq!(s.height_of_entry(first).unwrap(), at + 1);
        assert_eq!(s.entry(0).unwrap(), chain.blocks[0].entries[0]);
        if first > 9 {
            assert_eq!(pruned_base(s.entry(first - 1)), at + 1);
            assert_eq!(pruned_base(s.height_of_entry(first - 1)), at + 1);
            assert_eq!(pruned_base(s.prove_inclusion(first - 1, None)), at + 1);
            assert_eq!(pruned_base(s.prove_consistency(first - 1, None)), at + 1);
        }
        proofs_above_base_verify(&s, &chain);
        let err = s.blocks(1).next().unwrap().unwrap_err();
        assert!(matches!(err, Error::Pruned { .. }), "{err}");
        let file = dir.path().join("ledger.export");
        assert_eq!(pruned_base(s.export(&file, &mut |_, _| {})), at + 1);
        assert!(!file.exists());

        let report = s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
        assert_eq!(report.from_height, at + 1);
        assert_eq!(report.headers_from, if at == 1 { 0 } else { at });
        assert_eq!(report.blocks, 1 + 1 + (10 - at));
        assert_eq!(report.head_hash, chain.blocks[10].header.hash());
        let view = s.view().unwrap();
        assert_eq!(view.base(), at + 1);
        assert_eq!(&view.block(10).unwrap(), &chain.blocks[10]);
    }
}

#[test]
fn the_error_says_what_is_not_held_and_from_where_the_store_holds_blocks() {
    let e = Error::Pruned { what: "block", value: 12, base: 500 };
    assert_eq!(
        e.to_string(),
        "block 12 is not held: this store holds blocks from 500 (pruned or synced from a snapshot)"
    );
}

#[test]
fn open_at_base_refuses_a_bad_base_and_writes_nothing() {
    let chain = TestChain::build("base-chain", 6, 3);
    let other = TestChain::build("other-chain", 6, 3);
    let dir = tempfile::tempdir().unwrap();
    let genesis = &chain.blocks[0];
    let f4 = frontier_at(&chain, 4);

    // A certificate of another block, and one with a vote removed below quorum.
    let (header, _) = head_of(&chain.blocks[4]);
    let wrong_cert = (header.clone(), chain.blocks[3].certificate.clone());
    let r = Store::open_at_base(dir.path(), config(), genesis, &wrong_cert, &f4, &[]);
    assert_eq!(refused_field(r), "certificate");
    let mut thin = chain.blocks[4].certificate.clone();
    thin.signatures.truncate(1);
    let r = Store::open_at_base(dir.path(), config(), genesis, &(header.clone(), thin), &f4, &[]);
    assert_eq!(refused_field(r), "certificate");

    // A frontier of another size, and one of the right size with another root.
    let r = Store::open_at_base(
        dir.path(),
        config(),
        genesis,
        &head_of(&chain.blocks[4]),
        &frontier_at(&chain, 3),
        &[],
    );
    assert_eq!(refused_field(r), "frontier");
    let mut hashes = f4.hashes().to_vec();
    hashes[0][0] ^= 1;
    let bent = Frontier::from_parts(f4.size(), hashes).unwrap();
    let r =
        Store::open_at_base(dir.path(), config(), genesis, &head_of(&chain.blocks[4]), &bent, &[]);
    assert_eq!(refused_field(r), "frontier");

    // Another chain's block (its certificate is by other validators), genesis as a base.
    let r = Store::open_at_base(
        dir.path(),
        config(),
        genesis,
        &head_of(&other.blocks[4]),
        &frontier_at(&other, 4),
        &[],
    );
    assert_eq!(refused_field(r), "header.chain_id");
    let r = Store::open_at_base(
        dir.path(),
        config(),
        genesis,
        &head_of(&chain.blocks[0]),
        &frontier_at(&chain, 0),
        &[],
    );
    assert_eq!(refused_field(r), "header.height");

    // Nothing was written: the directory still takes a good base, then refuses a second one.
    let s = based(dir.path(), &chain, 4).unwrap();
    drop(s);
    assert!(matches!(based(dir.path(), &chain, 4), Err(Error::NotEmpty(_))));
    let full_dir = tempfile::tempdir().unwrap();
    drop(full(full_dir.path(), &chain));
    assert!(matches!(based(full_dir.path(), &chain, 4), Err(Error::NotEmpty(_))));
}

#[test]
fn a_pruned_store_keeps_headers_serves_what_it_holds_and_appends() {
    let mut chain = TestChain::build("prune-chain", 12, 5);
    let dir = tempfile::tempdir().unwrap();
    let mut s = full(dir.path(), &chain);
    assert_eq!((s.base(), s.oldest_header(), s.entries_from()), (0, 1, 0));

    let p = s.prune(7).unwrap();
    assert_eq!((p.base, p.blocks), (7, 6));
    assert_eq!(p.entries, chain.blocks[6].header.tree_size - chain.blocks[0].header.tree_size);
    assert!(p.nodes > 0 && p.bytes > 0, "{p:?}");
    assert_eq!(pruned_base(s.block(3)), 7);
    assert_eq!(pruned_base(s.block(6)), 7);
    assert_eq!(s.read_head(3).unwrap().0, chain.blocks[3].header);
    assert_eq!(&s.block(7).unwrap(), &chain.blocks[7]);
    assert_eq!(pruned_base(s.view().unwrap().block(2)), 7);
    proofs_above_base_verify(&s, &chain);

    // Pruning at or below the base changes nothing; beyond the head it stops at the head.
    assert_eq!(s.prune(5).unwrap(), store::Pruned { base: 7, ..Default::default() });

    let entries = chain.signed_entries(3, 64);
    let next = chain.push_block(entries);
    s.append(&next).unwrap();
    drop(s);

    let mut s = Store::open(dir.path(), config()).unwrap();
    assert_eq!((s.height(), s.base(), s.oldest_header()), (Some(13), 7, 1));
    let report = s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    assert_eq!((report.from_height, report.headers_from, report.blocks), (7, 0, 14));
    assert_eq!(report.entries, chain.blocks[0].entries.len() as u64 + 6 * 5 + 3);
    proofs_above_base_verify(&s, &chain);

    let p = s.prune(100).unwrap();
    assert_eq!((p.base, p.blocks), (13, 6));
    drop(s);
    let s = Store::open(dir.path(), config()).unwrap();
    assert_eq!(&s.block(13).unwrap(), &chain.blocks[13]);
    let report = s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    assert_eq!(report.from_height, 13);
    proofs_above_base_verify(&s, &chain);
}

#[test]
fn a_store_started_at_a_base_prunes_further() {
    let chain = TestChain::build("base-chain", 10, 4);
    let dir = tempfile::tempdir().unwrap();
    let mut s = based(dir.path(), &chain, 4).unwrap();
    // Only the base's header is held below the head: nothing to prune yet.
    assert_eq!(s.prune(4).unwrap().base, 5);
    for b in &chain.blocks[5..] {
        s.append(b).unwrap();
    }
    assert_eq!(s.prune(8).unwrap().blocks, 3);
    drop(s);
    let s = Store::open(dir.path(), config()).unwrap();
    assert_eq!((s.base(), s.oldest_header()), (8, 4));
    let report = s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    assert_eq!((report.from_height, report.headers_from, report.blocks), (8, 4, 8));
    proofs_above_base_verify(&s, &chain);
}

/// A crash after the new base is recorded but before everything below it is deleted leaves
/// data below the base: the store reopens and verifies, and the next prune sweeps it.
#[test]
fn a_prune_interrupted_before_its_deletes_reopens_and_is_finished_by_the_next() {
    let chain = TestChain::build("prune-chain", 10, 5);
    let dir = tempfile::tempdir().unwrap();
    drop(full(dir.path(), &chain));
    let all: Vec<(sled::IVec, sled::IVec)> = {
        let b = SledBackend::open(dir.path(), surplus_store::CACHE_BYTES).unwrap();
        b.db().iter().map(Result::unwrap).collect()
    };
    let mut s = Store::open(dir.path(), config()).unwrap();
    s.prune(6).unwrap();
    drop(s);
    let kept: usize = {
        let b = SledBackend::open(dir.path(), surplus_store::CACHE_BYTES).unwrap();
        // Put back every entry, node and header that prune deleted: as if it stopped right
        // after recording the base and copying the headers below it to the header file.
        for (k, v) in &all {
            if (k[0] == b'E' || k[0] == b'N' || k[0] == b'H') && !b.db().contains_key(k).unwrap() {
                b.db().insert(k, v.clone()).unwrap();
            }
        }
        b.db().flush().unwrap();
        b.db().len()
    };
    assert_eq!(kept, all.len() + 1, "everything back, and the base record");

    let mut s = Store::open(dir.path(), config()).unwrap();
    assert_eq!(s.base(), 6);
    assert_eq!(pruned_base(s.block(2)), 6);
    let report = s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    assert_eq!(report.from_height, 6);
    let p = s.prune(6).unwrap();
    assert_eq!((p.base, p.blocks), (6, 0));
    assert_eq!(p.entries, chain.blocks[5].header.tree_size - chain.blocks[0].header.tree_size);
    assert!(p.nodes > 0);
    assert_eq!(p.headers, 5, "the engine's copies of the headers the header file holds");
    assert_eq!(s.prune(6).unwrap(), store::Pruned { base: 6, ..Default::default() });
    drop(s);
    let s = Store::open(dir.path(), config()).unwrap();
    s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    proofs_above_base_verify(&s, &chain);
}

#[test]
fn a_damaged_frontier_at_the_base_is_caught_on_open() {
    let chain = TestChain::build("prune-chain", 8, 5);
    let dir = tempfile::tempdir().unwrap();
    let mut s = full(dir.path(), &chain);
    s.prune(5).unwrap();
    drop(s);
    let start = chain.blocks[4].header.tree_size;
    let level = 63 - start.leading_zeros() as u8;
    {
        let b = SledBackend::open(dir.path(), surplus_store::CACHE_BYTES).unwrap();
        let mut key = vec![b'N', level];
        key.extend_from_slice(&0u64.to_be_bytes());
        assert!(b.db().contains_key(&key).unwrap(), "the frontier's largest node is kept");
        b.db().insert(key, vec![7u8; 32]).unwrap();
        b.db().flush().unwrap();
    }
    match Store::open(dir.path(), config()) {
        Err(Error::Damaged(f)) => assert_eq!((f.height, f.field.as_str()), (4, "merkle"), "{f}"),
        other => panic!("expected damage, got {other:?}"),
    }
}

/// A hook that carries state from block to block refuses to start past pruned blocks, unless
/// it says it can.
#[test]
fn a_hook_refuses_a_pruned_ledger_unless_it_can_resume() {
    struct Counting(u64, bool);
    impl Hook for Counting {
        fn block(&mut self, _: &Block, _: &surplus_ledger::Hash) -> Result<(), HookFailure> {
            self.0 += 1;
            Ok(())
        }
        fn resume(
            &mut self,
            base: &surplus_ledger::Header,
            hash: &surplus_ledger::Hash,
        ) -> Result<(), HookFailure> {
            if self.1 {
                assert_eq!(*hash, base.hash());
                Ok(())
            } else {
                Err(HookFailure { entry: None, field: "ledger".into(), reason: "no".into() })
            }
        }
    }
    struct Default_;
    impl Hook for Default_ {
        fn block(&mut self, _: &Block, _: &surplus_ledger::Hash) -> Result<(), HookFailure> {
            Ok(())
        }
    }
    let chain = TestChain::build("prune-chain", 6, 2);
    let dir = tempfile::tempdir().unwrap();
    let mut s = full(dir.path(), &chain);
    s.prune(4).unwrap();
    let f = s.audit(&Default::default(), &mut Default_, &mut |_| {}).unwrap_err();
    assert_eq!((f.height, f.field.as_str()), (3, "ledger"), "{f}");
    let mut h = Counting(0, true);
    s.audit(&Default::default(), &mut h, &mut |_| {}).unwrap();
    assert_eq!(h.0, 1 + 3, "genesis and blocks 4 to 6");
    assert!(s.audit(&Default::default(), &mut Counting(0, false), &mut |_| {}).is_err());
}

/// A view opened before its store pruned reports the data gone as pruned, not as damage.
#[test]
fn a_view_opened_before_a_prune_reports_what_went_as_pruned() {
    let chain = TestChain::build("prune-chain", 8, 5);
    let dir = tempfile::tempdir().unwrap();
    let mut s = full(dir.path(), &chain);
    let view = s.view().unwrap();
    s.prune(6).unwrap();
    assert_eq!(view.base(), 0);
    assert_eq!(pruned_base(view.block(3)), 6);
    assert_eq!(pruned_base(view.entry(chain.blocks[2].header.tree_size)), 6);
    assert_eq!(pruned_base(view.prove_inclusion(chain.blocks[2].header.tree_size, None)), 6);
    assert_eq!(&view.block(7).unwrap(), &chain.blocks[7]);
}

/// The headers of pruned blocks are still audited: a certificate swapped in one is caught.
#[test]
fn the_audit_checks_the_headers_of_pruned_blocks() {
    let chain = TestChain::build("prune-chain", 8, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut s = full(dir.path(), &chain);
    s.prune(6).unwrap();
    drop(s);
    // Header 3 lives in the header file: its record rewritten, well formed, with block 2's
    // certificate.
    let swapped = Block {
        header: chain.blocks[3].header.clone(),
        entries: Vec::new(),
        certificate: chain.blocks[2].certificate.clone(),
    };
    let path = dir.path().join(store::HEADERS_FILE);
    let old = encode_record(3, &chain.blocks[3].encode_head());
    let new = encode_record(3, &swapped.encode_head());
    assert_eq!(old.len(), new.len());
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(old.len()).position(|w| w == old).expect("the record of header 3");
    bytes[at..at + old.len()].copy_from_slice(&new);
    std::fs::write(&path, &bytes).unwrap();
    let s = Store::open(dir.path(), config()).unwrap();
    let f = s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap_err();
    assert_eq!((f.height, f.field.as_str()), (3, "certificate"), "{f}");
}

/// The records of the header file, as `docs/ledger-format.md` §10 describes them: height,
/// length, header and certificate, then 4 bytes of blake3 over the rest.
fn header_records(dir: &Path) -> Vec<(u64, Vec<u8>)> {
    let bytes = std::fs::read(dir.join(store::HEADERS_FILE)).unwrap();
    let (mut out, mut at) = (Vec::new(), 0);
    while at < bytes.len() {
        let height = u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        let len = u32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let end = at + 12 + len;
        assert_eq!(bytes[end..end + 4], blake3::hash(&bytes[at..end]).as_bytes()[..4]);
        out.push((height, bytes[at + 12..end].to_vec()));
        at = end + 4;
    }
    let index = std::fs::read(dir.join(store::HEADERS_INDEX_FILE)).unwrap();
    assert_eq!(index.len(), 8 * out.len(), "one offset per record");
    out
}

fn encode_record(height: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = height.to_be_bytes().to_vec();
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    let check = blake3::hash(&out);
    out.extend_from_slice(&check.as_bytes()[..4]);
    out
}

/// Pruning moves the headers below the base out of the engine into the header file, where
/// they are read, audited and kept in the documented format.
#[test]
fn pruned_headers_live_in_the_header_file() {
    let chain = TestChain::build("prune-chain", 12, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut s = full(dir.path(), &chain);
    let p = s.prune(9).unwrap();
    assert_eq!(p.headers, 8, "headers 1 to 8");
    for h in 0..=12 {
        assert_eq!(s.read_head(h).unwrap().0, chain.blocks[h as usize].header, "height {h}");
    }
    drop(s);
    let records = header_records(dir.path());
    let heights: Vec<u64> = records.iter().map(|r| r.0).collect();
    assert_eq!(heights, (1..9).collect::<Vec<_>>());
    for (h, raw) in &records {
        assert_eq!(raw, &chain.blocks[*h as usize].encode_head());
    }
    {
        let b = SledBackend::open(dir.path(), surplus_store::CACHE_BYTES).unwrap();
        let engine: Vec<u64> = b
            .db()
            .scan_prefix(b"H")
            .map(|r| u64::from_be_bytes(r.unwrap().0[1..].try_into().unwrap()))
            .collect();
        assert_eq!(engine, [0, 9, 10, 11, 12], "genesis and the blocks held in full");
    }
    // Pruning further appends; the audit reads every header from both places.
    let mut s = Store::open(dir.path(), config()).unwrap();
    assert_eq!(s.prune(11).unwrap().headers, 2);
    let report = s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    assert_eq!((report.from_height, report.head_height), (11, 12));
    drop(s);
    assert_eq!(header_records(dir.path()).len(), 10);
}

/// A crash while the header file is appended to leaves a torn record: the store reopens,
/// cuts it away (the engine still holds those headers) and the next prune moves them again.
/// Damage a crash cannot leave (a record the engine no longer holds) is refused, not cut.
#[test]
fn a_torn_header_file_is_cut_back_and_damage_is_refused() {
    let chain = TestChain::build("prune-chain", 12, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut s = full(dir.path(), &chain);
    s.prune(6).unwrap();
    drop(s);
    let path = dir.path().join(store::HEADERS_FILE);
    let index = dir.path().join(store::HEADERS_INDEX_FILE);
    let clean = std::fs::read(&path).unwrap();
    // Headers 6 to 8 appended (the engine still holds them), the last one torn, its index
    // entries never written.
    let mut torn = clean.clone();
    for h in 6..=8u64 {
        torn.extend_from_slice(&encode_record(h, &chain.blocks[h as usize].encode_head()));
    }
    torn.truncate(torn.len() - 7);
    std::fs::write(&path, &torn).unwrap();
    let s = Store::open(dir.path(), config()).unwrap();
    assert_eq!(s.read_head(7).unwrap().0, chain.blocks[7].header);
    drop(s);
    assert_eq!(header_records(dir.path()).len(), 7, "headers 1 to 7, the torn 8th cut");
    let mut s = Store::open(dir.path(), config()).unwrap();
    assert_eq!(s.prune(10).unwrap().headers, 4, "the engine's copies of headers 6 to 9");
    s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    drop(s);
    assert_eq!(header_records(dir.path()).len(), 9);
    let (whole, whole_index) = (std::fs::read(&path).unwrap(), std::fs::read(&index).unwrap());

    // The last record damaged after the engine let its copy go: refused, the file untouched.
    let mut damaged = std::fs::read(&path).unwrap();
    let last = damaged.len() - 20;
    damaged[last] ^= 1;
    std::fs::write(&path, &damaged).unwrap();
    let e = Store::open(dir.path(), config()).unwrap_err();
    assert!(e.to_string().contains("neither in the header file nor in the engine"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), damaged);
    // A record in the middle damaged: the store opens, and reading that header is an error
    // that names the file.
    let mut bad = whole.clone();
    bad[whole.len() / 2] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    std::fs::write(&index, &whole_index).unwrap();
    let s = Store::open(dir.path(), config()).unwrap();
    let f = s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap_err();
    assert!(f.to_string().contains(store::HEADERS_FILE), "{f}");
}

#[test]
fn usage_counts_what_a_store_holds_before_and_after_a_prune() {
    let chain = TestChain::build("usage-chain", 12, 5);
    let dir = tempfile::tempdir().unwrap();
    let mut s = full(dir.path(), &chain);
    let records = |u: &store::Usage, kind: &str| u.kind(kind).map_or(0, |k| k.records);
    let before = s.usage().unwrap();
    let head_size = chain.blocks[12].header.tree_size;
    assert_eq!(records(&before, "headers"), 13, "{before:?}");
    assert_eq!(records(&before, "entries"), head_size);
    assert!(records(&before, "merkle-nodes") > 0);
    assert_eq!(records(&before, "meta"), 1, "the head record: {before:?}");
    assert!(before.kinds.iter().all(|k| k.bytes > 0 && k.kind != "other"));
    assert_eq!(before.bytes(), before.kinds.iter().map(|k| k.bytes).sum::<u64>());

    let p = s.prune(7).unwrap();
    let after = s.usage().unwrap();
    // Every header stays (those of blocks 1 to 6 move to the header file); the pruned entries
    // go; the base record joins the head record.
    assert_eq!(records(&after, "headers"), 13);
    assert_eq!(records(&after, "entries"), head_size - p.entries);
    assert!(records(&after, "merkle-nodes") < records(&before, "merkle-nodes"));
    assert_eq!(records(&after, "meta"), 2);
    assert!(after.bytes() < before.bytes());
    let kept = after.kind("headers").unwrap().bytes;
    // In the engine a header counts its 9-byte key; in the file its record's 16 bytes.
    assert_eq!(kept, before.kind("headers").unwrap().bytes + 6 * (16 - 9));
}

/// A bit flipped anywhere in the header file: opening or the audit reports it, or the store
/// serves exactly the original headers; never a panic, never a different header. A bit flipped
/// in its index costs nothing: the records are found from a good entry below.
#[test]
fn a_flipped_bit_in_the_header_file_is_an_error_or_harmless() {
    let chain = TestChain::build("prune-chain", 12, 3);
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    let mut s = full(&src, &chain);
    s.prune(10).unwrap();
    drop(s);
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let (mut refused, mut harmless) = (0, 0);
    for trial in 0..40 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let dst = base.path().join(format!("t{trial}"));
        crate::audit::copy_dir(&src, &dst);
        let name = if trial % 2 == 0 { store::HEADERS_FILE } else { store::HEADERS_INDEX_FILE };
        let target = dst.join(name);
        let Some((s, report)) = crate::audit::flip_then_audit(&dst, &target, x) else {
            assert_eq!(name, store::HEADERS_FILE, "trial {trial}: a damaged index is no loss");
            refused += 1;
            continue;
        };
        assert_eq!(report.head_hash, chain.blocks[12].header.hash());
        for (h, b) in chain.blocks.iter().enumerate() {
            assert_eq!(s.read_head(h as u64).unwrap().0, b.header, "trial {trial}");
        }
        harmless += 1;
    }
    assert!(refused > 0 && refused + harmless == 40, "refused {refused}, harmless {harmless}");
}

/// Views read headers while their store prunes beside them, moving headers out of the engine
/// into the header file: every view, new or opened many prunes ago, reads every header it
/// holds, wherever it is by then.
#[test]
fn views_read_headers_while_the_store_moves_them() {
    let chain = TestChain::build("prune-chain", 80, 1);
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), config()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Store>();
    let expected: Vec<_> = chain.blocks.iter().map(|b| b.header.clone()).collect();
    let reader = std::thread::spawn(move || {
        let mut views: Vec<Store> = Vec::new();
        let mut reads = 0u64;
        while let Ok(v) = rx.recv() {
            views.push(v);
            for v in &views {
                for h in 0..=v.height().unwrap() {
                    let got = v.read_head(h).unwrap_or_else(|e| panic!("height {h}: {e}"));
                    assert_eq!(got.0, expected[h as usize]);
                    reads += 1;
                }
            }
        }
        reads
    });
    for b in &chain.blocks {
        let a = s.append(b).unwrap();
        s.prune(a.height.saturating_sub(2)).unwrap();
        tx.send(s.view().unwrap()).unwrap();
    }
    drop(tx);
    assert!(reader.join().unwrap() > 3000);
    assert_eq!(s.oldest_header(), 1);
    drop(s);
    assert_eq!(header_records(dir.path()).len(), 77, "headers 1 to 77 below the base 78");
}

/// A store pruned before the header file existed holds its old headers in the engine: it
/// opens as it is, and its next prune moves them into the file.
#[test]
fn a_store_pruned_with_its_headers_in_the_engine_moves_them_at_its_next_prune() {
    let chain = TestChain::build("prune-chain", 12, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut s = full(dir.path(), &chain);
    s.prune(8).unwrap();
    drop(s);
    // The layout of before: every header in the engine, no header file.
    {
        let b = SledBackend::open(dir.path(), surplus_store::CACHE_BYTES).unwrap();
        for (h, raw) in header_records(dir.path()) {
            let mut key = vec![b'H'];
            key.extend_from_slice(&h.to_be_bytes());
            b.db().insert(key, raw).unwrap();
        }
        b.db().flush().unwrap();
    }
    std::fs::remove_file(dir.path().join(store::HEADERS_FILE)).unwrap();
    std::fs::remove_file(dir.path().join(store::HEADERS_INDEX_FILE)).unwrap();
    let mut s = Store::open(dir.path(), config()).unwrap();
    assert_eq!(s.read_head(3).unwrap().0, chain.blocks[3].header);
    let p = s.prune(8).unwrap();
    assert_eq!((p.blocks, p.headers), (0, 7), "the base stays; headers 1 to 7 move");
    s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    drop(s);
    assert_eq!(header_records(dir.path()).len(), 7);
}

/// An index entry pointing elsewhere (another record, the middle of one, past the end) costs a
/// walk over the records, not the header.
#[test]
fn a_damaged_index_entry_is_walked_around() {
    let chain = TestChain::build("prune-chain", 12, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut s = full(dir.path(), &chain);
    s.prune(10).unwrap();
    drop(s);
    let index = dir.path().join(store::HEADERS_INDEX_FILE);
    let clean = std::fs::read(&index).unwrap();
    let second_record = u64::from_be_bytes(clean[8..16].try_into().unwrap());
    for bad in [second_record, second_record + 5, u64::MAX / 2] {
        let mut damaged = clean.clone();
        // The entry of height 4 (the file starts at 1).
        damaged[24..32].copy_from_slice(&bad.to_be_bytes());
        std::fs::write(&index, &damaged).unwrap();
        let s = Store::open(dir.path(), config()).unwrap();
        for h in 1..=12u64 {
            assert_eq!(s.read_head(h).unwrap().0, chain.blocks[h as usize].header, "height {h}");
        }
        s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    }
}

/// A crash during an append may leave any page of it unwritten, not only the last: records
/// the engine still holds are compared with its copies before those go, and the first that
/// differs is cut away with all after it and moved again.
#[test]
fn a_record_lost_inside_an_unsynced_append_is_moved_again() {
    let chain = TestChain::build("prune-chain", 12, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut s = full(dir.path(), &chain);
    s.prune(6).unwrap();
    drop(s);
    // Headers 6 to 8 appended with their index entries, the engine's copies not yet deleted,
    // and the page of header 7 never written.
    let path = dir.path().join(store::HEADERS_FILE);
    let index = dir.path().join(store::HEADERS_INDEX_FILE);
    let (mut log, mut offsets) = (std::fs::read(&path).unwrap(), std::fs::read(&index).unwrap());
    let mut hole = 0..0;
    for h in 6..=8u64 {
        offsets.extend_from_slice(&(log.len() as u64).to_be_bytes());
        let record = encode_record(h, &chain.blocks[h as usize].encode_head());
        if h == 7 {
            hole = log.len()..log.len() + record.len();
        }
        log.extend_from_slice(&record);
    }
    log[hole].fill(0);
    std::fs::write(&path, &log).unwrap();
    std::fs::write(&index, &offsets).unwrap();
    let mut s = Store::open(dir.path(), config()).unwrap();
    // The prune moves 9, finds 7 differs from the engine's copy: the file keeps 1 to 6, the
    // engine 7 on.
    let p = s.prune(10).unwrap();
    assert_eq!(p.headers, 1, "only header 6 leaves the engine");
    for h in 0..=12u64 {
        assert_eq!(s.read_head(h).unwrap().0, chain.blocks[h as usize].header, "height {h}");
    }
    assert_eq!(header_records(dir.path()).len(), 6);
    // The next prune moves 7 to 9 again.
    assert_eq!(s.prune(10).unwrap().headers, 3);
    s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    drop(s);
    assert_eq!(header_records(dir.path()).len(), 9);
}
