//! `surplus drain`: takes one of a node's inventory pools out of the market for maintenance, or
//! puts it back (`--done`), through the node's operator API (`docs/operations.md`,
//! Maintenance). The node signs with its own key: it stops offering the pool, moves the leases
//! on it to another pool of the market with room, and gives the others notice for the window's
//! start.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use surplus_api::{MaintenanceSubmitted, OperatorMaintenance};
use surplus_client::Client;

use crate::client::{DEFAULT_NODE, NODE_ENV};

/// Arguments of `surplus drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The pool, by its inventory `name` (or `class@region` for a pool without one).
    #[arg(long, value_name = "NAME", required_unless_present = "all", conflicts_with = "all")]
    pool: Option<String>,
    /// Every pool of the inventory (before the member leaves the consortium, docs/governance.md);
    /// with --done, every pool under maintenance.
    #[arg(long)]
    all: bool,
    /// When the work starts: an RFC 3339 time (2026-12-24T02:00:00Z), `+DURATION` from now
    /// (+36h, +90min) or `now`. Default: now plus the consortium's notice period (24 h unless
    /// its genesis says otherwise).
    #[arg(long, value_name = "TIME", conflicts_with = "done")]
    at: Option<String>,
    /// When the window ends by itself (same forms as --at). Default: when you run --done.
    #[arg(long, value_name = "TIME", conflicts_with = "done")]
    until: Option<String>,
    /// Why, shown to buyers (1 to 500 characters).
    #[arg(long, value_name = "TEXT", required_unless_present = "done")]
    reason: Option<String>,
    /// Start sooner than the notice period: leases that cannot move end at --at and the
    /// provider pays the early termination penalty on each.
    #[arg(long, conflicts_with = "done")]
    emergency: bool,
    /// End the pool's window: its capacity returns to the market.
    #[arg(long)]
    done: bool,
    /// The node's data directory: its API address (config.toml's http.listen) and operator
    /// token (operator.token) are read from it.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The node's API (default: from --data-dir, else $SURPLUS_NODE, else
    /// http://127.0.0.1:8080).
    #[arg(long, value_name = "URL")]
    node: Option<String>,
    /// The file holding the node's operator token (default: DIR/operator.token).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
}

/// Milliseconds since the epoch now.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Parses a time argument: RFC 3339, `+DURATION` from `now`, or `now`; ms since the epoch.
pub fn parse_time(s: &str, now: u64, what: &str) -> Result<u64> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(d) = s.strip_prefix('+') {
        let d = humantime::parse_duration(d.trim())
            .map_err(|e| anyhow!("{what}: {s:?}: {e} (write e.g. +36h or +90min)"))?;
        return Ok(now.saturating_add(d.as_millis() as u64));
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| {
        anyhow!(
            "{what}: {s:?}: {e} (write an RFC 3339 time such as 2026-12-24T02:00:00Z, +36h or now)"
        )
    })?;
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as u64;
    if ms < now.saturating_sub(60_000) {
        bail!("{what}: {s} has passed");
    }
    Ok(ms)
}

fn when(ms: u64, now: u64) -> String {
    let at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms));
    let left = ms.saturating_sub(now);
    if left < 60_000 {
        format!("{at} (now)")
    } else {
        let rounded = Duration::from_secs(left / 60_000 * 60);
        format!("{at} (in {})", humantime::format_duration(rounded))
    }
}

/// Runs `surplus drain`: exits 1 with the node's message when the node refuses or cannot be
/// reached, 2 for bad input here.
pub fn drain(a: DrainArgs) -> Result<ExitCode> {
    crate::client::exit_code(run(a))
}

fn run(a: DrainArgs) -> Result<()> {
    let now = now_ms();
    let (url, token) =
        connection(a.data_dir.as_deref(), a.node.as_deref(), a.token_file.as_deref())?;
    let node = Client::new(&url).map_err(|e| anyhow!("--node: {e}"))?.with_operator_token(&token);
    let pools: Vec<String> = match &a.pool {
        Some(p) => vec![p.trim().to_owned()],
        None => node
            .operator()?
            .pools
            .into_iter()
            .filter(|p| p.maintenance.is_some() == a.done)
            .map(|p| p.name)
            .collect(),
    };
    if pools.is_empty() {
        bail!(
            "no pool to {}: {}",
            if a.done { "put back" } else { "drain" },
            if a.done { "none is under maintenance" } else { "every pool is drained already" }
        );
    }
    for pool in pools {
        one(&a, &node, &pool, now)?;
    }
    Ok(())
}

