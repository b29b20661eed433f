//! Market benchmarks.
//!
//! - `clear`: one block's auction over 10,000 / 100,000 / 1,000,000 orders spread evenly over
//!   100 markets (aim: at least 1,000,000 orders/s on one core), and a second block of N/10 new
//!   orders against a book already holding N resting orders.
//! - Memory per resting order: the heap bytes the book holds, counted by this bench's global
//!   allocator, for the orders brought by one batch and by 100 blocks (printed, not a criterion
//!   measurement).
//! - Order validation including the signature, against raw ed25519-dalek verification of the
//!   same signatures measured in the same run (aim with batch verification: at least 0.7 of the
//!   raw batch-verify rate).
//! - `market clear` end to end: an input file of 100,000 signed orders (10,000 in the quick
//!   run) parsed from JSON, its signatures checked and the auction run, as `surplus market clear`
//!   does, against raw batch verification of the same signatures on one core and on all cores
//!   (aim: at least 0.7 of batch verification).
//!
//! `cargo bench -p surplus-market --bench auction` (set `SURPLUS_BENCH_QUICK=1` for a short run:
//! 10,000 and 100,000 orders only). Run as a test (`cargo test --benches`), it uses the quick
//! sizes and a 100,000-order memory book.

mod orders;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use ed25519_dalek::Verifier as _;
use orders::{
    batch, catalogue, resting_book, unlimited, Gen, Prices, BLOCK_MS, CLASSES, NOW, REGIONS,
};
use surplus_ledger::testutil::key;
use surplus_ledger::{BatchVerifier, Entry};
use surplus_market::replay::{AuctionInput, InputEntry, FORMAT};
use surplus_market::{validate, Book, Catalogue, SignedOrder};

const CHAIN: &str = "bench-chain";

fn quick() -> bool {
    // Without `--bench` criterion runs each benchmark once as a test: keep that short too.
    std::env::var_os("SURPLUS_BENCH_QUICK").is_some() || !std::env::args().any(|a| a == "--bench")
}

fn sizes() -> &'static [usize] {
    if quick() {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    }
}

/// Every allocation goes through this counter (`cap`: an atomic add per allocation and free, the
/// same for every benchmark here), so the memory bench reads the heap bytes the process holds.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

fn live() -> usize {
    ALLOCATOR.allocated()
}

/// Resident memory of this process, in bytes.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Memory per resting order: the heap bytes the book of 1,000,000 resting orders holds (100,000
/// when run as a test), after the block that brought them, once the block's outcome is dropped
/// and its pending state-root changes taken (a node takes them every block). The batch the
/// orders came from is not counted. Without the allocator's own bookkeeping per allocation.
fn bench_memory(_: &mut Criterion) {
    let n = if std::env::args().any(|a| a == "--bench") { 1_000_000 } else { 100_000 };
    let catalogue = catalogue();
    let b = batch(1, NOW, Gen::new(&catalogue, 7).orders(n, Prices::Apart, NOW));
    // Counted from before the copy the book takes its orders from: the book keeps them (with
    // their market names), the rest of the copy is freed by the end of the block.
    let before = live();
    let resident_before = resident();
    let input = b.clone();
    let mut book = Book::new();
    let t = Instant::now();
    let out = book.clear_owned(&catalogue, input, &unlimited).unwrap();
    let spent = t.elapsed();
    assert!(out.fills.is_empty() && out.rejected.is_empty());
    drop(out);
    let resident_after = resident();
    let changes = book.take_changes();
    let pending = live() - before;
    drop(changes);
    let after = live();
    assert_eq!(book.len(), n);
    println!(
        "MEMORY per resting order: {:.0} bytes of heap ({n} resting orders in 100 markets, {:.1} MB; {:.0} bytes per order more for the change sets a block hands to the state root; size_of Resting = {} bytes)",
        (after - before) as f64 / n as f64,
        (after - before) as f64 / 1e6,
        (pending - (after - before)) as f64 / n as f64,
        std::mem::size_of::<surplus_market::Resting>(),
    );
    println!(
        "MEMORY growth of the resident set, change sets included (the measure before 2026-12-06): {:.0} bytes per resting order",
        (resident_after - resident_before) as f64 / n as f64,
    );
    println!(
        "clear {n} orders, fresh book, no market crossing (every order rests): {:.3} s ({:.0} orders/s)",
        spent.as_secs_f64(),
        n as f64 / spent.as_secs_f64()
    );
    drop(book);

    // The same orders arriving over 100 blocks, as a node's book fills: each block's orders go
    // into maps already holding the earlier ones (one batch of n fills the maps' nodes only by
    // half, its keys coming in order).
    let before = live();
    let mut book = Book::new();
    let per_block = n / 100;
    for (k, orders) in b.orders.chunks(per_block).enumerate() {
        // All at one block time, so that every order stays valid and none leaves.
        let b = batch(1 + k as u64, NOW, orders.to_vec());
        let out = book.clear_owned(&catalogue, b, &unlimited);
        assert!(out.unwrap().rejected.is_empty());
        drop(book.take_changes());
    }
    assert_eq!(book.len(), n);
    println!(
        "MEMORY per resting order, the same orders over 100 blocks of {per_block}: {:.0} bytes of heap",
        (live() - before) as f64 / n as f64,
    );
}

