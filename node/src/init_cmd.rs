//! `surplus init`: creates a node's data directory, its key and a commented configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use surplus_ledger::SecretKey;

use crate::config::{peer_id, validate_name, write_atomic, Config, CONFIG_FILE, KEY_FILE};

/// Arguments of `surplus init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The node's data directory (created if missing).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The node's name: its validator name in the genesis file.
    #[arg(long, value_name = "NAME")]
    name: String,
    /// Port of the libp2p swarm (TCP and QUIC).
    #[arg(long, value_name = "N", default_value_t = 7000)]
    p2p_port: u16,
    /// Port of the consensus engine.
    #[arg(long, value_name = "N", default_value_t = 7100)]
    consensus_port: u16,
    /// Port of the HTTP API (on 127.0.0.1; edit http.listen to serve other hosts).
    #[arg(long, value_name = "N", default_value_t = 8080)]
    http_port: u16,
    /// The address the p2p and consensus ports listen on (0.0.0.0: every interface).
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    listen_ip: std::net::IpAddr,
    /// A member's p2p address, ending in /p2p/<peer id> (repeat for more): p2p.bootstrap.
    #[arg(long, value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// A member's consensus address, such as /ip4/10.0.0.2/tcp/7100 (repeat for more):
    /// consensus.peers.
    #[arg(long, value_name = "MULTIADDR")]
    consensus_peer: Vec<String>,
    /// Replace an existing key and configuration (the old key is kept next to it as a backup).
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `surplus init`.
pub fn init(a: InitArgs) -> Result<ExitCode> {
    validate_name(&a.name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let mut config = Config { name: a.name.clone(), ..Config::default() };
    let ip = match a.listen_ip {
        std::net::IpAddr::V4(v4) => format!("/ip4/{v4}"),
        std::net::IpAddr::V6(v6) => format!("/ip6/{v6}"),
    };
    config.p2p.listen =
        vec![format!("{ip}/tcp/{}", a.p2p_port), format!("{ip}/udp/{}/quic-v1", a.p2p_port)];
    config.p2p.bootstrap = a.bootstrap.clone();
    config.consensus.listen = format!("{ip}/tcp/{}", a.consensus_port);
    config.consensus.peers = a.consensus_peer.clone();
    config.http.listen = format!("127.0.0.1:{}", a.http_port);
    let text = config.commented();
    // What `init` writes must load: a bad --bootstrap or --consensus-peer is refused here, and
    // any other failure is a bug, caught before touching the disk.
    Config::parse(&text, Path::new(CONFIG_FILE))
        .map_err(|e| anyhow::anyhow!("the configuration would not load: {e:#}"))?;

    let key_path = a.data_dir.join(KEY_FILE);
    let config_path = a.data_dir.join(CONFIG_FILE);
    if !a.force {
        for p in [&key_path, &config_path] {
            if p.exists() {
                bail!(
                    "{} already exists: this directory was initialised before. Pass --force to \
                     replace it (the old key is kept as a backup), or choose another --data-dir",
                    p.display()
                );
            }
        }
    }
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("cannot create {}", a.data_dir.display()))?;

    let mut backup = None;
    if key_path.exists() {
        let ms = crate::now_ms();
        let to = a.data_dir.join(format!("{KEY_FILE}.replaced-{ms}"));
        std::fs::rename(&key_path, &to)
            .with_context(|| format!("cannot move the old key to {}", to.display()))?;
        backup = Some(to);
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let key = SecretKey::from_seed(seed);
    crate::keyfile::write_secret(&key_path, key.to_file_contents().as_bytes())?;
    write_atomic(&config_path, text.as_bytes())?;
    let peer_id = peer_id(&key)?;

    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "public_key": key.public().to_string(),
                "peer_id": peer_id,
                "config": config_path,
                "key_file": key_path,
                "replaced_key_backup": backup,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("initialised node {} in {}", a.name, a.data_dir.display());
    println!("  public key  {}", key.public());
    println!("  peer id     {peer_id}");
    println!("  key file    {} (secret: back it up, never share it)", key_path.display());
    println!("  config      {}", config_path.display());
    if let Some(b) = backup {
        println!("  old key     moved to {}", b.display());
    }
    println!("next steps:");
    println!(
        "  1. give the public key to whoever builds the genesis file:\n       surplus genesis \
         --validator {}={} ...",
        a.name,
        key.public()
    );
    println!(
        "  2. put the consortium's genesis file at {}",
        config.genesis_path(&a.data_dir).display()
    );
    println!(
        "  3. edit {}: p2p.bootstrap and consensus.peers (the other members' addresses, unless \
         --bootstrap and --consensus-peer gave them), and optionally [inventory] and \
         [provisioning]",
        config_path.display()
    );
    println!(
        "  (joining a running consortium? docs/governance.md: the members admit the node by \
         vote)"
    );
    println!("  4. start it: surplus node --data-dir {}", a.data_dir.display());
    Ok(ExitCode::SUCCESS)
}
