//! `surplus audit FILE` re-executes every block: ledgers that a dishonest majority forged and
//! signed again (their Merkle roots, links and certificates all consistent) pass the ledger
//! rules, and fail re-execution at the forged block, naming the field; the untouched ledger
//! says it was re-executed.

use surplus_contracts::testutil::{buyer, ledger, reseal, CHAIN};
use surplus_contracts::{Settlement, Tx};
use surplus_ledger::{Entry, EntryKind};

use crate::{audit, export, p, surplus, text};

#[test]
fn an_export_is_re_executed_and_forged_ledgers_fail_at_their_block() {
    let dir = tempfile::tempdir().unwrap();
    let clean = ledger();
    assert!(clean.len() >= 6, "the sample ledger has {} blocks", clean.len());
    let file = export(&clean, dir.path(), "clean");
    let (code, v) = audit(&file);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!((v["verified"].clone(), v["replayed"].clone()), (true.into(), true.into()), "{v}");
    let o = surplus(&["audit", p(&file)]);
    assert!(text(&o).contains("re-executed  every block"), "{}", text(&o));

    // A settlement that pays the provider 10^12 units.
    let mut settled = clean.clone();
    let (h, i) = settled
        .iter()
        .enumerate()
        .find_map(|(h, b)| {
            b.entries.iter().position(|e| e.kind == EntryKind::SETTLEMENT).map(|i| (h, i))
        })
        .expect("the sample ledger settles a lease");
    let mut s = Settlement::decode(&settled[h].entries[i].payload).unwrap();
    s.to_provider = 1_000_000_000_000;
    settled[h].entries[i].payload = s.encode();

    // A transfer of 10^12 units with no signature (a system entry).
    let mut unsigned = clean.clone();
    let t = Tx::Transfer { to: buyer(0).public(), amount: 1_000_000_000_000, seq: 0 };
    unsigned[2].entries.push(Entry::system(t.kind(), t.encode()));

    // A second validator set, after genesis.
    let mut validators = clean.clone();
    let set = clean[0].entries.iter().find(|e| e.kind == EntryKind::VALIDATORS).unwrap().clone();
    validators[4].entries.push(set);

    // An entry of a kind no rule knows, signed by a buyer.
    let mut unknown = clean.clone();
    unknown[3].entries.insert(0, Entry::signed(CHAIN, EntryKind(999), vec![1, 2, 3], &buyer(1)));

    // A state root that no state has.
    let mut root = clean.clone();
    root[5].header.state_root = [7; 32];

    let cases = [
        ("settlement", settled, h as u64, "entries"),
        ("unsigned", unsigned, 2, "entries"),
        ("validators", validators, 4, "entries"),
        ("unknown", unknown, 3, "entry"),
        ("root", root, 5, "header.state_root"),
    ];
    for (name, blocks, height, field) in cases {
        let blocks = reseal(blocks);
        // The ledger rules alone pass it: only re-execution catches it.
        surplus_ledger::verify(
            &mut surplus_ledger::VecSource::new(blocks.clone()),
            &Default::default(),
            &mut surplus_ledger::NoHook,
            &mut |_| {},
        )
        .unwrap_or_else(|f| panic!("{name}: the ledger rules refuse it already: {f}"));
        let (code, v) = audit(&export(&blocks, dir.path(), name));
        assert_eq!(code, Some(1), "{name}: {v}");
        assert_eq!(v["verified"], false, "{name}: {v}");
        let f = &v["failure"];
        println!("{name}: {f}");
        assert_eq!(
            (f["height"].as_u64(), f["field"].as_str()),
            (Some(height), Some(field)),
            "{name}: {v}"
        );
    }
}
