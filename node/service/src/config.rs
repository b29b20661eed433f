//! The node's configuration file (`DIR/config.toml`) and its validation; `surplus init` writes it.
//!
//! Every error names the file, the field (`p2p.listen[1]`) and how to fix it. The commented
//! default that `init` writes documents every key; [`Config::commented`] renders it from any
//! values, so what `init` writes always parses back to the same configuration.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Result;
use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};
use surplus_ledger::SecretKey;

/// File name of the node key inside the data directory.
pub const KEY_FILE: &str = "node.key";
/// File name of the configuration inside the data directory.
pub const CONFIG_FILE: &str = "config.toml";

const MIB: u64 = 1024 * 1024;

/// A configuration, genesis or inventory file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read or written.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A value is missing, malformed or out of range.
    #[error("{}", invalid_message(file, *line, field, reason))]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The line, when known (1-based).
        line: Option<usize>,
        /// The field's path, such as `p2p.listen[1]` or `validators[2].public_key` (empty when
        /// the file is not even well-formed).
        field: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

fn invalid_message(file: &Path, line: Option<usize>, field: &str, reason: &str) -> String {
    let mut s = file.display().to_string();
    if let Some(l) = line {
        s.push_str(&format!(":{l}"));
    }
    if !field.is_empty() {
        s.push_str(&format!(": {field}"));
    }
    s.push_str(&format!(": {reason}"));
    s
}

impl ConfigError {
    /// An invalid value at `field` of `file`.
    pub fn invalid(file: &Path, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            file: file.to_owned(),
            line: None,
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field path, for invalid values.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            Self::Io { .. } => None,
        }
    }

    /// Reads `path` as text.
    pub fn read(path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Io { file: path.to_owned(), source })
    }

    /// Turns a TOML parse or type error into one that names the line and, where it can be
    /// found, the key (`p2p.listen`).
    pub fn from_toml(file: &Path, text: &str, e: &toml::de::Error) -> Self {
        let message = e.message().replace('\n', "; ");
        let Some(span) = e.span() else {
            return Self::invalid(file, "", message);
        };
        let at = span.start.min(text.len());
        let line = text[..at].matches('\n').count() + 1;
        let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
        Self::Invalid {
            file: file.to_owned(),
            line: Some(line),
            field: toml_key_at(text, at),
            reason: format!("{message} (line {line}, column {column})"),
        }
    }
}

/// The dotted key being defined at byte `at` of a TOML document: the innermost table header
/// before it (`[p2p]`, or `[[pool]]` as `pool[N]`) and the last `key =` at or before its line.
/// A heuristic for error messages on the plain files Surplus uses, not a TOML parser.
fn toml_key_at(text: &str, at: usize) -> String {
    let mut table = String::new();
    let mut key = String::new();
    let mut array_counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > at {
            break;
        }
        let end = offset + line.len();
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_owned();
            let n = array_counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
            key.clear();
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            if !t.starts_with("[\"") && !t.starts_with("['") {
                table = name.trim().to_owned();
                key.clear();
            }
        } else if let Some((k, _)) = t.split_once('=') {
            let k = k.trim();
            let bare = !k.is_empty()
                && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if bare {
                key = k.to_owned();
            }
        } else if at < end && !t.is_empty() && !t.starts_with('#') && key.is_empty() {
            // An unknown bare key without `=` (a syntax error): name the word itself.
            key = t.split_whitespace().next().unwrap_or_default().to_owned();
        }
        offset = end;
    }
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

/// The whole node configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The node's name (a validator's name in the genesis file).
    pub name: String,
    /// The genesis file, relative to the data directory unless absolute.
    pub genesis: PathBuf,
    /// Peer-to-peer networking.
    pub p2p: P2p,
    /// The consensus engine.
    pub consensus: Consensus,
    /// The HTTP API.
    pub http: Http,
    /// The pool of pending orders.
    pub mempool: Mempool,
    /// The operator's inventory file; without it the node publishes no offers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory: Option<InventoryFile>,
    /// What runs when a lease starts and ends.
    pub provisioning: Provisioning,
    /// Where the datacenter's free capacity is read; without it the inventory alone decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<crate::capacity::Source>,
    /// Devnet only: a key whose credits the web UI hands to new browser keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faucet: Option<Faucet>,
    /// The data directory's disk: how much free space the node keeps.
    pub disk: Disk,
    /// Snapshots of the state and how much of the ledger is kept.
    pub storage: Storage,
    /// How this node probes the other providers' leases (when the chain supervises).
    pub supervision: Supervision,
}

/// `[supervision]`: how this node, as a validator, probes the leases of the other providers
/// (`docs/operations.md`, Supervision). The chain's interval and quorum are genesis
/// parameters; these say how hard this vantage point looks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Supervision {
    /// Probe at all (a validator that does not is simply not a vantage point).
    pub enabled: bool,
    /// Probes of each lease per interval, spread over it with jitter (1 to 10); an interval
    /// is down for this node when most of its probes in it failed.
    pub probes_per_interval: u32,
    /// The most probes this node starts in a second, all leases together (1 to 10,000).
    pub max_probes_per_second: u32,
    /// Time one probe may take, ms (100 to 30,000).
    pub timeout_ms: u64,
}

impl Default for Supervision {
    fn default() -> Self {
        Self {
            enabled: true,
            probes_per_interval: 2,
            max_probes_per_second: 100,
            timeout_ms: 2_000,
        }
    }
}

