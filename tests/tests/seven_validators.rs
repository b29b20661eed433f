//! Byzantine fault tolerance with seven validators (power 1 each; a block needs 5 votes), with
//! real node processes: stopping any two keeps the chain committing; stopping a third halts it
//! (four votes can decide nothing) without a fork; when one of the three returns the chain
//! resumes, and every node ends with the same blocks.

use std::collections::BTreeMap;
use std::time::Duration;

use surplus_client::Client;
use surplus_ledger::Hash;
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

/// Every block hash any node reported, by height: a second hash at one height is a fork.
#[derive(Default)]
struct Seen(BTreeMap<u64, Hash>);

impl Seen {
    /// Records the blocks `from..=to` of `api`.
    fn record(&mut self, api: &Client, from: u64, to: u64) {
        for h in from..=to {
            let Some(hash) = api.block_hash(h) else { continue };
            let known = *self.0.entry(h).or_insert(hash);
            assert_eq!(known, hash, "fork at height {h}: {} holds another block", api.base());
        }
    }
}

fn heads(apis: &[&Client]) -> Vec<u64> {
    apis.iter().map(|a| a.head().map_or(0, |h| h.0)).collect()
}

#[test]
fn seven_validators_commit_with_two_stopped_halt_with_three_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init(tmp.path(), 7, free_base(80));
    let mut nodes = net.start_all();
    let apis: Vec<Client> = nodes.iter().map(|n| n.api.clone()).collect();
    let all: Vec<&Client> = apis.iter().collect();
    let (start, _) = wait_converged(&all, 5, 2 * MINUTE);
    assert_eq!(apis[0].chain().unwrap().validators.len(), 7);
    let mut seen = Seen::default();

    // Any two: drawn from a seed the failure message names.
    let seed = std::process::id() as u64;
    let mut rng = Rng(seed);
    let mut order: Vec<usize> = (0..7).collect();
    for i in (1..7).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let (two, third) = ([order[0], order[1]], order[2]);
    eprintln!(
        "seven validators (seed {seed}): stopping dc{} and dc{}, then dc{}",
        two[0] + 1,
        two[1] + 1,
        third + 1
    );
    for i in two {
        nodes[i].stop();
    }
    let live: Vec<&Client> = (0..7).filter(|i| !two.contains(i)).map(|i| &apis[i]).collect();
    let h = heads(&live).into_iter().max().unwrap_or(0);
    let (at, _) = wait_converged(&live, h + 20, 2 * MINUTE);
    for a in &live {
        seen.record(a, start, at);
    }

    // A third: the five left hold 4 votes of 7, and nothing more commits.
    nodes[third].stop();
    let live: Vec<&Client> =
        (0..7).filter(|i| !two.contains(i) && *i != third).map(|i| &apis[i]).collect();
    // A block decided just before the stop may still be arriving; then the heads stay.
    std::thread::sleep(Duration::from_secs(3));
    let halted = heads(&live);
    let top = *halted.iter().max().unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let later = heads(&live);
    assert!(
        later.iter().all(|h| *h <= top),
        "blocks committed with only four validators of seven running: {halted:?}, then {later:?}"
    );
    for a in &live {
        seen.record(a, at, top);
    }

    // One returns: five votes again, and the chain resumes.
    nodes[third] = NodeProc::start(&net.data_dir(third), apis[third].base());
    nodes[third].wait_up();
    let mut back = live.clone();
    back.push(&apis[third]);
    let (resumed, _) = wait_converged(&back, top + 10, 2 * MINUTE);
    for a in &back {
        seen.record(a, start, resumed);
    }

    // The other two return and catch up to the same blocks.
    for i in two {
        nodes[i] = NodeProc::start(&net.data_dir(i), apis[i].base());
        nodes[i].wait_up();
    }
    let (end, _) = wait_converged(&all, resumed + 5, 2 * MINUTE);
    for a in &all {
        seen.record(a, start, end);
    }
    for n in nodes.iter_mut() {
        n.stop();
    }
    let report = audit(&net.data_dir(two[0])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report["verified"], true, "{report}");
}
