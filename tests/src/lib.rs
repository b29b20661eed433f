//! Surplus integration tests across crates and processes: a cluster helper that runs real
//! `surplus` node processes on loopback, talks to their HTTP APIs, and compares their ledgers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;
use surplus_ledger::{Entry, Hash, PublicKey, SecretKey};

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

/// A free TCP port base with `n` consecutive ports (best effort: bound then released).
pub fn free_base(span: u16) -> u16 {
    for _ in 0..200 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = l.local_addr().expect("addr").port();
        drop(l);
        if base < 20_000 || u32::from(base) + u32::from(span) > 60_000 {
            continue;
        }
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

/// GET a JSON document.
pub fn get(url: &str) -> Result<Value> {
    match ureq::get(url).timeout(Duration::from_secs(10)).call() {
        Ok(r) => Ok(r.into_json()?),
        Err(ureq::Error::Status(code, r)) => {
            bail!("GET {url}: {code} {}", r.into_string().unwrap_or_default())
        }
        Err(e) => Err(anyhow!("GET {url}: {e}")),
    }
}

/// POST JSON; returns (status, body).
pub fn post(url: &str, body: &Value) -> Result<(u16, Value)> {
    match ureq::post(url).timeout(Duration::from_secs(10)).send_json(body.clone()) {
        Ok(r) => {
            let code = r.status();
            Ok((code, r.into_json().unwrap_or(Value::Null)))
        }
        Err(ureq::Error::Status(code, r)) => Ok((code, r.into_json().unwrap_or(Value::Null))),
        Err(e) => Err(anyhow!("POST {url}: {e}")),
    }
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

/// A node's API.
#[derive(Clone, Debug)]
pub struct Api(pub String);

impl Api {
    /// `/api/v1/status`.
    pub fn status(&self) -> Result<Value> {
        get(&format!("{}/api/v1/status", self.0))
    }
    /// Height and head hash.
    pub fn head(&self) -> Option<(u64, String)> {
        let s = self.status().ok()?;
        Some((s["height"].as_u64()?, s["head_hash"].as_str()?.to_owned()))
    }
    /// Submits a signed entry; the node's JSON answer.
    pub fn submit(&self, entry: &Entry) -> Result<(u16, Value)> {
        post(
            &format!("{}/api/v1/entries", self.0),
            &serde_json::json!({ "entry": hex::encode(entry.encode()) }),
        )
    }
    /// Leases where `account` is buyer or provider.
    pub fn leases(&self, account: &PublicKey) -> Result<Vec<Value>> {
        let v = get(&format!("{}/api/v1/leases?account={}", self.0, hex::encode(account.0)))?;
        let list = v.get("leases").cloned().unwrap_or(v);
        Ok(list.as_array().cloned().unwrap_or_default())
    }
    /// One lease.
    pub fn lease(&self, id: &str) -> Result<Value> {
        get(&format!("{}/api/v1/leases/{id}", self.0))
    }
    /// An account's balance and sequence number.
    pub fn account(&self, key: &PublicKey) -> Result<(u64, u64)> {
        let v = get(&format!("{}/api/v1/accounts/{}", self.0, hex::encode(key.0)))?;
        Ok((v["balance"].as_u64().unwrap_or(0), v["seq"].as_u64().unwrap_or(0)))
    }
    /// Fetches a lease's credential by signing the node's challenge with `key`.
    pub fn fetch_credential(
        &self,
        chain_id: &str,
        lease: &Hash,
        key: &SecretKey,
    ) -> Result<(u16, Value)> {
        let id = hex::encode(lease);
        let (code, c) = post(&format!("{}/api/v1/leases/{id}/challenge", self.0), &Value::Null)?;
        if code != 200 {
            bail!("challenge refused: {code} {c}");
        }
        let challenge = c["challenge"].as_str().context("challenge")?.to_owned();
        let nonce: [u8; 32] = hex::decode(&challenge)?
            .try_into()
            .map_err(|_| anyhow!("the challenge is not 32 bytes"))?;
        let expires = c["expires_ms"].as_u64().context("expires_ms")?;
        let sig = key.sign(&surplus_web::challenge_bytes(chain_id, lease, &nonce, expires));
        post(
            &format!("{}/api/v1/leases/{id}/credential", self.0),
            &serde_json::json!({ "challenge": challenge, "signature": hex::encode(sig.0) }),
        )
    }
    /// Presents a token to the node's gateway.
    pub fn gateway(&self, token: &str) -> Result<(u16, Value)> {
        post(
            &format!("{}/api/v1/gateway", self.0),
            &serde_json::json!({ "token": token, "operation": "read" }),
        )
    }
}

/// A node process we started.
pub struct NodeProc {
    /// Its data dir.
    pub dir: PathBuf,
    /// Its API.
    pub api: Api,
    /// The process.
    pub child: Option<Child>,
}

impl NodeProc {
    /// Starts `surplus node --data-dir DIR`, logging to DIR/node.log.
    pub fn start(dir: &Path, api: &str) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("node.log"))
            .expect("node log");
        let child = Command::new(surplus_bin())
            .arg("node")
            .arg("--data-dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn node");
        Self { dir: dir.to_owned(), api: Api(api.to_owned()), child: Some(child) }
    }

    /// Waits until the API answers.
    pub fn wait_up(&self) {
        wait_for(&format!("{} to answer", self.api.0), Duration::from_secs(90), || {
            self.api.status().ok()
        });
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
                self.api.0,
                self.dir.display(),
                self.log_tail()
            );
        }
    }
}

impl Api {
    /// The hash of the block at `height`, once the node has it.
    pub fn block_hash(&self, height: u64) -> Option<String> {
        let v = get(&format!("{}/api/v1/blocks/{height}", self.0)).ok()?;
        v["hash"].as_str().map(str::to_owned)
    }
}

/// Waits until every node holds the same block at a common height of at least `min_height`
/// (the first node's head once it reaches it); returns that height and hash.
pub fn wait_converged(apis: &[&Api], min_height: u64, timeout: Duration) -> (u64, String) {
    let (height, hash) = wait_for("the first node to reach the height", timeout, || {
        apis[0].head().filter(|(h, _)| *h >= min_height)
    });
    for a in &apis[1..] {
        let other = wait_for(&format!("{} to reach height {height}", a.0), timeout, || {
            a.block_hash(height)
        });
        assert_eq!(other, hash, "{} holds a different block at height {height}", a.0);
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
        let dir = root.join("net");
        let out = Command::new(surplus_bin())
            .args(["devnet", "--init-only", "--nodes", &nodes.to_string()])
            .args(["--batch-interval-ms", &batch_ms.to_string()])
            .args(["--heartbeat-ms", &heartbeat_ms.to_string()])
            .args(["--base-port", &base.to_string()])
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

/// Waits until the book of `market` on `api` holds an offer of `provider` (hex key).
pub fn wait_for_offer(api: &Api, market: &surplus_market::Market, provider: &str) {
    wait_for("the provider's inventory offer in the book", Duration::from_secs(120), || {
        let book = get(&format!("{}/api/v1/book?market={market}", api.0)).ok()?;
        book["offers"].to_string().contains(provider).then_some(())
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
