//! `surplus credential verify|attenuate` and `surplus audit` re-executing a real contracts
//! ledger.

use std::process::Command;

use rand::SeedableRng;
use surplus_contracts::{Allocation, BlockMaker, Genesis, Params, Tx};
use surplus_ledger::testutil::{certificate, key, proposer_round};
use surplus_ledger::{Block, Entry};
use surplus_market::{Bid, Catalogue, FillRule, Market, Offer, Order, SignedOrder, HOUR_MS};
use surplus_store as store;
use surplus_store::Store;

const CHAIN: &str = "cli-contracts";
const T0: u64 = 1_767_225_600_000;

fn surplus(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_surplus")).args(args).output().unwrap()
}

/// `surplus credential verify --token TOKEN --provider-key KEY` and `extra` arguments.
fn verify_token(token: &str, key: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["credential", "verify", "--token", token, "--provider-key", key];
    args.extend_from_slice(extra);
    surplus(&args)
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn certify(mut b: Block) -> Block {
    let validators: Vec<_> = (0..4).map(|i| key("validator", i)).collect();
    if b.header.height > 0 {
        let proposer = validators.iter().position(|v| v.public() == b.header.proposer);
        let round = proposer_round(validators.len(), b.header.height, proposer.unwrap_or(0));
        b.certificate =
            certificate(CHAIN, b.header.height, round, &b.header.hash(), &validators, &[0, 1, 3]);
    }
    b
}

/// A data dir with a lease of provider 0 to buyer 0, its grant, and optionally its termination.
fn setup(
    terminate: bool,
) -> (tempfile::TempDir, surplus_contracts::credential::Credential, surplus_ledger::Hash) {
    let provider = key("provider", 0);
    let buyer = key("buyer", 0);
    let genesis = Genesis {
        validators: (0..4).map(|i| key("validator", i).public()).collect(),
        params: Params {
            catalogue: Catalogue::sample(),
            treasury: key("treasury", 0).public(),
            fee_bps: 0,
            penalty_bps: 0,
            notice_ms: surplus_contracts::maintenance::DEFAULT_NOTICE_MS,
            supervision: None,
        },
        allocations: vec![Allocation { account: buyer.public(), amount: 1_000_000 }],
    };
    let (g, mut maker) = BlockMaker::genesis(CHAIN, &genesis, T0).unwrap();
    let m = Market::new("gpu.a100", "us-east-b");
    let offer = Order::Offer(Offer {
        market: m.clone(),
        slots: 2,
        from_ms: T0,
        until_ms: T0 + 48 * HOUR_MS,
        reserve: 100,
        min_hours: 1,
        expiry_ms: T0 + 48 * HOUR_MS,
        nonce: 1,
    });
    let bid = Order::Bid(Bid {
        market: m,
        slots: 1,
        hours: 24,
        limit: 100,
        earliest_ms: T0,
        latest_ms: T0 + HOUR_MS,
        fill: FillRule::AllOrNone,
        expiry_ms: T0 + HOUR_MS,
        nonce: 1,
    });
    let proposer = key("validator", 1).public();
    let (b1, _) = maker
        .next(
            &[
                SignedOrder::sign(CHAIN, offer, &provider).0,
                SignedOrder::sign(CHAIN, bid, &buyer).0,
            ],
            T0,
            proposer,
        )
        .unwrap();
    let lease = maker.state.leases().next().unwrap().clone();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let cred = surplus_contracts::credential::mint(&lease, &provider, &["read", "write"], &mut rng)
        .unwrap();
    let grant = Tx::Grant {
        lease: lease.id,
        token_hash: cred.token_hash,
        revocation_ids: cred.revocation_ids.clone(),
        seq: 0,
        sealed: Vec::new(),
    };
    let (b2, _) = maker
        .next(
            &[Entry::signed(CHAIN, grant.kind(), grant.encode(), &provider)],
            T0 + HOUR_MS,
            proposer,
        )
        .unwrap();
    let mut blocks = vec![g, certify(b1), certify(b2)];
    if terminate {
        let t = Tx::Terminate { lease: lease.id, seq: 0 };
        let (b3, _) = maker
            .next(&[Entry::signed(CHAIN, t.kind(), t.encode(), &buyer)], T0 + 2 * HOUR_MS, proposer)
            .unwrap();
        blocks.push(certify(b3));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("ledger"), store::Config::default()).unwrap();
    s.append_group(&blocks).unwrap();
    (dir, cred, lease.id)
}

#[test]
fn verify_attenuate_and_revocation_from_the_ledger() {
    let (dir, cred, lease) = setup(false);
    let token = dir.path().join("token");
    std::fs::write(&token, &cred.token).unwrap();
    let pk = key("provider", 0).public().to_string();
    let at = (T0 + 3 * HOUR_MS).to_string();
    let d = dir.path().to_str().unwrap();
    let t = token.to_str().unwrap();

    let o = verify_token(t, &pk, &["--at-ms", &at, "--revoked-from", d]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(&hex::encode(lease)), "{}", text(&o));
    let o = verify_token(t, &pk, &["--at-ms", &at, "--operation", "manage"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = verify_token(t, &pk, &["--at-ms", &(T0 + 30 * HOUR_MS).to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("ended"), "{}", text(&o));
    let other = key("provider", 1).public().to_string();
    let o = verify_token(t, &other, &["--at-ms", &at, "--lease", &hex::encode(lease)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // Attenuate to read-only: read passes, write is refused.
    let narrow = dir.path().join("narrow");
    let n = narrow.to_str().unwrap();
    let o = surplus(&[
        "credential",
        "attenuate",
        "--token",
        t,
        "--provider-key",
        &pk,
        "--operations",
        "read",
        "--out",
        n,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = verify_token(n, &pk, &["--at-ms", &at, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = verify_token(n, &pk, &["--at-ms", &at, "--operation", "write"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // Bad input.
    let o = verify_token(d, &pk, &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = verify_token(t, "xyz", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--provider-key"), "{}", text(&o));

    // The audit re-executes the contracts ledger.
    let o = surplus(&["audit", "--data-dir", d, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["replayed"], true);
}

#[test]
fn a_terminated_lease_revokes_its_token_on_the_ledger() {
    let (dir, cred, _) = setup(true);
    let token = dir.path().join("token");
    std::fs::write(&token, &cred.token).unwrap();
    let pk = key("provider", 0).public().to_string();
    let at = (T0 + HOUR_MS + 1).to_string();
    let d = dir.path().to_str().unwrap();
    // Without the ledger the token still looks valid at a time inside its window...
    let o = verify_token(token.to_str().unwrap(), &pk, &["--at-ms", &at]);
    assert!(o.status.success(), "{}", text(&o));
    // ...with it, it is revoked.
    let o = verify_token(token.to_str().unwrap(), &pk, &["--at-ms", &at, "--revoked-from", d]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("revoked"), "{}", text(&o));
}
