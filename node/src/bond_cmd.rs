//! `surplus bond`: a provider's bond (`docs/operations.md`, Bond), through its node's operator
//! API: show it, lock more of the node key's balance in it, or take it back once the provider
//! has no live lease and no offer.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use surplus_client::Client;

/// Arguments of `surplus bond`.
#[derive(Debug, Args)]
pub struct BondArgs {
    #[command(subcommand)]
    action: BondAction,
    /// The node's data directory: its API address and operator token are read from it.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// The node's API (default: from --data-dir, else $SURPLUS_NODE).
    #[arg(long, value_name = "URL", global = true)]
    node: Option<String>,
    /// The file holding the node's operator token (default: DIR/operator.token).
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
    /// Print the API's JSON answer.
    #[arg(long, global = true)]
    json: bool,
}

/// What to do with the bond.
#[derive(Debug, Subcommand)]
enum BondAction {
    /// Show the node key's balance and bond.
    Show,
    /// Lock UNITS of the node key's balance in its bond.
    Lock {
        /// Units (1 credit = 1,000,000 units).
        #[arg(value_name = "UNITS")]
        amount: u64,
    },
    /// Take UNITS of the bond back into the balance (refused while the provider has live
    /// leases or resting offers: withdraw its offers first, `surplus drain --all`).
    Release {
        /// Units.
        #[arg(value_name = "UNITS")]
        amount: u64,
    },
}

/// Runs `surplus bond`: exits 1 with the node's message when it refuses.
pub fn bond(a: BondArgs) -> Result<ExitCode> {
    crate::client::exit_code(run(a))
}

fn run(a: BondArgs) -> Result<()> {
    let (url, token) = crate::drain_cmd::connection(
        a.data_dir.as_deref(),
        a.node.as_deref(),
        a.token_file.as_deref(),
    )?;
    let node = Client::new(&url).map_err(|e| anyhow!("--node: {e}"))?.with_operator_token(&token);
    let (lock, amount) = match a.action {
        BondAction::Show => {
            let me = node.status()?.public_key;
            let account = node.account(&me)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&account)?);
            } else {
                println!(
                    "provider {me}: balance {} units, bond {} units",
                    account.balance, account.bond
                );
            }
            return Ok(());
        }
        BondAction::Lock { amount } => (true, amount),
        BondAction::Release { amount } => (false, amount),
    };
    let done = node.bond(lock, amount)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        println!(
            "{} {} units of the bond: entry {} submitted (bond now {} units, before it commits)",
            if lock { "locking" } else { "taking back" },
            done.amount,
            hex::encode(done.id),
            done.bond
        );
    }
    Ok(())
}
