//! A simulated consortium: N nodes of the real service core in one thread, on a simulated
//! clock and network, driven by one seed, checked for the invariants of the process tests.
//!
//! What is real: each node's [`Core`] (admission by the contracts' precheck, the mempool, the
//! head and its snapshot, the drops and their codes), its [`Journal`] of acknowledged entries
//! (the product's code, over a simulated disk), the block builder and re-execution of
//! `surplus-contracts`, the journal replay after a restart, and the provider's rules
//! (`provider::plan`, `provider::duties`, credential minting). What is simulated: the clock,
//! the network (delays, losses, partitions), the disks (writes not flushed are lost in a crash;
//! a background flush every 500 ms, as sled does), and consensus, by a stand-in that decides in
//! the engine's order (the proposer of height h and round r is validator (h - 1 + r) mod n; a
//! height is decided when 2f+1 validators are up and connected; a validator behind syncs the
//! decided blocks first). Why the engine itself cannot run here: decision 0010.
//!
//! One seed fixes every choice; the same seed replays the same run exactly (the test checks
//! that the head hash is the same twice). `SIM_SEED=N cargo test -p surplus-service --test sim`
//! replays one seed and prints its trace.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use surplus_contracts::provider::{self, Pool, Provisioned};
use surplus_contracts::{credential, Allocation, BlockMaker, Code, Genesis, Params, State, Tx};
use surplus_ledger::{Auth, Block, Entry, Hash, Header, PublicKey, SecretKey};
use surplus_market::{Bid, Catalogue, FillRule, Market, Order, SignedCancel, SignedOrder, HOUR_MS};
use surplus_web::Submission;

use crate::journal::{Journal, JournalDisk};
use crate::mempool::Mempool;
use crate::owner::Core;

/// The chain id of simulated consortia.
pub const CHAIN: &str = "surplus-sim";
/// Genesis time.
const T0: u64 = 1_700_000_000_000;
/// What each buyer holds at genesis.
const FUNDS: u64 = 1_000_000_000_000;
/// Block limits (as in the default configuration).
const MAX_BLOCK_ENTRIES: usize = 1_000;
const MAX_BLOCK_BYTES: usize = 1 << 20;
/// A proposer waits this long for a batch when entries wait.
const BATCH_MS: u64 = 200;
/// An empty block at least this often.
const HEARTBEAT_MS: u64 = 5_000;
/// The disk's background flush (sled flushes every 500 ms).
const DISK_FLUSH_MS: u64 = 500;
/// Re-gossip tick (as `runtime::REGOSSIP_EVERY`), and every how many ticks aged entries go.
const REGOSSIP_MS: u64 = 1_000;
const REGOSSIP_AGED_EVERY: u64 = 10;
const REGOSSIP_AGE_MS: u64 = 45_000;
/// How long a transaction ahead of its sequence waits in a simulated mempool (10 minutes in a
/// node; shorter here so that a run need not wait that long for the drop).
const SEQ_GAP_TTL_MS: u64 = 30_000;

/// How a run goes.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Validators (each also a provider with one pool).
    pub nodes: usize,
    /// Buyer accounts.
    pub buyers: usize,
    /// Simulated time with faults and client traffic, ms.
    pub busy_ms: u64,
    /// Simulated time after it (faults healed, every node up, no new traffic) before the
    /// invariants are checked, ms: longer than the mempool keeps an entry waiting for its
    /// sequence gap to close.
    pub quiet_ms: u64,
    /// Chance per step of a client submission (per mille).
    pub submit_per_mille: u32,
    /// Chance per step that an up node crashes (per mille).
    pub crash_per_mille: u32,
    /// Chance that a node crashes right after acknowledging an entry (per mille).
    pub crash_after_ack_per_mille: u32,
    /// Chance per step that a partition starts or heals (per mille).
    pub partition_per_mille: u32,
    /// Chance that one gossip message is lost (per mille).
    pub loss_per_mille: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            nodes: 4,
            buyers: 3,
            busy_ms: 10_000,
            quiet_ms: SEQ_GAP_TTL_MS + 30_000,
            submit_per_mille: 400,
            crash_per_mille: 4,
            crash_after_ack_per_mille: 30,
            partition_per_mille: 3,
            loss_per_mille: 20,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The final height.
    pub height: u64,
    /// The final head's hash (the same for the same seed).
    pub head: Hash,
    /// Entries acknowledged to clients.
    pub acked: usize,
    /// Of those, committed.
    pub committed: usize,
    /// Of those, dropped with a code.
    pub dropped: usize,
    /// Node crashes.
    pub crashes: usize,
    /// Partitions.
    pub partitions: usize,
    /// Leases made.
    pub leases: usize,
}

