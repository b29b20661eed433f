//! `surplus node`: one datacenter's node — order gossip, consensus, the HTTP API, inventory
//! offers, provisioning and credentials, wired together.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use std::time::Duration;

use anyhow::{Context as _, Result};
use libp2p::PeerId;
use surplus_contracts::{provider, Code, Lease, LeaseStatus, State, Tx};
use surplus_ledger::{Entry, EntryKind, Hash, PublicKey, SecretKey, SignedCheckpoint};
use tokio::sync::Notify;

use crate::config::Config;
use crate::consensus::{self, Committed, Pool, Skip};
use crate::genesis::GenesisFile;
use crate::inventory::{self, Inventory};
use crate::journal::Journal;
use crate::mempool::Mempool;
use crate::owner::{Core, CoreHandle, FaucetRefusal};
use crate::p2p::{self, Gossip, Topic, Verdict};
use crate::provision::{Event, Hook, LeaseEvent, ProvisionLog};
use crate::receipts::Receipts;
use crate::turnwatch::{self, TurnWatch};
use crate::webdata::{fills_of, WebData};
use surplus_market::Fill;
use surplus_net::Env;
use surplus_web::Submission;

pub use crate::owner::Snapshot;

/// How long the consortium's status (`GET /api/v1/status/consortium`) is served as computed,
/// at one head: it visits every live lease.
const CONSORTIUM_EVERY_MS: u64 = 1_000;

/// What the HTTP API and the gossip validator share with the rest of the node.
pub struct Shared {
    /// The clock and the runtime the node was given.
    env: Env,
    chain_id: String,
    name: String,
    key: SecretKey,
    /// The one owner of the head, the state after it and the mempool (jobs on a bounded
    /// channel); its snapshot, replaced whole at each commit, is what readers read.
    core: CoreHandle,
    /// Entries whose signatures admission verified (blocks skip them).
    verified: Arc<surplus_contracts::VerifiedIds>,
    notify: Arc<Notify>,
    gossip: OnceLock<Gossip>,
    /// Entries to gossip, in order, for [`gossip_sender`] to group into messages.
    outbox: tokio::sync::mpsc::Sender<Outgoing>,
    /// Its receiving end, until [`gossip_sender`] takes it when the network is up.
    outbox_rx: Mutex<Option<tokio::sync::mpsc::Receiver<Outgoing>>>,
    /// `[p2p] max_message_bytes`: the largest message data the node publishes.
    max_message_bytes: usize,
    consensus: OnceLock<Arc<consensus::Status>>,
    /// The leases that ended and left the live state (set once the chain is open).
    history: OnceLock<consensus::history::LeaseHistory>,
    /// Whether this node is in the validator set in force (it follows set changes).
    validator: AtomicBool,
    provisioning: ProvisionLog,
    credentials_dir: PathBuf,
    /// Provisioning steps running now, by lease.
    inflight: Mutex<std::collections::HashSet<(Hash, Step)>>,
    /// Grants are signed one at a time (sequence numbers).
    grant_lock: tokio::sync::Mutex<()>,
    /// The end of validity of the credential held for each active lease (from its file under
    /// `credentials_dir`, read once).
    held: Mutex<std::collections::HashMap<Hash, u64>>,
    /// Entries acknowledged to API clients and not yet in a block, durable before the
    /// acknowledgement (`DIR/mempool`): a crash never loses what a client was told was accepted.
    journal: Journal,
    /// What became of each entry that left the mempool or reached a block.
    receipts: Arc<Receipts>,
    _journal_db: sled::Db,
    /// The validator set in force, in its order (replaced when a block changes it).
    validators: Mutex<Arc<Vec<PublicKey>>>,
    /// What the web API serves beyond the state (ledger view, history, events, metrics).
    web: Arc<WebData>,
    /// The inventory as loaded, for the operator page.
    inventory: Option<serde_json::Value>,
    /// The inventory's pools (none without an inventory): where leases run, what maintenance
    /// windows name.
    pools: Vec<inventory::Pool>,
    /// Leases are placed on pools one at a time (each placement counts the ones before it).
    placing: Mutex<()>,
    /// Where the datacenter's free capacity is read (`[capacity]`), if anywhere.
    capacity: Option<crate::capacity::Source>,
    /// Its last reading.
    reading: Mutex<crate::capacity::Reading>,
    /// A reading is under way.
    reading_now: AtomicBool,
    /// The classes short of capacity when last looked at (to log a change once).
    short_classes: Mutex<Vec<String>>,
    /// The SSH certificate authority of this provider's leases (`DIR/ssh`).
    ssh: Option<crate::ssh::Ca>,
    /// Markets whose offers the operator withdrew (`DIR/withdrawn.json`).
    withdrawn: Mutex<std::collections::BTreeSet<surplus_market::Market>>,
    /// The data directory.
    data_dir: PathBuf,
    /// Devnet only: the faucet key and the units it gives each new account.
    faucet: Option<(SecretKey, u64)>,
    /// Faucet transfers are signed one at a time (sequence numbers).
    faucet_lock: tokio::sync::Mutex<()>,
    /// Headers of recent blocks, by height (the API serves them).
    recent: Mutex<std::collections::BTreeMap<u64, surplus_web::RecentBlock>>,
    /// The consortium's status as last computed, with the head height and the second it was
    /// computed for: it visits every live lease, so it is computed at most once a second and
    /// head, whoever asks.
    consortium: Mutex<Option<((u64, u64), surplus_web::ConsortiumStatus)>>,
    /// The data directory's free space: below the threshold, API submissions are refused.
    disk: Arc<crate::disk::DiskWatch>,
    /// The clock's offset from the peers': far off, API submissions are refused.
    clock: crate::clock::ClockWatch,
    /// Opens the operator endpoints (`DIR/operator.token`).
    operator_token: String,
    /// How this node probes other providers' leases (`[supervision]`).
    supervision: crate::config::Supervision,
    /// What its probes saw, by interval and lease (the last few intervals).
    observations: Arc<Mutex<crate::supervise::Observations>>,
    /// Its probes' counters.
    probe_stats: Arc<crate::supervise::Stats>,
    /// The bond last found short of what the offers need (warned once per amount).
    bond_short: std::sync::atomic::AtomicU64,
    /// `[mempool] shed_after_ms`: API submissions are refused while the oldest entry a block
    /// could take has waited longer, or longer than two batch intervals if that is more
    /// (0: never).
    shed_after_ms: u64,
    /// `[mempool] shed_beyond_blocks`: API submissions are refused while more entries wait
    /// than this many of the next blocks take (0: never).
    shed_beyond_blocks: u32,
    /// `[consensus] batch_interval_ms`, when governance has set none.
    batch_interval_ms: u64,
    /// The most user entries the next proposal takes, as consensus last measured it (0: not
    /// yet): API submissions are shed while more wait.
    room: std::sync::atomic::AtomicUsize,
    /// User entries of each block decided and not yet applied here, by height: still in the
    /// mempool, but waiting for no block.
    unapplied: Mutex<std::collections::BTreeMap<u64, usize>>,
}

/// How long without a block (by the head's time) before a node counts its chain as stalled
/// rather than slow, and stops shedding for the age of its backlog.
pub const STALLED_MS: u64 = 5_000;

/// Jobs waiting for the core above which API submissions are shed (a quarter of its queue).
pub const SHED_QUEUE: usize = crate::owner::QUEUE / 4;

/// How long a node's faucet waits per rank ([`faucet_rank`]) before it funds an account: far
/// more than gossip takes between members.
const FAUCET_STAGGER: Duration = Duration::from_millis(300);

/// This node's turn (0 first) among the validators and itself to fund `account` from its
/// faucet: by blake3 of node key and account, so every node computes the same order.
fn faucet_rank(validators: &[PublicKey], me: &PublicKey, account: &PublicKey) -> u32 {
    let turn = |k: &PublicKey| {
        let mut h = blake3::Hasher::new();
        h.update(b"surplus-faucet-turn");
        h.update(&k.0);
        h.update(&account.0);
        *h.finalize().as_bytes()
    };
    let mine = turn(me);
    let ahead = validators.iter().filter(|v| *v != me).filter(|v| turn(v) < mine).count();
    u32::try_from(ahead).unwrap_or(u32::MAX)
}

/// Opens the journal of acknowledged entries (`DIR/journal.log`), moving into it what an
/// older node kept in the sled tree `old` (then emptied), and says what it found: damaged
/// records by count and offset, a torn last write.
fn open_journal(
    dir: &std::path::Path,
    old: &sled::Tree,
) -> Result<(Arc<crate::journal_log::LogDisk>, bool)> {
    use crate::journal::JournalDisk as _;
    let path = dir.join(crate::journal_log::FILE);
    let (disk, report) = crate::journal_log::LogDisk::open(&path)
        .with_context(|| format!("cannot open the journal {}", path.display()))?;
    let damaged = !report.damaged.is_empty() || report.torn_at.is_some();
    if damaged {
        let shown: Vec<u64> = report.damaged.iter().take(20).copied().collect();
        tracing::warn!(
            file = %path.display(),
            kept = report.kept,
            damaged = report.damaged.len(),
            at_bytes = ?shown,
            torn_at = ?report.torn_at,
            "the journal of acknowledged entries is damaged: the damaged records are skipped and \
             everything else is kept (the file is rewritten clean); the node asks its peers for \
             the entries they hold pending once its network is up"
        );
    }
    let moved = old.len();
    if moved > 0 {
        for (k, v) in old.iter().flatten() {
            disk.insert(&k, &v).map_err(anyhow::Error::msg)?;
        }
        disk.flush().map_err(anyhow::Error::msg)?;
        old.clear()?;
        old.flush()?;
        tracing::info!(moved, "moved the journal from DIR/mempool into {}", path.display());
    }
    Ok((Arc::new(disk), damaged))
}

/// Most entries, and bytes of them, a node sends a peer that asks for its pending entries.
const SERVE_PENDING: (usize, usize) = (10_000, 8 * 1024 * 1024);

/// What a node serves its peers on the snapshot protocol: its snapshots, and the entries its
/// mempool holds (each as its length, u32 big-endian, then `Entry::encode`), for a peer whose
/// journal was damaged.
struct Served {
    snapshots: consensus::statesync::LocalSnapshots,
    core: CoreHandle,
}

impl surplus_net::snapfetch::SnapshotSource for Served {
    fn latest(&self) -> Option<Vec<u8>> {
        self.snapshots.latest()
    }
    fn chunk(&self, height: u64, index: u32) -> Option<Vec<u8>> {
        self.snapshots.chunk(height, index)
    }
    fn pending(&self) -> Option<Vec<u8>> {
        let (n, bytes) = SERVE_PENDING;
        let entries = self.core.blocking_call(move |c| c.pending(n, bytes)).ok()?;
        let mut out = Vec::new();
        for e in entries {
            let encoded = e.encode();
            out.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
            out.extend_from_slice(&encoded);
        }
        Some(out)
    }
}

/// The entries of a peer's answer to a pending request, or why it cannot be read.
fn pending_entries(mut bytes: &[u8]) -> std::result::Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_at_checked(4).ok_or("a cut length")?;
        let len = u32::from_be_bytes(len.try_into().map_err(|_| "a cut length")?) as usize;
        let (entry, rest) = rest.split_at_checked(len).ok_or("a cut entry")?;
        out.push(Entry::decode(entry).map_err(|e| format!("an undecodable entry: {e}"))?);
        bytes = rest;
    }
    Ok(out)
}

/// After a damaged journal: asks up to three bootstrap peers for the entries they hold pending
/// and admits them (journaling the new ones), so that entries this node acknowledged and lost
/// with the damaged records are pending here again.
async fn recover_pending(shared: Arc<Shared>, peers: Vec<libp2p::Multiaddr>) {
    if peers.is_empty() {
        tracing::warn!("the journal was damaged and no [p2p] bootstrap peer is configured to ask");
        return;
    }
    // A key of its own: the node's key already has a connection to these peers.
    let key = libp2p::identity::Keypair::generate_ed25519();
    let connected = surplus_net::snapfetch::SnapshotClient::connect(key, peers, SYNC_CONNECT).await;
    let client = match connected {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot reach a peer to ask for pending entries");
            return;
        }
    };
    let (mut asked, mut received, mut admitted) = (0, 0, 0);
    for peer in client.peers().into_iter().take(3) {
        let answer = match client.pending(peer).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "a peer did not answer for its pending entries");
                continue;
            }
        };
        asked += 1;
        let entries = match pending_entries(&answer) {
            Ok(e) => e,
            Err(why) => {
                client.penalise(peer, &format!("pending entries: {why}"));
                continue;
            }
        };
        received += entries.len();
        for entry in entries {
            let bytes = entry.encode();
            if let Ok((id, true)) = shared.admit(entry).await {
                admitted += 1;
                if let Err(e) = shared.journal.insert_durable(&id, &bytes).await {
                    tracing::error!(error = %e, "cannot journal a recovered entry");
                }
            }
        }
    }
    client.close().await;
    tracing::info!(
        peers = asked,
        received,
        admitted,
        "asked peers for their pending entries after the journal's damage"
    );
}

/// How many recent headers the node keeps at hand.
const RECENT_HEADERS: usize = 10_000;

