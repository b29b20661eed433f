//! Soak: a bounded run at a steady order rate, recording each node's memory (RSS) and data-dir
//! size, and reporting their growth per 1,000 blocks, over the whole run and after a warm-up.
//! Two minutes in CI; longer by hand with
//! `SURPLUS_SOAK_SECONDS=600 cargo test -p surplus-tests --test soak -- --nocapture`
//! (`SURPLUS_SOAK_WARMUP_BLOCKS` sets the warm-up, 5,000 blocks by default: past the first
//! prune of the nodes that keep `retain_blocks = 2000`). Each sample is printed as it is taken.
//!
//! Two of the three pruning nodes (dc2, dc3) run with small page caches and a small receipts cap
//! (`SMALL`), which fill within minutes, so that a run of half an hour shows a node past every
//! cap; dc4 keeps the defaults, which a run that short does not fill.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use surplus_client::Client;
use surplus_market::{Market, Order, SignedOrder};
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

/// The `[storage]` settings of dc2 and dc3: caps reached early in a run.
const SMALL: [(&str, &str); 4] = [
    ("ledger_cache_bytes", "4194304"),
    ("receipts_cache_bytes", "2097152"),
    ("history_cache_bytes", "1048576"),
    ("receipts_keep", "10000"),
];
const MIB: f64 = 1_048_576.0;

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

/// [`disk`] of a data dir broken down by its top-level directories (`ledger/`, …); its loose
/// files (config, keys, genesis) together as `files`.
fn disk_by_dir(dir: &Path) -> BTreeMap<String, u64> {
    let mut parts = BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            let name = format!("{}/", e.file_name().to_string_lossy());
            parts.insert(name, disk(&e.path()));
        } else if e.file_name() != "node.log" {
            *parts.entry("files".to_owned()).or_default() += meta.len();
        }
    }
    parts
}

