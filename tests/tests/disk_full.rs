//! Bounded disk: a one-validator devnet node whose data directory is on a 64 MiB filesystem
//! the test mounts (tmpfs; a loop-mounted ext4 image if tmpfs cannot be mounted) fills it under
//! order load. Below its `[disk] min_free_bytes` it refuses submissions with 503 and the
//! reason, keeps committing blocks and answers reads as before; every order it acknowledged
//! is committed; once the filler is deleted it takes submissions again by itself. Then the
//! filesystem is filled to the last byte (ENOSPC) under the same load: a write of the ledger,
//! the engine's WAL or the journal fails, and the node stops its runtime without exiting
//! (`runtime::Builder::run_until`). The process never exits: once the filler is deleted it
//! reopens its stores and starts again by itself (no one restarts it), its head advances, its
//! disk is no longer low and it takes submissions again; its store stays whole — it audits
//! clean, holds every acknowledged order and the same blocks it served.
//!
//! The node logs outside the small filesystem, so that what it says on a full disk is kept.
//!
//! Needs root (mount). Without it the test says so loudly and passes without running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use surplus_client::Client;
use surplus_ledger::Hash;
use surplus_market::{Market, Order, SignedOrder};
use surplus_tests::*;

/// Size of the filesystem the test mounts.
const FS_BYTES: u64 = 64 * 1024 * 1024;
/// The node's threshold: it refuses submissions with less free.
const MIN_FREE: u64 = 16 * 1024 * 1024;

/// A filesystem mounted for the test; unmounted (lazily, so a leftover handle cannot keep it)
/// when dropped, whatever happened.
struct Mounted {
    dir: PathBuf,
    how: &'static str,
}

