//! The audit with re-execution, against raw ed25519 batch verification in the same run.
//!
//! A devnet-like ledger of about 100,000 entries (10,000 with `SURPLUS_BENCH_QUICK=1`, or when
//! run as a test without `--bench`): 40 providers refresh offers, 400 buyers bid (1 to 4 slots,
//! 1 to 6 hours), and some transfer, in blocks 15 minutes apart, so the ledger also holds the
//! fills, leases and hourly settlements the state machine adds. The audit is
//! `surplus_ledger::verify` (links, hashes, Merkle roots, certificates, every entry signature
//! under the strict rule, over all cores) with `surplus_contracts::Replay` re-executing every
//! block; the limit is ed25519-dalek's `verify_batch` over the same entry signatures, block by
//! block, on one core (the aim: audit ≥ 0.5 of it).
//!
//! `cargo bench -p surplus-contracts --bench audit`

use std::time::Duration;

use criterion::{Criterion, Throughput};
use surplus_contracts::testutil::{certify, offer, CHAIN, T0};
use surplus_contracts::{Allocation, BlockMaker, Genesis, Params, Replay, Tx};
use surplus_ledger::testutil::key;
use surplus_ledger::{verify, Auth, Block, Entry, VecSource};
use surplus_market::{Bid, Catalogue, FillRule, Order, SignedOrder, HOUR_MS};

const PROVIDERS: u64 = 40;
const BUYERS: u64 = 400;
const BLOCK_MS: u64 = 15 * 60 * 1_000;

fn quick() -> bool {
    std::env::var_os("SURPLUS_BENCH_QUICK").is_some() || !std::env::args().any(|a| a == "--bench")
}

/// A small deterministic generator (no dependency on a random crate's stream stability).
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn bid(buyer: u64, slots: u32, hours: u32, limit: u64, nonce: u64, now: u64) -> Entry {
    let o = Order::Bid(Bid {
        market: surplus_contracts::testutil::market(),
        slots,
        hours,
        limit,
        earliest_ms: now,
        latest_ms: now + HOUR_MS,
        fill: FillRule::AtLeast(1),
        expiry_ms: now + HOUR_MS,
        nonce,
    });
    SignedOrder::sign(CHAIN, o, &key("buyer", buyer)).0
}

/// Blocks until the ledger holds at least `entries` entries.
fn devnet_ledger(entries: u64) -> Vec<Block> {
    let validators: Vec<_> = (0..4).map(|i| key("validator", i)).collect();
    let mut allocations: Vec<Allocation> = (0..BUYERS)
        .map(|i| Allocation { account: key("buyer", i).public(), amount: 1_000_000_000 })
        .collect();
    allocations.extend(
        (0..PROVIDERS).map(|i| Allocation { account: key("provider", i).public(), amount: 1_000 }),
    );
    let genesis = Genesis {
        validators: validators.iter().map(|v| v.public()).collect(),
        params: Params {
            catalogue: Catalogue::sample(),
            treasury: key("treasury", 0).public(),
            fee_bps: 100,
            penalty_bps: 1_000,
            notice_ms: surplus_contracts::maintenance::DEFAULT_NOTICE_MS,
            supervision: None,
        },
        allocations,
    };
    let (g, mut maker) = BlockMaker::genesis(CHAIN, &genesis, T0).expect("the genesis builds");
    let mut total = g.entries.len() as u64;
    let mut blocks = vec![g];
    let mut rng = Lcg(7);
    let mut seqs = vec![0u64; BUYERS as usize];
    let mut now = T0;
    let mut nonce = 0;
    while total < entries {
        now += BLOCK_MS;
        nonce += 1;
        let mut user = Vec::new();
        for p in 0..PROVIDERS {
            let reserve = 5 + rng.below(20);
            user.push(offer(&key("provider", p), 40, reserve, 8, nonce, now));
        }
        for b in 0..BUYERS {
            let (slots, hours) = (1 + rng.below(4) as u32, 1 + rng.below(6) as u32);
            user.push(bid(b, slots, hours, 5 + rng.below(30), nonce, now));
            if rng.below(10) == 0 {
                let to = key("buyer", rng.below(BUYERS)).public();
                let seq = &mut seqs[b as usize];
                let t = Tx::Transfer { to, amount: 1 + rng.below(1_000), seq: *seq };
                *seq += 1;
                user.push(surplus_contracts::testutil::tx(&key("buyer", b), t));
            }
        }
        let height = blocks.len() as u64;
        let proposer = validators[((height - 1) % 4) as usize].public();
        let (block, _) = maker.next(&user, now, proposer).expect("the block builds");
        total += block.entries.len() as u64;
        blocks.push(certify(block));
    }
    blocks
}

