//! `surplus market clear` on the documented example file and on bad files.

use std::process::Command;

use serde_json::{json, Value};
use surplus_ledger::testutil::key;
use surplus_market::{Bid, Catalogue, FillRule, Market, Offer, Order, SignedOrder, HOUR_MS};

const CHAIN: &str = "surplus-example";
const NOW: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn example_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/auction-input.json")
}

fn order_json(o: &SignedOrder) -> Value {
    json!({ "author": o.author, "signature": o.signature, "order": o.order })
}

/// The example of docs/auction.md: two offers and two bids; the price that trades the most
/// slot-hours is any of 60..=80, and the clearing price is its midpoint, 70.
fn example() -> Value {
    let m = Market::new("vm.4c16g", "eu-west-a");
    let offer = |slots, reserve, nonce| {
        Order::Offer(Offer {
            market: m.clone(),
            slots,
            from_ms: NOW - 24 * HOUR_MS,
            until_ms: NOW + 30 * 24 * HOUR_MS,
            reserve,
            min_hours: 1,
            expiry_ms: NOW + 7 * 24 * HOUR_MS,
            nonce,
        })
    };
    let bid = |slots, limit, nonce| {
        Order::Bid(Bid {
            market: m.clone(),
            slots,
            hours: 10,
            limit,
            earliest_ms: NOW - HOUR_MS,
            latest_ms: NOW + 24 * HOUR_MS,
            fill: FillRule::AtLeast(1),
            expiry_ms: NOW + 24 * HOUR_MS,
            nonce,
        })
    };
    let (_, a) = SignedOrder::sign(CHAIN, offer(5, 40, 1), &key("provider", 0));
    let (_, y) = SignedOrder::sign(CHAIN, bid(4, 50, 1), &key("buyer", 1));
    let (_, b) = SignedOrder::sign(CHAIN, offer(5, 60, 1), &key("provider", 1));
    let (x_entry, _) = SignedOrder::sign(CHAIN, bid(6, 80, 1), &key("buyer", 0));
    let mut lost = bid(1, 80, 2);
    if let Order::Bid(b) = &mut lost {
        b.market = Market::new("vm.4c16g", "moon-base-1");
    }
    let (_, lost) = SignedOrder::sign(CHAIN, lost, &key("buyer", 0));
    json!({
        "format": "surplus-auction-input/v1",
        "chain_id": CHAIN,
        "height": 42,
        "now_ms": NOW,
        "catalogue": Catalogue::sample(),
        "book": [
            { "height": 40, "author": a.author, "signature": a.signature, "order": a.order },
            { "height": 41, "author": y.author, "signature": y.signature, "order": y.order },
        ],
        "orders": [
            order_json(&b),
            { "entry": hex::encode(x_entry.encode()) },
            order_json(&lost),
        ],
        "balances": {
            key("buyer", 0).public().to_string(): 100_000,
            key("buyer", 1).public().to_string(): 100_000,
        },
    })
}

fn surplus(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_surplus")).args(args).output().unwrap()
}

