//! The ledger routes: chain, block list, whole blocks, entries, lease proofs, checkpoints and
//! export, served from the node's ledger store.

use actix_web::http::{header, StatusCode};
use actix_web::test::TestRequest;
use surplus_ledger::bundle::ProofBundle;
use surplus_ledger::{Entry, SignedCheckpoint, ValidatorSet};

use crate::{app, call, lease, roomy, world, CHAIN};

#[actix_web::test]
async fn chain_names_the_validators_and_quorum() {
    let w = world();
    let app = app!(w.node, roomy());
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/chain"));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["chain_id"], CHAIN);
    assert_eq!(v["validators"], serde_json::json!([w.provider.public().to_string()]));
    assert_eq!((v["powers"].clone(), v["total_power"].clone()), (serde_json::json!([1]), 1.into()));
    assert_eq!(v["quorum"], 1);
    let next = w.node.status().height + 1;
    assert_eq!(v["height"], next);
    // Any height up to the head's + 1; the genesis set decides them all on this chain.
    let (s, at) = call!(app, TestRequest::get().uri("/api/v1/chain?height=1"));
    assert_eq!(s, StatusCode::OK, "{at}");
    assert_eq!(
        (at["height"].clone(), at["validators"].clone()),
        (1.into(), v["validators"].clone())
    );
    let (s, e) = call!(app, TestRequest::get().uri(&format!("/api/v1/chain?height={}", next + 1)));
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_block")));
    let (s, e) = call!(app, TestRequest::get().uri("/api/v1/chain?height=x"));
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, v) = call!(app, TestRequest::post().uri("/api/v1/chain"));
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(v["error"]["code"], "method_not_allowed");
}

#[actix_web::test]
async fn block_list_is_newest_first_and_pages_with_before() {
    let w = world();
    let app = app!(w.node, roomy());
    lease!(app, w.node, &w.provider, &w.buyer);
    let head = w.node.status().height;
    assert!(head >= 3, "offer, bid and grant blocks");
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/blocks"));
    assert_eq!(s, StatusCode::OK, "{v}");
    let heights: Vec<u64> =
        v.as_array().unwrap().iter().map(|b| b["height"].as_u64().unwrap()).collect();
    assert_eq!(heights, (0..=head).rev().collect::<Vec<_>>());
    let top = &v[0];
    assert_eq!(top["hash"], hex::encode(w.node.status().head_hash));
    assert_eq!(top["proposer"], w.provider.public().to_string());
    assert!(top["tree_size"].as_u64().unwrap() > 0);
    assert!(top["time_ms"].as_u64().unwrap() > 0);

    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/blocks?before=2&limit=1"));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["height"], 1);
    // Past the head is the head; below genesis is nothing.
    let (_, v) = call!(app, TestRequest::get().uri("/api/v1/blocks?before=1000&limit=1"));
    assert_eq!(v[0]["height"], head);
    let (_, v) = call!(app, TestRequest::get().uri("/api/v1/blocks?before=0"));
    assert_eq!(v, serde_json::json!([]));

    for (q, code) in [
        ("limit=0", "bad_limit"),
        ("limit=101", "bad_limit"),
        ("before=x", "bad_query"),
        ("limit=-1", "bad_query"),
        ("after=3", "bad_query"),
    ] {
        let (s, v) = call!(app, TestRequest::get().uri(&format!("/api/v1/blocks?{q}")));
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
        assert_eq!(v["error"]["code"], code, "{q}");
    }
}

