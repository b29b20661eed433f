//! The client commands as real processes against the real HTTP API of the real node service,
//! run in this process on loopback (`surplus_service::solo`: a consortium of one). The node
//! acknowledges an entry before a block commits it, so the test waits for the commit (through
//! the node in this process) before a command that needs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use surplus_ledger::{parse_hex, Hash, SecretKey};
use surplus_service::solo::{self, Solo, Spec};
use surplus_web::{Node, Submission};

use crate::text;

/// The longest the test waits for the node to commit something.
const WAIT: Duration = Duration::from_secs(20);

/// Polls `f` until it gives something, for at most [`WAIT`].
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The id a submitting command printed: `{"id"}` with `--json`, else its second word
/// (`offer <id> submitted: …`).
fn submitted(o: &Output) -> Hash {
    assert!(o.status.success(), "{}", text(o));
    let out = String::from_utf8_lossy(&o.stdout);
    let id = match serde_json::from_str::<serde_json::Value>(&out) {
        Ok(v) => v["id"].as_str().unwrap_or_default().to_owned(),
        Err(_) => out.split_whitespace().nth(1).unwrap_or_default().to_owned(),
    };
    parse_hex::<32>(&id, "id").unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// Waits until the entry a command submitted is committed.
fn committed(node: &dyn Node, o: &Output) {
    let id = submitted(o);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let fate = || rt.block_on(node.submission(&id));
    wait_for(&format!("entry {} committed", hex::encode(id)), || match fate() {
        Some(Submission::Committed { .. }) => Some(()),
        Some(Submission::Dropped { code, message }) => panic!("dropped: {code}: {message}"),
        _ => None,
    });
}

fn key_file(dir: &Path, name: &str, key: &SecretKey) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, key.to_file_contents()).unwrap();
    path
}

