//! Fault behaviour of a real 4-validator consortium on loopback (the start of the faults
//! harness): safety over liveness when a quorum is missing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use surplus_contracts::Tx;
use surplus_ledger::Entry;
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

/// With two of four validators down no block is committed, even with work waiting; when one
/// returns the chain resumes, commits the waiting transfer, and every node agrees.
#[test]
fn two_of_four_down_commits_nothing_and_one_returning_resumes_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let base = free_base(40);
    let out = Command::new(surplus_bin())
        .args(["devnet", "--init-only", "--nodes", "4", "--batch-interval-ms", "50"])
        .args(["--heartbeat-ms", "100", "--base-port", &base.to_string()])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("devnet.json")).unwrap()).unwrap();
    let mut nodes: Vec<NodeProc> = (0..4)
        .map(|i| {
            let n = &file["nodes"][i];
            NodeProc::start(Path::new(n["data_dir"].as_str().unwrap()), n["api"].as_str().unwrap())
        })
        .collect();
    for n in &nodes {
        n.wait_up();
    }
    let apis: Vec<Api> = nodes.iter().map(|n| n.api.clone()).collect();
    let all: Vec<&Api> = apis.iter().collect();
    wait_converged(&all, 3, 2 * MINUTE);

    // Two validators stop: the other two cannot make a quorum of three.
    nodes[2].stop();
    nodes[3].stop();
    std::thread::sleep(Duration::from_secs(1));
    let stalled = apis[0].head().unwrap().0;

    // Work arrives and is accepted into the mempool, but nothing commits.
    let chain_id = file["chain_id"].as_str().unwrap();
    let buyer = read_key(Path::new(file["buyers"][0]["key_file"].as_str().unwrap()));
    let to = read_key(Path::new(file["buyers"][1]["key_file"].as_str().unwrap())).public();
    let before = apis[0].account(&to).unwrap().0;
    let seq = apis[0].account(&buyer.public()).unwrap().1;
    let tx = Tx::Transfer { to, amount: 1_234, seq };
    let entry = Entry::signed(chain_id, tx.kind(), tx.encode(), &buyer);
    let (code, body) = apis[0].submit(&entry).unwrap();
    assert_eq!(code, 202, "{body}");
    std::thread::sleep(Duration::from_secs(4));
    for a in &apis[..2] {
        let (h, _) = a.head().unwrap();
        assert_eq!(h, stalled, "{} committed a block without a quorum", a.0);
    }
    assert_eq!(apis[0].account(&to).unwrap().0, before);

    // One returns: three of four make a quorum again and the transfer commits everywhere.
    let d3 = nodes[2].dir.clone();
    nodes[2] = NodeProc::start(&d3, &apis[2].0);
    nodes[2].wait_up();
    for a in &apis[..3] {
        wait_for("the transfer to commit", 2 * MINUTE, || {
            (a.account(&to).ok()?.0 == before + 1_234).then_some(())
        });
    }
    let three: Vec<&Api> = apis[..3].iter().collect();
    let (h, _) = wait_converged(&three, stalled + 1, 2 * MINUTE);
    assert!(h > stalled);

    // The fourth returns and catches up to the same chain.
    let d4 = nodes[3].dir.clone();
    nodes[3] = NodeProc::start(&d4, &apis[3].0);
    nodes[3].wait_up();
    wait_converged(&all, h, 2 * MINUTE);
    for n in &mut nodes {
        n.stop();
    }
    for i in 1..=4 {
        audit(&dir.join(format!("dc{i}"))).unwrap_or_else(|e| panic!("{e}"));
    }
}