/// A broken invariant, with the seed that replays it and the run's last events.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// Which invariant, and how.
    pub what: String,
    /// The last events before it.
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {}: {}", self.seed, self.what)?;
        writeln!(f, "replay: SIM_SEED={} cargo test -p surplus-service --test sim", self.seed)?;
        for t in &self.trace {
            writeln!(f, "  {t}")?;
        }
        Ok(())
    }
}

/// Runs one seed.
pub fn run(seed: u64, settings: &Settings) -> Result<Report, Failure> {
    // The journal's flush runs on tokio's blocking pool; the run awaits each one in turn.
    let rt = tokio::runtime::Builder::new_current_thread().build().map_err(|e| Failure {
        seed,
        what: format!("no runtime: {e}"),
        trace: vec![],
    })?;
    rt.block_on(World::new(seed, settings.clone()).run())
}

/// A disk that keeps what was flushed and loses the rest in a crash.
#[derive(Default)]
struct SimDisk {
    inner: Mutex<DiskState>,
}

#[derive(Default)]
struct DiskState {
    durable: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Writes since the last flush, in order (`None`: a removal).
    unflushed: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl DiskState {
    fn flush(&mut self) {
        for (k, v) in self.unflushed.drain(..) {
            match v {
                Some(v) => self.durable.insert(k, v),
                None => self.durable.remove(&k),
            };
        }
    }
}

impl SimDisk {
    fn with<R>(&self, f: impl FnOnce(&mut DiskState) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }
    fn crash(&self) {
        self.with(|d| d.unflushed.clear());
    }
    fn background_flush(&self) {
        self.with(DiskState::flush);
    }
}

impl JournalDisk for SimDisk {
    fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        self.with(|d| d.unflushed.push((key.to_vec(), Some(value.to_vec()))));
        Ok(())
    }
    fn remove(&self, key: &[u8]) {
        self.with(|d| d.unflushed.push((key.to_vec(), None)));
    }
    fn flush(&self) -> Result<(), String> {
        self.with(DiskState::flush);
        Ok(())
    }
    fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.with(|d| {
            let mut all = d.durable.clone();
            for (k, v) in &d.unflushed {
                match v {
                    Some(v) => all.insert(k.clone(), v.clone()),
                    None => all.remove(k),
                };
            }
            all.into_iter().collect()
        })
    }
}

/// One simulated node: what survives a crash (ledger, head state, provisioning records, the
/// journal's disk) and what does not (the running core).
struct Node {
    key: SecretKey,
    /// Blocks after genesis, durable once appended (the store flushes before a commit).
    ledger: Vec<Arc<Block>>,
    maker: BlockMaker,
    head: Header,
    provisioned: BTreeMap<Hash, Provisioned>,
    disk: Arc<SimDisk>,
    live: Option<Live>,
    side: u8,
}

struct Live {
    core: Core,
    journal: Journal,
}

/// A gossip message in flight.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Msg {
    at: u64,
    seq: u64,
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

struct Buyer {
    key: SecretKey,
    nonce: u64,
    /// Transfers acknowledged and not yet seen committed or dropped, by sequence number.
    transfers: BTreeMap<u64, Hash>,
    bids: Vec<Hash>,
}

struct World {
    seed: u64,
    s: Settings,
    rng: ChaCha8Rng,
    now: u64,
    nodes: Vec<Node>,
    validators: Vec<PublicKey>,
    buyers: Vec<Buyer>,
    pools: Vec<Pool>,
    market: Market,
    net: BinaryHeap<std::cmp::Reverse<Msg>>,
    msg_seq: u64,
    /// Entries acknowledged to a client: by which node, when.
    acked: BTreeMap<Hash, (usize, u64)>,
    /// Every drop any node recorded, with its code.
    dropped: BTreeMap<Hash, Code>,
    trace: std::collections::VecDeque<String>,
    report: Report,
    supply: u128,
    last_block: u64,
    regossip_ticks: u64,
    /// An entry was admitted since the last block (a proposer has work).
    work: bool,
    /// A forged entry a node acknowledged.
    forged: Option<String>,
}

