//! A hostile HTTP client against a real node process: malformed JSON, huge bodies, wrong
//! signatures, another account's credential, a client that never finishes its request. Each gets
//! a clear 4xx or is cut off, and nothing in the state changes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use surplus_api::{AccountView, CredentialRequest, GatewayRequest, LeaseList};
use surplus_client::Client;
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
fn snapshot(api: &Client, keys: &[surplus_ledger::PublicKey]) -> (Vec<AccountView>, LeaseList) {
    let accounts = keys.iter().map(|k| api.account(k).unwrap()).collect();
    (accounts, api.leases(None, Some(1000)).unwrap())
}

#[test]
fn hostile_requests_get_clear_4xx_or_are_cut_off_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 4, free_base(40), 200, 1000);
    let nodes = net.start_all();
    let apis: Vec<Client> = nodes.iter().map(|n| n.api.clone()).collect();
    let chain_id = net.chain_id().to_owned();
    let (buyer, other) = (net.buyer(0), net.buyer(1));
    let addr = apis[1].base().trim_start_matches("http://").to_owned();

    // A real lease of the buyer, for the credential attempts.
    let (market, reserve) = first_pool(&net.data_dir(0));
    wait_for_offer(&apis[0], &market, &net.node_key(0));
    let bid = one_slot_bid(&market, reserve * 2, 1, 600_000);
    let (entry, _) = SignedOrder::sign(&chain_id, Order::Bid(bid), &buyer);
    assert_eq!(apis[0].submit(&entry).unwrap(), entry.id());
    let lease = wait_for("the buyer's lease, granted", 2 * MINUTE, || {
        let l = apis[0].leases(Some(&buyer.public()), None).ok()?;
        let lease = l.leases.first()?;
        assert_eq!(lease.fill.buyer, buyer.public(), "another account's lease");
        lease.grant.is_some().then_some(lease.id)
    });

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
    let (s, code) = refusal("a forged signature", apis[1].submit(&forged));
    assert_eq!(s, 400, "{code}");
    let mut stolen = Entry::signed(&chain_id, EntryKind::ORDER, entry.payload.clone(), &other);
    if let (
        surplus_ledger::Auth::Signed { author, .. },
        surplus_ledger::Auth::Signed { author: real, .. },
    ) = (&mut stolen.auth, &entry.auth)
    {
        *author = *real;
    }
    let (s, code) = refusal("a stolen author", apis[1].submit(&stolen));
    assert_eq!(s, 400, "{code}");

    // Another account's credential: a challenge signed by the wrong key, a garbage signature.
    let (s, code) = refusal("another key's credential", apis[0].fetch_credential(&lease, &other));
    assert_eq!(s, 403, "{code}");
    let c = apis[0].challenge(&lease).unwrap();
    assert_eq!((c.chain_id.as_str(), c.lease), (chain_id.as_str(), lease));
    let bad =
        CredentialRequest { challenge: c.challenge, signature: Signature([7; 64]).to_string() };
    let (s, code) = refusal("a garbage signature", apis[0].credential(&lease, &bad));
    assert_eq!(s, 403, "{code}");
    let not_a_token =
        GatewayRequest { token: "not-a-token".into(), operation: "read".into(), lease: None };
    let (s, code) = refusal("not a token", apis[0].gateway(&not_a_token));
    assert!((400..500).contains(&s), "{s} {code}");

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
    assert_eq!(apis[1].status().unwrap().chain_id, chain_id);
    drop(nodes);
}
