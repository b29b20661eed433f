//! `surplus devnet`: a whole local consortium on loopback — N validator nodes as separate
//! processes, a sample catalogue, an inventory per datacenter, funded buyer keys, and the web UI.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use rand_core::OsRng;
use surplus_contracts::{Allocation, Params};
use surplus_ledger::SecretKey;
use surplus_market::{Catalogue, Market};

use crate::config::{self, Config, HookKind};
use crate::devnet_file::{self, DevnetBuyer, DevnetFile, DevnetNode, CHAIN_ID};
use crate::genesis::{GenesisFile, Validator};
use crate::inventory::Inventory;

/// Credits given to every sample buyer (units).
pub const BUYER_FUNDS: u64 = 1_000_000 * 1_000_000;
/// Credits each node's faucet starts with (units).
pub const FAUCET_FUNDS: u64 = 1_000_000 * 1_000_000;
/// Credits the faucet gives a new browser key (units): 1,000 credits.
pub const FAUCET_GRANT: u64 = 1_000 * 1_000_000;
/// Devnet nodes write a snapshot of the state every this many blocks.
const DEVNET_SNAPSHOT_EVERY: u64 = 500;
/// Devnet nodes other than the first keep this many block bodies.
const DEVNET_RETAIN_BLOCKS: u64 = 2_000;
/// How long running nodes get to answer on their API after start (replaying a long ledger).
const START_TIMEOUT: Duration = Duration::from_secs(600);
/// The first wait before a dead node is restarted; each quick death doubles it.
const RESTART_FIRST: Duration = Duration::from_secs(1);
/// The longest wait before a restart.
const RESTART_MAX: Duration = Duration::from_secs(30);
/// A node that stayed up this long is restarted after `RESTART_FIRST` again when it dies.
const RESTART_STABLE: Duration = Duration::from_secs(60);

/// Arguments of `surplus devnet`.
#[derive(Debug, clap::Args)]
pub struct DevnetArgs {
    /// Number of validator nodes (1 to 16).
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Where every node's data dir, the buyer keys and devnet.json go.
    #[arg(long, default_value = "devnet")]
    pub data_dir: PathBuf,
    /// Keep sample bids flowing so the market visibly moves.
    #[arg(long)]
    pub demo: bool,
    /// Stop the demo after this many orders.
    #[arg(long, default_value_t = 100_000)]
    pub demo_orders: u64,
    /// First port: node i uses BASE+10i (p2p TCP and QUIC), +1 (consensus), +2 (HTTP).
    #[arg(long, default_value_t = 7700)]
    pub base_port: u16,
    /// Number of sample buyer keys.
    #[arg(long, default_value_t = 3)]
    pub buyers: usize,
    /// Write the devnet (keys, configs, genesis) and exit without starting it.
    #[arg(long)]
    pub init_only: bool,
    /// Batch interval of the nodes, ms.
    #[arg(long, default_value_t = 500)]
    pub batch_interval_ms: u64,
    /// Notice, in seconds, that spares a provider the penalty when maintenance ends a lease
    /// early (the genesis parameter notice_ms: 24 hours in a real consortium, short here so
    /// that `surplus drain` can be tried).
    #[arg(long, default_value_t = 120)]
    pub notice_secs: u64,
    /// dc1 sells only what this host's /proc says is free (its CPUs less the load, its
    /// available memory, as a datacenter of 16 such hosts), less a 10 % headroom, read every
    /// 10 s: the sample capacity source (`surplus hook capacity`). The other nodes sell their
    /// inventory as is.
    #[arg(long)]
    pub capacity_from_host: bool,
    /// Length of a supervision interval, seconds (the genesis parameter: every node probes the
    /// other datacenters' leases, a quorum of their reports decides which intervals were down,
    /// and the buyers get those back); 0 turns supervision off. Each node's sample hook gives
    /// its leases its own /healthz as their probe target.
    #[arg(long, default_value_t = 60)]
    pub probe_interval_secs: u64,
    /// With nothing to do, the nodes still make a block this often, ms.
    #[arg(long, default_value_t = 30_000)]
    pub heartbeat_ms: u64,
}

