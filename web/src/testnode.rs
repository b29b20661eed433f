//! A stand-in for the real node at the [`Node`] boundary (feature `test-utils`): it has no
//! network, mempool or consensus; every submitted entry is applied at once as a block of its
//! own, on a real contracts [`State`] built with [`BlockMaker`]. As a provider, it mints the
//! credential of each new lease of its key and records the grant in the next block, as the real
//! node does after a lease starts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::SeedableRng;
use surplus_contracts::{credential, Allocation, BlockMaker, Genesis, Params, State, Tx};
use surplus_ledger::{Entry, Hash, PublicKey, SecretKey};
use surplus_market::Catalogue;

use crate::node::{Node, Refusal, Status};

/// The chain id of every test node.
pub const CHAIN: &str = "web-test";

/// A one-process node for tests.
pub struct TestNode {
    key: SecretKey,
    inner: Mutex<Inner>,
}

struct Inner {
    maker: BlockMaker,
    state: Arc<State>,
    head: Hash,
    tokens: HashMap<Hash, Vec<u8>>,
    rng: StdRng,
    mempool_full: bool,
    last_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn refusal(r: &surplus_contracts::Refusal) -> Refusal {
    use surplus_contracts::Refusal as R;
    let code = match r {
        R::BadSequence { .. } => Refusal::BAD_SEQUENCE.to_owned(),
        R::Market(surplus_market::Rejection::ReplayedNonce { .. }) => {
            Refusal::REPLAYED_NONCE.to_owned()
        }
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.get("reason").and_then(|c| c.as_str()).map(str::to_owned))
            .unwrap_or_else(|| "refused".into()),
    };
    Refusal::new(code, r.to_string())
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
        Self {
            key,
            inner: Mutex::new(Inner {
                maker,
                state,
                head: block.header.hash(),
                tokens: HashMap::new(),
                rng: StdRng::seed_from_u64(7),
                mempool_full: false,
                last_ms: now,
            }),
        }
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
        inner.block(entries, &self.key.public())?;
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
            .ok_or_else(|| Refusal::new("unknown_lease", "no such lease"))?;
        inner.grant(&l, &self.key)?;
        Ok(inner.tokens.get(lease).cloned().unwrap_or_default())
    }
}

impl Inner {
    fn block(&mut self, entries: &[Entry], proposer: &PublicKey) -> Result<(), Refusal> {
        if self.mempool_full {
            return Err(Refusal::new(Refusal::MEMPOOL_FULL, "the mempool is full; retry later"));
        }
        let mut maker = self.maker.clone();
        let ts = now_ms().max(self.last_ms);
        let (block, applied) = maker
            .next(entries, ts, *proposer)
            .map_err(|e| Refusal::new("invalid_block", e.to_string()))?;
        if let Some((_, r)) = applied.refused.first() {
            return Err(refusal(r));
        }
        self.maker = maker;
        self.state = Arc::new(self.maker.state.clone());
        self.head = block.header.hash();
        self.last_ms = ts;
        Ok(())
    }

    fn grant(&mut self, lease: &surplus_contracts::Lease, key: &SecretKey) -> Result<(), Refusal> {
        let cred = credential::mint(lease, key, &credential::OPERATIONS, &mut self.rng)
            .map_err(|e| Refusal::new("mint_failed", e.to_string()))?;
        let tx = Tx::Grant {
            lease: lease.id,
            token_hash: cred.token_hash,
            revocation_ids: cred.revocation_ids.clone(),
            seq: self.state.account(&key.public()).seq,
        };
        self.block(&[Entry::signed(CHAIN, tx.kind(), tx.encode(), key)], &key.public())?;
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
        self.commit(std::slice::from_ref(&entry))?;
        Ok(id)
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
}
