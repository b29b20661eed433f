//! Writes seed inputs for every fuzz target under `fuzz/corpus/<target>/`: real encodings made
//! with the workspace's own code (entries, orders, blocks, checkpoints, an export file, a
//! credential, API bodies), and for the consensus wire a minimal message of each type.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml -p surplus-fuzz-seed -- fuzz/corpus`

use std::path::{Path, PathBuf};

use base64::Engine as _;

use surplus_contracts::{credential, Lease, LeaseStatus, Segment};
use surplus_store::export;
use surplus_store::{Config, Store};
use surplus_ledger::testutil::TestChain;
use surplus_ledger::{Checkpoint, SecretKey};
use surplus_market::{Bid, Fill, FillRule, Market, Offer, Order, SignedCancel, SignedOrder};
use surplus_net::consensus::snapshot;
use surplus_net::snapfetch::SnapRequest;

const CHAIN: &str = "surplus-devnet";

fn put(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).expect("make the corpus dir");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into()));
    let buyer = SecretKey::from_seed([3; 32]);
    let provider = SecretKey::from_seed([7; 32]);
    let market = Market::new("vm.2c8g", "eu-west-a");
    let now = 1_700_000_000_000u64;

    // Gossip: a bid, an offer, a cancel, and the test chain's generic signed entries.
    let bid = Bid {
        market: market.clone(),
        slots: 2,
        hours: 3,
        limit: 160_000,
        earliest_ms: now,
        latest_ms: now + 7_200_000,
        fill: FillRule::AtLeast(1),
        expiry_ms: now + 60_000,
        nonce: 42,
    };
    let offer = Offer {
        market: market.clone(),
        slots: 8,
        min_hours: 1,
        reserve: 120_000,
        from_ms: now,
        until_ms: now + 86_400_000,
        expiry_ms: now + 3_600_000,
        nonce: 7,
    };
    let (bid_entry, signed_bid) = SignedOrder::sign(CHAIN, Order::Bid(bid), &buyer);
    let (offer_entry, _) = SignedOrder::sign(CHAIN, Order::Offer(offer), &provider);
    let (cancel_entry, _) = SignedCancel::sign(CHAIN, signed_bid.id, &buyer);
    put(&root, "gossip_entry", "bid", &bid_entry.encode());
    put(&root, "gossip_entry", "offer", &offer_entry.encode());
    put(&root, "gossip_entry", "cancel", &cancel_entry.encode());
    put(&root, "gossip_entry", "bid-payload", &bid_entry.payload);
    let message = [bid_entry.encode(), offer_entry.encode(), cancel_entry.encode()];
    put(&root, "gossip_entry", "message", &surplus_net::gossip_batch::pack(&message));
    put(&root, "gossip_entry", "message-one", &surplus_net::gossip_batch::pack(&message[..1]));

    // Blocks of a small test chain, and its export file.
    let chain = TestChain::build(CHAIN, 3, 4);
    for (i, b) in chain.blocks.iter().enumerate() {
        put(&root, "ledger_block", &format!("block-{i}"), &b.encode());
        put(&root, "ledger_block", &format!("head-{i}"), &b.encode_head());
    }
    for (i, e) in chain.blocks[1].entries.iter().take(2).enumerate() {
        put(&root, "gossip_entry", &format!("entry-{i}"), &e.encode());
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut store = Store::open(&dir.path().join("ledger"), Config::default()).expect("a store");
    for b in &chain.blocks {
        store.append(b).expect("append a test block");
    }
    let file = dir.path().join("ledger.export");
    export::write(&store, &file, &mut |_, _| {}).expect("export");
    put(&root, "export_file", "three-blocks", &std::fs::read(&file).expect("read the export"));

    // A checkpoint of the chain's head.
    let head = &chain.blocks[chain.blocks.len() - 1].header;
    let checkpoint = Checkpoint {
        chain_id: CHAIN.into(),
        height: head.height,
        tree_size: head.tree_size,
        root: head.merkle_root,
        header_hash: head.hash(),
    }
    .sign(&chain.validators[0]);
    put(&root, "checkpoint", "head", &checkpoint.encode());

    // A lease's credential, under the provider key the fuzz target uses.
    let lease = Lease {
        id: [1; 32],
        fill: Fill {
            bid: signed_bid.id,
            offer: [2; 32],
            buyer: buyer.public(),
            provider: provider.public(),
            market,
            slots: 2,
            start_ms: now,
            end_ms: now + 3 * 3_600_000,
            price: 150_000,
        },
        height: 9,
        hours: 3,
        segments: vec![Segment { hours: 3, price: 150_000 }],
        hours_paid: 0,
        escrow: 900_000,
        status: LeaseStatus::Active,
        grant: None,
        notice: None,
        down_ms: 0,
        credited: 0,
        probe: None,
    };
    let cred = credential::mint(&lease, &provider, &["read", "write"], &mut rand::thread_rng())
        .expect("mint a credential");
    put(&root, "credential_token", "minted", &cred.token);

    // API bodies: the first byte picks the type.
    let token = base64::engine::general_purpose::URL_SAFE.encode(&cred.token);
    let bodies: [(u8, serde_json::Value); 4] = [
        (0, serde_json::json!({ "entry": hex::encode(bid_entry.encode()) })),
        (1, serde_json::json!({ "challenge": "00".repeat(32), "signature": "11".repeat(64) })),
        (2, serde_json::json!({ "token": token, "operation": "read", "lease": "01".repeat(32) })),
        (3, serde_json::json!({ "account": hex::encode(buyer.public().0) })),
    ];
    for (which, body) in bodies {
        let mut bytes = vec![which];
        bytes.extend_from_slice(body.to_string().as_bytes());
        put(&root, "api_bodies", &format!("type-{which}"), &bytes);
    }

    // State sync: a small snapshot's manifest and chunk (first byte 0 and 1), and the snapshot
    // protocol's requests (first byte 2).
    {
        use surplus_contracts::testutil as t;
        let (_, mut maker) =
            surplus_contracts::BlockMaker::genesis(t::CHAIN, &t::genesis(100, 1000), t::T0)
                .expect("the sample genesis");
        let orders = [
            t::offer(&t::provider(0), 5, 20, 100, 1, t::T0),
            t::bid(&t::buyer(0), 2, 10, 30, 1, t::T0),
        ];
        let proposer = surplus_ledger::testutil::key("validator", 0).public();
        let (b, _) = maker.next(&orders, t::T0, proposer).expect("a sample block");
        let b = t::certify(b);
        let mut chunks = Vec::new();
        let m = snapshot::build(&maker.state, &b.header, &b.certificate, maker.frontier(), Vec::new(), &mut |_, c| {
            chunks.push(c.to_vec());
            Ok(())
        })
        .expect("a snapshot");
        put(&root, "snapshot_wire", "manifest", &[&[0u8][..], &m.encode()].concat());
        for (i, c) in chunks.iter().enumerate() {
            put(&root, "snapshot_wire", &format!("chunk-{i}"), &[&[1u8][..], c].concat());
        }
        let requests = [SnapRequest::Latest, SnapRequest::Chunk { height: 1, index: 3 }];
        for (i, r) in requests.iter().enumerate() {
            put(&root, "snapshot_wire", &format!("request-{i}"), &[&[2u8][..], &r.encode()].concat());
        }
    }

    // Consensus wire: for each message type (first byte), the version byte and a few zeros.
    for which in 0u8..11 {
        put(&root, "consensus_wire", &format!("type-{which}"), &[which, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
    println!("seeds written under {}", root.display());
}
