//! A consortium of one, in this process: the real node service — admission, the journaled
//! mempool, the Malachite engine deciding alone, the sled ledger and stores, receipts, the
//! provider's duties and the HTTP API — over a temporary directory, on loopback ports the
//! system picks. The web and client tests run against it, so that what they check is what a
//! node does; `surplus devnet` runs the same service as separate processes.
//!
//! ```no_run
//! use surplus_service::solo::{Solo, Spec};
//! let provider = surplus_ledger::SecretKey::from_seed([1; 32]);
//! let node = Solo::start(Spec::new(provider))?;
//! println!("API at {}", node.url());
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! The node runs on a Tokio runtime of its own, on a thread of its own, so a test may call it
//! from any runtime (actix's test runtime included) or from none.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use surplus_contracts::{Allocation, Params};
use surplus_ledger::{PublicKey, SecretKey};
use surplus_market::Catalogue;

use crate::config::{self, Config};
use crate::genesis::{GenesisFile, Validator};
use crate::runtime::{Builder, Ready};

/// The chain id of every solo node: the devnet's, as the faucet is for devnets only.
pub const CHAIN: &str = crate::devnet_file::CHAIN_ID;

/// How long [`Solo::start`] waits for the node to serve.
const START_LIMIT: Duration = Duration::from_secs(60);

/// What the one-member consortium holds at genesis, and how its node is configured.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The node's key: the chain's one validator, and a provider.
    pub key: SecretKey,
    /// Accounts funded at genesis.
    pub allocations: Vec<(PublicKey, u64)>,
    /// The catalogue of resource classes and regions ([`Catalogue::sample`] unless changed).
    pub catalogue: Catalogue,
    /// Fee on each settlement, basis points.
    pub fee_bps: u16,
    /// Penalty on an early end, basis points.
    pub penalty_bps: u16,
    /// Notice that spares a provider the penalty, ms (the genesis parameter `notice_ms`).
    pub notice_ms: u64,
    /// The faucet's key and what it gives each new account; the key is funded at genesis with
    /// [`Spec::FAUCET_FUNDS`]. `None`: no faucet.
    pub faucet: Option<(SecretKey, u64)>,
    /// The mempool's capacity in entries.
    pub mempool_capacity: Option<u32>,
    /// A block at least this often while entries wait, ms.
    pub batch_interval_ms: u64,
    /// A block this often when nothing waits, ms.
    pub heartbeat_ms: u64,
    /// The provider's inventory (TOML, as `inventory.toml`); `None`: it publishes no offers.
    pub inventory: Option<String>,
    /// The `[provisioning]` hook run when a lease starts and ends (none by default).
    pub provisioning: config::Provisioning,
}

impl Spec {
    /// What a faucet key holds at genesis.
    pub const FAUCET_FUNDS: u64 = 1_000_000_000_000;

    /// A chain whose one validator is `key`, with nothing funded, no fee or penalty, no faucet,
    /// no inventory and no provisioning hook, cutting a block every 50 ms while entries wait.
    pub fn new(key: SecretKey) -> Self {
        Self {
            key,
            allocations: Vec::new(),
            catalogue: Catalogue::sample(),
            fee_bps: 0,
            penalty_bps: 0,
            notice_ms: surplus_contracts::maintenance::DEFAULT_NOTICE_MS,
            faucet: None,
            mempool_capacity: None,
            batch_interval_ms: 50,
            heartbeat_ms: 1_000,
            inventory: None,
            provisioning: config::Provisioning::default(),
        }
    }

    /// Funds `account` with `amount` at genesis.
    pub fn fund(mut self, account: PublicKey, amount: u64) -> Self {
        self.allocations.push((account, amount));
        self
    }

    /// Writes the node's data directory: key, genesis, configuration (loopback, ports the
    /// system picks), and the faucet key and inventory when asked for.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let key_file = |name: &str, key: &SecretKey| {
            crate::keyfile::write_secret(&dir.join(name), key.to_file_contents().as_bytes())
        };
        key_file(config::KEY_FILE, &self.key)?;
        let mut allocations: Vec<Allocation> = self
            .allocations
            .iter()
            .map(|(account, amount)| Allocation { account: *account, amount: *amount })
            .collect();
        if let Some((faucet, _)) = &self.faucet {
            allocations.push(Allocation { account: faucet.public(), amount: Self::FAUCET_FUNDS });
        }
        let genesis = GenesisFile {
            chain_id: CHAIN.into(),
            genesis_time_ms: surplus_net::now_ms(),
            validators: vec![Validator { name: "solo".into(), public_key: self.key.public() }],
            params: Params {
                catalogue: self.catalogue.clone(),
                treasury: self.key.public(),
                fee_bps: self.fee_bps,
                penalty_bps: self.penalty_bps,
                notice_ms: self.notice_ms,
                supervision: None,
            },
            allocations,
        };
        config::write_atomic(&dir.join("genesis.json"), genesis.to_json().as_bytes())?;

        let mut c = Config { name: "solo".into(), ..Config::default() };
        c.p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        c.consensus.listen = "/ip4/127.0.0.1/tcp/0".into();
        c.consensus.batch_interval_ms = self.batch_interval_ms;
        c.consensus.idle_heartbeat_ms = self.heartbeat_ms;
        c.http.listen = "127.0.0.1:0".into();
        // Tests are one loopback client; the rate-limit tests set their own limits.
        c.http.per_ip_per_sec = 0;
        if let Some(n) = self.mempool_capacity {
            c.mempool.capacity = n;
        }
        if let Some((faucet, amount)) = &self.faucet {
            key_file("faucet.key", faucet)?;
            c.faucet = Some(config::Faucet { key: "faucet.key".into(), amount: *amount });
        }
        c.provisioning = self.provisioning.clone();
        if let Some(text) = &self.inventory {
            config::write_atomic(&dir.join("inventory.toml"), text.as_bytes())?;
            c.inventory = Some(config::InventoryFile { file: "inventory.toml".into() });
        }
        config::write_atomic(&dir.join(config::CONFIG_FILE), c.commented().as_bytes())?;
        Ok(())
    }
}

