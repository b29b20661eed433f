//! State sync end to end, in process: two nodes serve their snapshot of one chain over real
//! loopback sockets, one of them with a damaged chunk; a new data dir syncs from both (the
//! damaged chunk is refused, its peer penalised, the chunk fetched from the other) and opens as
//! a chain whose head and state are the snapshot's. Synced from the damaged peer alone, the sync
//! fails and leaves no ledger behind, so it can be run again.
//!
//! No wall-clock assertions; every wait is bounded.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{identity, Multiaddr, PeerId};
use surplus_contracts::testutil as t;
use surplus_contracts::BlockMaker;
use surplus_ledger::{Block, PublicKey};
use surplus_net::consensus::chain::{Chain, Storage};
use surplus_net::consensus::{snapshot, statesync};
use surplus_net::p2p::{self, Gossip, NetConfig, Topic, Validator, Verdict};
use surplus_net::snapfetch::SnapshotClient;

const CONNECT: Duration = Duration::from_secs(20);

struct AcceptAll;

impl Validator for AcceptAll {
    fn validate(&self, _: Topic, _: &[u8], _: &PeerId) -> Verdict {
        Verdict::Accept
    }
}

/// Genesis, and the maker after a few certified blocks on a state of 25,000 extra accounts
/// (so that the snapshot has several chunks) with leases, and the last block.
fn chain() -> (Block, BlockMaker, Block) {
    let (g, mut maker) = BlockMaker::genesis(t::CHAIN, &t::genesis(100, 1000), t::T0).unwrap();
    let accounts = (0..25_000u64).map(|i| {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&i.to_be_bytes());
        k[8] = 0xaa;
        (PublicKey(k), 1_000 + i)
    });
    maker.state.populate(accounts, []);
    let proposer = surplus_ledger::testutil::key("validator", 0).public();
    let mut now = t::T0;
    let (b, _) = maker
        .next(
            &[
                t::offer(&t::provider(0), 5, 20, 100, 1, now),
                t::bid(&t::buyer(0), 2, 10, 30, 1, now),
                t::bid(&t::buyer(1), 3, 5, 25, 1, now),
            ],
            now,
            proposer,
        )
        .unwrap();
    let mut last = t::certify(b);
    for _ in 0..3 {
        now += 20 * 60_000;
        let (b, _) = maker.next(&[], now, proposer).unwrap();
        last = t::certify(b);
    }
    assert!(maker.state.lease_count() > 0);
    (g, maker, last)
}

/// A node serving the snapshots of `data_dir` on loopback.
async fn serve(data_dir: &Path) -> (Gossip, Multiaddr) {
    let cfg =
        NetConfig { listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()], ..NetConfig::default() };
    let net = p2p::start_with(
        cfg,
        identity::Keypair::generate_ed25519(),
        t::CHAIN,
        Arc::new(AcceptAll),
        Some(Arc::new(statesync::LocalSnapshots::new(data_dir))),
    )
    .await
    .unwrap();
    let addr = net.listen_addrs().into_iter().next().expect("a bound address");
    let addr = addr.with(Protocol::P2p(net.local_peer_id()));
    (net, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_syncs_from_peers_and_a_damaged_chunk_is_refused() {
    let (genesis, maker, last) = chain();
    let height = last.header.height;
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    for d in &dirs {
        let m = snapshot::write(
            &snapshot::dir_of(d.path()),
            &maker.state,
            &last.header,
            &last.certificate,
            maker.frontier(),
            Vec::new(),
        )
        .unwrap();
        assert!(m.chunks.len() >= 3, "{} chunks", m.chunks.len());
    }
    let mut nodes = Vec::new();
    for d in &dirs {
        nodes.push(serve(d.path()).await);
    }
    // Damage chunk 0 of the node with the lower peer id: it is asked for chunk 0 first.
    let bad = if nodes[0].0.local_peer_id() < nodes[1].0.local_peer_id() { 0 } else { 1 };
    let bad_peer = nodes[bad].0.local_peer_id();
    let chunk =
        snapshot::dir_of(dirs[bad].path()).join(format!("{height:020}")).join("chunk-000000.bin");
    let mut bytes = std::fs::read(&chunk).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&chunk, bytes).unwrap();

    // From the damaged peer alone: refused, nothing left behind.
    let new = tempfile::tempdir().unwrap();
    let client = SnapshotClient::connect(
        identity::Keypair::generate_ed25519(),
        vec![nodes[bad].1.clone()],
        CONNECT,
    )
    .await
    .unwrap();
    let e = statesync::sync(&client, &surplus_net::Env::system(), new.path(), &genesis, &|_| {})
        .await
        .unwrap_err();
    let text = format!("{e:#}");
    assert!(text.contains("no peer left") && text.contains("chunk 0"), "{text}");
    client.close().await;
    assert!(statesync::ledger_is_empty(new.path()).unwrap());

    // From both: the damaged chunk is refused and fetched from the other.
    let client = SnapshotClient::connect(
        identity::Keypair::generate_ed25519(),
        nodes.iter().map(|n| n.1.clone()).collect(),
        CONNECT,
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + CONNECT;
    while client.peers().len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.peers().len(), 2, "both peers connected");
    let synced =
        statesync::sync(&client, &surplus_net::Env::system(), new.path(), &genesis, &|p| {
            assert!(p.done <= p.total && p.height == height);
        })
        .await
        .unwrap();
    client.close().await;
    assert_eq!(synced.height, height);
    assert_eq!(synced.items, maker.state.items().count() as u64);
    assert_eq!(synced.penalised.len(), 1, "{:?}", synced.penalised);
    assert_eq!(synced.penalised[0].0, bad_peer);
    assert!(synced.penalised[0].1.contains("bad chunk"), "{}", synced.penalised[0].1);
    assert!(!statesync::ledger_is_empty(new.path()).unwrap());

    // The synced dir opens as a chain at the snapshot, with the snapshot's state, and serves
    // no block before it.
    let (g2, gmaker) = BlockMaker::genesis(t::CHAIN, &t::genesis(100, 1000), t::T0).unwrap();
    assert_eq!(g2.header, genesis.header);
    let chain =
        Chain::open(new.path(), &g2, gmaker, Storage::default(), None, &mut |_, _| {}).unwrap();
    assert_eq!(chain.head, last.header);
    assert!(*chain.state() == maker.state, "the synced state is the snapshot's");
    assert_eq!(chain.first_block(), height + 1);
    assert!(chain.decided(height).unwrap().is_none());
    drop(chain);
    // The same command again finds a ledger and refuses to sync over it.
    let client = SnapshotClient::connect(
        identity::Keypair::generate_ed25519(),
        vec![nodes[1 - bad].1.clone()],
        CONNECT,
    )
    .await
    .unwrap();
    let e = statesync::sync(&client, &surplus_net::Env::system(), new.path(), &genesis, &|_| {})
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("already holds a ledger"), "{e:#}");
    client.close().await;
    for (n, _) in nodes {
        n.shutdown().await;
    }
}
