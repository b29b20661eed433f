//! Snapshots, state sync and retention with real node processes: three validators write a
//! snapshot every 20 blocks, two of them keep only the newest blocks. A fourth node started on
//! an empty data dir with `--sync snapshot` starts from a peer's snapshot, follows the chain to
//! the same blocks (so to the same state roots), answers the read endpoints as an archive node
//! does, and audits from its snapshot. A pruned validator answers `not_held` for a block it
//! dropped, restarts from its snapshot, catches up and audits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use surplus_client::Client;
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);
const SNAPSHOT_EVERY: u64 = 20;

/// GET `path` on `base`: the status and the JSON body.
fn get(base: &str, path: &str) -> (u16, Value) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let (status, body) = match agent.get(&format!("{base}{path}")).call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("GET {base}{path}: {e}"),
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Whether node `dir` holds a whole snapshot of at least `height`.
fn snapshot_at_least(dir: &Path, height: u64) -> Option<u64> {
    let mut heights: Vec<u64> = std::fs::read_dir(dir.join("snapshots"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("manifest.bin").is_file())
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    heights.sort_unstable();
    heights.last().copied().filter(|h| *h >= height)
}

/// The read endpoints whose answers depend on the live state only.
fn reads(keys: &[String], market: &str) -> Vec<String> {
    let mut out = vec![
        "/api/v1/chain".to_owned(),
        "/api/v1/markets".into(),
        format!("/api/v1/book?market={market}"),
    ];
    for k in keys {
        out.push(format!("/api/v1/accounts/{k}"));
        out.push(format!("/api/v1/accounts/{k}/proof"));
        out.push(format!("/api/v1/orders?account={k}"));
        out.push(format!("/api/v1/leases?account={k}"));
    }
    out
}

/// Reads every path from both nodes at one head height (retried until both stayed at the same
/// height throughout); returns the paths whose answers differ, and that height.
fn compare_at_one_height(a: &Client, b: &Client, paths: &[String]) -> (Vec<String>, u64) {
    for _ in 0..200 {
        let (ha, hb) = (a.head().map(|h| h.0), b.head().map(|h| h.0));
        if ha.is_none() || ha != hb {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let answers: Vec<((u16, Value), (u16, Value))> =
            paths.iter().map(|p| (get(a.base(), p), get(b.base(), p))).collect();
        if a.head().map(|h| h.0) != ha || b.head().map(|h| h.0) != ha {
            continue;
        }
        let differ = paths
            .iter()
            .zip(&answers)
            .filter(|(_, (x, y))| x != y || x.0 != 200)
            .map(|(p, (x, y))| format!("{p}: {} {} vs {} {}", x.0, x.1, y.0, y.1))
            .collect();
        return (differ, ha.unwrap_or(0));
    }
    panic!("the two nodes never stayed at one height long enough to compare them");
}

#[test]
fn a_node_synced_from_a_snapshot_and_a_pruned_node_serve_and_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base(60);
    let net = Devnet::init_with(tmp.path(), 3, base, 50, 400);
    for i in 0..3 {
        let config = net.data_dir(i).join("config.toml");
        set_config(&config, "snapshot_every", &SNAPSHOT_EVERY.to_string());
        if i > 0 {
            set_config(&config, "retain_blocks", "10");
        }
    }
    let mut nodes = net.start_all();
    let apis: Vec<Client> = nodes.iter().map(|n| n.api.clone()).collect();
    let (market, reserve) = first_pool(&net.data_dir(0));
    wait_for_offer(&apis[0], &market, &net.node_key(0));
    let load = OrderLoad::with_fills(
        &net,
        &apis,
        &market,
        15,
        Duration::from_millis(40),
        vec![(market.clone(), reserve)],
    );
    wait_for("60 blocks and 100 orders", 3 * MINUTE, || {
        (apis[0].head()?.0 >= 3 * SNAPSHOT_EVERY && load.acknowledged() >= 100).then_some(())
    });
    let (_, acked) = load.finish();
    assert!(acked.iter().any(|a| a.fills), "some bids fill into leases");
    let snap = wait_for("every validator to hold a snapshot", MINUTE, || {
        let hs: Option<Vec<u64>> =
            (0..3).map(|i| snapshot_at_least(&net.data_dir(i), 2 * SNAPSHOT_EVERY)).collect();
        hs.map(|hs| hs.into_iter().min().unwrap_or(0))
    });

    // A pruned validator no longer serves its oldest blocks, and says why.
    let (status, body) = get(apis[1].base(), "/api/v1/blocks/2");
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_held")), "{body}");
    let (status, body) = get(apis[0].base(), "/api/v1/blocks/2");
    assert_eq!(status, 200, "the archive serves every block: {body}");
    let (status, body) = get(apis[1].base(), "/api/v1/export");
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_held")), "{body}");

    // A fourth node joins on an empty data dir with --sync snapshot.
    let (d4, api4) = net.join_node(tmp.path(), "dc4", base + 50);
    let mut n4 = NodeProc::start_with(&d4, &api4, None, &["--sync", "snapshot"]);
    n4.wait_up();
    let log = std::fs::read_to_string(d4.join("node.log")).unwrap_or_default();
    assert!(log.contains("the node starts from a snapshot"), "{}", n4.log_tail());
    let synced_from = snapshot_at_least(&d4, snap).expect("the synced node holds the snapshot");
    let (status, body) = get(n4.api.base(), "/api/v1/blocks/1");
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_held")), "{body}");

    // It follows the chain: the same blocks, so the same state roots, as the validators.
    let head = apis[0].head().unwrap().0;
    let all: Vec<&Client> = apis.iter().chain(std::iter::once(&n4.api)).collect();
    wait_converged(&all, head + 5, 2 * MINUTE);
    assert!(synced_from < head + 5);

    // It answers the state's read endpoints as the archive node does.
    let mut keys: Vec<String> = (0..3).map(|i| hex::encode(net.buyer(i).public().0)).collect();
    keys.extend((0..3).map(|i| hex::encode(net.node_key(i).0)));
    let (differ, at) = compare_at_one_height(&apis[0], &n4.api, &reads(&keys, &market.to_string()));
    assert!(differ.is_empty(), "at height {at}, the synced node differs:\n{}", differ.join("\n"));
    let with_leases = keys[..3].iter().any(|k| {
        let leases = get(n4.api.base(), &format!("/api/v1/leases?account={k}")).1;
        leases["leases"].as_array().is_some_and(|l| !l.is_empty())
    });
    assert!(with_leases, "the compared state holds leases");

    // The pruned validator restarts from its snapshot and catches up.
    let d2: PathBuf = nodes[1].dir.clone();
    nodes[1].stop();
    nodes[1] = NodeProc::start(&d2, apis[1].base());
    nodes[1].wait_up();
    let head = apis[0].head().unwrap().0;
    wait_converged(&all, head + 3, 2 * MINUTE);

    for n in nodes.iter_mut().chain(std::iter::once(&mut n4)) {
        n.stop();
    }
    // Both audit from their snapshots, and say so; the archive from genesis.
    for d in [&d2, &d4] {
        let report = audit(d).unwrap_or_else(|e| panic!("{e}"));
        let from = report["replayed_from"].as_u64().unwrap_or(0);
        assert!(from > 0, "{} re-executed from its snapshot: {report}", d.display());
        assert!(report["report"]["from_height"].as_u64().unwrap_or(0) > from, "{report}");
    }
    let report = audit(&net.data_dir(0)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report["replayed_from"].as_u64(), Some(0), "{report}");
}
