//! The same block applied to a small state and to a large one: the cost of a block must follow
//! the block, not the state (the limit: with 1,000,000 live leases and 1,000,000
//! accounts, within 1.5× of the same block with 1,000 of each).
//!
//! Both states hold the sample genesis, the block's 1,000 signers, and then either 1,000 or
//! 1,000,000 (100,000 with `SURPLUS_BENCH_QUICK=1`, or when run as a test without `--bench`)
//! further accounts and active leases, put straight into the state. The block, at the same time
//! in both, carries 600 transfers to random accounts, 200 bids and 200 terminations of leases
//! held by the signers, and its time makes 100 leases due for an hourly settlement; everything
//! else in the large state is untouched. Each run applies the block to a clone of the state (a
//! clone shares everything, as a proposer's or validator's does), computes the state root, and
//! hands the result to `drop_in_background`, as a node's commit hands it the head state it
//! replaces: what only that version held is freed on the background thread, while the next run
//! goes on (on the same cores). The bench uses the node's allocator (mimalloc).
//! Each state also runs the block as a validator that verified every entry's signature on
//! admission does (`apply_1000_admitted_entries`, `State::apply_block_with`).
//! After criterion's figures, the bench prints the medians of its own 31 timed runs, their
//! ratio, and the CPU time each run used on average (all threads, the background one's included).
//!
//! `cargo bench -p surplus-contracts --bench scale`

use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use surplus_contracts::testutil::{genesis, market, sample_lease, tx, Lcg, CHAIN, T0};
use surplus_contracts::{Lease, Mode, State, Tx};
use surplus_ledger::testutil::key;
use surplus_ledger::{Entry, PublicKey, SecretKey};
use surplus_market::{Bid, FillRule, Order, SignedOrder, HOUR_MS};

/// The node's allocator (`node/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIGNERS: u64 = 1_000;
const TRANSFERS: u64 = 600;
const BIDS: u64 = 200;
const TERMINATIONS: u64 = 200;
const DUE: u64 = 100;
const LEASE_HOURS: u32 = 1_000;
/// The block's time: ten hours and a bit after genesis.
const NOW: u64 = T0 + 10 * HOUR_MS + 1;

fn quick() -> bool {
    std::env::var_os("SURPLUS_BENCH_QUICK").is_some() || !std::env::args().any(|a| a == "--bench")
}

fn signer(i: u64) -> SecretKey {
    key("scale-signer", i)
}

fn lease(rng: &mut Lcg, buyer: PublicKey, paid: u32) -> Lease {
    sample_lease(rng, buyer, paid, LEASE_HOURS)
}

/// The sample genesis with the signers, `n` more accounts and `n` more leases, of which
/// `TERMINATIONS` belong to signers and `DUE` fall due at [`NOW`]. Returns the state and the
/// ids of the signers' leases.
fn state(n: u64) -> (State, Vec<[u8; 32]>) {
    let mut s = State::genesis(CHAIN, &genesis(100, 1000), T0).expect("genesis");
    let mut rng = Lcg(n);
    let signers: Vec<PublicKey> = (0..SIGNERS).map(|i| signer(i).public()).collect();
    let accounts = signers
        .iter()
        .map(|k| (*k, 1_000_000_000))
        .chain((0..n).map(|_| (PublicKey(rng.hash()), 1_000)))
        .collect::<Vec<_>>();
    let mut mine = Vec::new();
    let mut leases = Vec::with_capacity(n as usize);
    for i in 0..n {
        let (buyer, paid) = if i < TERMINATIONS {
            (signers[i as usize], 10)
        } else if i < TERMINATIONS + DUE {
            (PublicKey(rng.hash()), 9)
        } else {
            (PublicKey(rng.hash()), 10)
        };
        let l = lease(&mut rng, buyer, paid);
        if i < TERMINATIONS {
            mine.push(l.id);
        }
        leases.push(l);
    }
    s.populate(accounts, leases);
    // Time moves to a second before the block, as the blocks between genesis and it would
    // (before the due leases' hour ends).
    s.apply_block(1, NOW - 1_000, &[], Mode::Validate).expect("an empty block applies");
    (s, mine)
}

/// The block: the same entries whatever the state's size (the transfers' recipients are the
/// signers, which both states hold).
fn block(mine: &[[u8; 32]]) -> Vec<Entry> {
    let mut rng = Lcg(7);
    let mut out = Vec::new();
    for i in 0..TRANSFERS {
        let to = signer((i + 1 + rng.next_u64() % (SIGNERS - 1)) % SIGNERS).public();
        out.push(tx(&signer(i), Tx::Transfer { to, amount: 1 + rng.next_u64() % 1000, seq: 0 }));
    }
    for i in 0..BIDS {
        let o = Order::Bid(Bid {
            market: market(),
            slots: 1,
            hours: 2,
            limit: 50,
            earliest_ms: NOW,
            latest_ms: NOW + HOUR_MS,
            fill: FillRule::AtLeast(1),
            expiry_ms: NOW + HOUR_MS,
            nonce: i,
        });
        out.push(SignedOrder::sign(CHAIN, o, &signer(TRANSFERS + i)).0);
    }
    for (i, id) in mine.iter().enumerate() {
        out.push(tx(&signer(i as u64), Tx::Terminate { lease: *id, seq: 1 }));
    }
    out
}

