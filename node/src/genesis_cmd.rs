//! `surplus genesis`: writes the consortium's genesis file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use surplus_contracts::{Allocation, Params};
use surplus_ledger::PublicKey;
use surplus_market::Catalogue;

use crate::config::{write_atomic, ConfigError};
use crate::genesis::{GenesisFile, Validator};

/// Arguments of `surplus genesis`.
#[derive(Debug, Args)]
pub struct GenesisArgs {
    /// The chain id (a-z, 0-9, '.', '_', '-').
    #[arg(long, value_name = "ID")]
    chain_id: String,
    /// A validator, as NAME=HEXKEY (repeat; order is kept).
    #[arg(long = "validator", value_name = "NAME=HEXKEY")]
    validators: Vec<String>,
    /// A validator whose public key is read from its key file, as NAME=FILE (repeat; these
    /// follow the --validator ones).
    #[arg(long = "validator-key-file", value_name = "NAME=FILE")]
    validator_key_files: Vec<String>,
    /// The catalogue: a JSON file ({"classes": [...], "regions": [...]}) or `sample`.
    #[arg(long, value_name = "FILE.json|sample", default_value = "sample")]
    catalogue: String,
    /// The treasury account that receives the consortium fee (hex public key).
    #[arg(long, value_name = "HEXKEY")]
    treasury: String,
    /// Fee on every payment to a provider, basis points.
    #[arg(long, value_name = "N", default_value_t = 0)]
    fee_bps: u16,
    /// Penalty a provider pays the buyer for ending a lease early, basis points.
    #[arg(long, value_name = "N", default_value_t = 0)]
    penalty_bps: u16,
    /// Notice, in seconds, that spares a provider the penalty when it ends a lease early for
    /// maintenance (docs/operations.md).
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    notice_secs: u64,
    /// Length of a supervision interval, seconds, dividing an hour (docs/contracts.md §10):
    /// the validators probe each other's leases and a quorum of their down reports makes an
    /// interval down; 0 (the default) leaves supervision off. The markets' terms are the
    /// catalogue classes' terms.* attributes.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    probe_interval_secs: u64,
    /// Intervals after its end during which an interval's reports are taken.
    #[arg(long, value_name = "N", default_value_t = 5)]
    probe_window: u16,
    /// The share of the other validators whose down reports make an interval down (strictly
    /// more than it), basis points.
    #[arg(long, value_name = "BPS", default_value_t = 5_000)]
    probe_quorum_bps: u16,
    /// The fewest down reports that make an interval down (at least 2).
    #[arg(long, value_name = "N", default_value_t = 2)]
    probe_min_down: u16,
    /// An initial balance, as HEXKEY=UNITS (repeat).
    #[arg(long = "alloc", value_name = "HEXKEY=AMOUNT")]
    allocations: Vec<String>,
    /// Genesis time, ms since the epoch (default: now).
    #[arg(long, value_name = "N")]
    time_ms: Option<u64>,
    /// Where to write the genesis file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Replace an existing file at --out.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn split_pair<'a>(flag: &str, s: &'a str, form: &str) -> Result<(&'a str, &'a str)> {
    match s.split_once('=') {
        Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => Ok((a.trim(), b.trim())),
        _ => bail!("{flag} {s:?}: write it as {form}"),
    }
}

/// Runs `surplus genesis`.
pub fn genesis(a: GenesisArgs) -> Result<ExitCode> {
    let mut validators = Vec::new();
    for s in &a.validators {
        let (name, key) = split_pair("--validator", s, "NAME=HEXKEY")?;
        let public_key =
            key.parse::<PublicKey>().map_err(|e| anyhow::anyhow!("--validator {name}: {e}"))?;
        validators.push(Validator { name: name.to_owned(), public_key });
    }
    for s in &a.validator_key_files {
        let (name, file) = split_pair("--validator-key-file", s, "NAME=FILE")?;
        let key = crate::keyfile::read_key(Path::new(file))
            .with_context(|| format!("--validator-key-file {name}"))?;
        validators.push(Validator { name: name.to_owned(), public_key: key.public() });
    }
    if validators.is_empty() {
        bail!("name the validators with --validator NAME=HEXKEY or --validator-key-file NAME=FILE");
    }
    let catalogue = if a.catalogue == "sample" {
        Catalogue::sample()
    } else {
        let text = std::fs::read_to_string(&a.catalogue)
            .with_context(|| format!("--catalogue: cannot read {}", a.catalogue))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "--catalogue {}: not a catalogue (a JSON object with \"classes\" and \"regions\")",
                a.catalogue
            )
        })?
    };
    let treasury =
        a.treasury.parse::<PublicKey>().map_err(|e| anyhow::anyhow!("--treasury: {e}"))?;
    let mut allocations = Vec::new();
    for s in &a.allocations {
        let (key, amount) = split_pair("--alloc", s, "HEXKEY=AMOUNT")?;
        let account = key.parse::<PublicKey>().map_err(|e| anyhow::anyhow!("--alloc {s}: {e}"))?;
        let amount = amount.parse::<u64>().map_err(|_| {
            anyhow::anyhow!("--alloc {s}: the amount must be a whole number of units")
        })?;
        allocations.push(Allocation { account, amount });
    }
    let file = GenesisFile {
        chain_id: a.chain_id.clone(),
        genesis_time_ms: a.time_ms.unwrap_or_else(crate::now_ms),
        validators,
        params: Params {
            catalogue,
            treasury,
            fee_bps: a.fee_bps,
            penalty_bps: a.penalty_bps,
            notice_ms: a.notice_secs.saturating_mul(1000),
            supervision: (a.probe_interval_secs > 0).then(|| {
                surplus_contracts::supervision::Supervision {
                    interval_ms: a.probe_interval_secs.saturating_mul(1000),
                    window: a.probe_window,
                    quorum_bps: a.probe_quorum_bps,
                    min_down: a.probe_min_down,
                }
            }),
        },
        allocations,
    };
    // The same checks as loading, with the command line's names for the fields.
    let text = file.to_json();
    let checked = GenesisFile::parse(&text, Path::new("genesis")).map_err(|e| {
        let flag = match e.field().unwrap_or("") {
            f if f.starts_with("validators") => "--validator",
            f if f.starts_with("allocations") => "--alloc",
            "params.treasury" => "--treasury",
            f if f.starts_with("params.catalogue") => "--catalogue",
            "params" => "--catalogue/--fee-bps/--penalty-bps",
            "chain_id" => "--chain-id",
            _ => "genesis",
        };
        match &e {
            ConfigError::Invalid { field, reason, .. } => {
                anyhow::anyhow!("{flag} ({field}): {reason}")
            }
            other => anyhow::anyhow!("{other}"),
        }
    })?;
    if a.out.exists() && !a.force {
        bail!("{} already exists: pass --force to replace it", a.out.display());
    }
    write_atomic(&a.out, text.as_bytes())?;
    let (block, _) = checked.block().context("building the genesis block")?;
    let hash = hex::encode(block.header.hash());
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "file": a.out,
                "chain_id": checked.chain_id,
                "genesis_hash": hash,
                "validators": checked.validators,
                "allocations": checked.allocations.len(),
            })
        );
    } else {
        println!("wrote {} (chain {})", a.out.display(), checked.chain_id);
        println!("  genesis hash  {hash}");
        for v in &checked.validators {
            println!("  validator     {} {}", v.name, v.public_key);
        }
        println!("  allocations   {}", checked.allocations.len());
        println!("give this file to every member: it goes to DIR/genesis.json of each node");
    }
    Ok(ExitCode::SUCCESS)
}
