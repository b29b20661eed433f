//! What the node keeps for its web API beyond the state: a read-only view of the ledger,
//! signed checkpoints, market price history, leased capacity over time, live events, metrics
//! and the ledger export. Filled from each committed block (and, for the history, from the
//! ledger's last blocks at start, so a restart keeps it).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use surplus_contracts::{decode_fill, decode_revocation, Settlement, State, Tx};
use surplus_ledger::bundle::ProofBundle;
use surplus_ledger::{Block, Entry, EntryKind, Hash, PublicKey, SecretKey, SignedCheckpoint};
use surplus_market::{Fill, Market};
use surplus_store::Store;
use surplus_web::{CapacityPoint, Event, Histogram, PricePoint};
use tokio::sync::broadcast;

/// Price points kept per market, and leased-capacity samples kept.
const HISTORY: usize = 10_000;
/// Blocks read back from the ledger at start to rebuild the history.
const HISTORY_BLOCKS: u64 = 2_000;
/// Bids whose acceptance time is remembered for the latency histogram.
const TRACKED_BIDS: usize = 100_000;
/// Events a slow subscriber (an SSE client of `GET /api/v1/events`) may fall behind by before
/// it is told it lagged and continues with the newest events.
pub const EVENT_CAPACITY: usize = 1024;
/// Seconds over which orders/s is averaged.
const RATE_WINDOW_S: u64 = 10;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The node's web-facing records.
pub(crate) struct WebData {
    /// A read-only view of the ledger (from consensus start on), reopened when the head moved
    /// past it.
    ledger: Mutex<Option<Store>>,
    /// This node's latest signed checkpoint, and each other validator's latest valid one.
    own_checkpoint: Mutex<Option<SignedCheckpoint>>,
    peer_checkpoints: Mutex<BTreeMap<PublicKey, SignedCheckpoint>>,
    prices: Mutex<HashMap<Market, VecDeque<PricePoint>>>,
    leased: Mutex<VecDeque<CapacityPoint>>,
    events: broadcast::Sender<Event>,
    pub(crate) blocks_committed: AtomicU64,
    pub(crate) entries_committed: AtomicU64,
    pub(crate) orders_accepted: AtomicU64,
    pub(crate) entries_refused: AtomicU64,
    /// API submissions refused to shed load (`overloaded`).
    pub(crate) submissions_shed: AtomicU64,
    /// Messages this node published on the orders topic that reached a peer, and the entries
    /// in them.
    pub(crate) gossip_messages_sent: AtomicU64,
    pub(crate) gossip_entries_sent: AtomicU64,
    /// Orders admitted per wall-clock second, the last few seconds.
    rate: Mutex<VecDeque<(u64, u64)>>,
    /// Acceptance time of bids this node took from its API, oldest first.
    accepted: Mutex<(HashMap<Hash, u64>, VecDeque<Hash>)>,
    latency: Mutex<Histogram>,
    /// The latest export (path, height); one export is written at a time.
    export: tokio::sync::Mutex<Option<(PathBuf, u64, tokio::time::Instant)>>,
    exports_dir: PathBuf,
}

impl WebData {
    pub(crate) fn new(exports_dir: PathBuf) -> Self {
        Self {
            ledger: Mutex::new(None),
            own_checkpoint: Mutex::default(),
            peer_checkpoints: Mutex::default(),
            prices: Mutex::default(),
            leased: Mutex::default(),
            events: broadcast::channel(EVENT_CAPACITY).0,
            blocks_committed: AtomicU64::new(0),
            entries_committed: AtomicU64::new(0),
            orders_accepted: AtomicU64::new(0),
            entries_refused: AtomicU64::new(0),
            submissions_shed: AtomicU64::new(0),
            gossip_messages_sent: AtomicU64::new(0),
            gossip_entries_sent: AtomicU64::new(0),
            rate: Mutex::default(),
            accepted: Mutex::default(),
            latency: Mutex::default(),
            export: tokio::sync::Mutex::new(None),
            exports_dir,
        }
    }

