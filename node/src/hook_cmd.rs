//! `surplus hook …`: the sample provisioning hook devnet uses, and the sample capacity source.

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
        /// Answer this TCP address (host:port) as every lease's probe target, which the other
        /// datacenters then probe (docs/operations.md, Supervision).
        #[arg(long, value_name = "HOST:PORT", conflicts_with = "probe_http")]
        probe_tcp: Option<String>,
        /// Answer this URL (expecting HTTP 200) as every lease's probe target.
        #[arg(long, value_name = "URL")]
        probe_http: Option<String>,
    },
    /// A sample hook that makes leases real on this Linux host (as root): at start a local
    /// account for the lease's principal, which sshd admits only with the provider's SSH
    /// certificate for it, limited to the lease's class; removed at end (docs/operations.md).
    Linux {
        /// One file per account holding its principal (sshd's AuthorizedPrincipalsFile DIR/%u).
        #[arg(long, value_name = "DIR")]
        principals_dir: PathBuf,
        /// The host name or address buyers connect to.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The SSH port buyers connect to.
        #[arg(long, default_value_t = 22)]
        ssh_port: u16,
        /// Where pam_limits reads per-account limits (without systemd).
        #[arg(long, value_name = "DIR", default_value = "/etc/security/limits.d")]
        limits_dir: PathBuf,
    },
    /// The sample capacity source (`[capacity] kind = "exec"`): reads {"classes": [...]} on
    /// stdin and prints the host's free CPU and memory (from /proc) as free slots of each class
    /// with `vcpu` and `ram_gib` attributes, for a datacenter of HOSTS machines like this one.
    Capacity {
        /// Machines like this one in the datacenter.
        #[arg(long, value_name = "N", default_value_t = 1)]
        hosts: u64,
        /// Where /proc is.
        #[arg(long, value_name = "DIR", default_value = "/proc")]
        proc_dir: PathBuf,
    },
}

/// The lease event a hook gets on stdin.
fn read_event() -> Result<LeaseEvent> {
    let mut input = Vec::new();
    std::io::stdin()
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut input)
        .context("cannot read the lease event on stdin")?;
    serde_json::from_slice(&input)
        .context("stdin is not a lease event (JSON with event, lease, lease_id, chain_id)")
}

/// Runs `surplus hook …`.
pub fn hook(c: HookCommand) -> Result<ExitCode> {
    match c {
        HookCommand::Sample { dir, probe_tcp, probe_http } => {
            let ev = read_event()?;
            let mut answer = sample_hook(&dir, &ev)?;
            let probe = match (probe_tcp, probe_http) {
                (Some(a), _) => Some(serde_json::json!({ "tcp": a })),
                (None, Some(u)) => Some(serde_json::json!({ "http": u, "status": 200 })),
                (None, None) => None,
            };
            if let (Some(p), Some(obj)) = (probe, answer.as_object_mut()) {
                if !obj.contains_key("released") {
                    surplus_service::provision::probe_target(&p).map_err(anyhow::Error::msg)?;
                    obj.insert("probe".into(), p);
                }
            }
            println!("{answer}");
            Ok(ExitCode::SUCCESS)
        }
        HookCommand::Linux { principals_dir, host, ssh_port, limits_dir } => {
            let ev = read_event()?;
            let host = surplus_service::linux_hook::LinuxHost {
                principals_dir,
                host,
                port: ssh_port,
                limits_dir,
            };
            println!("{}", surplus_service::linux_hook::linux_hook(&host, &ev)?);
            Ok(ExitCode::SUCCESS)
        }
        HookCommand::Capacity { hosts, proc_dir } => {
            let mut input = Vec::new();
            std::io::stdin()
                .take(MAX_ANSWER_BYTES)
                .read_to_end(&mut input)
                .context("cannot read the classes on stdin")?;
            let v: serde_json::Value = serde_json::from_slice(&input)
                .context("stdin is not JSON: {\"classes\": [{\"id\", \"attributes\"}, ...]}")?;
            let slots = surplus_service::capacity::host_slots(&proc_dir, &v["classes"], hosts)
                .map_err(anyhow::Error::msg)?;
            println!("{}", serde_json::to_string(&slots)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
