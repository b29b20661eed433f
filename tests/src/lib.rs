//! Surplus integration tests across crates and processes: a cluster helper that runs real
//! `surplus` node processes on loopback, talks to their HTTP APIs through the typed client
//! (`surplus_client::Client`, which reads the answer types of `surplus_api`), and compares
//! their ledgers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::Value;
use surplus_api::{LeaseList, Submission};
use surplus_client::Client;
use surplus_contracts::LeaseStatus;
use surplus_ledger::{Hash, PublicKey, SecretKey};
use surplus_market::{Market, Order, SignedOrder};

pub mod netlab;
pub mod parity;

/// The `surplus` binary built beside this test binary (`cargo test --workspace` builds it).
pub fn surplus_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SURPLUS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> → target/<profile>/surplus
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join(format!("surplus{}", std::env::consts::EXE_SUFFIX))
}

/// Runs `surplus ARGS` to completion.
pub fn surplus(args: &[&str]) -> Output {
    Command::new(surplus_bin()).args(args).output().expect("run surplus")
}

/// A free TCP and UDP port base with `span` consecutive ports (best effort: bound then
/// released), below the kernel's ephemeral range: the nodes' own outbound connections take
/// ephemeral ports, and one once took a port a test had handed to a node it started later
/// (its consensus could not listen: "Error listening on /ip4/127.0.0.1/tcp/…").
pub fn free_base(span: u16) -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let (low, high) = (10_000u16, ephemeral_low.saturating_sub(span));
    assert!(high > low + span, "no room for {span} ports under the ephemeral range");
    // Test processes run in parallel: each starts from its own point.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut x = u64::from(nanos) ^ (u64::from(std::process::id()) << 32) | 1;
    for _ in 0..500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let base = low + (x % u64::from(high - low)) as u16;
        let ok = (0..span).all(|k| {
            std::net::TcpListener::bind(("127.0.0.1", base + k)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", base + k)).is_ok()
        });
        if ok {
            return base;
        }
    }
    panic!("no free port range");
}

/// Waits (bounded) until `f` gives `Some`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client of the node API at `base` (`http://host:port`) whose calls give up after 10 s.
pub fn client(base: &str) -> Client {
    Client::with_timeouts(base, Duration::from_secs(5), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{base}: {e}"))
}

/// What the tests read of a node beyond single calls of the client.
pub trait NodeExt {
    /// Height and head hash, if the node answers.
    fn head(&self) -> Option<(u64, Hash)>;
    /// The hash of the block at `height`, once the node has it.
    fn block_hash(&self, height: u64) -> Option<Hash>;
}

impl NodeExt for Client {
    fn head(&self) -> Option<(u64, Hash)> {
        let s = self.status().ok()?;
        Some((s.height, s.head_hash))
    }

    fn block_hash(&self, height: u64) -> Option<Hash> {
        let b = self.block(height, false).ok()?;
        assert_eq!(b.height, height, "{} answered another block", self.base());
        Some(b.hash)
    }
}

/// The HTTP status and code of a refused call; panics, naming `what`, if the call succeeded or
/// failed otherwise (no answer, or not the API's error body).
pub fn refusal<T: std::fmt::Debug>(what: &str, r: surplus_client::Result<T>) -> (u16, String) {
    match r {
        Err(surplus_client::Error::Refused { status, code, .. }) if code != "unknown" => {
            (status, code)
        }
        Err(e) => panic!("{what}: not a refusal with the API's error body: {e}"),
        Ok(v) => panic!("{what}: expected a refusal, got {v:?}"),
    }
}

/// A hash from its hex.
fn hash_hex(hex: &str) -> Hash {
    surplus_ledger::parse_hex::<32>(hex, "hash").unwrap_or_else(|e| panic!("{e}"))
}

/// How a node process is started: itself, inside a network namespace (`ip netns exec`), or
/// from a shell that first sets its open-file limit, soft and hard (`ulimit -n`); the wrapper
/// becomes the node process, so a signal reaches the node itself.
enum Wrap<'a> {
    Plain,
    Netns(&'a str),
    FileLimit(u64),
    /// Plain, with these environment variables.
    Env(&'a [(&'a str, String)]),
}

