//! Consensus overhead (issue 20): empty blocks a second through our consensus application
//! against the bare engine on the same machine, in the same run.
//!
//! Both runs start four validators in this process on 127.0.0.1 (real libp2p sockets, each
//! engine with its own write-ahead log in a temporary directory), with the same context, wire
//! codec, vote signing and timeouts, and count the heights the first validator decides:
//!
//! - **bare**: the engine with an empty application: a proposal is 16 bytes (height, round),
//!   its id their blake3; every received value is valid; nothing is stored or executed;
//! - **ours**: `surplus_net::consensus::start`, the node's own application, with an empty pool
//!   and no batch wait (zero interval and heartbeat): each block is built, checked, executed
//!   against the contract state and stored in the ledger, as a node does.
//!
//! The bare engine runs Malachite's default network protocol (gossipsub, every message signed
//! and every received copy verified); ours sends by broadcast (decision 0041).
//! `SURPLUS_BARE_PUBSUB=broadcast` puts the bare engine on broadcast too.
//!
//! The two alternate ROUNDS times (the machine's pace drifts by ±10 % between runs of the bare
//! engine alone); prints blocks a second of each run and `RATIO ours/bare`, the median of the
//! rounds' ratios, with their range. The aim is at least 0.8.
//!
//! `cargo run --release -p surplus-net --example engine_overhead [-- SECONDS [ROUNDS]]` (default
//! 10 s, 3 rounds; `scripts/bench` runs it, for 2 s and 1 round in its smoke mode).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libp2p::Multiaddr;
use malachitebft_app_channel::app::config::{
    ConsensusConfig, DiscoveryConfig, P2pConfig, PubSubProtocol, ValueSyncConfig,
};
use malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use malachitebft_app_channel::app::streaming::StreamContent;
use malachitebft_app_channel::app::types::core::{Round, Validity};
use malachitebft_app_channel::app::types::streaming::{StreamId, StreamMessage};
use malachitebft_app_channel::app::types::{Keypair, LocallyProposedValue, ProposedValue};
use malachitebft_app_channel::{
    AppMsg, Channels, ConsensusContext, NetworkContext, NetworkIdentity, NetworkMsg,
    RequestContext, SyncContext, WalContext,
};
use surplus_ledger::{Entry, SecretKey};
use surplus_net::consensus::codec::WireCodec;
use surplus_net::consensus::context::{Address, Ctx, ProposalPart, ValidatorSet, Value};
use surplus_net::consensus::signing::{ChainSigner, ChainVerifier};
use surplus_net::consensus::{self, chain, default_timeouts, EngineConfig, Pool, Settings};
use tokio::sync::Notify;

const CHAIN: &str = "engine-overhead";
const NODES: usize = 4;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port()
}

fn addr(port: u16) -> Multiaddr {
    format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("a multiaddr")
}

/// The validators of `surplus_contracts::testutil::genesis`.
fn keys() -> Vec<SecretKey> {
    (0..NODES as u64).map(|i| surplus_ledger::testutil::key("validator", i)).collect()
}

