//! `surplus state proof` and `surplus state verify-proof` as real processes, against a real
//! node (`surplus_service::solo` on loopback) and its genesis file.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use surplus_ledger::SecretKey;
use surplus_service::solo::{Solo, Spec};

use crate::{p, text};

fn surplus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_surplus"))
        .args(args)
        .env_remove("SURPLUS_NODE")
        .output()
        .unwrap()
}

/// Rewrites the JSON file `from` into `to` with `f` applied.
fn edit(from: &Path, to: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(from).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(to, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Changes one hex digit of the string at `v[field]` (at a position inside the bytes).
fn flip_digit(v: &mut serde_json::Value, field: &str, at: usize) {
    let s = v[field].as_str().unwrap().to_owned();
    let mut chars: Vec<char> = s.chars().collect();
    chars[at] = if chars[at] == '0' { '1' } else { '0' };
    v[field] = serde_json::Value::String(chars.into_iter().collect());
}

#[test]
fn state_proofs_fetched_from_a_node_verify_offline_against_its_genesis() {
    let provider = SecretKey::from_seed([31; 32]);
    let buyer = SecretKey::from_seed([32; 32]).public();
    let solo = Solo::start(Spec::new(provider.clone()).fund(buyer, 50_000_000)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while solo.node().status().height < 1 {
        assert!(Instant::now() < deadline, "no first block");
        std::thread::sleep(Duration::from_millis(10));
    }
    let url = solo.url();
    let genesis = solo.dir().join("genesis.json");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("balance.json");
    let key = buyer.to_string();

    let o = surplus(&["state", "proof", "--account", &key, "--node", &url, "--out", p(&file)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = surplus(&["state", "verify-proof", p(&file), "--genesis", p(&genesis)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains(&format!("account {key} has balance 50000000, seq 0 at height ")),
        "{out}"
    );
    assert!(out.contains("certified by 1 of 1 validators"), "{out}");
    let o = surplus(&["state", "verify-proof", p(&file), "--genesis", p(&genesis), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["present"], true);
    assert_eq!(v["item"], serde_json::json!({"balance": 50_000_000, "seq": 0, "bond": 0}));
    // The trust anchor as keys and chain id works too.
    let o = surplus(&[
        "state",
        "verify-proof",
        p(&file),
        "--validators",
        &provider.public().to_string(),
        "--chain-id",
        surplus_service::solo::CHAIN,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Tampered: exit 1 with the reason.
    let bad = dir.path().join("bad.json");
    for (field, at, why) in [
        ("value", 70, "inclusion proof fails"),
        ("proof", 10, "proof fails"),
        ("header_hash", 5, "header_hash"),
    ] {
        edit(&file, &bad, |v| flip_digit(v, field, at));
        let o = surplus(&["state", "verify-proof", p(&bad), "--genesis", p(&genesis)]);
        assert_eq!(o.status.code(), Some(1), "{field}: {}", text(&o));
        assert!(text(&o).contains("FAILED") && text(&o).contains(why), "{field}: {}", text(&o));
    }
    edit(&file, &bad, |v| flip_digit(&mut v["header"], "state_root", 3));
    let o = surplus(&["state", "verify-proof", p(&bad), "--genesis", p(&genesis)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    edit(&file, &bad, |v| v["decoded"]["balance"] = serde_json::json!(60_000_000));
    let o = surplus(&["state", "verify-proof", p(&bad), "--genesis", p(&genesis), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verified"], false);
    assert!(v["reason"].as_str().unwrap().contains("disagree"), "{v}");
    std::fs::write(&bad, "{\"format\": 1}").unwrap();
    let o = surplus(&["state", "verify-proof", p(&bad), "--genesis", p(&genesis)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not a Surplus state proof"), "{}", text(&o));

    // Another genesis (other validators): refused; so is another chain id.
    let other = dir.path().join("other-genesis.json");
    edit(&genesis, &other, |v| {
        v["validators"][0]["public_key"] =
            serde_json::json!(SecretKey::from_seed([99; 32]).public().to_string());
    });
    let o = surplus(&["state", "verify-proof", p(&file), "--genesis", p(&other)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("certificate"), "{}", text(&o));
    edit(&genesis, &other, |v| v["chain_id"] = serde_json::json!("another-chain"));
    let o = surplus(&["state", "verify-proof", p(&file), "--genesis", p(&other)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("another-chain"), "{}", text(&o));
    // No trust anchor at all: a usage error.
    let o = surplus(&["state", "verify-proof", p(&file)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // A lease id that is no lease: proven absent.
    let lease = dir.path().join("lease.json");
    let id = "cd".repeat(32);
    let o = surplus(&["state", "proof", "--lease", &id, "--node", &url, "--out", p(&lease)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = surplus(&["state", "verify-proof", p(&lease), "--genesis", p(&genesis)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains(&format!("lease {id} is not a live lease")), "{}", text(&o));
    // A bad key is refused before anything is sent.
    let o = surplus(&["state", "proof", "--account", "abcd", "--node", &url]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