#[test]
fn the_documented_example_clears_at_70() {
    let want = example();
    let path = example_path();
    if std::env::var_os("SURPLUS_REGEN_VECTORS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&want).unwrap() + "\n").unwrap();
    }
    let have: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(have, want, "docs/examples/auction-input.json changed; regenerate deliberately with SURPLUS_REGEN_VECTORS=1");

    let o = surplus(&["market", "clear", "--input", path.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["prices"]["vm.4c16g@eu-west-a"], 70, "{out}");
    let fills = out["fills"].as_array().unwrap();
    let slots: u64 = fills.iter().map(|f| f["slots"].as_u64().unwrap()).sum();
    assert_eq!(slots, 6);
    assert!(fills.iter().all(|f| f["buyer"] == key("buyer", 0).public().to_string()));
    assert_eq!(out["rejected"].as_array().unwrap().len(), 1);
    assert_eq!(out["rejected"][0]["reason"]["reason"], "unknown_market");

    let o = surplus(&["market", "clear", "--input", path.to_str().unwrap()]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("clearing price 70"), "{text}");
}

#[test]
fn bad_input_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.json");
    let run = |v: &Value| {
        std::fs::write(&path, serde_json::to_string(v).unwrap()).unwrap();
        let o = surplus(&["market", "clear", "--input", path.to_str().unwrap()]);
        (o.status.code(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    std::fs::write(&path, "{ not json").unwrap();
    let o = surplus(&["market", "clear", "--input", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an auction input file"));

    let mut v = example();
    v["format"] = json!("something-else");
    let (code, err) = run(&v);
    assert_eq!(code, Some(2));
    assert!(err.contains("format"), "{err}");

    let mut v = example();
    v["orders"][0]["signature"] = json!("00".repeat(64));
    let (code, err) = run(&v);
    assert_eq!(code, Some(2));
    assert!(err.contains("orders[0]") && err.contains("signature"), "{err}");

    let mut v = example();
    v["orders"][1]["entry"] = json!("zz");
    let (code, err) = run(&v);
    assert_eq!(code, Some(2));
    assert!(err.contains("orders[1]"), "{err}");

    let mut v = example();
    v["book"][0]["remaining"] = json!(99);
    let (code, err) = run(&v);
    assert_eq!(code, Some(2));
    assert!(err.contains("book[0]") && err.contains("remaining"), "{err}");

    let mut v = example();
    v["book"][0]["order"]["slots"] = json!(u64::MAX);
    let (code, _) = run(&v);
    assert_eq!(code, Some(2));

    let mut v = example();
    v["now_ms"] = json!(-5);
    let (code, _) = run(&v);
    assert_eq!(code, Some(2));

    // An error inside an order names the order and the field.
    let mut v = example();
    v["orders"][0]["order"]["slots"] = json!("many");
    let (code, err) = run(&v);
    assert_eq!(code, Some(2));
    assert!(err.contains("orders[0].order") && err.contains("expected u32"), "{err}");
    let mut v = example();
    v["orders"][2] =
        json!({ "author": v["orders"][2]["author"], "order": v["orders"][2]["order"] });
    let (code, err) = run(&v);
    assert_eq!(code, Some(2));
    assert!(err.contains("orders[2]") && err.contains("\"signature\""), "{err}");
    let mut v = example();
    v["now_ms"] = json!("soon");
    let (code, err) = run(&v);
    assert_eq!(code, Some(2));
    assert!(err.contains("now_ms") && err.contains("not a decimal number"), "{err}");

    // The same offer listed twice would be leased twice.
    let mut v = example();
    let again = v["book"][0].clone();
    v["book"].as_array_mut().unwrap().push(again);
    let (code, err) = run(&v);
    assert_eq!(code, Some(2));
    assert!(err.contains("book[2]") && err.contains("same order as book[0]"), "{err}");

    // Two different orders of one author with one nonce: replay protection never lets both rest.
    let mut v = example();
    let offer = |reserve| {
        let o = Order::Offer(Offer {
            market: Market::new("vm.4c16g", "eu-west-a"),
            slots: 1,
            from_ms: NOW - HOUR_MS,
            until_ms: NOW + 48 * HOUR_MS,
            reserve,
            min_hours: 1,
            expiry_ms: NOW + 24 * HOUR_MS,
            nonce: 77,
        });
        let (_, o) = SignedOrder::sign(CHAIN, o, &key("provider", 9));
        json!({ "height": 40, "author": o.author, "signature": o.signature, "order": o.order })
    };
    v["book"].as_array_mut().unwrap().extend([offer(40), offer(41)]);
    let (code, err) = run(&v);
    assert_eq!(code, Some(2));
    assert!(err.contains("book[3]") && err.contains("same author and nonce as book[2]"), "{err}");

    // A resting bid breaking the order rules (zero hours) is refused, not filled at cost 0.
    let mut v = example();
    let zero = Order::Bid(Bid {
        market: Market::new("vm.4c16g", "eu-west-a"),
        slots: 2,
        hours: 0,
        limit: 50,
        earliest_ms: NOW - HOUR_MS,
        latest_ms: NOW + 24 * HOUR_MS,
        fill: FillRule::AtLeast(1),
        expiry_ms: NOW + 24 * HOUR_MS,
        nonce: 9,
    });
    let (_, z) = SignedOrder::sign(CHAIN, zero, &key("buyer", 2));
    v["book"][1] =
        json!({ "height": 41, "author": z.author, "signature": z.signature, "order": z.order });
    let (code, err) = run(&v);
    assert_eq!(code, Some(2));
    assert!(err.contains("book[1]"), "{err}");

    // Leases on more slots at once than the offer has, or outside its window.
    let lease = |slots: u32, start: u64, end: u64| json!({ "bid": "ab".repeat(32), "start_ms": start, "end_ms": end, "slots": slots });
    let mut v = example();
    v["book"][0]["allocations"] =
        json!([lease(3, NOW - HOUR_MS, NOW + HOUR_MS), lease(3, NOW, NOW + 2 * HOUR_MS)]);
    let (code, err) = run(&v);
    assert_eq!(code, Some(2));
    assert!(err.contains("book[0]") && err.contains("6 slots leased"), "{err}");
    let mut v = example();
    v["book"][0]["allocations"] = json!([lease(1, NOW, NOW + 400 * 24 * HOUR_MS)]);
    let (code, err) = run(&v);
    assert_eq!(code, Some(2));
    assert!(err.contains("outside the offer's window"), "{err}");
    // The same bid and start twice: one lease cannot hold two allocations of one offer.
    let mut v = example();
    v["book"][0]["allocations"] =
        json!([lease(2, NOW, NOW + HOUR_MS), lease(3, NOW, NOW + HOUR_MS)]);
    let (code, err) = run(&v);
    assert_eq!(code, Some(2));
    assert!(err.contains("book[0]: allocations[1]") && err.contains("given twice"), "{err}");
    let mut other = lease(3, NOW, NOW + HOUR_MS);
    other["bid"] = json!("cd".repeat(32));
    v["book"][0]["allocations"] = json!([lease(2, NOW, NOW + HOUR_MS), other]);
    let (code, err) = run(&v);
    assert_eq!(code, Some(0), "five slots of five: {err}");
}

/// u64 values may be decimal strings, as in the order vectors ("Surplus JSON",
/// docs/orders.md §7): the same file with every u64 as a string clears the same.
#[test]
fn u64_values_may_be_decimal_strings() {
    fn stringify(v: &mut Value, key: &str) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    // The u64 fields (u32 fields such as slots stay numbers).
                    let u64_field = [
                        "from_ms",
                        "until_ms",
                        "reserve",
                        "expiry_ms",
                        "nonce",
                        "limit",
                        "earliest_ms",
                        "latest_ms",
                        "height",
                        "now_ms",
                        "start_ms",
                        "end_ms",
                    ]
                    .contains(&k.as_str())
                        || key == "balances";
                    if x.is_u64() && u64_field {
                        *x = json!(x.as_u64().unwrap().to_string());
                    } else {
                        stringify(x, k);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| stringify(x, key)),
            _ => {}
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.json");
    let clear = |v: &Value| {
        std::fs::write(&path, serde_json::to_string(v).unwrap()).unwrap();
        let o = surplus(&["market", "clear", "--input", path.to_str().unwrap(), "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let plain = example();
    let mut strings = plain.clone();
    stringify(&mut strings, "");
    assert!(strings["now_ms"].is_string() && strings["book"][0]["order"]["nonce"].is_string());
    assert!(strings["balances"].as_object().unwrap().values().all(Value::is_string));
    let out = clear(&strings);
    assert_eq!(out, clear(&plain));
    assert!(!out["fills"].as_array().unwrap().is_empty(), "{out}");
}

/// A reader that goes away (`| head`) is not a crash.
#[test]
fn a_closed_pipe_is_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.json");
    std::fs::write(&path, serde_json::to_string(&example()).unwrap()).unwrap();
    for json in [false, true] {
        let mut args = vec!["market", "clear", "--input", path.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_surplus"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    }
}