impl Shared {
    /// The validator set in force, in its order.
    fn validators(&self) -> Arc<Vec<PublicKey>> {
        self.validators.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn remember(&self, block: &surplus_ledger::Block, fills: &[(Hash, Fill)], committed_ms: u64) {
        let filled_bids = fills.iter().map(|(_, f)| hex::encode(f.bid)).collect();
        let set = self.validators();
        let signers = block
            .certificate
            .signatures
            .iter()
            .filter_map(|s| set.get(usize::from(s.validator)).copied())
            .collect();
        let summary = surplus_web::RecentBlock {
            header: block.header.clone(),
            committed_ms,
            filled_bids,
            entries: block.entries.len(),
            signers,
        };
        let mut r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        r.insert(block.header.height, summary);
        while r.len() > RECENT_HEADERS {
            r.pop_first();
        }
    }

    /// The head and state as of the last commit.
    fn snapshot(&self) -> Arc<Snapshot> {
        self.core.snapshot()
    }

    fn state(&self) -> Arc<State> {
        self.snapshot().state.clone()
    }

    /// Refills the recent-block window and the price history from the ledger's last blocks
    /// (a restart keeps what the API serves).
    fn prefill(&self, head: u64) {
        match self.web.last_blocks(head) {
            Ok(blocks) => {
                for b in &blocks {
                    self.remember(b, &fills_of(b), b.header.timestamp_ms);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the last blocks back"),
        }
    }

    fn height(&self) -> u64 {
        self.snapshot().head.height
    }

    /// Admits an entry into the mempool (from the API or the node itself): a job on the core.
    async fn admit(&self, entry: Entry) -> Result<(Hash, bool), surplus_web::Refusal> {
        let (kind, now, lease) = (entry.kind, self.env.now_ms(), lease_named(&entry));
        let r = self.core.call(move |c| c.admit(entry, now)).await;
        self.admitted(r.unwrap_or_else(|_| Err(stopping())), kind, now, lease)
    }

    /// Whether API submissions are taken now: not while the disk is low, nor while the clock
    /// is far from the peers'.
    fn submissions_allowed(&self) -> Result<(), surplus_web::Refusal> {
        self.disk.admit()?;
        if let Some(offset) = self.clock.refuses() {
            return Err(surplus_web::Refusal::new(
                Code::ClockSkew,
                format!(
                    "this node's clock is {} its peers' (more than {} s either way), so it cannot \
                     judge the times of orders; send to another node",
                    crate::clock::describe(offset),
                    crate::clock::REFUSE_MS / 1000
                ),
            ));
        }
        Ok(())
    }

    /// Sheds load before any work is spent on a submission: refuses it with `overloaded` while
    /// blocks come (a chain that made no block for [`STALLED_MS`] is stalled, not slow) and
    /// more entries wait for a block than `[mempool] shed_beyond_blocks` of the next blocks
    /// take (a new one would miss them), or the oldest entry a block could take has waited
    /// longer than `[mempool] shed_after_ms` or two batch intervals, whichever is longer (they
    /// do not keep up); or while more than [`SHED_QUEUE`] jobs wait for the core (admission
    /// itself does not keep up). Gossip and the node's own entries are not shed: the mempool's
    /// capacity bounds them.
    fn shed(&self) -> Result<(), surplus_web::Refusal> {
        if self.shed_after_ms == 0 && self.shed_beyond_blocks == 0 {
            return Ok(());
        }
        // Entries wait about a batch interval between blocks when all is well: never less
        // than two of the interval in force (governance may change it).
        let interval =
            self.state().consensus_params().map_or(self.batch_interval_ms, |c| c.batch_interval_ms);
        let limit = self.shed_after_ms.max(interval.saturating_mul(2));
        let now = self.env.now_ms();
        let age = self.core.backlog_age_ms(now);
        let queued = self.core.queued();
        // Blocks that come but do not keep up call for shedding; a chain that makes none (no
        // quorum) does not: what is accepted then commits when it is back, and the mempool's
        // capacity bounds it.
        let head_ms = self.core.snapshot().head.timestamp_ms;
        let live = now.saturating_sub(head_ms) <= limit.saturating_mul(2).max(STALLED_MS);
        let room =
            self.room.load(Ordering::Relaxed).saturating_mul(self.shed_beyond_blocks as usize);
        let pending = if room > 0 { self.waiting() } else { 0 };
        let why = if room > 0 && pending > room && live {
            let blocks = match self.shed_beyond_blocks {
                1 => "its next block takes".to_owned(),
                n => format!("its next {n} blocks take"),
            };
            format!("{pending} entries wait for a block, more than {blocks} ({room})")
        } else if self.shed_after_ms > 0 && age > limit && live {
            format!(
                "the oldest pending entry (a {}) has waited {age} ms for a block, more than this \
                 node allows ({limit} ms)",
                self.core.backlog_kind().name()
            )
        } else if queued > SHED_QUEUE {
            format!("{queued} admissions wait for the node's state, more than {SHED_QUEUE}")
        } else {
            return Ok(());
        };
        self.web.submissions_shed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(surplus_web::Refusal::new(
            Code::Overloaded,
            format!(
                "this node sheds load: {why}; retry after {} s, or send to another node",
                surplus_web::SHED_RETRY_AFTER_SECS
            ),
        ))
    }

    /// Entries in the mempool that wait for a block: those of a block decided and not yet
    /// applied are still there, and left out.
    fn waiting(&self) -> usize {
        let unapplied: usize = self.unapplied.lock().unwrap().values().sum();
        self.core.pending().saturating_sub(unapplied)
    }

    /// [`Shared::admit`] from the gossip validator's thread.
    fn admit_blocking(&self, entry: Entry) -> Result<(Hash, bool), surplus_web::Refusal> {
        let (kind, now, lease) = (entry.kind, self.env.now_ms(), lease_named(&entry));
        let r = self.core.blocking_call(move |c| c.admit(entry, now));
        self.admitted(r.unwrap_or_else(|_| Err(stopping())), kind, now, lease)
    }

    /// Counts an admission's outcome and wakes the proposer for a new entry.
    fn admitted(
        &self,
        r: Result<crate::owner::Admitted, surplus_web::Refusal>,
        kind: EntryKind,
        now: u64,
        lease: Option<Hash>,
    ) -> Result<(Hash, bool), surplus_web::Refusal> {
        match r {
            Ok(a) => {
                if a.fresh {
                    if kind == EntryKind::ORDER || kind == EntryKind::CANCEL {
                        self.web.admitted(kind, now);
                    }
                    self.notify.notify_waiters();
                }
                Ok((a.id, a.fresh))
            }
            Err(r) => {
                self.web.entries_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // A lease that ended has left the state, which knows it no more; the history
                // does, and the refusal says that it is no longer active.
                let ended = lease.and_then(|l| self.history.get()?.lease(&l)).is_some();
                if r.code == Code::UnknownLease && ended {
                    return Err((&surplus_contracts::Refusal::LeaseNotActive).into());
                }
                Err(r)
            }
        }
    }

    fn token_path(&self, lease: &Hash) -> PathBuf {
        self.credentials_dir.join(format!("{}.token", hex::encode(lease)))
    }

    /// The end of validity (ms) of the credential this node holds for `lease`, from the token
    /// file (read once, then remembered until the lease leaves the state).
    fn held_token(&self, lease: &Hash) -> Option<u64> {
        if let Some(t) = self.held.lock().unwrap_or_else(|e| e.into_inner()).get(lease) {
            return Some(*t);
        }
        let bytes = std::fs::read(self.token_path(lease)).ok()?;
        let scope = surplus_contracts::credential::inspect(&bytes, &self.key.public()).ok()?;
        let until = u64::try_from(scope.valid_until).unwrap_or(0);
        self.held.lock().unwrap_or_else(|e| e.into_inner()).insert(*lease, until);
        Some(until)
    }
}

/// The lease a transaction names (a transition or a grant), if it is one.
fn lease_named(entry: &Entry) -> Option<Hash> {
    match Tx::decode(entry.kind, &entry.payload).ok()? {
        Tx::Terminate { lease, .. } | Tx::Renew { lease, .. } | Tx::Grant { lease, .. } => {
            Some(lease)
        }
        _ => None,
    }
}

struct GossipCheck(Arc<Shared>);

impl p2p::Validator for GossipCheck {
    fn validate(&self, topic: Topic, data: &[u8], from: &PeerId) -> Verdict {
        match topic {
            Topic::Orders => {
                let entries = match surplus_net::gossip_batch::unpack(data) {
                    Ok(e) => e,
                    Err(e) => return Verdict::Reject(format!("undecodable entries: {e}")),
                };
                // Every entry is admitted on its own merits; the message is relayed if one was
                // new here and none was the sender's fault.
                let (mut fresh, mut fault) = (false, None);
                for entry in entries {
                    match self.0.admit_blocking(entry) {
                        Ok((_, new)) => fresh |= new,
                        // Not the sender's fault: we are full, or it raced a block (an order
                        // the ledger already holds arrives late or gossiped again; a grant of a
                        // lease our state does not hold yet).
                        Err(r) if r.code.is_circumstantial() => {}
                        Err(r) => {
                            tracing::debug!(%from, code = %r.code, "rejected gossip");
                            fault.get_or_insert(r.message);
                        }
                    }
                }
                match fault {
                    Some(why) => Verdict::Reject(why),
                    None if fresh => Verdict::Accept,
                    None => Verdict::Ignore,
                }
            }
            Topic::Checkpoints => match SignedCheckpoint::decode(data) {
                Err(e) => Verdict::Reject(format!("undecodable checkpoint: {e}")),
                Ok(c) => {
                    if !self.0.validators().contains(&c.signer) {
                        return Verdict::Reject("checkpoint not signed by a validator".into());
                    }
                    if c.verify().is_err() {
                        return Verdict::Reject("checkpoint signature does not verify".into());
                    }
                    let head = Some(self.0.snapshot().head.clone());
                    if let Some(h) = head.filter(|h| h.height == c.checkpoint.height) {
                        if h.merkle_root != c.checkpoint.root {
                            tracing::error!(height = h.height, signer = %c.signer,
                                "a validator signed a checkpoint that differs from our ledger");
                            return Verdict::Reject("conflicting checkpoint".into());
                        }
                    }
                    self.0.web.peer_checkpoint(&c);
                    Verdict::Accept
                }
            },
        }
    }
}

struct SharedPool(Arc<Shared>);

#[async_trait::async_trait]
impl Pool for SharedPool {
    async fn pending(&self, max_entries: usize, max_bytes: usize, skip: Skip) -> Vec<Entry> {
        let call =
            move |c: &mut Core| c.pending_except(max_entries, max_bytes, |id| skip.contains(id));
        self.0.core.call_first(call).await.unwrap_or_default()
    }
    fn has_work(&self) -> bool {
        self.0.core.pending() > 0
    }
    fn waiting(&self) -> usize {
        self.0.waiting()
    }
    fn notify(&self) -> Arc<Notify> {
        self.0.notify.clone()
    }
    fn room(&self, entries: usize) {
        self.0.room.store(entries, Ordering::Relaxed);
    }
    fn decided(&self, height: u64, entries: usize) {
        self.0.unapplied.lock().unwrap().insert(height, entries);
    }
    async fn refused(&self, refused: Vec<(Hash, surplus_contracts::Refusal)>) {
        let _ = self.0.core.call_first(move |c| c.refused(refused)).await;
    }
}

struct Api(Arc<Shared>);

#[async_trait::async_trait]
impl surplus_web::Node for Api {
    fn state(&self) -> Arc<State> {
        self.0.state()
    }

    fn status(&self) -> surplus_web::Status {
        let head = self.0.snapshot().head.clone();
        surplus_web::Status {
            chain_id: self.0.chain_id.clone(),
            node: self.0.name.clone(),
            public_key: self.0.key.public(),
            height: head.height,
            head_hash: head.hash(),
            peers: self.0.gossip.get().map_or(0, Gossip::peers),
            validator: self.0.validator.load(Ordering::Relaxed),
            mempool: self.0.core.pending(),
            synced: self.0.env.now_ms().saturating_sub(head.timestamp_ms) < 120_000,
            disk: Some(self.0.disk.status()),
            clock_offset_ms: self.0.clock.offset_ms(),
        }
    }

    async fn submit(&self, entry: Entry) -> Result<Hash, surplus_web::Refusal> {
        self.0.submissions_allowed()?;
        self.0.shed()?;
        let bytes = entry.encode();
        let kind = entry.kind;
        let (id, fresh) = self.0.admit(entry).await?;
        if fresh {
            self.0.web.accepted_from_api(kind, id, self.0.env.now_ms());
        }
        // A duplicate is journaled and gossiped too: the first copy may have come by gossip
        // (never journaled here), or its request may still be waiting for its flush. The work
        // runs in its own task so that a client hanging up cannot stop it half way.
        let shared = self.0.clone();
        let stored = self
            .0
            .env
            .spawn(async move {
                if let Err(e) = shared.journal.insert_durable(&id, &bytes).await {
                    tracing::error!(error = %e, "cannot journal an accepted entry");
                    if fresh {
                        let _ = shared.core.call(move |c| c.forget(&id)).await;
                    }
                    return false;
                }
                gossip_pending(&shared, &id, bytes).await;
                true
            })
            .await
            .unwrap_or(false);
        if !stored {
            return Err(surplus_web::Refusal::new(
                Code::Unavailable,
                "the node cannot store the entry durably right now; retry later",
            ));
        }
        Ok(id)
    }

    async fn submit_many(
        &self,
        entries: Vec<Entry>,
    ) -> Result<Vec<Result<Hash, surplus_web::Refusal>>, surplus_web::Refusal> {
        self.0.submissions_allowed()?;
        self.0.shed()?;
        // The signatures, all together over the cores and away from the task that owns the
        // state, which then runs every other check of each in one call.
        let chain = self.0.chain_id.clone();
        let (entries, signed) = self
            .0
            .env
            .spawn_blocking(move || {
                let good = good_signatures(&chain, &entries);
                (entries, good)
            })
            .await
            .map_err(|_| stopping())?;
        let now = self.0.env.now_ms();
        let about: Vec<(EntryKind, Option<Hash>, Vec<u8>)> =
            entries.iter().map(|e| (e.kind, lease_named(e), e.encode())).collect();
        let admitted = self
            .0
            .core
            .call(move |c| {
                entries
                    .into_iter()
                    .zip(signed)
                    // An entry whose signature failed goes through the whole check, so that its
                    // refusal is the one a single submission gets (it may fail an earlier rule).
                    .map(|(e, good)| if good { c.admit_verified(e, now) } else { c.admit(e, now) })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|_| stopping())?;
        let mut results = Vec::with_capacity(admitted.len());
        let mut taken: Vec<(Hash, bool, Vec<u8>)> = Vec::new();
        for (r, (kind, lease, bytes)) in admitted.into_iter().zip(about) {
            let result = self.0.admitted(r, kind, now, lease);
            if let Ok((id, fresh)) = &result {
                if *fresh {
                    self.0.web.accepted_from_api(kind, *id, now);
                }
                taken.push((*id, *fresh, bytes));
            }
            results.push(result.map(|(id, _)| id));
        }
        // As for one entry: journaled with one flush, then gossiped, in a task of its own.
        let shared = self.0.clone();
        let stored = self
            .0
            .env
            .spawn(async move {
                let items: Vec<(&[u8], &[u8])> =
                    taken.iter().map(|(id, _, b)| (&id[..], b.as_slice())).collect();
                if let Err(e) = shared.journal.insert_many_durable(&items).await {
                    tracing::error!(error = %e, "cannot journal accepted entries");
                    let fresh: Vec<Hash> =
                        taken.iter().filter(|(_, fresh, _)| *fresh).map(|(id, ..)| *id).collect();
                    let _ =
                        shared.core.call(move |c| fresh.iter().for_each(|id| c.forget(id))).await;
                    return false;
                }
                for (id, _, bytes) in taken {
                    gossip_pending(&shared, &id, bytes).await;
                }
                true
            })
            .await
            .unwrap_or(false);
        if !stored {
            let unavailable = || {
                surplus_web::Refusal::new(
                    Code::Unavailable,
                    "the node cannot store the entry durably right now; retry later",
                )
            };
            for r in &mut results {
                if r.is_ok() {
                    *r = Err(unavailable());
                }
            }
        }
        Ok(results)
    }

    async fn submission(&self, id: &Hash) -> Option<Submission> {
        let id = *id;
        match self.0.core.call(move |c| c.lookup(&id)).await.ok().flatten() {
            Some(pending) => Some(pending),
            None => self.0.receipts.get(&id),
        }
    }

    fn provisioning(&self, lease: &Hash) -> Option<serde_json::Value> {
        let p = self.0.provisioning.get(&hex::encode(lease)).ok().flatten()?;
        let mut v = serde_json::to_value(p).ok()?;
        // Lease ids are public; the access details are for the credential's holder only, who
        // gets them from the gateway.
        for step in ["start", "end"] {
            if let Some(o) = v.get_mut(step).and_then(|o| o.as_object_mut()) {
                o.remove("access");
            }
        }
        for m in v.get_mut("moves").and_then(|m| m.as_array_mut()).into_iter().flatten() {
            if let Some(o) = m.get_mut("outcome").and_then(|o| o.as_object_mut()) {
                o.remove("access");
            }
        }
        Some(v)
    }

    fn credential(&self, lease: &Hash) -> Option<Vec<u8>> {
        std::fs::read(self.0.token_path(lease)).ok()
    }

    fn access(&self, lease: &Hash) -> Option<serde_json::Value> {
        self.0.provisioning.get(&hex::encode(lease)).ok().flatten()?.access()
    }

    fn ended_lease(&self, lease: &Hash) -> Option<Lease> {
        self.0.history.get()?.lease(lease)
    }

    fn ended_leases(&self, account: Option<&PublicKey>, limit: usize) -> Vec<Lease> {
        let Some(h) = self.0.history.get() else { return Vec::new() };
        match account {
            Some(a) => h.of_account(a, limit),
            None => h.all(limit),
        }
    }

    fn ended_paid(&self, provider: &PublicKey) -> u64 {
        self.0.history.get().map_or(0, |h| h.paid(provider))
    }

    fn block(&self, height: u64) -> Option<surplus_web::RecentBlock> {
        self.0.recent.lock().ok()?.get(&height).cloned()
    }

    fn ledger_block(
        &self,
        height: u64,
    ) -> Result<Option<surplus_ledger::Block>, surplus_web::LedgerError> {
        if height > self.0.height() {
            return Ok(None);
        }
        self.0.web.read_ledger(height, |s| s.block(height)).map(Some)
    }

    fn ledger_entry(&self, index: u64) -> Result<Option<(u64, Entry)>, surplus_web::LedgerError> {
        let head = self.0.snapshot().head.clone();
        if index >= head.tree_size {
            return Ok(None);
        }
        self.0
            .web
            .read_ledger(head.height, |s| Ok((s.height_of_entry(index)?, s.entry(index)?)))
            .map(Some)
    }

    fn lease_proof(
        &self,
        lease: &Hash,
    ) -> Result<Option<surplus_ledger::bundle::ProofBundle>, surplus_web::LedgerError> {
        let live = self.0.state().lease(lease).map(|l| l.height);
        let Some(height) = live.or_else(|| self.ended_lease(lease).map(|l| l.height)) else {
            return Ok(None);
        };
        self.0.web.lease_proof(lease, height).map(Some)
    }

    fn checkpoints(&self) -> Vec<SignedCheckpoint> {
        self.0.web.checkpoints()
    }

    fn validator_set(
        &self,
        height: u64,
    ) -> Result<surplus_ledger::ValidatorSet, surplus_web::LedgerError> {
        self.0
            .web
            .with_ledger(height.saturating_sub(1), |s| {
                s.validators_at(height).ok_or(surplus_store::Error::Empty)
            })
            .map_err(surplus_web::LedgerError::Failed)
    }

    fn validator_history(
        &self,
    ) -> Result<Vec<(u64, surplus_ledger::ValidatorSet)>, surplus_web::LedgerError> {
        let head = self.0.height();
        self.0
            .web
            .with_ledger(head, |s| Ok(s.set_history()))
            .map_err(surplus_web::LedgerError::Failed)
    }

    async fn export(&self, fresh: bool) -> Result<(PathBuf, u64), surplus_web::LedgerError> {
        let base = self.0.web.with_ledger(0, |s| Ok(s.base()))?;
        if base > 0 {
            return Err(surplus_web::LedgerError::NotHeld(format!(
                "this node holds blocks from {base} on only (it prunes old blocks, or started \
                 from a snapshot): an export of the whole ledger comes from an archive node \
                 (`[storage] archive = true`)"
            )));
        }
        Ok(self.0.web.export(self.0.height(), fresh).await?)
    }

    fn price_history(
        &self,
        market: &surplus_market::Market,
        limit: usize,
    ) -> Vec<surplus_web::PricePoint> {
        self.0.web.price_history(market, limit)
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<surplus_web::Event> {
        self.0.web.subscribe()
    }

    fn metrics(&self) -> surplus_web::Metrics {
        let w = &self.0.web;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        surplus_web::Metrics {
            height: self.0.height(),
            blocks_committed: get(&w.blocks_committed),
            entries_committed: get(&w.entries_committed),
            orders_accepted: get(&w.orders_accepted),
            entries_refused: get(&w.entries_refused),
            submissions_shed: get(&w.submissions_shed),
            gossip_messages_sent: get(&w.gossip_messages_sent),
            gossip_entries_sent: get(&w.gossip_entries_sent),
            backlog_age_ms: self.0.core.backlog_age_ms(self.0.env.now_ms()),
            orders_per_second: w.orders_per_second(self.0.env.now_ms()),
            mempool: self.0.core.pending(),
            core_queue: self.0.core.queued(),
            commit_queue: self.0.consensus.get().map_or(0, |s| s.queued_commits()),
            consensus_restarts: self.0.consensus.get().map_or(0, |s| s.restarts()),
            block_signatures_skipped: self.0.verified.hits(),
            block_signatures_checked: self.0.verified.misses(),
            gossip_command_queue: self.0.gossip.get().map_or(0, |g| g.queues().commands),
            gossip_validation_queue: self.0.gossip.get().map_or(0, |g| g.queues().validation),
            peers: self.0.gossip.get().map_or(0, Gossip::peers),
            order_to_lease_ms: w.latency(),
            gossip: self.0.gossip.get().map_or_else(Default::default, |g| {
                let s = g.stats();
                surplus_web::GossipCounts {
                    accepted: s.accepted,
                    rejected: s.rejected,
                    ignored: s.ignored,
                    rate_limited: s.rate_limited,
                    oversized: s.oversized,
                    dropped_invalid: s.dropped.invalid,
                    dropped_self_origin: s.dropped.self_origin,
                    dropped_duplicate: s.dropped.duplicate,
                    dropped_unsubscribed_topic: s.dropped.unsubscribed_topic,
                    dropped_graylisted: s.dropped.graylisted,
                    send_dropped_queue_full: s.send_dropped.queue_full,
                    send_dropped_timeout: s.send_dropped.timeout,
                    disconnects_ping_failed: s.disconnects.ping_failed,
                    disconnects_no_subscription: s.disconnects.no_subscription,
                    disconnects_connection_limit: s.disconnects.connection_limit,
                }
            }),
            disk: Some(self.0.disk.status()),
            clock_offset_ms: self.0.clock.offset_ms(),
            capacity: capacity_view(&self.0),
            probes: probing(&self.0).then(|| self.0.probe_stats.view()),
        }
    }

    fn consortium(&self) -> surplus_web::ConsortiumStatus {
        let now_ms = self.0.env.now_ms();
        let head = self.0.snapshot().head.clone();
        let key = (head.height, now_ms / CONSORTIUM_EVERY_MS);
        if let Some((k, status)) = &*self.0.consortium.lock().unwrap_or_else(|e| e.into_inner()) {
            if *k == key {
                return status.clone();
            }
        }
        let recent: Vec<surplus_web::RecentBlock> = {
            let r = self.0.recent.lock().unwrap_or_else(|e| e.into_inner());
            r.values().rev().take(100).cloned().collect()
        };
        let status = crate::consortium::status(
            &self.0.state(),
            &head,
            &recent,
            self.0.history.get(),
            now_ms,
        );
        *self.0.consortium.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, status.clone()));
        status
    }

    async fn bond(
        &self,
        lock: bool,
        amount: u64,
    ) -> Result<surplus_web::BondSubmitted, surplus_web::Refusal> {
        let _one_at_a_time = self.0.grant_lock.lock().await;
        let (me, now) = (self.0.key.public(), self.0.env.now_ms());
        let make =
            move |seq| if lock { Tx::Bond { amount, seq } } else { Tx::Unbond { amount, seq } };
        let (entry, _) = self
            .0
            .core
            .call(move |c| c.sign_own(&me, make, now))
            .await
            .map_err(|_| stopping())??;
        self.0.notify.notify_waiters();
        let id = entry.id();
        journal_and_gossip(&self.0, entry).await;
        Ok(surplus_web::BondSubmitted {
            id,
            action: if lock { "lock" } else { "release" }.into(),
            amount,
            bond: self.0.state().account(&me).bond,
        })
    }

    fn operator_token(&self) -> Option<&str> {
        Some(&self.0.operator_token)
    }

    fn operator(&self) -> surplus_web::Operator {
        surplus_web::Operator {
            inventory: self.0.inventory.clone(),
            leased: self.0.web.leased(),
            peers: self.0.gossip.get().map_or_else(Vec::new, |g| {
                g.peer_list()
                    .into_iter()
                    .map(|p| surplus_web::Peer {
                        id: p.id.to_string(),
                        address: p.address.to_string(),
                        score: p.score,
                        key: p2p::peer_key(&p.id).map(PublicKey),
                        name: p.name,
                    })
                    .collect()
            }),
            placed: {
                let state = self.0.state();
                let me = self.0.key.public();
                state
                    .provided_by(&me)
                    .filter_map(|l| Some((l.id, self.0.provisioning.pool(&hex::encode(l.id))?)))
                    .collect()
            },
            capacity: capacity_view(&self.0),
            withdrawn: self
                .0
                .withdrawn
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect(),
        }
    }

    async fn set_offered(
        &self,
        market: surplus_market::Market,
        offered: bool,
    ) -> Result<Vec<surplus_market::Market>, surplus_web::Refusal> {
        let now: Vec<surplus_market::Market> = {
            let mut w = self.0.withdrawn.lock().unwrap_or_else(|e| e.into_inner());
            if offered {
                w.remove(&market);
            } else {
                w.insert(market.clone());
            }
            w.iter().cloned().collect()
        };
        let names: Vec<String> = now.iter().map(ToString::to_string).collect();
        let bytes = serde_json::to_vec_pretty(&names).unwrap_or_default();
        crate::config::write_atomic(&self.0.data_dir.join(WITHDRAWN_FILE), &bytes).map_err(
            |e| surplus_web::Refusal::new(Code::Internal, format!("cannot record it: {e}")),
        )?;
        tracing::info!(%market, offered, "the operator {} the market's offers", if offered { "restored" } else { "withdrew" });
        plan_inventory(&self.0, None).await;
        Ok(now)
    }

    async fn ssh_certificate(
        &self,
        lease: Hash,
        token_hash: Hash,
        public_key: String,
    ) -> Result<surplus_web::SshCertificate, surplus_web::Refusal> {
        let not_provider = |why: String| surplus_web::Refusal::new(Code::NotProvider, why);
        let Some(ca) = &self.0.ssh else {
            return Err(not_provider(
                "this node has no SSH certificate authority (see its log)".into(),
            ));
        };
        let state = self.0.state();
        let me = self.0.key.public();
        let Some(l) = state.lease(&lease) else {
            return Err(surplus_web::Refusal::new(
                Code::UnknownLease,
                "no live lease with this id",
            ));
        };
        if state.current_key(&l.fill.provider) != me {
            return Err(not_provider(format!(
                "this node is not the lease's provider ({}): ask the provider's node",
                l.fill.provider
            )));
        }
        let now_ms = self.0.env.now_ms();
        // Until the lease's end (a renewal's new credential gets a later one).
        let valid_before = l.fill.end_ms.div_ceil(1000);
        let signed = ca
            .issue(&lease, token_hash, &public_key, now_ms / 1000, valid_before)
            .map_err(|e| surplus_web::Refusal::new(Code::BadRequest, e))?;
        tracing::info!(lease = %hex::encode(lease), serial = signed.serial, principal = %signed.principal, "issued an SSH certificate");
        Ok(surplus_web::SshCertificate {
            certificate: signed.certificate,
            principal: signed.principal,
            serial: signed.serial,
            valid_after_ms: signed.valid_after * 1000,
            valid_before_ms: signed.valid_before * 1000,
            ca_public_key: ca.public_key(),
            access: self
                .0
                .provisioning
                .get(&hex::encode(lease))
                .ok()
                .flatten()
                .and_then(|p| p.access()),
        })
    }

    async fn maintenance(
        &self,
        m: surplus_web::OperatorMaintenance,
    ) -> Result<surplus_web::MaintenanceSubmitted, surplus_web::Refusal> {
        self.0.submissions_allowed()?;
        let bad = |msg: String| surplus_web::Refusal::new(Code::BadRequest, msg);
        let Some(pool) = self.0.pools.iter().find(|p| p.name() == m.pool) else {
            let names: Vec<String> = self.0.pools.iter().map(|p| p.name()).collect();
            return Err(bad(if names.is_empty() {
                "this node has no inventory: it has no pool to take out of the market".into()
            } else {
                format!(
                    "no pool {:?} in this node's inventory; its pools: {}",
                    m.pool,
                    names.join(", ")
                )
            }));
        };
        let state = self.0.state();
        let now = self.0.env.now_ms();
        let notice_ms = state.params.notice_ms;
        // The notices must reach a block a whole notice period before the start: the window's
        // block and the notices' come first.
        let lead = notice_ms.saturating_add(provider::NOTICE_MARGIN_MS);
        let earliest = now.saturating_add(lead);
        let start_ms = m.start_ms.unwrap_or(earliest);
        if start_ms < earliest && !m.emergency {
            return Err(bad(format!(
                "the window starts in {}: its notices must reach the ledger the consortium's \
                 notice period ({}) before it, so start it at least {} from now (the period and \
                 15 s for the entries to reach a block), or declare an emergency (leases that \
                 cannot move then end with the provider's penalty)",
                human_ms(start_ms.saturating_sub(now)),
                human_ms(notice_ms),
                human_ms(lead)
            )));
        }
        // An emergency may start now, not in the past.
        let start_ms = start_ms.max(now);
        let until_ms = m.until_ms.unwrap_or(0);
        if m.until_ms.is_some() && until_ms <= start_ms {
            return Err(bad("the window must end after it starts".into()));
        }
        let (me, market, name) = (self.0.key.public(), pool.market(), pool.name());
        let tx = {
            let (market, name, reason) = (market.clone(), name.clone(), m.reason.clone());
            move |seq| Tx::Maintenance {
                pool: name.clone(),
                market: market.clone(),
                start_ms,
                until_ms,
                reason: reason.clone(),
                seq,
            }
        };
        let _one_at_a_time = self.0.grant_lock.lock().await;
        let (entry, _) =
            self.0.core.call(move |c| c.sign_own(&me, tx, now)).await.map_err(|_| stopping())??;
        let id = entry.id();
        self.0.notify.notify_waiters();
        journal_and_gossip(&self.0, entry).await;
        tracing::warn!(pool = %name, start_ms, until_ms, reason = %m.reason, emergency = m.emergency, "maintenance window announced");
        Ok(surplus_web::MaintenanceSubmitted {
            id,
            pool: name,
            market,
            start_ms,
            until_ms,
            notice_ms,
        })
    }

    async fn maintenance_done(
        &self,
        pool: String,
    ) -> Result<surplus_web::MaintenanceSubmitted, surplus_web::Refusal> {
        self.0.submissions_allowed()?;
        let me = self.0.key.public();
        let state = self.0.state();
        let Some(w) = state.windows_of(&me).find(|w| w.pool == pool).cloned() else {
            let open: Vec<String> = state.windows_of(&me).map(|w| w.pool.clone()).collect();
            return Err(surplus_web::Refusal::new(
                Code::MaintenanceRefused,
                if open.is_empty() {
                    format!(
                        "pool {pool:?} has no open maintenance window (no pool of this node has)"
                    )
                } else {
                    format!(
                        "pool {pool:?} has no open maintenance window; open ones: {}",
                        open.join(", ")
                    )
                },
            ));
        };
        let now = self.0.env.now_ms();
        let _one_at_a_time = self.0.grant_lock.lock().await;
        let name = pool.clone();
        let (entry, _) = self
            .0
            .core
            .call(move |c| {
                c.sign_own(&me, move |seq| Tx::MaintenanceDone { pool: name.clone(), seq }, now)
            })
            .await
            .map_err(|_| stopping())??;
        let id = entry.id();
        self.0.notify.notify_waiters();
        journal_and_gossip(&self.0, entry).await;
        tracing::info!(%pool, "maintenance window ended: the pool is back on the market");
        Ok(surplus_web::MaintenanceSubmitted {
            id,
            pool,
            market: w.market,
            start_ms: 0,
            until_ms: 0,
            notice_ms: state.params.notice_ms,
        })
    }

    async fn faucet(
        &self,
        account: PublicKey,
    ) -> Result<surplus_web::FaucetGrant, surplus_web::Refusal> {
        use surplus_web::Refusal;
        let Some((key, amount)) = self.0.faucet.as_ref() else {
            return Err(Refusal::new(
                Code::FaucetDisabled,
                "this node has no faucet (devnet only)",
            ));
        };
        self.0.submissions_allowed()?;
        // Several nodes' faucets may be asked for one account at once. They take turns, in an
        // order every node computes alike from the account: a node waits its rank × the stagger,
        // and by then the gossip has brought the first one's transfer, which the core sees.
        let rank = faucet_rank(&self.0.validators(), &self.0.key.public(), &account);
        if rank > 0 {
            tokio::time::sleep(FAUCET_STAGGER * rank).await;
        }
        let _one_at_a_time = self.0.faucet_lock.lock().await;
        let (me, amount, now) = (key.public(), *amount, self.0.env.now_ms());
        let sent = self
            .0
            .core
            .call(move |c| c.faucet_transfer(&me, account, amount, now))
            .await
            .map_err(|_| stopping())?;
        let entry = match sent {
            Ok((entry, _)) => entry,
            Err(FaucetRefusal::NotNew) => return Err(Refusal::new(
                Code::FaucetSpent,
                "the faucet funds only new accounts, and this one already has credits or history",
            )),
            Err(FaucetRefusal::AlreadySent) => return Err(Refusal::new(
                Code::FaucetSpent,
                "the faucet already sent this account its credits; they arrive with the next block",
            )),
            Err(FaucetRefusal::Dry) => {
                return Err(Refusal::new(Code::FaucetSpent, "the faucet has run dry"))
            }
            Err(FaucetRefusal::Refused(r)) => return Err(r),
        };
        let id = entry.id();
        self.0.notify.notify_waiters();
        journal_and_gossip(&self.0, entry).await;
        Ok(surplus_web::FaucetGrant { account, amount, entry: id })
    }

    async fn vote(&self, proposal: Hash, yes: bool) -> Result<Hash, surplus_web::Refusal> {
        self.0.submissions_allowed()?;
        let me = self.0.key.public();
        if !self.0.state().is_validator(&me) {
            return Err(surplus_web::Refusal::new(
                Code::NotValidator,
                "this node is not a validator: only validators vote",
            ));
        }
        // The node's own key: the core numbers the vote after the node's pending grants.
        let _one_at_a_time = self.0.grant_lock.lock().await;
        let now = self.0.env.now_ms();
        let (entry, _) = self
            .0
            .core
            .call(move |c| c.sign_own(&me, |seq| Tx::GovVote { proposal, yes, seq }, now))
            .await
            .map_err(|_| stopping())??;
        let id = entry.id();
        self.0.notify.notify_waiters();
        journal_and_gossip(&self.0, entry).await;
        Ok(id)
    }

    async fn terminate_as_provider(
        &self,
        lease: Hash,
        reason: String,
    ) -> Result<Hash, surplus_web::Refusal> {
        self.0.submissions_allowed()?;
        let me = self.0.key.public();
        let state = self.0.state();
        let Some(l) = state.lease(&lease) else {
            if self.0.history.get().and_then(|h| h.lease(&lease)).is_some() {
                return Err((&surplus_contracts::Refusal::LeaseNotActive).into());
            }
            return Err(surplus_web::Refusal::new(
                Code::UnknownLease,
                format!("no live lease {} on this chain", hex::encode(lease)),
            ));
        };
        if state.current_key(&l.fill.provider) != me {
            return Err(surplus_web::Refusal::new(
                Code::NotEntitled,
                format!(
                    "lease {} is not this node's: its provider is {}",
                    hex::encode(lease),
                    l.fill.provider
                ),
            ));
        }
        // The node's own key: numbered after the node's pending grants and votes.
        let _one_at_a_time = self.0.grant_lock.lock().await;
        let now = self.0.env.now_ms();
        let (entry, _) = self
            .0
            .core
            .call(move |c| c.sign_own(&me, |seq| Tx::Terminate { lease, seq }, now))
            .await
            .map_err(|_| stopping())??;
        let id = entry.id();
        self.0.notify.notify_waiters();
        journal_and_gossip(&self.0, entry).await;
        let lease_hex = hex::encode(lease);
        tracing::warn!(lease = %lease_hex, %reason, "the operator ended a lease early");
        if let Err(e) = self.0.provisioning.note_termination(&lease_hex, &reason, now) {
            tracing::error!(lease = %lease_hex, error = %e, "cannot record the termination's reason");
        }
        Ok(id)
    }
}

/// Builds and runs one node from its data dir (made by `surplus init`):
/// `Builder::new(dir).run_until(stop).await`. The node reads the time and spawns its tasks
/// only through the [`Env`] it is given (the system clock and the current runtime unless
/// [`Builder::env`] says otherwise).
#[derive(Debug)]
pub struct Builder {
    data_dir: PathBuf,
    config: Option<PathBuf>,
    env: Option<Env>,
    sync_snapshot: bool,
}

impl Builder {
    /// A node over `data_dir` (node.key, config.toml, the ledger).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self { data_dir: data_dir.into(), config: None, env: None, sync_snapshot: false }
    }

    /// With `true`, a data dir without a ledger is first filled from a snapshot fetched from the
    /// bootstrap peers (state sync, `docs/snapshots.md`) instead of starting at genesis.
    pub fn sync_snapshot(mut self, yes: bool) -> Self {
        self.sync_snapshot = yes;
        self
    }

    /// Reads the config from `path` instead of `DATA_DIR/config.toml`.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config = Some(path.into());
        self
    }

    /// The clock and the runtime the node runs with.
    pub fn env(mut self, env: Env) -> Self {
        self.env = Some(env);
        self
    }

    /// Starts the node and runs it until `stop` resolves; then stops the API, the gossip and
    /// the engine, in that order. An error if it cannot start, or if it stops for another
    /// reason than a failed write to its data directory.
    ///
    /// When a write to the data directory fails (the disk is full: the ledger, the engine's
    /// WAL or another store cannot write), the node stops everything and lets go of every
    /// store, waits until the disk has `[disk] min_free_bytes` free (at least
    /// [`crate::disk::FULL_BELOW`]), and starts again in this process as a restart would:
    /// the ledger checked, the journal of acknowledged entries re-admitted, the chain caught
    /// up, the same ports bound. Meanwhile the HTTP API does not answer. Restarts are spaced
    /// out ([`RESTART_BACKOFF_MIN`], doubling to [`RESTART_BACKOFF_MAX`]), and after
    /// [`MAX_FAILED_RESTARTS`] restarts in a row that could not start the node the error is
    /// returned.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> Result<()> {
        self.run_with(stop, None).await
    }

