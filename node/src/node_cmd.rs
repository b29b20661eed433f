//! `surplus node`: runs one node in this process until Ctrl-C or SIGTERM. A failed write to the
//! data directory (a full disk) does not end the process: the node stops, waits for room and
//! starts again in process (`surplus_service::runtime::Builder::run_until`); other errors do.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use surplus_service::runtime::Builder;

/// Arguments of `surplus node`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// The node's data dir (made by `surplus init`): node.key, config.toml, the ledger.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Config file (default DATA_DIR/config.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Log filter (default: info for surplus, warn for the engine and libp2p).
    #[arg(long)]
    pub log: Option<String>,
    /// How a data dir without a ledger gets its state: `genesis` replays every block from
    /// genesis; `snapshot` fetches a snapshot of the state from the bootstrap peers, checks it
    /// against a certified state root and starts from there (docs/snapshots.md).
    #[arg(long, value_enum, default_value_t = SyncMode::Genesis)]
    pub sync: SyncMode,
}

/// How a new node gets its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncMode {
    /// Replay every block from genesis.
    Genesis,
    /// Start from a peer's snapshot.
    Snapshot,
}

/// Runs `surplus node` until Ctrl-C or SIGTERM, or until an error other than a failed write.
pub fn node(args: NodeArgs) -> Result<ExitCode> {
    init_logging(args.log.as_deref());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("surplus")
        .build()
        .context("cannot start the async runtime")?;
    let mut builder = Builder::new(args.data_dir).sync_snapshot(args.sync == SyncMode::Snapshot);
    if let Some(c) = args.config {
        builder = builder.config_file(c);
    }
    rt.block_on(builder.run_until(shutdown_signal()))?;
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(ExitCode::SUCCESS)
}

fn init_logging(filter: Option<&str>) {
    let filter = filter.unwrap_or(
        "info,arc_malachitebft=warn,malachitebft=warn,libp2p=warn,libp2p_gossipsub=error,ractor=warn,sled=warn",
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .try_init();
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
