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

/// The consensus WAL of a stopped validator, damaged: a garbled entry or a file cut short of its
/// header stops the start with the file named and what to do (it used to be the engine's panic
/// text, no file named); a deleted one is started over with a warning naming it (it used to
/// start silently), and the node goes on committing.
#[test]
fn a_damaged_consensus_wal_is_named_and_a_deleted_one_is_not_silent() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 1, free_base(10), 200, 500);
    let mut nodes = net.start_all();
    let api = nodes[0].api.clone();
    wait_for("two blocks", MINUTE, || (api.head()?.0 >= 2).then_some(()));
    nodes[0].stop();
    let audited = audit(&nodes[0].dir).expect("the ledger audits");
    let height = audited["report"]["head_height"].as_u64().expect("the audit's head height");
    let dir = nodes[0].dir.clone();
    let wal = dir.join("consensus").join("wal");
    let original = std::fs::read(&wal).expect("the node has a consensus WAL");
    assert!(original.len() >= 12, "the WAL has its header");

    // An entry whose data does not match its CRC; then a file cut inside its header.
    let mut garbled = original[..12].to_vec();
    garbled.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]);
    for (case, bytes) in [("garbled entry", garbled), ("cut header", original[..7].to_vec())] {
        std::fs::write(&wal, &bytes).unwrap();
        let log = tmp.path().join(format!("{}.log", case.replace(' ', "-")));
        let mut node = NodeProc::start_logging_to(&dir, api.base(), &log);
        let exited = wait_for_or_none(MINUTE, || (!node.running()).then_some(()));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(exited.is_some(), "{case}: the node started on a damaged WAL:\n{text}");
        let named = format!("the consensus WAL {} is damaged", wal.display());
        assert!(text.contains(&named), "{case}: the file is not named:\n{text}");
        assert!(text.contains(&format!("mv {0} {0}.damaged", wal.display())), "{case}:\n{text}");
        // Refused, not repaired: the file is as it was.
        assert_eq!(std::fs::read(&wal).unwrap(), bytes, "{case}: the WAL was changed");
    }

    // Deleted: the node starts a new WAL, says so with the file, and goes on committing.
    std::fs::remove_file(&wal).unwrap();
    let log = tmp.path().join("deleted.log");
    nodes[0] = NodeProc::start_logging_to(&dir, api.base(), &log);
    nodes[0].wait_up();
    wait_for("blocks after the restart", MINUTE, || (api.head()?.0 > height + 2).then_some(()));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("the consensus WAL is missing") && text.contains(&wal.display().to_string()),
        "no warning naming the missing WAL:\n{text}"
    );
    nodes[0].stop();
    audit(&dir).unwrap_or_else(|e| panic!("{e}"));
}