    /// Like [`Builder::run_until`], and once the node serves (its API bound, its journal
    /// replayed) sends `ready` the API's address and the node as the API sees it, so that the
    /// process that runs it can also call it in-process ([`crate::solo`] does). The caller
    /// then holds the node, and its stores with it: a failed write ends the run with an error
    /// instead of a restart in process.
    pub async fn run_announcing(
        self,
        stop: impl Future<Output = ()>,
        ready: tokio::sync::oneshot::Sender<Ready>,
    ) -> Result<()> {
        self.run_with(stop, Some(ready)).await
    }

    async fn run_with(
        self,
        stop: impl Future<Output = ()>,
        ready: Option<tokio::sync::oneshot::Sender<Ready>>,
    ) -> Result<()> {
        let env = self.env.unwrap_or_else(Env::system);
        let config = self.config.unwrap_or_else(|| self.data_dir.join("config.toml"));
        // Whoever is sent `ready` holds the node: no restart can open its stores again.
        let restarts = ready.is_none();
        let mut stop = std::pin::pin!(stop);
        let first = run(
            self.data_dir.clone(),
            config.clone(),
            env.clone(),
            self.sync_snapshot,
            stop.as_mut(),
            ready,
        )
        .await;
        let mut failure = match first {
            Ok(()) => return Ok(()),
            Err(Failure::Storage(e)) if restarts => e,
            Err(f) => return Err(f.into_error()),
        };
        tracing::error!(
            error = %format!("{failure:#}"),
            "a write to the data directory failed: the node stopped, and starts again in this \
             process once the disk has room"
        );
        let mut backoff = RESTART_BACKOFF_MIN;
        let mut failed_restarts = 0u32;
        loop {
            // The config may have changed since; the next run reads it again anyway.
            let min_free = Config::load(&config)
                .map_or(crate::config::Disk::default().min_free_bytes, |c| c.disk.min_free_bytes);
            if !wait_for_space(&env, &self.data_dir, min_free, stop.as_mut()).await {
                return Ok(());
            }
            tokio::select! {
                _ = stop.as_mut() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
            tracing::info!("the disk has room: starting the node again in this process");
            let started_ms = env.now_ms();
            let again =
                run(self.data_dir.clone(), config.clone(), env.clone(), false, stop.as_mut(), None)
                    .await;
            match again {
                Ok(()) => return Ok(()),
                Err(Failure::Storage(e)) => {
                    failed_restarts = 0;
                    // A node that served a good while before this failure starts again soon.
                    if env.now_ms().saturating_sub(started_ms) >= BACKOFF_RESET_MS {
                        backoff = RESTART_BACKOFF_MIN;
                    }
                    failure = e;
                    tracing::error!(
                        error = %format!("{failure:#}"),
                        "a write to the data directory failed again: the node stopped, and \
                         starts again in this process once the disk has room"
                    );
                }
                Err(Failure::Start(e)) => {
                    failed_restarts += 1;
                    if failed_restarts >= MAX_FAILED_RESTARTS {
                        return Err(e.context(format!(
                            "the node could not start again after a failed write \
                             ({failed_restarts} attempts)"
                        )));
                    }
                    // What the last run held may not all be released yet (a port, a lock).
                    tracing::warn!(
                        error = %format!("{e:#}"),
                        attempt = failed_restarts,
                        of = MAX_FAILED_RESTARTS,
                        retry_in_ms = backoff.as_millis() as u64,
                        "the node could not start again; it tries again"
                    );
                }
                Err(Failure::Other(e)) => return Err(e),
            }
        }
    }
}

/// The first pause before the node starts again after a failed write; it doubles with each
/// attempt, to [`RESTART_BACKOFF_MAX`].
pub const RESTART_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The longest pause between two attempts to start the node again.
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Attempts in a row that cannot start the node again before it gives up (an error).
pub const MAX_FAILED_RESTARTS: u32 = 10;
/// A run that served this long before a failed write starts again after
/// [`RESTART_BACKOFF_MIN`] rather than the doubled pause, ms.
const BACKOFF_RESET_MS: u64 = 10 * 60_000;
/// How often free space is measured while the node waits for room.
const SPACE_CHECK: Duration = Duration::from_secs(1);

/// Waits until `dir`'s filesystem has `min_free_bytes` free (at least
/// [`crate::disk::FULL_BELOW`]), measuring every [`SPACE_CHECK`] and warning at most once per
/// [`crate::disk::WARN_EVERY_MS`]; `false` if `stop` resolved first.
async fn wait_for_space(
    env: &Env,
    dir: &std::path::Path,
    min_free_bytes: u64,
    mut stop: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> bool {
    let need = min_free_bytes.max(crate::disk::FULL_BELOW);
    let mut warned_ms: Option<u64> = None;
    loop {
        let path = dir.to_owned();
        let free = env
            .spawn_blocking(move || crate::disk::free_bytes(&path))
            .await
            .unwrap_or_else(|e| Err(format!("the disk measurement failed: {e}")));
        let now = env.now_ms();
        let due = warned_ms.is_none_or(|t| now.saturating_sub(t) >= crate::disk::WARN_EVERY_MS);
        match free {
            Ok(free) if free >= need => {
                tracing::info!(
                    free = %crate::disk::human(free),
                    need = %crate::disk::human(need),
                    "the data directory's disk has room again"
                );
                return true;
            }
            Ok(free) if due => {
                warned_ms = Some(now);
                tracing::warn!(
                    dir = %dir.display(),
                    free = %crate::disk::human(free),
                    need = %crate::disk::human(need),
                    "the node is stopped after a failed write and waits for room on the data \
                     directory's disk; free some space (the HTTP API does not answer meanwhile)"
                );
            }
            Err(e) if due => {
                warned_ms = Some(now);
                tracing::warn!(error = %e, "the node waits for room on its disk");
            }
            _ => {}
        }
        tokio::select! {
            _ = stop.as_mut() => return false,
            _ = tokio::time::sleep(SPACE_CHECK) => {}
        }
    }
}

/// A node that serves: what [`Builder::run_announcing`] sends once it is up.
pub struct Ready {
    /// The address the HTTP API is bound to.
    pub http: std::net::SocketAddr,
    /// The node as the HTTP API sees it.
    pub node: Arc<dyn surplus_web::Node>,
}

impl std::fmt::Debug for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ready").field("http", &self.http).finish_non_exhaustive()
    }
}

