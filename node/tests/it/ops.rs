//! Operator commands run as real processes: `surplus init`, `surplus genesis`, and the sample
//! provisioning hook `surplus hook sample`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use surplus_ledger::testutil::key;

use super::{p, surplus, text};

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

fn init(dir: &Path, name: &str, extra: &[&str]) -> Output {
    let mut args = vec!["init", "--data-dir", p(dir), "--name", name];
    args.extend_from_slice(extra);
    surplus(&args)
}

#[test]
fn init_writes_a_private_key_and_a_config_and_never_overwrites_silently() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dc1");
    let o = init(&dir, "dc1", &["--p2p-port", "17000", "--http-port", "18080", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v = json_of(&o);
    let public = v["public_key"].as_str().unwrap().to_owned();
    assert_eq!(public.len(), 64);
    assert!(v["peer_id"].as_str().unwrap().starts_with("12D3KooW"), "{v}");
    let key_file = dir.join("node.key");
    assert_eq!(v["key_file"], p(&key_file));
    assert_eq!(v["config"], p(&dir.join("config.toml")));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The key file is the one `surplus key show` reads.
    let o = surplus(&["key", "show", "--key", p(&key_file)]);
    assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), public);
    // The config carries the name and ports, with every key commented.
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    let parsed: toml::Table = config.parse().unwrap();
    assert_eq!(parsed["name"].as_str(), Some("dc1"));
    assert_eq!(
        parsed["p2p"]["listen"].as_array().unwrap()[1].as_str(),
        Some("/ip4/0.0.0.0/udp/17000/quic-v1")
    );
    assert_eq!(parsed["http"]["listen"].as_str(), Some("127.0.0.1:18080"));
    assert_eq!(parsed["consensus"]["listen"].as_str(), Some("/ip4/0.0.0.0/tcp/7100"));
    assert!(config.contains("# Where the libp2p swarm listens"));

    // A second init refuses, and leaves the key alone.
    let o = init(&dir, "dc1", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already exists") && text(&o).contains("--force"), "{}", text(&o));
    let o = surplus(&["key", "show", "--key", p(&key_file)]);
    assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), public);

    // --force replaces it, keeping the old key as a backup, and says so.
    let o = init(&dir, "dc1", &["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("old key") && text(&o).contains("next steps"), "{}", text(&o));
    let o = surplus(&["key", "show", "--key", p(&key_file)]);
    assert_ne!(String::from_utf8(o.stdout).unwrap().trim(), public);
    let backups: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.file_name().unwrap().to_str().unwrap().starts_with("node.key.replaced-"))
        .collect();
    assert_eq!(backups.len(), 1);
    let o = surplus(&["key", "show", "--key", p(&backups[0])]);
    assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), public);

    // A name that cannot be a validator name.
    let o = init(&tmp.path().join("x"), "DC One", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--name"), "{}", text(&o));
    assert!(!tmp.path().join("x").join("node.key").exists());
}

