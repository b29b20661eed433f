//! `surplus hook …`: the sample provisioning hook devnet uses.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::provision::{sample_hook, LeaseEvent, MAX_ANSWER_BYTES};

/// `surplus hook` subcommands.
#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// The sample exec hook devnet uses: reads a lease event on stdin; at start creates
    /// DIR/<lease id>/access.json and prints it, at end removes the directory.
    Sample {
        /// Where the per-lease directories go.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Runs `surplus hook …`.
pub fn hook(c: HookCommand) -> Result<ExitCode> {
    match c {
        HookCommand::Sample { dir } => {
            let mut input = Vec::new();
            std::io::stdin()
                .take(MAX_ANSWER_BYTES)
                .read_to_end(&mut input)
                .context("cannot read the lease event on stdin")?;
            let ev: LeaseEvent = serde_json::from_slice(&input).context(
                "stdin is not a lease event (JSON with event, lease, lease_id, chain_id)",
            )?;
            let answer = sample_hook(&dir, &ev)?;
            println!("{answer}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