#[actix_web::test]
async fn a_block_has_its_certificate_and_decoded_entries() {
    let w = world();
    let app = app!(w.node, roomy());
    let id = lease!(app, w.node, &w.provider, &w.buyer);
    let height = w.node.state().lease(&id).unwrap().height;
    let (s, v) = call!(app, TestRequest::get().uri(&format!("/api/v1/blocks/{height}")));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["height"], height);
    assert_eq!(v["header"]["height"], height);
    assert_eq!(v["hash"].as_str().unwrap().len(), 64);
    // The round that decided the block (0 unless a round timed out) and its one signature.
    let stored = w.node.ledger_block(height).unwrap().unwrap();
    assert_eq!(v["certificate"]["round"], stored.certificate.round);
    assert_eq!(v["certificate"]["signatures"].as_array().unwrap().len(), 1);
    let sig = &v["certificate"]["signatures"][0];
    assert_eq!(sig["validator"], 0);
    assert_eq!(sig["signer"], w.provider.public().to_string());
    assert_eq!(
        sig["signature"],
        serde_json::to_value(stored.certificate.signatures[0].signature).unwrap()
    );
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(v["entry_count"], entries.len());
    let bid = entries.iter().find(|e| e["kind"] == "order").expect("the bid");
    assert_eq!(bid["decoded"]["side"], "bid");
    assert_eq!(bid["author"], w.buyer.public().to_string());
    assert!(bid["signature"].is_string());
    let fill = entries.iter().find(|e| e["kind"] == "fill").expect("the fill");
    assert_eq!(fill["id"], hex::encode(id));
    assert_eq!(fill["author"], serde_json::Value::Null);
    assert_eq!(fill["decoded"]["fill"]["buyer"], w.buyer.public().to_string());
    assert_eq!(fill["decoded"]["height"], height);
    // Indexes are global and consecutive, ending at the tree size.
    let last = entries.last().unwrap()["index"].as_u64().unwrap();
    assert_eq!(last + 1, v["header"]["tree_size"].as_u64().unwrap());
    // What `surplus load` reads: the commit time here and the bids that filled.
    assert!(v["committed_ms"].as_u64().unwrap() > 0);
    assert_eq!(v["filled_bids"], serde_json::json!([bid["id"]]));

    // Without the entries: the rest is the same.
    let (s, lean) =
        call!(app, TestRequest::get().uri(&format!("/api/v1/blocks/{height}?entries=false")));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(lean["entries"], serde_json::Value::Null);
    assert_eq!(lean["entry_count"], v["entry_count"]);
    assert_eq!(lean["filled_bids"], v["filled_bids"]);
    assert_eq!(lean["certificate"], v["certificate"]);
    let (s, _) = call!(app, TestRequest::get().uri("/api/v1/blocks/1?entries=maybe"));
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Genesis decodes too: validators, parameters, allocations.
    let (_, g) = call!(app, TestRequest::get().uri("/api/v1/blocks/0"));
    let kinds: Vec<&str> =
        g["entries"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[..2], ["validators", "genesis-params"]);
    assert!(g["entries"].as_array().unwrap().iter().all(|e| !e["decoded"].is_null()));
    assert_eq!(g["certificate"]["signatures"], serde_json::json!([]));

    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/blocks/999"));
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "unknown_block");
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/blocks/-1"));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_path");
}

