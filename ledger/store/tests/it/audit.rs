//! The audit over stores and export files: a clean ledger verifies; any flipped bit is caught at
//! the right height; damaged or hostile files give clear errors, never a panic.

use std::path::Path;

use proptest::prelude::*;
use surplus_ledger::testutil::TestChain;
use surplus_ledger::{verify, Block, Failure, Hook, HookFailure, NoHook};
use surplus_store as store;
use surplus_store::{export, Error, Store};

fn build_store(dir: &Path, blocks: usize, per_block: usize) -> (Store, TestChain) {
    let chain = TestChain::build("audit-chain", blocks, per_block);
    let mut s = Store::open(dir, store::Config::default()).unwrap();
    for b in &chain.blocks {
        s.append(b).unwrap();
    }
    (s, chain)
}

fn audit_file(path: &Path) -> Result<surplus_ledger::Report, Failure> {
    let mut r =
        export::Reader::open(path).map_err(|e| Failure::block(u64::MAX, "file", e.to_string()))?;
    verify(&mut r, &Default::default(), &mut NoHook, &mut |_| {})
}

#[test]
fn a_clean_ledger_verifies_from_store_and_from_export() {
    let dir = tempfile::tempdir().unwrap();
    let (s, chain) = build_store(&dir.path().join("db"), 10, 20);
    let mut seen = Vec::new();
    let report = s.audit(&Default::default(), &mut NoHook, &mut |p| seen.push(p.blocks)).unwrap();
    assert_eq!(report.blocks, 11);
    assert_eq!(report.entries, 200 + 9);
    // 200 entry signatures and 10 certificates of 4 votes.
    assert_eq!(report.signatures, 200 + 40);
    assert_eq!(report.head_hash, chain.blocks[10].header.hash());
    assert_eq!(seen, (1..=11).collect::<Vec<_>>());

    let file = dir.path().join("ledger.export");
    let summary = s.export(&file, &mut |_, _| {}).unwrap();
    assert_eq!(summary.blocks, 11);
    assert_eq!(audit_file(&file).unwrap(), report);

    // Pinning the genesis hash: right passes, wrong fails at height 0.
    let pinned = verify::Options { genesis_hash: Some(report.genesis_hash), ..Default::default() };
    s.audit(&pinned, &mut NoHook, &mut |_| {}).unwrap();
    let wrong = verify::Options { genesis_hash: Some([9; 32]), ..Default::default() };
    assert_eq!(s.audit(&wrong, &mut NoHook, &mut |_| {}).unwrap_err().height, 0);
}

/// An export read as a stream of unknown length (a node's `GET /export` without a length)
/// verifies the same; bytes after the footer or a cut stream are caught.
#[test]
fn an_export_streamed_without_a_length_verifies_and_trailing_bytes_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = build_store(&dir.path().join("db"), 5, 3);
    let file = dir.path().join("ledger.export");
    s.export(&file, &mut |_, _| {}).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let stream = |b: Vec<u8>| {
        let r = export::Reader::from_stream(
            Path::new("stream"),
            Box::new(std::io::Cursor::new(b)),
            None,
        )
        .unwrap()
        .expect_blocks(6);
        r
    };
    let mut r = stream(bytes.clone());
    assert_eq!(surplus_ledger::verify::BlockSource::len_hint(&r), Some(6));
    let report = verify(&mut r, &Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    assert_eq!(report, audit_file(&file).unwrap());

    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"junk");
    let f = verify(&mut stream(trailing), &Default::default(), &mut NoHook, &mut |_| {});
    let f = f.unwrap_err();
    assert_eq!(f.field, "footer", "{f}");
    assert!(f.reason.contains("4 bytes follow the footer"), "{f}");

    let cut = bytes[..bytes.len() - 60].to_vec();
    let f = verify(&mut stream(cut), &Default::default(), &mut NoHook, &mut |_| {}).unwrap_err();
    assert!(f.field == "file" || f.field.starts_with("record") || f.field == "footer", "{f}");
}