fn markets_for(i: usize, catalogue: &Catalogue) -> Vec<(Market, u32, u64)> {
    let markets = catalogue.markets();
    // Each datacenter sells in one region, a few classes, at reserves that differ a little.
    let region = &catalogue.regions[i % catalogue.regions.len()].id;
    markets
        .into_iter()
        .filter(|m| &m.region == region)
        .enumerate()
        .map(|(k, m)| {
            let base = if m.class.starts_with("gpu") { 2_000_000 } else { 40_000 * (k as u64 + 1) };
            (m, 8 + 4 * (i as u32 % 3), base + 1_000 * i as u64)
        })
        .collect()
}

fn write(path: &Path, text: &str) -> Result<()> {
    config::write_atomic(path, text.as_bytes())?;
    Ok(())
}

fn write_key(path: &Path, key: &SecretKey) -> Result<()> {
    write(path, &key.to_file_contents())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Creates the devnet's files in `dir`.
pub fn create(a: &DevnetArgs) -> Result<DevnetFile> {
    if a.nodes == 0 || a.nodes > 16 {
        bail!("--nodes must be 1 to 16, got {}", a.nodes);
    }
    if usize::from(a.base_port) + 10 * a.nodes + 3 > usize::from(u16::MAX) {
        bail!("--base-port {} leaves no room for {} nodes", a.base_port, a.nodes);
    }
    let dir = &a.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let exe = std::env::current_exe().context("cannot find the surplus binary")?;
    // The sample catalogue with market terms: 99.5 % availability, a 10 % credit below it, and
    // a bond of 10 credits a slot (100 for a GPU).
    let mut catalogue = Catalogue::sample();
    for c in &mut catalogue.classes {
        let bond = if c.id.starts_with("gpu") { 100_000_000 } else { 10_000_000 };
        c.attributes.insert(surplus_contracts::supervision::ATTR_AVAILABILITY.into(), 9_950);
        c.attributes.insert(surplus_contracts::supervision::ATTR_CREDIT.into(), 1_000);
        c.attributes.insert(surplus_contracts::supervision::ATTR_BOND.into(), bond);
    }
    if a.probe_interval_secs != 0
        && (a.probe_interval_secs > 3_600 || 3_600 % a.probe_interval_secs != 0)
    {
        bail!(
            "--probe-interval-secs must divide an hour (1 to 3600), got {}",
            a.probe_interval_secs
        );
    }
    let keys: Vec<SecretKey> = (0..a.nodes).map(|_| SecretKey::generate(&mut OsRng)).collect();
    let port = |i: usize, k: u16| a.base_port + 10 * i as u16 + k;
    let p2p_addr = |i: usize| -> Result<String> {
        Ok(format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", port(i, 0), config::peer_id(&keys[i])?))
    };
    let buyers: Vec<(PathBuf, SecretKey)> = (0..a.buyers)
        .map(|j| {
            (dir.join("buyers").join(format!("buyer{j}.key")), SecretKey::generate(&mut OsRng))
        })
        .collect();
    std::fs::create_dir_all(dir.join("buyers"))?;
    for (path, key) in &buyers {
        write_key(path, key)?;
    }
    let mut allocations: Vec<Allocation> = buyers
        .iter()
        .map(|(_, k)| Allocation { account: k.public(), amount: BUYER_FUNDS })
        .collect();
    allocations
        .extend(keys.iter().map(|k| Allocation { account: k.public(), amount: BUYER_FUNDS / 10 }));
    // One faucet per node, so that faucet transfers of different nodes never race for one
    // account's sequence numbers. Only devnet's genesis funds faucets.
    let faucets: Vec<SecretKey> = (0..a.nodes).map(|_| SecretKey::generate(&mut OsRng)).collect();
    allocations
        .extend(faucets.iter().map(|k| Allocation { account: k.public(), amount: FAUCET_FUNDS }));
    let genesis = GenesisFile {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: crate::now_ms(),
        validators: keys
            .iter()
            .enumerate()
            .map(|(i, k)| Validator { name: format!("dc{}", i + 1), public_key: k.public() })
            .collect(),
        params: Params {
            catalogue: catalogue.clone(),
            treasury: keys[0].public(),
            fee_bps: 100,
            penalty_bps: 500,
            notice_ms: a.notice_secs.saturating_mul(1000),
            supervision: (a.probe_interval_secs > 0).then(|| {
                surplus_contracts::supervision::Supervision {
                    interval_ms: a.probe_interval_secs * 1000,
                    window: 5,
                    quorum_bps: 5_000,
                    min_down: 2,
                }
            }),
        },
        allocations,
    };
    let genesis_json = genesis.to_json();
    let mut nodes = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let name = format!("dc{}", i + 1);
        let node_dir = dir.join(&name);
        std::fs::create_dir_all(&node_dir)?;
        write_key(&node_dir.join("node.key"), key)?;
        write_key(&node_dir.join("faucet.key"), &faucets[i])?;
        write(&node_dir.join("genesis.json"), &genesis_json)?;
        // Two hosts per datacenter, so that one can be drained while the other takes its leases.
        let inventory = Inventory::sample_on(&markets_for(i, &catalogue), &["pve-a", "pve-b"]);
        write(&node_dir.join("inventory.toml"), &inventory)?;
        let mut c = Config { name: name.clone(), ..Config::default() };
        c.p2p.listen = vec![
            format!("/ip4/127.0.0.1/tcp/{}", port(i, 0)),
            format!("/ip4/127.0.0.1/udp/{}/quic-v1", port(i, 0)),
        ];
        c.p2p.bootstrap =
            (0..a.nodes).filter(|&j| j != i).map(p2p_addr).collect::<Result<Vec<_>>>()?;
        c.consensus.listen = format!("/ip4/127.0.0.1/tcp/{}", port(i, 1));
        c.consensus.peers = (0..a.nodes)
            .filter(|&j| j != i)
            .map(|j| format!("/ip4/127.0.0.1/tcp/{}", port(j, 1)))
            .collect();
        c.consensus.batch_interval_ms = a.batch_interval_ms;
        c.consensus.idle_heartbeat_ms = a.heartbeat_ms;
        c.http.listen = format!("127.0.0.1:{}", port(i, 2));
        // Everyone on a devnet is one loopback client: the demo, the web UI, load tools.
        c.http.per_ip_per_sec = 20_000;
        c.http.per_ip_burst = 40_000;
        c.p2p.peer_msgs_per_sec = 20_000;
        c.p2p.peer_burst = 40_000;
        // The first node is the archive (auditors and exports); the others keep the newest
        // blocks and restart from their snapshots, as most members of a consortium would.
        c.storage.snapshot_every = DEVNET_SNAPSHOT_EVERY;
        if i > 0 {
            c.storage.archive = false;
            c.storage.retain_blocks = DEVNET_RETAIN_BLOCKS;
        }
        c.inventory = Some(config::InventoryFile { file: "inventory.toml".into() });
        c.faucet = Some(config::Faucet { key: "faucet.key".into(), amount: FAUCET_GRANT });
        c.provisioning.kind = HookKind::Exec;
        c.provisioning.command = vec![
            exe.display().to_string(),
            "hook".into(),
            "sample".into(),
            "--dir".into(),
            node_dir.join("leases").display().to_string(),
            "--probe-http".into(),
            format!("http://127.0.0.1:{}/healthz", port(i, 2)),
        ];
        if i == 0 && a.capacity_from_host {
            c.capacity = Some(surplus_service::capacity::Source {
                command: vec![
                    exe.display().to_string(),
                    "hook".into(),
                    "capacity".into(),
                    "--hosts".into(),
                    "16".into(),
                ],
                ..Default::default()
            });
        }
        write(&node_dir.join("config.toml"), &c.commented())?;
        nodes.push(DevnetNode {
            name,
            public_key: key.public(),
            api: format!("http://127.0.0.1:{}", port(i, 2)),
            p2p: p2p_addr(i)?,
            consensus: c.consensus.listen.clone(),
            data_dir: node_dir,
            pid: 0,
            restarts: 0,
        });
    }
    let file = DevnetFile {
        chain_id: CHAIN_ID.into(),
        web_ui: format!("{}/", nodes[0].api),
        nodes,
        buyers: buyers
            .iter()
            .map(|(p, k)| DevnetBuyer { key_file: p.clone(), public_key: k.public() })
            .collect(),
    };
    devnet_file::save(dir, &file)?;
    Ok(file)
}

fn spawn(exe: &Path, node: &DevnetNode) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(node.data_dir.join("node.log"))
        .with_context(|| format!("cannot open {}/node.log", node.data_dir.display()))?;
    Command::new(exe)
        .arg("node")
        .arg("--data-dir")
        .arg(&node.data_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start node {}", node.name))
}

fn api_up(api: &str) -> bool {
    surplus_client::Client::with_timeouts(api, Duration::from_secs(2), Duration::from_secs(2))
        .and_then(|c| c.status())
        .is_ok()
}

/// Sends SIGTERM so the node shuts down cleanly (flushes, releases its WAL).
fn terminate(child: &Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
}

/// Runs `surplus devnet`.
pub fn devnet(a: DevnetArgs) -> Result<ExitCode> {
    let dir = a.data_dir.clone();
    let mut file = if dir.join("devnet.json").exists() {
        let f = devnet_file::load(&dir)?;
        if f.nodes.len() != a.nodes {
            bail!(
                "{} holds a devnet of {} nodes, not {}: pass --nodes {} to resume it, or use \
                 another --data-dir",
                dir.display(),
                f.nodes.len(),
                a.nodes,
                f.nodes.len()
            );
        }
        println!("resuming the devnet in {}", dir.display());
        f
    } else {
        println!("creating a devnet of {} nodes in {}", a.nodes, dir.display());
        create(&a)?
    };
    if a.init_only {
        println!("wrote {}", dir.join("devnet.json").display());
        return Ok(ExitCode::SUCCESS);
    }
    let exe = std::env::current_exe().context("cannot find the surplus binary")?;
    let mut children = Vec::new();
    for n in &mut file.nodes {
        let child = spawn(&exe, n)?;
        n.pid = child.id();
        children.push(child);
    }
    devnet_file::save(&dir, &file)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc_handler(move || stop.store(true, std::sync::atomic::Ordering::SeqCst))?;
    }
    let started = Instant::now();
    for (i, n) in file.nodes.clone().into_iter().enumerate() {
        while !api_up(&n.api) {
            // A node replays its ledger before it serves: wait while it runs, not a fixed time.
            let exited = children[i].try_wait().ok().flatten().is_some();
            if exited
                || started.elapsed() > START_TIMEOUT
                || stop.load(std::sync::atomic::Ordering::SeqCst)
            {
                shutdown(&mut children, &mut file, &dir);
                bail!(
                    "node {} did not come up on {}: see {}/node.log",
                    n.name,
                    n.api,
                    n.data_dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    println!(
        "\nSurplus devnet `{}` is running: {} validators on 127.0.0.1",
        file.chain_id,
        file.nodes.len()
    );
    for n in &file.nodes {
        println!("  {:<5} {}  (data {}, pid {})", n.name, n.api, n.data_dir.display(), n.pid);
    }
    println!("  buyer keys: {}", dir.join("buyers").display());
    println!("\nWeb UI: {}", file.web_ui);
    // The first node's operator page, with its operator token (the page keeps it for the tab).
    let token = std::fs::read_to_string(file.nodes[0].data_dir.join("operator.token"));
    if let Ok(token) = token {
        println!(
            "Operator page of {}: {}#/operator?token={}",
            file.nodes[0].name,
            file.web_ui,
            token.trim()
        );
    }
    println!("Try:    surplus status --node {}", file.nodes[0].api);
    println!("Stop:   Ctrl-C (running `surplus devnet` again resumes the same chain)\n");

    let mut demo = a.demo.then(|| crate::demo::Demo::new(&file));
    let mut sent = 0u64;
    let mut watch: Vec<Watch> = file.nodes.iter().map(|_| Watch::started()).collect();
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        if supervise(&exe, &mut children, &mut watch, &mut file) {
            let _ = devnet_file::save(&dir, &file);
        }
        if let Some(d) = demo.as_mut().filter(|_| sent < a.demo_orders) {
            match d.step() {
                Ok(n) => sent += n,
                Err(e) => eprintln!("demo: {e:#}"),
            }
        }
        std::thread::sleep(Duration::from_millis(if demo.is_some() { 700 } else { 200 }));
    }
    println!("stopping the devnet…");
    shutdown(&mut children, &mut file, &dir);
    Ok(ExitCode::SUCCESS)
}

/// What the devnet knows of one node's process between its deaths and restarts.
struct Watch {
    /// When the running process was started.
    since: Instant,
    /// The wait before the next restart.
    backoff: Duration,
    /// Set while the node is dead: when to restart it.
    restart_at: Option<Instant>,
}

impl Watch {
    fn started() -> Watch {
        Watch { since: Instant::now(), backoff: RESTART_FIRST, restart_at: None }
    }
}

/// One look at every node: a node that died is reported and, after its backoff, restarted on
/// its data dir; the other nodes are left running. Returns whether devnet.json changed.
fn supervise(
    exe: &Path,
    children: &mut [Child],
    watch: &mut [Watch],
    file: &mut DevnetFile,
) -> bool {
    let mut changed = false;
    for ((child, w), n) in children.iter_mut().zip(watch.iter_mut()).zip(file.nodes.iter_mut()) {
        match w.restart_at {
            None => {
                let Ok(Some(status)) = child.try_wait() else { continue };
                if w.since.elapsed() >= RESTART_STABLE {
                    w.backoff = RESTART_FIRST;
                }
                eprintln!(
                    "node {} died ({status}) after {} s: see {}/node.log; the other nodes keep \
                     running; restarting it in {} s",
                    n.name,
                    w.since.elapsed().as_secs(),
                    n.data_dir.display(),
                    w.backoff.as_secs()
                );
                w.restart_at = Some(Instant::now() + w.backoff);
                n.pid = 0;
                changed = true;
            }
            Some(at) if Instant::now() >= at => match spawn(exe, n) {
                Ok(c) => {
                    *child = c;
                    n.pid = child.id();
                    n.restarts += 1;
                    eprintln!(
                        "node {} restarted (pid {}, restart {} of this run)",
                        n.name, n.pid, n.restarts
                    );
                    w.since = Instant::now();
                    w.backoff = (w.backoff * 2).min(RESTART_MAX);
                    w.restart_at = None;
                    changed = true;
                }
                Err(e) => {
                    eprintln!("cannot restart node {}: {e:#}; trying again", n.name);
                    w.backoff = (w.backoff * 2).min(RESTART_MAX);
                    w.restart_at = Some(Instant::now() + w.backoff);
                }
            },
            Some(_) => {}
        }
    }
    changed
}

fn shutdown(children: &mut [Child], file: &mut DevnetFile, dir: &Path) {
    for c in children.iter_mut() {
        // A dead node waiting for its restart was reaped already: its pid may be another's.
        if matches!(c.try_wait(), Ok(None)) {
            terminate(c);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for c in children.iter_mut() {
        loop {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
    for n in &mut file.nodes {
        n.pid = 0;
    }
    let _ = devnet_file::save(dir, file);
}

/// Calls `f` on Ctrl-C or SIGTERM (a small tokio runtime on its own thread).
fn ctrlc_handler(f: impl FnOnce() + Send + 'static) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::spawn(move || {
        rt.block_on(crate::node_cmd::shutdown_signal());
        f();
    });
    Ok(())
}