impl Mounted {
    /// A `FS_BYTES` tmpfs at `dir`, else an ext4 image on a loop device; `Err` says why
    /// neither could be mounted.
    fn small(dir: &Path, image: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let size = format!("size={FS_BYTES}");
        let tmpfs =
            Command::new("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(dir).output();
        match tmpfs {
            Ok(o) if o.status.success() => return Ok(Self { dir: dir.to_owned(), how: "tmpfs" }),
            Ok(o) => eprintln!("tmpfs mount failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => eprintln!("cannot run mount: {e}"),
        }
        let run = |c: &mut Command| -> Result<(), String> {
            let o = c.output().map_err(|e| format!("{c:?}: {e}"))?;
            if o.status.success() {
                Ok(())
            } else {
                Err(format!("{c:?}: {}", String::from_utf8_lossy(&o.stderr)))
            }
        };
        let f = std::fs::File::create(image).map_err(|e| e.to_string())?;
        f.set_len(FS_BYTES).map_err(|e| e.to_string())?;
        run(Command::new("mkfs.ext4").args(["-q", "-F", "-m", "0"]).arg(image))?;
        run(Command::new("mount").args(["-o", "loop"]).arg(image).arg(dir))?;
        Ok(Self { dir: dir.to_owned(), how: "ext4 on a loop device" })
    }

    /// Bytes available on it.
    fn available(&self) -> u64 {
        let out = Command::new("stat").args(["-f", "--format=%a %S"]).arg(&self.dir).output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        let mut it = text.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
        it.next().unwrap_or(0) * it.next().unwrap_or(0)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.dir).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Writes `bytes` of filler at `path` (or until the filesystem is full); returns what it wrote.
fn fill(path: &Path, bytes: u64) -> u64 {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("filler");
    let chunk = vec![0x5au8; 1 << 20];
    let mut written = 0u64;
    while written < bytes {
        let n = chunk.len().min((bytes - written) as usize);
        match f.write(&chunk[..n]) {
            Ok(0) | Err(_) => break,
            Ok(k) => written += k as u64,
        }
    }
    let _ = f.sync_all();
    written
}

/// A fresh resting bid of buyer 0 (1 unit a slot-hour, under every reserve).
fn bid(net: &Devnet, market: &Market, nonce: u64) -> surplus_ledger::Entry {
    let order = Order::Bid(one_slot_bid(market, 1, nonce, 3_600_000));
    SignedOrder::sign(net.chain_id(), order, &net.buyer(0)).0
}

fn disk(api: &Client) -> Option<surplus_api::DiskStatus> {
    api.status().ok()?.disk
}

fn metric(api: &Client, name: &str) -> Option<f64> {
    let text = api.metrics().ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Block hashes the node serves, heights 1..=`to`.
fn served_hashes(api: &Client, to: u64) -> Vec<Hash> {
    (1..=to)
        .map(|h| wait_for(&format!("block {h}"), Duration::from_secs(10), || api.block_hash(h)))
        .collect()
}

#[test]
fn a_node_on_a_full_disk_refuses_with_503_keeps_every_acknowledged_order_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = match Mounted::small(&tmp.path().join("fs"), &tmp.path().join("fs.img")) {
        Ok(m) => m,
        Err(why) => {
            eprintln!(
                "\n!!!!! SKIPPED disk_full: cannot mount a small filesystem for the node's data \
                 directory (needs root: `mount -t tmpfs` or a loop device): {why} !!!!!\n"
            );
            return;
        }
    };
    eprintln!("the node's data directory is on a {} MiB {}", FS_BYTES >> 20, mnt.how);
    let net = Devnet::init(&mnt.dir, 1, free_base(10));
    let dir = net.data_dir(0);
    // A small threshold, measured often.
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    let mut config: String = config
        .lines()
        .filter(|l| !l.starts_with("min_free_bytes") && !l.starts_with("check_interval_ms"))
        .map(|l| format!("{l}\n"))
        .collect();
    if config.contains("\n[disk]\n") {
        config = config.replace(
            "\n[disk]\n",
            &format!("\n[disk]\nmin_free_bytes = {MIN_FREE}\ncheck_interval_ms = 200\n"),
        );
    } else {
        config
            .push_str(&format!("\n[disk]\nmin_free_bytes = {MIN_FREE}\ncheck_interval_ms = 200\n"));
    }
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let api_url = net.file["nodes"][0]["api"].as_str().unwrap().to_owned();
    let log = tmp.path().join("node.log");
    let mut node = NodeProc::start_logging_to(&dir, &api_url, &log);
    node.wait_up();
    let api = node.api.clone();
    // The first measurement is taken before the ledger is opened: wait for one after.
    let d = wait_for("a disk measurement", Duration::from_secs(10), || {
        disk(&api).filter(|d| d.used_bytes.ledger > 0)
    });
    assert!(!d.low && d.min_free_bytes == MIN_FREE, "{d:?}");

    // Load: a bid every 20 ms; what the node acknowledges (202) is kept.
    let market = Market::new("vm.2c8g", "eu-west-a");
    let load =
        OrderLoad::start(&net, std::slice::from_ref(&api), &market, 11, Duration::from_millis(20));
    wait_for("some acknowledged bids", Duration::from_secs(30), || {
        (load.acknowledged() >= 20).then_some(())
    });

    // Fill the filesystem to half the threshold: the node refuses within a measurement.
    let filler = mnt.dir.join("filler");
    let target = mnt.available().saturating_sub(MIN_FREE / 2);
    fill(&filler, target);
    let low = wait_for("the node to see the disk low", Duration::from_secs(10), || {
        disk(&api).filter(|d| d.low)
    });
    assert!(low.free_bytes < MIN_FREE, "{low:?}");
    let (h1, _) = api.head().expect("the head");
    let (status, code) = refusal("a bid on a low disk", api.submit(&bid(&net, &market, 1)));
    assert_eq!((status, code.as_str()), (503, "unavailable"));
    match api.submit(&bid(&net, &market, 2)) {
        Err(surplus_client::Error::Refused { message, .. }) => assert!(
            message.contains("disk") && message.contains("threshold") && message.contains("free"),
            "{message}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Blocks keep committing, reads answer, /metrics and the status say why.
    wait_for("blocks while the disk is low", Duration::from_secs(20), || {
        api.head().filter(|(h, _)| *h >= h1 + 5)
    });
    assert_eq!(metric(&api, "surplus_disk_low"), Some(1.0));
    assert!(metric(&api, "surplus_submissions_refused_disk_total").unwrap_or(0.0) >= 2.0);
    assert!(metric(&api, "surplus_disk_free_bytes").is_some_and(|f| f < MIN_FREE as f64));
    let text = api.metrics().unwrap();
    for part in ["ledger", "consensus", "journal", "provisioning", "snapshots", "exports"] {
        let line = format!("surplus_disk_used_bytes{{part=\"{part}\"}} ");
        assert!(text.lines().any(|l| l.starts_with(&line)), "no {line:?} in\n{text}");
    }
    let refused_while_low = wait_for_or_none(Duration::from_secs(3), || {
        let before = metric(&api, "surplus_submissions_refused_disk_total")?;
        std::thread::sleep(Duration::from_millis(500));
        let after = metric(&api, "surplus_submissions_refused_disk_total")?;
        (after > before).then_some(after)
    });
    assert!(refused_while_low.is_some(), "the load is refused while the disk is low");
    // Every bid acknowledged before is committed, as the low node itself answers.
    let (_, mut acked) = load.finish();
    assert!(acked.len() >= 20, "{}", acked.len());
    assert_committed(std::slice::from_ref(&api), &acked, Duration::from_secs(60));

    // Space back: the node takes submissions again by itself.
    std::fs::remove_file(&filler).unwrap();
    wait_for("the node to see the space back", Duration::from_secs(10), || {
        disk(&api).filter(|d| !d.low)
    });
    let again = api.submit(&bid(&net, &market, 3)).expect("a bid once space is back");
    assert_eq!(metric(&api, "surplus_disk_low"), Some(0.0));
    wait_for("the bid taken after recovery to commit", Duration::from_secs(20), || {
        api.submission(&again)
            .ok()
            .filter(|s| matches!(s.submission, surplus_api::Submission::Committed { .. }))
    });

    // Now to the last byte: ENOSPC under load for a few seconds, then space back. The node
    // process must not exit: it refuses while it serves, and once a write fails it stops its
    // runtime (the API is down meanwhile) and waits for room.
    let load =
        OrderLoad::start(&net, std::slice::from_ref(&api), &market, 12, Duration::from_millis(20));
    wait_for("bids acknowledged again", Duration::from_secs(30), || {
        (load.acknowledged() >= 10).then_some(())
    });
    let (h_before_full, _) = api.head().expect("the head");
    let written = fill(&filler, FS_BYTES);
    eprintln!("filled the filesystem to the last byte ({written} bytes of filler) at height {h_before_full}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(node.running(), "the node exited on a full disk:\n{}", log_tail(&log, 40));
    match api.submit(&bid(&net, &market, 4)) {
        // Still serving: it refuses (the threshold).
        Err(surplus_client::Error::Refused { status, .. }) => assert_eq!(status, 503),
        Ok(id) => panic!("a bid acknowledged on a full disk: {}", hex::encode(id)),
        Err(e) => eprintln!("on a full disk the API does not answer ({e})"),
    }
    let h_full = api.head().map_or(h_before_full, |(h, _)| h);
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let (sent, more) = load.finish();
    eprintln!("under the full-disk load {sent} bids were sent and {} acknowledged", more.len());
    assert!(!more.is_empty());
    acked.extend(more);
    // Space is back: the same process resumes by itself — its head advances past where it
    // stood, its disk is not low, it takes submissions again.
    let h_resumed = wait_for("the node to resume by itself", Duration::from_secs(120), || {
        assert!(node.running(), "the node exited after a full disk:\n{}", log_tail(&log, 40));
        let (h, _) = api.head()?;
        (disk(&api).is_some_and(|d| !d.low) && h > h_full + 2).then_some(h)
    });
    let resumed_after = freed.elapsed();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let restarts = log_text.matches("starting the node again in this process").count();
    let failed = log_text.lines().find(|l| l.contains("a write to the data directory failed"));
    eprintln!(
        "on a full disk the node {} (height {h_before_full} when filled, {h_full} while full); \
         it resumed by itself {:.1} s after the filler was deleted (height {h_resumed})",
        if restarts > 0 {
            format!("stopped its runtime on a failed write and started it again {restarts} time(s)")
        } else {
            "kept running".to_owned()
        },
        resumed_after.as_secs_f64()
    );
    if let Some(line) = failed {
        eprintln!("its log: {line}");
    }
    assert!(node.running(), "the node exited:\n{}", log_tail(&log, 40));
    let last = api.submit(&bid(&net, &market, 5)).expect("a bid once the disk has room again");
    let mut all = acked;
    all.push(Ack { id: hex::encode(again), node: 0, at: 0.0, fills: false });
    all.push(Ack { id: hex::encode(last), node: 0, at: 0.0, fills: false });
    assert_committed(std::slice::from_ref(&api), &all, Duration::from_secs(60));
    let (height, _) = api.head().unwrap();
    let served = served_hashes(&api, height);
    assert!(node.running(), "the node exited:\n{}", log_tail(&log, 40));
    node.stop();
    // The store is whole: it audits clean, holds every acknowledged order, and the blocks the
    // node served are the blocks it holds.
    assert_ledgers_agree(&[&dir], &all, height);
    let (_, hashes) = ledger_of(&dir);
    assert_eq!(&hashes[1..=height as usize], &served[..], "the node served other blocks");
    eprintln!("{} acknowledged bids all committed; height {height}", all.len());
}
