//! The `surplus` command line, run as a real process: audit, export, proofs, keys, market
//! replay, operator commands (init, genesis, the sample hook), bad input.

mod client;
mod conformance;
mod credential;
mod forged;
mod market;
mod ops;
mod state;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use surplus_ledger::testutil::TestChain;
use surplus_ledger::Block;
use surplus_store as store;
use surplus_store::Store;

fn surplus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_surplus")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A data dir whose ledger holds `blocks` blocks of 5 signed entries.
fn data_dir(blocks: usize) -> (tempfile::TempDir, TestChain) {
    let dir = tempfile::tempdir().unwrap();
    let chain = TestChain::build("cli-chain", blocks, 5);
    let mut s = Store::open(&dir.path().join("ledger"), store::Config::default()).unwrap();
    s.append_group(&chain.blocks).unwrap();
    (dir, chain)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Writes `blocks` as an export file, through a store, as `surplus ledger export` does.
fn export(blocks: &[Block], dir: &Path, name: &str) -> PathBuf {
    let mut s = Store::open(&dir.join(format!("{name}.store")), store::Config::default()).unwrap();
    s.append_group(blocks).unwrap();
    let file = dir.join(format!("{name}.export"));
    store::export::write(&s, &file, &mut |_, _| {}).unwrap();
    file
}

/// `surplus audit FILE --json`: exit code and report.
fn audit(file: &Path) -> (Option<i32>, serde_json::Value) {
    let o = surplus(&["audit", p(file), "--json"]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    (o.status.code(), v)
}

#[test]
fn audit_export_and_audit_the_file() {
    let (dir, chain) = data_dir(4);
    let o = surplus(&["audit", "--data-dir", p(dir.path())]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("verified"));

    let o = surplus(&["audit", "--data-dir", p(dir.path()), "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["report"]["head_height"], 4);
    assert_eq!(v["report"]["head_hash"], hex::encode(chain.blocks[4].header.hash()));

    let file = dir.path().join("out.export");
    let o = surplus(&["ledger", "export", "--data-dir", p(dir.path()), "--out", p(&file)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = surplus(&["audit", p(&file), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let genesis = hex::encode(chain.blocks[0].header.hash());
    let o = surplus(&["audit", p(&file), "--genesis-hash", &genesis]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // One flipped bit in block 2's record: exit 1, and the report names height 2.
    let mut bytes = std::fs::read(&file).unwrap();
    let block2 = chain.blocks[2].encode();
    let at = bytes.windows(block2.len()).position(|w| w == block2.as_slice()).unwrap();
    bytes[at + block2.len() - 3] ^= 4;
    std::fs::write(&file, &bytes).unwrap();
    let o = surplus(&["audit", p(&file), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verified"], false);
    assert_eq!(v["failure"]["height"], 2);
    let o = surplus(&["audit", p(&file)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("height  2"), "{}", text(&o));
}

#[test]
fn ledger_usage_counts_records_by_kind() {
    let (dir, chain) = data_dir(4);
    let o = surplus(&["ledger", "usage", "--data-dir", p(dir.path()), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["height"], 4);
    assert_eq!(v["base"], 0);
    let kind = |name: &str| {
        v["kinds"].as_array().unwrap().iter().find(|k| k["kind"] == name).cloned().unwrap()
    };
    assert_eq!(kind("headers")["records"], 5);
    assert_eq!(kind("entries")["records"], chain.blocks[4].header.tree_size);
    let sum: u64 =
        v["kinds"].as_array().unwrap().iter().map(|k| k["bytes"].as_u64().unwrap()).sum();
    assert_eq!(v["bytes"].as_u64(), Some(sum));
    assert!(v["on_disk_bytes"].as_u64().unwrap() > 0);

    let o = surplus(&["ledger", "usage", "--data-dir", p(dir.path())]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.starts_with("height 4: every block in full"), "{out}");
    assert!(out.contains("headers") && out.contains("on disk"), "{out}");

    let empty = tempfile::tempdir().unwrap();
    let o = surplus(&["ledger", "usage", "--data-dir", p(empty.path())]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("holds no ledger"), "{}", text(&o));
}

#[test]
fn proof_round_trip_with_signed_checkpoint_and_certificate() {
    let (dir, chain) = data_dir(6);
    let key = dir.path().join("node.key");
    let o = surplus(&["key", "generate", "--out", p(&key)]);
    assert!(o.status.success(), "{}", text(&o));
    let public = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Refuses to overwrite a key.
    assert_eq!(surplus(&["key", "generate", "--out", p(&key)]).status.code(), Some(2));
    let o = surplus(&["key", "show", "--key", p(&key)]);
    assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), public);

    let proof = dir.path().join("proof.json");
    let o = surplus(&[
        "ledger",
        "proof",
        "--data-dir",
        p(dir.path()),
        "--entry",
        "17",
        "--key",
        p(&key),
        "--out",
        p(&proof),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let validators: Vec<String> = chain.validators.iter().map(|k| k.public().to_string()).collect();
    let o = surplus(&[
        "ledger",
        "verify-proof",
        p(&proof),
        "--signer",
        &public,
        "--validators",
        &validators.join(","),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("commit certificate verified"), "{}", text(&o));
    // Voting powers: the same set with explicit powers of 1 passes; with a fifth validator of
    // power 100 who did not sign, the four signers hold 4 of 104 and the certificate fails.
    let ones: Vec<String> = validators.iter().map(|k| format!("{k}:1")).collect();
    let o = surplus(&["ledger", "verify-proof", p(&proof), "--validators", &ones.join(",")]);
    assert!(o.status.success(), "{}", text(&o));
    let heavy = format!("{},{}:100", validators.join(","), chain.users[0].public());
    let o = surplus(&["ledger", "verify-proof", p(&proof), "--validators", &heavy]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("voting power 4, a quorum of 70"), "{}", text(&o));
    let bad = format!("{}:lots", validators[0]);
    let o = surplus(&["ledger", "verify-proof", p(&proof), "--validators", &bad]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is not a number"), "{}", text(&o));

    // Against an older checkpoint.
    let o =
        surplus(&["ledger", "proof", "--data-dir", p(dir.path()), "--entry", "3", "--height", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    let old = dir.path().join("old.json");
    std::fs::write(&old, &o.stdout).unwrap();
    assert!(surplus(&["ledger", "verify-proof", p(&old)]).status.success());
    // An entry after the checkpoint cannot be proved against it.
    let o = surplus(&[
        "ledger",
        "proof",
        "--data-dir",
        p(dir.path()),
        "--entry",
        "30",
        "--height",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // Tampering: another entry, another signer, wrong validators.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    let entry = v["entry"].as_str().unwrap().to_owned();
    let mut b = hex::decode(&entry).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    v["entry"] = hex::encode(b).into();
    std::fs::write(&proof, serde_json::to_string(&v).unwrap()).unwrap();
    let o = surplus(&["ledger", "verify-proof", p(&proof), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    v["entry"] = entry.into();
    std::fs::write(&proof, serde_json::to_string(&v).unwrap()).unwrap();
    let other = chain.users[0].public().to_string();
    assert_eq!(
        surplus(&["ledger", "verify-proof", p(&proof), "--signer", &other]).status.code(),
        Some(1)
    );
    let wrong: Vec<String> = chain.users[..4].iter().map(|k| k.public().to_string()).collect();
    assert_eq!(
        surplus(&["ledger", "verify-proof", p(&proof), "--validators", &wrong.join(",")])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // No ledger in the data dir.
    let o = surplus(&["audit", "--data-dir", p(dir.path())]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("holds no ledger"), "{}", text(&o));
    // Garbage and missing files.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"garbage garbage garbage").unwrap();
    let o = surplus(&["audit", p(&junk)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("not a Surplus ledger export"), "{}", text(&o));
    let o = surplus(&["audit", p(&dir.path().join("missing"))]);
    assert_eq!(o.status.code(), Some(2));
    let o = surplus(&["ledger", "verify-proof", p(&junk)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("not a Surplus proof file"), "{}", text(&o));
    // Bad hex, bad key file.
    let o = surplus(&["audit", p(&junk), "--genesis-hash", "abc"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--genesis-hash"), "{}", text(&o));
    let o = surplus(&["key", "show", "--key", p(&junk)]);
    assert_eq!(o.status.code(), Some(2));
    // Neither a file nor a data dir.
    assert_eq!(surplus(&["audit"]).status.code(), Some(2));
    // A store another process holds open.
    let (d, _) = data_dir(1);
    let held = Store::open(&d.path().join("ledger"), store::Config::default()).unwrap();
    let o = surplus(&["audit", "--data-dir", p(d.path())]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("another process"), "{}", text(&o));
    drop(held);
    // An entry beyond the ledger.
    let o = surplus(&["ledger", "proof", "--data-dir", p(d.path()), "--entry", "999"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("beyond the ledger"), "{}", text(&o));
}

#[test]
fn a_damaged_store_is_an_audit_failure_naming_the_height() {
    let (dir, chain) = data_dir(3);
    // Damage the head header directly in sled.
    // A handle dropped a moment ago may still hold the file lock in sled's background threads.
    let config = sled::Config::new().path(dir.path().join("ledger")).flush_every_ms(None);
    let db = (0..200)
        .find_map(|_| {
            config.open().ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                None
            })
        })
        .expect("the store's lock is released");
    let key = [b"H".as_slice(), &3u64.to_be_bytes()].concat();
    let mut v = db.get(&key).unwrap().unwrap().to_vec();
    v[20] ^= 1;
    db.insert(key, v).unwrap();
    db.flush().unwrap();
    drop(db);
    let o = surplus(&["audit", "--data-dir", p(dir.path()), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["failure"]["height"], 3);
    let _ = chain;
}

#[test]
fn devnet_refuses_bad_arguments_and_writes_a_consortium_with_init_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("net");
    let o = surplus(&["devnet", "--nodes", "0", "--data-dir", &d.display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--nodes must be 1 to 16"), "{}", text(&o));
    let o =
        surplus(&["devnet", "--init-only", "--nodes", "2", "--data-dir", &d.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("devnet.json")).unwrap()).unwrap();
    assert_eq!(file["nodes"].as_array().unwrap().len(), 2);
    for n in ["dc1", "dc2"] {
        for f in ["node.key", "config.toml", "genesis.json", "inventory.toml"] {
            assert!(d.join(n).join(f).exists(), "{n}/{f} missing");
        }
    }
    // Resuming with another node count is refused with the way out.
    let o =
        surplus(&["devnet", "--init-only", "--nodes", "3", "--data-dir", &d.display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("pass --nodes 2"), "{}", text(&o));
}
