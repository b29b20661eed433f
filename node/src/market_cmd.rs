//! `surplus market …`: re-run an auction from a file.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use surplus_market::replay::AuctionInput;

/// `surplus market` subcommands.
#[derive(Debug, Subcommand)]
pub enum MarketCommand {
    /// Re-run one block's auction from a file (book, new orders, block time, balances) and print
    /// the fills and clearing prices. The format is in docs/auction.md.
    Clear {
        /// The auction input file (JSON).
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `surplus market …`.
pub fn market(c: MarketCommand) -> Result<ExitCode> {
    match c {
        MarketCommand::Clear { input, json } => {
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("cannot read {}", input.display()))?;
            // Errors name the element at fault, e.g. `orders[2].order.slots`.
            let de = &mut serde_json::Deserializer::from_str(&text);
            let parsed: AuctionInput = serde_path_to_error::deserialize(de).map_err(|e| {
                let at = e.path().to_string();
                let at = if at == "." { String::new() } else { format!(" at {at}") };
                anyhow::anyhow!(
                    "{} is not an auction input file{at}: {}",
                    input.display(),
                    e.into_inner()
                )
            })?;
            let (book, out) = parsed.run().with_context(|| format!("{}", input.display()))?;
            if json {
                print_all(&format!("{}\n", serde_json::to_string_pretty(&out)?))?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut text = String::new();
            writeln!(
                text,
                "block {} at {} ms: {} orders accepted, {} refused, {} cancelled, {} expired; {} rest",
                parsed.height,
                parsed.now_ms,
                out.accepted.len(),
                out.rejected.len(),
                out.cancelled.len(),
                out.expired.len(),
                book.len()
            )?;
            for (market, price) in &out.prices {
                let fills: Vec<_> = out.fills.iter().filter(|f| &f.market == market).collect();
                let slots: u32 = fills.iter().map(|f| f.slots).sum();
                writeln!(text, "market {market}: clearing price {price} units per slot-hour, {} fills, {slots} slots", fills.len())?;
                for f in fills {
                    writeln!(
                        text,
                        "  bid {} <- offer {}: {} slots x {} h, {}..{}, cost {} units",
                        short(&f.bid),
                        short(&f.offer),
                        f.slots,
                        f.hours(),
                        f.start_ms,
                        f.end_ms,
                        f.cost()
                    )?;
                }
            }
            if out.prices.is_empty() {
                writeln!(text, "no market traded")?;
            }
            for r in &out.rejected {
                writeln!(text, "refused {}: {}", short(&r.id), r.reason)?;
            }
            print_all(&text)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes `text` to standard output; a reader that went away (`| head`) is not an error.
fn print_all(text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to standard output"),
    }
}

fn short(id: &[u8; 32]) -> String {
    hex::encode(&id[..6])
}
