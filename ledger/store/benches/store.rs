//! Ledger benchmarks.
//! Durable append, audit throughput against raw ed25519 batch verification,
//! and Merkle proofs in a 1,000,000-leaf tree.
//!
//! `cargo bench -p surplus-store` (set `SURPLUS_BENCH_QUICK=1` for a short run).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use surplus_ledger::testutil::TestChain;
use surplus_ledger::{
    verify_inclusion, Auth, Blake3, Block, Checks, Entry, EntryKind, Hasher, MemoryTree, NoHook,
};
use surplus_store as store;
use surplus_store::Store;

const PER_BLOCK: usize = 1_000;

fn quick() -> bool {
    std::env::var_os("SURPLUS_BENCH_QUICK").is_some()
}

/// A chain of `blocks` blocks of 1,000 signed entries (about 100 bytes of payload each).
fn signed_chain(blocks: usize) -> TestChain {
    TestChain::build("bench-chain", blocks, PER_BLOCK)
}

fn bench_append(c: &mut Criterion) {
    let chain = signed_chain(if quick() { 6 } else { 24 });
    let blocks = &chain.blocks;
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(PER_BLOCK as u64));
    g.sample_size(10);
    for (name, checks) in [
        (
            "durable, structural checks (block already validated by consensus)",
            Checks { certificates: true, entry_signatures: false },
        ),
        ("durable, all signatures re-verified", Checks::default()),
    ] {
        g.bench_function(name, |b| b.iter_custom(|iters| append_run(blocks, iters, checks, 1)));
    }
    g.bench_function("group commit of 8 blocks, structural checks", |b| {
        b.iter_custom(|iters| {
            append_run(blocks, iters, Checks { certificates: true, entry_signatures: false }, 8)
        })
    });
    g.finish();
}

/// Appends `iters` blocks (cycling through fresh stores) and returns the time spent appending.
fn append_run(blocks: &[Block], iters: u64, checks: Checks, group: usize) -> Duration {
    let mut spent = Duration::ZERO;
    let mut done = 0u64;
    while done < iters {
        let dir = tempfile::tempdir().unwrap();
        let mut s =
            Store::open(dir.path(), store::Config { checks, ..Default::default() }).unwrap();
        s.append(&blocks[0]).unwrap();
        let mut h = 1;
        while h < blocks.len() && done < iters {
            let n = group.min(blocks.len() - h).min((iters - done) as usize);
            let t = Instant::now();
            if group == 1 {
                s.append(&blocks[h]).unwrap();
            } else {
                s.append_group(&blocks[h..h + n]).unwrap();
            }
            spent += t.elapsed();
            h += n;
            done += n as u64;
        }
    }
    spent
}

/// Messages, signatures and keys of one block, for dalek's `verify_batch`.
type RawBatch = (Vec<Vec<u8>>, Vec<ed25519_dalek::Signature>, Vec<ed25519_dalek::VerifyingKey>);

/// Raw ed25519-dalek batch verification of the same signatures, 1,000 at a time.
fn raw_batches(chain: &TestChain) -> Vec<RawBatch> {
    chain.blocks[1..]
        .iter()
        .map(|b| {
            let mut msgs = Vec::new();
            let mut sigs = Vec::new();
            let mut keys = Vec::new();
            for e in &b.entries {
                if let Auth::Signed { author, signature } = &e.auth {
                    msgs.push(Entry::signing_bytes(&chain.chain_id, e.kind, author, &e.payload));
                    sigs.push(ed25519_dalek::Signature::from_bytes(&signature.0));
                    keys.push(ed25519_dalek::VerifyingKey::from_bytes(&author.0).unwrap());
                }
            }
            (msgs, sigs, keys)
        })
        .collect()
}

fn verify_raw(batches: &[RawBatch]) {
    for (msgs, sigs, keys) in batches {
        let m: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        ed25519_dalek::verify_batch(&m, sigs, keys).unwrap();
    }
}

