//! State sync at scale (issue limit: a state with 1,000,000 leases to a fresh node on loopback in
//! at most 60 s). Builds a certified state with N accounts and N live leases (default
//! 1,000,000 each; `SURPLUS_SYNC_N` to change), writes its snapshot into the data dirs of two
//! serving nodes, serves them over real libp2p sockets on 127.0.0.1, syncs a fresh data dir
//! from both (every chunk checked against the certified state root) and opens it as a chain (the
//! snapshot is loaded and checked again, as a node's start does). Prints each phase's time.
//!
//! `cargo run --release -p surplus-net --example sync_scale`

use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{identity, PeerId};
use surplus_contracts::testutil::{certify, genesis, sample_lease, Lcg, CHAIN, T0};
use surplus_contracts::BlockMaker;
use surplus_ledger::PublicKey;
use surplus_net::consensus::chain::{Chain, Storage};
use surplus_net::consensus::{snapshot, statesync};
use surplus_net::p2p::{self, NetConfig, Topic, Validator, Verdict};
use surplus_net::snapfetch::SnapshotClient;

struct AcceptAll;

impl Validator for AcceptAll {
    fn validate(&self, _: Topic, _: &[u8], _: &PeerId) -> Verdict {
        Verdict::Accept
    }
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// A field of `/proc/self/status` in MiB (Linux), e.g. `VmRSS` or `VmHWM`.
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(&format!("{field}:")))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u64 =
        std::env::var("SURPLUS_SYNC_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let t = Instant::now();
    let (g, mut maker) = BlockMaker::genesis(CHAIN, &genesis(100, 1000), T0).expect("genesis");
    let mut rng = Lcg(n);
    let accounts: Vec<(PublicKey, u64)> = (0..n).map(|_| (PublicKey(rng.hash()), 1_000)).collect();
    let leases = (0..n).map(|_| {
        let buyer = PublicKey(rng.hash());
        sample_lease(&mut rng, buyer, 10, 1_000)
    });
    maker.state.populate(accounts, leases.collect::<Vec<_>>());
    let proposer = surplus_ledger::testutil::key("validator", 0).public();
    let (b, _) = maker.next(&[], T0 + 1_000, proposer).expect("a block");
    let block = certify(b);
    println!(
        "state: {} accounts, {} leases, built in {:.1} s",
        maker.state.account_count(),
        maker.state.lease_count(),
        secs(t)
    );

    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    // The peak resident memory is reset (Linux: `/proc/self/clear_refs`), so that the peak after
    // the write is the write's.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before = status_mib("VmRSS");
    let t = Instant::now();
    let m = snapshot::write(
        &snapshot::dir_of(dirs[0].path()),
        &maker.state,
        &block.header,
        &block.certificate,
        maker.frontier(),
        Vec::new(),
    )
    .expect("write the snapshot");
    let bytes: u64 = (0..m.chunks.len() as u32)
        .filter_map(|i| snapshot::read_chunk(&snapshot::dir_of(dirs[0].path()), 1, i))
        .map(|c| c.len() as u64)
        .sum();
    let written = secs(t);
    let peak = match (reset, rss_before, status_mib("VmHWM")) {
        (true, Some(before), Some(peak)) => format!("{:.0} MiB", peak - before),
        _ => "not measured".to_owned(),
    };
    println!(
        "snapshot: {} items in {} chunks, {:.0} MiB, written in {written:.1} s; resident memory \
         at most {peak} above what it was before the write",
        m.items,
        m.chunks.len(),
        bytes as f64 / (1 << 20) as f64,
    );
    let from = snapshot::dir_of(dirs[0].path()).join(format!("{:020}", 1));
    let to = snapshot::dir_of(dirs[1].path()).join(format!("{:020}", 1));
    std::fs::create_dir_all(&to).expect("snapshot dir");
    for e in std::fs::read_dir(&from).expect("snapshot files") {
        let e = e.expect("a snapshot file");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy a snapshot file");
    }

    let mut nodes = Vec::new();
    let mut addrs = Vec::new();
    for d in &dirs {
        let cfg = NetConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("an address")],
            ..NetConfig::default()
        };
        let net = p2p::start_with(
            cfg,
            identity::Keypair::generate_ed25519(),
            CHAIN,
            Arc::new(AcceptAll),
            Some(Arc::new(statesync::LocalSnapshots::new(d.path()))),
        )
        .await
        .expect("a serving node");
        let addr = net.listen_addrs().into_iter().next().expect("a bound address");
        addrs.push(addr.with(Protocol::P2p(net.local_peer_id())));
        nodes.push(net);
    }

    let fresh = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let client = SnapshotClient::connect(
        identity::Keypair::generate_ed25519(),
        addrs,
        Duration::from_secs(20),
    )
    .await
    .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.peers().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let synced = statesync::sync(&client, &surplus_net::Env::system(), fresh.path(), &g, &|_| {})
        .await
        .expect("sync");
    let sync_s = secs(t);
    client.close().await;
    println!(
        "sync: {} chunks, {:.0} MiB from {} peers in {:.1} s",
        synced.chunks,
        synced.bytes as f64 / (1 << 20) as f64,
        synced.sources,
        sync_s
    );
    let t = Instant::now();
    let (g2, gmaker) = BlockMaker::genesis(CHAIN, &genesis(100, 1000), T0).expect("genesis");
    let chain = Chain::open(fresh.path(), &g2, gmaker, Storage::default(), None, &mut |_, _| {})
        .expect("open the synced chain");
    let open_s = secs(t);
    assert_eq!(chain.head, block.header);
    assert!(chain.state().tree().root() == block.header.state_root);
    println!(
        "start: the synced node opened at height {} in {:.1} s; sync and start {:.1} s (limit 60 s)",
        chain.height(),
        open_s,
        sync_s + open_s
    );
    for n in nodes {
        n.shutdown().await;
    }
}
