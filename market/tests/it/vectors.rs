//! Order test vectors: fixed orders and a cancel, signed with deterministic keys, give the same
//! payload, signing bytes, signature, entry and id on every machine. The expected values live in
//! `docs/vectors/order-v1.json` (specified by `docs/orders.md`, reproduced by the scripts in
//! `docs/scripts/`); regenerating them is a deliberate act:
//! `SURPLUS_REGEN_VECTORS=1 cargo test -p surplus-market --test it vectors`.

use serde_json::{json, Value};
use surplus_ledger::testutil::key;
use surplus_ledger::{Entry, SecretKey};
use surplus_market::*;

const CHAIN_ID: &str = "surplus-vectors";
/// A block time at which every vector order is valid against the sample catalogue.
const NOW: u64 = 1_700_000_000_000;

fn vectors_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors/order-v1.json")
}

fn h(b: impl AsRef<[u8]>) -> String {
    hex::encode(b)
}

/// u64 values are decimal strings: JavaScript numbers hold only 53 bits.
fn n64(v: u64) -> Value {
    Value::String(v.to_string())
}

fn order_json(order: &Order) -> Value {
    let market = |m: &Market| json!(m.to_string());
    match order {
        Order::Offer(o) => json!({
            "side": "offer",
            "market": market(&o.market),
            "slots": o.slots,
            "reserve": n64(o.reserve),
            "expiry_ms": n64(o.expiry_ms),
            "nonce": n64(o.nonce),
            "from_ms": n64(o.from_ms),
            "until_ms": n64(o.until_ms),
            "min_hours": o.min_hours,
        }),
        Order::Bid(b) => json!({
            "side": "bid",
            "market": market(&b.market),
            "slots": b.slots,
            "limit": n64(b.limit),
            "expiry_ms": n64(b.expiry_ms),
            "nonce": n64(b.nonce),
            "hours": b.hours,
            "earliest_ms": n64(b.earliest_ms),
            "latest_ms": n64(b.latest_ms),
            "fill": match b.fill {
                FillRule::AllOrNone => json!("all_or_none"),
                FillRule::AtLeast(n) => json!({ "at_least": n }),
            },
        }),
    }
}

fn vector(name: &str, key: &SecretKey, entry: &Entry, body: (&str, Value)) -> Value {
    let author = key.public();
    let mut v = json!({
        "name": name,
        "kind": entry.kind.0,
        "author": author.to_string(),
    });
    v[body.0] = body.1;
    v["payload"] = json!(h(&entry.payload));
    v["signing_bytes"] =
        json!(h(Entry::signing_bytes(CHAIN_ID, entry.kind, &author, &entry.payload)));
    let surplus_ledger::Auth::Signed { signature, .. } = entry.auth else {
        panic!("vector entries are signed")
    };
    v["signature"] = json!(signature.to_string());
    v["entry"] = json!(h(entry.encode()));
    v["id"] = json!(h(entry.id()));
    v
}

fn orders() -> Vec<(&'static str, u64, Order)> {
    vec![
        (
            "offer",
            1,
            Order::Offer(Offer {
                market: Market::new("vm.4c16g", "eu-west-a"),
                slots: 12,
                from_ms: NOW,
                until_ms: NOW + 720 * HOUR_MS,
                reserve: 2_500_000,
                min_hours: 24,
                expiry_ms: NOW + 24 * HOUR_MS,
                nonce: 0x0123_4567_89ab_cdef,
            }),
        ),
        (
            "bid-all-or-none",
            2,
            Order::Bid(Bid {
                market: Market::new("gpu.a100", "us-east-b"),
                slots: 4,
                hours: 72,
                limit: 3_250_000,
                earliest_ms: NOW + HOUR_MS,
                latest_ms: NOW + 25 * HOUR_MS,
                fill: FillRule::AllOrNone,
                expiry_ms: NOW + 48 * HOUR_MS,
                nonce: 1,
            }),
        ),
        (
            "bid-at-least",
            3,
            Order::Bid(Bid {
                market: Market::new("storage.block-tib", "ap-south-c"),
                slots: 40,
                hours: 8_760,
                limit: 180_000,
                earliest_ms: NOW,
                latest_ms: NOW + 168 * HOUR_MS,
                fill: FillRule::AtLeast(10),
                expiry_ms: NOW + 7 * 24 * HOUR_MS,
                nonce: 0xfedc_ba98_7654_3210,
            }),
        ),
    ]
}