fn bench_audit(c: &mut Criterion) {
    let blocks = if quick() { 10 } else { 100 };
    let chain = signed_chain(blocks);
    let entries = (blocks * PER_BLOCK) as u64;
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("db"), store::Config::default()).unwrap();
    s.append_group(&chain.blocks).unwrap();
    let export = dir.path().join("bench.export");
    s.export(&export, &mut |_, _| {}).unwrap();
    let batches = raw_batches(&chain);

    let mut g = c.benchmark_group(format!("audit {entries} entries"));
    g.throughput(Throughput::Elements(entries));
    g.sample_size(10);
    g.bench_function("raw ed25519-dalek batch verification (the limit)", |b| {
        b.iter(|| verify_raw(&batches))
    });
    g.bench_function("surplus audit of the sled store", |b| {
        b.iter(|| s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap())
    });
    g.bench_function("surplus audit of the export file", |b| {
        b.iter(|| {
            let mut r = surplus_store::export::Reader::open(&export).unwrap();
            surplus_ledger::verify(&mut r, &Default::default(), &mut NoHook, &mut |_| {}).unwrap()
        })
    });
    g.finish();

    // The ratio, measured here side by side (median of 5 runs each).
    let median = surplus_ledger::testutil::median_of_5;
    let raw = median(&mut || verify_raw(&batches));
    let store_audit = median(&mut || {
        s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    });
    let file_audit = median(&mut || {
        let mut r = surplus_store::export::Reader::open(&export).unwrap();
        surplus_ledger::verify(&mut r, &Default::default(), &mut NoHook, &mut |_| {}).unwrap();
    });
    let rate = |d: Duration| entries as f64 / d.as_secs_f64();
    println!(
        "RATIO audit/raw-batch over {entries} entries: raw {:.0}/s, store audit {:.0}/s ({:.3}), export audit {:.0}/s ({:.3})",
        rate(raw),
        rate(store_audit),
        raw.as_secs_f64() / store_audit.as_secs_f64(),
        rate(file_audit),
        raw.as_secs_f64() / file_audit.as_secs_f64(),
    );
}

fn bench_proofs(c: &mut Criterion) {
    let leaves: u64 = if quick() { 100_000 } else { 1_000_000 };
    // A store of `leaves` small system entries (no signatures to make), 1,000 per block.
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(
        dir.path(),
        store::Config {
            checks: Checks { certificates: true, entry_signatures: false },
            ..Default::default()
        },
    )
    .unwrap();
    let mut chain = TestChain::new("bench-proofs", 4, 8);
    s.append(&chain.blocks[0]).unwrap();
    let genesis_entries = chain.blocks[0].entries.len() as u64;
    let mut tree = MemoryTree::<Blake3>::new();
    for e in &chain.blocks[0].entries {
        tree.push(Blake3::leaf(&e.encode()));
    }
    let mut n = genesis_entries;
    let mut group = Vec::new();
    while n < leaves {
        let k = PER_BLOCK.min((leaves - n) as usize);
        let entries: Vec<Entry> = (0..k)
            .map(|i| Entry::system(EntryKind::FILL, (n + i as u64).to_be_bytes().repeat(8)))
            .collect();
        for e in &entries {
            tree.push(Blake3::leaf(&e.encode()));
        }
        n += k as u64;
        chain.blocks.clear();
        group.push(chain.push_block(entries));
        if group.len() == 50 {
            s.append_group(&group).unwrap();
            group.clear();
        }
    }
    s.append_group(&group).unwrap();
    assert_eq!(s.tree_size(), leaves);
    let root = tree.root();

    let mut g = c.benchmark_group(format!("proofs in a {leaves}-leaf tree"));
    let mut i = 0u64;
    let mut next = || {
        i = (i + 7_919) % leaves;
        i
    };
    g.bench_function("inclusion proof generation (sled store)", |b| {
        b.iter(|| black_box(s.prove_inclusion(next(), None).unwrap()))
    });
    g.bench_function("inclusion proof generation (in memory)", |b| {
        b.iter(|| {
            black_box(surplus_ledger::prove_inclusion::<Blake3, _>(&tree, next(), leaves).unwrap())
        })
    });
    let proofs: Vec<_> = (0..256)
        .map(|k| {
            let idx = (k * 3_907) % leaves;
            (tree.leaves()[idx as usize], s.prove_inclusion(idx, None).unwrap())
        })
        .collect();
    let mut k = 0;
    g.bench_function("inclusion proof verification", |b| {
        b.iter_batched(
            || {
                k = (k + 1) % proofs.len();
                &proofs[k]
            },
            |(leaf, p)| verify_inclusion::<Blake3>(leaf, p, &root).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

// criterion's macros generate undocumented items.
#[allow(missing_docs)]
mod harness {
    use super::*;
    criterion_group! {
        name = benches;
        config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(if quick() { 2 } else { 8 }));
        targets = bench_append, bench_audit, bench_proofs
    }
}
criterion_main!(harness::benches);