/// Issue 21, item 4: a node 10 min ahead had all its proposals rejected and refused valid
/// orders; a node 10 min behind voted against every honest proposal and acknowledged expired
/// orders; neither said anything. Now each node measures its clock against the times of the
/// blocks its peers propose, shows the offset in its status and `/metrics`, warns, and past
/// 10 s refuses submissions with 503 `clock_skew`. dc4 runs with its wall clock 10 min ahead,
/// then 10 min behind (libfaketime).
#[test]
fn a_skewed_clock_is_measured_warned_about_and_refuses_submissions() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 4, free_base(40), 100, 500);
    let spec = |i: usize| {
        let n = &net.file["nodes"][i];
        (std::path::PathBuf::from(n["data_dir"].as_str().unwrap()), n["api"].as_str().unwrap())
    };
    let mut honest: Vec<NodeProc> = (0..3)
        .map(|i| {
            let (dir, api) = spec(i);
            NodeProc::start(&dir, api)
        })
        .collect();
    for n in &honest {
        n.wait_up();
    }
    let apis: Vec<Client> = honest.iter().map(|n| n.api.clone()).collect();
    wait_converged(&apis.iter().collect::<Vec<_>>(), 2, 2 * MINUTE);
    let (market, _) = first_pool(&net.data_dir(0));
    let buyer = net.buyer(0);
    let (dir4, api4) = spec(3);

    for (n, (offset_secs, way)) in [(600i64, "ahead of"), (-600, "behind")].into_iter().enumerate()
    {
        let log = dir4.join(format!("node-{n}.log"));
        let mut skewed = NodeProc::start_with_clock_offset(&dir4, api4, offset_secs, &log);
        skewed.wait_up();
        let want = offset_secs * 1000;
        let got = wait_for(&format!("dc4 to measure its clock {way}"), 2 * MINUTE, || {
            let o = skewed.api.status().ok()?.clock_offset_ms?;
            ((o - want).abs() < 5_000).then_some(o)
        });
        let metrics = skewed.api.metrics().unwrap();
        let gauge: i64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("surplus_clock_offset_ms ")?.trim().parse().ok())
            .expect("the offset in /metrics");
        assert!((gauge - want).abs() < 5_000, "/metrics says {gauge}");
        wait_for("dc4 to warn about its clock", MINUTE, || {
            let text = std::fs::read_to_string(&log).ok()?;
            text.lines()
                .any(|l| l.contains("WARN") && l.contains(&format!(" {way} its peers'")))
                .then_some(())
        });

        // A valid bid: dc4 refuses it, an honest node takes it.
        let bid = one_slot_bid(&market, 1, 5_000_000 + n as u64, 600_000);
        let (entry, _) = surplus_market::SignedOrder::sign(
            net.chain_id(),
            surplus_market::Order::Bid(bid),
            &buyer,
        );
        let (status, code) = refusal("a bid to the skewed node", skewed.api.submit(&entry));
        assert_eq!((status, code.as_str()), (503, "clock_skew"));
        assert_eq!(apis[0].submit(&entry).unwrap(), entry.id());
        // The honest nodes' clocks agree.
        for (i, api) in apis.iter().enumerate() {
            let what = format!("dc{} to measure its clock", i + 1);
            let o = wait_for(&what, MINUTE, || api.status().ok()?.clock_offset_ms);
            assert!(o.abs() < 2_000, "dc{} measures {o} ms", i + 1);
        }
        eprintln!("dc4 {offset_secs:+} s: it measured {got} ms, refused a bid with clock_skew");
        skewed.stop();
    }
    for n in &mut honest {
        n.stop();
    }
}