/// `[storage]`: state snapshots (for state sync and restarts of a pruned node) and retention.
/// An archive node keeps every block; otherwise only the newest `retain_blocks` block bodies
/// are kept, with every header and certificate, and never a body a restart needs to replay from
/// the newest snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// Keep every block (what an auditor or an export needs).
    pub archive: bool,
    /// Without `archive`: the block bodies kept, newest first.
    pub retain_blocks: u64,
    /// A snapshot of the state after every block whose height is a multiple of this (0: none;
    /// a node that prunes needs them).
    pub snapshot_every: u64,
    /// Snapshots an archive keeps, newest first (a node that prunes keeps its base snapshot and
    /// every newer one, and at least this many).
    pub snapshot_keep: u64,
    /// The page cache of the ledger's storage engine (`DIR/ledger`), bytes.
    pub ledger_cache_bytes: u64,
    /// The page cache of the receipts (`DIR/mempool`), bytes.
    pub receipts_cache_bytes: u64,
    /// The page cache of the ended leases (`DIR/history`), bytes.
    pub history_cache_bytes: u64,
    /// Receipts kept (the fate of each user entry, `GET /api/v1/submissions/{id}`); past this
    /// the oldest is forgotten.
    pub receipts_keep: u64,
}

/// Page caches are at least this large: sled keeps at least a page per tree in memory, and a
/// smaller cache would only make every read go to the disk.
pub const MIN_CACHE_BYTES: u64 = 1024 * 1024;

impl Default for Storage {
    fn default() -> Self {
        Self {
            archive: true,
            retain_blocks: 10_000,
            snapshot_every: 1_000,
            snapshot_keep: 2,
            ledger_cache_bytes: surplus_store::CACHE_BYTES,
            receipts_cache_bytes: crate::receipts::CACHE_BYTES,
            history_cache_bytes: surplus_net::consensus::history::CACHE_BYTES,
            receipts_keep: crate::receipts::CAPACITY,
        }
    }
}

impl Storage {
    /// The consensus side's settings.
    pub fn settings(&self) -> surplus_net::consensus::chain::Storage {
        surplus_net::consensus::chain::Storage {
            snapshot_every: self.snapshot_every,
            snapshot_keep: self.snapshot_keep as usize,
            retain_blocks: (!self.archive).then_some(self.retain_blocks),
            ledger_cache_bytes: self.ledger_cache_bytes,
            history_cache_bytes: self.history_cache_bytes,
        }
    }
}

/// `[disk]`: the free space the node keeps on its data directory's filesystem. Below
/// `min_free_bytes` it refuses new submissions (503 `unavailable`) and keeps committing blocks;
/// it takes them again at the first measurement above it ([`crate::disk`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Disk {
    /// Free bytes below which new submissions are refused (0: never).
    pub min_free_bytes: u64,
    /// How often free space and the data directory's parts are measured, ms.
    pub check_interval_ms: u64,
}

impl Default for Disk {
    fn default() -> Self {
        Self { min_free_bytes: 256 * MIB, check_interval_ms: 2_000 }
    }
}

/// `[faucet]`: devnet only. `surplus devnet` funds one faucet key per node in its genesis and
/// writes this section; `surplus genesis` never funds one, and a real consortium's nodes must not
/// have it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faucet {
    /// The faucet's key file, relative to the data directory unless absolute.
    pub key: PathBuf,
    /// Units given to each new account.
    pub amount: u64,
}

/// `[p2p]`: the libp2p swarm that carries orders, checkpoints and sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2p {
    /// Multiaddrs to listen on (TCP and QUIC).
    pub listen: Vec<String>,
    /// Multiaddrs of peers to join through, each ending in `/p2p/<peer id>`.
    pub bootstrap: Vec<String>,
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    /// Most connections at once.
    pub max_connections: u32,
    /// Largest gossip message, bytes.
    pub max_message_bytes: u64,
    /// Messages per second accepted from one peer, sustained.
    pub peer_msgs_per_sec: u32,
    /// Messages accepted from one peer in a burst.
    pub peer_burst: u32,
}

/// `[consensus]`: the BFT engine (validators only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Consensus {
    /// Multiaddr the engine listens on.
    pub listen: String,
    /// The other validators' consensus multiaddrs.
    pub peers: Vec<String>,
    /// How long to wait for a proposal in round 0, ms.
    pub timeout_propose_ms: u64,
    /// How much longer each later round waits for a proposal, ms.
    pub timeout_propose_delta_ms: u64,
    /// How long to wait for more prevotes after a quorum of any, ms.
    pub timeout_prevote_ms: u64,
    /// How long to wait for more precommits after a quorum of any, ms.
    pub timeout_precommit_ms: u64,
    /// How often votes are re-sent while a height is stuck, ms.
    pub timeout_rebroadcast_ms: u64,
    /// A block at least this often while orders wait, ms.
    pub batch_interval_ms: u64,
    /// A block as soon as this after the last one, ms, when a full block's worth of orders
    /// waits (the batch interval adapts between the two; above `batch_interval_ms` it is that).
    pub min_batch_interval_ms: u64,
    /// A block this often when nothing waits (settlements, liveness), ms.
    pub idle_heartbeat_ms: u64,
    /// Most user entries in one block.
    pub max_block_entries: u32,
    /// Largest block, bytes.
    pub max_block_bytes: u64,
}

/// `[http]`: the JSON API and web UI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Socket address to serve on.
    pub listen: String,
    /// Largest request body, bytes.
    pub max_body_bytes: u64,
    /// Requests per second each client IP may make (0: no limit).
    pub per_ip_per_sec: u32,
    /// Requests a client IP may burst above its rate.
    pub per_ip_burst: u32,
    /// HTTP connections open at once at most; the node lowers it to fit its open-file limit.
    pub max_connections: u32,
    /// HTTP connections one client IP may hold open (0: no limit).
    pub max_connections_per_ip: u32,
    /// Seconds a connection may stay open without sending a request.
    pub idle_timeout_secs: u32,
    /// Where `/metrics` is served instead of `listen` (empty: on `listen`).
    pub metrics_listen: String,
}

/// `[mempool]`: pending orders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mempool {
    /// Most pending entries.
    pub capacity: u32,
    /// Most bytes of pending entries.
    pub max_bytes: u64,
    /// Shed load: refuse API submissions with 503 `overloaded` while the oldest entry a block
    /// could take has waited longer than this, ms, or than two batch intervals if that is
    /// longer (0: never).
    pub shed_after_ms: u64,
    /// Shed load also while more entries wait than this many of the node's next blocks take
    /// (their size within the propose timeout at the node's measured pace): what comes after
    /// them would miss the latency aim (0: never).
    pub shed_beyond_blocks: u32,
}