fn seconds(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// How long state sync waits for its first bootstrap peer.
const SYNC_CONNECT: Duration = Duration::from_secs(30);

/// Fills an empty data dir from a peer's snapshot (`--sync snapshot`); a data dir that holds a
/// ledger already is left as it is.
async fn state_sync(
    env: &Env,
    dir: &std::path::Path,
    config: &Config,
    key: &surplus_ledger::SecretKey,
    genesis: &surplus_ledger::Block,
) -> Result<()> {
    if !consensus::statesync::ledger_is_empty(dir)? {
        tracing::info!("--sync snapshot ignored: the data dir already holds a ledger");
        return Ok(());
    }
    let peers = config.p2p.bootstrap_addrs();
    anyhow::ensure!(
        !peers.is_empty(),
        "--sync snapshot fetches the state from the [p2p] bootstrap peers, and none is configured"
    );
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes(key.seed())
        .context("node key as a libp2p identity")?;
    tracing::info!(peers = peers.len(), "state sync: connecting to the bootstrap peers");
    let client = surplus_net::snapfetch::SnapshotClient::connect(keypair, peers, SYNC_CONNECT)
        .await
        .context("state sync")?;
    let last = std::sync::atomic::AtomicUsize::new(0);
    let synced = consensus::statesync::sync(&client, env, dir, genesis, &|p| {
        let tenth = p.done * 10 / p.total.max(1);
        if p.done == p.total || tenth > last.swap(tenth, std::sync::atomic::Ordering::Relaxed) {
            tracing::info!(
                height = p.height,
                done = p.done,
                total = p.total,
                "state sync: chunks checked"
            );
        }
    })
    .await
    .context("state sync failed (the data dir holds no ledger; run the same command again)")?;
    client.close().await;
    for (peer, why) in &synced.penalised {
        tracing::warn!(%peer, reason = %why, "state sync: refused a peer");
    }
    tracing::info!(
        height = synced.height,
        items = synced.items,
        chunks = synced.chunks,
        bytes = synced.bytes,
        sources = synced.sources,
        ms = synced.elapsed.as_millis() as u64,
        "state sync: the node starts from a snapshot"
    );
    Ok(())
}

/// Runs the node until `stop` resolves.
async fn run(
    dir: PathBuf,
    config_path: PathBuf,
    env: Env,
    sync_snapshot: bool,
    stop: impl Future<Output = ()>,
    ready: Option<tokio::sync::oneshot::Sender<Ready>>,
) -> Result<(), Failure> {
    // Up to the engine: a failure drops what was opened (no task holds any of it yet).
    let opened = async {
        let config = Config::load(&config_path)?;
        let key = crate::keyfile::read_key(&dir.join("node.key"))?;
        let genesis = GenesisFile::load(&config.genesis_path(&dir))?;
        let (gblock, gmaker) =
            genesis.block().context("the genesis file does not build a block")?;
        let chain_id = gblock.header.chain_id.clone();
        let validators = genesis.genesis().validators;
        let inventory = match config.inventory_path(&dir) {
            Some(p) => Some(Inventory::load(&p, &gmaker.state.params.catalogue)?),
            None => None,
        };
        let provisioning = ProvisionLog::open(&dir)?;
        // The journal holds only entries waiting for a block, and the receipts are read one at a
        // time: a small cache does.
        let journal_db = sled::Config::new()
            .path(dir.join("mempool"))
            .cache_capacity(config.storage.receipts_cache_bytes)
            .open()
            .with_context(|| format!("cannot open the mempool journal in {}", dir.display()))?;
        let (journal, journal_damaged) = open_journal(&dir, &journal_db.open_tree("accepted")?)?;
        let faucet = match config.faucet(&dir) {
            Some(_) if gblock.header.chain_id != crate::devnet_file::CHAIN_ID => anyhow::bail!(
                "{}: [faucet] is for devnets only (chain {:?}, not {:?}); remove the section",
                config_path.display(),
                gblock.header.chain_id,
                crate::devnet_file::CHAIN_ID
            ),
            Some((path, amount)) => {
                tracing::warn!(key = %path.display(), amount,
                "a faucet is configured: this node gives credits to any new account (devnet only)");
                let faucet_key = crate::keyfile::read_key(&path)?;
                anyhow::ensure!(
                    faucet_key.public() != key.public(),
                    "{}: [faucet] key must not be the node key",
                    config_path.display()
                );
                Some((faucet_key, amount))
            }
            None => None,
        };
        let credentials_dir = dir.join("credentials");
        std::fs::create_dir_all(&credentials_dir)
            .with_context(|| format!("cannot create {}", credentials_dir.display()))?;

        let c = &config.consensus;
        // Signatures verified on admission are not verified again in blocks.
        let verified = Arc::new(surplus_contracts::VerifiedIds::default());
        let settings = consensus::Settings {
            data_dir: dir.clone(),
            moniker: config.name.clone(),
            listen: config.consensus.listen_addr().context("consensus.listen")?,
            peers: config.consensus.peer_addrs(),
            timeouts: malachitebft_app_channel::app::types::core::LinearTimeouts {
                propose: seconds(c.timeout_propose_ms),
                propose_delta: seconds(c.timeout_propose_delta_ms),
                prevote: seconds(c.timeout_prevote_ms),
                prevote_delta: seconds(c.timeout_propose_delta_ms),
                precommit: seconds(c.timeout_precommit_ms),
                precommit_delta: seconds(c.timeout_propose_delta_ms),
                rebroadcast: seconds(c.timeout_rebroadcast_ms),
                max_timeout: Duration::from_secs(10),
            },
            batch_interval: seconds(c.batch_interval_ms),
            min_batch_interval: seconds(c.min_batch_interval_ms),
            idle_heartbeat: seconds(c.idle_heartbeat_ms),
            max_block_entries: c.max_block_entries as usize,
            max_block_bytes: c.max_block_bytes as usize,
            sync_status_interval: Duration::from_secs(1),
            storage: config.storage.settings(),
            env: env.clone(),
            verified: verified.clone(),
        };

        let receipts = Arc::new(
            Receipts::open(&journal_db, config.storage.receipts_keep)
                .with_context(|| format!("cannot open the receipts in {}", dir.display()))?,
        );
        let mut core = Core::new(
            gblock.header.clone(),
            Arc::new(gmaker.state.clone()),
            Mempool::new(config.mempool.capacity as usize, config.mempool.max_bytes as usize),
        )
        .with_verified(verified.clone());
        // The node signs grants with its key, and a devnet's faucet transfers with the faucet's:
        // the core owns both keys' sequence numbers.
        let own = std::iter::once(key.clone()).chain(faucet.as_ref().map(|(k, _)| k.clone()));
        core.own_keys(&chain_id, own.collect());
        let core = {
            let receipts = receipts.clone();
            crate::owner::spawn(core, &env, move |dropped| receipts.record(&dropped))
        };
        let outbox = tokio::sync::mpsc::channel(OUTBOX);
        let shared = Arc::new(Shared {
            env: env.clone(),
            chain_id: chain_id.clone(),
            name: config.name.clone(),
            key: key.clone(),
            core,
            verified,
            notify: Arc::new(Notify::new()),
            gossip: OnceLock::new(),
            outbox: outbox.0,
            outbox_rx: Mutex::new(Some(outbox.1)),
            max_message_bytes: config.p2p.max_message_bytes as usize,
            consensus: OnceLock::new(),
            history: OnceLock::new(),
            validator: AtomicBool::new(validators.contains(&key.public())),
            provisioning,
            credentials_dir,
            inflight: Mutex::new(Default::default()),
            grant_lock: tokio::sync::Mutex::new(()),
            held: Mutex::new(Default::default()),
            journal: Journal::new(journal),
            receipts,
            _journal_db: journal_db,
            validators: Mutex::new(Arc::new(validators)),
            web: Arc::new(WebData::new(dir.join("exports"))),
            inventory: inventory.as_ref().and_then(|i| serde_json::to_value(i).ok()),
            pools: inventory.as_ref().map(|i| i.pools.clone()).unwrap_or_default(),
            placing: Mutex::new(()),
            capacity: config.capacity.clone(),
            reading: Mutex::new(Default::default()),
            reading_now: AtomicBool::new(false),
            short_classes: Mutex::new(Vec::new()),
            withdrawn: Mutex::new(read_withdrawn(&dir)?),
            data_dir: dir.clone(),
            ssh: match crate::ssh::Ca::open(&dir) {
                Ok(ca) => Some(ca),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "no SSH certificate authority: buyers cannot exchange credentials for SSH certificates");
                    None
                }
            },
            faucet,
            faucet_lock: tokio::sync::Mutex::new(()),
            recent: Mutex::new(Default::default()),
            consortium: Mutex::new(None),
            disk: crate::disk::DiskWatch::start(&dir, &config.disk, &env),
            clock: crate::clock::ClockWatch::default(),
            operator_token: crate::operator_token::load_or_create(&dir)?,
            supervision: config.supervision.clone(),
            observations: Arc::new(Mutex::new(Default::default())),
            probe_stats: Default::default(),
            bond_short: std::sync::atomic::AtomicU64::new(0),
            shed_after_ms: config.mempool.shed_after_ms,
            shed_beyond_blocks: config.mempool.shed_beyond_blocks,
            room: Default::default(),
            unapplied: Default::default(),
            batch_interval_ms: config.consensus.batch_interval_ms,
        });

        if sync_snapshot {
            state_sync(&env, &dir, &config, &key, &gblock).await?;
        }
        let running = consensus::start(
            settings,
            key.seed(),
            (gblock, gmaker),
            Arc::new(SharedPool(shared.clone())),
        )
        .await?;
        Ok::<_, anyhow::Error>((config, key, chain_id, inventory, shared, running, journal_damaged))
    }
    .await;
    let (config, key, chain_id, inventory, shared, mut running, journal_damaged) =
        opened.map_err(Failure::Start)?;
    let _ = shared.history.set(running.history.clone());
    {
        let (head, state, now) = (running.head.clone(), running.state.clone(), env.now_ms());
        let _ = shared.core.call(move |c| c.commit(head, state, &[], now)).await;
    }
    // From here a failure stops the engine and the gossip before it returns: a next run in this
    // process binds the same ports and opens the same stores.
    let serving = async {
        let view = running.ledger.view().context("cannot open a read-only view of the ledger")?;
        shared.web.attach(view);
        shared.prefill(running.head.height);
        // Proofs are served against this node's checkpoint from the start, not from the next block.
        shared.web.sign_checkpoint(&running.head, &key);
        let _ = shared.consensus.set(running.status.clone());

        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(key.seed())
            .context("node key as a libp2p identity")?;
        let net = p2p::NetConfig {
            listen: config.p2p.listen_addrs(),
            bootstrap: config.p2p.bootstrap_addrs(),
            mdns: config.p2p.mdns,
            max_connections: config.p2p.max_connections,
            max_message_bytes: config.p2p.max_message_bytes as usize,
            peer_msgs_per_sec: config.p2p.peer_msgs_per_sec,
            peer_burst: config.p2p.peer_burst,
            subscription_grace: p2p::SUBSCRIPTION_GRACE,
            name: shared.name.clone(),
        };
        let snapshots: Arc<dyn surplus_net::snapfetch::SnapshotSource> = Arc::new(Served {
            snapshots: consensus::statesync::LocalSnapshots::new(&dir),
            core: shared.core.clone(),
        });
        let gossip = p2p::start_with(
            net,
            keypair,
            &chain_id,
            Arc::new(GossipCheck(shared.clone())),
            Some(snapshots),
        )
        .await
        .context("cannot start the order gossip network")?;
        let _ = shared.gossip.set(gossip);
        let outbox = shared.outbox_rx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(rx) = outbox {
            shared.env.spawn(gossip_sender(Arc::downgrade(&shared), rx));
        }
        if journal_damaged {
            shared.env.spawn(recover_pending(shared.clone(), config.p2p.bootstrap_addrs()));
        }

        let http_addr = config.http.listen_addr().context("http.listen")?;
        let (before, files) = crate::fds::raise_limit();
        let max_connections = crate::fds::http_connections(
            files,
            config.p2p.max_connections,
            config.http.max_connections,
        )
        .map_err(anyhow::Error::msg)?;
        tracing::info!(
            open_file_limit = files,
            raised_from = before,
            http_connections = max_connections,
            per_client_ip = config.http.max_connections_per_ip,
            "descriptors: HTTP gets what the reserve for the ledger, hooks and peers leaves"
        );
        let limits = surplus_web::Limits {
            max_body_bytes: config.http.max_body_bytes as usize,
            per_ip_per_sec: config.http.per_ip_per_sec,
            burst: config.http.per_ip_burst.max(1),
            max_connections,
            max_connections_per_ip: (config.http.max_connections_per_ip as usize)
                .min(max_connections),
            idle_timeout: Duration::from_secs(config.http.idle_timeout_secs.into()),
            ..surplus_web::Limits::default()
        };
        let metrics_addr = config.http.metrics_addr();
        let api = Arc::new(Api(shared.clone()));
        let (server, bound, metrics_bound) =
            surplus_web::serve_with_metrics(http_addr, metrics_addr, api, limits)
                .await
                .context("cannot start the HTTP API")?;
        if let Some(m) = metrics_bound {
            tracing::info!(metrics = %format!("http://{m}/metrics"), "metrics on their own address");
        }
        let server_handle = server.handle();
        let server_task = shared.env.spawn(server);
        Ok::<_, anyhow::Error>((bound, server_handle, server_task))
    }
    .await;
    let (bound, server_handle, server_task) = match serving {
        Ok(s) => s,
        Err(e) => {
            shut_down(shared, running, true).await;
            return Err(Failure::Start(e));
        }
    };
    tracing::info!(
        node = %config.name,
        chain = %chain_id,
        height = running.head.height,
        validator = shared.validator.load(Ordering::Relaxed),
        http = %format!("http://{bound}"),
        "node started"
    );
    println!("surplus node {} listening: http://{bound}", config.name);
    if let Some(g) = shared.gossip.get() {
        tracing::info!(peer_id = %g.local_peer_id(), listen = ?g.listen_addrs(), "order gossip up");
    }

    let hook = Hook::from_config(&config.provisioning);
    let me = key.public();
    if shared.capacity.is_some() {
        read_capacity(&shared).await;
    }
    plan_inventory(&shared, inventory.as_ref()).await;
    recover_receipts(&shared, &running.ledger, running.head.height);
    replay_journal(&shared).await;
    // Leases that started or ended while the node was down are provisioned now.
    reconcile_leases(&shared, &running.state, &hook, &me);
    {
        let (s, env) = (Arc::downgrade(&shared), shared.env.clone());
        env.spawn(async move { supervise(s).await });
    }
    if let Some(ready) = ready {
        let _ = ready.send(Ready { http: bound, node: Arc::new(Api(shared.clone())) });
    }

    let mut stop = std::pin::pin!(stop);
    let mut health = tokio::time::interval(Duration::from_secs(60));
    let mut again = tokio::time::interval(REGOSSIP_EVERY);
    let mut capacity_tick = tokio::time::interval(Duration::from_millis(
        shared.capacity.as_ref().map_or(3_600_000, |c| c.interval_ms),
    ));
    let turn_watch =
        |set: &[PublicKey]| set.iter().position(|v| *v == me).map(|i| TurnWatch::new(i, set.len()));
    let mut turns = turn_watch(&shared.validators());
    let mut ticks = 0u64;
    let failure = loop {
        tokio::select! {
            _ = &mut stop => break None,
            _ = health.tick() => log_health(&shared).await,
            _ = capacity_tick.tick(), if shared.capacity.is_some() => {
                if !shared.reading_now.swap(true, Ordering::AcqRel) {
                    let s = shared.clone();
                    let env = shared.env.clone();
                    env.spawn(async move {
                        read_capacity(&s).await;
                        plan_inventory(&s, None).await;
                        s.reading_now.store(false, Ordering::Release);
                    });
                }
            }
            _ = again.tick() => {
                ticks += 1;
                regossip(&shared, ticks.is_multiple_of(REGOSSIP_AGED_EVERY)).await;
                let now = shared.env.now_ms();
                // Without a mesh to ask (broadcast), the missed turns alone decide.
                let reach = running.status.cut_off() || !consensus::reach_is_known();
                if reach && turns.as_mut().is_some_and(|t| t.cut_off(now)) {
                    tracing::warn!(
                        "the consensus engine's peers take none of its messages: restarting it \
                         under a fresh peer id to reconnect"
                    );
                    if let Err(e) = running.reconnect().await {
                        break Some(e.context("cannot restart the consensus engine"));
                    }
                }
            }
            c = running.next_commit() => {
                let c = match c {
                    Ok(c) => c,
                    Err(e) => break Some(e),
                };
                running.status.took_commit();
                on_commit(&shared, &c, &hook, &me).await;
                if let Ok(Some((_, set))) = surplus_ledger::set_change(&c.block, 0) {
                    // The set in force from the next block: this node's role follows it, and
                    // the consensus engine, whose role is fixed when it starts, restarts in it.
                    let was = shared.validator.load(Ordering::Relaxed);
                    let now_in = set.validators.contains(&me);
                    *shared.validators.lock().unwrap_or_else(|e| e.into_inner()) =
                        Arc::new(set.validators.clone());
                    shared.validator.store(now_in, Ordering::Relaxed);
                    turns = turn_watch(&set.validators);
                    tracing::info!(
                        height = c.block.header.height,
                        validators = set.validators.len(),
                        this_node = now_in,
                        "the validator set changes from the next block"
                    );
                    if was != now_in {
                        tracing::info!(
                            "this node {} the validator set: restarting the consensus engine {}",
                            if now_in { "joins" } else { "leaves" },
                            if now_in { "as a validator" } else { "as a follower" }
                        );
                        if let Err(e) = running.reconnect().await {
                            break Some(e.context("cannot restart the consensus engine"));
                        }
                    }
                }
                plan_inventory(&shared, inventory.as_ref()).await;
                let h = &c.block.header;
                let now = shared.env.now_ms();
                let fresh = now.saturating_sub(h.timestamp_ms) < turnwatch::FRESH_MS
                    && shared.gossip.get().is_some_and(|g| g.peers() > 0);
                let proposer = shared.validators().iter().position(|v| *v == h.proposer);
                if turns.as_mut().is_some_and(|t| t.observe(h.height, proposer, fresh, now)) {
                    tracing::warn!(
                        height = h.height,
                        "another validator proposed each of this validator's last {} turns: its \
                         consensus messages reach no peer; restarting the consensus engine under \
                         a fresh peer id to reconnect",
                        turnwatch::MISSED_TURNS
                    );
                    if let Err(e) = running.reconnect().await {
                        break Some(e.context("cannot restart the consensus engine"));
                    }
                }
            }
        }
    };
    let failure = failure.map(|e| {
        if is_storage_failure(&e, &shared.disk) {
            Failure::Storage(e)
        } else {
            Failure::Other(e)
        }
    });
    tracing::info!("stopping");
    server_handle.stop(true).await;
    let _ = server_task.await;
    shut_down(shared, running, failure.is_some()).await;
    failure.map_or(Ok(()), Err)
}