/// A running consortium of one. Dropping it stops the node and deletes its directory.
pub struct Solo {
    http: SocketAddr,
    node: Arc<dyn surplus_web::Node>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    // Last: removed after the node has stopped.
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Solo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Solo").field("http", &self.http).field("dir", &self.dir.path()).finish()
    }
}

impl Solo {
    /// Writes `spec`'s files into a new temporary directory and starts the node; returns once
    /// it serves, or why it could not start.
    pub fn start(spec: Spec) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("surplus-solo-")
            .tempdir()
            .context("cannot make a temporary directory")?;
        spec.write(dir.path())?;
        let data_dir = dir.path().to_owned();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Ready>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // The runtime the node is given, as `main` gives one to `surplus node`.
        let thread = std::thread::Builder::new()
            .name("solo-node".into())
            .spawn(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .context("cannot start a Tokio runtime")?;
                rt.block_on(Builder::new(data_dir).run_announcing(
                    async move {
                        let _ = stop_rx.await;
                    },
                    ready_tx,
                ))
            })
            .context("cannot start the node's thread")?;
        let deadline = std::time::Instant::now() + START_LIMIT;
        let mut ready_rx = ready_rx;
        let ready = loop {
            match ready_rx.try_recv() {
                Ok(r) => break r,
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    let why = match thread.join() {
                        Ok(Err(e)) => format!("{e:#}"),
                        Ok(Ok(())) => "it stopped".into(),
                        Err(_) => "it panicked".into(),
                    };
                    anyhow::bail!("the solo node did not start: {why}");
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                    anyhow::ensure!(
                        std::time::Instant::now() < deadline,
                        "the solo node did not serve within {START_LIMIT:?}"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        Ok(Self {
            http: ready.http,
            node: ready.node,
            stop: Some(stop_tx),
            thread: Some(thread),
            dir,
        })
    }

    /// The node as its HTTP API sees it: what `surplus_web::configure` serves.
    pub fn node(&self) -> Arc<dyn surplus_web::Node> {
        self.node.clone()
    }

    /// The API's base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The node's data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the node and waits for it; its error if it had failed.
    pub fn stop(mut self) -> Result<()> {
        self.halt()
    }

    fn halt(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => anyhow::bail!("the solo node panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Solo {
    fn drop(&mut self) {
        if let Err(e) = self.halt() {
            tracing::warn!(error = %format!("{e:#}"), "the solo node stopped with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use surplus_contracts::Tx;
    use surplus_ledger::Entry;
    use surplus_web::Submission;

    #[test]
    fn a_consortium_of_one_commits_what_it_accepts() {
        let key = SecretKey::from_seed([1; 32]);
        let buyer = SecretKey::from_seed([2; 32]);
        let solo = Solo::start(Spec::new(key.clone()).fund(buyer.public(), 1_000)).unwrap();
        let node = solo.node();
        assert_eq!(node.status().chain_id, CHAIN);
        assert_eq!(node.state().account(&buyer.public()).balance, 1_000);
        let tx = Tx::Transfer { to: key.public(), amount: 400, seq: 0 };
        let entry = Entry::signed(CHAIN, tx.kind(), tx.encode(), &buyer);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let id = rt.block_on(node.submit(entry)).unwrap();
        let mut committed = None;
        for _ in 0..2_000 {
            if let Some(Submission::Committed { height, .. }) = rt.block_on(node.submission(&id)) {
                committed = Some(height);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let height = committed.expect("committed within 20 s");
        assert!(height >= 1);
        assert_eq!(node.state().account(&buyer.public()).balance, 600);
        let dir = solo.dir().to_owned();
        drop(node);
        solo.stop().unwrap();
        assert!(!dir.exists(), "the directory goes with the node");
    }
}
