//! `surplus audit`, `surplus ledger …` and `surplus key …`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use surplus_ledger::bundle::ProofBundle;
use surplus_ledger::{verify, Failure, PublicKey, Report, SecretKey, ValidatorSet};
use surplus_store as store;
use surplus_store::{export, Store};

/// Exit status when a verification ran and failed (2 is for usage and I/O errors).
const EXIT_FAILED: u8 = 1;

/// Arguments of `surplus audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// An exported ledger file (from `surplus ledger export`).
    #[arg(conflicts_with_all = ["data_dir", "node"], required_unless_present_any = ["data_dir", "node"])]
    file: Option<PathBuf>,
    /// A node's data directory (its ledger store is in `DIR/ledger`).
    #[arg(long, value_name = "DIR", conflicts_with = "node")]
    data_dir: Option<PathBuf>,
    /// A node's HTTP API (`http://host:port`): its ledger is streamed (`GET /api/v1/export`)
    /// and each block checked as it arrives.
    #[arg(long, value_name = "URL")]
    node: Option<String>,
    /// Refuse the ledger unless its genesis header hash is this (hex).
    #[arg(long, value_name = "HEX")]
    genesis_hash: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `surplus ledger` subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Write the whole ledger to one file that `surplus audit FILE` verifies.
    Export {
        /// The node's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Where to write the export.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print an inclusion proof of one entry with the checkpoint it is against (JSON).
    Proof {
        /// The node's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Global index of the entry.
        #[arg(long, value_name = "N")]
        entry: u64,
        /// Prove against the checkpoint at this height instead of the head.
        #[arg(long, value_name = "H")]
        height: Option<u64>,
        /// Sign the checkpoint with this node key file.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Write the proof here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check a proof written by `surplus ledger proof`, offline.
    VerifyProof {
        /// The proof file.
        file: PathBuf,
        /// Require the checkpoint to be signed by this node key (hex).
        #[arg(long, value_name = "HEX")]
        signer: Option<String>,
        /// Also check the block's commit certificate against this validator set: keys (hex,
        /// comma-separated, in the set's order), each optionally `:POWER` (default 1). The set
        /// that decides the proof's block: the genesis validators until a validator-set entry
        /// replaces them (`GET /api/v1/chain?height=H` lists the set of height H).
        #[arg(long, value_name = "HEX[:POWER],...", value_delimiter = ',')]
        validators: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print what a node's ledger holds, by kind of record, against its size on disk. Reads
    /// the whole store; the node must be stopped.
    Usage {
        /// The node's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the head of a node's ledger.
    Head {
        /// The node's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `surplus key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a new ed25519 key file (mode 0600); prints the public key.
    Generate {
        /// Where to write the key; refuses to overwrite.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the public key of a key file.
    Show {
        /// The key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
}

/// Where a node keeps its ledger store inside its data directory.
pub fn ledger_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ledger")
}

/// Opens the ledger store of a node's data directory.
pub fn open_store(data_dir: &Path) -> Result<Store> {
    let dir = ledger_dir(data_dir);
    if !dir.is_dir() {
        bail!("{} holds no ledger (expected the directory {})", data_dir.display(), dir.display());
    }
    Store::open(&dir, store::Config::default())
        .with_context(|| format!("cannot open the ledger in {}", dir.display()))
}

fn progress_bar(json: bool, what: &str) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template(&format!(
        "{what} {{bar:40}} {{pos}}/{{len}} blocks, {{msg}} ({{eta}} left)"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// Re-executes the state machine when the ledger records one (its genesis holds the
/// consortium's parameters); a bare ledger is checked by the ledger rules alone. On a data dir
/// that holds blocks in full only from some height on (it prunes, or started from a snapshot),
/// re-execution starts from the node's snapshot of the height before (its base snapshot),
/// checked against that header's certified state root.
#[derive(Debug, Default)]
struct AutoReplay {
    replay: Option<surplus_contracts::Replay>,
    decided: bool,
    /// The data dir audited, whose snapshots a resume reads.
    data_dir: Option<PathBuf>,
    /// The genesis validators, for a snapshot's certificate.
    validators: Option<surplus_ledger::ValidatorSet>,
    /// The height of the snapshot re-execution started from, if not genesis.
    resumed_from: Option<u64>,
}

impl surplus_ledger::Hook for AutoReplay {
    fn block(
        &mut self,
        block: &surplus_ledger::Block,
        hash: &surplus_ledger::Hash,
    ) -> std::result::Result<(), surplus_ledger::HookFailure> {
        if !self.decided {
            self.decided = true;
            self.validators = surplus_ledger::genesis_validators(block).ok();
            let has_params =
                block.entries.iter().any(|e| e.kind == surplus_ledger::EntryKind::GENESIS_PARAMS);
            if has_params {
                // `surplus audit` runs every check of the ledger, signatures included, before
                // the hook: re-execution need not check them again.
                self.replay = Some(surplus_contracts::Replay::after_signature_checks());
            }
        }
        match &mut self.replay {
            Some(r) => r.block(block, hash),
            None => Ok(()),
        }
    }

    fn resume(
        &mut self,
        base: &surplus_ledger::Header,
        hash: &surplus_ledger::Hash,
    ) -> std::result::Result<(), surplus_ledger::HookFailure> {
        let Some(replay) = self.replay.as_mut() else { return Ok(()) };
        let fail = |reason: String| surplus_ledger::HookFailure {
            entry: None,
            field: "snapshot".into(),
            reason,
        };
        let (Some(dir), Some(validators)) = (&self.data_dir, &self.validators) else {
            return Err(fail(format!(
                "the ledger holds blocks in full only after height {}: re-execution needs the \
                 state at that height, which only a node's data dir (its snapshots) holds",
                base.height
            )));
        };
        let root = surplus_net::consensus::snapshot::dir_of(dir);
        let (manifest, maker) =
            surplus_net::consensus::snapshot::load(&root, base.height, &base.chain_id, validators)
                .map_err(|e| {
                    fail(format!(
                        "the ledger holds blocks in full only after height {}, and the snapshot \
                         of that height in {} cannot be used: {e}",
                        base.height,
                        root.display()
                    ))
                })?;
        if manifest.header.hash() != *hash {
            return Err(fail(format!(
                "the snapshot of height {} is of another header than the ledger's",
                base.height
            )));
        }
        replay.resume_at(maker.state, base)?;
        self.resumed_from = Some(base.height);
        Ok(())
    }
}

/// Runs `surplus audit`.
pub fn audit(a: AuditArgs) -> Result<ExitCode> {
    let genesis_hash = a
        .genesis_hash
        .as_deref()
        .map(|h| surplus_ledger::parse_hex::<32>(h, "--genesis-hash"))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let options = verify::Options { genesis_hash, ..Default::default() };
    let bar = progress_bar(a.json, "auditing");
    let mut hook = AutoReplay { data_dir: a.data_dir.clone(), ..AutoReplay::default() };
    let mut on_progress = |p: verify::Progress| {
        if let Some(t) = p.total_blocks {
            bar.set_length(t);
        }
        bar.set_position(p.blocks);
        if p.blocks.is_multiple_of(64) {
            bar.set_message(format!("{} entries", p.entries));
        }
    };
    let (source_name, result) = match (&a.file, &a.data_dir, &a.node) {
        (Some(file), _, _) => {
            let mut reader = export::Reader::open(file)?;
            (
                file.display().to_string(),
                verify::verify(&mut reader, &options, &mut hook, &mut on_progress),
            )
        }
        (None, None, Some(url)) => {
            // An export of a long ledger takes a while to stream: no limit on the whole call.
            let client = surplus_client::Client::with_timeouts(
                url,
                std::time::Duration::from_secs(10),
                std::time::Duration::from_secs(7 * 24 * 3600),
            )?;
            let stream = client.export_stream().with_context(|| format!("cannot read {url}"))?;
            let mut reader =
                export::Reader::from_stream(Path::new(url.as_str()), stream.body, stream.len)?;
            if let Some(h) = stream.height {
                reader = reader.expect_blocks(h + 1);
            }
            (url.clone(), verify::verify(&mut reader, &options, &mut hook, &mut on_progress))
        }
        (None, Some(dir), _) => {
            let store = match open_store(dir) {
                Ok(s) => s,
                Err(e) => match e.downcast_ref::<surplus_store::Error>() {
                    // A damaged store is an audit finding, not a usage error.
                    Some(surplus_store::Error::Damaged(f)) => {
                        bar.finish_and_clear();
                        return Ok(report(
                            a.json,
                            &dir.display().to_string(),
                            Err(f.clone()),
                            None,
                        ));
                    }
                    _ => return Err(e),
                },
            };
            (dir.display().to_string(), store.audit(&options, &mut hook, &mut on_progress))
        }
        (None, None, None) => bail!("name an export file, --data-dir or --node"),
    };
    bar.finish_and_clear();
    let replayed = hook.replay.is_some().then_some(hook.resumed_from.unwrap_or(0));
    Ok(report(a.json, &source_name, result, replayed))
}

/// Prints the audit's outcome; `replayed` is the height re-execution started from (0: genesis),
/// `None` if the ledger was not re-executed.
fn report(
    json: bool,
    source: &str,
    result: Result<Report, Failure>,
    replayed: Option<u64>,
) -> ExitCode {
    match result {
        Ok(r) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "verified": true,
                        "source": source,
                        "report": r,
                        "replayed": replayed.is_some(),
                        "replayed_from": replayed,
                    })
                );
            } else {
                println!("verified: {source}");
                println!("  chain        {}", r.chain_id);
                println!("  genesis      {}", hex::encode(r.genesis_hash));
                println!("  head         height {}, {}", r.head_height, hex::encode(r.head_hash));
                println!("  blocks       {}", r.blocks);
                println!("  entries      {}", r.entries);
                println!("  signatures   {}", r.signatures);
                println!("  merkle root  {}", hex::encode(r.merkle_root));
                if r.from_height > 0 {
                    println!(
                        "  held         headers from {}, blocks in full from {} (older bodies \
                         pruned, or before this node's snapshot)",
                        r.headers_from.max(1),
                        r.from_height
                    );
                }
                match replayed {
                    Some(0) => println!(
                        "  re-executed  every block: auctions, balances, escrow, leases, state roots"
                    ),
                    Some(h) => println!(
                        "  re-executed  every block after the snapshot at height {h} (checked \
                         against its certified state root): auctions, balances, escrow, leases, \
                         state roots"
                    ),
                    None => {
                        println!("  re-executed  no (the genesis records no consortium parameters)")
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "verified": false, "source": source, "failure": f })
                );
            } else {
                println!("FAILED: {source}");
                println!("  height  {}", f.height);
                if let Some(e) = f.entry {
                    println!("  entry   {e}");
                }
                println!("  field   {}", f.field);
                println!("  reason  {}", f.reason);
            }
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Runs `surplus ledger …`.
pub fn ledger(c: LedgerCommand) -> Result<ExitCode> {
    match c {
        LedgerCommand::Export { data_dir, out, json } => {
            let store = open_store(&data_dir)?;
            let bar = progress_bar(json, "exporting");
            let summary = store.export(&out, &mut |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!(
                    "exported {} blocks, {} entries, {} bytes to {} (head {})",
                    summary.blocks,
                    summary.entries,
                    summary.bytes,
                    out.display(),
                    hex::encode(summary.head_hash)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Proof { data_dir, entry, height, key, out } => {
            let store = open_store(&data_dir)?;
            let key = key.as_deref().map(crate::keyfile::read_key).transpose()?;
            let checkpoint = store.checkpoint(height)?;
            let entry_height = store.height_of_entry(entry)?;
            if entry_height > checkpoint.height {
                bail!(
                    "entry {entry} is in block {entry_height}, after the checkpoint at height {}",
                    checkpoint.height
                );
            }
            let proof = store.prove_inclusion(entry, Some(checkpoint.tree_size))?;
            let (header, certificate) = store.read_head(checkpoint.height)?;
            let signed = key.map(|k| checkpoint.clone().sign(&k));
            let bundle = ProofBundle::new(
                entry_height,
                &store.entry(entry)?,
                &proof,
                checkpoint,
                signed.as_ref(),
                header,
                certificate,
            );
            let text = serde_json::to_string_pretty(&bundle)? + "\n";
            match out {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::VerifyProof { file, signer, validators, json } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let bundle: ProofBundle = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a Surplus proof file", file.display()))?;
            let signer = signer
                .as_deref()
                .map(|s| s.parse::<PublicKey>().map_err(|e| anyhow::anyhow!("--signer: {e}")))
                .transpose()?;
            let validators =
                if validators.is_empty() { None } else { Some(parse_validators(&validators)?) };
            match bundle.verify(signer.as_ref(), validators.as_ref()) {
                Ok(check) => {
                    if json {
                        println!("{}", serde_json::json!({ "verified": true, "check": check }));
                    } else {
                        println!(
                            "verified: entry {} ({}) is in the ledger of {} entries at height {}",
                            bundle.entry_index,
                            check.entry.kind.name(),
                            bundle.tree_size,
                            bundle.checkpoint.height
                        );
                        match check.signed_by {
                            Some(k) => println!("  checkpoint signed by {k}"),
                            None => println!("  checkpoint unsigned"),
                        }
                        if check.certificate_checked {
                            println!("  commit certificate verified against the validator set");
                        } else {
                            println!("  commit certificate not checked (pass --validators)");
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => {
                    if json {
                        println!("{}", serde_json::json!({ "verified": false, "reason": why }));
                    } else {
                        println!("FAILED: {why}");
                    }
                    Ok(ExitCode::from(EXIT_FAILED))
                }
            }
        }
        LedgerCommand::Usage { data_dir, json } => {
            let store = open_store(&data_dir)?;
            let usage = store.usage()?;
            let on_disk = surplus_service::disk::bytes_under(&ledger_dir(&data_dir));
            let (height, base, oldest) = (store.height(), store.base(), store.oldest_header());
            drop(store);
            if json {
                let out = serde_json::json!({
                    "height": height,
                    "base": base,
                    "oldest_header": oldest,
                    "kinds": usage.kinds,
                    "bytes": usage.bytes(),
                    "on_disk_bytes": on_disk,
                });
                println!("{out}");
            } else {
                print_usage(&usage, on_disk, height, base, oldest);
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Head { data_dir, json } => {
            let store = open_store(&data_dir)?;
            let cp = store.checkpoint(None)?;
            if json {
                println!("{}", serde_json::to_string(&cp)?);
            } else {
                println!("chain {} height {} entries {}", cp.chain_id, cp.height, cp.tree_size);
                println!("  header hash  {}", hex::encode(cp.header_hash));
                println!("  merkle root  {}", hex::encode(cp.root));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The table of `surplus ledger usage`.
fn print_usage(usage: &store::Usage, on_disk: u64, height: Option<u64>, base: u64, oldest: u64) {
    use surplus_service::disk::human;
    match height {
        Some(h) if base > 0 => println!(
            "height {h}: blocks in full from {base}, headers and certificates from {oldest}"
        ),
        Some(h) => println!("height {h}: every block in full"),
        None => println!("an empty ledger"),
    }
    println!("{:<16} {:>12} {:>12} {:>14}", "kind", "records", "bytes", "bytes/record");
    for k in &usage.kinds {
        println!(
            "{:<16} {:>12} {:>12} {:>14.1}",
            k.kind,
            k.records,
            human(k.bytes),
            k.bytes as f64 / k.records.max(1) as f64
        );
    }
    let held = usage.bytes();
    println!("{:<16} {:>12} {:>12}", "held", "", human(held));
    println!(
        "{:<16} {:>12} {:>12}   ({:.2}× what it holds: the engine's log, index and free space)",
        "on disk",
        "",
        human(on_disk),
        on_disk as f64 / held.max(1) as f64
    );
}

/// Runs `surplus key …`.
pub fn key(c: KeyCommand) -> Result<ExitCode> {
    match c {
        KeyCommand::Generate { out } => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let key = SecretKey::from_seed(seed);
            crate::keyfile::write_secret(&out, key.to_file_contents().as_bytes())?;
            println!("{}", key.public());
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Show { key } => {
            println!("{}", crate::keyfile::read_key(&key)?.public());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A `--validators` list: keys in hex, each optionally `:POWER` (default 1), in the set's order.
pub(crate) fn parse_validators(items: &[String]) -> Result<ValidatorSet> {
    let mut keys = Vec::with_capacity(items.len());
    let mut powers = Vec::with_capacity(items.len());
    for item in items {
        let (key, power) = match item.split_once(':') {
            Some((k, p)) => (
                k,
                p.parse::<u64>().map_err(|e| {
                    anyhow::anyhow!(
                        "--validators: the voting power in {item:?} is not a number: {e}"
                    )
                })?,
            ),
            None => (item.as_str(), 1),
        };
        keys.push(key.parse::<PublicKey>().map_err(|e| anyhow::anyhow!("--validators: {e}"))?);
        powers.push(power);
    }
    ValidatorSet::weighted(keys, powers).map_err(|e| anyhow::anyhow!("--validators: {e}"))
}
