//! Hostile gossip peer: peers built on the node's own network stack (`surplus_net::p2p`, with
//! a larger message limit than honest nodes keep) join a 4-node devnet and publish, one kind
//! per peer: forged signatures, replays of committed orders, malformed bytes, oversized
//! messages, orders for a market that does not exist; then one peer floods a mix of them while
//! buyers trade. Honest nodes must drop every one, count them, lower each sender's gossip score
//! (visible in `/api/v1/operator`), keep every hostile entry out of the ledger, and stop
//! reading the flooder once it is graylisted (validating at most 5% of the flood) while every
//! honest order clears; the honest clearing rate with and without the flood is reported.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use surplus_client::Client;
use surplus_ledger::{Auth, Entry, SecretKey};
use surplus_market::{Market, Order, SignedOrder};
use surplus_net::gossip_batch::{self, pack};
use surplus_net::p2p::{self, Gossip, NetConfig, Topic, Verdict};
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);
/// Honest orders per phase, one every 25 ms.
const HONEST: usize = 400;

/// A hostile peer validates nothing it receives and relays nothing.
struct Deaf;

impl p2p::Validator for Deaf {
    fn validate(&self, _: Topic, _: &[u8], _: &PeerId) -> Verdict {
        Verdict::Ignore
    }
}

/// Starts a hostile peer joined to `bootstrap`, allowed to publish up to 1 MiB.
fn hostile(rt: &tokio::runtime::Runtime, chain_id: &str, bootstrap: Vec<Multiaddr>) -> Gossip {
    let cfg = NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootstrap,
        mdns: false,
        max_connections: 16,
        max_message_bytes: 1024 * 1024,
        peer_msgs_per_sec: 1_000_000,
        peer_burst: 1_000_000,
        subscription_grace: p2p::SUBSCRIPTION_GRACE,
        name: "hostile".into(),
    };
    rt.block_on(p2p::start(cfg, Keypair::generate_ed25519(), chain_id, Arc::new(Deaf)))
        .expect("start a hostile peer")
}