    /// [`WebData::with_ledger`], telling data this node does not hold (pruned, or before its
    /// snapshot) from a failure.
    pub(crate) fn read_ledger<T>(
        &self,
        height: u64,
        f: impl FnOnce(&Store) -> Result<T, surplus_store::Error>,
    ) -> Result<T, surplus_web::LedgerError> {
        let mut kept = None;
        let out = self.with_ledger(height, |s| {
            f(s).inspect_err(|e| {
                if matches!(e, surplus_store::Error::Pruned { .. }) {
                    kept = Some(format!(
                        "{e}; an archive node (`[storage] archive = true`) serves it"
                    ));
                }
            })
        });
        match (out, kept) {
            (Ok(v), _) => Ok(v),
            (Err(_), Some(m)) => Err(surplus_web::LedgerError::NotHeld(m)),
            (Err(e), None) => Err(surplus_web::LedgerError::Failed(e)),
        }
    }

    /// Runs `f` on a view of the ledger at least at `height` (reopened if it is older).
    pub(crate) fn with_ledger<T>(
        &self,
        height: u64,
        f: impl FnOnce(&Store) -> Result<T, surplus_store::Error>,
    ) -> Result<T, String> {
        let mut guard = lock(&self.ledger);
        let view = guard.as_mut().ok_or("the ledger is not open yet; retry in a moment")?;
        if view.height().is_none_or(|h| h < height) {
            *view = view.view().map_err(|e| format!("cannot read the ledger: {e}"))?;
        }
        f(view).map_err(|e| e.to_string())
    }

    /// Starts serving from `view` (a read-only view of the node's ledger).
    pub(crate) fn attach(&self, view: Store) {
        *lock(&self.ledger) = Some(view);
    }

    /// The ledger's blocks from `head - HISTORY_BLOCKS` to `head`, for rebuilding what the
    /// node keeps at hand after a restart; their prices are recorded.
    pub(crate) fn last_blocks(&self, head: u64) -> Result<Vec<Block>, String> {
        let from = head.saturating_sub(HISTORY_BLOCKS);
        let blocks: Vec<Block> =
            // A node that prunes or started from a snapshot holds no older body.
            self.with_ledger(head, |s| (from.max(s.base())..=head).map(|h| s.block(h)).collect())?;
        for b in &blocks {
            self.record_prices(&b.header, &fills_of(b));
        }
        Ok(blocks)
    }

    /// Records what a committed block changed, and publishes it to subscribers.
    pub(crate) fn on_block(
        &self,
        block: &Block,
        fills: &[(Hash, Fill)],
        state: &State,
        changes: BlockChanges<'_>,
        leased_slots: u64,
        now_ms: u64,
    ) {
        let BlockChanges { outcome, before, ended } = changes;
        let h = &block.header;
        self.blocks_committed.fetch_add(1, Ordering::Relaxed);
        self.entries_committed.fetch_add(block.entries.len() as u64, Ordering::Relaxed);
        self.record_prices(h, fills);
        {
            let mut leased = lock(&self.leased);
            let point =
                CapacityPoint { height: h.height, time_ms: h.timestamp_ms, slots: leased_slots };
            leased.push_back(point);
            while leased.len() > HISTORY {
                leased.pop_front();
            }
        }
        // Order-to-lease latency of the bids this node accepted.
        {
            let mut accepted = lock(&self.accepted);
            let mut latency = lock(&self.latency);
            for (_, fill) in fills {
                if let Some(at) = accepted.0.remove(&fill.bid) {
                    latency.observe(now_ms.saturating_sub(at));
                }
            }
        }
        // Nobody listening is not an error: events are only for live subscribers.
        let _ = self.events.send(Event::Block {
            height: h.height,
            hash: h.hash(),
            time_ms: h.timestamp_ms,
            entries: block.entries.len(),
            tree_size: h.tree_size,
        });
        for (lease, fill) in fills {
            let _ = self.events.send(Event::Fill {
                lease: *lease,
                height: h.height,
                fill: fill.clone(),
            });
        }
        let mut touched: Vec<Hash> = Vec::new();
        for e in &block.entries {
            if let Some(lease) = lease_of(e) {
                if !touched.contains(&lease) {
                    touched.push(lease);
                }
            }
        }
        for id in touched {
            // A lease that ended in the block has left the state: it is among `ended`.
            let lease = state.lease(&id).or_else(|| ended.iter().find(|l| l.id == id));
            if let Some(lease) = lease {
                let _ = self
                    .events
                    .send(Event::Lease { height: h.height, lease: Box::new(lease.clone()) });
            }
        }
        for e in &block.entries {
            if let Some(event) = governance_event(h.height, e) {
                let _ = self.events.send(event);
            }
        }
        for event in order_events(h.height, block, outcome, before, state) {
            let _ = self.events.send(event);
        }
    }