/// One validator's engine with the empty application; counts decisions in `decided`.
async fn bare_node(
    i: usize,
    dir: &std::path::Path,
    ports: &[u16],
    keys: &[SecretKey],
    decided: Arc<AtomicU64>,
) {
    let seed = keys[i].seed();
    let me = Address(keys[i].public());
    let set = ValidatorSet::new(&keys.iter().map(|k| k.public()).collect::<Vec<_>>())
        .expect("a validator set");
    let peers = ports.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| addr(*p)).collect();
    let p2p = P2pConfig {
        listen_addr: addr(ports[i]),
        persistent_peers: peers,
        discovery: DiscoveryConfig {
            max_connections_per_ip: DiscoveryConfig::default().max_connections_per_ip.max(16),
            ..DiscoveryConfig::default()
        },
        protocol: match std::env::var("SURPLUS_BARE_PUBSUB").as_deref() {
            Ok("broadcast") => PubSubProtocol::Broadcast,
            _ => PubSubProtocol::default(),
        },
        ..P2pConfig::default()
    };
    let config = EngineConfig {
        moniker: format!("bare{i}"),
        consensus: ConsensusConfig { p2p, ..ConsensusConfig::default() },
        value_sync: ValueSyncConfig::default(),
    };
    let keypair = Keypair::ed25519_from_bytes(seed).expect("a keypair");
    let identity = NetworkIdentity::new(format!("bare{i}"), keypair, Some(hex::encode(me.0 .0)));
    let ctx = ConsensusContext::new_validator(
        me,
        Box::new(ChainVerifier::new(CHAIN)),
        Box::new(ChainSigner::new(CHAIN, seed)),
    );
    let (channels, engine) = malachitebft_app_channel::start_engine(
        Ctx,
        config,
        WalContext::new(dir.join("wal"), WireCodec),
        NetworkContext::new(identity, WireCodec),
        ctx,
        SyncContext::new(WireCodec),
        RequestContext::new(64),
    )
    .await
    .expect("the engine starts");
    tokio::spawn(bare_app(channels, me, set, if i == 0 { Some(decided) } else { None }));
    // The engine's handle must live as long as the run (the runtime's end stops the engine).
    std::mem::forget(engine);
}

/// The empty application: answers the engine's 12 messages without a chain.
async fn bare_app(
    mut channels: Channels<Ctx>,
    me: Address,
    set: ValidatorSet,
    decided: Option<Arc<AtomicU64>>,
) {
    let params = || HeightParams::new(set.clone(), default_timeouts(), None);
    let value_of = |block: &[u8]| Value(*blake3::hash(block).as_bytes());
    while let Some(msg) = channels.consensus.recv().await {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let _ = reply.send((consensus::context::Height(1), params()));
            }
            AppMsg::StartedRound { reply_value, .. } => {
                let _ = reply_value.send(Vec::new());
            }
            AppMsg::GetValue { height, round, reply, .. } => {
                let mut block = height.0.to_be_bytes().to_vec();
                block.extend_from_slice(&round.as_i64().to_be_bytes());
                let _ = reply.send(LocallyProposedValue::new(height, round, value_of(&block)));
                let mut id = height.0.to_be_bytes().to_vec();
                id.extend_from_slice(&round.as_i64().to_be_bytes());
                id.extend_from_slice(&me.0 .0[..8]);
                let stream = StreamId::new(Bytes::from(id));
                let part = ProposalPart { height, round, proposer: me, block: Bytes::from(block) };
                for msg in [
                    StreamMessage::new(stream.clone(), 0, StreamContent::Data(part)),
                    StreamMessage::new(stream, 1, StreamContent::Fin),
                ] {
                    if channels.network.send(NetworkMsg::PublishProposalPart(msg)).await.is_err() {
                        return;
                    }
                }
            }
            AppMsg::ReceivedProposalPart { part, reply, .. } => {
                let value = match part.content {
                    StreamContent::Data(p) => Some(ProposedValue {
                        height: p.height,
                        round: p.round,
                        valid_round: Round::Nil,
                        proposer: p.proposer,
                        value: value_of(&p.block),
                        validity: Validity::Valid,
                    }),
                    StreamContent::Fin => None,
                };
                let _ = reply.send(value);
            }
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions { extensions, reply, .. } => {
                let _ = reply.send(extensions.into_iter().map(|(a, _)| (a, Ok(()))).collect());
            }
            AppMsg::RestreamProposal { .. } => {}
            AppMsg::GetHistoryMinHeight { reply } => {
                let _ = reply.send(consensus::context::Height(1));
            }
            AppMsg::Decided { reply, .. } => {
                if let Some(d) = &decided {
                    d.fetch_add(1, Ordering::Relaxed);
                }
                let _ = reply.send(());
            }
            AppMsg::Finalized { certificate, reply, .. } => {
                let next = consensus::context::Height(certificate.height.0 + 1);
                let _ = reply.send(Next::Start(next, params()));
            }
            AppMsg::GetDecidedValues { reply, .. } => {
                let _ = reply.send(Vec::new());
            }
            AppMsg::ProcessSyncedValue { reply, .. } => {
                let _ = reply.send(SyncedValueOutcome::PeerFault);
            }
        }
    }
}

