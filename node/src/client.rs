//! Client commands against a node's HTTP API: orders, cancels, transfers, terminations and
//! credential fetches are signed locally with `--key FILE`; the node only ever sees signatures.
//!
//! Exit codes: 0 done, 1 the node refused or could not be reached (its message is shown),
//! 2 bad input here (arguments, key file).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::now_ms;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use surplus_api::{BookSide, BookView, LeaseList, Submitted};
use surplus_client::{self as client, Client};
use surplus_contracts::{Lease, Tx};
use surplus_ledger::{parse_hex, Entry, Hash, PublicKey, SecretKey};
use surplus_market::{Bid, FillRule, Market, Offer, Order, SignedCancel, SignedOrder, HOUR_MS};

/// The API a client talks to unless told otherwise.
pub const DEFAULT_NODE: &str = "http://127.0.0.1:8080";
/// Environment variable naming the node's API.
pub const NODE_ENV: &str = "SURPLUS_NODE";

/// Where the node is and how to print.
#[derive(Debug, Args)]
pub struct Conn {
    /// The node's API (default: $SURPLUS_NODE, else http://127.0.0.1:8080).
    #[arg(long, value_name = "URL")]
    node: Option<String>,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
}

/// A key file that signs.
#[derive(Debug, Args)]
pub struct Signer {
    /// The key file that signs (`surplus key generate`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
}

