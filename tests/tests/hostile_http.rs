//! A hostile HTTP client against a real node process: malformed JSON, huge bodies, wrong
//! signatures, another account's credential, a client that never finishes its request. Each gets
//! a clear 4xx or is cut off, and nothing in the state changes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use surplus_ledger::{Entry, EntryKind, Signature};
use surplus_market::{Order, SignedOrder};
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

/// A raw HTTP/1.1 exchange: sends `request`, reads until the server closes or 30 s pass.
fn raw(addr: &str, request: &[u8]) -> (Option<u16>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The server may answer and close before it has read a huge body: a failed write is fine.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok());
    (status, text)
}

fn post_raw(addr: &str, path: &str, ctype: &str, body: &[u8]) -> (Option<u16>, String) {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw(addr, &req)
}

/// The JSON error of a raw answer.
fn error_code(text: &str) -> Value {
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str::<Value>(body).map(|v| v["error"]["code"].clone()).unwrap_or(Value::Null)
}

/// What hostile requests must not change: every account and every lease.
fn snapshot(api: &Api, keys: &[surplus_ledger::PublicKey]) -> Value {
    let accounts: Vec<(u64, u64)> = keys.iter().map(|k| api.account(k).unwrap()).collect();
    let leases = get(&format!("{}/api/v1/leases?limit=1000", api.0)).unwrap();
    json!({ "accounts": accounts, "leases": leases["leases"] })
}

#[test]
fn hostile_requests_get_clear_4xx_or_are_cut_off_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 4, free_base(40), 200, 1000);
    let nodes = net.start_all();
    let apis: Vec<Api> = nodes.iter().map(|n| Api(n.api.0.clone())).collect();
    let chain_id = net.chain_id().to_owned();
    let (buyer, other) = (net.buyer(0), net.buyer(1));
    let addr = apis[1].0.trim_start_matches("http://").to_owned();

    // A real lease of the buyer, for the credential attempts.
    let (market, reserve) =
        first_pool(Path::new(net.file["nodes"][0]["data_dir"].as_str().unwrap()));
    wait_for_offer(&apis[0], &market, net.file["nodes"][0]["public_key"].as_str().unwrap());
    let bid = one_slot_bid(&market, reserve * 2, 1, 600_000);
    let (entry, _) = SignedOrder::sign(&chain_id, Order::Bid(bid), &buyer);
    assert_eq!(apis[0].submit(&entry).unwrap().0, 202);
    let lease_id = wait_for("the buyer's lease, granted", 2 * MINUTE, || {
        let l = apis[0].leases(&buyer.public()).ok()?;
        let lease = l.first()?;
        lease["grant"].is_object().then(|| lease["id"].as_str().unwrap().to_owned())
    });
    let lease: surplus_ledger::Hash = hex::decode(&lease_id).unwrap().try_into().unwrap();

    // Quiet chain: what the requests below must leave as it is.
    let keys = [buyer.public(), other.public()];
    let before = snapshot(&apis[1], &keys);

    // Malformed JSON, the wrong content type, unknown fields, bad hex, a truncated entry.
    let entries = "/api/v1/entries";
    let cases: [(&str, &[u8], u16, &str); 5] = [
        ("application/json", b"{\"entry\": ", 400, "bad_json"),
        ("text/plain", b"{\"entry\": \"00\"}", 415, "unsupported_media_type"),
        ("application/json", b"{\"entry\": \"00\", \"x\": 1}", 400, "bad_json"),
        ("application/json", b"{\"entry\": \"zz\"}", 400, "bad_hex"),
        ("application/json", b"{\"entry\": \"0010\"}", 400, "malformed_entry"),
    ];
    for (ctype, body, status, code) in cases {
        let (s, text) = post_raw(&addr, entries, ctype, body);
        assert_eq!(s, Some(status), "{text}");
        assert_eq!(error_code(&text), code, "{text}");
    }

    // A huge body is refused without being read whole (413, or the connection is cut).
    let huge = vec![b'a'; 8 << 20];
    let (s, text) = post_raw(&addr, entries, "application/json", &huge);
    assert!(s.is_none() || s == Some(413), "{text}");

    // A bid whose signature is wrong, and one signed by someone else than its author.
    let mut forged = entry.clone();
    if let surplus_ledger::Auth::Signed { signature, .. } = &mut forged.auth {
        signature.0[0] ^= 1;
    }
    let (s, v) = apis[1].submit(&forged).unwrap();
    assert_eq!(s, 400, "{v}");
    let mut stolen = Entry::signed(&chain_id, EntryKind::ORDER, entry.payload.clone(), &other);
    if let (
        surplus_ledger::Auth::Signed { author, .. },
        surplus_ledger::Auth::Signed { author: real, .. },
    ) = (&mut stolen.auth, &entry.auth)
    {
        *author = *real;
    }
    let (s, v) = apis[1].submit(&stolen).unwrap();
    assert_eq!(s, 400, "{v}");

    // Another account's credential: a challenge signed by the wrong key, a garbage signature.
    let (s, v) = apis[0].fetch_credential(&chain_id, &lease, &other).unwrap();
    assert_eq!(s, 403, "{v}");
    let (code, c) =
        post(&format!("{}/api/v1/leases/{lease_id}/challenge", apis[0].0), &Value::Null).unwrap();
    assert_eq!(code, 200);
    let bad =
        json!({ "challenge": c["challenge"], "signature": hex::encode(Signature([7; 64]).0) });
    let (s, v) = post(&format!("{}/api/v1/leases/{lease_id}/credential", apis[0].0), &bad).unwrap();
    assert_eq!(s, 403, "{v}");
    let (s, v) = apis[0].gateway("not-a-token").unwrap();
    assert!((400..500).contains(&s), "{s} {v}");

    // A client that never finishes its request head is cut off (with 408 or a close).
    let started = Instant::now();
    let (s, text) =
        raw(&addr, format!("GET /api/v1/status HTTP/1.1\r\nHost: {addr}\r\n").as_bytes());
    assert!(s.is_none() || s == Some(408), "{text}");
    assert!(started.elapsed() < Duration::from_secs(30), "the slow client was never cut off");

    // Nothing changed, on any node, and the node still answers.
    for api in &apis {
        assert_eq!(snapshot(api, &keys), before);
    }
    assert_eq!(apis[1].status().unwrap()["chain_id"], chain_id.as_str());
    drop(nodes);
}