/// `[inventory]`: where the operator describes its spare capacity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventoryFile {
    /// The inventory TOML, relative to the data directory unless absolute.
    pub file: PathBuf,
}

/// Which provisioning hook runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// Nothing runs; leases start without provisioning.
    #[default]
    None,
    /// A local command receives the lease on stdin and prints access details.
    Exec,
    /// A webhook receives the lease as a POST and answers with access details.
    Http,
}

/// `[provisioning]`: the hook run at lease start and end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Provisioning {
    /// `none`, `exec` or `http`.
    pub kind: HookKind,
    /// `exec`: the program and its arguments.
    pub command: Vec<String>,
    /// `http`: the webhook URL.
    pub url: String,
    /// Time allowed for one attempt, ms.
    pub timeout_ms: u64,
    /// Attempts after the first one fails.
    pub retries: u32,
    /// Wait before the first retry, ms; it doubles for each later one.
    pub retry_backoff_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: "dc1".into(),
            genesis: "genesis.json".into(),
            p2p: P2p::default(),
            consensus: Consensus::default(),
            http: Http::default(),
            mempool: Mempool::default(),
            inventory: None,
            provisioning: Provisioning::default(),
            capacity: None,
            faucet: None,
            disk: Disk::default(),
            storage: Storage::default(),
            supervision: Supervision::default(),
        }
    }
}

impl Default for P2p {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/0.0.0.0/tcp/7000".into(), "/ip4/0.0.0.0/udp/7000/quic-v1".into()],
            bootstrap: Vec::new(),
            mdns: false,
            max_connections: 128,
            max_message_bytes: 65_536,
            // Every order crosses each link once, so this caps the consortium's order rate.
            peer_msgs_per_sec: 5_000,
            peer_burst: 10_000,
        }
    }
}

impl Default for Consensus {
    fn default() -> Self {
        Self {
            listen: "/ip4/0.0.0.0/tcp/7100".into(),
            peers: Vec::new(),
            timeout_propose_ms: 300,
            timeout_propose_delta_ms: 100,
            timeout_prevote_ms: 200,
            timeout_precommit_ms: 200,
            timeout_rebroadcast_ms: 1_000,
            batch_interval_ms: 500,
            min_batch_interval_ms: 100,
            idle_heartbeat_ms: 30_000,
            max_block_entries: 5_000,
            max_block_bytes: 4 * MIB,
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 65_536,
            per_ip_per_sec: 100,
            per_ip_burst: 200,
            max_connections: 1024,
            max_connections_per_ip: 64,
            idle_timeout_secs: 10,
            metrics_listen: String::new(),
        }
    }
}

impl Default for Mempool {
    fn default() -> Self {
        Self { capacity: 50_000, max_bytes: 64 * MIB, shed_after_ms: 1_000, shed_beyond_blocks: 1 }
    }
}

impl Default for InventoryFile {
    fn default() -> Self {
        Self { file: "inventory.toml".into() }
    }
}

impl Default for Provisioning {
    fn default() -> Self {
        Self {
            kind: HookKind::None,
            command: Vec::new(),
            url: String::new(),
            timeout_ms: 10_000,
            retries: 3,
            retry_backoff_ms: 500,
        }
    }
}

