//! The one owner of a node's state: the head, the contract state after it and the mempool.
//!
//! [`Core`] is plain data with methods that take the time as an argument: no locks, no clock,
//! no I/O. A node runs it on one task ([`spawn`]) fed by a bounded channel ([`CoreHandle`]);
//! everything that changes the mempool or the head — admission from the API and from gossip,
//! block building, commits, re-gossip — is a job on that channel, done one at a time, in
//! order. Readers that only need the head and state read the [`Snapshot`] published at each
//! commit and never wait for the core. The simulated consortium ([`crate::sim`]) drives the
//! same `Core` directly, with its own clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use surplus_contracts::{Refusal, State, Tx};
use surplus_ledger::{Entry, EntryKind, Hash, Header, PublicKey};
use surplus_web::Submission;
use tokio::sync::{mpsc, oneshot, watch};

use crate::mempool::{self, Inserted, Mempool};

/// The head and the contract state after it: what the API and admission read, replaced whole
/// at each commit (a reader never sees one block's head with another's state).
#[derive(Debug)]
pub struct Snapshot {
    /// The last committed header.
    pub head: Header,
    /// The state after it.
    pub state: Arc<State>,
}

/// An entry the core took in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// Its id.
    pub id: Hash,
    /// Whether it is new here (not a duplicate of one the mempool holds).
    pub fresh: bool,
}

/// The head, the state after it and the mempool.
pub struct Core {
    snapshot: watch::Sender<Arc<Snapshot>>,
    mempool: Mempool,
}

impl Core {
    /// A core at `head` with the state after it and an empty mempool.
    pub fn new(head: Header, state: Arc<State>, mempool: Mempool) -> Self {
        let snapshot = watch::Sender::new(Arc::new(Snapshot { head, state }));
        Self { snapshot, mempool }
    }

    /// A receiver of the snapshot published at each commit.
    pub fn watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.subscribe()
    }

    /// The head and state as of the last commit.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// The mempool, to read.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// Admits `entry` (from the API, gossip, the journal or the node itself) at `now_ms`: the
    /// contract's precheck against the head's state, then the mempool's limits.
    pub fn admit(&mut self, entry: Entry, now_ms: u64) -> Result<Admitted, surplus_web::Refusal> {
        // A copy of a pending entry (gossip brings each from several peers) was checked when the
        // first came, against a state every commit since has rechecked it against.
        let id = entry.id();
        if self.mempool.contains(&id) {
            return Ok(Admitted { id, fresh: false });
        }
        let state = self.snapshot().state.clone();
        let admitted =
            state.precheck(&entry, now_ms).map_err(|r| surplus_web::Refusal::from(&r))?;
        let id = admitted.id;
        match self.mempool.insert(entry, &admitted, now_ms) {
            Ok(Inserted::New { .. }) => Ok(Admitted { id, fresh: true }),
            Ok(Inserted::Duplicate) => Ok(Admitted { id, fresh: false }),
            Err(e) => Err(surplus_web::Refusal::new(e.code(), e.to_string())),
        }
    }

    /// Entries for the next block, in arrival order, within the limits.
    pub fn pending(&self, max_entries: usize, max_bytes: usize) -> Vec<Entry> {
        self.mempool.pending(max_entries, max_bytes)
    }

    /// Entries the state machine refused while building a block: a transaction ahead of its
    /// account's next sequence number stays (the ones before it may come); everything else
    /// can never apply and is dropped, with why.
    pub fn refused(&mut self, refused: Vec<(Hash, Refusal)>) {
        let drop = refused
            .into_iter()
            .filter(|(_, r)| !matches!(r, Refusal::BadSequence { expected, got } if got > expected))
            .map(|(id, r)| (id, r.code(), r.explain()))
            .collect();
        self.mempool.drop_refused(drop);
    }

    /// A block was committed: publishes its head with the state after it, removes its entries
    /// from the mempool, and drops what expired or can no longer apply.
    pub fn commit(&mut self, head: Header, state: Arc<State>, ids: &[Hash], now_ms: u64) {
        self.snapshot.send_replace(Arc::new(Snapshot { head, state: state.clone() }));
        self.mempool.remove_committed(ids);
        self.mempool.evict_expired(now_ms);
        // Signatures were verified on admission; only what the block changed is checked again.
        self.mempool
            .retain(|e| state.recheck(e, now_ms).map(|_| ()).map_err(|r| (r.code(), r.explain())));
    }

    /// Forgets an admitted entry that could not be made durable (it was never acknowledged).
    pub fn forget(&mut self, id: &Hash) {
        self.mempool.remove_committed(&[*id]);
    }

    /// The receipts of the entries dropped since the last call, oldest first.
    pub fn take_dropped(&mut self) -> Vec<(Hash, Submission)> {
        self.mempool
            .take_dropped()
            .into_iter()
            .map(|d: mempool::Dropped| {
                (d.id, Submission::Dropped { code: d.code, message: d.message })
            })
            .collect()
    }

    /// What the mempool says of `id`: pending (and whether it waits for earlier sequence
    /// numbers), or `None` if it does not hold it.
    pub fn lookup(&self, id: &Hash) -> Option<Submission> {
        self.mempool
            .contains(id)
            .then(|| Submission::Pending { waits_for_seq: self.mempool.waits_for_seq(id) })
    }

    /// Marks a pending entry whose gossip reached no peer.
    pub fn mark_unsent(&mut self, id: &Hash) {
        self.mempool.mark_unsent(id);
    }

    /// Up to `max` pending entries whose gossip reached no peer (they count as sent now).
    pub fn take_unsent(&mut self, max: usize) -> Vec<Entry> {
        self.mempool.take_unsent(max)
    }

    /// Up to `max` entries that waited `age_ms` since admitted or last gossiped.
    pub fn due_for_gossip(&mut self, now_ms: u64, age_ms: u64, max: usize) -> Vec<Entry> {
        self.mempool.due_for_gossip(now_ms, age_ms, max)
    }

    /// The transactions `key` has waiting (their count is how far its next sequence number is
    /// ahead of the committed one).
    pub fn pending_of(&self, key: &PublicKey) -> Vec<Tx> {
        self.mempool
            .iter()
            .filter(
                |e| matches!(e.auth, surplus_ledger::Auth::Signed { author, .. } if author == *key),
            )
            .filter_map(|e| Tx::decode(e.kind, &e.payload).ok())
            .collect()
    }

    /// The offers `key` has waiting.
    pub fn pending_offers(&self, key: &PublicKey) -> Vec<surplus_market::Offer> {
        self.mempool
            .iter()
            .filter(|e| e.kind == EntryKind::ORDER)
            .filter_map(|e| surplus_market::SignedOrder::from_entry(e).ok())
            .filter(|o| o.author == *key)
            .filter_map(|o| match o.order {
                surplus_market::Order::Offer(offer) => Some(offer),
                surplus_market::Order::Bid(_) => None,
            })
            .collect()
    }

    /// Whether a transfer to `account` waits (from anyone).
    pub fn transfer_pending_to(&self, account: &PublicKey) -> bool {
        self.mempool.iter().filter(|e| e.kind == EntryKind::TRANSFER).any(|e| {
            matches!(Tx::decode(e.kind, &e.payload), Ok(Tx::Transfer { to, .. }) if to == *account)
        })
    }

    /// Re-admits the entries of the journal (acknowledged before a stop or a crash) at
    /// `now_ms`: those admitted again stay journaled; for the others, the receipt to record
    /// (unless the entry is known to be committed) and that they leave the journal.
    pub fn replay(&mut self, journal: Vec<(Vec<u8>, Vec<u8>)>, now_ms: u64) -> Replayed {
        let mut out = Replayed::default();
        for (key, bytes) in journal {
            let entry = match Entry::decode(&bytes) {
                Ok(e) => e,
                Err(_) => {
                    out.remove.push(key);
                    continue;
                }
            };
            let id = entry.id();
            match self.admit(entry, now_ms) {
                Ok(a) => out.kept.push((a.id, bytes)),
                Err(r) => {
                    let message =
                        format!("after a restart the node could not admit it again: {}", r.message);
                    out.refused.push((id, Submission::Dropped { code: r.code, message }));
                    out.remove.push(key);
                }
            }
        }
        out
    }
}

