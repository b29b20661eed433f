//! Crash loop: under steady seeded load, a random validator gets SIGKILL at random moments, 20
//! times, and is restarted each time. Afterwards every acknowledged order is in the ledger, the
//! nodes' ledgers agree block by block (no fork), and each audits clean.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use surplus_ledger::store::{Config, Store};
use surplus_ledger::EntryKind;
use surplus_market::{Market, Order, SignedOrder};
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);
/// SIGKILLs in one run (the issue asks for at least 20). `SURPLUS_CRASH_KILLS` raises it.
const KILLS: usize = 20;

/// Polls `f` every 200 ms until it returns `Some`, for at most `limit`.
fn wait_for_or_none<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// A small deterministic generator (xorshift64*), so a failing run can be replayed by seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Ids of the order entries in a stopped node's ledger, and its block hashes by height.
fn ledger_of(data_dir: &Path) -> (HashSet<String>, Vec<[u8; 32]>) {
    let store = Store::open(&data_dir.join("ledger"), Config::default()).expect("open the ledger");
    let mut ids = HashSet::new();
    let mut hashes = Vec::new();
    for b in store.blocks(0) {
        let b = b.expect("read a block");
        hashes.push(b.header.hash());
        for e in b.entries.iter().filter(|e| e.kind == EntryKind::ORDER) {
            ids.insert(hex::encode(e.id()));
        }
    }
    (ids, hashes)
}

#[test]
fn twenty_sigkills_under_load_lose_no_acknowledged_order_and_fork_nothing() {
    let seed = std::env::var("SURPLUS_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let kills =
        std::env::var("SURPLUS_CRASH_KILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(KILLS);
    eprintln!("crash loop: seed {seed}, {kills} kills (SURPLUS_CRASH_SEED, SURPLUS_CRASH_KILLS)");
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 4, free_base(40), 100, 1000);
    let mut nodes = net.start_all();
    let apis: Vec<String> = nodes.iter().map(|n| n.api.0.clone()).collect();
    let chain_id = net.chain_id().to_owned();
    let buyers: Vec<_> = (0..3).map(|i| net.buyer(i)).collect();
    let market = Market::new("vm.2c8g", "eu-west-a");

    // Steady load: resting bids (1 unit a slot-hour, under every reserve) to random nodes,
    // about 40 a second, each acknowledged one remembered.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let load = {
        let (stop, acknowledged, apis) = (stop.clone(), acknowledged.clone(), apis.clone());
        let chain_id = chain_id.clone();
        std::thread::spawn(move || {
            let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
            let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
            let started = Instant::now();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) && sent < 20_000 && started.elapsed() < 5 * MINUTE {
                let bid = one_slot_bid(
                    &market,
                    1,
                    seed.wrapping_mul(1_000_000).wrapping_add(sent),
                    3_600_000,
                );
                let key = &buyers[(sent % 3) as usize];
                let (entry, _) = SignedOrder::sign(&chain_id, Order::Bid(bid), key);
                let which = rng.below(apis.len() as u64) as usize;
                let api = &apis[which];
                let body = serde_json::json!({ "entry": hex::encode(entry.encode()) });
                if let Ok(r) = agent.post(&format!("{api}/api/v1/entries")).send_json(body) {
                    if r.status() == 202 {
                        acknowledged.lock().unwrap().push(hex::encode(entry.id()));
                    }
                }
                sent += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };

    // The kills: a random validator, at a random moment, restarted at once.
    let mut rng = Rng(seed);
    for k in 0..kills {
        std::thread::sleep(Duration::from_millis(200 + rng.below(800)));
        let victim = rng.below(nodes.len() as u64) as usize;
        nodes[victim].kill();
        let dir = nodes[victim].dir.clone();
        nodes[victim] = NodeProc::start(&dir, &apis[victim]);
        nodes[victim].wait_up();
        eprintln!("crash loop: kill {} of {kills}: dc{} restarted", k + 1, victim + 1);
    }
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 100, "too little load to mean anything: {}", acknowledged.len());

    // Every acknowledged bid rests in the book of every node (they bid under every reserve and
    // do not expire for an hour), or the run failed to keep one.
    let all: Vec<Api> = apis.iter().map(|a| Api(a.clone())).collect();
    let buyer_keys: Vec<String> = (0..3).map(|i| hex::encode(net.buyer(i).public().0)).collect();
    for api in &all {
        let mut missing = acknowledged.len();
        let found = wait_for_or_none(2 * MINUTE, || {
            let mut ids = HashSet::new();
            for k in &buyer_keys {
                let orders = get(&format!("{}/api/v1/orders?account={k}", api.0)).ok()?;
                for o in orders.as_array()? {
                    ids.insert(o["id"].as_str()?.to_owned());
                }
            }
            missing = acknowledged.iter().filter(|id| !ids.contains(*id)).count();
            (missing == 0).then_some(())
        });
        assert!(
            found.is_some(),
            "{missing} of {} acknowledged orders never reached the book of {}",
            acknowledged.len(),
            api.0
        );
    }
    let refs: Vec<&Api> = all.iter().collect();
    let (height, _) = wait_converged(&refs, 1, 2 * MINUTE);
    for n in &mut nodes {
        n.stop();
    }

    // Every node's ledger: audits clean, agrees with the others at every common height, and
    // holds every acknowledged order.
    let mut reference: Option<Vec<[u8; 32]>> = None;
    for n in &nodes {
        if let Err(e) = audit(&n.dir) {
            panic!("{e}");
        }
        let (ids, hashes) = ledger_of(&n.dir);
        assert!(hashes.len() as u64 > height, "{} stops below the common head", n.dir.display());
        let missing: Vec<&String> = acknowledged.iter().filter(|id| !ids.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged orders are not in {}'s ledger, e.g. {:?}",
            missing.len(),
            acknowledged.len(),
            n.dir.display(),
            missing.first()
        );
        match &reference {
            None => reference = Some(hashes),
            Some(r) => {
                let common = r.len().min(hashes.len());
                assert_eq!(r[..common], hashes[..common], "a fork below height {common}");
            }
        }
    }
    eprintln!(
        "crash loop: {kills} kills survived, {} acknowledged orders, 0 lost, 0 forks, head {height}",
        acknowledged.len()
    );
}