/// One node's gossip counters from its `/metrics`.
fn gossip_count(api: &Client, result: &str) -> u64 {
    let text = api.metrics().unwrap_or_default();
    let key = format!("surplus_gossip_messages_total{{result=\"{result}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&key)?.trim().parse().ok()).unwrap_or(0)
}

/// The score `api`'s node gives `peer`, once it lists the peer with one.
fn score_of(api: &Client, peer: &PeerId) -> Option<f64> {
    let op = api.operator().ok()?;
    let id = peer.to_string();
    op.peers.into_iter().find(|p| p.id == id)?.score
}

/// How many times each entry id (hex) occurs in a stopped node's ledger.
fn entry_counts(dir: &std::path::Path) -> std::collections::HashMap<String, usize> {
    use surplus_store::{Config, Store};
    let store = Store::open(&dir.join("ledger"), Config::default()).expect("open the ledger");
    let mut times = std::collections::HashMap::new();
    for b in store.blocks(0) {
        for e in &b.expect("read a block").entries {
            *times.entry(hex::encode(e.id())).or_insert(0) += 1;
        }
    }
    times
}

/// A bid entry signed by `key` (for `market`), with nonce `nonce`.
fn bid(chain_id: &str, market: &Market, key: &SecretKey, nonce: u64) -> Entry {
    SignedOrder::sign(chain_id, Order::Bid(one_slot_bid(market, 1, nonce, 3_600_000)), key).0
}

/// `entry` with one bit of its signature flipped.
fn forged(mut entry: Entry) -> Entry {
    if let Auth::Signed { signature, .. } = &mut entry.auth {
        signature.0[7] ^= 0x10;
    }
    entry
}

/// Honest load of [`HONEST`] bids to random nodes; returns them once all rest in `dc1`'s book,
/// with the seconds that took from the first submission.
fn honest_phase(net: &Devnet, apis: &[Client], seed: u64) -> (Vec<Ack>, f64) {
    let started = Instant::now();
    let load = OrderLoad::start(
        net,
        apis,
        &Market::new("vm.2c8g", "eu-west-a"),
        seed,
        Duration::from_millis(25),
    );
    wait_for_or_none(MINUTE, || (load.acknowledged() >= HONEST).then_some(()));
    let (_, mut acks) = load.finish();
    acks.truncate(HONEST);
    assert_eq!(acks.len(), HONEST, "the honest load was not acknowledged");
    assert_in_every_book(net, &apis[..1], &acks, 2 * MINUTE);
    (acks, started.elapsed().as_secs_f64())
}

/// A started 4-node devnet (100 ms batches, 1 s heartbeat) that has committed 2 blocks.
struct Running {
    net: Devnet,
    nodes: Vec<NodeProc>,
    apis: Vec<Client>,
    chain_id: String,
    /// Each node's gossip address, ending in its peer id.
    p2p_addrs: Vec<Multiaddr>,
}

fn four_nodes(root: &std::path::Path) -> Running {
    let net = Devnet::init_with(root, 4, free_base(40), 100, 1000);
    let nodes = net.start_all();
    let apis: Vec<Client> = nodes.iter().map(NodeProc::operator_api).collect();
    wait_converged(&apis.iter().collect::<Vec<_>>(), 2, 2 * MINUTE);
    let chain_id = net.chain_id().to_owned();
    let p2p_addrs = net.file["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["p2p"].as_str().unwrap().parse().unwrap())
        .collect();
    Running { net, nodes, apis, chain_id, p2p_addrs }
}

#[test]
fn hostile_gossip_is_dropped_scored_down_and_does_not_slow_honest_trade() {
    let tmp = tempfile::tempdir().unwrap();
    let Running { net, mut nodes, apis, chain_id, p2p_addrs } = four_nodes(tmp.path());
    let refs: Vec<&Client> = apis.iter().collect();
    let dc1 = &apis[0];
    let market = Market::new("vm.2c8g", "eu-west-a");
    let buyer = net.buyer(0);
    let mallory = SecretKey::from_seed([0x66; 32]);

    // Normal: the honest rate with no hostile peer.
    let (baseline, normal_secs) = honest_phase(&net, &apis, 21);

    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut hostile_ids = HashSet::new();
    let mut nonce = 9_000_000u64;
    let mut next_nonce = || {
        nonce += 1;
        nonce
    };

    // One peer per kind of bad message, each joined to dc1 only: (kind, the dc1 counter that
    // must rise, the messages). A message carries entries framed together
    // (`surplus_net::gossip_batch`): the forged ones ride behind a valid bid, which is
    // admitted on its own merits (and must reach the ledger) while the message is rejected.
    let mut riders = Vec::new();
    let kinds: Vec<(&str, &str, Vec<Vec<u8>>)> = vec![
        (
            "forged signature",
            "rejected",
            (0..3)
                .map(|_| {
                    let valid = bid(&chain_id, &market, &buyer, next_nonce());
                    riders.push(hex::encode(valid.id()));
                    let bad = forged(bid(&chain_id, &market, &buyer, next_nonce()));
                    pack(&[valid.encode(), bad.encode()])
                })
                .collect(),
        ),
        (
            "unknown market",
            "rejected",
            (0..3)
                .map(|_| {
                    pack(&[bid(
                        &chain_id,
                        &Market::new("vm.nonexistent", "nowhere"),
                        &mallory,
                        next_nonce(),
                    )
                    .encode()])
                })
                .collect(),
        ),
        (
            "malformed",
            "rejected",
            (0..3u8).map(|i| vec![0xff, i, 0x00, 0x13, 0x37, 0x42, i, i]).collect(),
        ),
        ("oversized", "oversized", (0..3u8).map(|i| vec![i; 65 * 1024 + 100]).collect()),
    ];
    for (kind, counter, messages) in &kinds {
        for m in messages {
            for e in gossip_batch::unpack(m).unwrap_or_default() {
                if !riders.contains(&hex::encode(e.id())) {
                    hostile_ids.insert(hex::encode(e.id()));
                }
            }
        }
        let before = gossip_count(dc1, counter);
        let peer = hostile(&rt, &chain_id, vec![p2p_addrs[0].clone()]);
        let me = peer.local_peer_id();
        wait_for(&format!("dc1 to list the {kind} peer"), MINUTE, || score_of(dc1, &me));
        // Gossipsub needs a heartbeat or two to learn the peer's subscriptions.
        std::thread::sleep(Duration::from_secs(2));
        for m in messages {
            rt.block_on(peer.publish(Topic::Orders, m.clone())).expect("publish");
        }
        let after = wait_for(&format!("dc1 to count the {kind} messages"), MINUTE, || {
            let now = gossip_count(dc1, counter);
            (now > before).then_some(now)
        });
        let score = wait_for(&format!("dc1 to lower the {kind} peer's score"), MINUTE, || {
            score_of(dc1, &me).filter(|s| *s < 0.0)
        });
        eprintln!(
            "hostile peer: {kind}: dc1 {counter} {before} → {after}, sender's score {score:.1}"
        );
        rt.block_on(peer.shutdown());
    }

    // Replays of committed orders, from a peer joined to every node: dropped as duplicates
    // within gossip's duplicate window, refused as replayed nonces after it; never applied twice.
    let replays: Vec<Entry> =
        (0..5).map(|_| bid(&chain_id, &market, &buyer, next_nonce())).collect();
    for e in &replays {
        assert_eq!(apis[1].submit(e).unwrap(), e.id());
    }
    let replay_acks: Vec<Ack> = replays
        .iter()
        .map(|e| Ack { id: hex::encode(e.id()), node: 1, at: 0.0, fills: false })
        .collect();
    assert_in_every_book(&net, &apis, &replay_acks, MINUTE);
    let replay_peer = hostile(&rt, &chain_id, p2p_addrs.clone());
    let me = replay_peer.local_peer_id();
    wait_for("dc1 to list the replaying peer", MINUTE, || score_of(dc1, &me));
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..3 {
        for e in &replays {
            rt.block_on(replay_peer.publish(Topic::Orders, pack(&[e.encode()]))).expect("publish");
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    rt.block_on(replay_peer.shutdown());

    // The flood, while buyers trade: forged, unknown-market and malformed messages from one
    // peer joined to every node, about 5,000 a second, for at most 60 s and 300,000 messages.
    let flooder = hostile(&rt, &chain_id, p2p_addrs.clone());
    let flooder_id = flooder.local_peer_id();
    wait_for("dc1 to list the flooding peer", MINUTE, || score_of(dc1, &flooder_id));
    std::thread::sleep(Duration::from_secs(2));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let (stop, sent, chain_id, market) =
            (stop.clone(), sent.clone(), chain_id.clone(), market.clone());
        let buyer = buyer.clone();
        let mallory = mallory.clone();
        let flooder = flooder.clone();
        rt.spawn(async move {
            let started = Instant::now();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < 300_000 && started.elapsed() < MINUTE {
                for _ in 0..50 {
                    n += 1;
                    let data = match n % 3 {
                        0 => {
                            pack(
                                &[forged(bid(&chain_id, &market, &buyer, 20_000_000 + n)).encode()],
                            )
                        }
                        1 => pack(&[bid(
                            &chain_id,
                            &Market::new("vm.nonexistent", "x"),
                            &mallory,
                            n,
                        )
                        .encode()]),
                        _ => n.to_le_bytes().repeat(3),
                    };
                    let _ = flooder.publish(Topic::Orders, data).await;
                }
                sent.store(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let rejected_before = gossip_count(dc1, "rejected");
    // dc1's score of the flooder, read every 250 ms while it floods: it falls below the
    // graylist threshold (−80), rises as the penalty decays until dc1 reads the flooder again,
    // and falls again.
    let watcher = {
        let (stop, api, id) = (stop.clone(), dc1.clone(), flooder_id);
        std::thread::spawn(move || {
            let mut lowest = f64::INFINITY;
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < 3 * MINUTE {
                if let Some(s) = score_of(&api, &id) {
                    lowest = lowest.min(s);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            lowest
        })
    };
    let (flooded, flood_secs) = honest_phase(&net, &apis, 22);
    stop.store(true, Ordering::Relaxed);
    let lowest = watcher.join().unwrap();
    rt.block_on(flood).unwrap();
    let flood_sent = sent.load(Ordering::Relaxed);
    let flood_score = score_of(dc1, &flooder_id);
    let rejected = gossip_count(dc1, "rejected") - rejected_before;
    rt.block_on(flooder.shutdown());

    let ratio = normal_secs / flood_secs;
    eprintln!(
        "hostile peer: {HONEST} honest orders cleared in {normal_secs:.2} s normally and \
         {flood_secs:.2} s under a flood of {flood_sent} hostile messages (throughput ratio \
         {ratio:.2}); dc1 rejected {rejected} of them, flooder's score at its lowest \
         {lowest:.1}, at the end {flood_score:?}"
    );
    assert!(flood_sent >= 1_000, "the flood barely ran: {flood_sent} messages");
    assert!(lowest < -80.0, "the flooder was never graylisted: lowest score {lowest}");
    assert!(flood_score.is_some_and(|s| s < 0.0), "the flooder's score recovered: {flood_score:?}");
    // What keeps honest trade at speed is that dc1 stops reading the flooder: once graylisted,
    // gossipsub drops its messages unread, so dc1 validates only the first few. The ratio of
    // clearing times above is reported, not asserted (a wall-clock ratio on two shared cores
    // once came out 0.79; docs/decisions/0007-no-wall-clock-in-the-hostile-peer-test.md).
    assert!(
        rejected * 20 <= flood_sent,
        "dc1 validated {rejected} of the flood's {flood_sent} messages: more than 5% of it was \
         read after the flooder should have been graylisted"
    );

    // Nothing hostile reached any ledger; every honest order did.
    let (height, _) = wait_converged(&refs, 1, 2 * MINUTE);
    for n in &mut nodes {
        n.stop();
    }
    let honest: Vec<Ack> = baseline.into_iter().chain(flooded).collect();
    let dirs: Vec<&std::path::Path> = nodes.iter().map(|n| n.dir.as_path()).collect();
    assert_ledgers_agree(&dirs, &honest, height);
    for dir in &dirs {
        let times = entry_counts(dir);
        for a in &replay_acks {
            assert_eq!(times.get(&a.id), Some(&1), "replayed order {} in {}", a.id, dir.display());
        }
        let (ids, _) = ledger_of(dir);
        let inside: Vec<&String> = hostile_ids.iter().filter(|id| ids.contains(*id)).collect();
        assert!(inside.is_empty(), "hostile entries in {}: {inside:?}", dir.display());
        let missing: Vec<&String> = riders.iter().filter(|id| !ids.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "valid entries of rejected messages not in {}: {missing:?}",
            dir.display()
        );
    }
}

/// `surplus load` against `net` at 20 bids/s for `seconds`: its report (accept → lease on
/// every node, ms, in `latency_ms`).
fn load_report(net: &Devnet, seconds: u32) -> serde_json::Value {
    let out = surplus(&[
        "load",
        "--devnet",
        net.dir.to_str().unwrap(),
        "--rate",
        "20",
        "--seconds",
        &seconds.to_string(),
        "--json",
    ]);
    assert!(out.status.success(), "surplus load: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("surplus load --json")
}

/// An order signed now that closes a few ms later: a bid whose window ends 20 ms after signing
/// (`bid`), or an offer whose window is its minimum lease plus 20 ms.
fn closing(chain_id: &str, market: &Market, key: &SecretKey, nonce: u64, bid: bool) -> Entry {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let order = if bid {
        let mut b = one_slot_bid(market, 1, nonce, 3_600_000);
        b.latest_ms = now + 20;
        Order::Bid(b)
    } else {
        Order::Offer(surplus_market::Offer {
            market: market.clone(),
            slots: 1,
            from_ms: now,
            until_ms: now + 3_600_000 + 20,
            reserve: 1,
            min_hours: 1,
            expiry_ms: now + 3_600_000,
            nonce,
        })
    };
    SignedOrder::sign(chain_id, order, key).0
}

/// Issue 21, item 1: a funded client sent about 20 bids a second whose window ended a few ms
/// after signing; the node accepted and relayed them, its peers found them invalid on arrival
/// and penalised it until it was graylisted. Now a node refuses on admission an order that
/// closes within the admission horizon (`closes_too_soon`), and a peer that relays an order
/// which fails only a time rule on arrival keeps its score.
#[test]
fn short_lived_orders_cannot_get_a_relaying_validator_graylisted() {
    let tmp = tempfile::tempdir().unwrap();
    let Running { net, mut nodes, apis, chain_id, p2p_addrs } = four_nodes(tmp.path());
    let validators: Vec<PeerId> = p2p_addrs
        .iter()
        .map(|a| match a.iter().last() {
            Some(libp2p::multiaddr::Protocol::P2p(id)) => id,
            other => panic!("{a} does not end in a peer id: {other:?}"),
        })
        .collect();
    let market = Market::new("vm.2c8g", "eu-west-a");
    let attacker = net.buyer(1);

    // The unattacked order → lease latency.
    let quiet = load_report(&net, 10);

    // The attack: 20 short-lived orders a second to dc1 (at most 400, for at most 30 s) while
    // the same load runs again; every validator's score on every peer is read twice a second.
    let stop = Arc::new(AtomicBool::new(false));
    let attack = {
        let (stop, api, chain_id, market, attacker) =
            (stop.clone(), apis[0].clone(), chain_id.clone(), market.clone(), attacker.clone());
        std::thread::spawn(move || {
            let mut codes = std::collections::BTreeMap::<String, u64>::new();
            let started = Instant::now();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < 400 && started.elapsed() < MINUTE / 2 {
                n += 1;
                let e = closing(&chain_id, &market, &attacker, 70_000_000 + n, n.is_multiple_of(2));
                let code = match api.submit(&e) {
                    Ok(_) => "accepted".to_owned(),
                    Err(r) => refusal("short-lived order", Err::<(), _>(r)).1,
                };
                *codes.entry(code).or_default() += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            codes
        })
    };
    let watcher = {
        let (stop, apis, validators) = (stop.clone(), apis.clone(), validators.clone());
        std::thread::spawn(move || {
            let mut lowest = f64::INFINITY;
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < 2 * MINUTE {
                for (i, api) in apis.iter().enumerate() {
                    for (j, v) in validators.iter().enumerate() {
                        if let Some(s) = score_of(api, v).filter(|_| i != j) {
                            lowest = lowest.min(s);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            lowest
        })
    };
    let attacked = load_report(&net, 10);
    stop.store(true, Ordering::Relaxed);
    let codes = attack.join().unwrap();
    let lowest = watcher.join().unwrap();
    let p50 = |r: &serde_json::Value| r["latency_ms"][0].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "short-lived orders: {codes:?}; order → lease p50 {} ms unattacked, {} ms attacked \
         (ratio {:.2}); lowest score of a validator on a peer during the attack {lowest:.2}",
        p50(&quiet),
        p50(&attacked),
        p50(&attacked) / p50(&quiet)
    );
    let sent: u64 = codes.values().sum();
    assert!(sent >= 100, "the attack barely ran: {codes:?}");
    // Refused, all of them: as closing too soon, or (the few that took longer than their few
    // ms to arrive) as closed.
    let refused_as = |c: &str| codes.get(c).copied().unwrap_or(0);
    let closed = refused_as("window_in_past") + refused_as("window_too_short");
    assert_eq!(refused_as("closes_too_soon") + closed, sent, "one was accepted: {codes:?}");
    assert!(closed * 10 <= sent, "most arrive before they close: {codes:?}");
    assert!(lowest.is_finite() && lowest > 0.0, "a validator's score fell to {lowest}");
    for r in [&quiet, &attacked] {
        assert_eq!(r["leased_everywhere"], r["accepted"], "every load bid got its lease: {r}");
    }

    // A peer relays orders that fail only a time rule on arrival: offers whose window became
    // shorter than their minimum lease on the way, bids whose window closed, orders closing
    // within the horizon. Every node ignores them; none costs the peer its score.
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let relay = hostile(&rt, &chain_id, p2p_addrs.clone());
    let me = relay.local_peer_id();
    for api in &apis {
        wait_for("every node to list the relaying peer", MINUTE, || score_of(api, &me));
    }
    std::thread::sleep(Duration::from_secs(2));
    let ignored = |api: &Client| gossip_count(api, "ignored");
    let rejected: Vec<u64> = apis.iter().map(|a| gossip_count(a, "rejected")).collect();
    let ignored_before: u64 = apis.iter().map(ignored).sum();
    let mallory = SecretKey::from_seed([0x67; 32]);
    let mut late = Vec::new();
    for n in 0..10u64 {
        // Signed now, relayed after they closed.
        late.push(closing(&chain_id, &market, &mallory, 80_000_000 + n, false));
        late.push(closing(&chain_id, &market, &attacker, 81_000_000 + n, true));
        // Closing 1 s after they arrive.
        let mut b = one_slot_bid(&market, 1, 82_000_000 + n, 1_000);
        b.latest_ms = b.expiry_ms;
        late.push(SignedOrder::sign(&chain_id, Order::Bid(b), &attacker).0);
    }
    std::thread::sleep(Duration::from_millis(50));
    for e in &late {
        rt.block_on(relay.publish(Topic::Orders, pack(&[e.encode()]))).expect("publish");
    }
    let ignored_after = wait_for("the nodes to ignore the late orders", MINUTE, || {
        let now: u64 = apis.iter().map(ignored).sum();
        (now >= ignored_before + late.len() as u64).then_some(now)
    });
    std::thread::sleep(Duration::from_secs(2));
    for (i, api) in apis.iter().enumerate() {
        assert_eq!(gossip_count(api, "rejected"), rejected[i], "dc{} rejected one", i + 1);
        let score = score_of(api, &me);
        assert!(score.is_some_and(|s| s >= 0.0), "dc{} scores the relay {score:?}", i + 1);
    }
    eprintln!(
        "late orders: {} relayed, ignored {} times over the nodes",
        late.len(),
        ignored_after - ignored_before
    );
    rt.block_on(relay.shutdown());
    for n in &mut nodes {
        n.stop();
    }
}