fn bench_clear(c: &mut Criterion) {
    let catalogue = catalogue();
    for &n in sizes() {
        let first = batch(1, NOW, Gen::new(&catalogue, 1).orders(n, Prices::Crossing, NOW));

        // Once, so the reader sees the auction did real work.
        let mut book = Book::new();
        let input = first.clone();
        let t = Instant::now();
        let out = book.clear_owned(&catalogue, input, &unlimited).unwrap();
        let spent = t.elapsed();
        println!(
            "clear {n} orders, fresh book: {} fills, {} of {} markets traded, {} accepted, {} rejected, {} resting after, {:.3} s ({:.0} orders/s)",
            out.fills.len(),
            out.prices.len(),
            CLASSES * REGIONS,
            out.accepted.len(),
            out.rejected.len(),
            book.len(),
            spent.as_secs_f64(),
            n as f64 / spent.as_secs_f64(),
        );
        assert!(out.rejected.is_empty());
        drop((book, out));

        let (resting, _) = resting_book(&catalogue, n, 2);
        let now2 = NOW + BLOCK_MS;
        let second = batch(2, now2, Gen::new(&catalogue, 3).orders(n / 10, Prices::Crossing, now2));
        let (mut book, input) = (resting.clone(), second.clone());
        let t = Instant::now();
        let out = book.clear_owned(&catalogue, input, &unlimited).unwrap();
        let spent = t.elapsed();
        println!(
            "clear {} new orders against {n} resting: {} fills, {} of {} markets traded, {} resting after, {:.3} s ({:.0} new orders/s)",
            n / 10,
            out.fills.len(),
            out.prices.len(),
            CLASSES * REGIONS,
            book.len(),
            spent.as_secs_f64(),
            (n / 10) as f64 / spent.as_secs_f64(),
        );
        assert!(out.rejected.is_empty());
        drop((book, out));

        let mut g = c.benchmark_group(format!("clear {n} orders in 100 markets"));
        g.sample_size(10);
        if n >= 100_000 {
            g.sampling_mode(SamplingMode::Flat);
        }
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("fresh book, one batch", |b| {
            b.iter_batched(
                || (Book::new(), first.clone()),
                |(mut book, input)| {
                    let out = book.clear_owned(&catalogue, input, &unlimited).unwrap();
                    (book, out)
                },
                BatchSize::PerIteration,
            )
        });
        g.throughput(Throughput::Elements((n / 10) as u64));
        g.bench_function(format!("{} new orders against {n} resting", n / 10), |b| {
            b.iter_batched(
                || (resting.clone(), second.clone()),
                |(mut book, input)| {
                    let out = book.clear_owned(&catalogue, input, &unlimited).unwrap();
                    (book, out)
                },
                BatchSize::PerIteration,
            )
        });
        g.finish();
    }
}

const SIGNED: usize = 10_000;
const AUTHORS: u64 = 1_000;
const VERIFY_BATCH: usize = 1_000;

/// Messages, signatures and keys for raw ed25519-dalek, decoded ahead (the raw limit).
struct Raw {
    msgs: Vec<Vec<u8>>,
    sigs: Vec<ed25519_dalek::Signature>,
    keys: Vec<ed25519_dalek::VerifyingKey>,
}

