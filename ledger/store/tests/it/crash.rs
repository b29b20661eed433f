//! Crash safety: a child process appends blocks in a loop and is killed with SIGKILL at random
//! moments; after every reopen the ledger verifies and holds every block whose append returned.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use surplus_ledger::testutil::TestChain;
use surplus_ledger::NoHook;
use surplus_store as store;
use surplus_store::Store;

const DIR_VAR: &str = "SURPLUS_CRASH_CHILD_DIR";
const KILLS: usize = 24;
/// Bounds the child's loop, so that a child the parent fails to kill still ends.
const CHILD_MAX_BLOCKS: u64 = 5_000;

/// The child: not a test of its own (ignored), run by `appends_survive_sigkill` as a process.
#[test]
#[ignore = "child process of appends_survive_sigkill"]
fn crash_child() {
    let dir = std::env::var(DIR_VAR).expect("run by appends_survive_sigkill");
    let mut s = Store::open(dir.as_ref(), store::Config::default()).unwrap();
    let mut chain = match s.state() {
        None => {
            let c = TestChain::new("crash-chain", 4, 8);
            s.append(&c.blocks[0]).unwrap();
            println!("ACK 0");
            TestChain::resume(s.state().unwrap())
        }
        Some(state) => TestChain::resume(state),
    };
    for _ in 0..CHILD_MAX_BLOCKS {
        let entries = chain.signed_entries(20, 100);
        let block = chain.push_block(entries);
        let a = s.append(&block).unwrap();
        // Only now is the block acknowledged.
        println!("ACK {}", a.height);
    }
}

#[test]
fn appends_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut acked: Option<u64> = None;
    let mut kills = 0;
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["crash::crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(h) = line.strip_prefix("ACK ") {
                    let _ = tx.send(h.trim().parse::<u64>().unwrap());
                }
            }
        });
        // Wait for the child to acknowledge at least one block (bounded), then a random moment.
        let first =
            rx.recv_timeout(Duration::from_secs(60)).expect("the child acknowledged no block");
        acked = Some(acked.map_or(first, |a| a.max(first)));
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        for h in rx.try_iter() {
            acked = Some(acked.map_or(h, |a| a.max(h)));
        }
        kills += 1;

        let s = Store::open(dir.path(), store::Config::default())
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let height = s.height().unwrap();
        let want = acked.unwrap();
        assert!(
            height >= want,
            "round {round}: acknowledged height {want} but the store holds {height}"
        );
        let report = s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
        assert_eq!(report.head_height, height);
    }
    assert_eq!(kills, KILLS);
    assert!(
        acked.unwrap() > KILLS as u64,
        "the children appended too little to exercise the store"
    );
}

const PRUNE_DIR_VAR: &str = "SURPLUS_PRUNE_CRASH_CHILD_DIR";
const PRUNE_KILLS: usize = 8;

/// The child of `prunes_survive_sigkill`: appends blocks and prunes all but the newest few
/// after each.
#[test]
#[ignore = "child process of prunes_survive_sigkill"]
fn prune_crash_child() {
    let dir = std::env::var(PRUNE_DIR_VAR).expect("run by prunes_survive_sigkill");
    let mut s = Store::open(dir.as_ref(), store::Config::default()).unwrap();
    let mut chain = match s.state() {
        None => {
            let c = TestChain::new("crash-chain", 4, 8);
            s.append(&c.blocks[0]).unwrap();
            TestChain::resume(s.state().unwrap())
        }
        Some(state) => TestChain::resume(state),
    };
    for _ in 0..CHILD_MAX_BLOCKS {
        let entries = chain.signed_entries(7, 100);
        let block = chain.push_block(entries);
        let a = s.append(&block).unwrap();
        let p = s.prune(a.height.saturating_sub(2)).unwrap();
        println!("ACK {} {}", a.height, p.base);
    }
}

/// SIGKILL at random moments of appends and prunes: the store reopens, holds every
/// acknowledged block and at least the acknowledged base, and audits from its base.
#[test]
fn prunes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x9e7);
    let mut acked = (0u64, 0u64);
    for round in 0..PRUNE_KILLS {
        let mut child = Command::new(&exe)
            .args([
                "crash::prune_crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PRUNE_DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut parts =
                    line.strip_prefix("ACK ").into_iter().flat_map(str::split_whitespace);
                if let (Some(h), Some(b)) = (parts.next(), parts.next()) {
                    let _ = tx.send((h.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()));
                }
            }
        });
        let first =
            rx.recv_timeout(Duration::from_secs(60)).expect("the child acknowledged no block");
        acked = acked.max(first);
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        for a in rx.try_iter() {
            acked = acked.max(a);
        }

        let s = Store::open(dir.path(), store::Config::default())
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let height = s.height().unwrap();
        assert!(height >= acked.0, "round {round}: acknowledged {acked:?}, holds {height}");
        assert!(s.base() >= acked.1, "round {round}: acknowledged {acked:?}, base {}", s.base());
        let report = s.audit(&Default::default(), &mut NoHook, &mut |_| {}).unwrap();
        assert_eq!((report.head_height, report.from_height), (height, s.base()));
        s.block(height).unwrap();
    }
    assert!(acked.0 > PRUNE_KILLS as u64, "the children appended too little: {acked:?}");
}