/// Client commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Offer slots for sale (signed with the provider's key).
    Offer {
        /// The market, class@region.
        #[arg(long, value_name = "C@R")]
        market: String,
        /// Slots offered at once.
        #[arg(long)]
        slots: u32,
        /// Lowest price, units per slot-hour.
        #[arg(long)]
        reserve: u64,
        /// Hours from now during which the slots are available.
        #[arg(long, value_name = "H")]
        hours_window: u32,
        /// Shortest lease accepted, hours.
        #[arg(long, default_value_t = 1)]
        min_hours: u32,
        /// Minutes until the offer leaves the book (default: the window's end, at most 90 days).
        #[arg(long, value_name = "E")]
        expiry_minutes: Option<u64>,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        conn: Conn,
    },
    /// Bid for slots (signed with the buyer's key).
    Bid {
        /// The market, class@region.
        #[arg(long, value_name = "C@R")]
        market: String,
        /// Slots wanted at once.
        #[arg(long)]
        slots: u32,
        /// Lease duration, hours.
        #[arg(long)]
        hours: u32,
        /// Highest price, units per slot-hour.
        #[arg(long)]
        limit: u64,
        /// The lease must start within this many hours from now.
        #[arg(long, value_name = "W", default_value_t = 1)]
        start_within_hours: u32,
        /// Every slot or none (default: any number of slots).
        #[arg(long)]
        all_or_none: bool,
        /// Minutes until the bid leaves the book (default: the end of the start window).
        #[arg(long, value_name = "E")]
        expiry_minutes: Option<u64>,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        conn: Conn,
    },
    /// Cancel one of your resting orders.
    Cancel {
        /// The order id (hex).
        order_id: String,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a market's resting book.
    Book {
        /// The market, class@region.
        #[arg(long, value_name = "C@R")]
        market: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// List leases where an account is buyer or provider (all leases without one).
    Leases {
        /// The account (hex key).
        #[arg(long, value_name = "KEY", conflicts_with = "key")]
        account: Option<String>,
        /// The account of this key file.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Most leases listed (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show an account's balance and sequence number.
    Balance {
        /// The account (hex key).
        #[arg(value_name = "KEY", conflicts_with = "key", required_unless_present = "key")]
        account: Option<String>,
        /// The account of this key file.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Move credits to another account.
    Transfer {
        /// The recipient (hex key).
        #[arg(long, value_name = "KEY")]
        to: String,
        /// Units.
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show the node's status: height, head hash, peers, validator or not, mempool size.
    Status {
        #[command(flatten)]
        conn: Conn,
    },
    /// Work with one of your leases.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// End a lease now (as its buyer or its provider).
    Terminate {
        /// The lease id (hex).
        lease_id: String,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        conn: Conn,
    },
}

/// `surplus lease …`.
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Fetch the lease's credential from the provider's node by signing its challenge with the
    /// buyer's key; prints the token (base64) or writes it to --out.
    Credential {
        /// The lease id (hex).
        lease_id: String,
        /// Where to write the token (created with mode 0600; refuses to overwrite).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        conn: Conn,
    },
    /// Get an SSH certificate for the lease: fetches its credential with the buyer's key,
    /// exchanges it at the provider's node (--node) for an OpenSSH user certificate of
    /// --identity's public key, writes it beside it (FILE-cert.pub) and prints the ssh command.
    Ssh {
        /// The lease id (hex).
        lease_id: String,
        /// The SSH private key to log in with (its public key FILE.pub is certified).
        #[arg(long, value_name = "FILE")]
        identity: PathBuf,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Runs a client command. A failure on the node's side, or on the way to it, exits 1 with
/// the node's message; bad input here exits 2.
pub fn run(cmd: ClientCommand) -> Result<ExitCode> {
    exit_code(execute(cmd))
}

/// The exit code of a client command's result: 0 done; 1, with the node's message, for a
/// failure on the node's side or on the way to it; bad input here is the error returned (2).
pub(crate) fn exit_code(result: Result<()>) -> Result<ExitCode> {
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => match e.downcast_ref::<client::Error>() {
            Some(remote) if !matches!(remote, client::Error::BadUrl(_)) => {
                eprintln!("error: {remote}");
                Ok(ExitCode::from(1))
            }
            _ => Err(e),
        },
    }
}

/// How many times a transaction is signed afresh when its sequence number was taken meanwhile.
const SEQUENCE_TRIES: u64 = 5;

/// The node's API, and how to print its answers.
pub(crate) struct Api {
    pub(crate) node: Client,
    json: bool,
}

impl Api {
    pub(crate) fn new(conn: &Conn) -> Result<Self> {
        let url = conn
            .node
            .clone()
            .or_else(|| std::env::var(NODE_ENV).ok().filter(|v| !v.trim().is_empty()))
            .unwrap_or_else(|| DEFAULT_NODE.to_owned());
        let node = Client::new(&url).map_err(|e| anyhow!("--node: {e}"))?;
        Ok(Self { node, json: conn.json })
    }

    fn chain_id(&self) -> Result<String> {
        Ok(self.node.status()?.chain_id)
    }

    fn submit(&self, entry: &Entry) -> Result<Hash> {
        Ok(self.node.submit(entry)?)
    }

    /// Signs `tx` with `key` at the account's next sequence number and submits it; the entry's
    /// id. The key may have another signer (a node signs its own transactions with the key its
    /// operator also uses here): when the number was used meanwhile (`bad_sequence`, so this
    /// entry was not taken) it reads the account again and signs anew, up to
    /// [`SEQUENCE_TRIES`] times, a block interval or so apart.
    pub(crate) fn sign_and_submit(&self, key: &SecretKey, tx: Tx) -> Result<Hash> {
        let chain = self.chain_id()?;
        let mut tries = 0;
        loop {
            tries += 1;
            let tx = tx.clone().with_seq(self.node.account(&key.public())?.seq);
            match self.node.submit(&Entry::signed(&chain, tx.kind(), tx.encode(), key)) {
                Err(e) if e.code() == Some("bad_sequence") && tries < SEQUENCE_TRIES => {
                    std::thread::sleep(std::time::Duration::from_millis(300 * tries));
                }
                other => return Ok(other?),
            }
        }
    }

    /// Prints the API's answer as JSON with `--json`, otherwise `human`.
    pub(crate) fn print<T: serde::Serialize>(
        &self,
        v: &T,
        human: impl FnOnce() -> String,
    ) -> Result<()> {
        let text = if self.json { serde_json::to_string_pretty(v)? } else { human() };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", text.trim_end())?;
        Ok(())
    }
}

fn market(s: &str) -> Result<Market> {
    s.parse().map_err(|e: String| anyhow::anyhow!("--market: {e}"))
}

pub(crate) fn key_arg(s: &str, what: &str) -> Result<PublicKey> {
    parse_hex::<32>(s, what).map(PublicKey).map_err(|e| anyhow::anyhow!(e))
}

pub(crate) fn hash_arg(s: &str, what: &str) -> Result<Hash> {
    parse_hex::<32>(s, what).map_err(|e| anyhow::anyhow!(e))
}

fn read_key(signer: &Signer) -> Result<SecretKey> {
    crate::keyfile::read_key(&signer.key)
}

fn nonce() -> Result<u64> {
    getrandom::u64().map_err(|e| anyhow::anyhow!("no randomness for the order's nonce: {e}"))
}

fn minutes(m: u64) -> Result<u64> {
    m.checked_mul(60_000).context("--expiry-minutes is too large")
}

fn hours_from_now(ms: u64, now: u64) -> String {
    let h = (ms as f64 - now as f64) / HOUR_MS as f64;
    if h >= 0.0 {
        format!("in {h:.1} h")
    } else {
        format!("{:.1} h ago", -h)
    }
}

fn execute(cmd: ClientCommand) -> Result<()> {
    match cmd {
        ClientCommand::Offer {
            market: m,
            slots,
            reserve,
            hours_window,
            min_hours,
            expiry_minutes,
            signer,
            conn,
        } => {
            let m = market(&m)?;
            if slots == 0 || hours_window == 0 {
                bail!("--slots and --hours-window must be at least 1");
            }
            if min_hours > hours_window {
                bail!("--min-hours {min_hours} is longer than --hours-window {hours_window}");
            }
            let key = read_key(&signer)?;
            let api = Api::new(&conn)?;
            let now = now_ms();
            let until_ms = now + u64::from(hours_window) * HOUR_MS;
            let expiry_ms = match expiry_minutes {
                Some(e) => now.saturating_add(minutes(e)?),
                None => until_ms.min(now + surplus_market::MAX_EXPIRY_HORIZON_MS),
            };
            let order = Order::Offer(Offer {
                market: m.clone(),
                slots,
                from_ms: now,
                until_ms,
                reserve,
                min_hours,
                expiry_ms,
                nonce: nonce()?,
            });
            let (entry, _) = SignedOrder::sign(&api.chain_id()?, order, &key);
            let id = api.submit(&entry)?;
            api.print(&Submitted { id }, || {
                format!(
                    "offer {} submitted: {slots} slots of {m} at {reserve} units/slot-hour or \
                     more, for {hours_window} h",
                    hex::encode(id)
                )
            })
        }
        ClientCommand::Bid {
            market: m,
            slots,
            hours,
            limit,
            start_within_hours,
            all_or_none,
            expiry_minutes,
            signer,
            conn,
        } => {
            let m = market(&m)?;
            if slots == 0 || hours == 0 || limit == 0 {
                bail!("--slots, --hours and --limit must be at least 1");
            }
            if start_within_hours == 0 {
                bail!("--start-within-hours must be at least 1");
            }
            let key = read_key(&signer)?;
            let api = Api::new(&conn)?;
            let now = now_ms();
            let latest_ms = now + u64::from(start_within_hours) * HOUR_MS;
            let expiry_ms = match expiry_minutes {
                Some(e) => now.saturating_add(minutes(e)?),
                None => latest_ms,
            };
            let order = Order::Bid(Bid {
                market: m.clone(),
                slots,
                hours,
                limit,
                earliest_ms: now,
                latest_ms,
                fill: if all_or_none { FillRule::AllOrNone } else { FillRule::AtLeast(1) },
                expiry_ms,
                nonce: nonce()?,
            });
            let (entry, _) = SignedOrder::sign(&api.chain_id()?, order, &key);
            let id = api.submit(&entry)?;
            api.print(&Submitted { id }, || {
                format!(
                    "bid {} submitted: {slots} slots of {m} for {hours} h at up to {limit} \
                     units/slot-hour",
                    hex::encode(id)
                )
            })
        }
        ClientCommand::Cancel { order_id, signer, conn } => {
            let order = hash_arg(&order_id, "ORDER_ID")?;
            let key = read_key(&signer)?;
            let api = Api::new(&conn)?;
            let (entry, _) = SignedCancel::sign(&api.chain_id()?, order, &key);
            let id = api.submit(&entry)?;
            api.print(&Submitted { id }, || {
                format!("cancel {} of order {} submitted", hex::encode(id), hex::encode(order))
            })
        }
        ClientCommand::Book { market: m, conn } => {
            let m = market(&m)?;
            let api = Api::new(&conn)?;
            let book = api.node.book(&m, None)?;
            api.print(&book, || human_book(&book))
        }
        ClientCommand::Leases { account, key, limit, conn } => {
            let account = match (account, key) {
                (Some(a), _) => Some(key_arg(&a, "--account")?),
                (None, Some(k)) => Some(crate::keyfile::read_key(&k)?.public()),
                (None, None) => None,
            };
            let api = Api::new(&conn)?;
            let list = api.node.leases(account.as_ref(), Some(limit))?;
            api.print(&list, || human_leases(&list, account.as_ref()))
        }
        ClientCommand::Balance { account, key, conn } => {
            let account = match (account, key) {
                (Some(a), _) => key_arg(&a, "KEY")?,
                (None, Some(k)) => crate::keyfile::read_key(&k)?.public(),
                (None, None) => bail!("name the account: KEY or --key FILE"),
            };
            let api = Api::new(&conn)?;
            let a = api.node.account(&account)?;
            api.print(&a, || format!("{}  balance {}  seq {}", a.account, a.balance, a.seq))
        }
        ClientCommand::Transfer { to, amount, signer, conn } => {
            let to = key_arg(&to, "--to")?;
            if amount == 0 {
                bail!("--amount must be at least 1 unit");
            }
            let key = read_key(&signer)?;
            if key.public() == to {
                bail!("--to is the key's own account; a transfer must go to another account");
            }
            let api = Api::new(&conn)?;
            let chain = api.chain_id()?;
            let seq = api.node.account(&key.public())?.seq;
            let tx = Tx::Transfer { to, amount, seq };
            let id = api.submit(&Entry::signed(&chain, tx.kind(), tx.encode(), &key))?;
            api.print(&Submitted { id }, || {
                format!(
                    "transfer {} submitted: {amount} units to {to} (seq {seq})",
                    hex::encode(id)
                )
            })
        }
        ClientCommand::Status { conn } => {
            let api = Api::new(&conn)?;
            let s = api.node.status()?;
            api.print(&s, || {
                format!(
                    "node       {}\nchain      {}\nkey        {}\nheight     {}\nhead       {}\n\
                     peers      {}\nvalidator  {}\nmempool    {}\nsynced     {}",
                    s.node,
                    s.chain_id,
                    s.public_key,
                    s.height,
                    hex::encode(s.head_hash),
                    s.peers,
                    if s.validator { "yes" } else { "no" },
                    s.mempool,
                    if s.synced { "yes" } else { "no" },
                )
            })
        }
        ClientCommand::Lease(LeaseCommand::Ssh { lease_id, identity, signer, conn }) => {
            let lease = hash_arg(&lease_id, "LEASE_ID")?;
            let public = PathBuf::from(format!("{}.pub", identity.display()));
            let public_key = std::fs::read_to_string(&public).with_context(|| {
                format!(
                    "cannot read {} (make a key with `ssh-keygen -t ed25519 -f {}`)",
                    public.display(),
                    identity.display()
                )
            })?;
            let key = read_key(&signer)?;
            let api = Api::new(&conn)?;
            let token = api.node.fetch_credential(&lease, &key)?;
            let cert = api.node.ssh_certificate(&lease, &token.token, public_key.trim())?;
            let cert_path = PathBuf::from(format!("{}-cert.pub", identity.display()));
            std::fs::write(&cert_path, format!("{}\n", cert.certificate))
                .with_context(|| format!("cannot write {}", cert_path.display()))?;
            let access = cert.access.clone().unwrap_or_default();
            let host = access["host"].as_str().unwrap_or("HOST").to_owned();
            let user = access["user"].as_str().unwrap_or(&cert.principal).to_owned();
            let port = access["port"].as_u64().map_or(String::new(), |p| format!(" -p {p}"));
            api.print(&cert, || {
                format!(
                    "certificate {} for {} written to {} (valid until {} ms)\nssh -i {} -o CertificateFile={}{port} {user}@{host}",
                    cert.serial,
                    cert.principal,
                    cert_path.display(),
                    cert.valid_before_ms,
                    identity.display(),
                    cert_path.display()
                )
            })
        }
        ClientCommand::Lease(LeaseCommand::Credential { lease_id, out, signer, conn }) => {
            let lease = hash_arg(&lease_id, "LEASE_ID")?;
            if let Some(o) = &out {
                if o.exists() {
                    bail!(
                        "{} exists; choose another --out (a token is never overwritten)",
                        o.display()
                    );
                }
            }
            let key = read_key(&signer)?;
            let api = Api::new(&conn)?;
            let token = api.node.fetch_credential(&lease, &key)?;
            match out {
                Some(path) => {
                    crate::keyfile::write_secret(&path, format!("{}\n", token.token).as_bytes())?;
                    api.print(&token, || format!("token written to {}", path.display()))
                }
                None => api.print(&token, || token.token.clone()),
            }
        }
        ClientCommand::Terminate { lease_id, signer, conn } => {
            let lease = hash_arg(&lease_id, "LEASE_ID")?;
            let key = read_key(&signer)?;
            let api = Api::new(&conn)?;
            let chain = api.chain_id()?;
            let seq = api.node.account(&key.public())?.seq;
            let tx = Tx::Terminate { lease, seq };
            let id = api.submit(&Entry::signed(&chain, tx.kind(), tx.encode(), &key))?;
            api.print(&Submitted { id }, || {
                format!("termination {} of lease {} submitted", hex::encode(id), hex::encode(lease))
            })
        }
    }
}

fn human_side(title: &str, side: &BookSide, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "{title}");
    if side.depth.is_empty() {
        let _ = writeln!(out, "  (none)");
        return;
    }
    let _ = writeln!(out, "  {:>12}  {:>10}  {:>6}", "price", "slots", "orders");
    for l in &side.depth {
        let _ = writeln!(out, "  {:>12}  {:>10}  {:>6}", l.price, l.slots, l.orders);
    }
}

fn human_book(b: &BookView) -> String {
    let mut out = format!(
        "{}  last price {}\n",
        b.market,
        b.last_price.map_or("none yet".to_owned(), |p| p.to_string())
    );
    human_side("offers (free slots)", &b.offers, &mut out);
    human_side("bids", &b.bids, &mut out);
    out
}

fn human_leases(list: &LeaseList, account: Option<&PublicKey>) -> String {
    use std::fmt::Write as _;
    if list.leases.is_empty() {
        return "no leases".into();
    }
    let now = now_ms();
    let mut out = format!(
        "{:<64}  {:<6}  {:<24}  {:>5}  {:>8}  {:<14}  {}\n",
        "lease", "role", "market", "slots", "price", "ends", "status"
    );
    for l in &list.leases {
        let _ = writeln!(out, "{}", lease_line(l, account, now));
    }
    if list.truncated {
        out.push_str("(more leases match; raise --limit)\n");
    }
    out
}

fn lease_line(l: &Lease, account: Option<&PublicKey>, now: u64) -> String {
    let role = match account {
        Some(a) if *a == l.fill.buyer => "buyer",
        Some(a) if *a == l.fill.provider => "seller",
        _ => "-",
    };
    let status = serde_json::to_value(l.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!(
        "{:<64}  {:<6}  {:<24}  {:>5}  {:>8}  {:<14}  {}",
        hex::encode(l.id),
        role,
        l.fill.market.to_string(),
        l.fill.slots,
        l.fill.price,
        hours_from_now(l.fill.end_ms, now),
        status
    )
}