fn raw_of(entries: &[Entry]) -> Raw {
    let mut raw = Raw { msgs: Vec::new(), sigs: Vec::new(), keys: Vec::new() };
    for e in entries {
        let surplus_ledger::Auth::Signed { author, signature } = &e.auth else { unreachable!() };
        raw.msgs.push(Entry::signing_bytes(CHAIN, e.kind, author, &e.payload));
        raw.sigs.push(ed25519_dalek::Signature::from_bytes(&signature.0));
        raw.keys.push(ed25519_dalek::VerifyingKey::from_bytes(&author.0).unwrap());
    }
    raw
}

fn raw_single(raw: &Raw) {
    for ((m, s), k) in raw.msgs.iter().zip(&raw.sigs).zip(&raw.keys) {
        k.verify(m, s).unwrap();
    }
}

fn raw_batch(raw: &Raw) {
    for ((m, s), k) in raw
        .msgs
        .chunks(VERIFY_BATCH)
        .zip(raw.sigs.chunks(VERIFY_BATCH))
        .zip(raw.keys.chunks(VERIFY_BATCH))
    {
        let m: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
        ed25519_dalek::verify_batch(&m, s, k).unwrap();
    }
}

/// Full validation, one signature at a time: decode, check fields, verify.
fn validate_single(entries: &[Entry], catalogue: &Catalogue, now: u64) -> Vec<SignedOrder> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let o = SignedOrder::from_entry(e).unwrap();
        validate(&o.order, catalogue, now).unwrap();
        e.verify_signature(CHAIN).unwrap();
        out.push(o);
    }
    out
}

/// Full validation with the signatures checked 1,000 at a time.
fn validate_batched(entries: &[Entry], catalogue: &Catalogue, now: u64) -> Vec<SignedOrder> {
    let mut out = Vec::with_capacity(entries.len());
    let mut verifier = BatchVerifier::new();
    for chunk in entries.chunks(VERIFY_BATCH) {
        for e in chunk {
            let o = SignedOrder::from_entry(e).unwrap();
            validate(&o.order, catalogue, now).unwrap();
            verifier.push(
                o.author,
                Entry::signing_bytes(CHAIN, e.kind, &o.author, &e.payload),
                o.signature,
            );
            out.push(o);
        }
        verifier.verify().unwrap();
    }
    out
}

fn bench_validation(c: &mut Criterion) {
    let catalogue = catalogue();
    let keys: Vec<_> = (0..AUTHORS).map(|i| key("bench", i)).collect();
    let mut gen = Gen::new(&catalogue, 4);
    // Authors in turn: each batch of 1,000 holds 1,000 distinct keys, the worst case for the
    // per-batch key cache of `BatchVerifier` (the raw reference decodes its keys ahead).
    let entries: Vec<Entry> = (0..SIGNED)
        .map(|i| {
            let order = gen.order(i % (CLASSES * REGIONS), Prices::Crossing, NOW);
            SignedOrder::sign(CHAIN, order, &keys[i % keys.len()]).0
        })
        .collect();
    let raw = raw_of(&entries);
    assert_eq!(validate_single(&entries, &catalogue, NOW).len(), SIGNED);
    assert_eq!(validate_batched(&entries, &catalogue, NOW).len(), SIGNED);

    let mut g = c.benchmark_group(format!("validate {SIGNED} signed orders"));
    g.throughput(Throughput::Elements(SIGNED as u64));
    g.sample_size(10);
    g.bench_function("raw ed25519-dalek verify, one by one", |b| b.iter(|| raw_single(&raw)));
    g.bench_function("raw ed25519-dalek verify_batch, 1,000 at a time (the limit)", |b| {
        b.iter(|| raw_batch(&raw))
    });
    g.bench_function("surplus validation, signatures one by one", |b| {
        b.iter(|| validate_single(&entries, &catalogue, NOW))
    });
    g.bench_function("surplus validation, signatures in batches of 1,000", |b| {
        b.iter(|| validate_batched(&entries, &catalogue, NOW))
    });
    g.finish();

    // The ratios, measured here side by side (median of 5 runs each).
    let median = surplus_ledger::testutil::median_of_5;
    let single = median(&mut || raw_single(&raw));
    let batched = median(&mut || raw_batch(&raw));
    let ours_single = median(&mut || {
        black_box(validate_single(&entries, &catalogue, NOW));
    });
    let ours_batched = median(&mut || {
        black_box(validate_batched(&entries, &catalogue, NOW));
    });
    let rate = |d: Duration| SIGNED as f64 / d.as_secs_f64();
    println!(
        "RATIO validation/raw-single over {SIGNED} orders: raw {:.0}/s, validation {:.0}/s ({:.3})",
        rate(single),
        rate(ours_single),
        single.as_secs_f64() / ours_single.as_secs_f64(),
    );
    println!(
        "RATIO validation-batched/raw-batch over {SIGNED} orders: raw {:.0}/s, validation {:.0}/s ({:.3})",
        rate(batched),
        rate(ours_batched),
        batched.as_secs_f64() / ours_batched.as_secs_f64(),
    );
}

