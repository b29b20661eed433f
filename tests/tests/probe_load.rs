//! Probing at scale, opt-in (`SURPLUS_PROBE_LOAD=1 cargo test -p surplus-tests --test
//! probe_load -- --nocapture`): a 4-node devnet with 1,000 one-slot leases (250 bids into a
//! market of each node's; a node that also sells in another's market fills some of its bids),
//! each probed by the other nodes at its provider's /healthz, with a 60 s
//! interval and `[supervision] max_probes_per_second` set to 40. Over three intervals it prints
//! each node's probe targets and counters, and checks that no node ever started more probes
//! within one second than its bound (the node's own count of starts per sliding second), that
//! none was skipped, and that nothing was found down. Without the variable it says it skipped.

use std::time::Duration;

use surplus_market::{Market, Order, SignedOrder};
use surplus_tests::*;

const LEASES_PER_NODE: u64 = 250;
const BOUND: u64 = 40;

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn probing_a_thousand_leases_keeps_each_node_within_its_rate_bound() {
    if std::env::var("SURPLUS_PROBE_LOAD").as_deref() != Ok("1") {
        eprintln!("skipped: set SURPLUS_PROBE_LOAD=1 to run the 1,000-lease probing measurement");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base(40);
    let net = Devnet::init_args(tmp.path(), 4, base, 200, 1_000, &["--probe-interval-secs", "60"]);
    let mut markets = Vec::new();
    for i in 0..4 {
        let dir = net.data_dir(i);
        // Room for the leases: every pool of the inventory sells 200 slots.
        let inv = dir.join("inventory.toml");
        let text = std::fs::read_to_string(&inv).unwrap();
        let text: String = text
            .lines()
            .map(
                |l| if l.starts_with("slots = ") { "slots = 200".to_owned() } else { l.to_owned() },
            )
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&inv, text + "\n").unwrap();
        set_config(&dir.join("config.toml"), "max_probes_per_second", &BOUND.to_string());
        // Its first market that no node before it sells in (dc4 sells in dc1's region).
        let v: toml::Value = toml::from_str(&std::fs::read_to_string(&inv).unwrap()).unwrap();
        let (market, reserve) = v["pool"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let m = Market::new(p["class"].as_str().unwrap(), p["region"].as_str().unwrap());
                (m, p["reserve"].as_integer().unwrap() as u64)
            })
            .find(|(m, _)| !markets.iter().any(|(t, _): &(Market, u64)| t == m))
            .expect("a market of its own");
        markets.push((market, reserve));
    }
    let mut nodes = net.start_all();
    let apis: Vec<_> = nodes.iter().map(|n| n.operator_api()).collect();
    for (i, (market, _)) in markets.iter().enumerate() {
        wait_for_offer(&apis[i], market, &net.node_key(i));
    }
    // 250 one-slot bids into each provider's first market, from three buyers.
    let mut nonce = now();
    for (i, (market, reserve)) in markets.iter().enumerate() {
        for k in 0..LEASES_PER_NODE {
            nonce += 1;
            let bid = one_slot_bid(market, *reserve, nonce, 600_000);
            let (entry, _) =
                SignedOrder::sign(net.chain_id(), Order::Bid(bid), &net.buyer(k as usize % 3));
            apis[i].submit(&entry).unwrap_or_else(|e| panic!("bid {k} refused: {e}"));
        }
    }
    let started = std::time::Instant::now();
    let total = wait_for("1,000 leases with probe targets", Duration::from_secs(600), || {
        let mut n = 0;
        for i in 0..4 {
            let l = apis[0].leases(Some(&net.node_key(i)), Some(1_000)).ok()?.leases;
            n += l.iter().filter(|l| l.probe.is_some()).count() as u64;
        }
        (n >= 4 * LEASES_PER_NODE).then_some(n)
    });
    eprintln!("1,000 leases with probe targets after {:?}", started.elapsed());
    // Three whole intervals of probing.
    std::thread::sleep(Duration::from_secs(190));
    for (i, n) in nodes.iter().enumerate() {
        let m = n.api.metrics().unwrap();
        let (targets, up, down) = (
            metric(&m, "surplus_probe_targets"),
            metric(&m, "surplus_probes_up_total"),
            metric(&m, "surplus_probes_down_total"),
        );
        let (waits, skipped, max) = (
            metric(&m, "surplus_probe_rate_waits_total"),
            metric(&m, "surplus_probes_skipped_total"),
            metric(&m, "surplus_probes_max_per_second"),
        );
        eprintln!(
            "dc{}: targets {targets}, probes up {up} down {down}, waited {waits}, skipped {skipped}, \
             most started within one second {max} (bound {BOUND})",
            i + 1
        );
        // Every lease but its own (a node may sell in another's market and fill its bids).
        let own = apis[0].leases(Some(&net.node_key(i)), Some(1_000)).unwrap().leases.len() as u64;
        assert_eq!(targets, total - own, "dc{}: the other providers' leases", i + 1);
        assert!(max <= BOUND, "dc{}: {max} probes within a second, bound {BOUND}", i + 1);
        assert_eq!((skipped, down), (0, 0), "dc{}", i + 1);
    }
    for n in &mut nodes {
        n.stop();
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}