/// `text` (a node's log) without the escape sequences of its terminal colours.
pub fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// libfaketime's multi-threaded library, where Debian's faketime package puts it.
pub fn faketime_lib() -> Option<PathBuf> {
    let lib = std::fs::read_dir("/usr/lib").ok()?.flatten().find_map(|d| {
        let p = d.path().join("faketime/libfaketimeMT.so.1");
        p.exists().then_some(p)
    });
    lib.or_else(|| {
        let p = PathBuf::from("/usr/lib/faketime/libfaketimeMT.so.1");
        p.exists().then_some(p)
    })
}

/// A node process we started.
pub struct NodeProc {
    /// Its data dir.
    pub dir: PathBuf,
    /// Its API.
    pub api: Client,
    /// The process.
    pub child: Option<Child>,
}

impl NodeProc {
    /// Starts `surplus node --data-dir DIR`, logging to DIR/node.log.
    pub fn start(dir: &Path, api: &str) -> Self {
        Self::start_in(dir, api, None)
    }

    /// [`NodeProc::start`] inside network namespace `netns` (`ip netns exec`, which becomes the
    /// node process, so a kill reaches the node itself).
    pub fn start_in(dir: &Path, api: &str, netns: Option<&str>) -> Self {
        Self::start_with(dir, api, netns, &[])
    }

    /// [`NodeProc::start_in`] with more arguments to `surplus node`.
    pub fn start_with(dir: &Path, api: &str, netns: Option<&str>, args: &[&str]) -> Self {
        Self::spawn(dir, api, netns.map_or(Wrap::Plain, Wrap::Netns), args, &dir.join("node.log"))
    }

    /// [`NodeProc::start`] with an open-file limit of `files`, soft and hard (`ulimit -n` in
    /// the shell that then becomes the node), so the node cannot raise it.
    pub fn start_with_file_limit(dir: &Path, api: &str, files: u64) -> Self {
        Self::spawn(dir, api, Wrap::FileLimit(files), &[], &dir.join("node.log"))
    }

    /// [`NodeProc::start`] with its wall clock `offset_secs` seconds off (libfaketime, preloaded;
    /// its monotonic clock is left alone), logging to `log`.
    pub fn start_with_clock_offset(dir: &Path, api: &str, offset_secs: i64, log: &Path) -> Self {
        let lib = faketime_lib().expect(
            "libfaketime is missing: install Debian's faketime package (scripts/test-all does)",
        );
        let vars = [
            ("LD_PRELOAD", lib.display().to_string()),
            ("FAKETIME", format!("{offset_secs:+}s")),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
            ("FAKETIME_DONT_RESET", "1".to_owned()),
        ];
        Self::spawn(dir, api, Wrap::Env(&vars), &[], log)
    }

    /// `surplus node --data-dir DIR ARGS`, started as `wrap` says, appending its output to `log`.
    fn spawn(dir: &Path, api: &str, wrap: Wrap, args: &[&str], log: &Path) -> Self {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(log).expect("node log");
        let mut command = match wrap {
            Wrap::Netns(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(surplus_bin());
                c
            }
            Wrap::FileLimit(files) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""));
                c.arg(surplus_bin());
                c
            }
            Wrap::Env(vars) => {
                let mut c = Command::new(surplus_bin());
                c.envs(vars.iter().map(|(k, v)| (k, v)));
                c
            }
            Wrap::Plain => Command::new(surplus_bin()),
        };
        let child = command
            .arg("node")
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn node");
        Self { dir: dir.to_owned(), api: client(api), child: Some(child) }
    }

    /// Waits until the API answers.
    pub fn wait_up(&self) {
        wait_for(&format!("{} to answer", self.api.base()), Duration::from_secs(90), || {
            self.api.status().ok()
        });
    }

    /// Its API client sending the node's operator token (`DIR/operator.token`, made at the
    /// node's first start).
    pub fn operator_api(&self) -> Client {
        let token = std::fs::read_to_string(self.dir.join("operator.token"))
            .expect("the node's operator token (it makes it at its first start)");
        self.api.clone().with_operator_token(&token)
    }

    /// SIGTERM and wait (a clean stop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let start = Instant::now();
            while c.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(30) {
                    let _ = c.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.wait();
        }
    }

    /// SIGKILL (a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The last lines of its log (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
        // A failing test shows what each of its nodes said last.
        if std::thread::panicking() {
            eprintln!(
                "--- {} ({}) log tail ---\n{}",
                self.api.base(),
                self.dir.display(),
                self.log_tail()
            );
        }
    }
}