/// A field that failed validation: its path and what to do.
#[derive(Debug)]
struct Bad {
    field: String,
    reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> Bad {
    Bad { field: field.into(), reason: reason.into() }
}

fn multiaddr(field: String, s: &str, example: &str) -> Result<Multiaddr, Bad> {
    s.parse::<Multiaddr>()
        .map_err(|e| bad(field, format!("`{s}` is not a multiaddr ({e}): use e.g. {example}")))
}

fn nonzero(field: &str, v: u64) -> Result<(), Bad> {
    if v == 0 {
        return Err(bad(field, "must be at least 1 (0 would stop the node from working)"));
    }
    Ok(())
}

/// Checks a node, validator or region name: 1 to 64 bytes of `a-z 0-9 . _ -`.
pub fn validate_name(name: &str) -> Result<(), String> {
    surplus_market::validate_name("node", name)
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = ConfigError::read(path)?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
        config.validate().map_err(|b| {
            let line = find_key_line(text, &b.field);
            ConfigError::Invalid { file: file.to_owned(), line, field: b.field, reason: b.reason }
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), Bad> {
        validate_name(&self.name).map_err(|e| bad("name", e))?;
        if let Some(f) = &self.faucet {
            if f.amount == 0 {
                return Err(bad(
                    "faucet.amount",
                    "must be above 0, e.g. 1000000000 (1,000 credits)",
                ));
            }
            if f.key.as_os_str().is_empty() {
                return Err(bad(
                    "faucet.key",
                    "must name the faucet's key file, e.g. \"faucet.key\"",
                ));
            }
        }
        if self.genesis.as_os_str().is_empty() {
            return Err(bad("genesis", "must name the genesis file, e.g. \"genesis.json\""));
        }
        let p = &self.p2p;
        if p.listen.is_empty() {
            return Err(bad(
                "p2p.listen",
                "needs at least one address: use e.g. [\"/ip4/0.0.0.0/tcp/7000\"]",
            ));
        }
        for (i, a) in p.listen.iter().enumerate() {
            multiaddr(format!("p2p.listen[{i}]"), a, "/ip4/0.0.0.0/tcp/7000")?;
        }
        for (i, a) in p.bootstrap.iter().enumerate() {
            let field = format!("p2p.bootstrap[{i}]");
            let m = multiaddr(field.clone(), a, "/ip4/10.0.0.2/tcp/7000/p2p/12D3KooW...")?;
            if !m.iter().any(|p| matches!(p, libp2p::multiaddr::Protocol::P2p(_))) {
                return Err(bad(
                    field,
                    format!(
                        "`{a}` names no peer: end it with /p2p/<peer id> (`surplus init` prints \
                         each node's peer id)"
                    ),
                ));
            }
        }
        nonzero("p2p.max_connections", p.max_connections.into())?;
        nonzero("p2p.max_message_bytes", p.max_message_bytes)?;
        nonzero("p2p.peer_msgs_per_sec", p.peer_msgs_per_sec.into())?;
        if p.peer_burst < p.peer_msgs_per_sec {
            return Err(bad(
                "p2p.peer_burst",
                format!(
                    "{} is less than p2p.peer_msgs_per_sec ({}): a burst must allow at least one \
                     second's worth",
                    p.peer_burst, p.peer_msgs_per_sec
                ),
            ));
        }
        let c = &self.consensus;
        multiaddr("consensus.listen".into(), &c.listen, "/ip4/0.0.0.0/tcp/7100")?;
        for (i, a) in c.peers.iter().enumerate() {
            multiaddr(format!("consensus.peers[{i}]"), a, "/ip4/10.0.0.2/tcp/7100")?;
        }
        for (field, v) in [
            ("consensus.timeout_propose_ms", c.timeout_propose_ms),
            ("consensus.timeout_prevote_ms", c.timeout_prevote_ms),
            ("consensus.timeout_precommit_ms", c.timeout_precommit_ms),
            ("consensus.timeout_rebroadcast_ms", c.timeout_rebroadcast_ms),
            ("consensus.batch_interval_ms", c.batch_interval_ms),
            ("consensus.min_batch_interval_ms", c.min_batch_interval_ms),
            ("consensus.idle_heartbeat_ms", c.idle_heartbeat_ms),
            ("consensus.max_block_entries", c.max_block_entries.into()),
            ("consensus.max_block_bytes", c.max_block_bytes),
        ] {
            nonzero(field, v)?;
        }
        if c.max_block_entries as usize > surplus_ledger::MAX_BLOCK_ENTRIES {
            return Err(bad(
                "consensus.max_block_entries",
                format!("at most {} (the ledger's limit)", surplus_ledger::MAX_BLOCK_ENTRIES),
            ));
        }
        if c.idle_heartbeat_ms < c.batch_interval_ms {
            return Err(bad(
                "consensus.idle_heartbeat_ms",
                format!(
                    "{} is shorter than consensus.batch_interval_ms ({}): the idle heartbeat \
                     must be the slower of the two",
                    c.idle_heartbeat_ms, c.batch_interval_ms
                ),
            ));
        }
        self.http.listen.parse::<SocketAddr>().map_err(|_| {
            bad(
                "http.listen",
                format!("`{}` is not a socket address: use e.g. 127.0.0.1:8080", self.http.listen),
            )
        })?;
        nonzero("http.max_body_bytes", self.http.max_body_bytes)?;
        nonzero("http.max_connections", self.http.max_connections.into())?;
        nonzero("http.idle_timeout_secs", self.http.idle_timeout_secs.into())?;
        if self.http.max_connections_per_ip > self.http.max_connections {
            return Err(bad(
                "http.max_connections_per_ip",
                format!(
                    "{} is more than http.max_connections ({})",
                    self.http.max_connections_per_ip, self.http.max_connections
                ),
            ));
        }
        if !self.http.metrics_listen.is_empty() {
            let m = self.http.metrics_listen.parse::<SocketAddr>().map_err(|_| {
                bad(
                    "http.metrics_listen",
                    format!(
                        "`{}` is not a socket address: use e.g. 127.0.0.1:9102, or leave it empty",
                        self.http.metrics_listen
                    ),
                )
            })?;
            if self.http.listen.parse::<SocketAddr>().is_ok_and(|l| l == m && m.port() != 0) {
                return Err(bad("http.metrics_listen", "must differ from http.listen"));
            }
        }
        if self.http.idle_timeout_secs > 3600 {
            return Err(bad("http.idle_timeout_secs", "must be at most 3600 (one hour)"));
        }
        nonzero("mempool.capacity", self.mempool.capacity.into())?;
        nonzero("mempool.max_bytes", self.mempool.max_bytes)?;
        nonzero("disk.check_interval_ms", self.disk.check_interval_ms)?;
        nonzero("storage.snapshot_keep", self.storage.snapshot_keep)?;
        nonzero("storage.receipts_keep", self.storage.receipts_keep)?;
        for (field, v) in [
            ("storage.ledger_cache_bytes", self.storage.ledger_cache_bytes),
            ("storage.receipts_cache_bytes", self.storage.receipts_cache_bytes),
            ("storage.history_cache_bytes", self.storage.history_cache_bytes),
        ] {
            if v < MIN_CACHE_BYTES {
                return Err(bad(
                    field,
                    format!("{v} is below the smallest page cache, {MIN_CACHE_BYTES} (1 MiB)"),
                ));
            }
        }
        if !self.storage.archive {
            nonzero("storage.retain_blocks", self.storage.retain_blocks)?;
            if self.storage.snapshot_every == 0 {
                return Err(bad(
                    "storage.snapshot_every",
                    "a node that prunes (archive = false) restarts from its snapshots: set \
                     snapshot_every above 0, or archive = true",
                ));
            }
        }
        if let Some(inv) = &self.inventory {
            if inv.file.as_os_str().is_empty() {
                return Err(bad(
                    "inventory.file",
                    "must name the inventory file, e.g. \"inventory.toml\" (or remove [inventory])",
                ));
            }
        }
        let sv = &self.supervision;
        if !(1..=10).contains(&sv.probes_per_interval) {
            return Err(bad("supervision.probes_per_interval", "must be 1 to 10"));
        }
        if !(1..=10_000).contains(&sv.max_probes_per_second) {
            return Err(bad("supervision.max_probes_per_second", "must be 1 to 10000"));
        }
        if !(100..=30_000).contains(&sv.timeout_ms) {
            return Err(bad("supervision.timeout_ms", "must be 100 to 30000"));
        }
        if let Some(c) = &self.capacity {
            c.validate().map_err(|(field, why)| bad(&field, why))?;
            if self.inventory.is_none() {
                return Err(bad(
                    "capacity",
                    "a capacity source bounds the inventory's pools: add [inventory] too",
                ));
            }
        }
        self.provisioning.validate()
    }

    /// The genesis file's path, resolved against the data directory.
    pub fn genesis_path(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.genesis)
    }

    /// The inventory file's path, resolved against the data directory, if one is configured.
    pub fn inventory_path(&self, data_dir: &Path) -> Option<PathBuf> {
        self.inventory.as_ref().map(|i| data_dir.join(&i.file))
    }

    /// The faucet's key file and amount, if this is a devnet node with a faucet.
    pub fn faucet(&self, data_dir: &Path) -> Option<(PathBuf, u64)> {
        self.faucet.as_ref().map(|f| (data_dir.join(&f.key), f.amount))
    }

    /// This configuration as TOML with a comment on every key.
    pub fn commented(&self) -> String {
        let s = |v: &str| toml::Value::String(v.to_owned()).to_string();
        let list = |v: &[String]| {
            let items: Vec<String> = v.iter().map(|x| s(x)).collect();
            format!("[{}]", items.join(", "))
        };
        let path = |p: &Path| s(&p.to_string_lossy());
        let (p, c, h, m, v, d) =
            (&self.p2p, &self.consensus, &self.http, &self.mempool, &self.provisioning, &self.disk);
        let mut out = String::new();
        let mut w = |line: String| {
            out.push_str(&line);
            out.push('\n');
        };
        w("# Surplus node configuration. Every key is optional; the values shown are the defaults"
            .into());
        w("# unless `surplus init` was told otherwise. Sizes are bytes, durations milliseconds."
            .into());
        w(String::new());
        w("# This node's name: its validator name in the genesis file (a-z, 0-9, '.', '_', '-')."
            .into());
        w(format!("name = {}", s(&self.name)));
        w("# The consortium's genesis file (from `surplus genesis`), relative to the data directory.".into());
        w(format!("genesis = {}", path(&self.genesis)));
        w(String::new());
        w("[p2p]".into());
        w("# Where the libp2p swarm listens: TCP and QUIC multiaddrs.".into());
        w(format!("listen = {}", list(&p.listen)));
        w("# Peers to join through, each ending in /p2p/<peer id> (`surplus init` prints a node's"
            .into());
        w("# peer id), e.g. [\"/ip4/10.0.0.2/tcp/7000/p2p/12D3KooW...\"].".into());
        w(format!("bootstrap = {}", list(&p.bootstrap)));
        w("# Discover peers on the local network with mDNS (off in datacenters).".into());
        w(format!("mdns = {}", p.mdns));
        w("# Most open connections.".into());
        w(format!("max_connections = {}", p.max_connections));
        w("# Largest gossip message; larger ones are dropped and their sender penalised.".into());
        w(format!("max_message_bytes = {}", p.max_message_bytes));
        w("# Messages per second accepted from one peer, and the burst above that rate.".into());
        w(format!("peer_msgs_per_sec = {}", p.peer_msgs_per_sec));
        w(format!("peer_burst = {}", p.peer_burst));
        w(String::new());
        w("[consensus]".into());
        w("# Where the consensus engine listens (validators only).".into());
        w(format!("listen = {}", s(&c.listen)));
        w("# The other validators' consensus multiaddrs, e.g. [\"/ip4/10.0.0.2/tcp/7100\"]."
            .into());
        w(format!("peers = {}", list(&c.peers)));
        w("# Round timeouts: wait for a proposal (plus delta per later round), then for more"
            .into());
        w("# prevotes and precommits once a quorum of any has arrived; votes are re-sent this"
            .into());
        w("# often while a height is stuck. Tuned for a datacenter network.".into());
        w(format!("timeout_propose_ms = {}", c.timeout_propose_ms));
        w(format!("timeout_propose_delta_ms = {}", c.timeout_propose_delta_ms));
        w(format!("timeout_prevote_ms = {}", c.timeout_prevote_ms));
        w(format!("timeout_precommit_ms = {}", c.timeout_precommit_ms));
        w(format!("timeout_rebroadcast_ms = {}", c.timeout_rebroadcast_ms));
        w("# A block at least this often while orders wait.".into());
        w(format!("batch_interval_ms = {}", c.batch_interval_ms));
        w("# Sooner, but not before this, when a full block's worth of orders waits.".into());
        w(format!("min_batch_interval_ms = {}", c.min_batch_interval_ms));
        w("# A block this often when nothing waits (settles elapsed lease hours).".into());
        w(format!("idle_heartbeat_ms = {}", c.idle_heartbeat_ms));
        w("# Most user entries, and most bytes, in one block.".into());
        w(format!("max_block_entries = {}", c.max_block_entries));
        w(format!("max_block_bytes = {}", c.max_block_bytes));
        w(String::new());
        w("[http]".into());
        w("# Where the JSON API and web UI are served. Use 0.0.0.0:PORT to serve other hosts."
            .into());
        w(format!("listen = {}", s(&h.listen)));
        w("# Largest request body.".into());
        w(format!("max_body_bytes = {}", h.max_body_bytes));
        w("# Requests per second, and burst, each client IP may make (0: no limit).".into());
        w(format!("per_ip_per_sec = {}", h.per_ip_per_sec));
        w(format!("per_ip_burst = {}", h.per_ip_burst));
        w("# Open connections at most (lowered to fit the open-file limit), per client IP".into());
        w("# (0: no limit), and seconds one may stay open without a request.".into());
        w(format!("max_connections = {}", h.max_connections));
        w(format!("max_connections_per_ip = {}", h.max_connections_per_ip));
        w(format!("idle_timeout_secs = {}", h.idle_timeout_secs));
        w("# Serve /metrics on this address only, e.g. 10.0.0.5:9102 (empty: on `listen`).".into());
        w(format!("metrics_listen = {}", s(&h.metrics_listen)));
        w(String::new());
        w("[mempool]".into());
        w("# Most pending orders, and most bytes of them; when full, new ones are refused.".into());
        w(format!("capacity = {}", m.capacity));
        w(format!("max_bytes = {}", m.max_bytes));
        w("# Shed load: while the oldest pending order has waited longer than this (ms), API"
            .into());
        w("# submissions get 503 `overloaded` with Retry-After (0: never; else at least".into());
        w("# consensus.batch_interval_ms).".into());
        w(format!("shed_after_ms = {}", m.shed_after_ms));
        w("# Shed load too while more orders wait than this many of the next blocks take (the"
            .into());
        w("# block size the node's measured pace allows; 0: never).".into());
        w(format!("shed_beyond_blocks = {}", m.shed_beyond_blocks));
        w(String::new());
        w("[disk]".into());
        w("# Free space kept on the data directory's filesystem: below min_free_bytes the node"
            .into());
        w("# refuses new submissions (503) but keeps committing blocks (0: never refuse).".into());
        w(format!("min_free_bytes = {}", d.min_free_bytes));
        w("# How often free space and the data directory's parts are measured.".into());
        w(format!("check_interval_ms = {}", d.check_interval_ms));
        w(String::new());
        let st = &self.storage;
        w("[storage]".into());
        w("# archive = true keeps every block (auditors and exports need one such node); with"
            .into());
        w("# false only the newest retain_blocks block bodies are kept (headers and certificates"
            .into());
        w("# always are), never one a restart needs after the newest snapshot.".into());
        w(format!("archive = {}", st.archive));
        w(format!("retain_blocks = {}", st.retain_blocks));
        w("# A snapshot of the state every this many blocks (0: none), for state sync and restarts;".into());
        w("# an archive keeps the newest snapshot_keep, a node that prunes every one from its"
            .into());
        w("# base snapshot on (and at least snapshot_keep).".into());
        w(format!("snapshot_every = {}", st.snapshot_every));
        w(format!("snapshot_keep = {}", st.snapshot_keep));
        w("# Page caches of the ledger, the receipts and the ended leases, bytes (each at least"
            .into());
        w("# 1 MiB): what the node holds in memory of them at most.".into());
        w(format!("ledger_cache_bytes = {}", st.ledger_cache_bytes));
        w(format!("receipts_cache_bytes = {}", st.receipts_cache_bytes));
        w(format!("history_cache_bytes = {}", st.history_cache_bytes));
        w("# Receipts kept (GET /api/v1/submissions/{id}), the oldest forgotten first.".into());
        w(format!("receipts_keep = {}", st.receipts_keep));
        w(String::new());
        let sv = &self.supervision;
        w("# As a validator, probe the other providers' leases at the targets they record, and"
            .into());
        w("# report the intervals most probes found down (the chain's quorum decides).".into());
        w("[supervision]".into());
        w(format!("enabled = {}", sv.enabled));
        w("# Probes of each lease per interval, spread over it with jitter (1 to 10).".into());
        w(format!("probes_per_interval = {}", sv.probes_per_interval));
        w("# The most probes started in a second, all leases together (1 to 10000).".into());
        w(format!("max_probes_per_second = {}", sv.max_probes_per_second));
        w("# Time one probe (a TCP connect, an HTTP GET) may take, ms.".into());
        w(format!("timeout_ms = {}", sv.timeout_ms));
        w(String::new());
        w("# The operator's spare capacity, published as offers and kept in step with leases."
            .into());
        w("# Without this section the node publishes no offers. The file (relative to the data"
            .into());
        w("# directory) holds [[pool]] tables: class, region, slots, reserve (units per".into());
        w("# slot-hour), min_hours, horizon_hours, offer_ttl_minutes.".into());
        match &self.inventory {
            Some(i) => {
                w("[inventory]".into());
                w(format!("file = {}", path(&i.file)));
            }
            None => {
                w("# [inventory]".into());
                w("# file = \"inventory.toml\"".into());
            }
        }
        w(String::new());
        if let Some(f) = &self.faucet {
            w("# Devnet only: the web UI's \"Get sample credits\" button funds each new account"
                .into());
            w("# once with `amount` units from this key. Never configure it on a real consortium."
                .into());
            w("[faucet]".into());
            w(format!("key = {}", path(&f.key)));
            w(format!("amount = {}", f.amount));
            w(String::new());
        }
        w("[provisioning]".into());
        w("# What runs when a lease starts and ends: \"none\", \"exec\" or \"http\".".into());
        w("# exec: `command` receives the lease event as JSON on stdin and prints access details"
            .into());
        w("#       as a JSON object, e.g. [\"/usr/local/bin/provision\", \"--site\", \"a\"]."
            .into());
        w("# http: `url` receives the event as a POST and answers with a JSON object.".into());
        w(format!(
            "kind = {}",
            s(match v.kind {
                HookKind::None => "none",
                HookKind::Exec => "exec",
                HookKind::Http => "http",
            })
        ));
        w(format!("command = {}", list(&v.command)));
        w(format!("url = {}", s(&v.url)));
        w("# Time allowed for one attempt; a command still running then is killed.".into());
        w(format!("timeout_ms = {}", v.timeout_ms));
        w("# Attempts after the first one fails, waiting retry_backoff_ms, then twice as long..."
            .into());
        w(format!("retries = {}", v.retries));
        w(format!("retry_backoff_ms = {}", v.retry_backoff_ms));
        w(String::new());
        let cap = self.capacity.clone();
        let on = cap.is_some();
        let c = cap.unwrap_or_default();
        let key = |line: String| if on { line } else { format!("# {line}") };
        w("# Where the datacenter's free capacity is read (docs/operations.md, Capacity sources):"
            .into());
        w("# the node offers at most what the source reports of each class, less the headroom."
            .into());
        w("# exec: `command` gets {\"classes\": [...]} on stdin and prints {\"CLASS\": SLOTS, ...};"
            .into());
        w("# http: GET `url` answers that object; prometheus: `query` at `url`, one sample per"
            .into());
        w("# class labelled `class`. Without [capacity] the inventory alone decides.".into());
        w(key("[capacity]".into()));
        w(key(format!(
            "kind = {}",
            s(match c.kind {
                crate::capacity::SourceKind::Exec => "exec",
                crate::capacity::SourceKind::Http => "http",
                crate::capacity::SourceKind::Prometheus => "prometheus",
            })
        )));
        w(key(format!("command = {}", list(&c.command))));
        w(key(format!("url = {}", s(&c.url))));
        w(key(format!("query = {}", s(&c.query))));
        w(key(format!("interval_ms = {}", c.interval_ms)));
        w(key(format!("timeout_ms = {}", c.timeout_ms)));
        w(key(format!("headroom_percent = {}", c.headroom_percent)));
        out
    }
}

impl Provisioning {
    fn validate(&self) -> Result<(), Bad> {
        nonzero("provisioning.timeout_ms", self.timeout_ms)?;
        match self.kind {
            HookKind::None => {}
            HookKind::Exec => {
                if self.command.first().is_none_or(|c| c.trim().is_empty()) {
                    return Err(bad(
                        "provisioning.command",
                        "kind = \"exec\" needs a command: use e.g. [\"/usr/local/bin/provision\"]",
                    ));
                }
            }
            HookKind::Http => {
                let url = self.url.trim();
                if url.starts_with("https://") {
                    return Err(bad(
                        "provisioning.url",
                        format!(
                            "`{url}`: this build speaks plain http only; point it at a local \
                             TLS-terminating proxy (http://127.0.0.1:PORT/...) or use kind = \"exec\""
                        ),
                    ));
                }
                let host =
                    url.strip_prefix("http://").map(|r| r.split(['/', '?']).next().unwrap_or(""));
                if host.is_none_or(str::is_empty) {
                    return Err(bad(
                        "provisioning.url",
                        format!(
                            "kind = \"http\" needs an http URL, got `{url}`: use e.g. \
                             \"http://127.0.0.1:9000/provision\""
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl P2p {
    /// The listen multiaddrs (validated at load).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen.iter().filter_map(|a| a.parse().ok()).collect()
    }
    /// The bootstrap multiaddrs (validated at load).
    pub fn bootstrap_addrs(&self) -> Vec<Multiaddr> {
        self.bootstrap.iter().filter_map(|a| a.parse().ok()).collect()
    }
}

impl Consensus {
    /// The engine's listen multiaddr (validated at load).
    pub fn listen_addr(&self) -> Option<Multiaddr> {
        self.listen.parse().ok()
    }
    /// The other validators' multiaddrs (validated at load).
    pub fn peer_addrs(&self) -> Vec<Multiaddr> {
        self.peers.iter().filter_map(|a| a.parse().ok()).collect()
    }
}

impl Http {
    /// The socket address to serve on (validated at load).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
    /// Where `/metrics` is served instead, if set (validated at load).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listen.parse().ok()
    }
}

/// The line where `field` (`p2p.listen[1]`) is set, if it appears literally.
fn find_key_line(text: &str, field: &str) -> Option<usize> {
    let dotted = field.split('[').next().unwrap_or(field);
    let (table, key) = match dotted.rsplit_once('.') {
        Some((t, k)) => (t, k),
        None => ("", dotted),
    };
    let mut current = String::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            current = name.trim_start_matches('[').trim().to_owned();
        } else if current == table {
            if let Some((k, _)) = t.split_once('=') {
                if k.trim() == key {
                    return Some(n + 1);
                }
            }
        }
    }
    None
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HookKind::None => "none",
            HookKind::Exec => "exec",
            HookKind::Http => "http",
        })
    }
}

/// The libp2p peer id of a node key (its identity on the swarm).
pub fn peer_id(key: &SecretKey) -> Result<String> {
    let mut seed = key.seed();
    let kp = libp2p::identity::Keypair::ed25519_from_bytes(&mut seed)
        .map_err(|e| anyhow::anyhow!("the node key is not a valid libp2p identity: {e}"))?;
    Ok(kp.public().to_peer_id().to_string())
}

/// Writes `path` so that a crash leaves either the old or the new contents: a temporary file
/// in the same directory, fsync, rename over, fsync of the directory.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    use std::io::Write;
    let io = |source| ConfigError::Io { file: path.to_owned(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    // The rename is durable once the directory is; not every platform can open one.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("config.toml"))
    }

    fn err(text: &str) -> String {
        parse(text).expect_err("must be refused").to_string()
    }

    #[test]
    fn the_commented_default_documents_every_key_and_parses_back() {
        let text = Config { name: "dc7".to_owned(), ..Config::default() }.commented();
        let c = parse(&text).unwrap();
        assert_eq!(c, Config { name: "dc7".into(), ..Config::default() });
        // An empty file is the default configuration.
        assert_eq!(parse("").unwrap(), Config::default());
        // Every key line is preceded by a comment or another key of its group.
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.contains(" = ") && !l.starts_with('#') {
                assert!(i > 0 && !lines[i - 1].is_empty(), "undocumented key: {l}");
            }
        }
        // Every field of every section appears in it.
        let json = serde_json::to_value(Config {
            inventory: Some(InventoryFile::default()),
            ..Config::default()
        })
        .unwrap();
        for (k, v) in json.as_object().unwrap() {
            match v.as_object() {
                Some(section) => {
                    assert!(text.contains(&format!("[{k}]")), "{k}");
                    for f in section.keys() {
                        assert!(text.contains(&format!("{f} = ")), "{k}.{f}");
                    }
                }
                None => assert!(text.contains(&format!("{k} = ")), "{k}"),
            }
        }
        // Non-default values render and round-trip too.
        let mut c = Config {
            inventory: Some(InventoryFile { file: "inv/dc \"a\".toml".into() }),
            provisioning: Provisioning {
                kind: HookKind::Exec,
                command: vec!["/bin/provision".into(), "--x=\"y\"".into()],
                ..Provisioning::default()
            },
            ..Config::default()
        };
        c.consensus.peers = vec!["/ip4/10.0.0.2/tcp/7100".into()];
        assert_eq!(parse(&c.commented()).unwrap(), c);
        // With a capacity source (devnet's dc1 with --capacity-from-host).
        c.capacity = Some(crate::capacity::Source {
            command: vec!["surplus".into(), "hook".into(), "capacity".into()],
            headroom_percent: 25,
            ..Default::default()
        });
        assert_eq!(parse(&c.commented()).unwrap(), c);
    }

