//! Golden vectors: the same inputs give the same bytes, hashes and roots on every machine and
//! every run. The expected values live in `docs/vectors/ledger-v1.json`; regenerating them is a
//! deliberate act: `SURPLUS_REGEN_VECTORS=1 cargo test -p surplus-store --test it golden`.

use serde_json::{json, Value};
use surplus_ledger::testutil::{key, TestChain};
use surplus_ledger::{vote_bytes, Blake3, Entry, EntryKind, Hasher, MemoryTree, Sha256, VoteKind};
use surplus_store as store;
use surplus_store::Store;

fn vectors_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors/ledger-v1.json")
}

fn h(b: impl AsRef<[u8]>) -> String {
    hex::encode(b)
}

fn compute() -> Value {
    let mut chain = TestChain::new("surplus-golden", 4, 3);
    let author = key("user", 1);
    let order = Entry::signed(
        "surplus-golden",
        EntryKind::ORDER,
        b"example order payload".to_vec(),
        &author,
    );
    let system = Entry::system(EntryKind::FILL, vec![1, 2, 3, 4]);
    let mut more = chain.signed_entries(3, 40);
    more.insert(0, order.clone());
    more.push(system.clone());
    chain.push_block(more);
    let e2 = chain.signed_entries(2, 10);
    chain.push_block(e2);
    chain.push_block(vec![]);

    let entries: Vec<Value> = [&order, &system]
        .iter()
        .map(|e| {
            let signing = match &e.auth {
                surplus_ledger::Auth::Signed { author, .. } => {
                    h(Entry::signing_bytes("surplus-golden", e.kind, author, &e.payload))
                }
                surplus_ledger::Auth::System => String::new(),
            };
            json!({
                "kind": e.kind.0,
                "encoding": h(e.encode()),
                "signing_bytes": signing,
                "id": h(e.id()),
                "leaf_hash": h(Blake3::leaf(&e.encode())),
            })
        })
        .collect();

    let blocks: Vec<Value> = chain
        .blocks
        .iter()
        .map(|b| {
            let hash = b.header.hash();
            json!({
                "height": b.header.height,
                "header": h(b.header.encode()),
                "header_hash": h(hash),
                "merkle_root": h(b.header.merkle_root),
                "tree_size": b.header.tree_size,
                "precommit_bytes": h(vote_bytes("surplus-golden", b.header.height, 0, VoteKind::Precommit, Some(&hash))),
                "block": h(b.encode()),
            })
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("db"), store::Config::default()).unwrap();
    for b in &chain.blocks {
        s.append(b).unwrap();
    }
    let node = key("node", 0);
    let cp = s.checkpoint(None).unwrap().sign(&node);
    let proof = s.prove_inclusion(4, None).unwrap();
    let consistency = s.prove_consistency(3, None).unwrap();
    let export = dir.path().join("golden.export");
    s.export(&export, &mut |_, _| {}).unwrap();

    // Small Merkle trees over the leaves "0", "1", ... with both hashes.
    let trees: Vec<Value> = [0usize, 1, 2, 3, 5, 8]
        .iter()
        .map(|&n| {
            let leaves: Vec<Vec<u8>> = (0..n).map(|i| i.to_string().into_bytes()).collect();
            let mut b = MemoryTree::<Blake3>::new();
            let mut s2 = MemoryTree::<Sha256>::new();
            for l in &leaves {
                b.push(Blake3::leaf(l));
                s2.push(Sha256::leaf(l));
            }
            json!({ "leaves": n, "blake3_root": h(b.root()), "sha256_root": h(s2.root()) })
        })
        .collect();

    json!({
        "description": "Surplus ledger format v1 golden vectors; see docs/ledger-format.md. Keys are derived as ed25519 seeds blake3(\"surplus/test-key/\" || label || u64 index).",
        "keys": [
            { "label": "user", "index": 1, "seed": h(author.seed()), "public": author.public().to_string() },
            { "label": "node", "index": 0, "seed": h(node.seed()), "public": node.public().to_string() },
            { "label": "validator", "index": 0, "seed": h(chain.validators[0].seed()), "public": chain.validators[0].public().to_string() },
        ],
        "entries": entries,
        "blocks": blocks,
        "checkpoint": {
            "signing_bytes": h(cp.checkpoint.signing_bytes()),
            "signed_encoding": h(cp.encode()),
            "signature": cp.signature.to_string(),
        },
        "inclusion_proof": { "index": proof.index, "tree_size": proof.tree_size, "path": proof.path.iter().map(h).collect::<Vec<_>>() },
        "consistency_proof": { "old_size": consistency.old_size, "new_size": consistency.new_size, "path": consistency.path.iter().map(h).collect::<Vec<_>>() },
        "export_blake3": h(blake3::hash(&std::fs::read(&export).unwrap()).as_bytes()),
        "merkle_trees": trees,
    })
}

#[test]
fn golden_vectors_are_unchanged() {
    let got = compute();
    // Computing twice in one run gives the same bytes (no hidden randomness).
    assert_eq!(got, compute());
    let path = vectors_path();
    if std::env::var_os("SURPLUS_REGEN_VECTORS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        eprintln!("regenerated {}", path.display());
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let want: Value = serde_json::from_str(&text).unwrap();
    assert!(
        got == want,
        "the ledger format changed: {} no longer matches. If the change is deliberate, bump the \
         format version, regenerate with SURPLUS_REGEN_VECTORS=1 and update docs/ledger-format.md.\n\
         got: {}",
        path.display(),
        serde_json::to_string_pretty(&got).unwrap()
    );
}
