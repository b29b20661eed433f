//! The simulated consortium (`surplus_service::sim`) over many seeds, and exact replay.
//!
//! `SIM_SEEDS=N` runs seeds `SIM_FIRST..SIM_FIRST+N` (CI: the default); `SIM_SEED=S` runs one
//! seed and prints its trace (a failure prints the command that replays it).

use surplus_service::sim::{self, Settings};

fn var(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

/// Seeds run in CI.
const CI_SEEDS: u64 = 2_000;

#[test]
fn every_seed_holds_the_invariants() {
    let settings = Settings::default();
    if let Some(seed) = var("SIM_SEED") {
        match sim::run(seed, &settings) {
            Ok(r) => println!("{r:?}"),
            Err(f) => panic!("{f}"),
        }
        return;
    }
    let first = var("SIM_FIRST").unwrap_or(0);
    let count = var("SIM_SEEDS").unwrap_or(CI_SEEDS);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let started = std::time::Instant::now();
    let outcomes: Vec<Vec<Result<sim::Report, sim::Failure>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let settings = &settings;
                s.spawn(move || {
                    (first + t..first + count)
                        .step_by(threads as usize)
                        .map(|seed| sim::run(seed, settings))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a seed thread panicked")).collect()
    });
    let mut failures: Vec<sim::Failure> = vec![];
    let (mut acked, mut committed, mut crashes, mut partitions, mut leases, mut blocks) =
        (0, 0, 0, 0, 0, 0);
    for r in outcomes.into_iter().flatten() {
        match r {
            Ok(r) => {
                acked += r.acked;
                committed += r.committed;
                crashes += r.crashes;
                partitions += r.partitions;
                leases += r.leases;
                blocks += r.height;
            }
            Err(f) => failures.push(f),
        }
    }
    failures.sort_by_key(|f| f.seed);
    println!(
        "{count} seeds from {first} in {:.1} s: {acked} entries acknowledged, {committed} \
         committed, {blocks} blocks, {leases} leases, {crashes} crashes, {partitions} partitions, \
         {} failed",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    if let Some(f) = failures.first() {
        let seeds: Vec<u64> = failures.iter().map(|f| f.seed).collect();
        panic!("{} of {count} seeds failed ({seeds:?}); the first:\n{f}", failures.len());
    }
    // The runs did something: traffic, faults and trades.
    assert!(acked > count as usize && committed > 0 && leases > 0, "an idle simulation");
    assert!(crashes > 0 && partitions > 0, "a simulation without faults");
}

#[test]
fn a_seed_replays_exactly() {
    let settings = Settings::default();
    let a = sim::run(42, &settings).unwrap_or_else(|f| panic!("{f}"));
    let b = sim::run(42, &settings).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(a, b);
    let c = sim::run(43, &settings).unwrap_or_else(|f| panic!("{f}"));
    assert_ne!(a.head, c.head, "another seed, another run");
}
