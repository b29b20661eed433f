//! The node issue's multi-node properties, on real `surplus` processes on loopback.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use surplus_api::GatewayRequest;
use surplus_client::Client;
use surplus_contracts::{LeaseStatus, Tx};
use surplus_ledger::{Entry, Hash, PublicKey};
use surplus_market::{Bid, FillRule, Market, Order, SignedOrder};
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

/// The clusters run one at a time: each is four nodes on a 2-core CI machine.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_cluster() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn devnet_file(dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join("devnet.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn lease_status(api: &Client, id: &Hash) -> Option<LeaseStatus> {
    let v = api.lease(id).ok()?;
    assert_eq!(v.lease.id, *id, "{} answered another lease", api.base());
    Some(v.lease.status)
}

/// A gateway request for `token`'s lease, to read.
fn read_with(token: &str) -> GatewayRequest {
    GatewayRequest { token: token.to_owned(), operation: "read".into(), lease: None }
}

/// Four nodes started by `surplus devnet`: a bid sent to one node fills against a provider's
/// inventory offer on another, and every node ends with the same lease and head; the provider's
/// hook runs at lease start and end; only the buyer can fetch the credential, which the gateway
/// accepts until the lease ends; every node's ledger audits clean; the devnet resumes.
#[test]
fn four_nodes_trade_provision_grant_and_audit() {
    let _one = one_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let base = free_base(40);
    let args = ["--nodes", "4", "--batch-interval-ms", "200"];
    let mut devnet = spawn_devnet(&dir, base, &args, &tmp.path().join("devnet.log"));
    let file = wait_for("devnet.json with running nodes", 2 * MINUTE, || {
        let f = devnet_file(&dir)?;
        f["nodes"].as_array()?.iter().all(|n| n["pid"].as_u64() > Some(0)).then_some(f)
    });
    let apis: Vec<Client> = file["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| client(n["api"].as_str().unwrap()))
        .collect();
    for a in &apis {
        wait_for("node API", 2 * MINUTE, || a.status().ok());
    }
    let chain_id = file["chain_id"].as_str().unwrap().to_owned();
    let buyer = read_key(Path::new(file["buyers"][0]["key_file"].as_str().unwrap()));
    let other = read_key(Path::new(file["buyers"][1]["key_file"].as_str().unwrap()));
    let provider_key: PublicKey = file["nodes"][0]["public_key"].as_str().unwrap().parse().unwrap();

    // dc1 sells what its inventory lists: wait for its first pool's offer in the book.
    let inventory = std::fs::read_to_string(dir.join("dc1").join("inventory.toml")).unwrap();
    let field = |key: &str| {
        inventory
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap()
    };
    let market = Market::new(&field("class"), &field("region"));
    wait_for_offer(&apis[2], &market, &provider_key);

    // A buyer bids through dc3.
    let now = now_ms();
    let bid = Bid {
        market: market.clone(),
        slots: 1,
        hours: 1,
        limit: 5_000_000,
        earliest_ms: now,
        latest_ms: now + 3_600_000,
        fill: FillRule::AtLeast(1),
        expiry_ms: now + 600_000,
        nonce: now,
    };
    let (entry, _) = SignedOrder::sign(&chain_id, Order::Bid(bid), &buyer);
    let id = apis[2].submit(&entry).unwrap_or_else(|e| panic!("bid refused: {e}"));
    assert_eq!(id, entry.id());

    // The same lease on every node.
    let ids: Vec<Hash> = apis
        .iter()
        .map(|a| {
            wait_for("the lease on every node", 2 * MINUTE, || {
                let l = a.leases(Some(&buyer.public()), None).ok()?;
                let lease = l.leases.first()?;
                assert_eq!(lease.fill.buyer, buyer.public(), "another account's lease");
                assert_eq!(lease.fill.bid, entry.id(), "a lease of another bid");
                Some(lease.id)
            })
        })
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "leases differ: {ids:?}");
    let lease = ids[0];
    let lease_id = hex::encode(lease);

    // The provider's start hook made the lease's directory; its record says so.
    let access = dir.join("dc1").join("leases").join(&lease_id).join("access.json");
    wait_for("the start hook's access file", MINUTE, || access.exists().then_some(()));

    // The buyer fetches the credential (once the provider minted it); anyone else is refused.
    // The challenge is bound to this chain and lease.
    let challenge = apis[0].challenge(&lease).unwrap();
    assert_eq!((challenge.chain_id.as_str(), challenge.lease), (chain_id.as_str(), lease));
    let token = wait_for("the credential", MINUTE, || {
        Some(apis[0].fetch_credential(&lease, &buyer).ok()?.token)
    });
    let (code, _) = refusal("another key's credential", apis[0].fetch_credential(&lease, &other));
    assert_eq!(code, 403, "another key got the credential");
    // Any other node hands out the copy sealed to the buyer, which the buyer opens: the same
    // token; that node cannot answer a challenge (it does not hold the token).
    let elsewhere = wait_for("the sealed credential on dc3", MINUTE, || {
        Some(apis[2].fetch_credential(&lease, &buyer).ok()?.token)
    });
    assert_eq!(elsewhere, token, "the sealed copy is another token");
    let (code, _) = refusal("a challenge on dc3", apis[2].challenge(&lease));
    assert_eq!(code, 404, "dc3 answered a challenge for a lease it does not provide");
    let v = apis[0]
        .gateway(&read_with(&token))
        .unwrap_or_else(|e| panic!("gateway refused a live lease's token: {e}"));
    assert_eq!(v.lease, lease);
    assert!(
        serde_json::to_string(&v).unwrap().contains("devnet sample")
            || v.access.as_ref().is_some_and(Value::is_object),
        "{v:?}"
    );

    // The buyer ends the lease (through dc2); the gateway then refuses; the end hook runs.
    let seq = apis[1].account(&buyer.public()).unwrap().seq;
    let tx = Tx::Terminate { lease, seq };
    let end = Entry::signed(&chain_id, tx.kind(), tx.encode(), &buyer);
    let id = apis[1].submit(&end).unwrap_or_else(|e| panic!("terminate refused: {e}"));
    assert_eq!(id, end.id());
    for a in &apis {
        wait_for("the lease to end everywhere", 2 * MINUTE, || {
            (lease_status(a, &lease)? != LeaseStatus::Active).then_some(())
        });
    }
    wait_for("the gateway to refuse the ended lease", MINUTE, || {
        let refused = apis[0].gateway(&read_with(&token)).err()?;
        (refused.status() == Some(403)).then_some(())
    });
    wait_for("the end hook", MINUTE, || {
        let v = apis[0].lease(&lease).ok()?;
        v.provisioning?.get("end")?.is_object().then_some(())
    });

    let refs: Vec<&Client> = apis.iter().collect();
    let (height, head) = wait_converged(&refs, 2, 2 * MINUTE);

    // Ctrl-C (SIGINT) stops every node cleanly.
    let _ = Command::new("kill").arg("-INT").arg(devnet.id().to_string()).status();
    let status = wait_for("devnet to exit", 2 * MINUTE, || devnet.try_wait().ok().flatten());
    assert!(status.success(), "devnet exited with {status}");
    let mut heads = Vec::new();
    for i in 1..=4 {
        let report = audit(&dir.join(format!("dc{i}"))).unwrap();
        heads.push(report.to_string());
    }
    assert!(height >= 2 && head != Hash::default());

    // Running it again resumes the same chain.
    let mut again = spawn_devnet(&dir, base, &["--nodes", "4"], &tmp.path().join("devnet2.log"));
    let resumed = wait_for("the resumed devnet at the old height", 2 * MINUTE, || {
        let (h, _) = apis[0].head()?;
        (h >= height).then_some(h)
    });
    assert!(resumed >= height);
    eprintln!("lease {lease_id}: granted, ended; heads equal at {height}; resumed at {resumed}");
    let _ = Command::new("kill").arg("-INT").arg(again.id().to_string()).status();
    wait_for("devnet to exit", 2 * MINUTE, || again.try_wait().ok().flatten());
}