impl World {
    fn new(seed: u64, s: Settings) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let keys: Vec<SecretKey> = (0..s.nodes).map(|_| SecretKey::from_seed(rng.gen())).collect();
        let buyers: Vec<Buyer> = (0..s.buyers)
            .map(|_| Buyer {
                key: SecretKey::from_seed(rng.gen()),
                nonce: 0,
                transfers: BTreeMap::new(),
                bids: vec![],
            })
            .collect();
        let catalogue = Catalogue::sample();
        let (class, region) = (catalogue.classes[0].id.clone(), catalogue.regions[0].id.clone());
        let genesis = Genesis {
            validators: keys.iter().map(SecretKey::public).collect(),
            params: Params {
                catalogue,
                treasury: SecretKey::from_seed(rng.gen()).public(),
                fee_bps: 100,
                penalty_bps: 500,
                notice_ms: surplus_contracts::maintenance::DEFAULT_NOTICE_MS,
                supervision: None,
            },
            allocations: buyers
                .iter()
                .map(|b| Allocation { account: b.key.public(), amount: FUNDS })
                .collect(),
        };
        let (gblock, gmaker) =
            BlockMaker::genesis(CHAIN, &genesis, T0).expect("the simulated genesis is valid");
        let supply = gmaker.state.total_credits();
        let pools = vec![Pool {
            name: None,
            class: class.clone(),
            region: region.clone(),
            slots: 4,
            reserve: 100,
            min_hours: 1,
            horizon_hours: 24,
            offer_ttl_minutes: 2,
        }];
        let nodes = keys
            .into_iter()
            .map(|key| Node {
                key,
                ledger: vec![],
                maker: gmaker.clone(),
                head: gblock.header.clone(),
                provisioned: BTreeMap::new(),
                disk: Arc::default(),
                live: None,
                side: 0,
            })
            .collect();
        let validators = genesis.validators.clone();
        let mut w = Self {
            seed,
            s,
            rng,
            now: T0,
            nodes,
            validators,
            buyers,
            pools,
            market: Market::new(&class, &region),
            net: BinaryHeap::new(),
            msg_seq: 0,
            acked: BTreeMap::new(),
            dropped: BTreeMap::new(),
            trace: Default::default(),
            report: Report { seed, ..Report::default() },
            supply,
            last_block: T0,
            regossip_ticks: 0,
            work: false,
            forged: None,
        };
        for i in 0..w.nodes.len() {
            w.start(i);
        }
        w
    }

    fn log(&mut self, what: String) {
        if self.trace.len() >= 400 {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("t+{:>7} {what}", self.now - T0));
    }

    fn fail(&self, what: String) -> Failure {
        Failure { seed: self.seed, what, trace: self.trace.iter().cloned().collect() }
    }

    async fn run(mut self) -> Result<Report, Failure> {
        let busy_until = self.now + self.s.busy_ms;
        let end = busy_until + self.s.quiet_ms;
        let mut next_flush = self.now + DISK_FLUSH_MS;
        let mut next_regossip = self.now + REGOSSIP_MS;
        let mut restarts: BTreeMap<usize, u64> = BTreeMap::new();
        let mut healed = false;
        while self.now < end {
            let busy = self.now < busy_until;
            if !busy && !healed {
                healed = true;
                self.log("faults end: partition healed, every node up".into());
                for n in &mut self.nodes {
                    n.side = 0;
                }
                for i in 0..self.nodes.len() {
                    if self.nodes[i].live.is_none() {
                        self.start(i);
                    }
                }
                restarts.clear();
            }
            // Messages due.
            while self.net.peek().is_some_and(|m| m.0.at <= self.now) {
                let std::cmp::Reverse(m) = self.net.pop().expect("peeked");
                self.deliver(m);
            }
            if self.now >= next_flush {
                next_flush += DISK_FLUSH_MS;
                for n in &self.nodes {
                    if n.live.is_some() {
                        n.disk.background_flush();
                    }
                }
            }
            if self.now >= next_regossip {
                next_regossip += REGOSSIP_MS;
                self.regossip();
            }
            let due_restarts: Vec<usize> =
                restarts.iter().filter(|(_, t)| **t <= self.now).map(|(i, _)| *i).collect();
            for i in due_restarts {
                restarts.remove(&i);
                self.start(i);
            }
            if busy {
                if self.rng.gen_range(0..1000) < self.s.submit_per_mille {
                    self.client().await;
                }
                if self.rng.gen_range(0..1000) < self.s.crash_per_mille {
                    let up: Vec<usize> =
                        (0..self.nodes.len()).filter(|i| self.nodes[*i].live.is_some()).collect();
                    if !up.is_empty() {
                        let i = up[self.rng.gen_range(0..up.len())];
                        self.crash(i);
                        restarts.insert(i, self.now + self.rng.gen_range(500..15_000));
                    }
                }
                if self.rng.gen_range(0..1000) < self.s.partition_per_mille {
                    self.partition();
                }
                // A node crashed right after an acknowledgement restarts later.
                for i in 0..self.nodes.len() {
                    if self.nodes[i].live.is_none() && !restarts.contains_key(&i) {
                        restarts.insert(i, self.now + self.rng.gen_range(500..15_000));
                    }
                }
            }
            let wait = if self.work { BATCH_MS } else { HEARTBEAT_MS };
            if self.now >= self.last_block + wait {
                self.consensus_round()?;
            }
            self.now += if busy { self.rng.gen_range(5..60) } else { self.rng.gen_range(50..500) };
        }
        self.check()
    }

    /// A client's action: a bid, a transfer, a cancel, a resubmission or a forgery, sent to
    /// one node.
    async fn client(&mut self) {
        let b = self.rng.gen_range(0..self.buyers.len());
        let to = self.rng.gen_range(0..self.nodes.len());
        let roll = self.rng.gen_range(0..100);
        let entry = if roll < 60 {
            self.buyers[b].nonce += 1;
            let slots = self.rng.gen_range(1..=2);
            let fill =
                if self.rng.gen_bool(0.5) { FillRule::AllOrNone } else { FillRule::AtLeast(1) };
            let order = Order::Bid(Bid {
                market: self.market.clone(),
                slots,
                hours: self.rng.gen_range(1..=2),
                limit: self.rng.gen_range(80..300),
                earliest_ms: self.now,
                latest_ms: self.now + HOUR_MS,
                fill,
                expiry_ms: self.now + self.rng.gen_range(1_000..60_000),
                nonce: self.buyers[b].nonce,
            });
            SignedOrder::sign(CHAIN, order, &self.buyers[b].key).0
        } else if roll < 80 {
            let state = self.nodes[to].maker.state.clone();
            let from = self.buyers[b].key.public();
            let committed = state.account(&from).seq;
            let dropped = &self.dropped;
            self.buyers[b]
                .transfers
                .retain(|seq, id| *seq >= committed && !dropped.contains_key(id));
            let seq = self.buyers[b].transfers.keys().next_back().map_or(committed, |s| s + 1);
            let other = self.buyers[(b + 1) % self.buyers.len()].key.public();
            let tx = Tx::Transfer { to: other, amount: self.rng.gen_range(1..1_000), seq };
            Entry::signed(CHAIN, tx.kind(), tx.encode(), &self.buyers[b].key)
        } else if roll < 88 && !self.buyers[b].bids.is_empty() {
            let k = self.rng.gen_range(0..self.buyers[b].bids.len());
            SignedCancel::sign(CHAIN, self.buyers[b].bids[k], &self.buyers[b].key).0
        } else if roll < 96 && !self.acked.is_empty() {
            // The same entry again, perhaps to another node: acknowledged again, once in the
            // ledger.
            let k = self.rng.gen_range(0..self.acked.len());
            let id = *self.acked.keys().nth(k).expect("in range");
            match self.find_entry(&id) {
                Some(e) => e,
                None => return,
            }
        } else {
            // A forgery: a bid signed by one buyer and claimed by another.
            self.buyers[b].nonce += 1;
            let (mut e, _) = SignedOrder::sign(
                CHAIN,
                Order::Bid(Bid {
                    market: self.market.clone(),
                    slots: 1,
                    hours: 1,
                    limit: 100,
                    earliest_ms: self.now,
                    latest_ms: self.now + HOUR_MS,
                    fill: FillRule::AllOrNone,
                    expiry_ms: self.now + 10_000,
                    nonce: self.buyers[b].nonce,
                }),
                &self.buyers[b].key,
            );
            if let Auth::Signed { author, .. } = &mut e.auth {
                *author = self.buyers[(b + 1) % self.buyers.len()].key.public();
            }
            if let Some(id) = self.submit(to, e).await {
                self.acked.remove(&id);
                self.forged = Some(format!("node {to} acknowledged a forged entry {}", short(&id)));
            }
            return;
        };
        let kind = entry.kind;
        let tx = Tx::decode(entry.kind, &entry.payload).ok();
        let is_bid =
            matches!(SignedOrder::from_entry(&entry), Ok(o) if matches!(o.order, Order::Bid(_)));
        if let Some(id) = self.submit(to, entry).await {
            if let Some(Tx::Transfer { seq, .. }) = tx {
                self.buyers[b].transfers.insert(seq, id);
            }
            if is_bid {
                self.buyers[b].bids.push(id);
            }
            self.log(format!("node {to} acknowledged {} {}", kind.name(), short(&id)));
            if self.rng.gen_range(0..1000) < self.s.crash_after_ack_per_mille {
                self.crash(to);
            }
        }
    }

    /// An entry by id, from any node's ledger or mempool.
    fn find_entry(&self, id: &Hash) -> Option<Entry> {
        for n in &self.nodes {
            if let Some(l) = &n.live {
                if let Some(e) = l.core.mempool().iter().find(|e| e.id() == *id) {
                    return Some(e.clone());
                }
            }
            for b in n.ledger.iter().rev().take(200) {
                if let Some(e) = b.entries.iter().find(|e| e.id() == *id) {
                    return Some(e.clone());
                }
            }
        }
        None
    }

    /// The API's submission path (`runtime::Api::submit`): admission by the core, the journal
    /// made durable, gossip, then the acknowledgement. `None` if refused or the node is down.
    async fn submit(&mut self, i: usize, entry: Entry) -> Option<Hash> {
        let bytes = entry.encode();
        let now = self.now;
        let live = self.nodes[i].live.as_mut()?;
        let admitted = live.core.admit(entry, now);
        self.take_dropped(i);
        let a = admitted.ok()?;
        let live = self.nodes[i].live.as_mut()?;
        if live.journal.insert_durable(&a.id, &bytes).await.is_err() {
            live.core.forget(&a.id);
            return None;
        }
        if a.fresh {
            self.work = true;
        }
        self.gossip(i, a.id, bytes);
        self.acked.entry(a.id).or_insert((i, now));
        Some(a.id)
    }

    /// The node's own entries (offers, grants): admitted and gossiped, not journaled (its
    /// duties derive them again from the state after a restart).
    fn submit_own(&mut self, i: usize, entry: Entry) {
        let bytes = entry.encode();
        let now = self.now;
        let Some(live) = self.nodes[i].live.as_mut() else { return };
        let admitted = live.core.admit(entry, now);
        self.take_dropped(i);
        match admitted {
            Ok(a) => {
                self.work |= a.fresh;
                self.gossip(i, a.id, bytes);
            }
            Err(r) => self.log(format!("node {i}: own entry refused: {}", r.code)),
        }
    }

    /// Publishes to every peer this node is connected to now; if none, marks it unsent.
    fn gossip(&mut self, from: usize, id: Hash, bytes: Vec<u8>) {
        let peers: Vec<usize> =
            (0..self.nodes.len()).filter(|j| *j != from && self.connected(from, *j)).collect();
        if peers.is_empty() {
            if let Some(l) = self.nodes[from].live.as_mut() {
                l.core.mark_unsent(&id);
            }
            return;
        }
        for to in peers {
            if self.rng.gen_range(0..1000) < self.s.loss_per_mille {
                continue;
            }
            self.msg_seq += 1;
            let at = self.now + self.rng.gen_range(2..150);
            let m = Msg { at, seq: self.msg_seq, from, to, bytes: bytes.clone() };
            self.net.push(std::cmp::Reverse(m));
        }
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.nodes[a], &self.nodes[b]);
        x.live.is_some() && y.live.is_some() && x.side == y.side
    }

    /// A gossip message arrives: the gossip validator admits it; a new entry is relayed.
    fn deliver(&mut self, m: Msg) {
        if !self.connected(m.from, m.to) {
            return;
        }
        let Ok(entry) = Entry::decode(&m.bytes) else { return };
        let now = self.now;
        let Some(live) = self.nodes[m.to].live.as_mut() else { return };
        let admitted = live.core.admit(entry, now);
        self.take_dropped(m.to);
        if let Ok(a) = admitted {
            if a.fresh {
                self.work = true;
                self.gossip(m.to, a.id, m.bytes);
            }
        }
    }

    /// `runtime::regossip`: entries that reached no peer, each tick; aged ones every tenth
    /// tick while the node is in step with the chain.
    fn regossip(&mut self) {
        self.regossip_ticks += 1;
        let aged = self.regossip_ticks.is_multiple_of(REGOSSIP_AGED_EVERY);
        for i in 0..self.nodes.len() {
            let has_peer = (0..self.nodes.len()).any(|j| j != i && self.connected(i, j));
            if !has_peer {
                continue;
            }
            let now = self.now;
            let head_ms = self.nodes[i].head.timestamp_ms;
            let Some(live) = self.nodes[i].live.as_mut() else { continue };
            let mut out = live.core.take_unsent(1_000);
            if aged && now.saturating_sub(head_ms) <= 30_000 {
                out.extend(live.core.due_for_gossip(now, REGOSSIP_AGE_MS, 1_000));
            }
            for e in out {
                self.gossip(i, e.id(), e.encode());
            }
        }
    }

    fn take_dropped(&mut self, i: usize) {
        let Some(live) = self.nodes[i].live.as_mut() else { return };
        for (id, s) in live.core.take_dropped() {
            if let Submission::Dropped { code, .. } = s {
                self.dropped.entry(id).or_insert(code);
            }
        }
    }

    fn crash(&mut self, i: usize) {
        if self.nodes[i].live.take().is_some() {
            self.nodes[i].disk.crash();
            self.report.crashes += 1;
            self.log(format!("node {i} crashed"));
        }
    }

    /// Starts (or restarts) a node from what survived: its ledger and head state, then the
    /// journal's replay, then its duties.
    fn start(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let mut core = Core::new(
            n.head.clone(),
            Arc::new(n.maker.state.clone()),
            Mempool::new(10_000, 64 << 20).with_seq_gap_ttl(SEQ_GAP_TTL_MS),
        );
        core.own_keys(CHAIN, vec![n.key.clone()]);
        let journal = Journal::new(n.disk.clone());
        n.live = Some(Live { core, journal });
        let now = self.now;
        let live = self.nodes[i].live.as_mut().expect("just started");
        let replayed = live.core.replay(live.journal.entries(), now);
        for k in &replayed.remove {
            live.journal.remove(k);
        }
        for (id, s) in replayed.refused {
            if let Submission::Dropped { code, .. } = s {
                self.dropped.entry(id).or_insert(code);
            }
        }
        let kept = replayed.kept.len();
        self.work |= kept > 0;
        self.log(format!(
            "node {i} started at height {}, {kept} entries replayed",
            self.nodes[i].head.height
        ));
        for (id, bytes) in replayed.kept {
            self.gossip(i, id, bytes);
        }
        self.duties(i);
    }

    fn partition(&mut self) {
        if self.nodes.iter().any(|n| n.side != 0) {
            for n in &mut self.nodes {
                n.side = 0;
            }
            self.log("partition healed".into());
            return;
        }
        let cut = self.rng.gen_range(1..self.nodes.len());
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        for k in (1..order.len()).rev() {
            order.swap(k, self.rng.gen_range(0..=k));
        }
        for &i in &order[..cut] {
            self.nodes[i].side = 1;
        }
        self.report.partitions += 1;
        self.log(format!("partition: {:?} apart", &order[..cut]));
    }

    /// The consensus stand-in: if 2f+1 validators are up and connected, those behind sync,
    /// then the proposer of the first round whose proposer is among them builds the next block
    /// from its mempool and all of them commit it.
    fn consensus_round(&mut self) -> Result<(), Failure> {
        let n = self.nodes.len();
        let quorum = 2 * ((n - 1) / 3) + 1;
        let group: Vec<usize> = [0u8, 1]
            .iter()
            .map(|side| {
                (0..n)
                    .filter(|i| self.nodes[*i].live.is_some() && self.nodes[*i].side == *side)
                    .collect::<Vec<_>>()
            })
            .find(|g| g.len() >= quorum)
            .unwrap_or_default();
        if group.is_empty() {
            return Ok(());
        }
        let top =
            group.iter().copied().max_by_key(|i| self.nodes[*i].head.height).expect("non-empty");
        let top_height = self.nodes[top].head.height;
        for &i in &group {
            while self.nodes[i].head.height < top_height {
                let b = self.nodes[top].ledger[self.nodes[i].head.height as usize].clone();
                self.commit(i, b)?;
            }
        }
        let height = top_height + 1;
        let proposer = (0..n)
            .map(|r| ((height - 1) as usize + r) % n)
            .find(|p| group.contains(p))
            .expect("the group holds a validator");
        let prop = &self.nodes[proposer];
        let live = prop.live.as_ref().expect("in the group");
        let user = live.core.pending(MAX_BLOCK_ENTRIES, MAX_BLOCK_BYTES);
        let mut maker = prop.maker.clone();
        let timestamp = self.now.max(prop.head.timestamp_ms);
        let (block, applied) = maker
            .next(&user, timestamp, self.validators[proposer])
            .map_err(|e| self.fail(format!("node {proposer} cannot build block {height}: {e}")))?;
        let refused: Vec<_> = applied
            .refused
            .iter()
            .filter_map(|(k, r)| user.get(*k).map(|e| (e.id(), r.clone())))
            .collect();
        if !refused.is_empty() {
            if let Some(l) = self.nodes[proposer].live.as_mut() {
                l.core.refused(refused);
            }
            self.take_dropped(proposer);
        }
        if !user.is_empty() {
            self.log(format!(
                "block {height} by node {proposer}: {} user entries, {} refused, group {group:?}",
                user.len() - applied.refused.len(),
                applied.refused.len()
            ));
        }
        let block = Arc::new(block);
        for &i in &group {
            self.commit(i, block.clone())?;
        }
        self.last_block = self.now;
        self.work = group
            .iter()
            .any(|i| self.nodes[*i].live.as_ref().is_some_and(|l| !l.core.mempool().is_empty()));
        Ok(())
    }

    /// Node `i` re-executes and commits `block`, then does what `runtime::on_commit` does.
    fn commit(&mut self, i: usize, block: Arc<Block>) -> Result<(), Failure> {
        let h = &block.header;
        let user: Vec<Entry> = block
            .entries
            .iter()
            .filter(|e| matches!(e.auth, Auth::Signed { .. }))
            .cloned()
            .collect();
        let made = self.nodes[i].maker.next(&user, h.timestamp_ms, h.proposer);
        match made {
            Ok((made, applied)) if made.header == block.header && applied.refused.is_empty() => {}
            Ok(_) => {
                return Err(
                    self.fail(format!("node {i}: block {} re-executes differently", h.height))
                )
            }
            Err(e) => {
                return Err(self.fail(format!("node {i} cannot re-execute block {}: {e}", h.height)))
            }
        }
        let node = &mut self.nodes[i];
        node.ledger.push(block.clone());
        node.head = block.header.clone();
        let state = Arc::new(node.maker.state.clone());
        let now = self.now;
        let mut resigned = Vec::new();
        if let Some(live) = node.live.as_mut() {
            let ids: Vec<Hash> = block.entries.iter().map(Entry::id).collect();
            for id in &ids {
                live.journal.remove(id);
            }
            resigned = live.core.commit(block.header.clone(), state.clone(), &ids, now);
        }
        for e in resigned {
            self.log(format!("node {i}: signed an own transaction again after a sequence gap"));
            self.work = true;
            self.gossip(i, e.id(), e.encode());
        }
        if state.total_credits() != self.supply || u128::from(state.supply()) != self.supply {
            let what = format!(
                "node {i} at height {}: credits {} and supply {} differ from genesis {}",
                h.height,
                state.total_credits(),
                state.supply(),
                self.supply
            );
            return Err(self.fail(what));
        }
        self.take_dropped(i);
        self.duties(i);
        Ok(())
    }

    /// The provider's duties (`runtime::plan_inventory` and `runtime::reconcile_leases`): offers
    /// from its pool, and each lease started, granted and ended from the state.
    fn duties(&mut self, i: usize) {
        let Some(live) = self.nodes[i].live.as_ref() else { return };
        let node = &self.nodes[i];
        let me = node.key.public();
        let state = live.core.snapshot().state.clone();
        let plan =
            provider::plan(&self.pools, &state, &me, &live.core.pending_offers(&me), self.now);
        let mut own = plan.entries(CHAIN, &node.key);
        let record = |id: &Hash| node.provisioned.get(id).cloned().unwrap_or_default();
        let open: Vec<Hash> = node
            .provisioned
            .iter()
            .filter(|(_, r)| r.started && !r.ended)
            .map(|(id, _)| *id)
            .collect();
        let found = provider::duties(&state, &me, &record, &open);
        let mut records = vec![];
        let mut tokens = vec![];
        let mut pending = live.core.pending_of(&me);
        for duty in found.duties {
            match duty {
                provider::Duty::Start(id) => records.push((id, true)),
                provider::Duty::End(id) => records.push((id, false)),
                // The simulated hooks name no probe target.
                provider::Duty::Probe(_) => {}
                provider::Duty::Grant(id) => {
                    let held = node.provisioned.get(&id).and_then(|r| r.token_until_ms);
                    if !provider::needs_grant(&state, &id, &pending, held) {
                        continue;
                    }
                    let Some(lease) = state.lease(&id) else { continue };
                    let Ok(c) = credential::mint(
                        lease,
                        &node.key,
                        &["read", "write", "manage"],
                        &mut self.rng,
                    ) else {
                        continue;
                    };
                    let tx = Tx::Grant {
                        lease: id,
                        token_hash: c.token_hash,
                        revocation_ids: c.revocation_ids,
                        seq: provider::next_seq(&state, &me, &pending),
                        sealed: Vec::new(),
                    };
                    own.push(Entry::signed(CHAIN, tx.kind(), tx.encode(), &node.key));
                    pending.push(tx);
                    tokens.push((id, lease.fill.end_ms));
                }
            }
        }
        for (id, held) in tokens {
            self.nodes[i].provisioned.entry(id).or_default().token_until_ms = Some(held);
        }
        for (id, start) in records {
            let r = self.nodes[i].provisioned.entry(id).or_default();
            if start {
                r.started = true;
            } else {
                r.ended = true;
            }
        }
        for e in own {
            self.submit_own(i, e);
        }
    }

    /// The invariants, once the faults are over and the network has been quiet.
    fn check(mut self) -> Result<Report, Failure> {
        if let Some(what) = self.forged.take() {
            return Err(self.fail(what));
        }
        let head = self.nodes[0].head.clone();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.head != head {
                return Err(self.fail(format!(
                    "node {i} ends at height {} ({}), node 0 at {} ({})",
                    n.head.height,
                    short(&n.head.hash()),
                    head.height,
                    short(&head.hash())
                )));
            }
        }
        let committed: BTreeSet<Hash> =
            self.nodes[0].ledger.iter().flat_map(|b| b.entries.iter().map(Entry::id)).collect();
        let mut lost = vec![];
        for (id, (node, at)) in &self.acked {
            if committed.contains(id) {
                self.report.committed += 1;
            } else if self.dropped.contains_key(id) {
                self.report.dropped += 1;
            } else {
                lost.push(format!("{} (acknowledged by node {node} at t+{})", short(id), at - T0));
            }
        }
        if !lost.is_empty() {
            return Err(self.fail(format!(
                "{} acknowledged entries neither committed nor dropped: {}",
                lost.len(),
                lost.join(", ")
            )));
        }
        let state: &State = &self.nodes[0].maker.state;
        for lease in state.leases() {
            let Some(p) = self.nodes.iter().position(|n| n.key.public() == lease.fill.provider)
            else {
                continue;
            };
            let rec = self.nodes[p].provisioned.get(&lease.id).cloned().unwrap_or_default();
            if !(rec.started && lease.grant.is_some()) {
                return Err(self.fail(format!(
                    "live lease {} of node {p}: started {}, granted {}",
                    short(&lease.id),
                    rec.started,
                    lease.grant.is_some()
                )));
            }
        }
        // A lease that ended has left the state: whoever started it has ended it.
        for (p, n) in self.nodes.iter().enumerate() {
            for (id, rec) in &n.provisioned {
                if rec.started && !rec.ended && state.lease(id).is_none() {
                    return Err(self.fail(format!(
                        "lease {} ended, node {p} started it and did not end it",
                        short(id)
                    )));
                }
            }
        }
        // Every lease made, live or ended: the fills in the ledger.
        self.report.leases = self.nodes[0]
            .ledger
            .iter()
            .flat_map(|b| b.entries.iter())
            .filter(|e| e.kind == surplus_ledger::EntryKind::FILL)
            .count();
        self.report.height = head.height;
        self.report.head = head.hash();
        self.report.acked = self.acked.len();
        Ok(self.report)
    }
}

fn short(id: &Hash) -> String {
    hex::encode(&id[..4])
}