/// The bench's own timed runs per state.
const RUNS: u32 = 31;

/// CPU time this process has used (user and system, all threads), from `/proc/self/stat`
/// (Linux; `None` elsewhere).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses): utime and stime are the 12th
    // and 13th, in clock ticks of 1/100 s.
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let large = if quick() { 100_000 } else { 1_000_000 };
    let mut c = Criterion::default().configure_from_args().sample_size(10);
    let mut medians = Vec::new();
    let mut admitted_medians = Vec::new();
    for n in [1_000, large] {
        let t = Instant::now();
        let (s, mine) = state(n);
        eprintln!(
            "state with {} accounts and {} leases built in {:.1} s",
            s.account_count(),
            s.lease_count(),
            t.elapsed().as_secs_f64()
        );
        let user = block(&mine);
        let check =
            s.clone().apply_block(2, NOW, &user, Mode::Validate).expect("the block applies");
        // Every entry applied, with a settlement for each termination and each due lease.
        assert_eq!(check.entries.len() as u64, TRANSFERS + BIDS + 2 * TERMINATIONS + DUE);
        let mut g = c.benchmark_group(format!("block_{n}"));
        g.throughput(Throughput::Elements(user.len() as u64));
        g.bench_function("apply_1000_entries", |b| {
            b.iter_batched(
                || s.clone(),
                |mut st| {
                    let applied = st.apply_block(2, NOW, &user, Mode::Validate).expect("applies");
                    surplus_contracts::drop_in_background(st);
                    applied
                },
                BatchSize::LargeInput,
            )
        });
        // The same block on a node that verified every entry's signature on admission
        // (`State::apply_block_with`): what a validator's re-execution costs.
        let verified = surplus_contracts::VerifiedIds::default();
        for e in &user {
            verified.insert(e.id());
        }
        g.bench_function("apply_1000_admitted_entries", |b| {
            b.iter_batched(
                || s.clone(),
                |mut st| {
                    let applied = st
                        .apply_block_with(2, NOW, &user, Mode::Validate, Some(&verified))
                        .expect("applies");
                    surplus_contracts::drop_in_background(st);
                    applied
                },
                BatchSize::LargeInput,
            )
        });
        g.finish();
        let admitted: Vec<Duration> = (0..RUNS)
            .map(|_| {
                let mut st = s.clone();
                let t = Instant::now();
                st.apply_block_with(2, NOW, &user, Mode::Validate, Some(&verified))
                    .expect("applies");
                surplus_contracts::drop_in_background(st);
                t.elapsed()
            })
            .collect();
        admitted_medians.push(median(admitted));
        let cpu_before = cpu_seconds();
        let wall = Instant::now();
        let runs: Vec<Duration> = (0..RUNS)
            .map(|_| {
                let mut st = s.clone();
                let t = Instant::now();
                st.apply_block(2, NOW, &user, Mode::Validate).expect("applies");
                // Replaced, as a commit replaces the head (freed on the background thread).
                surplus_contracts::drop_in_background(st);
                t.elapsed()
            })
            .collect();
        if let (Some(a), Some(b)) = (cpu_before, cpu_seconds()) {
            let wall = wall.elapsed().as_secs_f64();
            eprintln!(
                "{RUNS} runs over {n}: {:.1} CPU-ms per run, on {:.2} cores on average",
                (b - a) * 1e3 / f64::from(RUNS),
                (b - a) / wall
            );
        }
        medians.push((n, median(runs)));
    }
    let (small, big) = (medians[0].1, medians[1].1);
    eprintln!(
        "median block: {:.1} ms with {} of each, {:.1} ms with {} of each: ratio {:.2} (limit 1.5)",
        small.as_secs_f64() * 1e3,
        medians[0].0,
        big.as_secs_f64() * 1e3,
        medians[1].0,
        big.as_secs_f64() / small.as_secs_f64()
    );
    eprintln!(
        "median block with its signatures verified on admission: {:.1} ms with {} of each, \
         {:.1} ms with {} of each (against {:.1} and {:.1} ms checking them)",
        admitted_medians[0].as_secs_f64() * 1e3,
        medians[0].0,
        admitted_medians[1].as_secs_f64() * 1e3,
        medians[1].0,
        small.as_secs_f64() * 1e3,
        big.as_secs_f64() * 1e3,
    );
    c.final_summary();
}
