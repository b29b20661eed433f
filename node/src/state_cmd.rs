//! `surplus state proof` (fetch an account's or a lease's state proof from a node) and
//! `surplus state verify-proof FILE` (check one offline against a trusted genesis).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{ArgGroup, Args, Subcommand};
use surplus_api::{Proven, StateProof, StateProofCheck};
use surplus_client::Client;
use surplus_ledger::{parse_hex, PublicKey, ValidatorSet};
use surplus_service::genesis::GenesisFile;

use crate::client::{DEFAULT_NODE, NODE_ENV};

/// Exit status when a verification ran and failed (2 is for usage and I/O errors).
const EXIT_FAILED: u8 = 1;

/// `surplus state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Fetch a state proof of an account or a lease from a node (JSON), to check with
    /// `surplus state verify-proof`.
    #[command(group(ArgGroup::new("item").required(true).args(["account", "lease"])))]
    Proof {
        /// The account's public key (hex).
        #[arg(long, value_name = "KEY")]
        account: Option<String>,
        /// The lease id (hex).
        #[arg(long, value_name = "ID")]
        lease: Option<String>,
        /// The node's API (default: $SURPLUS_NODE, else http://127.0.0.1:8080).
        #[arg(long, value_name = "URL")]
        node: Option<String>,
        /// Write the proof here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check a state proof offline: the commit certificate against the genesis validators,
    /// the Merkle proof against the header's state root, the value against its JSON.
    VerifyProof(VerifyArgs),
}

/// Arguments of `surplus state verify-proof`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("trust").required(true).args(["genesis", "validators"])))]
pub struct VerifyArgs {
    /// The proof file (from `surplus state proof` or the API).
    file: PathBuf,
    /// The consortium's genesis file, from a source you trust: its chain id and validators
    /// are what the certificate is checked against.
    #[arg(long, value_name = "FILE")]
    genesis: Option<PathBuf>,
    /// Instead of --genesis: the validator set that decides the proof's block, with --chain-id:
    /// keys (hex, comma-separated, in the set's order), each optionally `:POWER` (default 1).
    /// The genesis validators until a validator-set entry replaces them
    /// (`GET /api/v1/chain?height=H` lists the set of height H).
    #[arg(long, value_name = "HEX[:POWER],...", value_delimiter = ',', requires = "chain_id")]
    validators: Vec<String>,
    /// The chain id, with --validators.
    #[arg(long, value_name = "ID", requires = "validators")]
    chain_id: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `surplus state …`.
pub fn state(c: StateCommand) -> Result<ExitCode> {
    match c {
        StateCommand::Proof { account, lease, node, out } => {
            let url = node
                .or_else(|| std::env::var(NODE_ENV).ok().filter(|v| !v.trim().is_empty()))
                .unwrap_or_else(|| DEFAULT_NODE.to_owned());
            let client = Client::new(&url).map_err(|e| anyhow!("--node: {e}"))?;
            let fetched = match (account, lease) {
                (Some(k), _) => {
                    let key = parse_hex::<32>(&k, "--account").map_err(|e| anyhow!(e))?;
                    client.account_state_proof(&PublicKey(key))
                }
                (None, Some(id)) => {
                    let id = parse_hex::<32>(&id, "--lease").map_err(|e| anyhow!(e))?;
                    client.lease_state_proof(&id)
                }
                (None, None) => bail!("pass --account KEY or --lease ID"),
            };
            let doc = match fetched {
                Ok(doc) => doc,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(EXIT_FAILED));
                }
            };
            let text = serde_json::to_string_pretty(&doc)? + "\n";
            match out {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        StateCommand::VerifyProof(a) => verify_proof(a),
    }
}

fn verify_proof(a: VerifyArgs) -> Result<ExitCode> {
    let (chain_id, validators, anchor) = match (&a.genesis, &a.chain_id) {
        (Some(path), _) => {
            let g = GenesisFile::load(path).map_err(|e| anyhow!("--genesis: {e}"))?;
            let set = ValidatorSet::new(g.validators.iter().map(|v| v.public_key).collect())
                .map_err(|e| anyhow!("--genesis: {e}"))?;
            (g.chain_id, set, format!("the genesis file {}", path.display()))
        }
        (None, Some(chain_id)) => {
            let set = crate::ledger_cmd::parse_validators(&a.validators)?;
            (chain_id.clone(), set, "--validators".to_owned())
        }
        (None, None) => bail!("pass --genesis FILE (or --validators and --chain-id)"),
    };
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let result = serde_json::from_str::<StateProof>(&text)
        .map_err(|e| format!("{} is not a Surplus state proof: {e}", a.file.display()))
        .and_then(|doc| doc.verify(&chain_id, &validators));
    match result {
        Ok(check) => {
            if a.json {
                println!("{}", summary_json(&check, &chain_id));
            } else {
                println!("verified: {}", summary(&check));
                println!("  chain        {chain_id}");
                println!("  trusted      validators of {anchor}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            if a.json {
                println!("{}", serde_json::json!({ "verified": false, "reason": why }));
            } else {
                println!("FAILED: {why}");
            }
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

/// "account X has balance B, seq S at height H (block …), proven against state root R
/// certified by N of M validators".
fn summary(c: &StateProofCheck) -> String {
    let what = match &c.proven {
        Proven::Account(k, Some(a)) => {
            format!("account {k} has balance {}, seq {}", a.balance, a.seq)
        }
        Proven::Account(k, None) => {
            format!("account {k} is not in the state (balance 0, seq 0)")
        }
        Proven::Lease(id, Some(l)) => format!(
            "lease {} is {} ({} of {} hours paid, escrow {}, buyer {}, provider {})",
            hex::encode(id),
            serde_json::to_value(l.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            l.hours_paid,
            l.hours,
            l.escrow,
            l.fill.buyer,
            l.fill.provider
        ),
        Proven::Lease(id, None) => {
            format!("lease {} is not a live lease (never made, or ended)", hex::encode(id))
        }
    };
    format!(
        "{what} at height {} (block {}), proven against state root {} certified by {} of {} \
         validators",
        c.height,
        hex::encode(c.header_hash),
        hex::encode(c.state_root),
        c.signers,
        c.validators
    )
}

fn summary_json(c: &StateProofCheck, chain_id: &str) -> serde_json::Value {
    let (kind, key, item) = match &c.proven {
        Proven::Account(k, a) => ("account", k.to_string(), serde_json::to_value(a)),
        Proven::Lease(id, l) => ("lease", hex::encode(id), serde_json::to_value(l)),
    };
    serde_json::json!({
        "verified": true,
        "chain_id": chain_id,
        "kind": kind,
        "key": key,
        "present": !item.as_ref().is_ok_and(|v| v.is_null()),
        "item": item.unwrap_or_default(),
        "height": c.height,
        "header_hash": hex::encode(c.header_hash),
        "state_root": hex::encode(c.state_root),
        "signers": c.signers,
        "validators": c.validators,
    })
}
