//! Soak: a bounded run at a steady order rate, recording each node's memory (RSS) and data-dir
//! size, and reporting their growth per 1,000 blocks. Two minutes in CI; longer by hand with
//! `SURPLUS_SOAK_SECONDS=600 cargo test -p surplus-tests --test soak -- --nocapture`.

use std::path::Path;
use std::time::{Duration, Instant};

use surplus_client::Client;
use surplus_market::{Market, Order, SignedOrder};
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

/// Resident memory of a process, bytes (Linux `/proc`).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Bytes of every file below `dir` (logs left out: they grow with the log level, not the data).
fn disk(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if e.file_name() != "node.log" {
                total += meta.len();
            }
        }
    }
    total
}

struct Sample {
    height: u64,
    rss: Vec<u64>,
    disk: Vec<u64>,
}

#[test]
fn steady_load_soak_records_memory_and_disk_growth_per_thousand_blocks() {
    let seconds: u64 =
        std::env::var("SURPLUS_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 4, free_base(40), 50, 100);
    let nodes = net.start_all();
    let apis: Vec<Client> = nodes.iter().map(|n| n.api.clone()).collect();
    let pids: Vec<u32> = nodes.iter().map(|n| n.child.as_ref().unwrap().id()).collect();
    let chain_id = net.chain_id().to_owned();
    let buyers: Vec<_> = (0..3).map(|i| net.buyer(i)).collect();
    let market = Market::new("vm.2c8g", "us-east-b");
    let five = Duration::from_secs(5);
    let senders: Vec<Client> =
        apis.iter().map(|a| Client::with_timeouts(a.base(), five, five).unwrap()).collect();

    let sample = |apis: &[Client]| Sample {
        height: apis[0].head().map_or(0, |h| h.0),
        rss: pids.iter().map(|p| rss(*p)).collect(),
        disk: nodes.iter().map(|n| disk(&n.dir)).collect(),
    };
    let mut samples = vec![sample(&apis)];
    let started = Instant::now();
    let (mut sent, mut accepted) = (0u64, 0u64);
    let mut next_sample = Instant::now() + Duration::from_secs(5);
    // About 40 bids a second, resting under every reserve and expiring after 20 s, so the book
    // holds a steady few hundred.
    while started.elapsed() < Duration::from_secs(seconds) && sent < 1_000_000 {
        let bid = one_slot_bid(&market, 1, sent, 20_000);
        let (entry, _) =
            SignedOrder::sign(&chain_id, Order::Bid(bid), &buyers[(sent % 3) as usize]);
        // Admitted (202) with its own id, or not accepted.
        if let Ok(id) = senders[(sent % 4) as usize].submit(&entry) {
            assert_eq!(id, entry.id());
            accepted += 1;
        }
        sent += 1;
        if Instant::now() >= next_sample {
            samples.push(sample(&apis));
            next_sample += Duration::from_secs(5);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    samples.push(sample(&apis));

    let (first, last) = (&samples[0], &samples[samples.len() - 1]);
    let blocks = last.height - first.height;
    assert!(blocks >= 50, "the chain barely moved: {blocks} blocks");
    assert!(accepted * 10 >= sent * 9, "only {accepted} of {sent} orders were accepted");
    let per_k = |a: u64, b: u64| (b as f64 - a as f64) / blocks as f64 * 1000.0;
    eprintln!(
        "soak: {seconds} s, {sent} orders sent, {accepted} accepted, {blocks} blocks \
         (heights {} to {})",
        first.height, last.height
    );
    eprintln!("soak: height | RSS per node (MiB) | data dir per node (MiB)");
    for s in &samples {
        let mib = |v: &[u64]| {
            v.iter().map(|b| format!("{:.1}", *b as f64 / 1048576.0)).collect::<Vec<_>>().join(" ")
        };
        eprintln!("soak: {:>6} | {} | {}", s.height, mib(&s.rss), mib(&s.disk));
    }
    for i in 0..pids.len() {
        eprintln!(
            "soak: dc{}: RSS {:+.2} MiB and data dir {:+.2} MiB per 1,000 blocks",
            i + 1,
            per_k(first.rss[i], last.rss[i]) / 1048576.0,
            per_k(first.disk[i], last.disk[i]) / 1048576.0
        );
    }

    // After the run the nodes agree and every ledger audits clean.
    let refs: Vec<&Client> = apis.iter().collect();
    wait_converged(&refs, last.height, 2 * MINUTE);
    let mut nodes = nodes;
    for n in &mut nodes {
        n.stop();
    }
    for n in &nodes {
        if let Err(e) = audit(&n.dir) {
            panic!("{e}");
        }
    }
}
