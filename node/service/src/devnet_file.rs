//! `DIR/devnet.json`: what `surplus devnet` made (chain id, nodes, sample buyers, the web UI),
//! read by the devnet itself and by the tools that run against it (`demo`, `load`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use surplus_ledger::PublicKey;

/// Devnet's chain id. A node runs a faucet only on this chain.
pub const CHAIN_ID: &str = "surplus-devnet";

/// One node in devnet.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DevnetNode {
    /// Its name.
    pub name: String,
    /// Its public key.
    pub public_key: PublicKey,
    /// HTTP API (and web UI) URL.
    pub api: String,
    /// Order-gossip address with peer id.
    pub p2p: String,
    /// Consensus address.
    pub consensus: String,
    /// Data dir.
    pub data_dir: PathBuf,
    /// Process id while running (0 when stopped).
    pub pid: u32,
    /// How many times `surplus devnet` restarted this node after it died, this run.
    #[serde(default)]
    pub restarts: u32,
}

/// A sample buyer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DevnetBuyer {
    /// Key file.
    pub key_file: PathBuf,
    /// Public key.
    pub public_key: PublicKey,
}

/// DIR/devnet.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DevnetFile {
    /// Chain id.
    pub chain_id: String,
    /// Nodes.
    pub nodes: Vec<DevnetNode>,
    /// Funded buyer keys.
    pub buyers: Vec<DevnetBuyer>,
    /// Where the web UI is.
    pub web_ui: String,
}

/// Writes DIR/devnet.json atomically.
pub fn save(dir: &Path, file: &DevnetFile) -> Result<()> {
    crate::config::write_atomic(
        &dir.join("devnet.json"),
        serde_json::to_string_pretty(file)?.as_bytes(),
    )?;
    Ok(())
}

/// Reads DIR/devnet.json.
pub fn load(dir: &Path) -> Result<DevnetFile> {
    let path = dir.join("devnet.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a devnet file", path.display()))
}