fn compute() -> Value {
    let catalogue = Catalogue::sample();
    let mut vectors = Vec::new();
    let mut offer_id = None;
    for (name, user, order) in orders() {
        validate(&order, &catalogue, NOW).unwrap_or_else(|e| panic!("{name}: {e}"));
        let k = key("user", user);
        let (entry, signed) = SignedOrder::sign(CHAIN_ID, order.clone(), &k);
        entry.verify_signature(CHAIN_ID).unwrap();
        assert_eq!(signed.id, entry.id());
        assert_eq!(Order::decode(&order.encode()).unwrap(), order);
        let decoded = Entry::decode(&entry.encode()).unwrap();
        assert_eq!(SignedOrder::from_entry(&decoded).unwrap(), signed);
        // The same fields as the crate's own JSON form, u64 values aside.
        let mut numbers = order_json(&order);
        for f in numbers.as_object_mut().unwrap().values_mut() {
            if let Some(n) = f.as_str().and_then(|s| s.parse::<u64>().ok()) {
                *f = json!(n);
            }
        }
        assert_eq!(numbers, serde_json::to_value(&order).unwrap(), "{name}");
        if name == "offer" {
            offer_id = Some(signed.id);
        }
        vectors.push(vector(name, &k, &entry, ("order", order_json(&order))));
    }
    let offer_id = offer_id.expect("the offer comes first");
    let k = key("user", 1);
    let (entry, signed) = SignedCancel::sign(CHAIN_ID, offer_id, &k);
    entry.verify_signature(CHAIN_ID).unwrap();
    assert_eq!(SignedCancel::from_entry(&Entry::decode(&entry.encode()).unwrap()).unwrap(), signed);
    vectors.push(vector("cancel", &k, &entry, ("cancel", json!({ "order": h(offer_id) }))));

    let keys: Vec<Value> = (1..=3)
        .map(|i| {
            let k = key("user", i);
            json!({ "label": "user", "index": i, "seed": h(k.seed()), "public": k.public().to_string() })
        })
        .collect();
    json!({
        "description": "Surplus order and cancel entries, version 1; see docs/orders.md. Keys are ed25519 seeds blake3(\"surplus/test-key/\" || label || u64 index). Orders are written as elsewhere in Surplus JSON, except that u64 fields are decimal strings. The cancel cancels the offer. Every order is valid against the sample catalogue at valid_at_ms.",
        "chain_id": CHAIN_ID,
        "valid_at_ms": n64(NOW),
        "keys": keys,
        "vectors": vectors,
    })
}

/// Builds the payload of a vector from its JSON fields as `docs/orders.md` describes them, the
/// way an independent implementation would; the test checks it equals the crate's encoding.
fn spec_payload(v: &Value) -> Vec<u8> {
    let u32_of = |x: &Value| u32::try_from(x.as_u64().unwrap()).unwrap().to_be_bytes();
    let u64_of = |x: &Value| x.as_str().unwrap().parse::<u64>().unwrap().to_be_bytes();
    let short = |out: &mut Vec<u8>, s: &str| {
        out.push(u8::try_from(s.len()).unwrap());
        out.extend_from_slice(s.as_bytes());
    };
    let mut out = Vec::new();
    if let Some(c) = v.get("cancel") {
        out.extend(hex::decode(c["order"].as_str().unwrap()).unwrap());
        return out;
    }
    let o = &v["order"];
    let offer = o["side"] == "offer";
    out.push(if offer { 1 } else { 2 });
    let (class, region) = o["market"].as_str().unwrap().split_once('@').unwrap();
    short(&mut out, class);
    short(&mut out, region);
    out.extend(u32_of(&o["slots"]));
    out.extend(u64_of(&o[if offer { "reserve" } else { "limit" }]));
    out.extend(u64_of(&o["expiry_ms"]));
    out.extend(u64_of(&o["nonce"]));
    if offer {
        out.extend(u64_of(&o["from_ms"]));
        out.extend(u64_of(&o["until_ms"]));
        out.extend(u32_of(&o["min_hours"]));
    } else {
        out.extend(u32_of(&o["hours"]));
        out.extend(u64_of(&o["earliest_ms"]));
        out.extend(u64_of(&o["latest_ms"]));
        match &o["fill"] {
            Value::String(s) if s == "all_or_none" => out.push(1),
            f => {
                out.push(2);
                out.extend(u32_of(&f["at_least"]));
            }
        }
    }
    out
}

/// Rebuilds every byte string of the vectors from the formulas of `docs/orders.md`.
fn check_against_spec(doc: &Value) {
    let chain = doc["chain_id"].as_str().unwrap();
    for v in doc["vectors"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let hex_of = |field: &str| hex::decode(v[field].as_str().unwrap()).unwrap();
        let payload = spec_payload(v);
        assert_eq!(h(&payload), v["payload"], "{name}: payload");
        let kind = u16::try_from(v["kind"].as_u64().unwrap()).unwrap();
        let author = hex::decode(v["author"].as_str().unwrap()).unwrap();
        let tag = |t: &str| [&[t.len() as u8][..], t.as_bytes()].concat();
        let var = |b: &[u8]| [&(b.len() as u32).to_be_bytes()[..], b].concat();
        let signing = [
            tag("surplus/entry/v1"),
            vec![chain.len() as u8],
            chain.as_bytes().to_vec(),
            kind.to_be_bytes().to_vec(),
            author.clone(),
            var(&payload),
        ]
        .concat();
        assert_eq!(h(&signing), v["signing_bytes"], "{name}: signing bytes");
        let entry =
            [kind.to_be_bytes().to_vec(), vec![1], author, hex_of("signature"), var(&payload)]
                .concat();
        assert_eq!(h(&entry), v["entry"], "{name}: entry");
        let id = blake3::hash(&[tag("surplus/entry-id/v1"), entry].concat());
        assert_eq!(h(id.as_bytes()), v["id"], "{name}: id");
    }
}

#[test]
fn order_vectors_are_unchanged() {
    let got = compute();
    // Computing twice in one run gives the same bytes (no hidden randomness).
    assert_eq!(got, compute());
    check_against_spec(&got);
    let path = vectors_path();
    if std::env::var_os("SURPLUS_REGEN_VECTORS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        eprintln!("regenerated {}", path.display());
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let want: Value = serde_json::from_str(&text).unwrap();
    assert!(
        got == want,
        "the order format changed: {} no longer matches. If the change is deliberate, bump the \
         format version, regenerate with SURPLUS_REGEN_VECTORS=1 and update docs/orders.md.\n\
         got: {}",
        path.display(),
        serde_json::to_string_pretty(&got).unwrap()
    );
}
