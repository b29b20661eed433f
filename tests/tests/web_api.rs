//! The web issue's API on real node processes: the devnet faucet, live events, lease inclusion
//! proofs verified offline, full blocks, metrics, the exported ledger, and history that
//! survives a restart.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use surplus_ledger::bundle::ProofBundle;
use surplus_ledger::{PublicKey, SecretKey, ValidatorSet};
use surplus_market::{Order, SignedOrder};
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

fn key_hex(v: &Value) -> PublicKey {
    PublicKey(surplus_ledger::parse_hex::<32>(v.as_str().unwrap(), "key").unwrap())
}

/// Reads `GET url` as server-sent events on a thread for at most `limit`, sending each
/// `(event, data)` pair; the thread ends at the deadline or when the receiver is dropped.
fn events(url: String, limit: Duration) -> mpsc::Receiver<(String, Value)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        let Ok(resp) = ureq::get(&url).timeout(limit).call() else { return };
        let mut event = String::new();
        for line in BufReader::new(resp.into_reader()).lines() {
            let Ok(line) = line else { return };
            if Instant::now() > deadline {
                return;
            }
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                let data = serde_json::from_str(d).unwrap_or(Value::Null);
                if tx.send((event.clone(), data)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Serves a `TestNode` on loopback for the length of the check, and compares its refusals with
/// the real node's at `real`.
fn same_refusals_as_the_test_node(real: &str, market: &surplus_market::Market) {
    use surplus_web::testnode::TestNode;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let node = std::sync::Arc::new(TestNode::new(SecretKey::from_seed([0x11; 32]), &[]));
    let limits = surplus_web::Limits { workers: 1, ..surplus_web::Limits::default() };
    let (server, addr) =
        rt.block_on(surplus_web::serve("127.0.0.1:0".parse().unwrap(), node, limits)).unwrap();
    let handle = server.handle();
    rt.spawn(server);
    let test = format!("http://{addr}");
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    let (compared, differ) = surplus_tests::parity::compare(real, &test, market, now).unwrap();
    rt.block_on(handle.stop(true));
    assert!(compared > 20);
    assert!(
        differ.is_empty(),
        "the real node and the test node answer differently:\n{}",
        differ.join("\n")
    );
}

#[test]
fn faucet_events_proofs_blocks_metrics_and_export_on_a_devnet() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 4, free_base(40), 200, 1000);
    let mut nodes = net.start_all();
    let apis: Vec<Api> = nodes.iter().map(|n| Api(n.api.0.clone())).collect();
    let chain_id = net.chain_id().to_owned();

    // The faucet funds a brand-new key once; a second request is refused with a reason.
    let buyer = SecretKey::from_seed([0x5e; 32]);
    let body = json!({ "account": hex::encode(buyer.public().0) });
    let (code, grant) = post(&format!("{}/api/v1/faucet", apis[0].0), &body).unwrap();
    assert_eq!(code, 202, "{grant}");
    let amount = grant["amount"].as_u64().unwrap();
    assert!(amount > 0);
    let (code, again) = post(&format!("{}/api/v1/faucet", apis[0].0), &body).unwrap();
    assert_eq!(code, 409, "{again}");
    assert_eq!(again["error"]["code"], "faucet_spent");
    for api in &apis[1..3] {
        wait_for("the faucet's credits", 2 * MINUTE, || {
            (api.account(&buyer.public()).ok()?.0 == amount).then_some(())
        });
    }
    let (code, later) = post(&format!("{}/api/v1/faucet", apis[2].0), &body).unwrap();
    assert_eq!(code, 409, "a funded account is not funded again by another node: {later}");

    // Live events for the buyer, from another node than the one it bids through.
    let stream = events(
        format!("{}/api/v1/events?account={}", apis[1].0, hex::encode(buyer.public().0)),
        2 * MINUTE,
    );

    // The buyer bids, with the faucet's credits, on dc1's first inventory pool.
    let (market, reserve) =
        first_pool(Path::new(net.file["nodes"][0]["data_dir"].as_str().unwrap()));
    wait_for_offer(&apis[0], &market, net.file["nodes"][0]["public_key"].as_str().unwrap());
    let bid = one_slot_bid(&market, reserve * 2, 1, 600_000);
    assert!(reserve * 2 <= amount, "the faucet's grant must pay for the test's bid");
    let (entry, _) = SignedOrder::sign(&chain_id, Order::Bid(bid), &buyer);
    let (code, body) = apis[0].submit(&entry).unwrap();
    assert_eq!(code, 202, "bid refused: {body}");
    let bid_id = hex::encode(entry.id());
    // Its fate can be looked up on the node that acknowledged it.
    let fate = wait_for("the bid's receipt", 2 * MINUTE, || {
        let v = get(&format!("{}/api/v1/submissions/{bid_id}", apis[0].0)).ok()?;
        (v["status"] == "committed").then_some(v)
    });
    assert!(fate["height"].as_u64().is_some(), "{fate}");

    // The same bad requests get the same status and code from this real node and from the
    // in-process test node the web tests run on.
    same_refusals_as_the_test_node(&apis[1].0, &market);

    // The fill and the lease arrive as events; only the buyer's events (and blocks) come.
    let deadline = Instant::now() + 2 * MINUTE;
    let (mut lease_id, mut saw_block, mut saw_lease) = (None::<String>, false, false);
    while !(saw_block && saw_lease) {
        let left = deadline.saturating_duration_since(Instant::now());
        let (event, data) = stream.recv_timeout(left).expect("the lease's events within 2 minutes");
        match event.as_str() {
            "block" => saw_block = data["height"].as_u64().is_some(),
            "fill" => {
                assert_eq!(data["fill"]["bid"], bid_id, "only the buyer's fills: {data}");
                lease_id = data["lease"].as_str().map(str::to_owned);
            }
            "lease" => {
                assert_eq!(data["lease"]["fill"]["buyer"], hex::encode(buyer.public().0));
                saw_lease = lease_id.as_deref() == data["lease"]["id"].as_str();
            }
            other => panic!("unexpected event {other}: {data}"),
        }
    }
    let lease_id = lease_id.unwrap();
    let lease = wait_for("the lease on dc3", MINUTE, || apis[2].lease(&lease_id).ok());
    let lease_height = lease["lease"]["height"].as_u64().unwrap();

    // The provider's node shows the lease's provisioning outcome, but not its access details:
    // lease ids are public, access is for the credential's holder (through the gateway).
    let provisioned = wait_for("dc1's start hook record", MINUTE, || {
        let v = apis[0].lease(&lease_id).ok()?;
        v["provisioning"]["start"].is_object().then_some(v)
    });
    assert_eq!(provisioned["provisioning"]["start"]["ok"], true, "{provisioned}");
    assert!(!provisioned.to_string().contains("\"access\""), "{provisioned}");

    // dc3 proves the lease's fill against its own signed checkpoint; it verifies offline
    // against the genesis validators, and a tampered copy does not.
    let chain = get(&format!("{}/api/v1/chain", apis[2].0)).unwrap();
    let validators =
        ValidatorSet::new(chain["validators"].as_array().unwrap().iter().map(key_hex).collect())
            .unwrap();
    let dc3 = key_hex(&net.file["nodes"][2]["public_key"]);
    let bundle: ProofBundle = wait_for("a proof of the lease", MINUTE, || {
        let v = get(&format!("{}/api/v1/leases/{lease_id}/proof", apis[2].0)).ok()?;
        serde_json::from_value(v).ok()
    });
    let checked = bundle.verify(Some(&dc3), Some(&validators)).expect("the proof verifies");
    assert_eq!(hex::encode(checked.entry.id()), lease_id);
    assert!(checked.certificate_checked);
    let mut tampered = bundle.clone();
    tampered.checkpoint.tree_size += 1;
    assert!(tampered.verify(Some(&dc3), Some(&validators)).is_err());

    // The full block holds the fill; the block list and the entry route agree with it.
    let block = get(&format!("{}/api/v1/blocks/{lease_height}", apis[3].0)).unwrap();
    let entries = block["entries"].as_array().unwrap();
    let fill = entries.iter().find(|e| e["id"] == lease_id.as_str()).expect("the fill");
    let index = fill["index"].as_u64().unwrap();
    let by_index = get(&format!("{}/api/v1/entries/{index}", apis[3].0)).unwrap();
    assert_eq!(by_index["height"], lease_height);
    assert_eq!(by_index["id"], lease_id.as_str());
    assert_eq!(index, bundle.entry_index);

    // Metrics: the node that took the bid measured its order-to-lease latency.
    let text = ureq::get(&format!("{}/metrics", apis[0].0)).call().unwrap().into_string().unwrap();
    let metric = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    assert!(metric("surplus_height") >= lease_height as f64);
    assert!(metric("surplus_orders_accepted_total") >= 1.0);
    assert!(metric("surplus_order_to_lease_seconds_count") >= 1.0);

    // The exported ledger downloads and audits clean.
    let resp = ureq::get(&format!("{}/api/v1/export", apis[1].0)).call().unwrap();
    let height: u64 = resp.header("x-ledger-height").unwrap().parse().unwrap();
    assert!(height >= lease_height);
    let file = tmp.path().join("export.surplus");
    let mut out = std::fs::File::create(&file).unwrap();
    std::io::copy(&mut resp.into_reader(), &mut out).unwrap();
    drop(out);
    let audited = surplus(&["audit", file.to_str().unwrap(), "--json"]);
    assert!(audited.status.success(), "{}", String::from_utf8_lossy(&audited.stderr));

    // After a restart the node still serves the lease's block and the market's price history.
    nodes[3].stop();
    nodes[3] =
        NodeProc::start(Path::new(net.file["nodes"][3]["data_dir"].as_str().unwrap()), &apis[3].0);
    nodes[3].wait_up();
    let again = get(&format!("{}/api/v1/blocks/{lease_height}", apis[3].0)).unwrap();
    assert_eq!(again["hash"], block["hash"]);
    assert!(again["committed_ms"].as_u64().is_some(), "the recent window was refilled: {again}");
    let history = get(&format!("{}/api/v1/markets/{market}/history", apis[3].0)).unwrap();
    let point = history.as_array().unwrap().iter().find(|p| p["height"] == lease_height);
    let price = lease["lease"]["fill"]["price"].as_u64().unwrap();
    assert_eq!(point.expect("the fill's clearing in the history")["price"], price);
}
