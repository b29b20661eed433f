//! Snapshot state sync over real sockets on loopback: a node started with a snapshot source
//! serves a `SnapshotClient`; the limits hold (response size, per-peer concurrency, request
//! timeout); a snapshot client is not disconnected for lacking gossip subscriptions, a silent
//! peer still is (and is dialled again when it next asks); a penalised peer is disconnected and
//! never asked again.
//!
//! No wall-clock assertions: every wait is for an event, bounded in count and time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{identity, Multiaddr, PeerId};
use surplus_net::p2p::{self, Gossip, NetConfig, Topic, Validator, Verdict};
use surplus_net::snapfetch::{
    ClientConfig, FetchError, SnapshotClient, SnapshotSource, MAX_SNAPSHOT_RESPONSE,
};

const CHAIN: &str = "snapshot-test";
const POLL: Duration = Duration::from_millis(50);
/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(30);
const CONNECT: Duration = Duration::from_secs(20);
/// The snapshot height whose chunks wait for [`Source::open`].
const GATED: u64 = 9;

struct AcceptAll;

impl Validator for AcceptAll {
    fn validate(&self, _: Topic, _: &[u8], _: &PeerId) -> Verdict {
        Verdict::Accept
    }
}

/// Byte blobs by (height, index); chunks of height [`GATED`] wait until the gate opens.
struct Source {
    manifest: Vec<u8>,
    chunks: HashMap<(u64, u32), Vec<u8>>,
    gate: Mutex<bool>,
    opened: Condvar,
    waiting: AtomicUsize,
}

impl Source {
    fn open(&self) {
        *self.gate.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl SnapshotSource for Source {
    fn latest(&self) -> Option<Vec<u8>> {
        Some(self.manifest.clone())
    }

    fn chunk(&self, height: u64, index: u32) -> Option<Vec<u8>> {
        if height == GATED {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let gate = self.gate.lock().unwrap();
            // Bounded: a test that fails never leaves a blocking thread behind for long.
            let _open = self.opened.wait_timeout_while(gate, WAIT, |open| !*open).unwrap();
            return Some(format!("gated-{index}").into_bytes());
        }
        self.chunks.get(&(height, index)).cloned()
    }
}

fn pseudo_random(len: usize, seed: &[u8]) -> Vec<u8> {
    let mut out = vec![0; len];
    blake3::Hasher::new().update(seed).finalize_xof().fill(&mut out);
    out
}

fn source() -> Arc<Source> {
    let mut chunks = HashMap::new();
    chunks.insert((7, 0), b"chunk-7-0".to_vec());
    chunks.insert((7, 1), pseudo_random(10 * 1024 * 1024 + 17, b"big chunk"));
    // More than any response may carry: the server refuses to send it.
    chunks.insert((7, 2), vec![0xab; MAX_SNAPSHOT_RESPONSE + 1]);
    chunks.insert((7, 3), Vec::new());
    Arc::new(Source {
        manifest: b"manifest of height 7".to_vec(),
        chunks,
        gate: Mutex::new(false),
        opened: Condvar::new(),
        waiting: AtomicUsize::new(0),
    })
}

/// A node serving `source`, listening on loopback TCP, with a short subscription grace.
async fn serving_node(source: Arc<Source>, grace: Duration) -> (Gossip, Multiaddr) {
    let cfg = NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        subscription_grace: grace,
        ..NetConfig::default()
    };
    let net = p2p::start_with(
        cfg,
        identity::Keypair::generate_ed25519(),
        CHAIN,
        Arc::new(AcceptAll),
        Some(source),
    )
    .await
    .unwrap();
    let addr = net.listen_addrs().into_iter().next().expect("a bound address");
    let addr = addr.with(Protocol::P2p(net.local_peer_id()));
    (net, addr)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("gave up waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_fetches_a_snapshot_and_the_limits_hold() {
    let src = source();
    let grace = Duration::from_secs(2);
    let (net, addr) = serving_node(src.clone(), grace).await;
    let server = net.local_peer_id();

    let client =
        SnapshotClient::connect(identity::Keypair::generate_ed25519(), vec![addr.clone()], CONNECT)
            .await
            .unwrap();
    assert_eq!(client.peers(), vec![server]);

    assert_eq!(client.latest(server).await.unwrap().unwrap(), src.manifest);
    assert_eq!(client.chunk(server, 7, 0).await.unwrap().unwrap(), b"chunk-7-0");
    assert_eq!(client.chunk(server, 7, 3).await.unwrap().unwrap(), b"");
    assert_eq!(client.chunk(server, 7, 5).await.unwrap(), None);
    assert_eq!(client.chunk(server, 8, 0).await.unwrap(), None);

    // Several tasks at once, the ~10 MiB chunk among them, each gets its own bytes.
    let mut tasks = Vec::new();
    for index in [1, 0, 1] {
        let c = client.clone();
        tasks.push(tokio::spawn(async move { (index, c.chunk(server, 7, index).await) }));
    }
    for t in tasks {
        let (index, got) = t.await.unwrap();
        let got = got.unwrap().unwrap();
        assert!(got == src.chunks[&(7, index)], "chunk {index}: {} bytes", got.len());
    }

    // The source's answer above 16 MiB is never sent: the request fails, the peer stays.
    let err = client.chunk(server, 7, 2).await.unwrap_err();
    assert!(matches!(err, FetchError::Io { .. } | FetchError::PeerGone { .. }), "{err}");

    // A client with a smaller limit refuses the 10 MiB chunk from its announced length.
    let small = SnapshotClient::connect_with(
        identity::Keypair::generate_ed25519(),
        vec![addr.clone()],
        CONNECT,
        ClientConfig { max_response: 1024 * 1024, ..ClientConfig::default() },
    )
    .await
    .unwrap();
    let err = small.chunk(server, 7, 1).await.unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { bytes, max: 1_048_576, .. } if bytes == 10 * 1024 * 1024 + 17),
        "{err}"
    );
    assert_eq!(small.chunk(server, 7, 0).await.unwrap().unwrap(), b"chunk-7-0");
    small.close().await;