/// Issue 21, item 2: the faucet numbered its transfers from the committed state plus its
/// pending count, read apart; a dry faucet acknowledged transfers it could not pay, and once
/// one was dropped every later transfer waited for its number (`seq_gap`). Now the node's core
/// owns each of its keys' sequence numbers: the faucet sends one transfer at a time, decided on
/// the committed state and the mempool together, refuses what it cannot pay, and a transfer
/// dropped before others of the same key gets them signed again in order.
#[test]
fn a_dry_faucet_acknowledges_only_what_it_pays_and_its_numbers_never_wedge() {
    use surplus_ledger::SecretKey;
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 1, free_base(10), 200, 1000);
    // The faucet (1,000,000 credits) gives 300,000 a time: it can pay three.
    set_config(&net.data_dir(0).join("config.toml"), "amount", "300000000000");
    let mut nodes = net.start_all();
    let api = nodes[0].api.clone();
    let accounts: Vec<_> =
        (0..10u8).map(|i| SecretKey::from_seed([0x70 + i; 32]).public()).collect();
    // Ten new accounts ask at once.
    let answers: Vec<_> = std::thread::scope(|s| {
        let asks: Vec<_> = accounts
            .iter()
            .map(|a| {
                let api = api.clone();
                s.spawn(move || api.faucet(a))
            })
            .collect();
        asks.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut granted = Vec::new();
    let mut refused = std::collections::BTreeMap::<String, usize>::new();
    for a in answers {
        match a {
            Ok(g) => granted.push(g),
            Err(e) => {
                *refused.entry(refusal("a faucet request", Err::<(), _>(e)).1).or_default() += 1
            }
        }
    }
    eprintln!("faucet: {} granted, refused {refused:?}", granted.len());
    assert_eq!(granted.len(), 3, "it acknowledged more than it can pay: {refused:?}");
    assert_eq!(refused.get("faucet_spent"), Some(&7), "{refused:?}");
    // Every acknowledged transfer commits, and pays its account once.
    for g in &granted {
        wait_for("an acknowledged faucet transfer to commit", MINUTE, || {
            let s = api.submission(&g.entry).ok()?;
            matches!(s.submission, surplus_api::Submission::Committed { .. }).then_some(())
        });
        assert_eq!(api.account(&g.account).unwrap().balance, 300_000_000_000);
    }
    // Later: dry, not a sequence gap.
    let late = api.faucet(&SecretKey::from_seed([0x7f; 32]).public());
    assert_eq!(refusal("a late faucet request", late), (409, "faucet_spent".to_owned()));
    nodes[0].stop();
}

/// Issue 21, item 2: with a faucet on every node, an account asked of all of them at once was
/// funded 2–4 times. Now the nodes take turns per account (an order each computes alike) and
/// a node whose turn comes later sees the first one's transfer pending and sends none.
#[test]
fn the_faucets_of_several_nodes_fund_an_account_once() {
    use surplus_ledger::SecretKey;
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 4, free_base(40), 100, 1000);
    let mut nodes = net.start_all();
    let apis: Vec<Client> = nodes.iter().map(|n| n.api.clone()).collect();
    wait_converged(&apis.iter().collect::<Vec<_>>(), 2, 2 * MINUTE);
    let accounts: Vec<_> =
        (0..20u8).map(|i| SecretKey::from_seed([0x90 + i; 32]).public()).collect();
    // Every account asks every node at once: 80 requests.
    let granted: usize = std::thread::scope(|s| {
        let asks: Vec<_> = accounts
            .iter()
            .flat_map(|a| apis.iter().map(move |api| (a, api.clone())))
            .map(|(a, api)| s.spawn(move || api.faucet(a).is_ok()))
            .collect();
        asks.into_iter().map(|h| h.join().unwrap_or(false)).filter(|ok| *ok).count()
    });
    let amount = 1_000 * 1_000_000;
    for a in &accounts {
        let balance = wait_for("the account's credits", MINUTE, || {
            let b = apis[0].account(a).ok()?.balance;
            (b > 0).then_some(b)
        });
        assert_eq!(balance, amount, "funded more than once");
    }
    // Later blocks bring no second transfer.
    let h = apis[0].status().unwrap().height;
    wait_for("two more blocks", MINUTE, || (apis[0].status().ok()?.height >= h + 2).then_some(()));
    for a in &accounts {
        assert_eq!(apis[0].account(a).unwrap().balance, amount, "funded more than once");
    }
    eprintln!("faucets: 80 requests, {granted} granted, each of 20 accounts funded once");
    assert_eq!(granted, 20);
    for n in &mut nodes {
        n.stop();
    }
}