/// A validator stopped and restarted catches up to the same head; a fifth, non-validator node
/// started after 100 blocks syncs to the same head.
#[test]
fn restarted_validator_and_late_joiner_reach_the_same_head() {
    let _one = one_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base(60);
    let net = Devnet::init(tmp.path(), 4, base);
    let mut nodes = net.start_all();
    let apis: Vec<Client> = nodes.iter().map(|n| n.api.clone()).collect();
    let refs: Vec<&Client> = apis.iter().collect();
    wait_converged(&refs, 5, 2 * MINUTE);

    // Stop dc4; the other three go on; restart it; it catches up.
    nodes[3].stop();
    let h = apis[0].head().unwrap().0;
    wait_for("three validators to go on", MINUTE, || (apis[0].head()?.0 >= h + 10).then_some(()));
    let d4 = nodes[3].dir.clone();
    nodes[3] = NodeProc::start(&d4, apis[3].base());
    nodes[3].wait_up();
    let h = apis[0].head().unwrap().0;
    wait_for("the restarted validator to catch up", 2 * MINUTE, || {
        let (h3, hash3) = apis[3].head()?;
        (h3 >= h && apis[0].status().ok().is_some() && hash3 != Hash::default()).then_some(())
    });

    // After 100 blocks a fifth node joins as a non-validator.
    wait_for("100 blocks", 3 * MINUTE, || (apis[0].head()?.0 >= 100).then_some(()));
    let (d5, api5) = net.join_node(tmp.path(), "dc5", base + 50);
    let mut n5 = NodeProc::start(&d5, &api5);
    n5.wait_up();
    assert!(!n5.api.status().unwrap().validator, "dc5 is not in the validator set");
    let all: Vec<&Client> = apis.iter().chain(std::iter::once(&n5.api)).collect();
    let (height, _) = wait_converged(&all, 100, 3 * MINUTE);
    assert!(height >= 100);

    for n in nodes.iter_mut().chain(std::iter::once(&mut n5)) {
        n.stop();
    }
    for d in [&d4, &d5] {
        audit(d).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Follows one node's event stream (`GET /api/v1/events`) on its own thread and sends
/// `(node, height, when)` for every committed block it announces. The thread ends when the
/// stream closes or after `limit`.
fn follow_blocks(
    node: usize,
    api: &str,
    limit: Duration,
    tx: std::sync::mpsc::Sender<(usize, u64, std::time::Instant)>,
) {
    use std::io::{BufRead, BufReader, Write};
    let addr = api.trim_start_matches("http://").trim_end_matches('/').to_owned();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + limit;
        let Ok(mut s) = std::net::TcpStream::connect(&addr) else { return };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = format!(
            "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        );
        if s.write_all(req.as_bytes()).is_err() {
            return;
        }
        let mut lines = BufReader::new(s);
        let mut line = String::new();
        let mut block = false;
        while std::time::Instant::now() < deadline {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(_) => return,
            }
            let at = std::time::Instant::now();
            if let Some(name) = line.trim_end().strip_prefix("event: ") {
                block = name == "block";
            } else if let Some(data) = line.trim_end().strip_prefix("data: ").filter(|_| block) {
                if let Some(h) =
                    serde_json::from_str::<Value>(data).ok().and_then(|v| v["height"].as_u64())
                {
                    if tx.send((node, h, at)).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
}

/// On an idle `surplus devnet` (blocks only from the heartbeat), how long after a block's
/// commit on its first node the last node commits it (printed: percentiles over the blocks
/// seen, a measurement, not an assertion); then one node is killed: the devnet reports it,
/// keeps the other three running (same processes, still committing) and restarts the dead one
/// on its data dir, which catches up to the same head.
#[test]
fn a_dead_devnet_node_is_restarted_while_the_others_run() {
    let _one = one_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let base = free_base(40);
    let log = tmp.path().join("devnet.log");
    let args = ["--nodes", "4", "--heartbeat-ms", "500"];
    let mut devnet = spawn_devnet(&dir, base, &args, &log);
    let file = wait_for("devnet.json with running nodes", 2 * MINUTE, || {
        let f = devnet_file(&dir)?;
        f["nodes"].as_array()?.iter().all(|n| n["pid"].as_u64() > Some(0)).then_some(f)
    });
    let nodes = file["nodes"].as_array().unwrap().clone();
    let apis: Vec<Client> = nodes.iter().map(|n| client(n["api"].as_str().unwrap())).collect();
    for a in &apis {
        wait_for("node API", 2 * MINUTE, || a.status().ok());
    }
    let refs: Vec<&Client> = apis.iter().collect();
    wait_converged(&refs, 3, 2 * MINUTE);

    // The spread of each block's commit over the four nodes, from their event streams.
    let (tx, rx) = std::sync::mpsc::channel();
    for (i, n) in nodes.iter().enumerate() {
        follow_blocks(i, n["api"].as_str().unwrap(), 2 * MINUTE, tx.clone());
    }
    drop(tx);
    let mut seen: std::collections::BTreeMap<u64, Vec<(usize, std::time::Instant)>> =
        Default::default();
    let blocks = 40;
    let first = wait_for("the first block on the streams", MINUTE, || {
        rx.recv_timeout(Duration::from_secs(1)).ok()
    });
    let from = first.1 + 1; // the first block may have reached some streams before they opened
    seen.entry(first.1).or_default().push((first.0, first.2));
    wait_for("blocks seen by all four streams", 2 * MINUTE, || {
        while let Ok((n, h, at)) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.entry(h).or_default().push((n, at));
        }
        let complete = (from..from + blocks).all(|h| seen.get(&h).is_some_and(|v| v.len() == 4));
        complete.then_some(())
    });
    let mut spreads: Vec<Duration> = (from..from + blocks)
        .map(|h| {
            let v = &seen[&h];
            let mut who: Vec<usize> = v.iter().map(|(n, _)| *n).collect();
            who.sort_unstable();
            assert_eq!(who, [0, 1, 2, 3], "height {h} announced twice by one node, or by three");
            let min = v.iter().map(|(_, t)| *t).min().unwrap();
            let max = v.iter().map(|(_, t)| *t).max().unwrap();
            max - min
        })
        .collect();
    spreads.sort_unstable();
    let pct = |p: usize| spreads[(spreads.len() * p / 100).min(spreads.len() - 1)];
    eprintln!(
        "commit spread, first node to last, over {blocks} idle blocks: p50 {:?}, p90 {:?}, \
         p99 {:?}, max {:?}",
        pct(50),
        pct(90),
        pct(99),
        spreads.last().unwrap()
    );

    // Kill dc3 outright: the devnet restarts it; the others are never stopped.
    let pids: Vec<u64> = nodes.iter().map(|n| n["pid"].as_u64().unwrap()).collect();
    let _ = Command::new("kill").arg("-KILL").arg(pids[2].to_string()).status();
    let h = apis[0].head().unwrap().0;
    wait_for("the other three to go on", MINUTE, || (apis[0].head()?.0 >= h + 3).then_some(()));
    let restarted = wait_for("dc3 restarted", MINUTE, || {
        let f = devnet_file(&dir)?;
        let n = &f["nodes"][2];
        (n["restarts"].as_u64() == Some(1) && n["pid"].as_u64() > Some(0)).then_some(n.clone())
    });
    assert_ne!(restarted["pid"].as_u64(), Some(pids[2]), "dc3 has its old pid");
    let h = apis[0].head().unwrap().0;
    wait_for("the restarted dc3 to catch up", 2 * MINUTE, || {
        (apis[2].head()?.0 >= h).then_some(())
    });
    wait_converged(&refs, h, MINUTE);
    let f = devnet_file(&dir).unwrap();
    for i in [0, 1, 3] {
        assert_eq!(f["nodes"][i]["pid"].as_u64(), Some(pids[i]), "node {i} was restarted");
        assert_eq!(f["nodes"][i]["restarts"].as_u64(), Some(0));
        assert!(alive(pids[i]), "node {i} (pid {}) stopped", pids[i]);
    }
    assert!(devnet.try_wait().unwrap().is_none(), "the devnet exited");
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("node dc3 died") && said.contains("node dc3 restarted"), "{said}");

    let _ = Command::new("kill").arg("-INT").arg(devnet.id().to_string()).status();
    let status = wait_for("devnet to exit", 2 * MINUTE, || devnet.try_wait().ok().flatten());
    assert!(status.success(), "devnet exited with {status}");
    for i in 1..=4 {
        audit(&dir.join(format!("dc{i}"))).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The pools of a devnet node's first market (`inventory.toml`): the market, its reserve, and
/// each pool's name and slots in inventory order.
fn first_market_pools(data_dir: &Path) -> (Market, u64, Vec<(String, u64)>) {
    let text = std::fs::read_to_string(data_dir.join("inventory.toml")).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    let pools = v["pool"].as_array().unwrap();
    let market =
        |p: &toml::Value| Market::new(p["class"].as_str().unwrap(), p["region"].as_str().unwrap());
    let first = market(&pools[0]);
    let reserve = pools[0]["reserve"].as_integer().unwrap() as u64;
    let mine = pools
        .iter()
        .filter(|p| market(p) == first)
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p["slots"].as_integer().unwrap() as u64))
        .collect();
    (first, reserve, mine)
}

/// The free slots of `provider`'s offers in `market`'s book on `api`.
fn free_offered(api: &Client, market: &Market, provider: &PublicKey) -> Option<u64> {
    let book = api.book(market, None).ok()?;
    Some(
        book.offers
            .orders
            .iter()
            .filter(|o| o.author == *provider)
            .map(|o| u64::from(o.free))
            .sum(),
    )
}

/// The pool a lease runs on, as its provider's record says.
fn pool_of(api: &Client, lease: &Hash) -> Option<String> {
    Some(api.lease(lease).ok()?.provisioning?.get("pool")?.as_str()?.to_owned())
}

/// A drain on a devnet (issue 17): of the leases on the drained pool, those that fit on the
/// other pool of the market move there (same lease, credential still accepted, new access
/// details, a `move` on the ledger); the others get notice for the window's start and end then
/// with the exact refund and no penalty; the pool's capacity is not offered until `--done`;
/// every ledger audits clean.
#[test]
fn a_drained_pool_moves_what_fits_and_gives_the_rest_notice() {
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base(40);
    // A short notice period, so that the window's start comes within the test.
    let net = Devnet::init_args(tmp.path(), 3, base, 200, 1_000, &["--notice-secs", "15"]);
    let mut nodes = net.start_all();
    let dc1 = &nodes[0].api;
    let provider = net.node_key(0);
    let buyer = net.buyer(0);
    let (market, reserve, pools) = first_market_pools(&net.data_dir(0));
    assert_eq!(pools.len(), 2, "devnet gives each market two pools: {pools:?}");
    let (drained, other) = (pools[0].0.clone(), pools[1].0.clone());
    assert_eq!((pools[0].1, pools[1].1), (4, 4), "{pools:?}");
    wait_for_offer(dc1, &market, &provider);

    // Three leases of 2 slots: the first pool takes two, the second one.
    let mut leases = Vec::new();
    for n in 0..3u64 {
        let mut bid = one_slot_bid(&market, reserve, now_ms() + n, 600_000);
        (bid.slots, bid.hours, bid.fill) = (2, 2, FillRule::AllOrNone);
        let (entry, _) = SignedOrder::sign(net.chain_id(), Order::Bid(bid), &buyer);
        dc1.submit(&entry).unwrap_or_else(|e| panic!("bid {n} refused: {e}"));
        let lease = wait_for("the lease", 2 * MINUTE, || {
            let l = dc1.leases(Some(&buyer.public()), None).ok()?;
            l.leases.iter().find(|l| l.fill.bid == entry.id()).map(|l| l.id)
        });
        wait_for("the lease's pool", MINUTE, || pool_of(dc1, &lease));
        leases.push(lease);
    }
    let on = |p: &str| -> Vec<Hash> {
        leases.iter().copied().filter(|l| pool_of(dc1, l).as_deref() == Some(p)).collect()
    };
    let (first, second) = (on(&drained), on(&other));
    assert_eq!((first.len(), second.len()), (2, 1), "placement: {first:?} {second:?}");
    // The buyer's credentials, fetched before the drain.
    let tokens: Vec<String> = first
        .iter()
        .map(|l| {
            wait_for("a credential", MINUTE, || Some(dc1.fetch_credential(l, &buyer).ok()?.token))
        })
        .collect();

    // Drain the first pool in 45 s (the notice period is 15 s: in time).
    let dir = net.data_dir(0).display().to_string();
    let drain = |args: &[&str]| surplus(&[&["drain", "--data-dir", &dir][..], args].concat());
    let out = drain(&["--pool", &drained, "--at", "+45s", "--reason", "firmware update", "--json"]);
    assert!(out.status.success(), "drain: {}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let start_ms = answer["start_ms"].as_u64().unwrap();
    // An unknown pool and a window inside the notice period are refused with what to do.
    let refused = drain(&["--pool", "nope", "--reason", "x"]);
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && text.contains(&drained), "{text}");
    let refused = drain(&["--pool", &other, "--at", "+2s", "--reason", "x"]);
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && text.contains("emergency"), "{text}");

    // Every node's market page shows the window.
    for n in &nodes {
        wait_for("the window on the market page", MINUTE, || {
            let m = n.api.markets().ok()?;
            let w = m.into_iter().find(|s| s.market == market)?.maintenance;
            w.iter().any(|w| w.pool == drained && w.start_ms == start_ms).then_some(())
        });
    }
    // One lease of the first pool moves to the other (which has room for one), the other gets
    // notice for the window's start, given in time.
    let (moved, noticed) = wait_for("a move and a notice", MINUTE, || {
        let moved: Vec<Hash> =
            first.iter().copied().filter(|l| pool_of(dc1, l).as_deref() == Some(&other)).collect();
        let noticed: Vec<Hash> = first
            .iter()
            .copied()
            .filter(|l| dc1.lease(l).ok().and_then(|v| v.lease.notice).is_some())
            .collect();
        (moved.len() == 1 && noticed.len() == 1).then(|| (moved[0], noticed[0]))
    });
    assert_ne!(moved, noticed);
    let notice = dc1.lease(&noticed).unwrap().lease.notice.unwrap();
    assert_eq!((notice.end_ms, notice.in_time), (start_ms, true), "{notice:?}");
    // The moved lease: same credential accepted, new access details naming the new pool.
    let token = &tokens[first.iter().position(|l| *l == moved).unwrap()];
    let answer = wait_for("the moved lease's new access details", MINUTE, || {
        let a = dc1.gateway(&read_with(token)).ok()?;
        (a.access.as_ref()?.get("pool")?.as_str()? == other).then_some(a)
    });
    assert_eq!(answer.lease, moved);
    assert_eq!(answer.access.unwrap()["moved_from"], drained.as_str());
    let record = dc1.lease(&moved).unwrap().provisioning.unwrap();
    assert_eq!(record["moves"][0]["to"], other.as_str(), "{record}");
    // The other pool is full (its lease and the moved one) and the drained one is off the
    // market: no offer of dc1 in the market has a free slot, until the window is done.
    let free_offered = |api: &Client| free_offered(api, &market, &provider);
    wait_for("the drained pool's offer withdrawn", MINUTE, || {
        (free_offered(dc1)? == 0).then_some(())
    });

    // The noticed lease ends at the window's start: the escrow comes back whole (it ran less
    // than an hour), and the provider pays no penalty.
    let before_buyer = dc1.account(&buyer.public()).unwrap().balance;
    // Balance and bond together: the node may lock more bond for its offers meanwhile.
    let held = |a: surplus_api::AccountView| a.balance + a.bond;
    let before_provider = held(dc1.account(&provider).unwrap());
    let ended = wait_for("the noticed lease to end", 2 * MINUTE, || {
        let v = dc1.lease(&noticed).ok()?;
        (v.lease.status != LeaseStatus::Active).then_some(v.lease)
    });
    assert_eq!(ended.status, LeaseStatus::EndedByNotice);
    assert_eq!((ended.fill.end_ms, ended.hours_paid, ended.escrow), (start_ms, 0, 0));
    let refund = 2 * 2 * ended.fill.price;
    assert_eq!(dc1.account(&buyer.public()).unwrap().balance, before_buyer + refund);
    assert_eq!(held(dc1.account(&provider).unwrap()), before_provider, "a penalty was paid");
    for _ in 0..5 {
        assert_eq!(free_offered(dc1), Some(0), "capacity offered while the pool is drained");
        std::thread::sleep(Duration::from_millis(400));
    }
    assert_eq!(lease_status(dc1, &moved), Some(LeaseStatus::Active));

    // Done: the pool's capacity returns to the market (its 4 slots are free again).
    let out = drain(&["--pool", &drained, "--done"]);
    assert!(out.status.success(), "drain --done: {}", String::from_utf8_lossy(&out.stderr));
    wait_for("the pool's offer back", MINUTE, || (free_offered(dc1)? == 4).then_some(()));
    // Before leaving the consortium, every pool at once; and back.
    let out = drain(&["--all", "--at", "+10min", "--reason", "leaving the consortium"]);
    assert!(out.status.success(), "drain --all: {}", String::from_utf8_lossy(&out.stderr));
    let op = nodes[0].operator_api();
    wait_for("every pool under maintenance", MINUTE, || {
        op.operator().ok()?.pools.iter().all(|p| p.maintenance.is_some()).then_some(())
    });
    let out = drain(&["--all", "--done"]);
    assert!(out.status.success(), "drain --all --done: {}", String::from_utf8_lossy(&out.stderr));
    wait_for("every pool back", MINUTE, || {
        op.operator().ok()?.pools.iter().all(|p| p.maintenance.is_none()).then_some(())
    });

    let refs: Vec<&Client> = nodes.iter().map(|n| &n.api).collect();
    let (height, _) = wait_converged(&refs, 2, 2 * MINUTE);
    for n in &mut nodes {
        n.stop();
    }
    for i in 0..3 {
        audit(&net.data_dir(i)).unwrap_or_else(|e| panic!("dc{} does not audit: {e}", i + 1));
    }
    eprintln!(
        "drained {drained} at height {height}: moved {}, noticed {}",
        hex::encode(moved),
        hex::encode(noticed)
    );
}

/// Capacity read from the datacenter (issue 17): dc1 sells what its `exec` source reports (a
/// file the test writes, read every half second). When the source drops below what is leased,
/// dc1 withdraws its free offers and offers nothing, `/metrics` and the operator page raise the
/// alert, and the running lease goes on; when capacity returns, so do the offers.
#[test]
fn a_capacity_source_below_the_leases_stops_sales_and_alerts_without_breaking_leases() {
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base(40);
    let net = Devnet::init_args(tmp.path(), 3, base, 200, 1_000, &[]);
    let dir = net.data_dir(0);
    let source = tmp.path().join("free.json");
    let text = std::fs::read_to_string(dir.join("inventory.toml")).unwrap();
    let inventory: toml::Value = toml::from_str(&text).unwrap();
    let region = inventory["pool"][0]["region"].as_str().unwrap().to_owned();
    let market = Market::new("vm.4c16g", &region);
    let reserve = inventory["pool"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["class"].as_str() == Some("vm.4c16g"))
        .and_then(|p| p["reserve"].as_integer())
        .unwrap() as u64;
    let report = |slots: &str| std::fs::write(&source, slots).unwrap();
    report(r#"{"vm.4c16g": 8}"#);
    let config = dir.join("config.toml");
    let mut c = std::fs::read_to_string(&config).unwrap();
    c.push_str(&format!(
        "\n[capacity]\nkind = \"exec\"\ncommand = [\"cat\", {:?}]\ninterval_ms = 500\n\
         headroom_percent = 0\n",
        source.display().to_string()
    ));
    std::fs::write(&config, c).unwrap();
    let mut nodes = net.start_all();
    let dc1 = nodes[0].operator_api();
    let provider = net.node_key(0);
    let free_offered = |m: &Market| free_offered(&dc1, m, &provider);
    wait_for("dc1's offer of the reported 8 slots", MINUTE, || {
        (free_offered(&market)? == 8).then_some(())
    });
    // A class the source does not report is not offered.
    assert_eq!(free_offered(&Market::new("vm.2c8g", &region)), Some(0));

    // A 4-slot lease.
    let buyer = net.buyer(0);
    let mut bid = one_slot_bid(&market, reserve, now_ms(), 600_000);
    (bid.slots, bid.hours, bid.fill) = (4, 2, FillRule::AllOrNone);
    let (entry, _) = SignedOrder::sign(net.chain_id(), Order::Bid(bid), &buyer);
    dc1.submit(&entry).unwrap_or_else(|e| panic!("bid refused: {e}"));
    let lease = wait_for("the lease", MINUTE, || {
        let l = dc1.leases(Some(&buyer.public()), None).ok()?;
        l.leases.iter().find(|l| l.fill.bid == entry.id()).map(|l| l.id)
    });
    wait_for("the rest on offer", MINUTE, || (free_offered(&market)? == 4).then_some(()));

    // The datacenter needs its machines back: 2 slots free, less than the 4 leased.
    report(r#"{"vm.4c16g": 2}"#);
    let metrics = || -> Option<String> { nodes[0].api.metrics().ok() };
    wait_for("the alert on /metrics", MINUTE, || {
        let m = metrics()?;
        (m.contains("surplus_capacity_alert 1")
            && m.contains("surplus_capacity_short_slots{class=\"vm.4c16g\"} 2"))
        .then_some(())
    });
    let view = wait_for("the alert on the operator page", MINUTE, || {
        let c = dc1.operator().ok()?.capacity?;
        c.alert.then_some(c)
    });
    let k = view.classes.iter().find(|k| k.class == "vm.4c16g").unwrap();
    assert_eq!((k.reported, k.sellable, k.leased, k.short), (2, 2, 4, 2), "{view:?}");
    wait_for("dc1's free offer withdrawn", MINUTE, || (free_offered(&market)? == 0).then_some(()));
    for _ in 0..5 {
        assert_eq!(free_offered(&market), Some(0), "capacity offered beyond the source");
        assert_eq!(lease_status(&dc1, &lease), Some(LeaseStatus::Active), "a running lease broke");
        std::thread::sleep(Duration::from_millis(500));
    }
    // A source that answers garbage keeps the last reading and says why.
    report("not json");
    wait_for("the source's error on the operator page", MINUTE, || {
        dc1.operator().ok()?.capacity?.error.is_some().then_some(())
    });
    assert_eq!(free_offered(&market), Some(0));

    // Capacity returns: so do the offers, and the alert clears.
    report(r#"{"vm.4c16g": 8}"#);
    wait_for("the offers back", MINUTE, || (free_offered(&market)? == 4).then_some(()));
    wait_for("the alert cleared", MINUTE, || {
        metrics()?.contains("surplus_capacity_alert 0").then_some(())
    });
    assert_eq!(lease_status(&dc1, &lease), Some(LeaseStatus::Active));
    for n in &mut nodes {
        n.stop();
    }
    audit(&dir).unwrap_or_else(|e| panic!("dc1 does not audit: {e}"));
}

/// Whether this machine can run the SSH test: root (it makes accounts) and Debian's
/// openssh-server (`scripts/test-all` installs it).
fn can_run_sshd() -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    root && Path::new("/usr/sbin/sshd").exists()
}

/// The test's sshd, stopped however the test ends.
struct Sshd(std::process::Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ssh` as the buyer: the command's output if the login succeeded.
fn ssh_login(port: u16, user: &str, identity: &Path, cert: &Path) -> Result<String, String> {
    let out = Command::new("timeout")
        .arg("20")
        .arg("ssh")
        .args(["-F", "/dev/null", "-p", &port.to_string(), "-i"])
        .arg(identity)
        .arg("-o")
        .arg(format!("CertificateFile={}", cert.display()))
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"])
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
        .arg(format!("{user}@127.0.0.1"))
        .arg("echo logged-in-as-$(id -un)")
        .output()
        .expect("run ssh");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn keygen(args: &[&str]) {
    let out = Command::new("ssh-keygen").args(args).output().expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Real access (issue 17): with Debian's sshd on a loopback port trusting dc1's SSH
/// certificate authority, and dc1's sample Linux hook making an account per lease, the buyer
/// logs in with the certificate `surplus lease ssh` gets for its lease; the login is refused
/// with a certificate for another lease's principal, with one signed by another provider's
/// authority, after a renewal revoked the token it was exchanged for, and after the lease
/// ended.
#[test]
fn a_lease_certificate_logs_in_until_revocation_or_the_end() {
    if !can_run_sshd() {
        eprintln!(
            "skipped: needs root and /usr/sbin/sshd (scripts/test-all installs openssh-server)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base(40);
    let net = Devnet::init_args(tmp.path(), 3, base, 200, 1_000, &[]);
    let dc1_dir = net.data_dir(0);
    let principals = tmp.path().join("principals");
    let port = free_base(1);
    let hook = format!(
        "[{:?}, \"hook\", \"linux\", \"--principals-dir\", {:?}, \"--ssh-port\", \"{port}\", \
         \"--limits-dir\", {:?}]",
        surplus_bin().display().to_string(),
        principals.display().to_string(),
        tmp.path().join("limits").display().to_string()
    );
    set_config(&dc1_dir.join("config.toml"), "command", &hook);
    let mut nodes = net.start_all();
    let dc1 = nodes[0].api.clone();
    let provider = net.node_key(0);

    // sshd on loopback, trusting dc1's authority, its revocation list and the hook's
    // principals files.
    let host_key = tmp.path().join("host_ed25519");
    keygen(&["-q", "-t", "ed25519", "-N", "", "-f", host_key.to_str().unwrap()]);
    std::fs::create_dir_all("/run/sshd").unwrap();
    let sshd_config = tmp.path().join("sshd_config");
    std::fs::write(
        &sshd_config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
             AuthorizedKeysFile none\nAuthorizedPrincipalsFile {}/%u\nTrustedUserCAKeys {}\n\
             RevokedKeys {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\nPermitRootLogin no\nLogLevel VERBOSE\n",
            host_key.display(),
            tmp.path().join("sshd.pid").display(),
            principals.display(),
            dc1_dir.join("ssh/ca.pub").display(),
            dc1_dir.join("ssh/revoked.krl").display(),
        ),
    )
    .unwrap();
    let sshd_log = std::fs::File::create(tmp.path().join("sshd.log")).unwrap();
    let _sshd = Sshd(
        Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&sshd_config)
            .stdout(sshd_log.try_clone().unwrap())
            .stderr(sshd_log)
            .spawn()
            .expect("start sshd"),
    );
    let sshd_up = || std::net::TcpStream::connect(("127.0.0.1", port)).ok();
    wait_for("sshd to listen", MINUTE, sshd_up);

    // Two leases of the buyer on dc1 (any of its markets: the first pool's).
    let (market, reserve) = first_pool(&dc1_dir);
    wait_for_offer(&dc1, &market, &provider);
    let buyer = net.buyer(0);
    let key_file = tmp.path().join("buyer.key");
    std::fs::write(&key_file, buyer.to_file_contents()).unwrap();
    let mut leases = Vec::new();
    for n in 0..2 {
        let bid = one_slot_bid(&market, reserve, now_ms() + n, 600_000);
        let (entry, _) = SignedOrder::sign(net.chain_id(), Order::Bid(bid), &buyer);
        dc1.submit(&entry).unwrap_or_else(|e| panic!("bid refused: {e}"));
        let lease = wait_for("the lease", MINUTE, || {
            let l = dc1.leases(Some(&buyer.public()), None).ok()?;
            l.leases.iter().find(|l| l.fill.bid == entry.id()).map(|l| l.id)
        });
        wait_for("its account", MINUTE, || {
            let v = dc1.lease(&lease).ok()?.provisioning?;
            v.get("start")?.get("ok")?.as_bool()?.then_some(())
        });
        leases.push(lease);
    }
    let (a, b) = (leases[0], leases[1]);
    let user_a = format!("lease-{}", &hex::encode(a)[..12]);

    // The buyer's SSH keys and `surplus lease ssh`, which prints the ssh command.
    let identity = tmp.path().join("id_a");
    let other_identity = tmp.path().join("id_b");
    keygen(&["-q", "-t", "ed25519", "-N", "", "-f", identity.to_str().unwrap()]);
    keygen(&["-q", "-t", "ed25519", "-N", "", "-f", other_identity.to_str().unwrap()]);
    let lease_ssh = |lease: &Hash, identity: &Path| {
        surplus(&[
            "lease",
            "ssh",
            &hex::encode(lease),
            "--identity",
            identity.to_str().unwrap(),
            "--key",
            key_file.to_str().unwrap(),
            "--node",
            dc1.base(),
        ])
    };
    let out = wait_for("the certificate", MINUTE, || {
        let o = lease_ssh(&a, &identity);
        o.status.success().then_some(o)
    });
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(printed.contains(&format!("-p {port} {user_a}@127.0.0.1")), "{printed}");
    let cert_a = tmp.path().join("id_a-cert.pub");
    let got = ssh_login(port, &user_a, &identity, &cert_a).unwrap_or_else(|e| {
        panic!(
            "the lease's certificate was refused: {e}\n{}",
            log_tail(&tmp.path().join("sshd.log"), 20)
        )
    });
    assert_eq!(got, format!("logged-in-as-{user_a}"));

    // A certificate for the other lease's principal does not open this lease's account.
    let out = lease_ssh(&b, &other_identity);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cert_b = tmp.path().join("id_b-cert.pub");
    assert!(
        ssh_login(port, &user_a, &other_identity, &cert_b).is_err(),
        "another principal got in"
    );
    // One signed by another provider's authority (dc2's) for this principal is refused too.
    let forged = tmp.path().join("id_b-forged-cert.pub");
    std::fs::copy(other_identity.with_extension("pub"), tmp.path().join("id_b-forged.pub")).ok();
    keygen(&[
        "-q",
        "-s",
        net.data_dir(1).join("ssh/ca").to_str().unwrap(),
        "-I",
        "forged",
        "-n",
        &user_a,
        "-V",
        "-1m:+1h",
        tmp.path().join("id_b-forged.pub").to_str().unwrap(),
    ]);
    assert!(forged.exists());
    assert!(
        ssh_login(port, &user_a, &other_identity, &forged).is_err(),
        "another CA's certificate got in"
    );

    // A renewal replaces the lease's credential: the certificate of the revoked token stops
    // working, the old token is refused for a new one, and the new credential gets one.
    let token_a = dc1.fetch_credential(&a, &buyer).unwrap().token;
    let seq = dc1.account(&buyer.public()).unwrap().seq;
    let renew = Tx::Renew { lease: a, hours: 1, seq };
    dc1.submit(&Entry::signed(net.chain_id(), renew.kind(), renew.encode(), &buyer)).unwrap();
    wait_for("the old certificate revoked", MINUTE, || {
        ssh_login(port, &user_a, &identity, &cert_a).is_err().then_some(())
    });
    let pubkey = std::fs::read_to_string(identity.with_extension("pub")).unwrap();
    let (code, _) =
        refusal("the revoked token's exchange", dc1.ssh_certificate(&a, &token_a, &pubkey));
    assert_eq!(code, 403);
    wait_for("a certificate for the new credential", MINUTE, || {
        lease_ssh(&a, &identity).status.success().then_some(())
    });
    assert_eq!(
        ssh_login(port, &user_a, &identity, &cert_a).unwrap(),
        format!("logged-in-as-{user_a}")
    );

    // The buyer ends the lease: the certificate stops working and the account goes.
    let seq = dc1.account(&buyer.public()).unwrap().seq;
    let end = Tx::Terminate { lease: a, seq };
    dc1.submit(&Entry::signed(net.chain_id(), end.kind(), end.encode(), &buyer)).unwrap();
    wait_for("the login refused after the end", MINUTE, || {
        ssh_login(port, &user_a, &identity, &cert_a).is_err().then_some(())
    });
    let token_now = token_a; // any token of the ended lease is refused
    let (code, _) =
        refusal("an ended lease's exchange", dc1.ssh_certificate(&a, &token_now, &pubkey));
    assert_eq!(code, 403);
    wait_for("the account removed", MINUTE, || {
        (!Command::new("id").arg(&user_a).output().unwrap().status.success()).then_some(())
    });

    // Lease b's account: its end hook runs when it ends; end it so that no account stays.
    let seq = dc1.account(&buyer.public()).unwrap().seq;
    let end = Tx::Terminate { lease: b, seq };
    dc1.submit(&Entry::signed(net.chain_id(), end.kind(), end.encode(), &buyer)).unwrap();
    let user_b = format!("lease-{}", &hex::encode(b)[..12]);
    wait_for("lease b's account removed", MINUTE, || {
        (!Command::new("id").arg(&user_b).output().unwrap().status.success()).then_some(())
    });
    for n in &mut nodes {
        n.stop();
    }
}

/// The credit entries (kind 39) of `lease` in blocks `from..=to`, as `api` serves them.
fn credits_of(api: &Client, lease: &Hash, from: u64, to: u64) -> Vec<Value> {
    let mut out = Vec::new();
    for h in from..=to {
        let Ok(b) = api.block(h, true) else { continue };
        for e in b.entries.unwrap_or_default() {
            if e.kind == "credit" {
                let d = e.decoded.expect("a credit entry decodes");
                if d["lease"] == hex::encode(lease) {
                    out.push(d);
                }
            }
        }
    }
    out
}

/// Buyer 0 bids for one slot for an hour in `market` at `limit` through `api`; the lease, once
/// `ready` (`what`) holds for it.
fn one_lease_of(
    net: &Devnet,
    api: &Client,
    market: &Market,
    limit: u64,
    what: &str,
    ready: impl Fn(&surplus_contracts::Lease) -> bool,
) -> surplus_contracts::Lease {
    let buyer = net.buyer(0);
    let bid = one_slot_bid(market, limit, now_ms(), 600_000);
    let (entry, _) = SignedOrder::sign(net.chain_id(), Order::Bid(bid), &buyer);
    api.submit(&entry).unwrap_or_else(|e| panic!("bid refused: {e}"));
    wait_for(&format!("the lease and {what}"), MINUTE, || {
        let l = api.leases(Some(&buyer.public()), None).ok()?;
        l.leases.into_iter().find(|l| l.fill.bid == entry.id() && ready(l))
    })
}

/// `surplus devnet`'s config of node `dir` with its sample hook answering `probe_tcp` as every
/// lease's probe target.
fn probe_at(dir: &Path, probe_tcp: &str) {
    let config = dir.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let c: toml::Value = toml::from_str(&text).unwrap();
    let mut command: Vec<String> = c["provisioning"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    // devnet's hook probes the node's own /healthz: this test holds the target instead.
    let at = command.iter().position(|a| a == "--probe-http").unwrap();
    command.drain(at..at + 2);
    command.extend(["--probe-tcp".to_owned(), probe_tcp.to_owned()]);
    let list: Vec<String> = command.iter().map(|a| format!("{a:?}")).collect();
    set_config(&config, "command", &format!("[{}]", list.join(", ")));
}

/// Supervision on four processes (docs/contracts.md §10): dc1's lease is probed at a TCP port
/// this test holds; dc2 does not probe at all (a vantage point that sees nothing down, as one
/// lying that a dead lease is up would). The port closes for several intervals: dc3 and dc4,
/// two of the three other datacenters, make a quorum, and each down interval comes back to the
/// buyer exactly. A report by dc2 alone that a healthy interval was down changes nothing, and
/// the operator page shows the disagreement; dc1's report on its own lease is refused. The
/// status page shows the outage, and every ledger audits clean.
#[test]
fn a_stopped_probe_target_is_found_down_by_quorum_and_its_time_paid_back_exactly() {
    let _one = one_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base(40);
    const S: u64 = 5_000;
    let net = Devnet::init_args(tmp.path(), 4, base, 200, 1_000, &["--probe-interval-secs", "5"]);
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = target.local_addr().unwrap().to_string();
    probe_at(&net.data_dir(0), &addr);
    set_config(&net.data_dir(1).join("config.toml"), "enabled", "false");
    let mut nodes = net.start_all();
    let dc1 = nodes[0].operator_api();
    let provider = net.node_key(0);
    let buyer = net.buyer(0);
    let (market, reserve, _) = first_market_pools(&net.data_dir(0));
    wait_for_offer(&dc1, &market, &provider);
    let lease =
        one_lease_of(&net, &dc1, &market, reserve, "its probe target", |l| l.probe.is_some());
    assert_eq!(
        lease.probe,
        Some(surplus_contracts::supervision::ProbeTarget::Tcp { address: addr.clone() })
    );
    // While the target answers, the other datacenters probe it and find nothing down.
    wait_for("dc3's probes of the lease", MINUTE, || {
        let m = nodes[2].api.metrics().ok()?;
        let up = m.lines().find_map(|l| l.strip_prefix("surplus_probes_up_total "))?;
        (up.trim().parse::<u64>().ok()? >= 3).then_some(())
    });
    let m = nodes[1].api.metrics().unwrap();
    assert!(!m.contains("surplus_probe_targets"), "dc2 does not probe: {m}");
    assert_eq!(dc1.lease(&lease.id).unwrap().lease.down_ms, 0);
    let buyer_before = dc1.account(&buyer.public()).unwrap().balance;
    let from_height = dc1.status().unwrap().height;

    // The machine goes away for a while.
    drop(target);
    let down = wait_for("three intervals found down", 2 * MINUTE, || {
        let l = dc1.lease(&lease.id).ok()?.lease;
        (l.down_ms >= 3 * S).then_some(l)
    });
    let target = std::net::TcpListener::bind(&addr).unwrap();
    // Whatever was decided before the target came back: let the last reports settle.
    std::thread::sleep(Duration::from_millis(3 * S));
    let l = dc1.lease(&lease.id).unwrap().lease;
    assert!(l.down_ms >= down.down_ms && l.down_ms.is_multiple_of(S), "{l:?}");
    // Each down interval lies inside the lease's first hour: it costs
    // ⌊slots × price × 5 s / 1 h⌋, and the buyer got exactly that back per interval.
    let per_interval = u64::from(l.fill.slots) * l.fill.price * S / 3_600_000;
    let intervals = l.down_ms / S;
    assert_eq!(l.credited, intervals * per_interval, "{l:?}");
    let head = dc1.status().unwrap().height;
    let credits = credits_of(&dc1, &lease.id, from_height, head);
    assert_eq!(credits.len() as u64, intervals, "{credits:?}");
    for c in &credits {
        assert_eq!((c["reason"].as_str(), c["due"].as_u64()), (Some("down"), Some(per_interval)));
    }
    let paid: u64 = credits
        .iter()
        .map(|c| c["from_balance"].as_u64().unwrap() + c["from_bond"].as_u64().unwrap())
        .sum();
    assert_eq!(paid, l.credited);
    assert_eq!(dc1.account(&buyer.public()).unwrap().balance, buyer_before + l.credited);

    // A liar: dc2 alone reports an interval of the running lease down.
    let dc2_key = read_key(&net.data_dir(1).join("node.key"));
    let report = |key: &surplus_ledger::SecretKey, interval: u64| {
        let r = surplus_contracts::supervision::Report { interval, down: vec![lease.id] };
        Entry::signed(net.chain_id(), surplus_ledger::EntryKind::PROBE_REPORT, r.encode(), key)
    };
    let healthy = now_ms() / S - 1;
    nodes[1].api.submit(&report(&dc2_key, healthy)).unwrap();
    let disagreement = wait_for("the lone report on the operator page", MINUTE, || {
        let w = dc1.operator().ok()?.watched.into_iter().find(|w| w.lease == lease.id)?;
        w.intervals.into_iter().find(|i| i.interval == healthy && !i.down.is_empty())
    });
    assert_eq!(disagreement.down, vec![net.node_key(1)]);
    assert_eq!(disagreement.decided, 0);
    let mut silent = disagreement.silent.clone();
    silent.sort();
    let mut others = vec![net.node_key(2), net.node_key(3)];
    others.sort();
    assert_eq!(silent, others, "the provider is no vantage point of its own lease");
    std::thread::sleep(Duration::from_millis(2 * S));
    assert_eq!(
        dc1.lease(&lease.id).unwrap().lease.down_ms,
        l.down_ms,
        "one report decides nothing"
    );
    // The provider cannot report on its own lease.
    let dc1_key = read_key(&net.data_dir(0).join("node.key"));
    let (status, text) = refusal("own report", dc1.submit(&report(&dc1_key, healthy)));
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("report_refused"), "{text}");

    // The status page (JSON and HTML) shows the outage, its leases and credits.
    let c = nodes[3].api.consortium().unwrap();
    let outage = c
        .incidents
        .iter()
        .find(|i| i.kind == surplus_api::IncidentKind::Outage && i.provider == provider)
        .unwrap_or_else(|| panic!("no outage of dc1: {c:?}"));
    assert_eq!((outage.leases, outage.credited, outage.down_ms), (1, l.credited, l.down_ms));
    let p = c.providers.iter().find(|p| p.provider == provider).unwrap();
    assert!(p.day.availability_bps.unwrap() < 10_000, "{p:?}");
    assert_eq!(c.validators.len(), 4);
    let html = ureq::get(&format!("{}/status", nodes[3].api.base())).call().unwrap();
    let html = html.into_string().unwrap();
    assert!(html.contains("class=\"incident outage\""), "{html}");
    assert!(html.contains("Measured availability"), "{html}");

    // The buyer ends the lease: its one hour is paid, and a lease this far below the market's
    // 99.5 % earns the schedule's 10 % of what it cost, on top of the down time paid back.
    let before = dc1.account(&buyer.public()).unwrap();
    let t = Tx::Terminate { lease: lease.id, seq: before.seq };
    dc1.submit(&Entry::signed(net.chain_id(), t.kind(), t.encode(), &buyer)).unwrap();
    let ended = wait_for("the buyer's termination", MINUTE, || {
        let l = dc1.lease(&lease.id).ok()?.lease;
        (l.status == LeaseStatus::TerminatedByBuyer).then_some(l)
    });
    let cost = u64::from(ended.fill.slots) * ended.fill.price;
    let due = cost * 1_000 / 10_000;
    assert!(due > 0);
    let head = dc1.status().unwrap().height;
    let target_credits: Vec<Value> = credits_of(&dc1, &lease.id, from_height, head)
        .into_iter()
        .filter(|c| c["reason"] == "below_target")
        .collect();
    assert_eq!(target_credits.len(), 1, "{target_credits:?}");
    assert_eq!(target_credits[0]["due"].as_u64(), Some(due));
    assert_eq!(ended.credited, l.credited + due, "{ended:?}");
    assert_eq!(ended.hours_paid, 1);
    // The hour was paid in full from escrow (nothing refunded); the credit came on top.
    assert_eq!(dc1.account(&buyer.public()).unwrap().balance, before.balance + due);
    drop(target);

    for n in &mut nodes {
        n.stop();
    }
    for i in 0..4 {
        let report = audit(&net.data_dir(i)).unwrap();
        assert_eq!(report["verified"], true, "dc{}: {report}", i + 1);
    }
}

/// The provider's bond on three processes (docs/contracts.md §10): dc1 locks what its offers
/// need by itself; taking it back while a lease runs is refused (`surplus bond release`); after
/// dc1 moved its whole balance away, its termination's penalty is paid from the bond.
#[test]
fn a_bond_stays_while_a_lease_runs_and_pays_the_penalty_of_an_empty_provider() {
    let _one = one_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base(40);
    let net = Devnet::init_args(tmp.path(), 3, base, 200, 1_000, &[]);
    let mut nodes = net.start_all();
    let dc1 = nodes[0].operator_api();
    let provider = net.node_key(0);
    let buyer = net.buyer(0);
    let (market, reserve, _) = first_market_pools(&net.data_dir(0));
    wait_for_offer(&dc1, &market, &provider);
    let bond = dc1.account(&provider).unwrap().bond;
    assert!(bond > 0, "dc1 locked the bond its offers need");
    let lease = one_lease_of(&net, &dc1, &market, reserve, "its grant", |l| l.grant.is_some());
    let dir = net.data_dir(0).display().to_string();
    let out = surplus(&["bond", "release", "1", "--data-dir", &dir]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("bond_locked"), "{text}");
    let out = surplus(&["bond", "show", "--data-dir", &dir, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // dc1 moves its whole balance to another account (the node signs its own transactions too:
    // a number it took first is tried again).
    let key = read_key(&net.data_dir(0).join("node.key"));
    wait_for("dc1's balance gone", 2 * MINUTE, || {
        let a = dc1.account(&provider).ok()?;
        if a.balance == 0 {
            return Some(());
        }
        let t = Tx::Transfer { to: net.buyer(1).public(), amount: a.balance, seq: a.seq };
        let _ = dc1.submit(&Entry::signed(net.chain_id(), t.kind(), t.encode(), &key));
        std::thread::sleep(Duration::from_secs(1));
        None
    });
    let bond = dc1.account(&provider).unwrap().bond;
    let buyer_before = dc1.account(&buyer.public()).unwrap().balance;
    dc1.terminate_as_provider(&lease.id, "the host failed").unwrap();
    wait_for("the termination", MINUTE, || {
        (lease_status(&dc1, &lease.id)? == LeaseStatus::TerminatedByProvider).then_some(())
    });
    let head = dc1.status().unwrap().height;
    let settlement = (lease.height..=head)
        .flat_map(|h| dc1.block(h, true).ok()?.entries)
        .flatten()
        .filter(|e| e.kind == "settlement")
        .filter_map(|e| e.decoded)
        .find(|d| d["lease"] == hex::encode(lease.id) && d["reason"] == "provider_termination")
        .expect("the termination's settlement");
    let refund = settlement["refund"].as_u64().unwrap();
    // devnet's penalty: 5 % of the refund, all of it from the bond.
    let penalty = refund * 500 / 10_000;
    assert!(penalty > 0);
    assert_eq!(settlement["penalty"].as_u64(), Some(penalty), "{settlement}");
    let a = dc1.account(&provider).unwrap();
    assert_eq!(a.balance, 0);
    assert_eq!(a.bond, bond - penalty);
    assert_eq!(dc1.account(&buyer.public()).unwrap().balance, buyer_before + refund + penalty);
    for n in &mut nodes {
        n.stop();
    }
    let report = audit(&net.data_dir(0)).unwrap();
    assert_eq!(report["verified"], true, "{report}");
}
