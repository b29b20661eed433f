//! `surplus load`: drives signed orders into a running devnet at a steady rate and measures how
//! long each takes from acceptance by a node to its lease being committed on every node. With
//! `--submit-only` it measures instead how many signed orders one node accepts per second at
//! saturation, against this machine's raw ed25519 verification rate.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use rand::Rng;
use serde::Serialize;
use surplus_client::{self as client, Client};
use surplus_ledger::SecretKey;
use surplus_market::{Bid, FillRule, Market, Offer, Order, SignedOrder};

use crate::devnet_file::DevnetFile;

/// Arguments of `surplus load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The devnet's directory (its devnet.json names the nodes and buyer keys).
    #[arg(long, default_value = "devnet")]
    pub devnet: PathBuf,
    /// Orders per second to send (spread over the nodes).
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// How long to send, seconds (at most 600).
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// Sending threads.
    #[arg(long, default_value_t = 8)]
    pub threads: u32,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Saturation mode: pre-sign `--count` bids, then send them to one node (`--node`) as fast as
    /// `--threads` keep-alive clients can, and report accepted orders per second (no lease
    /// tracking; `--rate` and `--seconds` are not used).
    #[arg(long)]
    pub submit_only: bool,
    /// Bids to pre-sign for `--submit-only`.
    #[arg(long, default_value_t = 20_000)]
    pub count: u32,
    /// Which node (index in devnet.json) `--submit-only` sends to.
    #[arg(long, default_value_t = 0)]
    pub node: usize,
    /// Bids per request for `--submit-only`: 1 sends each alone (`POST /api/v1/entries`), more
    /// sends them in batches (`POST /api/v1/submissions`, at most 1,000).
    #[arg(long, default_value_t = 1)]
    pub batch: u32,
}