/// Waits until every node holds the same block at a common height of at least `min_height`
/// (the first node's head once it reaches it); returns that height and hash.
pub fn wait_converged(apis: &[&Client], min_height: u64, timeout: Duration) -> (u64, Hash) {
    let (height, hash) = wait_for("the first node to reach the height", timeout, || {
        apis[0].head().filter(|(h, _)| *h >= min_height)
    });
    for a in &apis[1..] {
        let other = wait_for(&format!("{} to reach height {height}", a.base()), timeout, || {
            a.block_hash(height)
        });
        assert_eq!(
            hex::encode(other),
            hex::encode(hash),
            "{} holds a different block at height {height}",
            a.base()
        );
    }
    (height, hash)
}

/// `surplus audit --data-dir DIR --json`: Ok with the report, or the failure text.
pub fn audit(dir: &Path) -> Result<Value> {
    let out = surplus(&["audit", "--data-dir", &dir.display().to_string(), "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("audit of {} failed: {text} {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Sets `key = value` on every line of the TOML file `config` that sets `key` (the commented
/// config `surplus init` and `surplus devnet` write holds each key once).
pub fn set_config(config: &Path, key: &str, value: &str) {
    let text = std::fs::read_to_string(config).expect("the config file");
    let mut found = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with(&format!("{key} =")) {
                found = true;
                format!("{key} = {value}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(found, "{} sets no {key}", config.display());
    std::fs::write(config, out.join("\n") + "\n").expect("write the config file");
}

/// Reads a key file.
pub fn read_key(path: &Path) -> SecretKey {
    let text = std::fs::read_to_string(path).expect("key file");
    SecretKey::from_file_contents(&text).expect("key")
}

/// A devnet written by `surplus devnet --init-only` whose nodes the test starts itself.
pub struct Devnet {
    /// Its directory.
    pub dir: PathBuf,
    /// devnet.json.
    pub file: Value,
}

impl Devnet {
    /// Writes a devnet of `nodes` validators under `root` with fast blocks (50 ms batches, a
    /// 100 ms heartbeat) so tests reach many heights quickly.
    pub fn init(root: &Path, nodes: usize, base: u16) -> Self {
        Self::init_with(root, nodes, base, 50, 100)
    }

    /// [`Devnet::init`] with a given batch interval and idle heartbeat, ms.
    pub fn init_with(
        root: &Path,
        nodes: usize,
        base: u16,
        batch_ms: u64,
        heartbeat_ms: u64,
    ) -> Self {
        Self::init_args(root, nodes, base, batch_ms, heartbeat_ms, &[])
    }

    /// [`Devnet::init_with`] and more arguments of `surplus devnet --init-only`.
    pub fn init_args(
        root: &Path,
        nodes: usize,
        base: u16,
        batch_ms: u64,
        heartbeat_ms: u64,
        extra: &[&str],
    ) -> Self {
        let dir = root.join("net");
        let out = Command::new(surplus_bin())
            .args(["devnet", "--init-only", "--nodes", &nodes.to_string()])
            .args(["--batch-interval-ms", &batch_ms.to_string()])
            .args(["--heartbeat-ms", &heartbeat_ms.to_string()])
            .args(["--base-port", &base.to_string()])
            .args(extra)
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .expect("run surplus devnet --init-only");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(dir.join("devnet.json")).expect("devnet.json");
        Self { dir, file: serde_json::from_str(&text).expect("devnet.json is JSON") }
    }

    /// Starts every node and waits until each answers.
    pub fn start_all(&self) -> Vec<NodeProc> {
        let nodes: Vec<NodeProc> = self.file["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| {
                let dir = Path::new(n["data_dir"].as_str().expect("data_dir"));
                NodeProc::start(dir, n["api"].as_str().expect("api"))
            })
            .collect();
        for n in &nodes {
            n.wait_up();
        }
        nodes
    }

    /// The chain id.
    pub fn chain_id(&self) -> &str {
        self.file["chain_id"].as_str().expect("chain_id")
    }

    /// Node `i`'s key (validator key and provider account).
    pub fn node_key(&self, i: usize) -> PublicKey {
        let hex = self.file["nodes"][i]["public_key"].as_str().expect("public_key");
        PublicKey(surplus_ledger::parse_hex::<32>(hex, "public_key").expect("a key"))
    }

    /// Node `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        PathBuf::from(self.file["nodes"][i]["data_dir"].as_str().expect("data_dir"))
    }

    /// Makes the data dir of one more node, `name`, under `root` (not a validator: its key is
    /// new), with this devnet's genesis, its ports from `port` (p2p, consensus, HTTP) on
    /// loopback, every devnet node as its bootstrap and consensus peers, and the devnet's block
    /// timing. Returns the data dir and the API's URL.
    pub fn join_node(&self, root: &Path, name: &str, port: u16) -> (PathBuf, String) {
        let dir = root.join(name);
        let out = surplus(&[
            "init",
            "--data-dir",
            &dir.display().to_string(),
            "--name",
            name,
            "--p2p-port",
            &port.to_string(),
            "--consensus-port",
            &(port + 1).to_string(),
            "--http-port",
            &(port + 2).to_string(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::copy(self.data_dir(0).join("genesis.json"), dir.join("genesis.json"))
            .expect("copy the genesis file");
        let config = dir.join("config.toml");
        let text =
            std::fs::read_to_string(&config).expect("the config").replace("0.0.0.0", "127.0.0.1");
        std::fs::write(&config, text).expect("write the config");
        let nodes = self.file["nodes"].as_array().expect("nodes");
        let list = |field: &str| {
            let items: Vec<String> = nodes
                .iter()
                .map(|n| format!("{:?}", n[field].as_str().expect("an address")))
                .collect();
            format!("[{}]", items.join(", "))
        };
        set_config(&config, "bootstrap", &list("p2p"));
        set_config(&config, "peers", &list("consensus"));
        // The devnet's block timing, so that a node that becomes a validator proposes at its
        // pace (the default heartbeat is 30 s).
        let theirs = std::fs::read_to_string(self.data_dir(0).join("config.toml"))
            .expect("the devnet's config");
        for key in ["batch_interval_ms", "idle_heartbeat_ms"] {
            let value = theirs
                .lines()
                .find_map(|l| l.trim_start().strip_prefix(&format!("{key} = ")))
                .unwrap_or_else(|| panic!("the devnet's config sets no {key}"));
            set_config(&config, key, value);
        }
        (dir, format!("http://127.0.0.1:{}", port + 2))
    }

    /// Sample buyer `i`'s key.
    pub fn buyer(&self, i: usize) -> SecretKey {
        read_key(Path::new(self.file["buyers"][i]["key_file"].as_str().expect("key_file")))
    }
}

/// Starts `surplus devnet ARGS --base-port BASE --data-dir DIR`, logging to `log`.
pub fn spawn_devnet(dir: &Path, base: u16, args: &[&str], log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("devnet log");
    Command::new(surplus_bin())
        .arg("devnet")
        .args(args)
        .args(["--base-port", &base.to_string()])
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn surplus devnet")
}

/// The first pool of a node's inventory file (`DATA_DIR/inventory.toml`): its market and
/// reserve price.
pub fn first_pool(data_dir: &Path) -> (surplus_market::Market, u64) {
    let inventory =
        std::fs::read_to_string(data_dir.join("inventory.toml")).expect("the inventory file");
    let field = |key: &str| {
        inventory
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| panic!("no {key} in the inventory"))
    };
    let market = surplus_market::Market::new(&field("class"), &field("region"));
    (market, field("reserve").parse().expect("a numeric reserve"))
}

/// Waits until the book of `market` on `api` holds an offer of `provider`.
pub fn wait_for_offer(api: &Client, market: &surplus_market::Market, provider: &PublicKey) {
    wait_for("the provider's inventory offer in the book", Duration::from_secs(120), || {
        let book = api.book(market, None).ok()?;
        assert_eq!(book.market, *market, "{} answered another market's book", api.base());
        book.offers.orders.iter().any(|o| o.author == *provider).then_some(())
    });
}

/// Locks `amount` more units of `key`'s balance in its provider bond through `api`, and waits
/// until the bond is committed (an offer needs it, `docs/contracts.md` §10).
pub fn lock_bond(api: &Client, chain_id: &str, key: &SecretKey, amount: u64) {
    let before = api.account(&key.public()).expect("the provider's account");
    let tx = surplus_contracts::Tx::Bond { amount, seq: before.seq };
    api.submit(&surplus_ledger::Entry::signed(chain_id, tx.kind(), tx.encode(), key))
        .expect("the bond transaction");
    wait_for("the bond to commit", Duration::from_secs(60), || {
        let a = api.account(&key.public()).ok()?;
        (a.bond >= before.bond + amount).then_some(())
    });
}

/// A bid for 1 slot for 1 hour, starting now, at up to `limit` units a slot-hour, expiring
/// after `ttl_ms`.
pub fn one_slot_bid(
    market: &surplus_market::Market,
    limit: u64,
    nonce: u64,
    ttl_ms: u64,
) -> surplus_market::Bid {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    surplus_market::Bid {
        market: market.clone(),
        slots: 1,
        hours: 1,
        limit,
        earliest_ms: now,
        latest_ms: now + 3_600_000,
        fill: surplus_market::FillRule::AtLeast(1),
        expiry_ms: now + ttl_ms,
        nonce,
    }
}

/// A small deterministic generator (xorshift64*), so a failing run can be replayed by seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Polls `f` every 200 ms until it returns `Some`, for at most `limit`; `None` if it never did.
pub fn wait_for_or_none<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// Ids (hex) of the order entries in a stopped node's ledger, and its block hashes by height.
pub fn ledger_of(data_dir: &Path) -> (HashSet<String>, Vec<Hash>) {
    use surplus_store::{Config, Store};
    let store = Store::open(&data_dir.join("ledger"), Config::default()).expect("open the ledger");
    let mut ids = HashSet::new();
    let mut hashes = Vec::new();
    for b in store.blocks(0) {
        let b = b.expect("read a block");
        hashes.push(b.header.hash());
        for e in b.entries.iter().filter(|e| e.kind == surplus_ledger::EntryKind::ORDER) {
            ids.insert(hex::encode(e.id()));
        }
    }
    (ids, hashes)
}

/// An order a node acknowledged.
#[derive(Clone, Debug)]
pub struct Ack {
    /// The entry id (hex).
    pub id: String,
    /// Index of the node that acknowledged it.
    pub node: usize,
    /// Seconds after the load started.
    pub at: f64,
    /// Bid above a provider's reserve: it fills (and leaves the book) while capacity lasts.
    pub fills: bool,
}

/// Seeded order load: resting one-slot bids (1 unit a slot-hour, under every reserve, expiring
/// after an hour) from the sample buyers to random nodes, one every `gap`, at most 20,000 and
/// for at most five minutes; with [`OrderLoad::with_fills`], every 20th bid instead bids twice
/// the reserve of one of the given pools, so it fills and becomes a lease while the pool has
/// capacity. Every bid a node acknowledged (202) is kept.
pub struct OrderLoad {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<Ack>>>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl OrderLoad {
    /// Starts the load against the nodes of `apis`.
    pub fn start(net: &Devnet, apis: &[Client], market: &Market, seed: u64, gap: Duration) -> Self {
        Self::with_fills(net, apis, market, seed, gap, Vec::new())
    }

    /// [`OrderLoad::start`] with filling bids into `pools` (market, reserve).
    pub fn with_fills(
        net: &Devnet,
        apis: &[Client],
        market: &Market,
        seed: u64,
        gap: Duration,
        pools: Vec<(Market, u64)>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::<Ack>::new()));
        let chain_id = net.chain_id().to_owned();
        let buyers: Vec<SecretKey> = (0..3).map(|i| net.buyer(i)).collect();
        let (market, stop2, acked) = (market.clone(), stop.clone(), acknowledged.clone());
        // Short timeouts: a node being killed must not hold the load up.
        let five = Duration::from_secs(5);
        let apis: Vec<Client> = apis
            .iter()
            .map(|a| Client::with_timeouts(a.base(), five, five).expect("the node's base URL"))
            .collect();
        let thread = std::thread::spawn(move || {
            let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
            let started = Instant::now();
            let mut sent = 0u64;
            while !stop2.load(Ordering::Relaxed)
                && sent < 20_000
                && started.elapsed() < Duration::from_secs(300)
            {
                let nonce = seed.wrapping_mul(1_000_000).wrapping_add(sent);
                let fills = !pools.is_empty() && sent % 20 == 19;
                let bid = if fills {
                    let (m, reserve) = &pools[rng.below(pools.len() as u64) as usize];
                    one_slot_bid(m, reserve.saturating_mul(2), nonce, 3_600_000)
                } else {
                    one_slot_bid(&market, 1, nonce, 3_600_000)
                };
                let key = &buyers[(sent % 3) as usize];
                let (entry, _) = SignedOrder::sign(&chain_id, Order::Bid(bid), key);
                let node = rng.below(apis.len() as u64) as usize;
                // Admitted (202) is acknowledged; a refusal or no answer is not.
                if let Ok(id) = apis[node].submit(&entry) {
                    assert_eq!(id, entry.id(), "{} acknowledged another id", apis[node].base());
                    let ack = Ack {
                        id: hex::encode(entry.id()),
                        node,
                        at: started.elapsed().as_secs_f64(),
                        fills,
                    };
                    acked.lock().map(|mut a| a.push(ack)).ok();
                }
                sent += 1;
                std::thread::sleep(gap);
            }
            sent
        });
        Self { stop, acknowledged, thread: Some(thread) }
    }

    /// Acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.acknowledged.lock().map_or(0, |a| a.len())
    }

    /// Stops the load; returns (orders sent, the acknowledged ones).
    pub fn finish(mut self) -> (u64, Vec<Ack>) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.thread.take().map_or(0, |t| t.join().expect("the load thread"));
        let acked = self.acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
        (sent, acked)
    }
}

impl Drop for OrderLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Waits until every acknowledged resting bid rests in the book of every node (they bid under
/// every reserve and do not expire for an hour; filling bids are left to the ledger check);
/// panics naming the node that never got them.
pub fn assert_in_every_book(net: &Devnet, apis: &[Client], acknowledged: &[Ack], limit: Duration) {
    let buyer_keys: Vec<PublicKey> = (0..3).map(|i| net.buyer(i).public()).collect();
    let book_of = |api: &Client| -> Option<HashSet<String>> {
        let mut ids = HashSet::new();
        for k in &buyer_keys {
            for o in api.orders(k).ok()? {
                assert_eq!(o.order.author, *k, "{} lists another account's order", api.base());
                ids.insert(hex::encode(o.order.id));
            }
        }
        Some(ids)
    };
    for api in apis {
        let mut missing = Vec::new();
        let found = wait_for_or_none(limit, || {
            let ids = book_of(api)?;
            missing =
                acknowledged.iter().filter(|a| !a.fills && !ids.contains(&a.id)).cloned().collect();
            missing.is_empty().then_some(())
        });
        if found.is_none() {
            let books: Vec<Option<HashSet<String>>> = apis.iter().map(book_of).collect();
            let detail: Vec<String> = missing
                .iter()
                .take(10)
                .map(|a| {
                    let holders: Vec<usize> = books
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| b.as_ref().is_some_and(|b| b.contains(&a.id)))
                        .map(|(i, _)| i + 1)
                        .collect();
                    format!(
                        "{} acknowledged by dc{} at {:.2} s, in the books of {holders:?}",
                        a.id,
                        a.node + 1,
                        a.at
                    )
                })
                .collect();
            panic!(
                "{} of {} acknowledged orders never reached the book of {}:\n{}",
                missing.len(),
                acknowledged.len(),
                api.base(),
                detail.join("\n")
            );
        }
    }
}

/// Waits until every acknowledged order is in a committed block, as the node that acknowledged
/// it reports (`GET /api/v1/submissions/{id}`); panics naming those still pending or dropped.
/// Call it before stopping the nodes for [`assert_ledgers_agree`]: an order acknowledged just
/// before a crash may still be on its way to a block when the heads first agree.
pub fn assert_committed(apis: &[Client], acknowledged: &[Ack], limit: Duration) {
    let fate = |a: &Ack| apis[a.node].submission(&hash_hex(&a.id));
    let status = |a: &Ack| -> String {
        match fate(a) {
            Ok(v) => format!("{:?}", v.submission),
            Err(e) => format!("unreadable ({e})"),
        }
    };
    let mut open: Vec<&Ack> = acknowledged.iter().collect();
    let done = wait_for_or_none(limit, || {
        open.retain(|a| {
            !fate(a).is_ok_and(|v| matches!(v.submission, Submission::Committed { .. }))
        });
        open.is_empty().then_some(())
    });
    if done.is_none() {
        let detail: Vec<String> = open
            .iter()
            .take(10)
            .map(|a| format!("{} acknowledged by dc{}: {}", a.id, a.node + 1, status(a)))
            .collect();
        panic!(
            "{} of {} acknowledged orders were not committed within {limit:?}:\n{}",
            open.len(),
            acknowledged.len(),
            detail.join("\n")
        );
    }
}

/// Checks stopped nodes' ledgers: each audits clean, reaches past `height`, holds every
/// acknowledged order, and agrees with the others at every common height (no fork).
pub fn assert_ledgers_agree(dirs: &[&Path], acknowledged: &[Ack], height: u64) {
    let mut reference: Option<Vec<Hash>> = None;
    for dir in dirs {
        if let Err(e) = audit(dir) {
            panic!("{e}");
        }
        let (ids, hashes) = ledger_of(dir);
        assert!(hashes.len() as u64 > height, "{} stops below the common head", dir.display());
        let missing: Vec<&Ack> = acknowledged.iter().filter(|a| !ids.contains(&a.id)).collect();
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged orders are not in {}'s ledger, e.g. {:?}",
            missing.len(),
            acknowledged.len(),
            dir.display(),
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
}

/// Every node lists the same leases, and every lease is kept: active, its credential granted on
/// the ledger, and its provider's start hook run (as that provider's node reports). `keys` are
/// the nodes' public keys, in the order of `apis`. Returns how many leases there are.
pub fn assert_leases_kept(apis: &[Client], keys: &[PublicKey], limit: Duration) -> usize {
    let list = |api: &Client| -> Option<LeaseList> {
        let mut list = api.leases(None, Some(1000)).ok()?;
        list.leases.sort_by_key(|l| l.id);
        Some(list)
    };
    let mut last = String::new();
    let kept = wait_for_or_none(limit, || {
        let leases = list(&apis[0])?;
        assert!(!leases.truncated, "more than 1,000 leases: the comparison would miss some");
        for api in &apis[1..] {
            if list(api)? != leases {
                last = format!("{} lists other leases than {}", api.base(), apis[0].base());
                return None;
            }
        }
        for l in &leases.leases {
            let id = hex::encode(l.id);
            if l.status != LeaseStatus::Active || l.grant.is_none() {
                last = format!("lease {id} is {:?} with grant {:?}", l.status, l.grant);
                return None;
            }
            let provider = l.fill.provider;
            let Some(i) = keys.iter().position(|k| *k == provider) else {
                last = format!("lease {id} has provider {provider}, not a node");
                return None;
            };
            let v = apis[i].lease(&l.id).ok()?;
            assert_eq!(v.lease.id, l.id, "{} answered another lease", apis[i].base());
            let start_ok = v.provisioning.as_ref().map(|p| &p["start"]["ok"]);
            if start_ok != Some(&Value::Bool(true)) {
                last =
                    format!("lease {id}: its provider's start hook record is {:?}", v.provisioning);
                return None;
            }
        }
        Some(leases.leases.len())
    });
    kept.unwrap_or_else(|| panic!("leases not kept: {last}"))
}

impl NodeProc {
    /// [`NodeProc::start`], with the node's log written to `log` instead of DIR/node.log: a
    /// test that fills the data directory's filesystem keeps the node's log off it (its last
    /// words would be lost to the full disk). Read it with [`log_tail`].
    pub fn start_logging_to(dir: &Path, api: &str, log: &Path) -> Self {
        Self::spawn(dir, api, Wrap::Plain, &[], log)
    }

    /// Whether the process we started is still running.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

/// The last `lines` lines of the log file at `path` (empty if it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