fn one(a: &DrainArgs, node: &Client, pool: &str, now: u64) -> Result<()> {
    let answer: MaintenanceSubmitted = if a.done {
        node.maintenance_done(pool)?
    } else {
        let m = OperatorMaintenance {
            pool: pool.to_owned(),
            start_ms: a.at.as_deref().map(|t| parse_time(t, now, "--at")).transpose()?,
            until_ms: a.until.as_deref().map(|t| parse_time(t, now, "--until")).transpose()?,
            reason: a.reason.clone().unwrap_or_default(),
            emergency: a.emergency,
        };
        node.maintenance(&m)?
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else if a.done {
        println!(
            "pool {} ({}) is back on the market: its offers return with the next block (entry {})",
            answer.pool,
            answer.market,
            hex::encode(answer.id)
        );
    } else {
        println!(
            "maintenance of pool {} ({}) from {}{}: submitted as entry {}",
            answer.pool,
            answer.market,
            when(answer.start_ms, now),
            if answer.until_ms == 0 {
                " until `surplus drain --done`".to_owned()
            } else {
                format!(" until {}", when(answer.until_ms, now))
            },
            hex::encode(answer.id)
        );
        println!(
            "the node stops offering the pool now; each lease on it moves to another pool of \
             the market with room, or gets notice for the start (see the operator page)"
        );
    }
    Ok(())
}

/// The node's API and the operator token, from the arguments.
/// The node's API address and operator token: from `--node` and `--token-file`, else from the
/// data directory's config.toml and operator.token, else `$SURPLUS_NODE` (the token is needed).
pub fn connection(
    data_dir: Option<&std::path::Path>,
    node: Option<&str>,
    token_file: Option<&std::path::Path>,
) -> Result<(String, String)> {
    let from_dir = match data_dir {
        Some(dir) => {
            let config = surplus_service::config::Config::load(&dir.join("config.toml"))?;
            let addr = config
                .http
                .listen_addr()
                .ok_or_else(|| anyhow!("{}: http.listen is not a socket address", dir.display()))?;
            // A node listening on every interface is reached on loopback.
            let host = if addr.ip().is_unspecified() {
                std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
            } else {
                addr
            };
            Some(format!("http://{host}"))
        }
        None => None,
    };
    let url = node
        .map(str::to_owned)
        .or(from_dir)
        .or_else(|| std::env::var(NODE_ENV).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_NODE.to_owned());
    let token_file = match (token_file, data_dir) {
        (Some(f), _) => f.to_path_buf(),
        (None, Some(dir)) => dir.join("operator.token"),
        (None, None) => bail!(
            "the operator token is needed: pass --data-dir DIR (the node's data directory) or \
             --token-file FILE"
        ),
    };
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("cannot read the operator token {}", token_file.display()))?;
    Ok((url, token.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_relative_or_now() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("now", now, "--at").unwrap(), now);
        assert_eq!(parse_time("+36h", now, "--at").unwrap(), now + 36 * 3_600_000);
        assert_eq!(parse_time("+90min", now, "--at").unwrap(), now + 90 * 60_000);
        // 1,800,000,000 s after the epoch.
        assert_eq!(parse_time("2027-01-15T08:00:00Z", now, "--at").unwrap(), 1_800_000_000_000);
        let e = parse_time("+soon", now, "--at").unwrap_err().to_string();
        assert!(e.contains("--at") && e.contains("+36h"), "{e}");
        let e = parse_time("2020-01-01T00:00:00Z", now, "--until").unwrap_err().to_string();
        assert!(e.contains("has passed"), "{e}");
        let e = parse_time("tomorrow", now, "--at").unwrap_err().to_string();
        assert!(e.contains("RFC 3339"), "{e}");
    }
}
