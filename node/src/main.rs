//! `surplus`: the Surplus node and its command-line tool.

mod client;
mod credential_cmd;
mod ledger_cmd;
mod market_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Surplus: an open market for datacenters' spare capacity, on a ledger no single member controls.
#[derive(Debug, Parser)]
#[command(name = "surplus", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify a ledger from genesis: hashes, links, Merkle roots, signatures, certificates.
    Audit(ledger_cmd::AuditArgs),
    /// Work with a node's ledger: export it, prove an entry, check a proof.
    #[command(subcommand)]
    Ledger(ledger_cmd::LedgerCommand),
    /// Re-run an auction from a file.
    #[command(subcommand)]
    Market(market_cmd::MarketCommand),
    /// Verify and narrow lease credentials offline.
    #[command(subcommand)]
    Credential(credential_cmd::CredentialCommand),
    /// Create and inspect ed25519 key files.
    #[command(subcommand)]
    Key(ledger_cmd::KeyCommand),
    /// Run a whole local consortium (not built yet).
    Devnet,
    #[command(flatten)]
    Client(client::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Audit(a) => ledger_cmd::audit(a),
        Command::Ledger(c) => ledger_cmd::ledger(c),
        Command::Key(c) => ledger_cmd::key(c),
        Command::Market(c) => market_cmd::market(c),
        Command::Credential(c) => credential_cmd::credential(c),
        Command::Client(c) => client::run(c),
        Command::Devnet => Err(anyhow::anyhow!(
            "`surplus devnet` is not built yet: the node (consensus, gossip, HTTP API) comes with \
             the node issue; today `surplus` offers `audit`, `ledger` and `key`"
        )),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
