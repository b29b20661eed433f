//! A stand-in for the real node at the [`Node`] boundary (feature `test-utils`): it has no
//! network, mempool or consensus; every submitted entry is applied at once as a block of its
//! own, on a real contracts [`State`] built with [`BlockMaker`]. As a provider, it mints the
//! credential of each new lease of its key and records the grant in the next block, as the real
//! node does after a lease starts.
//!
//! Each block is signed by the node's key (the chain's one validator) and appended to a real
//! ledger [`Store`] over an in-memory backend, so the ledger routes (blocks, entries, proofs,
//! checkpoints, export) serve what the real node would. Each block publishes its events; the
//! faucet is off until [`TestNode::set_faucet`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::SeedableRng;
use surplus_contracts::{
    credential, decode_fill, Allocation, BlockMaker, Code, Genesis, Lease, LeaseStatus, Params,
    State, Tx,
};
use surplus_ledger::bundle::ProofBundle;
use surplus_ledger::{
    vote_bytes, Block, Certificate, CommitSig, Entry, EntryKind, Hash, PublicKey, SecretKey,
    SignedCheckpoint, VoteKind,
};
use surplus_market::{Catalogue, Market};
use surplus_store::Store;
use surplus_store::{Backend, BackendError, KvIter};
use tokio::sync::broadcast;

use crate::metrics::Metrics;
use crate::node::{
    CapacityPoint, Event, FaucetGrant, Node, Operator, PricePoint, RecentBlock, Refusal, Status,
    Submission,
};

/// Events a subscriber may fall behind by before it is told it lagged.
pub const EVENT_CAPACITY: usize = 64;

/// An ordered in-memory key-value engine for the ledger store.
#[derive(Default)]
struct MemBackend(Mutex<BTreeMap<Vec<u8>, Vec<u8>>>);

impl MemBackend {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Backend for MemBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.map().get(key).cloned())
    }
    fn apply(&self, batch: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), BackendError> {
        self.map().extend(batch);
        Ok(())
    }
    fn flush(&self) -> Result<(), BackendError> {
        Ok(())
    }
    fn range<'a>(&'a self, start: &[u8], end: &[u8]) -> KvIter<'a> {
        let pairs: Vec<_> = self
            .map()
            .range(start.to_vec()..end.to_vec())
            .map(|(k, v)| Ok((k.clone(), v.clone())))
            .collect();
        Box::new(pairs.into_iter())
    }
}

/// The chain id of every test node.
pub const CHAIN: &str = "web-test";

/// A one-process node for tests.
pub struct TestNode {
    key: SecretKey,
    inner: Mutex<Inner>,
    export_dir: PathBuf,
}