    fn record_prices(&self, h: &surplus_ledger::Header, fills: &[(Hash, Fill)]) {
        let mut per_market: BTreeMap<&Market, (u64, u64)> = BTreeMap::new();
        for (_, fill) in fills {
            per_market.entry(&fill.market).or_insert((fill.price, 0)).1 += u64::from(fill.slots);
        }
        let mut prices = lock(&self.prices);
        for (market, (price, slots)) in per_market {
            let points = prices.entry(market.clone()).or_default();
            if points.back().is_some_and(|p| p.height >= h.height) {
                continue; // already recorded (prefill overlapping the first commits)
            }
            points.push_back(PricePoint {
                height: h.height,
                time_ms: h.timestamp_ms,
                price,
                slots,
            });
            while points.len() > HISTORY {
                points.pop_front();
            }
        }
    }

    pub(crate) fn price_history(&self, market: &Market, limit: usize) -> Vec<PricePoint> {
        let prices = lock(&self.prices);
        let Some(points) = prices.get(market) else { return Vec::new() };
        points.iter().skip(points.len().saturating_sub(limit)).cloned().collect()
    }

    pub(crate) fn leased(&self) -> Vec<CapacityPoint> {
        lock(&self.leased).iter().cloned().collect()
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Counts an entry newly admitted into the mempool (orders and cancels only).
    /// A message of `entries` entries was published on the orders topic and reached a peer.
    pub(crate) fn gossip_published(&self, entries: usize) {
        self.gossip_messages_sent.fetch_add(1, Ordering::Relaxed);
        self.gossip_entries_sent.fetch_add(entries as u64, Ordering::Relaxed);
    }

    pub(crate) fn admitted(&self, kind: EntryKind, now_ms: u64) {
        if kind != EntryKind::ORDER && kind != EntryKind::CANCEL {
            return;
        }
        self.orders_accepted.fetch_add(1, Ordering::Relaxed);
        {
            let sec = now_ms / 1000;
            let mut rate = lock(&self.rate);
            match rate.back_mut() {
                Some((s, n)) if *s == sec => *n += 1,
                _ => rate.push_back((sec, 1)),
            }
            while rate.front().is_some_and(|(s, _)| *s + RATE_WINDOW_S < sec) {
                rate.pop_front();
            }
        }
    }

    /// Remembers when this node's API accepted an order, for the order-to-lease latency.
    pub(crate) fn accepted_from_api(&self, kind: EntryKind, id: Hash, now_ms: u64) {
        if kind == EntryKind::ORDER {
            let mut accepted = lock(&self.accepted);
            if accepted.0.insert(id, now_ms).is_none() {
                accepted.1.push_back(id);
            }
            while accepted.1.len() > TRACKED_BIDS {
                if let Some(old) = accepted.1.pop_front() {
                    accepted.0.remove(&old);
                }
            }
        }
    }

    /// Orders admitted per second over the last complete seconds of the window.
    pub(crate) fn orders_per_second(&self, now_ms: u64) -> f64 {
        let now = now_ms / 1000;
        let rate = lock(&self.rate);
        let n: u64 = rate
            .iter()
            .filter(|(s, _)| *s < now && *s + RATE_WINDOW_S >= now)
            .map(|(_, n)| n)
            .sum();
        n as f64 / RATE_WINDOW_S as f64
    }

    pub(crate) fn latency(&self) -> Histogram {
        lock(&self.latency).clone()
    }

    /// Signs this node's checkpoint of `block` and keeps it as the latest.
    pub(crate) fn sign_checkpoint(
        &self,
        h: &surplus_ledger::Header,
        key: &SecretKey,
    ) -> SignedCheckpoint {
        let signed = surplus_ledger::Checkpoint {
            chain_id: h.chain_id.clone(),
            height: h.height,
            tree_size: h.tree_size,
            root: h.merkle_root,
            header_hash: h.hash(),
        }
        .sign(key);
        *lock(&self.own_checkpoint) = Some(signed.clone());
        signed
    }

    /// Keeps another validator's checkpoint (already verified) if it is its latest.
    pub(crate) fn peer_checkpoint(&self, c: &SignedCheckpoint) {
        let mut all = lock(&self.peer_checkpoints);
        let newer =
            all.get(&c.signer).is_none_or(|old| old.checkpoint.height < c.checkpoint.height);
        if newer {
            all.insert(c.signer, c.clone());
        }
    }

    /// This node's latest checkpoint first, then the other validators'.
    pub(crate) fn checkpoints(&self) -> Vec<SignedCheckpoint> {
        let own = lock(&self.own_checkpoint).clone();
        let me = own.as_ref().map(|c| c.signer);
        own.into_iter()
            .chain(lock(&self.peer_checkpoints).values().filter(|c| Some(c.signer) != me).cloned())
            .collect()
    }

    /// The inclusion proof of the fill that created `lease` (created at `height`), against this
    /// node's latest signed checkpoint.
    pub(crate) fn lease_proof(
        &self,
        lease: &Hash,
        height: u64,
    ) -> Result<ProofBundle, surplus_web::LedgerError> {
        let signed = lock(&self.own_checkpoint).clone().ok_or_else(|| {
            surplus_web::LedgerError::Failed(
                "this node has signed no checkpoint yet; retry after the next block".into(),
            )
        })?;
        let cp_height = signed.checkpoint.height;
        if height > cp_height {
            return Err(surplus_web::LedgerError::Failed(format!(
                "the lease is in block {height}, after this node's latest checkpoint {cp_height}; \
                 retry after the next block"
            )));
        }
        self.read_ledger(cp_height, |s| {
            let block = s.block(height)?;
            let first = if height == 0 { 0 } else { s.read_head(height - 1)?.0.tree_size };
            let pos = block.entries.iter().position(|e| e.id() == *lease).ok_or_else(|| {
                surplus_store::Error::Proof(format!(
                    "block {height} holds no entry {}",
                    hex::encode(lease)
                ))
            })?;
            let index = first + pos as u64;
            let proof = s.prove_inclusion(index, Some(signed.checkpoint.tree_size))?;
            let (header, certificate) = s.read_head(cp_height)?;
            Ok(ProofBundle::new(
                height,
                &block.entries[pos],
                &proof,
                signed.checkpoint.clone(),
                Some(&signed),
                header,
                certificate,
            ))
        })
    }

    /// An export of the whole ledger: the latest one while it is younger than
    /// [`EXPORT_REUSE`] ([`FRESH_EXPORT_REUSE`] when `fresh`: so clients cannot make the node
    /// rewrite its ledger every block), else a new one at the head (written beside, then
    /// renamed). The previous export is kept until the next one replaces it, so a download
    /// that just got its path can still open it.
    pub(crate) async fn export(
        self: &Arc<Self>,
        height: u64,
        fresh: bool,
    ) -> Result<(PathBuf, u64), String> {
        let mut latest = self.export.lock().await;
        let reuse = if fresh { FRESH_EXPORT_REUSE } else { EXPORT_REUSE };
        if let Some((path, h, made)) = latest.as_ref() {
            if (*h >= height || made.elapsed() < reuse) && path.exists() {
                return Ok((path.clone(), *h));
            }
        }
        let me = self.clone();
        let (path, h) = tokio::task::spawn_blocking(move || me.write_export(height))
            .await
            .map_err(|e| format!("the export task failed: {e}"))??;
        *latest = Some((path.clone(), h, tokio::time::Instant::now()));
        // Keep this export and the one before it; remove older ones (and leftovers of
        // interrupted runs from before a restart).
        if let Ok(dir) = std::fs::read_dir(&self.exports_dir) {
            let mut files: Vec<(u64, PathBuf)> = dir
                .flatten()
                .map(|e| e.path())
                .map(|p| (export_height(&p).unwrap_or(0), p))
                .collect();
            files.sort();
            let keep = files.len().saturating_sub(2);
            for (_, old) in files.into_iter().take(keep) {
                if old != path {
                    let _ = std::fs::remove_file(old);
                }
            }
        }
        Ok((path, h))
    }

    fn write_export(&self, height: u64) -> Result<(PathBuf, u64), String> {
        std::fs::create_dir_all(&self.exports_dir)
            .map_err(|e| format!("cannot create {}: {e}", self.exports_dir.display()))?;
        let view = self.with_ledger(height, |s| s.view())?;
        let h = view.height().unwrap_or(0);
        let path = export_path(&self.exports_dir, h);
        view.export(&path, &mut |_, _| {}).map_err(|e| format!("cannot export the ledger: {e}"))?;
        Ok((path, h))
    }
}

/// How long an export is served before a request makes a new one.
const EXPORT_REUSE: std::time::Duration = std::time::Duration::from_secs(60);
/// The age up to which an export is reused for a client that asked for the head.
const FRESH_EXPORT_REUSE: std::time::Duration = std::time::Duration::from_secs(5);

/// The height in an export's file name (`ledger-<height>.surplus`).
fn export_height(path: &Path) -> Option<u64> {
    path.file_name()?.to_str()?.strip_prefix("ledger-")?.strip_suffix(".surplus")?.parse().ok()
}

fn export_path(dir: &Path, height: u64) -> PathBuf {
    dir.join(format!("ledger-{height}.surplus"))
}

/// The fills of a block, each with its entry's id (the lease it creates), decoded once.
pub(crate) fn fills_of(block: &Block) -> Vec<(Hash, Fill)> {
    block
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::FILL)
        .filter_map(|e| decode_fill(&e.payload).ok().map(|(f, _)| (e.id(), f)))
        .collect()
}