/// Messages, signatures and keys of one block, for dalek's `verify_batch`.
type RawBatch = (Vec<Vec<u8>>, Vec<ed25519_dalek::Signature>, Vec<ed25519_dalek::VerifyingKey>);

fn raw_batches(blocks: &[Block]) -> Vec<RawBatch> {
    blocks
        .iter()
        .map(|b| {
            let mut batch: RawBatch = Default::default();
            for e in &b.entries {
                if let Auth::Signed { author, signature } = &e.auth {
                    batch.0.push(Entry::signing_bytes(CHAIN, e.kind, author, &e.payload));
                    batch.1.push(ed25519_dalek::Signature::from_bytes(&signature.0));
                    batch.2.push(
                        ed25519_dalek::VerifyingKey::from_bytes(&author.0).expect("a valid key"),
                    );
                }
            }
            batch
        })
        .collect()
}

fn verify_raw(batches: &[RawBatch]) {
    for (msgs, sigs, keys) in batches {
        if sigs.is_empty() {
            continue;
        }
        let m: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        ed25519_dalek::verify_batch(&m, sigs, keys).expect("the ledger's signatures verify");
    }
}

fn audit(blocks: &[Block], replay: Replay) -> verify::Report {
    let mut source = VecSource::new(blocks.to_vec());
    let mut replay = replay;
    let report = verify::verify(&mut source, &Default::default(), &mut replay, &mut |_| {})
        .expect("the ledger audits clean");
    assert!(replay.state().is_some(), "re-execution ran");
    report
}

fn main() {
    let want = if quick() { 10_000 } else { 100_000 };
    let blocks = devnet_ledger(want);
    let entries: u64 = blocks.iter().map(|b| b.entries.len() as u64).sum();
    let batches = raw_batches(&blocks);
    let signed: usize = batches.iter().map(|b| b.1.len()).sum();
    println!("ledger: {} blocks, {entries} entries, {signed} signed by users", blocks.len());

    let mut c = Criterion::default().configure_from_args().sample_size(10);
    let mut g = c.benchmark_group(format!("audit with re-execution, {entries} entries"));
    g.throughput(Throughput::Elements(entries));
    g.bench_function("raw ed25519-dalek batch verification, one core (the limit)", |b| {
        b.iter(|| verify_raw(&batches))
    });
    g.bench_function("surplus audit with re-execution", |b| {
        b.iter(|| audit(&blocks, Replay::after_signature_checks()))
    });
    g.finish();

    let median = surplus_ledger::testutil::median_of_5;
    let raw = median(&mut || verify_raw(&batches));
    let full = median(&mut || {
        audit(&blocks, Replay::after_signature_checks());
    });
    let ledger_only = median(&mut || {
        let mut source = VecSource::new(blocks.clone());
        let mut none = surplus_ledger::NoHook;
        verify::verify(&mut source, &Default::default(), &mut none, &mut |_| {}).expect("clean");
    });
    let twice = median(&mut || {
        audit(&blocks, Replay::new());
    });
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let rate = |d: Duration| entries as f64 / d.as_secs_f64();
    println!(
        "RATIO audit-with-re-execution/raw-batch over {entries} entries ({signed} user signatures, \
         {cores} cores): raw batch {:.0}/s, audit {:.0}/s ({:.3}); re-execution checking each \
         signature a second time {:.0}/s ({:.3}); the ledger's rules alone, without re-execution \
         {:.0}/s ({:.3})",
        rate(raw),
        rate(full),
        raw.as_secs_f64() / full.as_secs_f64(),
        rate(twice),
        raw.as_secs_f64() / twice.as_secs_f64(),
        rate(ledger_only),
        raw.as_secs_f64() / ledger_only.as_secs_f64(),
    );
}