    #[test]
    fn errors_name_the_field_the_line_and_the_fix() {
        let e = err("[p2p]\nlisten = [\"/ip4/0.0.0.0/tcp/7000\", \"/ip4/x\"]\n");
        assert!(e.contains("config.toml:2: p2p.listen[1]: `/ip4/x` is not a multiaddr"), "{e}");
        assert!(e.contains("use e.g. /ip4/0.0.0.0/tcp/7000"), "{e}");
        let e = err("name = \"dc1\"\n[p2p]\nlisten = 5\n");
        assert!(e.contains("config.toml:3: p2p.listen: invalid type"), "{e}");
        let e = err("[p2p]\nmax_conections = 3\n");
        assert!(e.contains("p2p.max_conections: unknown field"), "{e}");
        assert!(e.contains("max_connections"), "{e}");
        let e = err("[htp]\nlisten = \"x\"\n");
        assert!(e.contains("unknown field `htp`"), "{e}");
        let e = err("[http]\nlisten = \"localhost\"\n");
        assert!(e.contains("http.listen: `localhost` is not a socket address"), "{e}");
        let e = err("[disk]\ncheck_interval_ms = 0\n");
        assert!(e.contains("config.toml:2: disk.check_interval_ms: must be at least 1"), "{e}");
        let ok = parse("[disk]\nmin_free_bytes = 0\n").unwrap();
        assert_eq!(ok.disk.min_free_bytes, 0);
        let e = err("[storage]\nledger_cache_bytes = 4096\n");
        assert!(e.contains("config.toml:2: storage.ledger_cache_bytes: 4096 is below"), "{e}");
        let e = err("[storage]\nreceipts_keep = 0\n");
        assert!(e.contains("storage.receipts_keep: must be at least 1"), "{e}");
        let ok = parse("[storage]\nhistory_cache_bytes = 1048576\nreceipts_keep = 10\n").unwrap();
        assert_eq!((ok.storage.history_cache_bytes, ok.storage.receipts_keep), (1 << 20, 10));
        let e = err("[mempool]\ncapacity = 0\n");
        assert!(e.contains("config.toml:2: mempool.capacity: must be at least 1"), "{e}");
        assert_eq!(parse("[mempool]\nshed_after_ms = 0\n").unwrap().mempool.shed_after_ms, 0);
        let c = parse("[mempool]\nshed_beyond_blocks = 0\n").unwrap();
        assert_eq!(c.mempool.shed_beyond_blocks, 0);
        let e = err("[consensus]\nmax_block_entries = 1000000\n");
        assert!(e.contains("consensus.max_block_entries: at most 100000"), "{e}");
        let e = err("[consensus]\npeers = [\"nope\"]\n");
        assert!(e.contains("consensus.peers[0]"), "{e}");
        let e = err("[p2p]\nbootstrap = [\"/ip4/10.0.0.2/tcp/7000\"]\n");
        assert!(e.contains("p2p.bootstrap[0]") && e.contains("/p2p/<peer id>"), "{e}");
        let e = err("name = \"DC 1\"\n");
        assert!(e.contains("name:"), "{e}");
        let e = err("name = [\n");
        assert!(e.contains("config.toml:2: name: invalid array"), "{e}");
        let e = err("[provisioning]\nkind = \"exec\"\n");
        assert!(e.contains("provisioning.command: kind = \"exec\" needs a command"), "{e}");
        let e = err("[provisioning]\nkind = \"http\"\nurl = \"ftp://x\"\n");
        assert!(e.contains("provisioning.url") && e.contains("http://"), "{e}");
        let e = err("[provisioning]\nkind = \"http\"\nurl = \"https://x/y\"\n");
        assert!(e.contains("plain http only"), "{e}");
        let e = err("[provisioning]\nkind = \"ssh\"\n");
        assert!(e.contains("provisioning.kind") && e.contains("exec"), "{e}");
        let ok =
            parse("[provisioning]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/p\"\n").unwrap();
        assert_eq!(ok.provisioning.kind, HookKind::Http);
        let e = err("[inventory]\n[capacity]\nkind = \"exec\"\n");
        assert!(e.contains("capacity.command"), "{e}");
        let e = err("[capacity]\ncommand = [\"cat\"]\n");
        assert!(e.contains("capacity: a capacity source bounds the inventory"), "{e}");
        let e = err("[inventory]\n[capacity]\nkind = \"prometheus\"\nurl = \"http://p:9090\"\n");
        assert!(e.contains("capacity.query"), "{e}");
        let e = err("[inventory]\n[capacity]\ncommand = [\"cat\"]\nheadroom_percent = 100\n");
        assert!(e.contains("capacity.headroom_percent"), "{e}");
        let ok = parse("[inventory]\n").unwrap();
        assert_eq!(ok.inventory_path(Path::new("/d")), Some(PathBuf::from("/d/inventory.toml")));
    }

    #[test]
    fn load_names_a_missing_file() {
        let e = Config::load(Path::new("/nonexistent/config.toml")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/config.toml: "), "{e}");
    }

    #[test]
    fn accessors_give_the_parsed_addresses() {
        let c = Config::default();
        assert_eq!(c.p2p.listen_addrs().len(), 2);
        assert_eq!(c.consensus.listen_addr().unwrap().to_string(), "/ip4/0.0.0.0/tcp/7100");
        assert_eq!(c.http.listen_addr().unwrap().port(), 8080);
        assert_eq!(c.genesis_path(Path::new("/d")), PathBuf::from("/d/genesis.json"));
    }
}