struct RejectOrdersAt(u64);
impl Hook for RejectOrdersAt {
    fn block(&mut self, block: &Block, _hash: &surplus_ledger::Hash) -> Result<(), HookFailure> {
        if block.header.height == self.0 {
            return Err(HookFailure {
                entry: Some(2),
                field: "fill.price".into(),
                reason: "re-executed auction differs".into(),
            });
        }
        Ok(())
    }
}

#[test]
fn the_hook_sees_every_block_and_its_failure_is_reported_with_the_global_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (s, chain) = build_store(dir.path(), 5, 4);
    let f = s.audit(&Default::default(), &mut RejectOrdersAt(3), &mut |_| {}).unwrap_err();
    assert_eq!(f.height, 3);
    assert_eq!(f.entry, Some(chain.blocks[2].header.tree_size + 2));
    assert_eq!(f.field, "fill.price");
}

/// Byte ranges of each block record in an export file: (start, end, height); the footer is
/// reported as the head's.
fn record_ranges(bytes: &[u8]) -> (usize, Vec<(usize, usize, u64)>) {
    let id_len = bytes[18] as usize;
    let mut pos = 19 + id_len;
    let header_end = pos;
    let mut out = Vec::new();
    let mut h = 0;
    while bytes[pos] == b'B' {
        let len = u32::from_be_bytes(bytes[pos + 1..pos + 5].try_into().unwrap()) as usize;
        out.push((pos, pos + 5 + len, h));
        pos += 5 + len;
        h += 1;
    }
    out.push((pos, bytes.len(), h - 1));
    (header_end, out)
}