/// What [`Core::replay`] made of the journal.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Entries admitted again (id, bytes): to gossip again.
    pub kept: Vec<(Hash, Vec<u8>)>,
    /// Entries that cannot be admitted again, with the receipt that says why (the caller keeps
    /// a committed receipt instead where it has one).
    pub refused: Vec<(Hash, Submission)>,
    /// Journal keys to remove.
    pub remove: Vec<Vec<u8>>,
}

type Job = Box<dyn FnOnce(&mut Core) + Send>;

/// The core is gone (the node is stopping).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the node is stopping")]
pub struct Stopped;

/// The way to the core task: a bounded channel of jobs, each done on the core in turn.
#[derive(Clone)]
pub struct CoreHandle {
    jobs: mpsc::Sender<Job>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Entries in the mempool after the last job (for status and metrics without a job).
    pending: Arc<AtomicUsize>,
    /// Bytes in the mempool after the last job.
    pending_bytes: Arc<AtomicUsize>,
}

/// How many jobs may wait for the core (admissions, block building, commits); a caller waits
/// for room beyond it.
pub const QUEUE: usize = 4_096;

/// Runs `core` on a task of `env`; `dropped` receives the receipts of entries the mempool
/// dropped, after each job. The task ends when every handle is gone.
pub fn spawn(
    mut core: Core,
    env: &surplus_net::Env,
    mut dropped: impl FnMut(Vec<(Hash, Submission)>) + Send + 'static,
) -> CoreHandle {
    let (jobs, mut rx) = mpsc::channel::<Job>(QUEUE);
    let pending = Arc::new(AtomicUsize::new(core.mempool.len()));
    let pending_bytes = Arc::new(AtomicUsize::new(core.mempool.bytes()));
    let handle = CoreHandle {
        jobs,
        snapshot: core.watch(),
        pending: pending.clone(),
        pending_bytes: pending_bytes.clone(),
    };
    env.spawn(async move {
        while let Some(job) = rx.recv().await {
            job(&mut core);
            pending.store(core.mempool.len(), Ordering::Relaxed);
            pending_bytes.store(core.mempool.bytes(), Ordering::Relaxed);
            let d = core.take_dropped();
            if !d.is_empty() {
                dropped(d);
            }
        }
    });
    handle
}

impl CoreHandle {
    /// Runs `f` on the core and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> R + Send + 'static,
    ) -> Result<R, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |c: &mut Core| {
                let _ = tx.send(f(c));
            }))
            .await
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// [`CoreHandle::call`] from a thread outside the runtime (the gossip validator's).
    pub fn blocking_call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> R + Send + 'static,
    ) -> Result<R, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .blocking_send(Box::new(move |c: &mut Core| {
                let _ = tx.send(f(c));
            }))
            .map_err(|_| Stopped)?;
        rx.blocking_recv().map_err(|_| Stopped)
    }

    /// The head and state as of the last commit.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Entries in the mempool.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Bytes in the mempool.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes.load(Ordering::Relaxed)
    }

    /// Jobs waiting for the core (the queue's metric).
    pub fn queued(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }
}
