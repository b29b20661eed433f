//! `surplus gov …`: list and show proposals, propose, vote, withdraw, and rotate a key, signed
//! locally with the validator's (or the account's) key file (`docs/governance.md`).
//!
//! Exit codes: 0 done, 1 the node refused or could not be reached (its message is shown),
//! 2 bad input here (arguments, key file).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use surplus_api::{GovernanceView, ProposalView, Submitted};
use surplus_contracts::governance::{validate_address, ENACTMENT_DELAY, MAX_PROPOSAL_WINDOW};
use surplus_contracts::{Action, ProposalStatus, Tx};
use surplus_ledger::{parse_hex, PublicKey};
use surplus_market::{Class, Region};

use crate::client::{hash_arg, key_arg, Api, Conn};

/// Default time a proposal leaves for voting: blocks between now and its deadline (about ten
/// minutes at devnet's two blocks a second).
pub const DEFAULT_VOTING_BLOCKS: u64 = 1_200;

/// `surplus gov …`.
#[derive(Debug, Subcommand)]
pub enum GovCommand {
    /// The validator set, the parameters in force, open proposals and their votes.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// One proposal with its voters.
    Show {
        /// The proposal id (hex: its gov-propose entry's id).
        proposal_id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Propose a change (signed with a validator's node key).
    Propose {
        #[command(subcommand)]
        action: ActionArg,
    },
    /// Vote on a proposal (signed with a validator's node key).
    Vote {
        /// The proposal id (hex).
        proposal_id: String,
        /// Vote yes.
        #[arg(long, conflicts_with = "no", required_unless_present = "no")]
        yes: bool,
        /// Vote no.
        #[arg(long)]
        no: bool,
        /// The validator's key file (its node.key).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[command(flatten)]
        conn: Conn,
    },
    /// Withdraw your open proposal.
    Withdraw {
        /// The proposal id (hex).
        proposal_id: String,
        /// The proposer's key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[command(flatten)]
        conn: Conn,
    },
    /// Rotate a key: its credits, validator place and leases' payments move to the new key,
    /// and the old key signs nothing more (from the next block).
    RotateKey {
        /// The key file of the key to retire.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The new key file (`surplus key generate`), or its public key as hex.
        #[arg(long, value_name = "FILE|KEY")]
        new_key: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// When a proposal takes effect, and who signs it.
#[derive(Debug, Args)]
pub struct ProposeArgs {
    /// The first block under the change (at least the head + 11).
    #[arg(long, value_name = "HEIGHT", conflicts_with = "voting_blocks")]
    effective: Option<u64>,
    /// Blocks left for voting: the effective height is the head + 1 + this + 10 (default 1200,
    /// about ten minutes on a devnet).
    #[arg(long, value_name = "N")]
    voting_blocks: Option<u64>,
    /// The proposer's key file (a validator's node.key).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    #[command(flatten)]
    conn: Conn,
}

/// What a proposal changes.
#[derive(Debug, Subcommand)]
pub enum ActionArg {
    /// Admit a validator.
    AddValidator {
        /// Its node key (hex).
        #[arg(long, value_name = "KEY")]
        validator: String,
        /// Its voting power.
        #[arg(long, default_value_t = 1)]
        power: u64,
        /// The libp2p address other nodes dial, such as /ip4/10.0.0.5/tcp/7000.
        #[arg(long, value_name = "MULTIADDR")]
        address: String,
        #[command(flatten)]
        args: ProposeArgs,
    },
    /// Remove a validator.
    RemoveValidator {
        /// Its node key (hex).
        #[arg(long, value_name = "KEY")]
        validator: String,
        #[command(flatten)]
        args: ProposeArgs,
    },
    /// Change a validator's voting power.
    SetPower {
        /// Its node key (hex).
        #[arg(long, value_name = "KEY")]
        validator: String,
        /// The new power (at least 1).
        #[arg(long)]
        power: u64,
        #[command(flatten)]
        args: ProposeArgs,
    },
    /// Change the fee and penalty rates.
    SetFees {
        /// Fee on payments to providers, basis points (at most 10000).
        #[arg(long)]
        fee_bps: u16,
        /// Penalty of a provider that ends a lease early, basis points (at most 10000).
        #[arg(long)]
        penalty_bps: u16,
        #[command(flatten)]
        args: ProposeArgs,
    },
    /// Open the markets of a new resource class.
    AddClass {
        /// Its id, such as gpu.h100x8.
        #[arg(long)]
        id: String,
        /// What it is.
        #[arg(long, default_value = "")]
        description: String,
        /// An attribute NAME=VALUE (repeat for more).
        #[arg(long = "attribute", value_name = "NAME=VALUE")]
        attributes: Vec<String>,
        #[command(flatten)]
        args: ProposeArgs,
    },
    /// Retire a class: its markets stop trading; running leases continue to their end.
    RetireClass {
        /// Its id.
        #[arg(long)]
        id: String,
        #[command(flatten)]
        args: ProposeArgs,
    },
    /// Open the markets of a new region.
    AddRegion {
        /// Its id, such as ap-south-a.
        #[arg(long)]
        id: String,
        /// Where it is.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        args: ProposeArgs,
    },
    /// Retire a region, as a class is retired.
    RetireRegion {
        /// Its id.
        #[arg(long)]
        id: String,
        #[command(flatten)]
        args: ProposeArgs,
    },
    /// Set the consensus parameters every node uses instead of its own `[consensus]` settings.
    SetConsensus {
        /// While entries wait, a block at least this often, ms (10 to 60000).
        #[arg(long)]
        batch_interval_ms: u64,
        /// Most user entries in one block.
        #[arg(long)]
        max_block_entries: u32,
        /// Largest block, bytes (65536 to 16777216).
        #[arg(long)]
        max_block_bytes: u64,
        #[command(flatten)]
        args: ProposeArgs,
    },
    /// Replace a validator's key that was lost (a validator with its key rotates itself with
    /// `surplus gov rotate-key`).
    RotateValidator {
        /// The lost key (hex).
        #[arg(long, value_name = "KEY")]
        old: String,
        /// The new key (hex).
        #[arg(long, value_name = "KEY")]
        new: String,
        #[command(flatten)]
        args: ProposeArgs,
    },
}

impl ActionArg {
    /// The action, checked, and the arguments every proposal has.
    fn into_parts(self) -> Result<(Action, ProposeArgs)> {
        let (action, args) = match self {
            ActionArg::AddValidator { validator, power, address, args } => {
                validate_address(&address).map_err(|e| anyhow!("--address: {e}"))?;
                let key = key_arg(&validator, "--validator")?;
                (Action::AddValidator { key, power, address }, args)
            }
            ActionArg::RemoveValidator { validator, args } => {
                (Action::RemoveValidator { key: key_arg(&validator, "--validator")? }, args)
            }
            ActionArg::SetPower { validator, power, args } => {
                (Action::SetPower { key: key_arg(&validator, "--validator")?, power }, args)
            }
            ActionArg::SetFees { fee_bps, penalty_bps, args } => {
                (Action::SetFees { fee_bps, penalty_bps }, args)
            }
            ActionArg::AddClass { id, description, attributes, args } => {
                let mut map = std::collections::BTreeMap::new();
                for a in &attributes {
                    let (k, v) = a
                        .split_once('=')
                        .ok_or_else(|| anyhow!("--attribute {a:?}: write NAME=VALUE"))?;
                    let v: u64 = v
                        .parse()
                        .map_err(|_| anyhow!("--attribute {a:?}: the value is not a number"))?;
                    if map.insert(k.to_owned(), v).is_some() {
                        bail!("--attribute {k} is given twice");
                    }
                }
                (Action::AddClass { class: Class { id, description, attributes: map } }, args)
            }
            ActionArg::RetireClass { id, args } => (Action::RetireClass { id }, args),
            ActionArg::AddRegion { id, description, args } => {
                (Action::AddRegion { region: Region { id, description } }, args)
            }
            ActionArg::RetireRegion { id, args } => (Action::RetireRegion { id }, args),
            ActionArg::SetConsensus {
                batch_interval_ms,
                max_block_entries,
                max_block_bytes,
                args,
            } => {
                let params = surplus_contracts::ConsensusParams {
                    batch_interval_ms,
                    max_block_entries,
                    max_block_bytes,
                };
                (Action::SetConsensus { params }, args)
            }
            ActionArg::RotateValidator { old, new, args } => {
                let old = key_arg(&old, "--old")?;
                let new = key_arg(&new, "--new")?;
                (Action::RotateValidator { old, new }, args)
            }
        };
        action.validate().map_err(|e| anyhow!("the proposal is not valid: {e}"))?;
        Ok((action, args))
    }
}

/// Runs `surplus gov …`.
pub fn gov(cmd: GovCommand) -> Result<ExitCode> {
    crate::client::exit_code(execute(cmd))
}

fn execute(cmd: GovCommand) -> Result<()> {
    match cmd {
        GovCommand::List { conn } => {
            let api = Api::new(&conn)?;
            let g = api.node.governance()?;
            api.print(&g, || human_governance(&g))
        }
        GovCommand::Show { proposal_id, conn } => {
            let id = hash_arg(&proposal_id, "PROPOSAL_ID")?;
            let api = Api::new(&conn)?;
            let p = api.node.proposal(&id)?;
            api.print(&p, || human_proposal(&p, true))
        }
        GovCommand::Propose { action } => {
            let (action, args) = action.into_parts()?;
            let key = crate::keyfile::read_key(&args.key)?;
            let api = Api::new(&args.conn)?;
            let head = api.node.status()?.height;
            let effective = match (args.effective, args.voting_blocks) {
                (Some(e), _) => e,
                (None, v) => {
                    let v = v.unwrap_or(DEFAULT_VOTING_BLOCKS);
                    if v > MAX_PROPOSAL_WINDOW {
                        bail!("--voting-blocks is at most {MAX_PROPOSAL_WINDOW}");
                    }
                    head + 1 + v + ENACTMENT_DELAY
                }
            };
            if effective < head + 1 + ENACTMENT_DELAY {
                bail!(
                    "--effective {effective} is too soon: the head is at {head}, and a change \
                     takes effect at least {ENACTMENT_DELAY} blocks after the block that passes \
                     it (use {} or later)",
                    head + 1 + ENACTMENT_DELAY
                );
            }
            let tx = Tx::GovPropose { action: action.clone(), effective, seq: 0 };
            let id = api.sign_and_submit(&key, tx)?;
            api.print(&Submitted { id }, || {
                format!(
                    "proposal {} submitted: {}, effective at height {effective}; it must pass \
                     by height {}",
                    hex::encode(id),
                    describe(&action),
                    effective - ENACTMENT_DELAY
                )
            })
        }
        GovCommand::Vote { proposal_id, yes, no: _, key, conn } => {
            let proposal = hash_arg(&proposal_id, "PROPOSAL_ID")?;
            let key = crate::keyfile::read_key(&key)?;
            let api = Api::new(&conn)?;
            let id = api.sign_and_submit(&key, Tx::GovVote { proposal, yes, seq: 0 })?;
            api.print(&Submitted { id }, || {
                format!(
                    "vote {} submitted: {} on proposal {}",
                    hex::encode(id),
                    if yes { "yes" } else { "no" },
                    hex::encode(proposal)
                )
            })
        }
        GovCommand::Withdraw { proposal_id, key, conn } => {
            let proposal = hash_arg(&proposal_id, "PROPOSAL_ID")?;
            let key = crate::keyfile::read_key(&key)?;
            let api = Api::new(&conn)?;
            let id = api.sign_and_submit(&key, Tx::GovWithdraw { proposal, seq: 0 })?;
            api.print(&Submitted { id }, || {
                format!(
                    "withdrawal {} of proposal {} submitted",
                    hex::encode(id),
                    hex::encode(proposal)
                )
            })
        }
        GovCommand::RotateKey { key, new_key, conn } => {
            let old = crate::keyfile::read_key(&key)?;
            let new = match parse_hex::<32>(&new_key, "--new-key") {
                Ok(k) => PublicKey(k),
                Err(_) => crate::keyfile::read_key(std::path::Path::new(&new_key))
                    .map_err(|e| anyhow!("--new-key is neither a key file nor 64 hex digits: {e}"))?
                    .public(),
            };
            if new == old.public() {
                bail!("--new-key is the key being rotated");
            }
            let api = Api::new(&conn)?;
            let id = api.sign_and_submit(&old, Tx::RotateKey { new_key: new, seq: 0 })?;
            api.print(&Submitted { id }, || {
                format!(
                    "rotation {} submitted: {} → {new}; once it is in a block the old key signs \
                     nothing more",
                    hex::encode(id),
                    old.public()
                )
            })
        }
    }
}

/// An action in a few words.
pub fn describe(a: &Action) -> String {
    match a {
        Action::AddValidator { key, power, address } => {
            format!("add validator {key} with power {power} at {address}")
        }
        Action::RemoveValidator { key } => format!("remove validator {key}"),
        Action::SetPower { key, power } => format!("set validator {key}'s power to {power}"),
        Action::SetFees { fee_bps, penalty_bps } => {
            format!("set the fee to {fee_bps} bps and the penalty to {penalty_bps} bps")
        }
        Action::AddClass { class } => format!("add class {}", class.id),
        Action::RetireClass { id } => format!("retire class {id}"),
        Action::AddRegion { region } => format!("add region {}", region.id),
        Action::RetireRegion { id } => format!("retire region {id}"),
        Action::RotateValidator { old, new } => format!("replace validator key {old} by {new}"),
        Action::SetConsensus { params: p } => format!(
            "set the consensus parameters: a block every {} ms while entries wait, at most {} \
             entries and {} bytes",
            p.batch_interval_ms, p.max_block_entries, p.max_block_bytes
        ),
    }
}

fn human_proposal(p: &ProposalView, voters: bool) -> String {
    let mut out = format!(
        "proposal {}  {}\n  {}\n  proposed at {} by {}; effective at {}; {}\n  yes {} · no {} of {} \
         (needs {})\n",
        hex::encode(p.id),
        match p.status {
            ProposalStatus::Open => "open",
            ProposalStatus::Passed => "passed",
        },
        describe(&p.action),
        p.height,
        p.proposer,
        p.effective,
        match p.passed {
            Some(h) => format!("passed at {h}"),
            None => format!("must pass by {}", p.deadline),
        },
        p.yes_power,
        p.no_power,
        p.voters.iter().map(|v| v.power).sum::<u64>(),
        p.quorum,
    );
    if voters {
        for v in &p.voters {
            let vote = match v.vote {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            let _ = writeln!(out, "    {}  power {:>3}  {vote}", v.key, v.power);
        }
    }
    out
}

fn human_governance(g: &GovernanceView) -> String {
    let mut out = format!(
        "chain {} at height {}\nvalidators (total power {}, quorum {}):\n",
        g.chain_id, g.height, g.total_power, g.quorum
    );
    for (i, v) in g.validators.iter().enumerate() {
        let addr = if v.address.is_empty() { "(genesis)" } else { v.address.as_str() };
        let _ = writeln!(out, "  {i:>3}  {}  power {:>3}  {addr}", v.key, v.power);
    }
    let p = &g.params;
    let _ = writeln!(
        out,
        "fee {} bps · penalty {} bps · classes {} · regions {}",
        p.fee_bps,
        p.penalty_bps,
        p.classes.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(", "),
        p.regions.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", ")
    );
    if g.proposals.is_empty() {
        out.push_str("no open proposals\n");
    }
    for prop in &g.proposals {
        out.push_str(&human_proposal(prop, false));
    }
    for r in &g.rotations {
        let _ = writeln!(out, "rotated {} → {} at {}", r.old, r.new, r.height);
    }
    out
}