/// What a `--submit-only` run measured.
#[derive(Debug, Serialize)]
pub struct SubmitReport {
    /// The node's API.
    pub node: String,
    /// Concurrent keep-alive clients.
    pub clients: u32,
    /// Bids per request.
    pub batch: u32,
    /// Bids sent.
    pub sent: u64,
    /// Bids the node accepted (HTTP 202).
    pub accepted: u64,
    /// Refusals by code.
    pub refused: HashMap<String, u64>,
    /// Seconds from the first request to the last answer.
    pub seconds: f64,
    /// Accepted bids per second.
    pub accepted_per_sec: f64,
    /// Request latency, ms: p50, p99, max.
    pub latency_ms: [f64; 3],
    /// Raw ed25519 (strict) verifications per second on one core of this machine.
    pub ed25519_verify_per_sec: f64,
    /// Accepted rate as a fraction of that single-core rate.
    pub ratio_to_ed25519: f64,
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Orders per second asked for.
    pub target_rate: u32,
    /// Orders per second actually accepted.
    pub accepted_rate: f64,
    /// Orders sent.
    pub sent: u64,
    /// Orders the nodes accepted (HTTP 202).
    pub accepted: u64,
    /// Refusals by code.
    pub refused: HashMap<String, u64>,
    /// Orders the nodes shed (503 `overloaded` or `mempool_full`, 429 `rate_limited`: refused
    /// before any work, to be sent again later; this tool does not retry them).
    pub shed: u64,
    /// Orders per second actually sent (below the target when the sending threads wait for
    /// slow answers).
    pub sent_rate: f64,
    /// Accepted orders whose lease was committed on every node.
    pub leased_everywhere: u64,
    /// Accepted orders not leased on every node within the wait after the run (the tool exits
    /// with 1 when any is).
    pub lost: u64,
    /// Accept → lease committed on every node, ms: p50, p90, p99, max.
    pub latency_ms: [u64; 4],
    /// Accept → lease committed on the first node, ms: p50, p99.
    pub first_node_ms: [u64; 2],
    /// Blocks the run spanned, and their mean user entries.
    pub blocks: u64,
    /// Mean entries per block.
    pub mean_block_entries: f64,
    /// Raw ed25519 (strict) verifications per second on one core of this machine.
    pub ed25519_verify_per_sec: f64,
    /// Accepted rate as a fraction of that limit.
    pub ratio_to_ed25519: f64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Raw single-core strict ed25519 verification rate of this machine.
pub fn ed25519_rate() -> f64 {
    let key = SecretKey::from_seed([7; 32]);
    let msg = [42u8; 200];
    let sig = key.sign(&msg);
    let public = key.public();
    let n = 3_000;
    let start = Instant::now();
    for _ in 0..n {
        let _ = surplus_ledger::verify_strict(&public, &msg, &sig);
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Locks `key`'s bond up to `need` units if it holds less, and waits for the lock to commit on
/// every node (a node behind it would not take the offer that needs it).
fn ensure_bond(apis: &[Client], chain: &str, key: &SecretKey, need: u64) -> Result<()> {
    let api = &apis[0];
    let account = api.account(&key.public())?;
    if account.bond >= need {
        return Ok(());
    }
    let amount = need - account.bond;
    if account.balance < amount {
        bail!(
            "the load's provider key holds {} units, its offer needs a bond of {amount} more",
            account.balance
        );
    }
    let tx = surplus_contracts::Tx::Bond { amount, seq: account.seq };
    let entry = surplus_ledger::Entry::signed(chain, tx.kind(), tx.encode(), key);
    api.submit(&entry).context("the load's bond")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !apis.iter().all(|a| a.account(&key.public()).is_ok_and(|a| a.bond >= need)) {
        if Instant::now() > deadline {
            bail!("the load's bond did not commit within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Runs `surplus load`.
pub fn load(a: LoadArgs) -> Result<std::process::ExitCode> {
    if a.submit_only {
        return submit_only(&a);
    }
    if a.rate == 0 || a.seconds == 0 || a.seconds > 600 || a.threads == 0 || a.threads > 64 {
        bail!("--rate and --threads must be positive (threads ≤ 64), --seconds 1 to 600");
    }
    let file: DevnetFile = crate::devnet_file::load(&a.devnet)?;
    // The verification limit is measured before the load, on a machine the load does not busy.
    let verify = ed25519_rate();
    if file.buyers.len() < 2 {
        bail!("the devnet needs at least 2 buyer keys (one sells, the others buy)");
    }
    let keys: Vec<SecretKey> =
        file.buyers.iter().map(|b| crate::keyfile::read_key(&b.key_file)).collect::<Result<_>>()?;
    let apis: Vec<Client> = file
        .nodes
        .iter()
        .map(|n| Client::with_timeouts(&n.api, Duration::from_secs(5), Duration::from_secs(10)))
        .collect::<Result<_, _>>()?;
    let chain = file.chain_id.clone();
    let market = Market::new("vm.16c64g", &surplus_market::Catalogue::sample().regions[0].id);

    // One provider offer big enough for every bid of the run, backed by the bond its class asks
    // for (`docs/contracts.md` §10).
    let total = u64::from(a.rate) * u64::from(a.seconds);
    let slots = u32::try_from(total + 100).unwrap_or(u32::MAX);
    let genesis_path = file.nodes.first().map(|n| n.data_dir.join("genesis.json"));
    let genesis = genesis_path
        .as_deref()
        .map(crate::genesis::GenesisFile::load)
        .context("the devnet has no node")?
        .context("the devnet's genesis")?;
    let per_slot = |m: &Market| {
        let class = genesis.params.catalogue.classes.iter().find(|c| c.id == m.class);
        class.map_or(0, |c| surplus_contracts::supervision::Terms::of(c).bond_per_slot)
    };
    // The bond covers the offer and the provider's live leases (earlier runs' included).
    let in_use = apis[0].account(&keys[0].public())?.bond_in_use;
    let need = per_slot(&market).saturating_mul(u64::from(slots)).saturating_add(in_use);
    ensure_bond(&apis, &chain, &keys[0], need)?;
    let now = crate::now_ms();
    let offer = Offer {
        market: market.clone(),
        slots,
        from_ms: now,
        until_ms: now + 48 * 3_600_000,
        reserve: 1_000,
        min_hours: 1,
        expiry_ms: now + 24 * 3_600_000,
        nonce: rand::thread_rng().gen(),
    };
    let (entry, _) = SignedOrder::sign(&chain, Order::Offer(offer), &keys[0]);
    let offer_id = apis[0].submit(&entry).context("the load's offer")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !apis[0].book(&market, None)?.offers.orders.iter().any(|o| o.id == offer_id) {
        if Instant::now() > deadline {
            bail!("the load's offer did not reach the book within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let start_height = apis[0].status()?.height;

    // Send bids at the asked rate from several threads, without retrying what is shed.
    let senders: Vec<Client> = apis.iter().map(|c| c.clone().with_retries(0)).collect();
    let accepted: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let refused: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let t0 = Instant::now();
    let buyers = Arc::new(keys[1..].to_vec());
    std::thread::scope(|s| {
        for t in 0..u64::from(a.threads) {
            let (accepted, refused, buyers) = (accepted.clone(), refused.clone(), buyers.clone());
            let (apis, market, chain) = (senders.clone(), market.clone(), chain.clone());
            let (rate, threads) = (a.rate, u64::from(a.threads));
            s.spawn(move || {
                let mut rng = rand::thread_rng();
                let mut k = t;
                while k < total {
                    let due = t0 + Duration::from_secs_f64(k as f64 / f64::from(rate));
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let now = crate::now_ms();
                    let bid = Bid {
                        market: market.clone(),
                        slots: 1,
                        hours: 1,
                        limit: 2_000,
                        earliest_ms: now,
                        latest_ms: now + 3_600_000,
                        fill: FillRule::AtLeast(1),
                        expiry_ms: now + 600_000,
                        nonce: rng.gen(),
                    };
                    let buyer = &buyers[(k as usize) % buyers.len()];
                    let (entry, _) = SignedOrder::sign(&chain, Order::Bid(bid), buyer);
                    let api = &apis[(k as usize) % apis.len()];
                    let failure = match api.submit(&entry) {
                        Ok(id) => {
                            let at = crate::now_ms();
                            if let Ok(mut v) = accepted.lock() {
                                v.push((hex::encode(id), at));
                            }
                            None
                        }
                        Err(client::Error::Refused { code, .. }) => Some(code),
                        Err(e) => Some(format!("transport: {e}")),
                    };
                    if let Some(code) = failure {
                        if let Ok(mut m) = refused.lock() {
                            *m.entry(code).or_default() += 1;
                        }
                    }
                    k += threads;
                }
            });
        }
    });
    let send_secs = t0.elapsed().as_secs_f64();
    let accepted = std::mem::take(&mut *accepted.lock().map_err(|_| anyhow::anyhow!("lock"))?);
    let refused = std::mem::take(&mut *refused.lock().map_err(|_| anyhow::anyhow!("lock"))?);

    // Collect, per node, when each bid's fill was committed (bounded wait for the tail).
    let wanted: HashMap<&str, u64> = accepted.iter().map(|(id, at)| (id.as_str(), *at)).collect();
    let mut commit: Vec<HashMap<String, u64>> = vec![HashMap::new(); apis.len()];
    let mut entries_total = 0u64;
    let mut last_height = start_height;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut next: Vec<u64> = vec![start_height + 1; apis.len()];
    loop {
        for (n, api) in apis.iter().enumerate() {
            while let Ok(b) = api.block(next[n], false) {
                let ms = b.committed_ms.unwrap_or(0);
                for id in b.filled_bids.iter().flatten() {
                    if wanted.contains_key(id.as_str()) {
                        commit[n].entry(id.clone()).or_insert(ms);
                    }
                }
                if n == 0 {
                    entries_total += b.entry_count as u64;
                    last_height = next[0];
                }
                next[n] += 1;
            }
        }
        let done = commit.iter().all(|c| c.len() >= wanted.len());
        if done || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut all = Vec::new();
    let mut first = Vec::new();
    for (id, at) in &accepted {
        let times: Vec<u64> = commit.iter().filter_map(|c| c.get(id).copied()).collect();
        if let Some(min) = times.iter().min() {
            first.push(min.saturating_sub(*at));
        }
        if times.len() == apis.len() {
            all.push(times.iter().max().copied().unwrap_or(0).saturating_sub(*at));
        }
    }
    all.sort_unstable();
    first.sort_unstable();
    let accepted_rate = accepted.len() as f64 / send_secs.max(1e-9);
    let blocks = last_height.saturating_sub(start_height);
    let shed = ["overloaded", "mempool_full", "rate_limited"]
        .iter()
        .map(|c| refused.get(*c).copied().unwrap_or(0))
        .sum();
    let report = Report {
        target_rate: a.rate,
        accepted_rate,
        sent: total,
        accepted: accepted.len() as u64,
        refused,
        shed,
        sent_rate: total as f64 / send_secs.max(1e-9),
        leased_everywhere: all.len() as u64,
        lost: (accepted.len() - all.len()) as u64,
        latency_ms: [
            percentile(&all, 0.5),
            percentile(&all, 0.9),
            percentile(&all, 0.99),
            all.last().copied().unwrap_or(0),
        ],
        first_node_ms: [percentile(&first, 0.5), percentile(&first, 0.99)],
        blocks,
        mean_block_entries: entries_total as f64 / blocks.max(1) as f64,
        ed25519_verify_per_sec: verify,
        ratio_to_ed25519: accepted_rate / verify,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "sent {} orders at {} /s (sent {:.0} /s): {} accepted ({:.0} /s), {} leased on every \
             node, {} shed, refused {:?}",
            report.sent,
            a.rate,
            report.sent_rate,
            report.accepted,
            report.accepted_rate,
            report.leased_everywhere,
            report.shed,
            report.refused
        );
        println!(
            "accept → lease on every node: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms \
             (first node p50 {} ms, p99 {} ms)",
            report.latency_ms[0],
            report.latency_ms[1],
            report.latency_ms[2],
            report.latency_ms[3],
            report.first_node_ms[0],
            report.first_node_ms[1]
        );
        println!(
            "{} blocks, {:.1} entries each; raw ed25519 verify {:.0} /s per core; accepted rate \
             = {:.3} of it",
            report.blocks, report.mean_block_entries, verify, report.ratio_to_ed25519
        );
    }
    if report.lost > 0 {
        eprintln!(
            "error: {} acknowledged orders were not leased on every node within 60 s of the run",
            report.lost
        );
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `surplus load --submit-only`: one node's admission throughput at saturation.
fn submit_only(a: &LoadArgs) -> Result<std::process::ExitCode> {
    if a.count == 0 || a.threads == 0 || a.threads > 256 {
        bail!("--count must be positive and --threads 1 to 256");
    }
    let batch = a.batch as usize;
    if batch == 0 || batch > surplus_client::api::MAX_BATCH_ENTRIES {
        bail!("--batch must be 1 to {}", surplus_client::api::MAX_BATCH_ENTRIES);
    }
    let file: DevnetFile = crate::devnet_file::load(&a.devnet)?;
    let Some(node) = file.nodes.get(a.node) else {
        bail!(
            "--node {} is not in {} (it has {} nodes)",
            a.node,
            a.devnet.display(),
            file.nodes.len()
        );
    };
    if file.buyers.is_empty() {
        bail!("the devnet has no buyer keys to sign bids with");
    }
    let verify = ed25519_rate();
    let keys: Vec<SecretKey> =
        file.buyers.iter().map(|b| crate::keyfile::read_key(&b.key_file)).collect::<Result<_>>()?;
    let market = Market::new("vm.16c64g", &surplus_market::Catalogue::sample().regions[0].id);
    // Sign and encode every request body before the clock starts: the run measures the node.
    let now = crate::now_ms();
    let mut rng = rand::thread_rng();
    let entries: Vec<String> = (0..a.count as usize)
        .map(|k| {
            let bid = Bid {
                market: market.clone(),
                slots: 1,
                hours: 1,
                // Below every sample reserve: the bids rest in the book, none fills.
                limit: 1,
                earliest_ms: now,
                latest_ms: now + 3_600_000,
                fill: FillRule::AtLeast(1),
                expiry_ms: now + 600_000,
                nonce: rng.gen(),
            };
            let (entry, _) =
                SignedOrder::sign(&file.chain_id, Order::Bid(bid), &keys[k % keys.len()]);
            hex::encode(entry.encode())
        })
        .collect();
    // Each request's body, with how many bids it carries.
    let bodies: Vec<(String, u64)> = if batch == 1 {
        entries.iter().map(|e| (format!("{{\"entry\":\"{e}\"}}"), 1)).collect()
    } else {
        entries
            .chunks(batch)
            .map(|c| (format!("{{\"entries\":[\"{}\"]}}", c.join("\",\"")), c.len() as u64))
            .collect()
    };
    // One client per thread: each its own keep-alive connection.
    let clients: Vec<Client> = (0..a.threads)
        .map(|_| {
            Client::with_timeouts(&node.api, Duration::from_secs(5), Duration::from_secs(30))
                .map(|c| c.with_retries(0))
        })
        .collect::<Result<_, _>>()?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let latencies: Mutex<Vec<f64>> = Mutex::new(Vec::with_capacity(bodies.len()));
    let refused: Mutex<HashMap<String, u64>> = Mutex::default();
    let accepted = std::sync::atomic::AtomicU64::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for client in &clients {
            s.spawn(|| {
                let mut mine = Vec::new();
                let mut refusals: HashMap<String, u64> = HashMap::new();
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((body, bids)) = bodies.get(k) else { break };
                    let sent = Instant::now();
                    // (accepted, refusals by code) of the request's bids.
                    let r = if batch == 1 {
                        client.submit_prepared(body).map(|_| (1, Vec::new()))
                    } else {
                        client.submit_many_prepared(body).map(|answer| {
                            let refused: Vec<String> = answer
                                .results
                                .into_iter()
                                .filter_map(|r| Some(r.error?.code))
                                .collect();
                            (bids - refused.len() as u64, refused)
                        })
                    };
                    mine.push(sent.elapsed().as_secs_f64() * 1e3);
                    match r {
                        Ok((ok, codes)) => {
                            accepted.fetch_add(ok, std::sync::atomic::Ordering::Relaxed);
                            for code in codes {
                                *refusals.entry(code).or_default() += 1;
                            }
                        }
                        Err(client::Error::Refused { code, .. }) => {
                            *refusals.entry(code).or_default() += bids
                        }
                        Err(e) => *refusals.entry(format!("transport: {e}")).or_default() += bids,
                    }
                }
                if let Ok(mut l) = latencies.lock() {
                    l.extend(mine);
                }
                if let Ok(mut m) = refused.lock() {
                    for (c, n) in refusals {
                        *m.entry(c).or_default() += n;
                    }
                }
            });
        }
    });
    let seconds = t0.elapsed().as_secs_f64();
    let mut lat = latencies.into_inner().map_err(|_| anyhow::anyhow!("lock"))?;
    lat.sort_unstable_by(f64::total_cmp);
    let pick = |p: f64| {
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat.get(i.min(lat.len().saturating_sub(1))).copied().unwrap_or(0.0)
    };
    let accepted = accepted.into_inner();
    let accepted_per_sec = accepted as f64 / seconds.max(1e-9);
    let report = SubmitReport {
        node: node.api.clone(),
        clients: a.threads,
        batch: a.batch,
        sent: entries.len() as u64,
        accepted,
        refused: refused.into_inner().map_err(|_| anyhow::anyhow!("lock"))?,
        seconds,
        accepted_per_sec,
        latency_ms: [pick(0.5), pick(0.99), lat.last().copied().unwrap_or(0.0)],
        ed25519_verify_per_sec: verify,
        ratio_to_ed25519: accepted_per_sec / verify,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "sent {} pre-signed bids to {} from {} keep-alive clients, {} per request, in {:.2} \
             s: {} accepted ({:.0} /s), refused {:?}",
            report.sent,
            report.node,
            report.clients,
            report.batch,
            report.seconds,
            report.accepted,
            report.accepted_per_sec,
            report.refused
        );
        println!(
            "request latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; raw ed25519 verify {:.0} /s \
             per core; accepted rate = {:.3} of it",
            report.latency_ms[0],
            report.latency_ms[1],
            report.latency_ms[2],
            verify,
            report.ratio_to_ed25519
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