/// What a block did beyond its entries, for the events: the auction's outcome, the state
/// before the block (where orders that left the book are found) if the node has it, and the
/// leases that ended in it.
pub(crate) struct BlockChanges<'a> {
    pub outcome: &'a surplus_market::Outcome,
    pub before: Option<&'a State>,
    pub ended: &'a [surplus_contracts::Lease],
}

/// The event of a governance entry (or of a validator-set entry), if `e` is one.
fn governance_event(height: u64, e: &Entry) -> Option<Event> {
    let author = match e.auth {
        surplus_ledger::Auth::Signed { author, .. } => Some(author),
        surplus_ledger::Auth::System => None,
    };
    let (proposal, yes, outcome) = match e.kind {
        EntryKind::GOV_PROPOSE => (Some(e.id()), None, None),
        EntryKind::GOV_VOTE | EntryKind::GOV_WITHDRAW => match Tx::decode(e.kind, &e.payload) {
            Ok(Tx::GovVote { proposal, yes, .. }) => (Some(proposal), Some(yes), None),
            Ok(Tx::GovWithdraw { proposal, .. }) => (Some(proposal), None, None),
            _ => return None,
        },
        EntryKind::GOV_OUTCOME => {
            let (id, o) = surplus_contracts::governance::decode_outcome(&e.payload).ok()?;
            (Some(id), None, Some(o))
        }
        EntryKind::KEY_ROTATION | EntryKind::VALIDATOR_SET => (None, None, None),
        _ => return None,
    };
    Some(Event::Governance {
        height,
        kind: e.kind.name().to_owned(),
        proposal,
        author,
        yes,
        outcome,
    })
}