struct Inner {
    maker: BlockMaker,
    state: Arc<State>,
    head: Hash,
    tokens: HashMap<Hash, Vec<u8>>,
    rng: StdRng,
    mempool_full: bool,
    last_ms: u64,
    store: Store,
    recent: Vec<RecentBlock>,
    index_of: HashMap<Hash, u64>,
    /// What became of each entry submitted (all are committed at once, or refused).
    submissions: HashMap<Hash, Submission>,
    events: broadcast::Sender<Event>,
    publishing: bool,
    history: Vec<(Market, PricePoint)>,
    metrics: Metrics,
    leased: Vec<CapacityPoint>,
    faucet: Option<(SecretKey, u64)>,
    funded: HashSet<PublicKey>,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.export_dir);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl TestNode {
    /// A node whose key is `key` (the chain's one validator and a provider), at genesis now,
    /// with `funded` accounts.
    pub fn new(key: SecretKey, funded: &[(PublicKey, u64)]) -> Self {
        let genesis = Genesis {
            validators: vec![key.public()],
            params: Params {
                catalogue: Catalogue::sample(),
                treasury: PublicKey([7; 32]),
                fee_bps: 0,
                penalty_bps: 0,
            },
            allocations: funded
                .iter()
                .map(|(account, amount)| Allocation { account: *account, amount: *amount })
                .collect(),
        };
        let now = now_ms();
        let (block, maker) = BlockMaker::genesis(CHAIN, &genesis, now)
            .unwrap_or_else(|e| panic!("test genesis: {e}"));
        let state = Arc::new(maker.state.clone());
        let mut store = Store::with_backend(Box::<MemBackend>::default(), Default::default())
            .unwrap_or_else(|e| panic!("test store: {e}"));
        store.append(&block).unwrap_or_else(|e| panic!("test genesis block: {e}"));
        let index_of = block.entries.iter().enumerate().map(|(i, e)| (e.id(), i as u64)).collect();
        let recent = vec![RecentBlock {
            header: block.header.clone(),
            committed_ms: now,
            filled_bids: Vec::new(),
            entries: block.entries.len(),
        }];
        static NODES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let export_dir = std::env::temp_dir().join(format!(
            "surplus-web-testnode-{}-{}",
            std::process::id(),
            NODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        Self {
            key,
            export_dir,
            inner: Mutex::new(Inner {
                maker,
                state,
                head: block.header.hash(),
                tokens: HashMap::new(),
                rng: StdRng::seed_from_u64(7),
                mempool_full: false,
                last_ms: now,
                store,
                recent,
                index_of,
                submissions: HashMap::new(),
                events: broadcast::channel(EVENT_CAPACITY).0,
                publishing: true,
                history: Vec::new(),
                metrics: Metrics::default(),
                leased: Vec::new(),
                faucet: None,
                funded: HashSet::new(),
            }),
        }
    }

    /// Turns the faucet on with `key` (which must be funded) giving `amount` to each account
    /// once, or off.
    pub fn set_faucet(&self, faucet: Option<(SecretKey, u64)>) {
        self.lock().faucet = faucet;
    }

    /// Makes `subscribe` answer nothing, as a node that publishes no events (or again).
    pub fn set_publishing(&self, publishing: bool) {
        self.lock().publishing = publishing;
    }

    /// Sends `event` to every subscriber, as a committed block would.
    pub fn publish(&self, event: Event) {
        let _ = self.lock().events.send(event);
    }

    /// The node's key.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    /// Makes `submit` refuse everything as a full mempool would (or stop doing so).
    pub fn set_mempool_full(&self, full: bool) {
        self.lock().mempool_full = full;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `entries` as one block if every one is accepted; otherwise changes nothing and
    /// returns the first refusal. Then mints and grants credentials of new leases of this node.
    pub fn commit(&self, entries: &[Entry]) -> Result<(), Refusal> {
        let mut inner = self.lock();
        inner.block(entries, &self.key)?;
        let mine: Vec<surplus_contracts::Lease> = inner
            .state
            .leases()
            .filter(|l| l.fill.provider == self.key.public() && l.grant.is_none())
            .filter(|l| !inner.tokens.contains_key(&l.id))
            .cloned()
            .collect();
        for lease in mine {
            inner.grant(&lease, &self.key)?;
        }
        Ok(())
    }

    /// Mints a new token for `lease` and records it: the old token is revoked on the ledger.
    /// Returns the new token.
    pub fn regrant(&self, lease: &Hash) -> Result<Vec<u8>, Refusal> {
        let mut inner = self.lock();
        let l = inner
            .state
            .lease(lease)
            .cloned()
            .ok_or_else(|| Refusal::new(Code::UnknownLease, "no such lease"))?;
        inner.grant(&l, &self.key)?;
        Ok(inner.tokens.get(lease).cloned().unwrap_or_default())
    }
}

impl Inner {
    fn block(&mut self, entries: &[Entry], key: &SecretKey) -> Result<(), Refusal> {
        let proposer = &key.public();
        if self.mempool_full {
            return Err(Refusal::new(Code::MempoolFull, "the mempool is full; retry later"));
        }
        let mut maker = self.maker.clone();
        let ts = now_ms().max(self.last_ms);
        let (block, applied) = maker
            .next(entries, ts, *proposer)
            .map_err(|e| Refusal::new(Code::Internal, e.to_string()))?;
        if let Some((_, r)) = applied.refused.first() {
            return Err(Refusal::from(r));
        }
        let mut block = block;
        let hash = block.header.hash();
        let vote = vote_bytes(CHAIN, block.header.height, 0, VoteKind::Precommit, Some(&hash));
        block.certificate = Certificate {
            round: 0,
            signatures: vec![CommitSig { validator: 0, signature: key.sign(&vote) }],
        };
        self.store.append(&block).map_err(|e| Refusal::new(Code::Internal, e.to_string()))?;
        let old = std::mem::replace(&mut self.state, Arc::new(maker.state.clone()));
        self.maker = maker;
        self.head = hash;
        self.last_ms = ts;
        for e in entries {
            self.submissions.insert(e.id(), Submission::Committed { height: block.header.height });
        }
        self.record(&block, &old, key, entries);
        Ok(())
    }

    /// What the node remembers and publishes of a committed block.
    fn record(&mut self, block: &Block, old: &State, key: &SecretKey, user: &[Entry]) {
        let h = &block.header;
        let first = h.tree_size - block.entries.len() as u64;
        let mut fills = Vec::new();
        for (i, e) in block.entries.iter().enumerate() {
            self.index_of.insert(e.id(), first + i as u64);
            if e.kind == EntryKind::FILL {
                if let Ok((fill, _)) = decode_fill(&e.payload) {
                    fills.push((e.id(), fill));
                }
            }
        }
        let now = now_ms();
        self.recent.push(RecentBlock {
            header: h.clone(),
            committed_ms: now,
            filled_bids: fills.iter().map(|(_, f)| hex::encode(f.bid)).collect(),
            entries: block.entries.len(),
        });
        let mut prices: BTreeMap<Market, PricePoint> = BTreeMap::new();
        for (_, f) in &fills {
            let p = prices.entry(f.market.clone()).or_insert(PricePoint {
                height: h.height,
                time_ms: h.timestamp_ms,
                price: f.price,
                slots: 0,
            });
            p.slots += u64::from(f.slots);
        }
        self.history.extend(prices);
        let m = &mut self.metrics;
        m.height = h.height;
        m.blocks_committed += 1;
        m.entries_committed += block.entries.len() as u64;
        m.orders_accepted += user
            .iter()
            .filter(|e| e.kind == EntryKind::ORDER || e.kind == EntryKind::CANCEL)
            .count() as u64;
        for _ in &fills {
            // Accepted and leased in the same call: no time passes in this node.
            m.order_to_lease_ms.observe(0);
        }
        let me = key.public();
        self.leased.push(CapacityPoint {
            height: h.height,
            time_ms: h.timestamp_ms,
            slots: self
                .state
                .leases()
                .filter(|l| l.fill.provider == me && l.status == LeaseStatus::Active)
                .map(|l| u64::from(l.fill.slots))
                .sum(),
        });
        let _ = self.events.send(Event::Block {
            height: h.height,
            hash: h.hash(),
            time_ms: h.timestamp_ms,
            entries: block.entries.len(),
            tree_size: h.tree_size,
        });
        for (lease, fill) in fills {
            let _ = self.events.send(Event::Fill { lease, height: h.height, fill });
        }
        let changed: Vec<Lease> =
            self.state.leases().filter(|l| old.lease(&l.id) != Some(*l)).cloned().collect();
        for lease in changed {
            let _ = self.events.send(Event::Lease { height: h.height, lease });
        }
    }

    fn proof(&self, lease: &Hash, key: &SecretKey) -> Result<Option<ProofBundle>, String> {
        if self.state.lease(lease).is_none() {
            return Ok(None);
        }
        let Some(&index) = self.index_of.get(lease) else { return Ok(None) };
        let s = &self.store;
        let e = |e: surplus_store::Error| e.to_string();
        let height = s.height_of_entry(index).map_err(e)?;
        let entry = s.entry(index).map_err(e)?;
        let proof = s.prove_inclusion(index, None).map_err(e)?;
        let cp = s.checkpoint(None).map_err(e)?;
        let signed = cp.clone().sign(key);
        let (header, certificate) = s.read_head(cp.height).map_err(e)?;
        Ok(Some(ProofBundle::new(height, &entry, &proof, cp, Some(&signed), header, certificate)))
    }

    fn grant(&mut self, lease: &surplus_contracts::Lease, key: &SecretKey) -> Result<(), Refusal> {
        let cred = credential::mint(lease, key, &credential::OPERATIONS, &mut self.rng)
            .map_err(|e| Refusal::new(Code::Internal, e.to_string()))?;
        let tx = Tx::Grant {
            lease: lease.id,
            token_hash: cred.token_hash,
            revocation_ids: cred.revocation_ids.clone(),
            seq: self.state.account(&key.public()).seq,
        };
        self.block(&[Entry::signed(CHAIN, tx.kind(), tx.encode(), key)], key)?;
        self.tokens.insert(lease.id, cred.token);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Node for TestNode {
    fn state(&self) -> Arc<State> {
        self.lock().state.clone()
    }

    fn status(&self) -> Status {
        let inner = self.lock();
        Status {
            chain_id: CHAIN.into(),
            node: "test-node".into(),
            public_key: self.key.public(),
            height: inner.state.height(),
            head_hash: inner.head,
            peers: 0,
            validator: true,
            mempool: 0,
            synced: true,
        }
    }

    async fn submit(&self, entry: Entry) -> Result<Hash, Refusal> {
        let id = entry.id();
        // The real node's admission, then the block.
        let state = self.state();
        let admitted = state.precheck(&entry, now_ms()).map_err(|r| Refusal::from(&r));
        if let Err(r) = admitted.and_then(|_| self.commit(std::slice::from_ref(&entry))) {
            self.lock().metrics.entries_refused += 1;
            return Err(r);
        }
        Ok(id)
    }

    fn submission(&self, id: &Hash) -> Option<Submission> {
        self.lock().submissions.get(id).cloned()
    }

    fn provisioning(&self, lease: &Hash) -> Option<serde_json::Value> {
        self.lock().tokens.contains_key(lease).then(
            || serde_json::json!({"start": {"ok": true, "attempts": 1, "detail": "test hook"}}),
        )
    }

    fn credential(&self, lease: &Hash) -> Option<Vec<u8>> {
        self.lock().tokens.get(lease).cloned()
    }

    fn access(&self, lease: &Hash) -> Option<serde_json::Value> {
        self.lock().tokens.contains_key(lease).then(|| {
            serde_json::json!({"host": "127.0.0.1", "directory": format!("/srv/leases/{}", hex::encode(lease))})
        })
    }

    fn block(&self, height: u64) -> Option<RecentBlock> {
        self.lock().recent.get(usize::try_from(height).ok()?).cloned()
    }

    fn ledger_block(&self, height: u64) -> Result<Option<Block>, String> {
        let inner = self.lock();
        if inner.store.height().is_none_or(|h| height > h) {
            return Ok(None);
        }
        inner.store.block(height).map(Some).map_err(|e| e.to_string())
    }

    fn ledger_entry(&self, index: u64) -> Result<Option<(u64, Entry)>, String> {
        let inner = self.lock();
        if index >= inner.store.tree_size() {
            return Ok(None);
        }
        let s = &inner.store;
        let height = s.height_of_entry(index).map_err(|e| e.to_string())?;
        Ok(Some((height, s.entry(index).map_err(|e| e.to_string())?)))
    }

    fn lease_proof(&self, lease: &Hash) -> Result<Option<ProofBundle>, String> {
        self.lock().proof(lease, &self.key)
    }

    fn checkpoints(&self) -> Vec<SignedCheckpoint> {
        self.lock().store.checkpoint(None).map(|c| vec![c.sign(&self.key)]).unwrap_or_default()
    }

    fn validators(&self) -> Vec<PublicKey> {
        vec![self.key.public()]
    }

    async fn export(&self) -> Result<(PathBuf, u64), String> {
        let inner = self.lock();
        let height = inner.store.height().unwrap_or(0);
        std::fs::create_dir_all(&self.export_dir).map_err(|e| e.to_string())?;
        let path = self.export_dir.join(format!("ledger-{height}.surplus"));
        if !path.exists() {
            inner.store.export(&path, &mut |_, _| {}).map_err(|e| e.to_string())?;
        }
        Ok((path, height))
    }

    fn price_history(&self, market: &Market, limit: usize) -> Vec<PricePoint> {
        let inner = self.lock();
        let all: Vec<PricePoint> =
            inner.history.iter().filter(|(m, _)| m == market).map(|(_, p)| p.clone()).collect();
        all[all.len().saturating_sub(limit)..].to_vec()
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<Event>> {
        let inner = self.lock();
        inner.publishing.then(|| inner.events.subscribe())
    }

    fn metrics(&self) -> Metrics {
        self.lock().metrics.clone()
    }

    fn operator(&self) -> Operator {
        Operator {
            inventory: Some(
                serde_json::json!({"pools": [{"market": "gpu.a100@us-east-b", "slots": 8}]}),
            ),
            leased: self.lock().leased.clone(),
            peers: Vec::new(),
        }
    }

    async fn faucet(&self, account: PublicKey) -> Result<FaucetGrant, Refusal> {
        let entry = {
            let inner = self.lock();
            let Some((key, amount)) = inner.faucet.clone() else {
                return Err(Refusal::new(Code::FaucetDisabled, "this test node has no faucet"));
            };
            if inner.funded.contains(&account) {
                return Err(Refusal::new(
                    Code::FaucetSpent,
                    format!("the faucet already funded {account}"),
                ));
            }
            let tx =
                Tx::Transfer { to: account, amount, seq: inner.state.account(&key.public()).seq };
            (Entry::signed(CHAIN, tx.kind(), tx.encode(), &key), amount)
        };
        let (entry, amount) = entry;
        self.commit(std::slice::from_ref(&entry))?;
        self.lock().funded.insert(account);
        Ok(FaucetGrant { account, amount, entry: entry.id() })
    }
}
