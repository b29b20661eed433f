//! `surplus credential …`: check and narrow lease credentials offline.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::now_ms;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use surplus_contracts::credential::{attenuate, verify, Request, Restriction};
use surplus_ledger::{parse_hex, EntryKind, PublicKey};

/// `surplus credential` subcommands.
#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Verify a lease's token offline and print its scope.
    Verify {
        /// The token file (binary, or base64 text).
        #[arg(long, value_name = "FILE")]
        token: PathBuf,
        /// The provider's public key (hex): the token's root of trust.
        #[arg(long, value_name = "KEY")]
        provider_key: String,
        /// Refuse the token if a node's ledger (its data dir) revoked it.
        #[arg(long, value_name = "DATA_DIR")]
        revoked_from: Option<PathBuf>,
        /// The lease the request is for (hex); defaults to the token's own lease.
        #[arg(long, value_name = "HEX")]
        lease: Option<String>,
        /// The operation to authorize.
        #[arg(long, default_value = "read")]
        operation: String,
        /// The time of the request, ms since the epoch; defaults to now.
        #[arg(long, value_name = "MS")]
        at_ms: Option<u64>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Narrow a token (fewer operations, an earlier expiry) without asking anyone.
    Attenuate {
        /// The token file.
        #[arg(long, value_name = "FILE")]
        token: PathBuf,
        /// The provider's public key (hex).
        #[arg(long, value_name = "KEY")]
        provider_key: String,
        /// Allow only these operations (comma-separated).
        #[arg(long, value_delimiter = ',')]
        operations: Vec<String>,
        /// Refuse requests from this time on, ms since the epoch.
        #[arg(long, value_name = "MS")]
        until_ms: Option<u64>,
        /// Where to write the narrowed token; refuses to overwrite.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

fn read_token(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Accept the raw token or its base64 text (as the API hands it out).
    let text = std::str::from_utf8(&bytes).ok().map(str::trim).filter(|t| !t.is_empty());
    if let Some(t) = text {
        use base64::Engine as _;
        if let Ok(decoded) = base64::engine::general_purpose::URL_SAFE.decode(t) {
            return Ok(decoded);
        }
    }
    Ok(bytes)
}

/// Revocation ids written on a node's ledger.
fn revoked_ids(data_dir: &Path) -> Result<BTreeSet<Vec<u8>>> {
    let store = crate::ledger_cmd::open_store(data_dir)?;
    let mut out = BTreeSet::new();
    for block in store.blocks(0) {
        for e in block?.entries {
            if e.kind == EntryKind::REVOCATION {
                let (_, ids) = surplus_contracts::decode_revocation(&e.payload)
                    .map_err(|err| anyhow::anyhow!("a revocation entry does not decode: {err}"))?;
                out.extend(ids.into_iter().map(|id| id.0));
            }
        }
    }
    Ok(out)
}

/// Runs `surplus credential …`.
pub fn credential(c: CredentialCommand) -> Result<ExitCode> {
    match c {
        CredentialCommand::Verify {
            token,
            provider_key,
            revoked_from,
            lease,
            operation,
            at_ms,
            json,
        } => {
            let token = read_token(&token)?;
            let provider: PublicKey =
                provider_key.parse().map_err(|e| anyhow::anyhow!("--provider-key: {e}"))?;
            let revoked = match &revoked_from {
                Some(dir) => revoked_ids(dir)?,
                None => BTreeSet::new(),
            };
            let lease = match lease {
                Some(l) => parse_hex::<32>(&l, "--lease").map_err(anyhow::Error::msg)?,
                None => token_lease(&token, &provider)?,
            };
            let request = Request { lease, operation, now_ms: at_ms.unwrap_or_else(now_ms) };
            match verify(&token, &provider, &request, &|id| revoked.contains(id)) {
                Ok(scope) => {
                    if json {
                        println!("{}", serde_json::json!({ "valid": true, "scope": scope }));
                    } else {
                        println!(
                            "valid: {} may {} on lease {}",
                            scope.buyer, request.operation, scope.lease
                        );
                        println!("  market       {} ({} slots)", scope.market, scope.slots);
                        println!("  provider     {}", scope.provider);
                        println!("  window       {} .. {} ms", scope.valid_from, scope.valid_until);
                        println!("  rights       {}", scope.rights.join(", "));
                        println!("  blocks       {} (more than 1: attenuated)", scope.blocks);
                        if revoked_from.is_none() {
                            println!("  revocation   not checked (pass --revoked-from DATA_DIR)");
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({ "valid": false, "reason": why.to_string() })
                        );
                    } else {
                        println!("REFUSED: {why}");
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
        CredentialCommand::Attenuate { token, provider_key, operations, until_ms, out } => {
            let token = read_token(&token)?;
            let provider: PublicKey =
                provider_key.parse().map_err(|e| anyhow::anyhow!("--provider-key: {e}"))?;
            let restriction = Restriction {
                operations: (!operations.is_empty()).then_some(operations),
                until_ms,
            };
            let narrowed = attenuate(&token, &provider, &restriction, &mut rand_core::OsRng)?;
            if out.exists() {
                bail!("{} exists; choose another --out", out.display());
            }
            std::fs::write(&out, &narrowed.token)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("wrote {} ({} bytes)", out.display(), narrowed.token.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The lease a token names (its signatures checked under the provider key).
fn token_lease(token: &[u8], provider: &PublicKey) -> Result<surplus_ledger::Hash> {
    let scope = surplus_contracts::credential::inspect(token, provider)?;
    parse_hex::<32>(&scope.lease, "the token's lease").map_err(anyhow::Error::msg)
}
