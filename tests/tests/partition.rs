//! Partition: four validators, each in a network namespace of its own on a shared bridge
//! (`surplus_tests::netlab`). Under steady order load, one validator is cut off from the others
//! for a minute. The other three keep committing; after the cut heals the fourth catches up;
//! at no moment do two nodes hold different blocks at one height; and every order any node
//! acknowledged, the cut-off one included, ends up in every ledger; and the healed validator
//! takes part in consensus again: it signs commits within 20 s of catching up, then proposes,
//! which over TCP takes its engine noticing that no peer takes its consensus messages and
//! restarting its network under a fresh peer id (`consensus::Status::cut_off`,
//! `consensus::Running::reconnect`).
//!
//! Needs root for `ip netns`. `SURPLUS_PARTITION_SECONDS` sets the length of the cut (60).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use surplus_client::Client;
use surplus_ledger::Hash;
use surplus_market::Market;
use surplus_tests::netlab::NetLab;
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);
/// The validator that gets cut off.
const CUT: usize = 3;
/// How soon after catching up the healed validator must sign commits again. Its engine restarts
/// a few seconds after the heal, while it still catches up, so it usually signs the first
/// blocks after it caught up.
const REJOIN: Duration = Duration::from_secs(20);

/// What the test has seen: the block hash each node reported at each height. A second hash at
/// a height already seen is a fork.
#[derive(Default)]
struct Seen(BTreeMap<u64, (Hash, usize)>);

impl Seen {
    fn record(&mut self, node: usize, height: u64, hash: Hash) {
        match self.0.get(&height) {
            Some((h, first)) => assert!(
                *h == hash,
                "fork: dc{} holds block {} at height {height}, dc{} held {}",
                node + 1,
                hex::encode(hash),
                first + 1,
                hex::encode(h)
            ),
            None => {
                self.0.insert(height, (hash, node));
            }
        }
    }

    fn poll(&mut self, apis: &[Client]) -> Vec<Option<u64>> {
        apis.iter()
            .enumerate()
            .map(|(i, a)| {
                let (height, hash) = a.head()?;
                self.record(i, height, hash);
                Some(height)
            })
            .collect()
    }
}

