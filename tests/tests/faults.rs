//! Fault behaviour of a real 4-validator consortium on loopback (the start of the faults
//! harness): safety over liveness when a quorum is missing.

use std::time::Duration;

use surplus_client::Client;
use surplus_contracts::Tx;
use surplus_ledger::Entry;
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

/// With two of four validators down no block is committed, even with work waiting; when one
/// returns the chain resumes, commits the waiting transfer, and every node agrees.
#[test]
fn two_of_four_down_commits_nothing_and_one_returning_resumes_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init(tmp.path(), 4, free_base(40));
    let mut nodes = net.start_all();
    let apis: Vec<Client> = nodes.iter().map(|n| n.api.clone()).collect();
    let all: Vec<&Client> = apis.iter().collect();
    wait_converged(&all, 3, 2 * MINUTE);

    // Two validators stop: the other two cannot make a quorum of three.
    nodes[2].stop();
    nodes[3].stop();
    std::thread::sleep(Duration::from_secs(1));
    let stalled = apis[0].head().unwrap().0;

    // Work arrives and is accepted into the mempool, but nothing commits.
    let chain_id = net.chain_id();
    let buyer = net.buyer(0);
    let to = net.buyer(1).public();
    let before = apis[0].account(&to).unwrap().balance;
    let seq = apis[0].account(&buyer.public()).unwrap().seq;
    let tx = Tx::Transfer { to, amount: 1_234, seq };
    let entry = Entry::signed(chain_id, tx.kind(), tx.encode(), &buyer);
    assert_eq!(apis[0].submit(&entry).unwrap(), entry.id());
    std::thread::sleep(Duration::from_secs(4));
    for a in &apis[..2] {
        let (h, _) = a.head().unwrap();
        assert_eq!(h, stalled, "{} committed a block without a quorum", a.base());
    }
    assert_eq!(apis[0].account(&to).unwrap().balance, before);

    // One returns: three of four make a quorum again and the transfer commits everywhere.
    let d3 = nodes[2].dir.clone();
    nodes[2] = NodeProc::start(&d3, apis[2].base());
    nodes[2].wait_up();
    for a in &apis[..3] {
        wait_for("the transfer to commit", 2 * MINUTE, || {
            (a.account(&to).ok()?.balance == before + 1_234).then_some(())
        });
    }
    let three: Vec<&Client> = apis[..3].iter().collect();
    let (h, _) = wait_converged(&three, stalled + 1, 2 * MINUTE);
    assert!(h > stalled);

    // The fourth returns and catches up to the same chain.
    let d4 = nodes[3].dir.clone();
    nodes[3] = NodeProc::start(&d4, apis[3].base());
    nodes[3].wait_up();
    wait_converged(&all, h, 2 * MINUTE);
    for n in &mut nodes {
        n.stop();
    }
    for i in 1..=4 {
        audit(&net.dir.join(format!("dc{i}"))).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// An entry the node acknowledged (HTTP 202) survives a SIGKILL before any block holds it: the
/// node journals it durably before answering and re-admits it at restart. One node, so no peer
/// holds a gossiped copy; a long batch interval, so the kill comes before the block.
#[test]
fn an_acknowledged_entry_survives_a_crash_before_its_block() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 1, free_base(10), 5_000, 60_000);
    let mut nodes = net.start_all();
    let api = nodes[0].api.clone();
    wait_for("the first block", MINUTE, || (api.head()?.0 >= 1).then_some(()));
    let buyer = net.buyer(0);
    let to = net.buyer(1).public();
    let before = api.account(&to).unwrap().balance;
    let seq = api.account(&buyer.public()).unwrap().seq;
    let tx = Tx::Transfer { to, amount: 777, seq };
    let entry = Entry::signed(net.chain_id(), tx.kind(), tx.encode(), &buyer);
    let height = api.head().unwrap().0;
    assert_eq!(api.submit(&entry).unwrap(), entry.id());
    nodes[0].kill();
    let dir = nodes[0].dir.clone();
    nodes[0] = NodeProc::start(&dir, api.base());
    nodes[0].wait_up();
    wait_for("the acknowledged transfer to commit after the crash", 2 * MINUTE, || {
        (api.account(&to).ok()?.balance == before + 777).then_some(())
    });
    assert!(api.head().unwrap().0 > height);
    nodes[0].stop();
    audit(&dir).unwrap_or_else(|e| panic!("{e}"));
}
