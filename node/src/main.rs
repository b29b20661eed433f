//! `surplus`: the Surplus node and its command-line tool.

mod bond_cmd;
mod client;
mod credential_cmd;
mod demo;
mod devnet;
mod drain_cmd;
mod genesis_cmd;
mod gov_cmd;
mod hook_cmd;
mod init_cmd;
mod ledger_cmd;
mod load;
mod market_cmd;
mod node_cmd;
mod state_cmd;

use std::process::ExitCode;

use surplus_service::{config, devnet_file, genesis, inventory, keyfile, now_ms, provision};

use clap::{Parser, Subcommand};

/// mimalloc rather than the system allocator: a block over a large state copies and frees
/// thousands of small tree and map nodes, and with glibc's allocator freeing them took a tenth
/// of a block's time (`docs/performance.md`, decision 0019).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Prove an account or a lease against a certified state root, and check such proofs
    /// offline.
    #[command(subcommand)]
    State(state_cmd::StateCommand),
    /// Verify and narrow lease credentials offline.
    #[command(subcommand)]
    Credential(credential_cmd::CredentialCommand),
    /// Governance: the validator set and proposals; propose, vote, withdraw; rotate a key.
    #[command(subcommand)]
    Gov(gov_cmd::GovCommand),
    /// Create and inspect ed25519 key files.
    #[command(subcommand)]
    Key(ledger_cmd::KeyCommand),
    /// Create a node's data directory: its key (node.key) and a commented config.toml.
    Init(init_cmd::InitArgs),
    /// Write the consortium's genesis file from validator keys, catalogue and balances.
    Genesis(genesis_cmd::GenesisArgs),
    /// Provisioning hooks: the sample hook devnet uses.
    #[command(subcommand)]
    Hook(hook_cmd::HookCommand),
    /// Run a node: order gossip, consensus, the HTTP API, inventory and provisioning.
    Node(node_cmd::NodeArgs),
    /// Take an inventory pool out of the market for maintenance (its leases move to another
    /// pool or get notice), or put it back with --done.
    Drain(drain_cmd::DrainArgs),
    /// A provider's bond: show it, lock more of the node key's balance, or take it back.
    Bond(bond_cmd::BondArgs),
    /// Run a whole local consortium on this machine: nodes, sample data and the web UI.
    Devnet(devnet::DevnetArgs),
    /// Drive signed orders into a running devnet and measure order → lease latency.
    Load(load::LoadArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Audit(a) => ledger_cmd::audit(a),
        Command::Ledger(c) => ledger_cmd::ledger(c),
        Command::Key(c) => ledger_cmd::key(c),
        Command::Gov(c) => gov_cmd::gov(c),
        Command::Market(c) => market_cmd::market(c),
        Command::Credential(c) => credential_cmd::credential(c),
        Command::State(c) => state_cmd::state(c),
        Command::Init(a) => init_cmd::init(a),
        Command::Genesis(a) => genesis_cmd::genesis(a),
        Command::Hook(c) => hook_cmd::hook(c),
        Command::Node(a) => node_cmd::node(a),
        Command::Drain(a) => drain_cmd::drain(a),
        Command::Bond(a) => bond_cmd::bond(a),
        Command::Devnet(a) => devnet::devnet(a),
        Command::Load(a) => load::load(a),
        Command::Client(c) => client::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