#[test]
fn genesis_from_inited_nodes_and_its_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let mut keys = Vec::new();
    for i in 1..=4 {
        let dir = tmp.path().join(format!("dc{i}"));
        let o = init(&dir, &format!("dc{i}"), &["--json"]);
        assert!(o.status.success(), "{}", text(&o));
        keys.push(json_of(&o)["public_key"].as_str().unwrap().to_owned());
    }
    let treasury = key("treasury", 0).public().to_string();
    let buyer = key("buyer", 0).public().to_string();
    let out = tmp.path().join("genesis.json");
    let v = |i: usize| format!("dc{}={}", i + 1, keys[i]);
    let dc4_key = format!("dc4={}", p(&tmp.path().join("dc4").join("node.key")));
    let alloc = format!("{buyer}=5000000");
    let (v0, v1, v2) = (v(0), v(1), v(2));
    let base: Vec<&str> = vec![
        "genesis",
        "--chain-id",
        "surplus-test",
        "--validator",
        &v0,
        "--validator",
        &v1,
        "--validator",
        &v2,
        "--validator-key-file",
        &dc4_key,
        "--treasury",
        &treasury,
        "--fee-bps",
        "50",
        "--alloc",
        &alloc,
        "--time-ms",
        "1700000000000",
        "--out",
        p(&out),
    ];
    let o = surplus(&[base.as_slice(), &["--json"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    let summary = json_of(&o);
    assert_eq!(summary["genesis_hash"].as_str().unwrap().len(), 64);
    let g: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(g["chain_id"], "surplus-test");
    assert_eq!(g["genesis_time_ms"], 1_700_000_000_000u64);
    let names: Vec<&str> =
        g["validators"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dc1", "dc2", "dc3", "dc4"]);
    assert_eq!(g["validators"][3]["public_key"], keys[3].as_str());
    assert_eq!(g["params"]["treasury"], treasury.as_str());
    assert_eq!(g["params"]["fee_bps"], 50);
    assert!(!g["params"]["catalogue"]["classes"].as_array().unwrap().is_empty());
    assert_eq!(g["allocations"], json!([{ "account": buyer, "amount": 5_000_000 }]));

    // The same input gives the same genesis hash; an existing file needs --force.
    let o = surplus(&base);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("already exists"), "{}", text(&o));
    let o = surplus(&[base.as_slice(), &["--force", "--json"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(json_of(&o)["genesis_hash"], summary["genesis_hash"]);

    // Refusals name the flag and what is wrong.
    let other = tmp.path().join("other.json");
    let refused = |args: &[&str], says: &[&str]| {
        let o = surplus(&[args, &["--out", p(&other)]].concat());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        for s in says {
            assert!(text(&o).contains(s), "{args:?}: {}", text(&o));
        }
        assert!(!other.exists());
    };
    let common = ["genesis", "--chain-id", "c1", "--treasury", &treasury];
    refused(
        &[&common[..], &["--validator", &v0, "--validator", &format!("dc9={}", keys[0])]].concat(),
        &["--validator", "the same key as validators[0]"],
    );
    refused(
        &[&common[..], &["--validator", &v0, "--validator", &format!("dc1={}", keys[1])]].concat(),
        &["validators[1].name", "also validators[0]"],
    );
    refused(
        &[&common[..], &["--validator", "dc1=abcd"]].concat(),
        &["--validator dc1", "32 bytes"],
    );
    refused(&[&common[..], &["--validator", "dc1"]].concat(), &["NAME=HEXKEY"]);
    refused(&common, &["--validator NAME=HEXKEY"]);
    refused(
        &["genesis", "--chain-id", "Bad Id", "--treasury", &treasury, "--validator", &v0],
        &["--chain-id", "chain id"],
    );
    refused(
        &[&common[..], &["--validator", &v0, "--alloc", &format!("{buyer}=lots")]].concat(),
        &["--alloc", "whole number"],
    );
    refused(
        &[&common[..], &["--validator", &v0, "--alloc", &alloc, "--alloc", &alloc]].concat(),
        &["--alloc", "allocations[1].account"],
    );
    refused(
        &[&common[..], &["--validator", &v0, "--fee-bps", "10001"]].concat(),
        &["--fee-bps", "10000"],
    );
    let catalogue = tmp.path().join("catalogue.json");
    std::fs::write(&catalogue, r#"{"classes": [], "regions": []}"#).unwrap();
    refused(
        &[&common[..], &["--validator", &v0, "--catalogue", p(&catalogue)]].concat(),
        &["--catalogue", "at least one class"],
    );
    std::fs::write(&catalogue, "[]").unwrap();
    refused(
        &[&common[..], &["--validator", &v0, "--catalogue", p(&catalogue)]].concat(),
        &["--catalogue", "not a catalogue"],
    );
    // A catalogue of its own.
    std::fs::write(
        &catalogue,
        r#"{"classes": [{"id": "gpu.h100", "description": "one H100"}], "regions": [{"id": "lab"}]}"#,
    )
    .unwrap();
    let o = surplus(
        &[&common[..], &["--validator", &v0, "--catalogue", p(&catalogue), "--out", p(&other)]]
            .concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let g: Value = serde_json::from_str(&std::fs::read_to_string(&other).unwrap()).unwrap();
    assert_eq!(g["params"]["catalogue"]["classes"][0]["id"], "gpu.h100");
}

fn hook(dir: &Path, event: &Value) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_surplus"))
        .args(["hook", "sample", "--dir", p(dir)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(event.to_string().as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_sample_hook_provisions_and_releases_a_lease_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let id = "ab".repeat(32);
    let buyer = key("buyer", 0).public().to_string();
    let ev = |e: &str| {
        json!({
            "event": e,
            "lease": { "id": id, "fill": { "buyer": buyer, "slots": 2 } },
            "lease_id": id,
            "chain_id": "surplus-test",
        })
    };
    let o = hook(tmp.path(), &ev("start"));
    assert!(o.status.success(), "{}", text(&o));
    let access = json_of(&o);
    assert_eq!(access["user"], "lease-abababababab");
    assert_eq!(access["host"], "127.0.0.1");
    assert_eq!(access["buyer"], buyer.as_str());
    let lease_dir = tmp.path().join(&id);
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(lease_dir.join("access.json")).unwrap())
            .unwrap();
    assert_eq!(written, access);
    assert_eq!(
        Path::new(access["path"].as_str().unwrap()).canonicalize().unwrap(),
        lease_dir.canonicalize().unwrap()
    );

    let o = hook(tmp.path(), &ev("end"));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(json_of(&o)["released"], true);
    assert!(!lease_dir.exists());

    // Garbage in: a clear failure, and nothing created.
    let o = hook(tmp.path(), &json!({ "event": "start" }));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("not a lease event"), "{}", text(&o));
    let mut bad = ev("start");
    bad["lease_id"] = "../escape".into();
    let o = hook(tmp.path(), &bad);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("64 lowercase hex"), "{}", text(&o));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