#[test]
fn one_validator_cut_off_for_a_minute_under_load_catches_up_without_a_fork() {
    let cut_for = Duration::from_secs(
        std::env::var("SURPLUS_PARTITION_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60),
    );
    let lab = NetLab::new(4).unwrap_or_else(|e| panic!("the partition test needs root: {e:#}"));
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 4, free_base(40), 100, 1000);
    let urls = lab.place(&net).expect("move the devnet into the namespaces");
    let dirs: Vec<std::path::PathBuf> = net.file["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["data_dir"].as_str().unwrap().into())
        .collect();
    let mut nodes: Vec<NodeProc> =
        (0..4).map(|i| NodeProc::start_in(&dirs[i], &urls[i], Some(&lab.netns(i)))).collect();
    for n in &nodes {
        n.wait_up();
    }
    let apis: Vec<Client> = urls.iter().map(|u| client(u)).collect();
    let refs: Vec<&Client> = apis.iter().collect();
    wait_converged(&refs, 2, 2 * MINUTE);

    // Steady load to every node, the one about to be cut off included.
    let market = Market::new("vm.2c8g", "eu-west-a");
    let load_started = Instant::now();
    let load = OrderLoad::start(&net, &apis, &market, 11, Duration::from_millis(25));
    let mut seen = Seen::default();
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(5) {
        seen.poll(&apis);
        std::thread::sleep(Duration::from_millis(250));
    }

    lab.isolate(CUT).expect("cut the link");
    eprintln!("partition: dc{} cut off at {:.2} s", CUT + 1, load_started.elapsed().as_secs_f64());
    let cut_at = seen.poll(&apis);
    let started = Instant::now();
    let mut during = cut_at.clone();
    while started.elapsed() < cut_for {
        during = seen.poll(&apis);
        std::thread::sleep(Duration::from_millis(250));
    }
    let acked_during_cut = load.acknowledged();
    let majority_from = cut_at[0].expect("dc1 answers");
    let majority_to = during[0].expect("dc1 answers");
    let cut_node = (cut_at[CUT], during[CUT]);
    eprintln!(
        "partition: during the {} s cut dc1 went from height {majority_from} to {majority_to}; \
         the cut-off dc{} from {:?} to {:?}",
        cut_for.as_secs(),
        CUT + 1,
        cut_node.0,
        cut_node.1
    );
    assert!(
        majority_to >= majority_from + 10,
        "the three connected validators stopped committing: {majority_from} → {majority_to}"
    );

    lab.heal(CUT).expect("heal the link");
    eprintln!("partition: healed at {:.2} s", load_started.elapsed().as_secs_f64());
    let healed = Instant::now();
    // Caught up: past the height the others had when the cut healed, and within a few blocks
    // of their head now (the chain keeps growing while it syncs).
    let caught_up = wait_for_or_none(5 * MINUTE, || {
        let heights = seen.poll(&apis);
        let mine = heights[CUT]?;
        let head = heights[0]?;
        (mine >= majority_to && mine + 3 >= head).then_some(mine)
    });
    let Some(caught_up) = caught_up else {
        panic!("dc{} never caught up to height {majority_to} after the cut healed", CUT + 1)
    };
    eprintln!(
        "partition: dc{} caught up to height {caught_up} (majority was at {majority_to} when the \
         cut healed) {:.1} s after healing",
        CUT + 1,
        healed.elapsed().as_secs_f64()
    );
    let caught_at = Instant::now();
    // Does the healed validator take part in consensus again? Over TCP its votes first reach
    // no one (its peers kept their old connections: docs/reliability.md, Partition) until it
    // restarts its engine's network under a fresh peer id; within REJOIN of catching up it must
    // sign commits again, and then propose (proposers rotate, so about a quarter of the blocks).
    let key = net.node_key(CUT);
    let took_part = |from: u64| -> Option<(usize, usize, usize)> {
        let top = apis[0].head()?.0;
        let recent = apis[0].blocks(Some(top + 1), Some(100)).ok()?;
        let after: Vec<u64> = recent.iter().map(|b| b.height).filter(|h| *h > from).collect();
        let proposed = recent.iter().filter(|b| b.height > from && b.proposer == key).count();
        let signed = after
            .iter()
            .filter(|h| {
                apis[0].block(**h, false).is_ok_and(|b| {
                    b.certificate
                        .is_some_and(|c| c.signatures.iter().any(|s| s.signer == Some(key)))
                })
            })
            .count();
        Some((proposed, signed, after.len()))
    };
    let mut last = (0, 0, 0);
    let votes = wait_for_or_none(REJOIN, || {
        let from = apis[0].head()?.0;
        std::thread::sleep(Duration::from_secs(2));
        last = took_part(from)?;
        (last.1 > 0).then_some(caught_at.elapsed())
    });
    eprintln!(
        "partition: dc{} {} {:.1} s after catching up (last 2 s: proposed {}, signed {} of {} \
         blocks)",
        CUT + 1,
        if votes.is_some() { "votes again" } else { "does not vote" },
        caught_at.elapsed().as_secs_f64(),
        last.0,
        last.1,
        last.2
    );
    assert!(
        votes.is_some(),
        "partition heal: dc{} caught up but signed no commit within {REJOIN:?} (last 2 s: proposed \
         {}, signed {} of {})",
        CUT + 1,
        last.0,
        last.1,
        last.2
    );
    let proposes = wait_for_or_none(MINUTE, || {
        let from = apis[0].head()?.0;
        std::thread::sleep(Duration::from_secs(5));
        last = took_part(from)?;
        (last.0 > 0).then_some(caught_at.elapsed())
    });
    assert!(
        proposes.is_some(),
        "partition heal: dc{} votes but proposes no block (last 5 s: proposed {}, signed {} of {})",
        CUT + 1,
        last.0,
        last.1,
        last.2
    );
    let restarts = apis[CUT]
        .metrics()
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("surplus_consensus_restarts_total "))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "?".into());
    eprintln!(
        "partition: dc{} proposes again {:.1} s after catching up ({restarts} consensus engine \
         restart(s))",
        CUT + 1,
        proposes.unwrap_or_default().as_secs_f64()
    );
    // A few more seconds of load with everyone connected.
    let after = Instant::now();
    while after.elapsed() < Duration::from_secs(5) {
        seen.poll(&apis);
        std::thread::sleep(Duration::from_millis(250));
    }
    let (sent, acknowledged) = load.finish();
    assert!(acknowledged.len() >= 100, "too little load to mean anything: {}", acknowledged.len());

    assert_in_every_book(&net, &apis, &acknowledged, 3 * MINUTE);
    assert_committed(&apis, &acknowledged, 2 * MINUTE);
    let (height, _) = wait_converged(&refs, 1, 2 * MINUTE);
    for n in &mut nodes {
        n.stop();
    }
    let dir_refs: Vec<&std::path::Path> = dirs.iter().map(|d| d.as_path()).collect();
    assert_ledgers_agree(&dir_refs, &acknowledged, height);
    eprintln!(
        "partition: healed; {sent} orders sent, {} acknowledged ({acked_during_cut} by the end \
         of the cut), 0 lost, 0 forks in {} heights seen, head {height}",
        acknowledged.len(),
        seen.0.len()
    );
}