/// How a node keeps blocks, from the `[storage]` table of its `config.toml`.
fn storage_mode(dir: &Path) -> String {
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap_or_default();
    let mut in_storage = false;
    let mut keys = BTreeMap::new();
    for line in config.lines().map(str::trim) {
        if line.starts_with('[') {
            in_storage = line == "[storage]";
        } else if let (true, Some((k, v))) = (in_storage, line.split_once('=')) {
            if !line.starts_with('#') {
                keys.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    }
    let key = |k: &str| keys.get(k).map_or("?", String::as_str).to_owned();
    let snapshots = format!(
        "snapshot_every = {}, snapshot_keep = {}",
        key("snapshot_every"),
        key("snapshot_keep")
    );
    let caps = format!(
        "page caches: ledger {}, receipts {}, history {} bytes; receipts_keep = {}",
        key("ledger_cache_bytes"),
        key("receipts_cache_bytes"),
        key("history_cache_bytes"),
        key("receipts_keep")
    );
    if key("archive") == "false" {
        format!("retains the newest {} blocks ({snapshots}; {caps})", key("retain_blocks"))
    } else {
        format!("archive, keeps every block ({snapshots}; {caps})")
    }
}

struct Sample {
    secs: u64,
    height: u64,
    rss: Vec<u64>,
    disk: Vec<BTreeMap<String, u64>>,
}

impl Sample {
    fn disk_total(&self, node: usize) -> u64 {
        self.disk[node].values().sum()
    }

    fn line(&self) -> String {
        let mib = |v: &mut dyn Iterator<Item = u64>| {
            v.map(|b| format!("{:>7.1}", b as f64 / MIB)).collect::<Vec<_>>().join(" ")
        };
        format!(
            "soak: {:>5} s {:>6} | {} | {}",
            self.secs,
            self.height,
            mib(&mut self.rss.iter().copied()),
            mib(&mut (0..self.disk.len()).map(|i| self.disk_total(i)))
        )
    }
}

/// Growth from sample `a` to sample `b`, MiB per 1,000 blocks.
fn per_k(a: u64, b: u64, blocks: u64) -> f64 {
    (b as f64 - a as f64) / blocks.max(1) as f64 * 1000.0 / MIB
}

#[test]
fn steady_load_soak_records_memory_and_disk_growth_per_thousand_blocks() {
    let seconds: u64 =
        std::env::var("SURPLUS_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    let warm_up: u64 = std::env::var("SURPLUS_SOAK_WARMUP_BLOCKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000);
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 4, free_base(40), 50, 100);
    for i in [1, 2] {
        for (key, value) in SMALL {
            set_config(&net.data_dir(i).join("config.toml"), key, value);
        }
    }
    let nodes = net.start_all();
    let apis: Vec<Client> = nodes.iter().map(|n| n.api.clone()).collect();
    let pids: Vec<u32> = nodes.iter().map(|n| n.child.as_ref().unwrap().id()).collect();
    let chain_id = net.chain_id().to_owned();
    let buyers: Vec<_> = (0..3).map(|i| net.buyer(i)).collect();
    let market = Market::new("vm.2c8g", "us-east-b");
    let five = Duration::from_secs(5);
    let senders: Vec<Client> =
        apis.iter().map(|a| Client::with_timeouts(a.base(), five, five).unwrap()).collect();
    for (i, n) in nodes.iter().enumerate() {
        eprintln!("soak: dc{}: {}", i + 1, storage_mode(&n.dir));
    }

    let started = Instant::now();
    let sample = |apis: &[Client]| {
        let s = Sample {
            secs: started.elapsed().as_secs(),
            height: apis[0].head().map_or(0, |h| h.0),
            rss: pids.iter().map(|p| rss(*p)).collect(),
            disk: nodes.iter().map(|n| disk_by_dir(&n.dir)).collect(),
        };
        eprintln!("{}", s.line());
        s
    };
    eprintln!("soak: elapsed height | RSS per node (MiB) | data dir per node (MiB)");
    let mut samples = vec![sample(&apis)];
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
    eprintln!(
        "soak: {seconds} s, {sent} orders sent, {accepted} accepted, {blocks} blocks \
         (heights {} to {})",
        first.height, last.height
    );
    // The warm-up ends at the first sample `warm_up` blocks in (if the run got that far).
    let warm = samples.iter().find(|s| s.height >= first.height + warm_up);
    for i in 0..pids.len() {
        eprintln!(
            "soak: dc{}: whole run: RSS {:+.2} MiB and data dir {:+.2} MiB per 1,000 blocks",
            i + 1,
            per_k(first.rss[i], last.rss[i], blocks),
            per_k(first.disk_total(i), last.disk_total(i), blocks)
        );
    }
    match warm {
        Some(w) if last.height > w.height => {
            let after = last.height - w.height;
            for i in 0..pids.len() {
                eprintln!(
                    "soak: dc{}: after warm-up (heights {} to {}): RSS {:+.2} MiB and data dir \
                     {:+.2} MiB per 1,000 blocks",
                    i + 1,
                    w.height,
                    last.height,
                    per_k(w.rss[i], last.rss[i], after),
                    per_k(w.disk_total(i), last.disk_total(i), after)
                );
            }
        }
        _ => eprintln!("soak: the run did not get {warm_up} blocks past its start: no warm-up"),
    }
    // Which directories hold the data, and which of them grow (after the warm-up if there was
    // one, else over the run).
    let (from, span) = match warm {
        Some(w) if last.height > w.height => (w, last.height - w.height),
        _ => (first, blocks),
    };
    for i in 0..pids.len() {
        let parts = last.disk[i]
            .iter()
            .map(|(dir, b)| {
                let was = from.disk[i].get(dir).copied().unwrap_or(0);
                format!("{dir} {:.1} MiB ({:+.2}/1k)", *b as f64 / MIB, per_k(was, *b, span))
            })
            .collect::<Vec<_>>()
            .join(", ");
        eprintln!("soak: dc{}: data dir at height {}: {parts}", i + 1, last.height);
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
    // What each ledger spends its disk on (`surplus ledger usage`): every header from the
    // oldest held to the head is there, whatever was pruned.
    for (i, n) in nodes.iter().enumerate() {
        let out =
            surplus(&["ledger", "usage", "--data-dir", &n.dir.display().to_string(), "--json"]);
        assert!(out.status.success(), "ledger usage: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("usage JSON");
        let kinds = v["kinds"].as_array().expect("kinds");
        let parts = kinds
            .iter()
            .map(|k| {
                let records = k["records"].as_u64().unwrap_or(0);
                let bytes = k["bytes"].as_u64().unwrap_or(0);
                format!(
                    "{} {records} ({:.1} MiB)",
                    k["kind"].as_str().unwrap_or("?"),
                    bytes as f64 / MIB
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let held = v["bytes"].as_u64().unwrap_or(0) as f64;
        let on_disk = v["on_disk_bytes"].as_u64().unwrap_or(0) as f64;
        eprintln!(
            "soak: dc{}: ledger at height {} (base {}): {parts}; held {:.1} MiB, on disk {:.1} MiB",
            i + 1,
            v["height"],
            v["base"],
            held / MIB,
            on_disk / MIB
        );
        let headers = kinds.iter().find(|k| k["kind"] == "headers").expect("headers");
        let (head, oldest) = (v["height"].as_u64().unwrap(), v["oldest_header"].as_u64().unwrap());
        // Genesis's header, and every one from the oldest held to the head.
        assert_eq!(headers["records"].as_u64(), Some(1 + head + 1 - oldest), "dc{}: {v}", i + 1);
    }
}