    // A peer that never subscribes nor asks is disconnected after the grace; the client,
    // which asked within the last minute, is not.
    let silent =
        SnapshotClient::connect(identity::Keypair::generate_ed25519(), vec![addr.clone()], CONNECT)
            .await
            .unwrap();
    wait_for("the silent peer disconnected", || silent.peers().is_empty()).await;
    assert!(net.stats().disconnects.no_subscription >= 1);
    // Asked again, it dials the server anew.
    assert_eq!(silent.latest(server).await.unwrap().unwrap(), src.manifest);
    assert_eq!(silent.peers(), vec![server]);
    silent.close().await;
    assert_eq!(client.peers(), vec![server], "the snapshot client was disconnected");
    assert_eq!(client.latest(server).await.unwrap().unwrap(), src.manifest);

    let stats = net.stats().snapshot;
    assert!(stats.data >= 9, "{stats:?}");
    assert_eq!(stats.not_found, 2, "{stats:?}");
    assert!(stats.failed >= 1, "{stats:?}");

    // Penalised: disconnected, and never asked again.
    client.penalise(server, "test: a bad chunk");
    assert!(client.peers().is_empty());
    let err = client.latest(server).await.unwrap_err();
    assert!(matches!(err, FetchError::Penalised { peer } if peer == server), "{err}");
    wait_for("the server sees the client go", || net.peers() == 0).await;

    client.close().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_server_says_so_and_a_slow_one_times_out() {
    let src = source();
    let (net, addr) = serving_node(src.clone(), p2p::SUBSCRIPTION_GRACE).await;
    let server = net.local_peer_id();
    let client =
        SnapshotClient::connect(identity::Keypair::generate_ed25519(), vec![addr.clone()], CONNECT)
            .await
            .unwrap();

    // Four requests of one peer in progress: the fifth is refused as busy.
    let mut tasks = Vec::new();
    for index in 0..4 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move { (index, c.chunk(server, GATED, index).await) }));
    }
    wait_for("four requests at the source", || src.waiting.load(Ordering::SeqCst) == 4).await;
    let err = client.chunk(server, GATED, 99).await.unwrap_err();
    assert!(matches!(err, FetchError::Busy { peer } if peer == server), "{err}");
    assert_eq!(net.stats().snapshot.busy, 1);

    // Another peer is served meanwhile (within the total), here too slowly for its timeout.
    let impatient = SnapshotClient::connect_with(
        identity::Keypair::generate_ed25519(),
        vec![addr],
        CONNECT,
        ClientConfig { request_timeout: Duration::from_secs(1), ..ClientConfig::default() },
    )
    .await
    .unwrap();
    let err = impatient.chunk(server, GATED, 5).await.unwrap_err();
    assert!(matches!(err, FetchError::Timeout { .. }), "{err}");
    impatient.close().await;

    src.open();
    for t in tasks {
        let (index, got) = t.await.unwrap();
        assert_eq!(got.unwrap().unwrap(), format!("gated-{index}").into_bytes());
    }
    // The slots are free again.
    assert_eq!(client.chunk(server, 7, 0).await.unwrap().unwrap(), b"chunk-7-0");

    client.close().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_fails_clearly() {
    let key = identity::Keypair::generate_ed25519;
    let err =
        SnapshotClient::connect(key(), vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap()], CONNECT)
            .await
            .err()
            .unwrap();
    assert!(matches!(err, FetchError::BadAddress { .. }), "{err}");
    // Nobody listens there (port 1 on loopback): the dial fails and connect says so at once.
    let nobody = PeerId::from(identity::Keypair::generate_ed25519().public());
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/1/p2p/{nobody}").parse().unwrap();
    let err = SnapshotClient::connect(key(), vec![addr], CONNECT).await.err().unwrap();
    assert!(matches!(err, FetchError::NoPeers { tried: 1, .. }), "{err}");
    // A node serving no snapshots does not speak the protocol.
    let cfg =
        NetConfig { listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()], ..NetConfig::default() };
    let net = p2p::start(cfg, key(), CHAIN, Arc::new(AcceptAll)).await.unwrap();
    let addr = net.listen_addrs()[0].clone().with(Protocol::P2p(net.local_peer_id()));
    let client = SnapshotClient::connect(key(), vec![addr], CONNECT).await.unwrap();
    let err = client.latest(net.local_peer_id()).await.unwrap_err();
    assert!(matches!(err, FetchError::Unsupported { .. }), "{err}");
    let stranger = PeerId::from(key().public());
    let err = client.latest(stranger).await.unwrap_err();
    assert!(matches!(err, FetchError::NotConnected { .. }), "{err}");
    client.close().await;
    net.shutdown().await;
}
