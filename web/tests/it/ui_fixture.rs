//! The proof bundle fixture of the browser verifier's tests (`web/ui/tests/verify.test.mjs`):
//! a small real ledger (genesis, an offer and a bid, then the fill the auction made of them),
//! the fill's inclusion proof against a node-signed checkpoint, the header and its commit
//! certificate. `SURPLUS_REGENERATE=1` rewrites `web/ui/tests/fixtures/proof-bundle.json`;
//! otherwise the committed file must be what this test builds, and must verify in Rust.

use std::path::PathBuf;

use surplus_ledger::bundle::ProofBundle;
use surplus_ledger::merkle::{prove_inclusion, Blake3, MemoryTree};
use surplus_ledger::testutil::{key, TestChain};
use surplus_ledger::{Entry, EntryKind, PublicKey, ValidatorSet};
use surplus_market::{Bid, Fill, FillRule, Market, Offer, Order, SignedOrder, HOUR_MS};

const CHAIN: &str = "surplus-fixture";

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ui/tests/fixtures/proof-bundle.json")
}

/// The fixture: the bundle, the validator set, the lease id (the fill entry's id).
fn build() -> serde_json::Value {
    let mut chain = TestChain::new(CHAIN, 4, 2);
    let t0 = chain.blocks[0].header.timestamp_ms;
    let market = Market::new("gpu.a100", "us-east-b");
    let provider = chain.users[0].clone();
    let buyer = chain.users[1].clone();
    let offer = Order::Offer(Offer {
        market: market.clone(),
        slots: 4,
        from_ms: t0,
        until_ms: t0 + 48 * HOUR_MS,
        reserve: 2_000_000,
        min_hours: 1,
        expiry_ms: t0 + 24 * HOUR_MS,
        nonce: 1,
    });
    let bid = Order::Bid(Bid {
        market: market.clone(),
        slots: 2,
        hours: 3,
        limit: 2_500_000,
        earliest_ms: t0,
        latest_ms: t0 + HOUR_MS,
        fill: FillRule::AllOrNone,
        expiry_ms: t0 + HOUR_MS,
        nonce: 1,
    });
    let (offer_entry, _) = SignedOrder::sign(CHAIN, offer, &provider);
    let (bid_entry, _) = SignedOrder::sign(CHAIN, bid, &buyer);
    chain.push_block(vec![offer_entry.clone()]);
    chain.push_block(vec![bid_entry.clone()]);
    let height = chain.blocks.len() as u64;
    let start_ms = t0 + height * 500;
    let fill = Fill {
        bid: bid_entry.id(),
        offer: offer_entry.id(),
        buyer: buyer.public(),
        provider: provider.public(),
        market,
        slots: 2,
        start_ms,
        end_ms: start_ms + 3 * HOUR_MS,
        price: 2_000_000,
    };
    let fill_entry = Entry::system(EntryKind::FILL, surplus_contracts::encode_fill(&fill, height));
    chain.push_block(vec![fill_entry.clone()]);
    // Two more blocks, so that the proof is against a later checkpoint and has a border.
    let more = chain.signed_entries(3, 40);
    chain.push_block(more);
    let more = chain.signed_entries(2, 40);
    chain.push_block(more);

    let mut tree = MemoryTree::<Blake3>::new();
    let mut index = None;
    for e in chain.blocks.iter().flat_map(|b| &b.entries) {
        if *e == fill_entry {
            index = Some(tree.len());
        }
        tree.push(e.leaf_hash());
    }
    let index = index.expect("the fill is in the chain");
    let head = chain.blocks.last().expect("blocks").clone();
    let proof = prove_inclusion::<Blake3, _>(&tree, index, tree.len()).expect("proof");
    let checkpoint = surplus_ledger::Checkpoint {
        chain_id: CHAIN.into(),
        height: head.header.height,
        tree_size: head.header.tree_size,
        root: head.header.merkle_root,
        header_hash: head.header.hash(),
    };
    let signed = checkpoint.clone().sign(&key("node", 0));
    let bundle = ProofBundle::new(
        height,
        &fill_entry,
        &proof,
        checkpoint,
        Some(&signed),
        head.header.clone(),
        head.certificate.clone(),
    );
    let validators: Vec<PublicKey> = chain.validators.iter().map(|k| k.public()).collect();
    let set = ValidatorSet::new(validators.clone()).expect("validators");
    bundle.verify(Some(&signed.signer), Some(&set)).expect("the bundle verifies in Rust");
    serde_json::json!({
        "description": "Built by web/tests/it/ui_fixture.rs (SURPLUS_REGENERATE=1 rewrites it).",
        "lease": hex::encode(fill_entry.id()),
        "validators": validators,
        "quorum": set.quorum(),
        "bundle": bundle,
    })
}

#[test]
fn ui_proof_bundle_fixture_is_current_and_verifies() {
    let want = build();
    let path = fixture_path();
    if std::env::var_os("SURPLUS_REGENERATE").is_some_and(|v| v == "1") {
        let text = serde_json::to_string_pretty(&want).expect("json") + "\n";
        std::fs::write(&path, text).expect("write the fixture");
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read {}: {e}; run with SURPLUS_REGENERATE=1 to write it", path.display())
    });
    let have: serde_json::Value = serde_json::from_str(&text).expect("the fixture is JSON");
    assert_eq!(
        have,
        want,
        "{} is stale; rerun this test with SURPLUS_REGENERATE=1 and commit the file",
        path.display()
    );
    let bundle: ProofBundle = serde_json::from_value(have["bundle"].clone()).expect("a bundle");
    let validators: Vec<PublicKey> =
        serde_json::from_value(have["validators"].clone()).expect("validator keys");
    let set = ValidatorSet::new(validators).expect("a validator set");
    let check = bundle.verify(None, Some(&set)).expect("the committed bundle verifies");
    assert_eq!(hex::encode(check.entry.id()), have["lease"].as_str().expect("lease id"));
}

#[actix_web::test]
async fn every_ui_module_is_served_with_the_policy() {
    use actix_web::test::{call_service, read_body, TestRequest};
    let w = crate::world();
    let app = crate::app!(w.node, crate::roomy());
    // Every module app.js imports, and the modules they import.
    for file in [
        "app.js",
        "blake3.js",
        "encoding.js",
        "keys.js",
        "verify.js",
        "stateproof.js",
        "ed25519.js",
        "charts.js",
        "sealed.js",
    ] {
        let resp =
            call_service(&app, TestRequest::get().uri(&format!("/ui/{file}")).to_request()).await;
        assert_eq!(resp.status(), actix_web::http::StatusCode::OK, "{file}");
        let ctype = resp.headers().get("content-type").expect("a content type").clone();
        assert!(ctype.to_str().unwrap_or("").starts_with("text/javascript"), "{file}: {ctype:?}");
        let csp = resp.headers().get("content-security-policy").expect("a policy").clone();
        assert!(csp.to_str().unwrap_or("").contains("default-src 'self'"), "{file}");
        let body = String::from_utf8(read_body(resp).await.to_vec()).expect("utf-8");
        for import in body.lines().filter_map(|l| l.split("from \"./").nth(1)) {
            let name = import.trim_end_matches("\";");
            assert!(
                [
                    "blake3.js",
                    "encoding.js",
                    "keys.js",
                    "verify.js",
                    "stateproof.js",
                    "ed25519.js",
                    "charts.js",
                    "sealed.js",
                ]
                .contains(&name),
                "{file} imports ./{name}, which is not served"
            );
        }
    }
}