fn sample_export() -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = build_store(&dir.path().join("db"), 6, 3);
    let file = dir.path().join("x.export");
    s.export(&file, &mut |_, _| {}).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    (dir, bytes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Any single bit flipped anywhere in an exported block (or the footer) fails the audit,
    /// which names the height of the block the bit belongs to.
    #[test]
    fn any_flipped_bit_in_an_export_is_caught_at_its_height(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (dir, bytes) = SAMPLE.with(|s| s.clone());
        let (header_end, ranges) = record_ranges(&bytes);
        let offset = header_end + pos.index(bytes.len() - header_end);
        let height = ranges.iter().find(|(a, b, _)| (*a..*b).contains(&offset)).unwrap().2;
        let mut damaged = bytes.clone();
        damaged[offset] ^= 1 << bit;
        let path = dir.join(format!("flip-{offset}-{bit}"));
        std::fs::write(&path, &damaged).unwrap();
        let f = audit_file(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        // The footer's tag byte, once damaged, is read as the record after the head: a block that
        // should follow it. Reporting the next height is then as right as the head's.
        let footer_tag = ranges.last().is_some_and(|(start, _, _)| *start == offset);
        if footer_tag {
            prop_assert!(f.height == height || f.height == height + 1, "offset {} bit {}: {}", offset, bit, f);
        } else {
            prop_assert_eq!(f.height, height, "offset {} bit {}: {}", offset, bit, f);
        }
    }
}

/// Found by the flipped-bit proptest in CI: a damaged footer tag reads as an unknown record
/// where the next block would start. It must still fail, at the head or the next height.
#[test]
fn a_damaged_footer_tag_fails_the_audit_at_the_head_or_the_next_height() {
    let (dir, bytes) = SAMPLE.with(|s| s.clone());
    let (_, ranges) = record_ranges(&bytes);
    let &(footer, _, head) = ranges.last().unwrap();
    for bit in 0..8 {
        let mut damaged = bytes.clone();
        damaged[footer] ^= 1 << bit;
        let path = dir.join(format!("footer-tag-{bit}"));
        std::fs::write(&path, &damaged).unwrap();
        let f = audit_file(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(f.height == head || f.height == head + 1, "bit {bit}: {f}");
    }
}

thread_local! {
    static SAMPLE: (std::path::PathBuf, Vec<u8>) = {
        let (dir, bytes) = sample_export();
        let path = dir.keep();
        (path, bytes)
    };
}

#[test]
fn any_flipped_bit_in_the_export_file_header_is_refused() {
    let (dir, bytes) = sample_export();
    let (header_end, _) = record_ranges(&bytes);
    for offset in 0..header_end {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[offset] ^= 1 << bit;
            let path = dir.path().join("h");
            std::fs::write(&path, &damaged).unwrap();
            assert!(audit_file(&path).is_err(), "offset {offset} bit {bit} was not caught");
        }
    }
}

/// Opens the store's sled database directly, waiting for a just-dropped handle's background
/// threads to release the file lock.
fn open_raw(dir: &Path) -> sled::Db {
    // No background flusher: its thread would hold the file lock after the handle is dropped.
    let config = || sled::Config::new().path(dir).flush_every_ms(None);
    for _ in 0..200 {
        match config().open() {
            Ok(db) => return db,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    config().open().unwrap()
}

/// Opens the store, waiting as [`open_raw`] does for the file lock.
fn open_store(dir: &Path) -> Result<Store, Error> {
    for _ in 0..200 {
        match Store::open(dir, store::Config::default()) {
            Err(Error::Backend(_)) => std::thread::sleep(std::time::Duration::from_millis(10)),
            other => return other,
        }
    }
    Store::open(dir, store::Config::default())
}

/// Every stored value of a block (header and certificate, entries, Merkle nodes) with one bit
/// flipped: opening the store or auditing it fails and names that block's height.
#[test]
fn any_flipped_bit_in_a_stored_block_is_caught_at_its_height() {
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("db");
    let (s, chain) = build_store(&db_dir, 5, 3);
    drop(s);
    let heights_of_entries: Vec<u64> = chain
        .blocks
        .iter()
        .flat_map(|b| std::iter::repeat_n(b.header.height, b.entries.len()))
        .collect();
    let db = open_raw(&db_dir);
    let keys: Vec<(Vec<u8>, Vec<u8>)> = db
        .iter()
        .map(|r| r.unwrap())
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .filter(|(k, _)| !k.starts_with(b"meta"))
        .collect();
    drop(db);
    let mut rng = 0x1234_5678_u64;
    let mut checked = 0;
    for (key, value) in &keys {
        let expected = match key[0] {
            b'H' => u64::from_be_bytes(key[1..9].try_into().unwrap()),
            b'E' => heights_of_entries[u64::from_be_bytes(key[1..9].try_into().unwrap()) as usize],
            b'N' => {
                let level = key[1];
                let index = u64::from_be_bytes(key[2..10].try_into().unwrap());
                heights_of_entries[(((index + 1) << level) - 1) as usize]
            }
            other => panic!("unexpected key prefix {other}"),
        };
        // Three random bits of every value.
        for _ in 0..3 {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let bitpos = (rng >> 33) as usize % (value.len() * 8);
            let mut v = value.clone();
            v[bitpos / 8] ^= 1 << (bitpos % 8);
            let db = open_raw(&db_dir);
            db.insert(key, v).unwrap();
            db.flush().unwrap();
            drop(db);
            let found = match open_store(&db_dir) {
                Err(Error::Damaged(f)) => f,
                Err(other) => panic!("key {key:?}: open failed without naming a height: {other}"),
                Ok(s) => s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap_err(),
            };
            assert_eq!(found.height, expected, "key {key:?} bit {bitpos}: {found}");
            let db = open_raw(&db_dir);
            db.insert(key, value.clone()).unwrap();
            db.flush().unwrap();
            checked += 1;
        }
    }
    assert!(checked > 100);
    // Restored: verifies again.
    let s = Store::open(&db_dir, store::Config::default()).unwrap();
    s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
}

#[test]
fn truncated_garbage_and_foreign_files_are_clear_errors() {
    let (dir, bytes) = sample_export();
    let path = dir.path().join("t");
    // Truncated at every block boundary and inside blocks: never a pass, never a panic.
    let (_, ranges) = record_ranges(&bytes);
    for (start, end, _) in &ranges {
        for cut in [*start, (*start + *end) / 2, *end - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let f = audit_file(&path).unwrap_err();
            assert!(!f.reason.is_empty());
        }
    }
    // Garbage.
    std::fs::write(&path, b"this is not a ledger").unwrap();
    assert!(matches!(export::Reader::open(&path), Err(Error::BadFile { .. })));
    let mut g = bytes[..19 + bytes[18] as usize].to_vec();
    g.extend((0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    std::fs::write(&path, &g).unwrap();
    assert!(audit_file(&path).is_err());
    // A record claiming 4 GiB.
    let mut huge = bytes[..19 + bytes[18] as usize].to_vec();
    huge.extend_from_slice(b"B\xff\xff\xff\xff");
    std::fs::write(&path, &huge).unwrap();
    assert_eq!(audit_file(&path).unwrap_err().field, "record.length");
    // Empty file, missing file.
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(export::Reader::open(&path), Err(Error::BadFile { .. })));
    assert!(matches!(export::Reader::open(&dir.path().join("missing")), Err(Error::Io { .. })));
}

#[test]
fn out_of_order_and_spliced_ledgers_are_caught() {
    let chain = TestChain::build("audit-chain", 5, 2);
    // Out of order.
    let mut blocks = chain.blocks.clone();
    blocks.swap(2, 3);
    let f = verify(
        &mut surplus_ledger::VecSource::new(blocks),
        &Default::default(),
        &mut NoHook,
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!((f.height, f.field.as_str()), (2, "header.height"));
    // A block of another chain with the same validators spliced in.
    let other = TestChain::build("audit-chain-2", 5, 2);
    let mut blocks = chain.blocks.clone();
    blocks[4] = other.blocks[4].clone();
    let f = verify(
        &mut surplus_ledger::VecSource::new(blocks),
        &Default::default(),
        &mut NoHook,
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!((f.height, f.field.as_str()), (4, "header.chain_id"));
    // A block missing.
    let mut blocks = chain.blocks.clone();
    blocks.remove(3);
    let f = verify(
        &mut surplus_ledger::VecSource::new(blocks),
        &Default::default(),
        &mut NoHook,
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(f.height, 3);
    // A wrong certificate (signed by non-validators).
    let mut blocks = chain.blocks.clone();
    let outsiders: Vec<_> = (0..4).map(|i| surplus_ledger::testutil::key("outsider", i)).collect();
    blocks[2].certificate = surplus_ledger::testutil::certificate(
        "audit-chain",
        2,
        0,
        &blocks[2].header.hash(),
        &outsiders,
        &[0, 1, 2, 3],
    );
    let f = verify(
        &mut surplus_ledger::VecSource::new(blocks),
        &Default::default(),
        &mut NoHook,
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!((f.height, f.field.as_str()), (2, "certificate"));
    // Empty ledger.
    let f = verify(
        &mut surplus_ledger::VecSource::new(vec![]),
        &Default::default(),
        &mut NoHook,
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(f.height, 0);
}

/// The header's proposer must be a validator that proposes the height no later than the round
/// of the certificate that decided the block: validator (h - 1 + r) mod n in round r.
#[test]
fn a_proposer_out_of_turn_or_not_a_validator_is_caught() {
    use surplus_ledger::testutil::{certificate, key, proposer_round};
    let chain = TestChain::build("audit-chain", 4, 2);
    let all: Vec<usize> = (0..chain.validators.len()).collect();
    let verdict = |height: u64, proposer: surplus_ledger::PublicKey, round: u32| {
        let mut blocks = chain.blocks[..=height as usize].to_vec();
        let b = &mut blocks[height as usize];
        b.header.proposer = proposer;
        let hash = b.header.hash();
        b.certificate = certificate("audit-chain", height, round, &hash, &chain.validators, &all);
        verify(
            &mut surplus_ledger::VecSource::new(blocks),
            &Default::default(),
            &mut NoHook,
            &mut |_| {},
        )
    };
    let n = chain.validators.len();
    for height in 1..=4u64 {
        for v in 0..n {
            let first = proposer_round(n, height, v);
            assert_eq!(first as usize, (v + n - (height as usize - 1) % n) % n);
            let pk = chain.validators[v].public();
            // In its round and any later one: accepted.
            verdict(height, pk, first).unwrap();
            verdict(height, pk, first + 5).unwrap();
            // Before its round: refused, naming the field.
            if first > 0 {
                let f = verdict(height, pk, first - 1).unwrap_err();
                assert_eq!((f.height, f.field.as_str()), (height, "header.proposer"), "{f}");
            }
        }
        let f = verdict(height, key("outsider", 0).public(), 7).unwrap_err();
        assert_eq!((f.height, f.field.as_str()), (height, "header.proposer"), "{f}");
        assert!(f.reason.contains("not a validator"), "{f}");
    }
}

#[test]
fn decoders_never_panic_on_random_bytes() {
    let mut x = 7u64;
    for len in 0..600usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = Block::decode(&bytes);
        let _ = surplus_ledger::Entry::decode(&bytes);
        let _ = surplus_ledger::decode_head(&bytes);
        let _ = surplus_ledger::SignedCheckpoint::decode(&bytes);
        let _ = surplus_ledger::ValidatorSet::decode(&bytes);
    }
    // Truncations of a real block are each an error.
    let chain = TestChain::build("audit-chain", 1, 3);
    let enc = chain.blocks[1].encode();
    assert_eq!(Block::decode(&enc).unwrap(), chain.blocks[1]);
    for cut in 0..enc.len() {
        assert!(Block::decode(&enc[..cut]).is_err());
    }
}

fn files_under(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let t = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

/// Flips bit `pick` (modulo the file's bits) of `file`, then opens the store in `dir` and
/// audits it: `None` if either refuses (with a message), else the store and its report.
pub(crate) fn flip_then_audit(
    dir: &Path,
    file: &Path,
    pick: u64,
) -> Option<(Store, verify::Report)> {
    let mut bytes = std::fs::read(file).unwrap();
    let bit = pick as usize % (bytes.len() * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
    std::fs::write(file, &bytes).unwrap();
    match Store::open(dir, store::Config::default()) {
        Err(e) => {
            assert!(!e.to_string().is_empty());
            None
        }
        Ok(s) => match s.audit(&Default::default(), &mut NoHook, &mut |_| {}) {
            Err(f) => {
                assert!(!f.to_string().is_empty());
                None
            }
            Ok(report) => Some((s, report)),
        },
    }
}

/// A bit flipped in sled's own files (not through its API): opening gives a clear error, or the
/// store opens and serves exactly the original ledger (the bit was in unused space). Never a
/// panic, never different data.
#[test]
fn a_flipped_bit_in_the_engine_files_is_an_error_or_harmless() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    let (s, chain) = build_store(&src, 12, 10);
    drop(s);
    // The header file and its index stay empty in a store that never pruned.
    let files: Vec<_> =
        files_under(&src).into_iter().filter(|f| f.metadata().unwrap().len() > 0).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut refused, mut harmless) = (0, 0);
    for trial in 0..60 {
        let dst = base.path().join(format!("t{trial}"));
        copy_dir(&src, &dst);
        let file = &files[next() as usize % files.len()];
        let target = dst.join(file.strip_prefix(&src).unwrap());
        let Some((s, report)) = flip_then_audit(&dst, &target, next()) else {
            refused += 1;
            std::fs::remove_dir_all(&dst).unwrap();
            continue;
        };
        assert_eq!(report.head_height, 12, "trial {trial}: {}", file.display());
        assert_eq!(report.head_hash, chain.blocks[12].header.hash());
        for (h, b) in chain.blocks.iter().enumerate() {
            assert_eq!(&s.block(h as u64).unwrap(), b, "trial {trial}: block {h} differs");
        }
        harmless += 1;
        drop(s);
        std::fs::remove_dir_all(&dst).unwrap();
    }
    assert!(refused > 0 && refused + harmless > 50, "refused {refused}, harmless {harmless}");
}