/// Why one run of the node ended with an error: what [`Builder::run_until`] decides on.
#[derive(Debug)]
enum Failure {
    /// It could not start: the config, a key, a store, a port.
    Start(anyhow::Error),
    /// It ran, and a write to its data directory failed ([`is_storage_failure`]): it stopped,
    /// and can start again once the disk has room.
    Storage(anyhow::Error),
    /// It ran, and stopped for another reason.
    Other(anyhow::Error),
}

impl Failure {
    fn into_error(self) -> anyhow::Error {
        match self {
            Failure::Start(e) | Failure::Storage(e) | Failure::Other(e) => e,
        }
    }
}

/// Whether `e`, which stopped the node, is a failed write to its data directory: a storage
/// engine's error in its chain (the ledger store's, an I/O error of sled's) or an I/O error that
/// says the disk or the quota is full, found by type ([`consensus::Running::next_commit`] passes
/// the application's error on). The consensus engine's WAL gives no typed error when its write
/// fails (the engine just stops): so a stop while the disk is full (low at the last
/// measurement, or now below the threshold or below [`crate::disk::FULL_BELOW`] free) counts
/// too.
fn is_storage_failure(e: &anyhow::Error, disk: &crate::disk::DiskWatch) -> bool {
    use std::io::ErrorKind::{QuotaExceeded, StorageFull};
    use surplus_store::{BackendError, Error as StoreError};
    let typed = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| matches!(io.kind(), StorageFull | QuotaExceeded))
            || matches!(c.downcast_ref::<sled::Error>(), Some(sled::Error::Io(_)))
            || c.is::<BackendError>()
            || matches!(
                c.downcast_ref::<StoreError>(),
                Some(StoreError::Backend(_) | StoreError::Io { .. })
            )
    });
    typed || disk.status().low || disk.full_now()
}