/// A pool with nothing in it: every block is empty.
struct Empty(Arc<Notify>);

#[async_trait::async_trait]
impl Pool for Empty {
    async fn pending(&self, _: usize, _: usize, _: consensus::Skip) -> Vec<Entry> {
        Vec::new()
    }
    fn has_work(&self) -> bool {
        false
    }
    fn waiting(&self) -> usize {
        0
    }
    fn notify(&self) -> Arc<Notify> {
        self.0.clone()
    }
    async fn refused(&self, _: Vec<(surplus_ledger::Hash, surplus_contracts::Refusal)>) {}
}

/// One validator running the node's consensus application; counts its commits in `decided`
/// (every validator's commits are taken, or the engine would wait for room).
async fn our_node(
    i: usize,
    dir: &std::path::Path,
    ports: &[u16],
    keys: &[SecretKey],
    decided: Arc<AtomicU64>,
) {
    let settings = Settings {
        data_dir: dir.to_owned(),
        moniker: format!("ours{i}"),
        listen: addr(ports[i]),
        peers: ports.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| addr(*p)).collect(),
        timeouts: default_timeouts(),
        batch_interval: Duration::ZERO,
        min_batch_interval: Duration::ZERO,
        idle_heartbeat: Duration::ZERO,
        max_block_entries: 1000,
        max_block_bytes: 1 << 20,
        sync_status_interval: Duration::from_millis(500),
        storage: chain::Storage::default(),
        env: surplus_net::Env::system(),
        verified: Arc::default(),
    };
    let genesis = surplus_contracts::testutil::genesis(0, 0);
    let made = surplus_contracts::BlockMaker::genesis(CHAIN, &genesis, 1_700_000_000_000)
        .expect("genesis");
    let pool = Arc::new(Empty(Arc::default()));
    let mut running =
        consensus::start(settings, keys[i].seed(), made, pool).await.expect("the node starts");
    tokio::spawn(async move {
        while running.next_commit().await.is_ok() {
            if i == 0 {
                decided.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}

/// Heights decided a second by the first validator, over `secs` after its first decision.
async fn rate(decided: &AtomicU64, secs: f64, what: &str) -> f64 {
    let start = Instant::now();
    while decided.load(Ordering::Relaxed) == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "{what}: no decision within 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (t0, n0) = (Instant::now(), decided.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let n = decided.load(Ordering::Relaxed) - n0;
    n as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let secs: f64 = std::env::args().nth(1).map_or(10.0, |s| s.parse().expect("SECONDS"));
    assert!(secs > 0.0 && secs <= 600.0, "SECONDS: 0 to 600");
    let rounds: usize = std::env::args().nth(2).map_or(3, |s| s.parse().expect("ROUNDS"));
    assert!((1..=20).contains(&rounds), "ROUNDS: 1 to 20");
    let keys = keys();
    let run = |ours: bool| {
        // A runtime per run: the first run's engines stop with it.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let dirs: Vec<_> = (0..NODES).map(|_| tempfile::tempdir().expect("a temp dir")).collect();
        let ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
        let decided = Arc::new(AtomicU64::new(0));
        let r = rt.block_on(async {
            for (i, dir) in dirs.iter().enumerate() {
                if ours {
                    our_node(i, dir.path(), &ports, &keys, decided.clone()).await;
                } else {
                    bare_node(i, dir.path(), &ports, &keys, decided.clone()).await;
                }
            }
            rate(&decided, secs, if ours { "ours" } else { "bare" }).await
        });
        rt.shutdown_timeout(Duration::from_secs(5));
        r
    };
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let bare = run(false);
        println!(
            "round {round}: bare engine, empty app: {bare:.1} blocks/s ({NODES} validators, {secs} s)"
        );
        let ours = run(true);
        println!(
            "round {round}: our application, empty blocks: {ours:.1} blocks/s ({NODES} validators, {secs} s)"
        );
        ratios.push(ours / bare);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "RATIO ours/bare {:.3}, median of {rounds} rounds (range {:.3}–{:.3}; aim: at least 0.8)",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
}