#[actix_web::test]
async fn entries_by_index() {
    let w = world();
    let app = app!(w.node, roomy());
    let id = lease!(app, w.node, &w.provider, &w.buyer);
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/entries/0"));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["index"], 0);
    assert_eq!(v["height"], 0);
    assert_eq!(v["kind"], "validators");
    assert_eq!(v["decoded"]["validators"][0], w.provider.public().to_string());

    // Find the fill by walking the ledger, and check the entry's bytes.
    let size = w.node.status().height;
    let (_, b) = call!(app, TestRequest::get().uri(&format!("/api/v1/blocks/{size}")));
    let tree_size = b["header"]["tree_size"].as_u64().unwrap();
    let mut found = false;
    for i in 0..tree_size {
        let (s, v) = call!(app, TestRequest::get().uri(&format!("/api/v1/entries/{i}")));
        assert_eq!(s, StatusCode::OK);
        let e = Entry::decode(&hex::decode(v["entry"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(hex::encode(e.id()), v["id"]);
        if e.id() == id {
            assert_eq!(v["kind"], "fill");
            assert_eq!(v["decoded"]["fill"]["slots"], 1);
            found = true;
        }
    }
    assert!(found, "the fill is in the ledger");
    let (s, v) = call!(app, TestRequest::get().uri(&format!("/api/v1/entries/{tree_size}")));
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "unknown_entry");
    let (s, _) = call!(app, TestRequest::get().uri("/api/v1/entries/zero"));
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn a_lease_proof_verifies_offline() {
    let w = world();
    let app = app!(w.node, roomy());
    let id = lease!(app, w.node, &w.provider, &w.buyer);
    let (s, v) =
        call!(app, TestRequest::get().uri(&format!("/api/v1/leases/{}/proof", hex::encode(id))));
    assert_eq!(s, StatusCode::OK, "{v}");
    let bundle: ProofBundle = serde_json::from_value(v).unwrap();
    let set = ValidatorSet::new(vec![w.provider.public()]).unwrap();
    let check = bundle.verify(Some(&w.provider.public()), Some(&set)).unwrap();
    assert_eq!(check.entry.id(), id);
    assert_eq!(check.signed_by, Some(w.provider.public()));
    assert!(check.certificate_checked);
    assert_eq!(bundle.checkpoint.height, w.node.status().height);

    // A tampered bundle fails.
    let mut bad = bundle.clone();
    bad.entry_index += 1;
    assert!(bad.verify(None, Some(&set)).is_err());

    let (s, v) =
        call!(app, TestRequest::get().uri(&format!("/api/v1/leases/{}/proof", "ab".repeat(32))));
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "unknown_lease");
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/leases/xyz/proof"));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_hex");
    let (s, _) =
        call!(app, TestRequest::post().uri(&format!("/api/v1/leases/{}/proof", hex::encode(id))));
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}

#[actix_web::test]
async fn checkpoints_are_signed_by_the_node() {
    let w = world();
    let app = app!(w.node, roomy());
    lease!(app, w.node, &w.provider, &w.buyer);
    let (s, v) = call!(app, TestRequest::get().uri("/api/v1/checkpoints"));
    assert_eq!(s, StatusCode::OK, "{v}");
    let cps: Vec<SignedCheckpoint> = serde_json::from_value(v).unwrap();
    assert_eq!(cps.len(), 1);
    cps[0].verify().unwrap();
    assert_eq!(cps[0].signer, w.provider.public());
    assert_eq!(cps[0].checkpoint.height, w.node.status().height);
    assert_eq!(cps[0].checkpoint.header_hash, w.node.status().head_hash);
}

#[actix_web::test]
async fn export_streams_a_file_the_audit_accepts() {
    let w = world();
    let app = app!(w.node, roomy());
    lease!(app, w.node, &w.provider, &w.buyer);
    let resp =
        actix_web::test::call_service(&app, TestRequest::get().uri("/api/v1/export").to_request())
            .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers();
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), "application/octet-stream");
    let cd = h.get(header::CONTENT_DISPOSITION).unwrap().to_str().unwrap().to_owned();
    assert!(cd.starts_with("attachment; filename=\""), "{cd}");
    let height = w.node.status().height;
    assert_eq!(h.get("x-ledger-height").unwrap().to_str().unwrap(), height.to_string());
    let body = actix_web::test::read_body(resp).await;
    let path = std::env::temp_dir().join(format!("surplus-web-export-test-{}", std::process::id()));
    std::fs::write(&path, &body).unwrap();
    let mut reader = surplus_store::export::Reader::open(&path).unwrap();
    let report = surplus_ledger::verify(
        &mut reader,
        &surplus_ledger::Options::default(),
        &mut surplus_ledger::NoHook,
        &mut |_| {},
    );
    std::fs::remove_file(&path).unwrap();
    let report = report.unwrap();
    assert_eq!(report.head_height, height);
    assert_eq!(report.head_hash, w.node.status().head_hash);
}

/// An export is reused for a minute, and its height says what it covers; `?fresh=true` gives
/// one of the head once the latest is a few seconds old.
#[actix_web::test]
async fn a_fresh_export_covers_the_head() {
    let w = world();
    let app = app!(w.node, roomy());
    let height_of = |resp: &actix_web::dev::ServiceResponse| -> u64 {
        let h = resp.headers();
        let height: u64 = h.get("x-ledger-height").unwrap().to_str().unwrap().parse().unwrap();
        let cd = h.get(header::CONTENT_DISPOSITION).unwrap().to_str().unwrap();
        assert!(cd.ends_with(&format!("-{height}.surplus-ledger\"")), "{cd}");
        height
    };
    let get = |uri: &str| TestRequest::get().uri(uri).to_request();
    let first = actix_web::test::call_service(&app, get("/api/v1/export")).await;
    let at = height_of(&first);
    lease!(app, w.node, &w.provider, &w.buyer);
    let head = w.node.status().height;
    assert!(head > at);
    // Within the minute: the same export, behind the head.
    let again = actix_web::test::call_service(&app, get("/api/v1/export")).await;
    assert_eq!(height_of(&again), at);
    // Fresh, once the latest is more than 5 s old: the head.
    tokio::time::sleep(std::time::Duration::from_millis(5_100)).await;
    let head = w.node.status().height;
    let fresh = actix_web::test::call_service(&app, get("/api/v1/export?fresh=true")).await;
    assert!(height_of(&fresh) >= head, "a fresh export covers the head");
    let bad = actix_web::test::call_service(&app, get("/api/v1/export?fresh=maybe")).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
