//! The audit replays a real ledger store block by block: a clean ledger passes; a block whose
//! entries or state root disagree with re-execution is caught at its height.

use surplus_contracts::{BlockMaker, Replay, Tx};
use surplus_ledger::testutil::{certificate, key};
use surplus_ledger::{Block, NoHook};
use surplus_market::HOUR_MS;
use surplus_store as store;
use surplus_store::Store;

use crate::helpers::*;

fn certify(mut b: Block) -> Block {
    let validators: Vec<_> = (0..4).map(|i| key("validator", i)).collect();
    if b.header.height > 0 {
        b.certificate =
            certificate(CHAIN, b.header.height, 0, &b.header.hash(), &validators, &[0, 1, 2]);
    }
    b
}

/// Genesis, then blocks with offers, bids, a transfer, a renewal and settlements.
fn chain() -> Vec<Block> {
    let (g, mut maker) = BlockMaker::genesis(CHAIN, &genesis(100, 1000), T0).unwrap();
    let mut blocks = vec![g];
    let proposer = key("validator", 0).public();
    let mut now = T0;
    let (b, _) = maker
        .next(
            &[
                offer(&provider(0), 5, 20, 100, 1, now),
                bid(&buyer(0), 2, 10, 30, 1, now),
                bid(&buyer(1), 3, 5, 25, 1, now),
            ],
            now,
            proposer,
        )
        .unwrap();
    blocks.push(certify(b));
    now += HOUR_MS;
    let lease = maker.state.leases().next().unwrap().id;
    let (b, _) = maker
        .next(
            &[
                tx(&buyer(2), Tx::Transfer { to: buyer(0).public(), amount: 1_000, seq: 0 }),
                tx(&buyer(0), Tx::Renew { lease, hours: 3, seq: 0 }),
            ],
            now,
            proposer,
        )
        .unwrap();
    blocks.push(certify(b));
    for _ in 0..4 {
        now += 2 * HOUR_MS;
        let (b, _) = maker.next(&[], now, proposer).unwrap();
        blocks.push(certify(b));
    }
    blocks
}

#[test]
fn a_clean_ledger_replays_and_a_tampered_block_is_caught_at_its_height() {
    let blocks = chain();
    assert!(blocks
        .iter()
        .any(|b| b.entries.iter().any(|e| e.kind == surplus_ledger::EntryKind::SETTLEMENT)));
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), store::Config::default()).unwrap();
    s.append_group(&blocks).unwrap();
    let mut replay = Replay::new();
    let report = s.audit(&Default::default(), &mut replay, &mut |_| {}).unwrap();
    assert_eq!(report.blocks, blocks.len() as u64);
    let st = replay.state().unwrap();
    assert_eq!(st.total_credits(), u128::from(st.supply()));
    // Without the hook the ledger checks pass too.
    s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();

    // A block whose fill price was raised, with a consistent header and certificate: the ledger
    // checks pass, the replay does not.
    let mut bad = blocks.clone();
    let fill_pos =
        bad[1].entries.iter().position(|e| e.kind == surplus_ledger::EntryKind::FILL).unwrap();
    let (mut fill, fill_height) =
        surplus_contracts::decode_fill(&bad[1].entries[fill_pos].payload).unwrap();
    fill.price += 1;
    bad[1].entries[fill_pos].payload = surplus_contracts::encode_fill(&fill, fill_height);
    let bad = reseal(bad);
    let f = surplus_ledger::verify(
        &mut surplus_ledger::VecSource::new(bad.clone()),
        &Default::default(),
        &mut Replay::new(),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!((f.height, f.field.as_str()), (1, "entries"), "{f}");
    assert!(surplus_ledger::verify(
        &mut surplus_ledger::VecSource::new(bad),
        &Default::default(),
        &mut NoHook,
        &mut |_| {}
    )
    .is_ok());

    // A block whose state root was changed.
    let mut bad = blocks.clone();
    bad[3].header.state_root[0] ^= 1;
    let bad = reseal(bad);
    let f = surplus_ledger::verify(
        &mut surplus_ledger::VecSource::new(bad),
        &Default::default(),
        &mut Replay::new(),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!((f.height, f.field.as_str()), (3, "header.state_root"), "{f}");
}

/// Recomputes Merkle roots, links and certificates after an edit, as a dishonest majority could.
fn reseal(mut blocks: Vec<Block>) -> Vec<Block> {
    let mut frontier = surplus_ledger::Frontier::new();
    let mut prev = [0u8; 32];
    for b in &mut blocks {
        let mut nodes = Vec::new();
        for e in &b.entries {
            frontier.push::<surplus_ledger::Blake3>(e.leaf_hash(), &mut nodes);
        }
        b.header.tree_size = frontier.size();
        b.header.merkle_root = frontier.root::<surplus_ledger::Blake3>();
        b.header.prev_hash = prev;
        *b = certify(b.clone());
        prev = b.header.hash();
    }
    blocks
}