/// Most the shutdown waits for the last holders of a stopped run's state to let go.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// Stops what a run started and lets go of it: the gossip (whose task holds the validator, and
/// so the shared state with the journal and receipts), then the engine and the application
/// with the ledger and its other stores. With `release`, then waits, a bounded while, until
/// nothing holds the shared state or the receipts (tasks that held them end on their own: a
/// provisioning hook, the core's task), so that a next run in this process can open the same
/// sled databases (sled locks its files, and keeps a failed write's error until it is
/// reopened).
async fn shut_down(shared: Arc<Shared>, running: consensus::Running, release: bool) {
    if let Some(g) = shared.gossip.get().cloned() {
        g.shutdown().await;
    }
    running.stop().await;
    if !release {
        return;
    }
    let (held, receipts) = (Arc::downgrade(&shared), Arc::downgrade(&shared.receipts));
    drop(shared);
    let mut waited = Duration::ZERO;
    while held.strong_count() + receipts.strong_count() > 0 {
        if waited >= RELEASE_WAIT {
            tracing::warn!(
                shared = held.strong_count(),
                receipts = receipts.strong_count(),
                "the stopped node's state is still held; its stores may not reopen at once"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
}

/// How often entries whose gossip reached no peer are published again, and pending entries
/// are looked at for [`regossip`].
const REGOSSIP_EVERY: Duration = Duration::from_secs(1);
/// Every how many ticks the mempool is scanned for entries due for [`regossip`] by age.
const REGOSSIP_AGED_EVERY: u64 = 10;
/// How long an entry waits in the mempool (since admitted or last gossiped) before it is
/// gossiped again; longer than gossip's duplicate window, which would drop it unsent.
const REGOSSIP_AGE_MS: u64 = 45_000;
/// Most entries gossiped again per round.
const REGOSSIP_MAX: usize = 1_000;

/// Gossips again the entries that have waited [`REGOSSIP_AGE_MS`] without a block taking them,
/// while this node is in step with the chain. An entry acknowledged while the node was cut off
/// from its peers reached none of them; this gets it to every proposer once the network is
/// back (found by the partition test).
///
/// Entries whose publication reached no peer at all (the node had just started, or had no
/// peer) are published again at each tick, as soon as a peer is there: an order acknowledged
/// just before a crash and replayed from the journal at restart would otherwise wait for this
/// node's own turn to propose (found by the crash loop).
async fn regossip(shared: &Arc<Shared>, aged: bool) {
    let Some(g) = shared.gossip.get() else { return };
    if g.peers() == 0 {
        return;
    }
    let unsent = shared.core.call(|c| c.take_unsent(REGOSSIP_MAX)).await.unwrap_or_default();
    if !unsent.is_empty() {
        tracing::info!(count = unsent.len(), "gossiping entries that reached no peer before");
        publish_entries(shared, unsent.iter().map(|e| (e.id(), e.encode())).collect()).await;
    }
    let now = shared.env.now_ms();
    let head_ms = shared.snapshot().head.timestamp_ms;
    if !aged || now.saturating_sub(head_ms) > 30_000 {
        return;
    }
    let due = shared
        .core
        .call(move |c| c.due_for_gossip(now, REGOSSIP_AGE_MS, REGOSSIP_MAX))
        .await
        .unwrap_or_default();
    if due.is_empty() {
        return;
    }
    tracing::info!(count = due.len(), "gossiping pending entries again");
    publish_entries(shared, due.iter().map(|e| (e.id(), e.encode())).collect()).await;
}

/// An entry to gossip: its id and encoding.
type Outgoing = (Hash, Vec<u8>);

/// Entries that may wait for [`gossip_sender`]; beyond, callers wait.
const OUTBOX: usize = 8_192;

/// Hands a pending entry to [`gossip_sender`]; without a network yet, marks it so that
/// [`regossip`] publishes it once peers are there.
async fn gossip_pending(shared: &Shared, id: &Hash, bytes: Vec<u8>) {
    if shared.gossip.get().is_some() && shared.outbox.send((*id, bytes)).await.is_ok() {
        return;
    }
    let id = *id;
    let _ = shared.core.call(move |c| c.mark_unsent(&id)).await;
}

/// After a publication, how long the next entries gather before they leave together.
const GOSSIP_GATHER: Duration = Duration::from_millis(20);

/// Publishes the entries handed to [`gossip_pending`] in as few messages as the limits allow
/// ([`surplus_net::gossip_batch`]): an entry that comes while the sender is idle leaves at once;
/// the ones that come within [`GOSSIP_GATHER`] after a publication leave together at its end.
/// Under load that is one publication per 20 ms, each entry delayed by at most that much.
///
/// It holds the node's state only while it publishes: once the node stops and lets go of it,
/// the outbox closes and the task ends, so that a restart in this process can open the stores
/// again (found by the full-disk test).
async fn gossip_sender(
    shared: std::sync::Weak<Shared>,
    mut rx: tokio::sync::mpsc::Receiver<Outgoing>,
) {
    while let Some(first) = rx.recv().await {
        let mut items = vec![first];
        while items.len() < 4 * surplus_net::gossip_batch::MAX_ENTRIES {
            match rx.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
        let Some(node) = shared.upgrade() else { return };
        publish_entries(&node, items).await;
        drop(node);
        tokio::time::sleep(GOSSIP_GATHER).await;
    }
}

/// Publishes entries on the orders topic, grouped into messages; marks those whose message
/// reached no peer so that [`regossip`] publishes them again once peers are there.
async fn publish_entries(shared: &Shared, items: Vec<Outgoing>) {
    let (messages, too_large) = surplus_net::gossip_batch::group(items, shared.max_message_bytes);
    if !too_large.is_empty() {
        // Admission refuses entries this large, so none should come; never retried.
        tracing::warn!(count = too_large.len(), "entries too large to gossip");
    }
    let mut unsent = Vec::new();
    for (ids, data) in messages {
        let published = match shared.gossip.get() {
            Some(g) => g.publish(Topic::Orders, data).await,
            None => Ok(p2p::Published::NoPeers),
        };
        match published {
            Ok(p2p::Published::NoPeers) => unsent.extend(ids),
            Ok(_) => shared.web.gossip_published(ids.len()),
            Err(e) => {
                tracing::warn!(error = %e, "could not gossip pending entries");
                unsent.extend(ids);
            }
        }
    }
    if !unsent.is_empty() {
        let _ = shared
            .core
            .call(move |c| {
                for id in &unsent {
                    c.mark_unsent(id);
                }
            })
            .await;
    }
}

/// Most blocks read back at start to recover receipts a crash lost.
const RECOVER_RECEIPTS_MAX: u64 = 10_000;

/// Records again the receipts of blocks the ledger holds but whose receipts a crash lost (they
/// are written after the block and not flushed on their own), from the ledger itself: at most
/// the last [`RECOVER_RECEIPTS_MAX`] blocks.
fn recover_receipts(shared: &Shared, ledger: &surplus_store::Store, head: u64) {
    let floor = head.saturating_sub(RECOVER_RECEIPTS_MAX) + 1;
    // A node that prunes, or started from a snapshot, holds no older body to read.
    let from =
        shared.receipts.height().map_or(floor, |h| h + 1).max(floor).max(1).max(ledger.base());
    if from > head {
        return;
    }
    let mut blocks = 0u64;
    for b in ledger.blocks(from) {
        let b = match b {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read blocks back for their receipts");
                return;
            }
        };
        let height = b.header.height;
        if height > head {
            break;
        }
        shared.receipts.record_block(height, &committed_receipts(&b));
        blocks += 1;
    }
    tracing::info!(from, head, blocks, "recorded the receipts of blocks from the ledger");
}

/// The receipts of a committed block: each signed entry, committed at its height.
fn committed_receipts(block: &surplus_ledger::Block) -> Vec<(Hash, Submission)> {
    let height = block.header.height;
    block
        .entries
        .iter()
        .filter(|e| matches!(e.auth, surplus_ledger::Auth::Signed { .. }))
        .map(|e| (e.id(), Submission::Committed { height }))
        .collect()
}

/// Re-admits and re-gossips the entries acknowledged before a stop or crash that no block holds
/// yet; those the ledger has since used (or that expired) are dropped from the journal.
async fn replay_journal(shared: &Arc<Shared>) {
    let journal = shared.journal.entries();
    if journal.is_empty() {
        return;
    }
    let now = shared.env.now_ms();
    let Ok(replayed) = shared.core.call(move |c| c.replay(journal, now)).await else { return };
    // Committed while the node was down (its receipt is back from the ledger), or no longer
    // valid: then the client learns why.
    let refused: Vec<_> = replayed
        .refused
        .into_iter()
        .filter(|(id, _)| !matches!(shared.receipts.get(id), Some(Submission::Committed { .. })))
        .collect();
    shared.receipts.record(&refused);
    for k in &replayed.remove {
        shared.journal.remove(k);
    }
    let (kept, dropped) = (replayed.kept.len(), replayed.remove.len());
    if kept > 0 {
        shared.notify.notify_waiters();
    }
    for (id, bytes) in replayed.kept {
        gossip_pending(shared, &id, bytes).await;
    }
    tracing::info!(kept, dropped, "replayed the journal of acknowledged entries");
}

/// Drops journal entries that are neither pending nor needed (expired or refused since).
async fn prune_journal(shared: &Shared) {
    let keys: Vec<Vec<u8>> = shared.journal.entries().into_iter().map(|(k, _)| k).collect();
    let stale = shared
        .core
        .call(move |c| {
            keys.into_iter()
                .filter(|k| <[u8; 32]>::try_from(&k[..]).map_or(true, |id| c.lookup(&id).is_none()))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
    for k in stale {
        shared.journal.remove(&k);
    }
}

/// One line a minute for the operator: height, round, mempool, gossip.
async fn log_health(shared: &Shared) {
    prune_journal(shared).await;
    let height = shared.height();
    let (round, invalid) = shared.consensus.get().map_or((0, 0), |s| s.round_and_invalid());
    let (pending, bytes) = (shared.core.pending(), shared.core.pending_bytes());
    let net = shared.gossip.get().map(|g| (g.peers(), g.stats()));
    tracing::info!(
        height,
        round,
        invalid_proposals = invalid,
        mempool = pending,
        mempool_bytes = bytes,
        core_queue = shared.core.queued(),
        journal_flushes = shared.journal.flushes(),
        peers = net.as_ref().map_or(0, |n| n.0),
        gossip = ?net.map(|n| n.1),
        "health"
    );
}

/// After a block: update the shared view, clean the mempool, provision leases that started or
/// ended on this node, and publish a checkpoint.
async fn on_commit(shared: &Arc<Shared>, c: &Committed, hook: &Hook, me: &PublicKey) {
    // The state before the block (the core's, until it takes this block below), for the
    // events of orders that left the book.
    let before =
        Some(shared.state()).filter(|s| s.height().saturating_add(1) == c.block.header.height);
    // The checkpoint first: a client that sees the new state or an event can get its proofs.
    let signed = shared.web.sign_checkpoint(&c.block.header, &shared.key);
    let header = &c.block.header;
    let own = header.proposer == shared.key.public();
    let late = c.synced || c.block.certificate.round > 0;
    match shared.clock.on_block(header.timestamp_ms, c.committed_ms, own, late) {
        crate::clock::Change::None => {}
        crate::clock::Change::Warn(offset) => tracing::warn!(
            offset_ms = offset,
            "this node's clock is {} its peers' (by the times of the blocks they propose): its \
             proposals or votes fail past 2 s, and past {} s it refuses submissions; set the \
             clock right (NTP; docs/node.md, Clock discipline)",
            crate::clock::describe(offset),
            crate::clock::REFUSE_MS / 1000
        ),
        crate::clock::Change::Recovered(offset) => {
            tracing::info!(offset_ms = offset, "this node's clock is back within 2 s of its peers'")
        }
    }
    let fills = fills_of(&c.block);
    shared.remember(&c.block, &fills, c.committed_ms);
    let ids: Vec<Hash> = c.block.entries.iter().map(Entry::id).collect();
    for id in &ids {
        shared.journal.remove(id);
    }
    // The receipts first: an entry is never neither pending nor committed to a reader.
    shared.receipts.record_block(c.block.header.height, &committed_receipts(&c.block));
    let (head, state, now) = (c.block.header.clone(), c.state.clone(), shared.env.now_ms());
    let resigned = shared
        .core
        .call_first(move |core| core.commit(head, state, &ids, now))
        .await
        .unwrap_or_default();
    // Its entries left the mempool with it (and any block before it is applied too).
    shared.unapplied.lock().unwrap().retain(|&h, _| h > c.block.header.height);
    for entry in resigned {
        tracing::info!(
            kind = entry.kind.name(),
            id = %hex::encode(entry.id()),
            "signed an own transaction again after a gap in its key's sequence numbers"
        );
        journal_and_gossip(shared, entry).await;
    }
    let leased_slots = reconcile_leases(shared, &c.state, hook, me);
    if let Some(ca) = &shared.ssh {
        let revoked = ca.revoke_stale(&c.state);
        if !revoked.is_empty() {
            tracing::info!(serials = ?revoked, "revoked SSH certificates of ended leases or revoked tokens");
        }
    }
    let changes = crate::webdata::BlockChanges {
        outcome: &c.outcome,
        before: before.as_deref(),
        ended: &c.ended,
    };
    shared.web.on_block(&c.block, &fills, &c.state, changes, leased_slots, shared.env.now_ms());
    // Every node signs its checkpoint (its proofs are served against it); validators gossip it.
    if shared.validator.load(Ordering::Relaxed) {
        if let Some(g) = shared.gossip.get() {
            if let Err(e) = g.publish(Topic::Checkpoints, signed.encode()).await {
                tracing::debug!(error = %e, "checkpoint not gossiped");
            }
        }
    }
}

/// Brings this provider's leases in step with the ledger: the duties
/// (`surplus_contracts::provider::duties`, from state rather than from edges, so a crash or a
/// catch-up never skips one) run as one task per lease and step. Returns the slots of this
/// provider's active leases (the operator's leased capacity).
fn reconcile_leases(shared: &Arc<Shared>, state: &Arc<State>, hook: &Hook, me: &PublicKey) -> u64 {
    let record = |id: &Hash| {
        let r = shared.provisioning.get(&hex::encode(id)).ok().flatten();
        let active = state.lease(id).is_some_and(|l| l.status == LeaseStatus::Active);
        let probe = r
            .as_ref()
            .and_then(|r| r.start.as_ref())
            .filter(|o| o.ok)
            .and_then(|o| o.access.as_ref()?.get("probe"))
            .and_then(|p| crate::provision::probe_target(p).ok());
        provider::Provisioned {
            started: r.as_ref().is_some_and(|r| r.start.is_some()),
            ended: r.as_ref().is_some_and(|r| r.end.is_some()),
            token_until_ms: if active { shared.held_token(id) } else { None },
            probe,
        }
    };
    // Tokens of leases that left the state are not looked at again.
    shared.held.lock().unwrap_or_else(|e| e.into_inner()).retain(|id, _| state.lease(id).is_some());
    let open: Vec<Hash> = shared
        .provisioning
        .open_leases()
        .iter()
        .filter_map(|id| surplus_ledger::parse_hex::<32>(id, "lease id").ok())
        .collect();
    let found = provider::duties(state, me, &record, &open);
    for duty in found.duties {
        let (id, step) = match duty {
            provider::Duty::Start(id) => (id, Step::Start),
            provider::Duty::Grant(id) => (id, Step::Grant),
            // Not while its start hook still runs.
            provider::Duty::End(id) if shared.busy(&id, Step::Start) => continue,
            provider::Duty::End(id) => (id, Step::End),
            provider::Duty::Probe(id) if shared.busy(&id, Step::Start) => continue,
            provider::Duty::Probe(id) => (id, Step::Probe),
        };
        // A lease to end has left the live state: the history has it as it ended.
        let ended = || shared.history.get().and_then(|h| h.lease(&id));
        match state.lease(&id).cloned().or_else(ended) {
            Some(lease) => spawn_step(shared, &lease, step, hook),
            None => tracing::warn!(lease = %hex::encode(id), "a lease to end is in no record"),
        }
    }
    if !shared.pools.is_empty() && state.windows_of(me).next().is_some() {
        spawn_drain(shared, hook);
    }
    found.leased_slots
}

/// Moves the leases off this provider's pools under maintenance, or gives them notice
/// (`surplus_contracts::provider::drain_duties`), one round at a time.
fn spawn_drain(shared: &Arc<Shared>, hook: &Hook) {
    const ROUND: (Hash, Step) = ([0; 32], Step::Drain);
    if !shared.inflight.lock().unwrap_or_else(|e| e.into_inner()).insert(ROUND) {
        return;
    }
    let env = shared.env.clone();
    let (shared, hook) = (shared.clone(), hook.clone());
    env.spawn(async move {
        drain_round(&shared, &hook).await;
        shared.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(&ROUND);
    });
}

async fn drain_round(shared: &Arc<Shared>, hook: &Hook) {
    let me = shared.key.public();
    let state = shared.state();
    let Ok(pending) = shared.core.call(move |c| c.pending_of(&me)).await else { return };
    let placed = |id: &Hash| shared.provisioning.pool(&hex::encode(id));
    let now = shared.env.now_ms();
    let duties = provider::drain_duties(&shared.pools, &state, &me, &placed, &pending, now);
    for duty in duties {
        let (lease, end_ms) = match duty {
            provider::DrainDuty::Notice { lease, end_ms } => (lease, end_ms),
            provider::DrainDuty::Move { lease, from, to } => {
                let Some(l) = state.lease(&lease).cloned() else { continue };
                let id = hex::encode(lease);
                let mut ev = LeaseEvent::new(Event::Move, &l, &shared.chain_id)
                    .on(Some(to.clone()))
                    .with_class(&state.params.catalogue, &l.fill.market.class);
                ev.from_pool = Some(from.clone());
                let outcome = hook.run(&ev, shared.env.clock().as_ref()).await;
                if let Err(e) = shared.provisioning.record_move(&id, &from, &to, &outcome) {
                    tracing::error!(lease = %id, error = %e, "cannot record a move");
                    continue;
                }
                if outcome.ok {
                    tracing::info!(lease = %id, %from, %to, "moved a lease off a pool under maintenance");
                    let pool = to.clone();
                    sign_and_gossip(shared, move |seq| Tx::Move { lease, pool: pool.clone(), seq })
                        .await;
                    continue;
                }
                // It cannot move: it gets notice like a lease with nowhere to go.
                tracing::warn!(lease = %id, error = ?outcome.error, "a move failed: giving notice instead");
                let start =
                    state.windows_of(&me).find(|w| w.pool == from).map_or(now, |w| w.start_ms);
                let end_ms = start.max(shared.env.now_ms() + provider::NOTICE_MARGIN_MS);
                if end_ms >= l.fill.end_ms {
                    continue;
                }
                (lease, end_ms)
            }
        };
        tracing::info!(lease = %hex::encode(lease), end_ms, "giving a lease notice before maintenance");
        sign_and_gossip(shared, move |seq| Tx::Notice { lease, end_ms, seq }).await;
    }
}

/// Whether this node probes now: the chain supervises, `[supervision] enabled`, and it is a
/// validator.
fn probing(shared: &Arc<Shared>) -> bool {
    shared.supervision.enabled
        && shared.validator.load(Ordering::Relaxed)
        && shared.state().params.supervision.is_some()
}

/// This node as a vantage point, for as long as the node runs: each interval, probes the
/// other providers' leases `probes_per_interval` times (each round at a random offset in its
/// share of the interval, at most `max_probes_per_second`), then reports the leases most of
/// its probes found down (`crate::supervise`).
async fn supervise(weak: std::sync::Weak<Shared>) {
    use rand::Rng;
    // Only a weak reference is held between steps (and none while waiting), so that a node
    // that stops releases its state at once (`shut_down` waits for it).
    let Some((me, cfg, env, stats, observations)) = weak.upgrade().map(|s| {
        (
            s.key.public(),
            s.supervision.clone(),
            s.env.clone(),
            s.probe_stats.clone(),
            s.observations.clone(),
        )
    }) else {
        return;
    };
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let rate = crate::supervise::Rate::new(cfg.max_probes_per_second, env.now_ms());
    let mut window = crate::supervise::Window::default();
    let rounds = u64::from(cfg.probes_per_interval.max(1));
    loop {
        let sup = {
            let Some(shared) = weak.upgrade() else { return };
            let sup = shared.state().params.supervision;
            sup.filter(|_| probing(&shared))
        };
        let Some(sup) = sup else {
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        };
        let now = env.now_ms();
        let interval = sup.interval_at(now);
        let Some((start, end)) = sup.span(interval) else { return };
        let share = sup.interval_ms / rounds;
        let mut probes = Vec::new();
        for k in 0..rounds {
            let round_start = start + k * share;
            if round_start + share <= now {
                continue; // this round's share of the interval has passed (the node started late)
            }
            tokio::time::sleep(Duration::from_millis(round_start.saturating_sub(env.now_ms())))
                .await;
            let targets = {
                let Some(shared) = weak.upgrade() else { return };
                crate::supervise::targets(&shared.state(), &me)
            };
            stats.targets.store(targets.len() as u64, Ordering::Relaxed);
            // A random start within the round's share, early enough that its probes, paced by
            // the rate bound, still fit in the share.
            let needed = targets.len() as u64 * 1000 / u64::from(cfg.max_probes_per_second.max(1));
            let slack = share.saturating_sub(needed) / 2;
            let at = round_start + rand::thread_rng().gen_range(0..=slack);
            tokio::time::sleep(Duration::from_millis(at.saturating_sub(env.now_ms()))).await;
            for (n, (lease, target)) in targets.iter().enumerate() {
                if weak.strong_count() == 0 {
                    return;
                }
                // The rate bound: wait for the pacer, unless the interval ends first.
                let mut waited = false;
                loop {
                    let t = env.now_ms();
                    if t >= end {
                        break;
                    }
                    match rate.take(t) {
                        Ok(()) => break,
                        Err(d) => {
                            waited = true;
                            tokio::time::sleep(d.min(Duration::from_millis(end - t))).await;
                        }
                    }
                }
                let t = env.now_ms();
                if t >= end {
                    let left = (targets.len() - n) as u64;
                    stats.skipped.fetch_add(left, Ordering::Relaxed);
                    break;
                }
                if waited {
                    stats.rate_waits.fetch_add(1, Ordering::Relaxed);
                }
                stats.max_per_second.fetch_max(window.start(t) as u64, Ordering::Relaxed);
                let (stats, observations) = (stats.clone(), observations.clone());
                let (lease, target) = (*lease, target.clone());
                probes.push(env.spawn(async move {
                    let up = crate::supervise::probe(&target, timeout).await;
                    let counter = if up { &stats.up } else { &stats.down };
                    counter.fetch_add(1, Ordering::Relaxed);
                    observations
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record(interval, lease, up);
                }));
            }
        }
        // The next interval's probes start while this one's finish and are reported.
        let w = weak.clone();
        env.spawn(async move { report_down(w, interval, end, probes).await });
        tokio::time::sleep(Duration::from_millis(end.saturating_sub(env.now_ms()))).await;
    }
}

/// How long after an interval's end this node sends its reports, ms.
const REPORT_SLACK_MS: u64 = 2_000;

/// Once `probes` (of `interval`, which ends at `end`) are done and the interval has ended,
/// signs and sends the reports of the leases most of this node's probes found down.
async fn report_down(
    weak: std::sync::Weak<Shared>,
    interval: u64,
    end: u64,
    probes: Vec<tokio::task::JoinHandle<()>>,
) {
    for p in probes {
        let _ = p.await;
    }
    let Some(env) = weak.upgrade().map(|s| s.env.clone()) else { return };
    // Reports wait a little past the interval's end, so that a proposer whose clock is a
    // little behind still finds the interval ended at its block's time.
    let wait = (end + REPORT_SLACK_MS).saturating_sub(env.now_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let Some(shared) = weak.upgrade() else { return };
    let me = shared.key.public();
    let down = {
        let mut o = shared.observations.lock().unwrap_or_else(|e| e.into_inner());
        o.forget_before(interval.saturating_sub(60));
        o.down(interval)
    };
    for report in crate::supervise::reports(interval, &down) {
        let now = shared.env.now_ms();
        let payload = report.encode();
        let kind = surplus_ledger::EntryKind::PROBE_REPORT;
        match shared.core.call(move |c| c.sign_entry(&me, kind, payload, now)).await {
            Ok(Ok((entry, _))) => {
                shared.probe_stats.reports.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    interval,
                    leases = report.down.len(),
                    "reported leases down (most of this node's probes failed)"
                );
                shared.notify.notify_waiters();
                journal_and_gossip(&shared, entry).await;
            }
            Ok(Err(r)) => {
                shared.probe_stats.reports_refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(interval, code = %r.code, "own down report refused: {}", r.message);
            }
            Err(_) => return,
        }
    }
}

/// Signs a transaction of the node's own key (numbered after its pending ones), journals and
/// gossips it.
async fn sign_and_gossip(shared: &Arc<Shared>, make: impl Fn(u64) -> Tx + Send + 'static) {
    let _one_at_a_time = shared.grant_lock.lock().await;
    let (me, now) = (shared.key.public(), shared.env.now_ms());
    match shared.core.call(move |c| c.sign_own(&me, make, now)).await {
        Ok(Ok((entry, _))) => {
            shared.notify.notify_waiters();
            journal_and_gossip(shared, entry).await;
        }
        Ok(Err(r)) => tracing::warn!(code = %r.code, "own transaction refused: {}", r.message),
        Err(_) => {}
    }
}

/// One provisioning step of a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Step {
    Start,
    Grant,
    End,
    /// Recording the probe target the start hook named.
    Probe,
    /// A round of moves and notices before maintenance (under the lease id 0).
    Drain,
}

impl Shared {
    fn busy(&self, lease: &Hash, step: Step) -> bool {
        self.inflight.lock().map(|s| s.contains(&(*lease, step))).unwrap_or(true)
    }
}

fn spawn_step(shared: &Arc<Shared>, lease: &Lease, step: Step, hook: &Hook) {
    {
        let mut inflight = shared.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if !inflight.insert((lease.id, step)) {
            return;
        }
    }
    let env = shared.env.clone();
    let (shared, lease, hook) = (shared.clone(), lease.clone(), hook.clone());
    env.spawn(async move {
        let id = hex::encode(lease.id);
        match step {
            Step::Start | Step::End => {
                let event = if step == Step::Start { Event::Start } else { Event::End };
                let pool = match step {
                    Step::Start => place(&shared, &lease),
                    _ => shared.provisioning.pool(&id),
                };
                let catalogue = &shared.state().params.catalogue;
                let ev = LeaseEvent::new(event, &lease, &shared.chain_id)
                    .on(pool)
                    .with_class(catalogue, &lease.fill.market.class);
                let outcome = hook.run(&ev, shared.env.clock().as_ref()).await;
                if !outcome.ok {
                    tracing::warn!(lease = %id, ?event, error = ?outcome.error, "provisioning failed");
                }
                if let Err(e) = shared.provisioning.record(&id, event, &outcome) {
                    tracing::error!(lease = %id, error = %e, "cannot record provisioning");
                }
                if step == Step::Start && outcome.ok {
                    record_probe(&shared, &lease, outcome.access.as_ref()).await;
                }
            }
            Step::Grant => grant(&shared, &lease).await,
            Step::Probe => {
                let record = shared.provisioning.get(&id).ok().flatten();
                let access = record.and_then(|r| r.start).and_then(|o| o.access);
                record_probe(&shared, &lease, access.as_ref()).await;
            }
            Step::Drain => {}
        }
        shared.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(&(lease.id, step));
    });
}

/// Records on the ledger where the other datacenters probe `lease`, when the hook's answer
/// names a probe (`"probe": {"tcp": "host:port"}` or `{"http": URL, "status": 200}`) that
/// differs from the lease's.
async fn record_probe(shared: &Arc<Shared>, lease: &Lease, access: Option<&serde_json::Value>) {
    let Some(answer) = access.and_then(|a| a.get("probe")) else { return };
    let target = match crate::provision::probe_target(answer) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(lease = %hex::encode(lease.id), error = %e, "the hook's probe is not valid: the lease is not probed");
            return;
        }
    };
    let state = shared.state();
    if state.lease(&lease.id).is_none_or(|l| l.probe.as_ref() == Some(&target)) {
        return;
    }
    let id = lease.id;
    let me = shared.key.public();
    let Ok(pending) = shared.core.call(move |c| c.pending_of(&me)).await else { return };
    if pending.iter().any(|t| matches!(t, Tx::Probe { lease, .. } if *lease == id)) {
        return;
    }
    sign_and_gossip(shared, move |seq| Tx::Probe { lease: id, target: target.clone(), seq }).await;
}

/// Places a starting lease on a pool of its market (`surplus_contracts::provider::place`) and
/// records where; a lease placed before (a restart during its start) stays where it is.
fn place(shared: &Arc<Shared>, lease: &Lease) -> Option<String> {
    let _one_at_a_time = shared.placing.lock().unwrap_or_else(|e| e.into_inner());
    let id = hex::encode(lease.id);
    if let Some(p) = shared.provisioning.pool(&id) {
        return Some(p);
    }
    let me = shared.key.public();
    let placed = |l: &Hash| shared.provisioning.pool(&hex::encode(l));
    let pool = provider::place(&shared.pools, &shared.state(), &me, lease, &placed)?;
    if let Err(e) = shared.provisioning.place(&id, &pool) {
        tracing::error!(lease = %id, error = %e, "cannot record the lease's pool");
    }
    Some(pool)
}

/// Mints the lease's credential, stores it, and submits the grant — one grant at a time; the
/// core gives it the node key's next sequence number ([`crate::owner::Core::sign_own`]).
async fn grant(shared: &Arc<Shared>, lease: &Lease) {
    let _one_at_a_time = shared.grant_lock.lock().await;
    let id = hex::encode(lease.id);
    let state = shared.state();
    let me = shared.key.public();
    let Ok(pending) = shared.core.call(move |c| c.pending_of(&me)).await else { return };
    // As it is now (a renewal may have committed since the duty was found).
    let Some(lease) = state.lease(&lease.id).cloned() else { return };
    let lease = &lease;
    if !provider::needs_grant(&state, &lease.id, &pending, shared.held_token(&lease.id)) {
        return;
    }
    // A rotated provider mints with its current key (`credential::mint_by`).
    let minted = surplus_contracts::credential::mint_by(
        lease,
        &shared.key,
        &state.current_key(&lease.fill.provider),
        &["read", "write", "manage"],
        &mut rand_core::OsRng,
    );
    let credential = match minted {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(lease = %id, error = %e, "cannot mint the credential");
            return;
        }
    };
    if let Err(e) = crate::config::write_atomic(&shared.token_path(&lease.id), &credential.token) {
        tracing::error!(lease = %id, error = %e, "cannot store the credential");
        return;
    }
    shared.held.lock().unwrap_or_else(|e| e.into_inner()).insert(lease.id, lease.fill.end_ms);
    // Sealed to the buyer's current key, so that any node can hand the credential out.
    let buyer = state.current_key(&lease.fill.buyer);
    let sealed = surplus_contracts::sealed::seal(
        &credential.token,
        &buyer,
        &shared.chain_id,
        &lease.id,
        &mut rand_core::OsRng,
    )
    .unwrap_or_else(|e| {
        tracing::warn!(lease = %id, error = %e, "credential not sealed: the buyer fetches it here");
        Vec::new()
    });
    let (lease_id, now) = (lease.id, shared.env.now_ms());
    let signed = shared
        .core
        .call(move |c| {
            let make = |seq| Tx::Grant {
                lease: lease_id,
                token_hash: credential.token_hash,
                revocation_ids: credential.revocation_ids,
                seq,
                sealed,
            };
            c.sign_own(&me, make, now)
        })
        .await;
    match signed {
        Ok(Ok((entry, _))) => {
            shared.notify.notify_waiters();
            journal_and_gossip(shared, entry).await;
        }
        Ok(Err(r)) => {
            tracing::warn!(lease = %id, code = %r.code, "own grant refused: {}", r.message)
        }
        Err(_) => {}
    }
}

/// Journals an entry this node signed itself (so a restart re-admits it), then gossips it.
async fn journal_and_gossip(shared: &Arc<Shared>, entry: Entry) {
    let (id, bytes) = (entry.id(), entry.encode());
    if let Err(e) = shared.journal.insert_durable(&id, &bytes).await {
        tracing::error!(error = %e, "cannot journal an own entry");
    }
    gossip_pending(shared, &id, bytes).await;
}

async fn submit_own(shared: &Arc<Shared>, entry: Entry) {
    let bytes = entry.encode();
    let kind = entry.kind;
    match shared.admit(entry).await {
        Ok((id, _)) => gossip_pending(shared, &id, bytes).await,
        Err(r) => {
            tracing::warn!(kind = kind.name(), code = %r.code, "own entry refused: {}", r.message)
        }
    }
}

/// Where the markets whose offers the operator withdrew are kept.
const WITHDRAWN_FILE: &str = "withdrawn.json";

/// The markets the operator withdrew, from `DIR/withdrawn.json` (none if it is absent).
fn read_withdrawn(
    dir: &std::path::Path,
) -> Result<std::collections::BTreeSet<surplus_market::Market>> {
    let path = dir.join(WITHDRAWN_FILE);
    let names: Vec<String> = match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("{} is not a JSON list of markets", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    names
        .iter()
        .map(|n| n.parse().map_err(|e: String| anyhow::anyhow!("{}: {n:?}: {e}", path.display())))
        .collect()
}

/// Reads the capacity source once and keeps its answer (a failed reading keeps the last good
/// one and says why); logs each class that becomes short of capacity, or recovers.
async fn read_capacity(shared: &Arc<Shared>) {
    let Some(source) = shared.capacity.clone() else { return };
    let classes = serde_json::to_value(&shared.state().params.catalogue.classes)
        .unwrap_or(serde_json::Value::Null);
    let answer = source.read(&classes).await;
    let now = shared.env.now_ms();
    {
        let mut r = shared.reading.lock().unwrap_or_else(|e| e.into_inner());
        match answer {
            Ok(reported) => {
                r.sellable = crate::capacity::sellable(&reported, source.headroom_percent);
                r.reported = reported;
                r.at_ms = now;
                r.error = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the capacity source did not answer: the last reading stands");
                r.error = Some(e);
            }
        }
    }
    let Some(view) = capacity_view(shared) else { return };
    let short: Vec<String> =
        view.classes.iter().filter(|c| c.short > 0).map(|c| c.class.clone()).collect();
    let mut before = shared.short_classes.lock().unwrap_or_else(|e| e.into_inner());
    for c in view.classes.iter().filter(|c| c.short > 0 && !before.contains(&c.class)) {
        tracing::error!(
            class = %c.class, leased = c.leased, sellable = c.sellable, reported = c.reported,
            "the capacity source reports less of the class than is leased: offering none of it; \
             the running leases go on (end some, or free capacity, by hand)"
        );
    }
    for c in before.iter().filter(|c| !short.contains(c)) {
        tracing::info!(class = %c, "the capacity source covers the class's leases again");
    }
    *before = short;
}

/// The capacity source's last reading against this provider's active leases, if a source is
/// configured.
fn capacity_view(shared: &Arc<Shared>) -> Option<surplus_web::CapacityView> {
    let source = shared.capacity.as_ref()?;
    let r = shared.reading.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let state = shared.state();
    let me = shared.key.public();
    let mut leased: std::collections::BTreeMap<String, u64> = Default::default();
    for l in state.provided_by(&me).filter(|l| l.status == LeaseStatus::Active) {
        *leased.entry(l.fill.market.class.clone()).or_insert(0) += u64::from(l.fill.slots);
    }
    let mut names: std::collections::BTreeSet<String> = r.reported.keys().cloned().collect();
    names.extend(leased.keys().cloned());
    names.extend(shared.pools.iter().map(|p| p.class.clone()));
    let classes: Vec<surplus_web::ClassCapacity> = names
        .into_iter()
        .map(|class| {
            let reported = r.reported.get(&class).copied().unwrap_or(0);
            let sellable = r.sellable.get(&class).copied().unwrap_or(0);
            let leased = leased.get(&class).copied().unwrap_or(0);
            surplus_web::ClassCapacity {
                short: leased.saturating_sub(sellable),
                class,
                reported,
                sellable,
                leased,
            }
        })
        .collect();
    Some(surplus_web::CapacityView {
        source: match source.kind {
            crate::capacity::SourceKind::Exec => "exec",
            crate::capacity::SourceKind::Http => "http",
            crate::capacity::SourceKind::Prometheus => "prometheus",
        }
        .into(),
        at_ms: r.at_ms,
        error: r.error,
        headroom_percent: source.headroom_percent,
        alert: classes.iter().any(|c| c.short > 0),
        classes,
    })
}

/// Keeps the inventory's offers in step with the book, the leases and the capacity source's
/// last reading (`inv` is only a check that there is an inventory: its pools are `shared`'s).
async fn plan_inventory(shared: &Arc<Shared>, inv: Option<&Inventory>) {
    if inv.is_none() && shared.pools.is_empty() {
        return;
    }
    let state = shared.state();
    let me = shared.key.public();
    let Ok(pending) = shared.core.call(move |c| c.pending_offers(&me)).await else { return };
    // With a source, at most what it last reported (nothing before its first answer).
    let caps = shared
        .capacity
        .as_ref()
        .map(|_| shared.reading.lock().unwrap_or_else(|e| e.into_inner()).sellable.clone());
    let now = shared.env.now_ms();
    // A market the operator withdrew has no slots to offer (its leases still count).
    let pools: Vec<inventory::Pool> = {
        let withdrawn = shared.withdrawn.lock().unwrap_or_else(|e| e.into_inner());
        shared
            .pools
            .iter()
            .map(|p| {
                let mut p = p.clone();
                if withdrawn.contains(&p.market()) {
                    p.slots = 0;
                }
                p
            })
            .collect()
    };
    let plan = provider::plan_within(&pools, caps.as_ref(), &state, &me, &pending, now);
    lock_bond(shared, plan.bond_needed(&state, &me)).await;
    for entry in plan.entries(&shared.chain_id, &shared.key) {
        submit_own(shared, entry).await;
    }
}

/// Locks in the provider's bond what its offers need beyond what it holds and what is
/// pending (`docs/operations.md`, Bond): publishing an inventory is selling, and selling needs
/// the bond the catalogue's terms ask. Without the balance for it the offers are refused
/// (`bond_required`) and the node says so.
async fn lock_bond(shared: &Arc<Shared>, needed: u64) {
    if needed == 0 {
        return;
    }
    let me = shared.key.public();
    let Ok(pending) = shared.core.call(move |c| c.pending_of(&me)).await else { return };
    let pending: u64 = pending
        .iter()
        .map(|t| match t {
            Tx::Bond { amount, .. } => *amount,
            _ => 0,
        })
        .sum();
    let account = shared.state().account(&me);
    let have = account.bond.saturating_add(pending);
    if have >= needed {
        return;
    }
    let amount = needed - have;
    if account.balance < amount {
        if shared.bond_short.swap(needed, Ordering::Relaxed) == needed {
            return;
        }
        tracing::warn!(
            needed,
            bond = account.bond,
            balance = account.balance,
            "the offers need a larger bond than this provider's balance can lock: they will be \
             refused (bond_required) until the account is funded"
        );
        return;
    }
    tracing::info!(amount, needed, "locking the bond the offers need");
    sign_and_gossip(shared, move |seq| Tx::Bond { amount, seq }).await;
}

/// A duration for people: "36 h", "15 min", "40 s".
fn human_ms(ms: u64) -> String {
    match ms {
        ms if ms >= 2 * surplus_market::HOUR_MS => format!("{} h", ms / surplus_market::HOUR_MS),
        ms if ms >= 120_000 => format!("{} min", ms / 60_000),
        ms => format!("{} s", ms / 1000),
    }
}

/// The refusal while the node stops (its core is gone).
/// Whether each entry's signature holds (strict rule, this chain), checked together over the
/// cores; an unsigned entry counts as good here (its admission refuses it for being unsigned).
fn good_signatures(chain_id: &str, entries: &[Entry]) -> Vec<bool> {
    let mut batch = surplus_ledger::BatchVerifier::new();
    for e in entries {
        if let surplus_ledger::Auth::Signed { author, signature } = &e.auth {
            let msg = Entry::signing_bytes(chain_id, e.kind, author, &e.payload);
            batch.push(*author, msg, *signature);
        }
    }
    let mut verdicts = batch.verify_each().into_iter();
    entries
        .iter()
        .map(|e| match e.auth {
            surplus_ledger::Auth::Signed { .. } => verdicts.next().is_some_and(|v| v.is_ok()),
            surplus_ledger::Auth::System => true,
        })
        .collect()
}

fn stopping() -> surplus_web::Refusal {
    surplus_web::Refusal::new(Code::Unavailable, "the node is stopping; retry in a moment")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::DiskWatch;

    #[test]
    fn a_peers_pending_entries_are_read_or_refused_whole() {
        let key = surplus_ledger::testutil::key("peer", 0);
        let entries: Vec<Entry> = (0..3u8)
            .map(|i| Entry::signed("pending-test", EntryKind::TRANSFER, vec![i; 40], &key))
            .collect();
        let mut bytes = Vec::new();
        for e in &entries {
            let encoded = e.encode();
            bytes.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&encoded);
        }
        assert_eq!(pending_entries(&bytes).unwrap(), entries);
        assert_eq!(pending_entries(&[]).unwrap(), Vec::<Entry>::new());
        assert!(pending_entries(&bytes[..bytes.len() - 1]).unwrap_err().contains("cut entry"));
        assert!(pending_entries(&bytes[..2]).unwrap_err().contains("cut length"));
        // A length that runs past the answer.
        let mut garbled = bytes.clone();
        garbled[0] = 0xff;
        assert!(pending_entries(&garbled).unwrap_err().contains("cut entry"));
    }

    #[test]
    fn a_failed_write_is_told_from_other_stops_by_its_type() {
        let dir = tempfile::tempdir().unwrap();
        // A threshold of 0 and a disk with room: only the error's type counts.
        let disk = DiskWatch::new(dir.path(), 0);
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let ledger = surplus_store::Error::Backend(surplus_store::BackendError("sled: IO".into()));
        let storage = [
            anyhow::Error::new(full).context("cannot append block 7"),
            anyhow::Error::new(ledger).context("cannot append block 7"),
            anyhow::Error::new(sled::Error::Io(std::io::ErrorKind::StorageFull.into())),
        ];
        for e in &storage {
            assert!(is_storage_failure(e, &disk), "{e:#}");
        }
        let refused = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let other = [
            anyhow::anyhow!("consensus stopped"),
            anyhow::Error::new(refused).context("cannot restart the consensus engine"),
            anyhow::Error::new(sled::Error::Unsupported("x".into())),
        ];
        for e in &other {
            assert!(!is_storage_failure(e, &disk), "{e:#}");
        }
        // An untyped stop while the disk is below the threshold counts.
        let low = DiskWatch::new(dir.path(), u64::MAX);
        assert!(is_storage_failure(&anyhow::anyhow!("consensus stopped"), &low));
    }
}
