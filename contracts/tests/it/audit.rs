//! The audit replays a real ledger store block by block: a clean ledger passes; a block whose
//! entries or state root disagree with re-execution is caught at its height.

use surplus_contracts::Replay;
use surplus_ledger::NoHook;
use surplus_store as store;
use surplus_store::Store;

use crate::helpers::*;

#[test]
fn a_clean_ledger_replays_and_a_tampered_block_is_caught_at_its_height() {
    let blocks = ledger();
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
