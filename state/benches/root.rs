//! Root-update throughput (decision 0015's gate: at least 100,000 changed keys per second on one
//! core): batches of 1,000 changes, 90% updates of existing keys and 10% new keys, applied to
//! trees of 10^4 and 10^6 keys; and the bulk build of 10^6 keys.
//!
//! `cargo bench -p surplus-state --bench root`
//!
//! Times are the benchmark thread's CPU time (Linux `/proc/thread-self/schedstat`; wall-clock time
//! elsewhere), so that a busy machine does not inflate them (decision 0015 measured the same way).
//! The peak and current RSS after building the 10^6-key tree are printed to stderr.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use surplus_state::{Hash, Tree};

const BATCH: usize = 1_000;
const UPDATES: usize = 900;

/// The thread's CPU time in nanoseconds, or the wall-clock time if the kernel does not say.
fn now_ns() -> u64 {
    static USE_CPU: OnceLock<bool> = OnceLock::new();
    static START: OnceLock<Instant> = OnceLock::new();
    let cpu = || {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        s.split_whitespace().next()?.parse::<u64>().ok()
    };
    if *USE_CPU.get_or_init(|| cpu().is_some()) {
        if let Some(ns) = cpu() {
            return ns;
        }
    }
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// criterion measurement: the thread's CPU time.
struct ThreadCpu;

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        now_ns()
    }
    fn end(&self, start: u64) -> u64 {
        now_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, formatted as durations.
        WALL.formatter()
    }
}

fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

fn random_hash(rng: &mut impl RngCore) -> Hash {
    let mut h = [0u8; 32];
    rng.fill_bytes(&mut h);
    h
}

fn random_leaves(n: usize, rng: &mut impl RngCore) -> Vec<(Hash, Hash)> {
    (0..n).map(|_| (random_hash(rng), random_hash(rng))).collect()
}

fn apply(c: &mut Criterion<ThreadCpu>) {
    let mut group = c.benchmark_group("apply_1000");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for size in [10_000usize, 1_000_000] {
        let mut rng = ChaCha8Rng::seed_from_u64(size as u64);
        let leaves = random_leaves(size, &mut rng);
        let mut keys: Vec<Hash> = leaves.iter().map(|(k, _)| *k).collect();
        let mut tree = Tree::from_leaves(leaves);
        eprintln!("tree of {size} keys built: {}", rss());
        let mut make_batch = |rng: &mut ChaCha8Rng| {
            let mut batch = Vec::with_capacity(BATCH);
            for _ in 0..UPDATES {
                let k = keys[rng.gen_range(0..keys.len())];
                batch.push((k, Some(random_hash(rng))));
            }
            for _ in UPDATES..BATCH {
                let k = random_hash(rng);
                keys.push(k);
                batch.push((k, Some(random_hash(rng))));
            }
            batch
        };
        // The tree alone owns its nodes: the changed paths are updated in place.
        group.bench_function(BenchmarkId::new("sole_owner", size), |b| {
            b.iter_batched(
                || make_batch(&mut rng),
                |batch| tree.apply(batch),
                BatchSize::SmallInput,
            )
        });
        // The previous version is kept (as the node keeps its last versions): the changed paths
        // are copied. Dropping that version (pruning) happens outside the timing.
        group.bench_function(BenchmarkId::new("keep_previous", size), |b| {
            b.iter_batched(
                || make_batch(&mut rng),
                |batch| {
                    let previous = tree.clone();
                    tree.apply(batch);
                    previous
                },
                BatchSize::SmallInput,
            )
        });
        assert_eq!(tree.len(), keys.len());
    }
    group.finish();
}

fn from_leaves(c: &mut Criterion<ThreadCpu>) {
    let mut group = c.benchmark_group("from_leaves");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    let size = 1_000_000usize;
    let leaves = random_leaves(size, &mut ChaCha8Rng::seed_from_u64(7));
    group.throughput(Throughput::Elements(size as u64));
    group.bench_function(BenchmarkId::from_parameter(size), |b| {
        b.iter_batched(|| leaves.clone(), Tree::from_leaves, BatchSize::PerIteration)
    });
    group.finish();
}

// criterion's macros generate undocumented items.
#[allow(missing_docs)]
mod harness {
    use super::*;
    criterion_group! {
        name = benches;
        config = Criterion::default().with_measurement(ThreadCpu);
        targets = apply, from_leaves
    }
}
criterion_main!(harness::benches);