/// The lease an entry creates or changes, if any.
fn lease_of(e: &Entry) -> Option<Hash> {
    match e.kind {
        EntryKind::FILL => Some(e.id()),
        EntryKind::SETTLEMENT => Settlement::decode(&e.payload).ok().map(|s| s.lease),
        EntryKind::REVOCATION => decode_revocation(&e.payload).ok().map(|(l, _)| l),
        EntryKind::CREDIT => {
            surplus_contracts::supervision::Credit::decode(&e.payload).ok().map(|c| c.lease)
        }
        EntryKind::LEASE_TRANSITION | EntryKind::CREDENTIAL_GRANT => {
            match Tx::decode(e.kind, &e.payload).ok()? {
                Tx::Terminate { lease, .. }
                | Tx::Renew { lease, .. }
                | Tx::Grant { lease, .. }
                | Tx::Notice { lease, .. }
                | Tx::Move { lease, .. }
                | Tx::Probe { lease, .. } => Some(lease),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The `order` events of a block (`docs/api.md`, Events): each order the block took in, each
/// order a fill touched, and each cancelled or expired one, with where it is after the block.
/// `before` is the state before the block, where the orders that left the book are found (their
/// author, side and market); without it those are not reported.
pub(crate) fn order_events(
    height: u64,
    block: &Block,
    outcome: &surplus_market::Outcome,
    before: Option<&State>,
    after: &State,
) -> Vec<Event> {
    use surplus_market::{Order, SignedOrder};
    use surplus_web::OrderStatus;
    let side = |o: &Order| match o {
        Order::Bid(_) => "bid",
        Order::Offer(_) => "offer",
    };
    let filled: std::collections::BTreeSet<Hash> =
        outcome.fills.iter().flat_map(|f| [f.bid, f.offer]).collect();
    // Where an order that was in the book (or entered it in this block) stands now.
    let now = |o: &SignedOrder| -> (OrderStatus, Option<u32>) {
        match after.book.get(&o.id) {
            Some(r) => match &o.order {
                Order::Bid(b) if r.remaining < b.slots => {
                    (OrderStatus::PartlyFilled, Some(r.remaining))
                }
                Order::Bid(_) => (OrderStatus::Resting, Some(r.remaining)),
                Order::Offer(_) if filled.contains(&o.id) || !r.allocations.is_empty() => {
                    (OrderStatus::PartlyFilled, None)
                }
                Order::Offer(_) => (OrderStatus::Resting, None),
            },
            None if filled.contains(&o.id) => (OrderStatus::Filled, None),
            None => (OrderStatus::Expired, None),
        }
    };
    let event = |o: &SignedOrder, status, remaining, reason| Event::Order {
        height,
        order: o.id,
        account: o.author,
        side: side(&o.order).to_owned(),
        market: o.order.market().clone(),
        status,
        remaining,
        reason,
    };
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let rejected: BTreeMap<Hash, String> =
        outcome.rejected.iter().map(|r| (r.id, r.reason.to_string())).collect();
    for e in block.entries.iter().filter(|e| e.kind == EntryKind::ORDER) {
        let Ok(o) = SignedOrder::from_entry(e) else { continue };
        seen.insert(o.id);
        let ev = match rejected.get(&o.id) {
            Some(why) => event(&o, OrderStatus::Dropped, None, Some(why.clone())),
            None => {
                let (status, remaining) = now(&o);
                event(&o, status, remaining, None)
            }
        };
        out.push(ev);
    }
    // Resting orders a fill touched, then those that left the book without a fill.
    let earlier = |id: &Hash| before.and_then(|s| s.book.get(id)).map(|r| r.order.clone());
    for id in filled.iter().filter(|id| !seen.contains(*id)).copied().collect::<Vec<_>>() {
        let found = after.book.get(&id).map(|r| r.order.clone()).or_else(|| earlier(&id));
        if let Some(o) = found {
            let (status, remaining) = now(&o);
            out.push(event(&o, status, remaining, None));
            seen.insert(id);
        }
    }
    for (ids, status) in
        [(&outcome.cancelled, OrderStatus::Cancelled), (&outcome.expired, OrderStatus::Expired)]
    {
        for id in ids.iter().filter(|id| !seen.contains(*id)) {
            if let Some(o) = earlier(id) {
                out.push(event(&o, status, None, None));
            }
        }
    }
    out
}
