//! The same bad requests to a devnet node (its own process, one of four validators) and to the
//! in-process node the web tests run on (`surplus_service::solo`, a consortium of one) must get
//! the same status and code: a drift between the two would hide what users of a real
//! consortium see.

use std::time::Duration;

use anyhow::{anyhow, Result};
use serde_json::{json, Value};
use surplus_contracts::Tx;
use surplus_ledger::{Auth, Entry, EntryKind, SecretKey};
use surplus_market::{Bid, FillRule, Market, Offer, Order, SignedCancel, SignedOrder, HOUR_MS};

/// A request and what it is meant to draw.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Option<Value>,
}

/// Sends `method path [body]` to `base`; returns the status and the error code (empty on
/// success).
fn call(base: &str, case: &Case) -> Result<(u16, String)> {
    let url = format!("{base}{}", case.path);
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let req = agent.request(case.method, &url);
    let resp = match &case.body {
        Some(b) => req.set("Content-Type", "application/json").send_string(&b.to_string()),
        None => req.call(),
    };
    let (status, body) = match resp {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => return Err(anyhow!("{} {url}: {e}", case.method)),
    };
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    Ok((status, v["error"]["code"].as_str().unwrap_or_default().to_owned()))
}

fn submit(entry: &Entry) -> Option<Value> {
    Some(json!({ "entry": hex::encode(entry.encode()) }))
}

/// The bad requests, each signed for `chain_id` where it carries a signature, so that every
/// check before the one meant to fail passes on either node; `market` is in both catalogues.
fn cases(chain_id: &str, market: &Market, now_ms: u64) -> Vec<Case> {
    // A key no genesis funds: the same account state on both nodes.
    let k = SecretKey::from_seed([0x9a; 32]);
    let offer = |f: &dyn Fn(&mut Offer)| {
        let mut o = Offer {
            market: market.clone(),
            slots: 1,
            from_ms: now_ms,
            until_ms: now_ms + 48 * HOUR_MS,
            reserve: 10,
            min_hours: 1,
            expiry_ms: now_ms + HOUR_MS,
            nonce: 7,
        };
        f(&mut o);
        SignedOrder::sign(chain_id, Order::Offer(o), &k).0
    };
    let bid = Order::Bid(Bid {
        market: market.clone(),
        slots: 1,
        hours: 1,
        limit: 100,
        earliest_ms: now_ms,
        latest_ms: now_ms + HOUR_MS,
        fill: FillRule::AllOrNone,
        expiry_ms: now_ms + HOUR_MS,
        nonce: 8,
    });
    let tx = |t: Tx| Entry::signed(chain_id, t.kind(), t.encode(), &k);
    let mut unsigned = offer(&|_| {});
    unsigned.auth = Auth::System;
    let entry = |name, e: Entry| Case {
        name,
        method: "POST",
        path: "/api/v1/entries".into(),
        body: submit(&e),
    };
    let get = |name, path: String| Case { name, method: "GET", path, body: None };
    let unknown = hex::encode([0x42u8; 32]);
    vec![
        Case {
            name: "not hex",
            method: "POST",
            path: "/api/v1/entries".into(),
            body: Some(json!({"entry": "zz"})),
        },
        Case {
            name: "undecodable entry",
            method: "POST",
            path: "/api/v1/entries".into(),
            body: Some(json!({"entry": "0102"})),
        },
        Case {
            name: "unknown field",
            method: "POST",
            path: "/api/v1/entries".into(),
            body: Some(json!({"entry": "00", "extra": 1})),
        },
        entry("system kind", Entry::signed(chain_id, EntryKind::FILL, vec![1, 2, 3], &k)),
        entry("unsigned", unsigned),
        entry("oversized", Entry::signed(chain_id, EntryKind::ORDER, vec![0; 5000], &k)),
        entry("malformed order", Entry::signed(chain_id, EntryKind::ORDER, vec![9; 9], &k)),
        entry("other chain", SignedOrder::sign("another-chain", bid.clone(), &k).0),
        entry(
            "unknown market",
            offer(&|o| o.market = Market::new("vm.nonexistent", market.region.as_str())),
        ),
        entry("zero slots", offer(&|o| o.slots = 0)),
        entry("expired", offer(&|o| o.expiry_ms = now_ms - 1)),
        entry("closes too soon", offer(&|o| o.expiry_ms = now_ms + 1_500)),
        entry("window inverted", offer(&|o| o.until_ms = o.from_ms)),
        entry("unfunded bid", SignedOrder::sign(chain_id, bid, &k).0),
        entry("cancel of nothing", SignedCancel::sign(chain_id, [0x42; 32], &k).0),
        entry("empty transfer", tx(Tx::Transfer { to: k.public(), amount: 5, seq: 0 })),
        entry(
            "transfer over balance",
            tx(Tx::Transfer { to: SecretKey::from_seed([1; 32]).public(), amount: 5, seq: 0 }),
        ),
        entry("unknown lease", tx(Tx::Terminate { lease: [0x42; 32], seq: 0 })),
        entry(
            "far sequence",
            tx(Tx::Transfer { to: SecretKey::from_seed([1; 32]).public(), amount: 5, seq: 1000 }),
        ),
        get("unknown submission", format!("/api/v1/submissions/{unknown}")),
        get("bad submission id", "/api/v1/submissions/xyz".into()),
        get("unknown lease view", format!("/api/v1/leases/{unknown}")),
        get("unknown block", "/api/v1/blocks/99999999".into()),
        get("bad key", "/api/v1/accounts/nothex".into()),
        get("unknown route", "/api/v1/nothing".into()),
        get("bad limit", "/api/v1/blocks?limit=100000".into()),
        Case { name: "method", method: "DELETE", path: "/api/v1/status".into(), body: None },
    ]
}

/// Sends every bad request to the devnet node at `real` and the in-process node at `test` (each with
/// its own chain id, read from its status) and returns the cases whose status or code differ,
/// as `name: real (status, code) vs test (status, code)`, with the count of cases compared.
pub fn compare(
    real: &str,
    test: &str,
    market: &Market,
    now_ms: u64,
) -> Result<(usize, Vec<String>)> {
    let chain = |base: &str| -> Result<String> { Ok(crate::client(base).status()?.chain_id) };
    let (real_chain, test_chain) = (chain(real)?, chain(test)?);
    let real_cases = cases(&real_chain, market, now_ms);
    let test_cases = cases(&test_chain, market, now_ms);
    let mut differ = Vec::new();
    for (r, t) in real_cases.iter().zip(&test_cases) {
        let a = call(real, r)?;
        let b = call(test, t)?;
        if a != b || a.0 < 400 {
            differ.push(format!("{}: real {a:?} vs test {b:?}", r.name));
        }
    }
    Ok((real_cases.len(), differ))
}