/// `raw_batch` with the chunks spread over the machine's cores (the limit for work that is).
fn raw_batch_on_cores(raw: &Raw) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let per = raw.msgs.len().div_ceil(cores).div_ceil(VERIFY_BATCH) * VERIFY_BATCH;
    std::thread::scope(|s| {
        for i in 0..cores {
            let r = i * per..((i + 1) * per).min(raw.msgs.len());
            if r.is_empty() {
                continue;
            }
            let part = Raw {
                msgs: raw.msgs[r.clone()].to_vec(),
                sigs: raw.sigs[r.clone()].to_vec(),
                keys: raw.keys[r].to_vec(),
            };
            s.spawn(move || raw_batch(&part));
        }
    });
}

/// An input file for `surplus market clear`: `n` crossing orders signed by 1,000 keys in turn,
/// as ledger entries, every author able to pay; and the entries.
fn clear_input(catalogue: &Catalogue, n: usize) -> (String, Vec<Entry>) {
    let keys: Vec<_> = (0..AUTHORS).map(|i| key("bench", i)).collect();
    let mut gen = Gen::new(catalogue, 5);
    let entries: Vec<Entry> = (0..n)
        .map(|i| {
            let order = gen.order(i % (CLASSES * REGIONS), Prices::Crossing, NOW);
            SignedOrder::sign(CHAIN, order, &keys[i % keys.len()]).0
        })
        .collect();
    let input = AuctionInput {
        format: FORMAT.into(),
        chain_id: CHAIN.into(),
        height: 1,
        now_ms: NOW,
        catalogue: catalogue.clone(),
        book: Vec::new(),
        orders: entries
            .iter()
            .map(|e| InputEntry::Encoded { entry: hex::encode(e.encode()) })
            .collect(),
        balances: keys.iter().map(|k| (k.public(), 1_000_000_000_000_000)).collect(),
    };
    (serde_json::to_string(&input).unwrap(), entries)
}

fn bench_market_clear(c: &mut Criterion) {
    let catalogue = catalogue();
    let n = if quick() { 10_000 } else { 100_000 };
    let (json, entries) = clear_input(&catalogue, n);
    let clear = || {
        let input: AuctionInput = serde_json::from_str(&json).unwrap();
        input.run().unwrap()
    };
    let (_, out) = clear();
    assert!(out.rejected.is_empty() && !out.fills.is_empty(), "every order valid, some trade");
    let raw = raw_of(&entries);

    let mut g = c.benchmark_group(format!("market clear end to end, {n} signed orders"));
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    g.bench_function("parse JSON, verify, clear", |b| b.iter(|| black_box(clear())));
    g.finish();

    let median = surplus_ledger::testutil::median_of_5;
    let one = median(&mut || raw_batch(&raw));
    let all = median(&mut || raw_batch_on_cores(&raw));
    let ours = median(&mut || {
        black_box(clear());
    });
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "RATIO market-clear/raw-batch over {n} orders: raw batch verification {:.0}/s on one \
         core, {:.0}/s on {cores}; market clear end to end {:.0}/s ({:.3} of one core's, {:.3} of \
         all cores')",
        rate(one),
        rate(all),
        rate(ours),
        one.as_secs_f64() / ours.as_secs_f64(),
        all.as_secs_f64() / ours.as_secs_f64(),
    );
}

// criterion's macros generate undocumented items.
#[allow(missing_docs)]
mod harness {
    use super::*;
    criterion::criterion_group! {
        name = benches;
        config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(if quick() { 2 } else { 8 }));
        targets = bench_memory, bench_clear, bench_validation, bench_market_clear
    }
}
criterion::criterion_main!(harness::benches);