/// `surplus ARGS --node URL`.
fn cli(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_surplus"))
        .args(args)
        .args(["--node", url])
        .env_remove("SURPLUS_NODE")
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

#[test]
fn trade_fetch_credential_transfer_and_terminate_through_the_cli() {
    let provider = SecretKey::from_seed([11; 32]);
    let buyer = SecretKey::from_seed([12; 32]);
    let other = SecretKey::from_seed([13; 32]);
    let solo = Solo::start(Spec::new(provider.clone()).fund(buyer.public(), 50_000_000)).unwrap();
    let node = solo.node();
    let url = &solo.url();
    let dir = tempfile::tempdir().unwrap();
    let pk = key_file(dir.path(), "provider.key", &provider);
    let bk = key_file(dir.path(), "buyer.key", &buyer);
    let ok = key_file(dir.path(), "other.key", &other);
    let (pk, bk, ok) = (pk.to_str().unwrap(), bk.to_str().unwrap(), ok.to_str().unwrap());
    let m = "gpu.a100@us-east-b";

    let v = json(&cli(url, &["status", "--json"]));
    assert_eq!(v["chain_id"], solo::CHAIN);
    let o = cli(url, &["status"]);
    assert!(text(&o).contains("validator  yes"), "{}", text(&o));

    let o = cli(url, &["offer", "--key", pk, "--market", m, "--slots", "2", "--reserve", "100"]);
    assert_eq!(o.status.code(), Some(2), "--hours-window is required: {}", text(&o));
    let o = cli(
        url,
        &[
            "offer",
            "--key",
            pk,
            "--market",
            m,
            "--slots",
            "2",
            "--reserve",
            "100",
            "--hours-window",
            "48",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("offer "), "{}", text(&o));
    committed(&*node, &o);
    let o = cli(url, &["book", "--market", m]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("100"), "{}", text(&o));

    // A bid below the reserve rests, and is cancelled.
    let o = cli(
        url,
        &[
            "bid", "--key", bk, "--market", m, "--slots", "1", "--hours", "24", "--limit", "10",
            "--json",
        ],
    );
    let low_id = json(&o)["id"].as_str().unwrap().to_owned();
    committed(&*node, &o);
    let book = json(&cli(url, &["book", "--market", m, "--json"]));
    assert_eq!(book["bids"]["orders"][0]["id"], low_id);
    let o = cli(url, &["cancel", &low_id, "--key", bk, "--json"]);
    json(&o);
    committed(&*node, &o);
    let book = json(&cli(url, &["book", "--market", m, "--json"]));
    assert_eq!(book["bids"]["orders"].as_array().unwrap().len(), 0, "{book}");

    // A crossing bid makes a lease.
    let o = cli(
        url,
        &[
            "bid",
            "--key",
            bk,
            "--market",
            m,
            "--slots",
            "1",
            "--hours",
            "24",
            "--limit",
            "150",
            "--all-or-none",
        ],
    );
    committed(&*node, &o);
    // The provider's node grants the new lease's credential in a block of its own.
    wait_for("the lease granted", || {
        let state = node.state();
        let l = state.leases().find(|l| l.fill.buyer == buyer.public())?;
        l.grant.as_ref().map(|_| ())
    });
    let leases = json(&cli(url, &["leases", "--key", bk, "--json"]));
    let lease = leases["leases"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(leases["leases"][0]["status"], "active");
    let o = cli(url, &["leases", "--account", &provider.public().to_string()]);
    assert!(text(&o).contains(&lease) && text(&o).contains("seller"), "{}", text(&o));

    // The buyer fetches the credential; it verifies offline; nobody else gets it.
    let token = dir.path().join("token");
    let o =
        cli(url, &["lease", "credential", &lease, "--key", bk, "--out", token.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_surplus"))
        .args(["credential", "verify", "--token", token.to_str().unwrap()])
        .args(["--provider-key", &provider.public().to_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(url, &["lease", "credential", &lease, "--key", ok]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not_buyer"), "{}", text(&o));
    let o = cli(url, &["lease", "credential", &lease, "--key", bk]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        std::fs::read_to_string(&token).unwrap().trim()
    );

    // Balances and a transfer (the sequence number comes from the node).
    let before = json(&cli(url, &["balance", "--key", bk, "--json"]))["balance"].as_u64().unwrap();
    assert!(before < 50_000_000, "escrow left the balance");
    let to = other.public().to_string();
    let o = cli(url, &["transfer", "--to", &to, "--amount", "7", "--key", bk]);
    committed(&*node, &o);
    let o = cli(url, &["balance", &to]);
    assert!(text(&o).contains("balance 7"), "{}", text(&o));

    // The buyer ends the lease.
    let o = cli(url, &["terminate", &lease, "--key", bk]);
    committed(&*node, &o);
    let v = json(&cli(url, &["leases", "--key", bk, "--json"]));
    assert_eq!(v["leases"][0]["status"], "terminated_by_buyer");
    // Again: the node refuses, exit 1 with its message.
    let o = cli(url, &["terminate", &lease, "--key", bk]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not active"), "{}", text(&o));

    // An auditor checks the running node's whole ledger through its API, re-executing every
    // block: the trade, the grant, the transfer and the termination.
    let o = Command::new(env!("CARGO_BIN_EXE_surplus"))
        .args(["audit", "--node", url, "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["replayed"], true, "{v}");
    assert!(v["report"]["head_height"].as_u64().unwrap() >= 4, "{v}");
    let o = Command::new(env!("CARGO_BIN_EXE_surplus")).args(["audit", "--node", url]).output();
    let o = o.unwrap();
    assert!(text(&o).contains("re-executed  every block"), "{}", text(&o));
    drop(node);
    solo.stop().unwrap();
}

#[test]
fn errors_local_remote_and_unreachable() {
    let provider = SecretKey::from_seed([21; 32]);
    let solo = Solo::start(Spec::new(provider.clone())).unwrap();
    let url = solo.url();
    let url = url.as_str();
    let dir = tempfile::tempdir().unwrap();
    let pk = key_file(dir.path(), "p.key", &provider);
    let pk = pk.to_str().unwrap();

    // Bad input here: exit 2, nothing sent.
    let o = cli(url, &["book", "--market", "gpu.a100"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("class@region"), "{}", text(&o));
    let o = cli(url, &["balance", "abc"]);
    assert_eq!(o.status.code(), Some(2));
    let o = cli(url, &["cancel", "00", "--key", pk]);
    assert_eq!(o.status.code(), Some(2));
    let o = cli(
        url,
        &[
            "offer",
            "--key",
            "/nonexistent",
            "--market",
            "gpu.a100@us-east-b",
            "--slots",
            "1",
            "--reserve",
            "1",
            "--hours-window",
            "2",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("/nonexistent"), "{}", text(&o));
    let o = cli("https://127.0.0.1:1", &["status"]);
    assert_eq!(o.status.code(), Some(2));

    // The node says no: exit 1 with its message.
    let o = cli(url, &["book", "--market", "gpu.h100@us-east-b"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("not in the consortium's catalogue"), "{}", text(&o));
    let o = cli(url, &["transfer", "--to", &"ab".repeat(32), "--amount", "5", "--key", pk]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("the balance is 0 units, 5 are needed"), "{}", text(&o));
    let o = cli(url, &["cancel", &"cd".repeat(32), "--key", pk, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("no resting order"), "{}", text(&o));

    // SURPLUS_NODE names the node when --node is absent.
    let o = Command::new(env!("CARGO_BIN_EXE_surplus"))
        .args(["status", "--json"])
        .env("SURPLUS_NODE", url)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    // Nothing listens: exit 1, saying where it tried.
    solo.stop().unwrap();
    let o = cli(url, &["status"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("cannot reach the node"), "{}", text(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_surplus")).args(["audit", "--node", url]).output();
    let o = o.unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains(url), "{}", text(&o));
}