/// Issue 21, item 6: bit flips in a stopped node's mempool journal lost 190 of 200
/// acknowledged entries with the log saying `kept=10 dropped=0`. The journal is now a log of
/// checksummed records (`DIR/journal.log`): a damaged record costs only itself, is reported
/// by count and byte offset, and everything else is kept. Two of four validators are stopped
/// so that nothing commits: 200 acknowledged bids wait in dc1's journal when it is killed.
#[test]
fn a_damaged_journal_is_reported_and_peers_give_back_what_it_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 4, free_base(40), 100, 1000);
    let mut nodes = net.start_all();
    let apis: Vec<Client> = nodes.iter().map(|n| n.api.clone()).collect();
    wait_converged(&apis.iter().collect::<Vec<_>>(), 2, 2 * MINUTE);
    nodes[2].stop();
    nodes[3].stop();
    let (market, _) = first_pool(&net.data_dir(0));
    let buyer = net.buyer(1);
    let mut ids = Vec::new();
    for nonce in 0..200u64 {
        let bid = one_slot_bid(&market, 1, 40_000 + nonce, 3_600_000);
        let (e, _) = surplus_market::SignedOrder::sign(
            net.chain_id(),
            surplus_market::Order::Bid(bid),
            &buyer,
        );
        ids.push(wait_for("a bid accepted", MINUTE, || apis[0].submit(&e).ok()));
        // The buyer sends it to dc2 too, so that the peer the journal's damage is repaired
        // from holds every bid whatever gossip between the two did (gossip's own delivery is
        // the hostile-peer and partition tests' business).
        let _ = apis[1].submit(&e);
    }
    let pending = |api: &Client| {
        ids.iter()
            .filter(|id| {
                api.submission(id)
                    .is_ok_and(|s| matches!(s.submission, surplus_api::Submission::Pending { .. }))
            })
            .count()
    };
    assert_eq!(pending(&apis[0]), 200, "nothing commits without a quorum");
    // The peer that will give them back holds them all (gossip has reached it).
    let held = wait_for_or_none(MINUTE, || (pending(&apis[1]) == 200).then_some(()));
    assert!(
        held.is_some(),
        "dc2 holds {} of the 200 bids:\n{}",
        pending(&apis[1]),
        nodes[1].log_tail()
    );
    nodes[0].kill();

    // Ten records of the journal damaged (a bit flipped in each), spread over the file.
    let path = net.data_dir(0).join("journal.log");
    let mut bytes = std::fs::read(&path).expect("the journal file");
    let per = bytes.len() / 200;
    for r in (5..200).step_by(20) {
        bytes[r * per + per / 2] ^= 0x10;
    }
    std::fs::write(&path, &bytes).unwrap();
    let (dir, base) = (net.data_dir(0), apis[0].base().to_owned());
    let log = dir.join("node-damaged.log");
    nodes[0] = NodeProc::start_logging_to(&dir, &base, &log);
    nodes[0].wait_up();
    let kept = pending(&nodes[0].api);
    let text = without_colours(&std::fs::read_to_string(&log).unwrap());
    let warn = text
        .lines()
        .find(|l| l.contains("journal of acknowledged entries is damaged"))
        .unwrap_or_else(|| panic!("no warning about the journal:\n{}", log_tail(&log, 30)));
    eprintln!("journal: {kept} of 200 bids pending after the restart; {warn}");
    // The journal also holds the node's own transactions (the bond its offers need).
    assert!(warn.contains("damaged=10"), "{warn}");
    assert!(kept >= 190, "only the damaged records may be lost: {kept} of 200 pending");
    // The node asks its peers (dc2 holds all 200) for their pending entries: every bid is
    // pending on it again, well before peers gossip waiting entries again (45 s).
    let started = std::time::Instant::now();
    let back =
        wait_for_or_none(Duration::from_secs(30), || (pending(&nodes[0].api) == 200).then_some(()));
    assert!(
        back.is_some(),
        "the lost bids did not come back from a peer ({} of 200 pending):\n{}",
        pending(&nodes[0].api),
        log_tail(&log, 60)
    );
    let text = without_colours(&std::fs::read_to_string(&log).unwrap());
    let asked = text
        .lines()
        .find(|l| l.contains("asked peers for their pending entries"))
        .unwrap_or_else(|| panic!("the node did not ask its peers:\n{}", log_tail(&log, 30)));
    eprintln!(
        "journal: all 200 pending again {:.1} s after the start; {asked}",
        started.elapsed().as_secs_f64()
    );
    for n in &mut nodes {
        n.stop();
    }
}
