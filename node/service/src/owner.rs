//! The one owner of a node's state: the head, the contract state after it and the mempool.
//!
//! [`Core`] is plain data with methods that take the time as an argument: no locks, no clock,
//! no I/O. A node runs it on one task ([`spawn`]) fed by a bounded channel ([`CoreHandle`]);
//! everything that changes the mempool or the head — admission from the API and from gossip,
//! block building, commits, re-gossip — is a job on that channel, done one at a time, in
//! order. Readers that only need the head and state read the [`Snapshot`] published at each
//! commit and never wait for the core. The simulated consortium ([`crate::sim`]) drives the
//! same `Core` directly, with its own clock.

use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use surplus_contracts::{provider, Code, Refusal, State, Tx, VerifiedIds};
use surplus_ledger::{Entry, EntryKind, Hash, Header, PublicKey, SecretKey};
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

/// How an entry is checked before it enters the mempool.
#[derive(Clone, Copy, Debug)]
enum Check {
    /// A new entry: every rule, its signature included.
    New,
    /// A new entry whose signature the caller verified.
    NewVerified,
    /// An entry acknowledged before (read back from the journal, or an own one signed again):
    /// kept while still valid, even if it closes soon.
    Journaled,
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
    /// The keys this node signs transactions with itself, and the chain id it signs for.
    own: Vec<SecretKey>,
    chain_id: String,
    /// Where admission records the entries whose signatures it verified (the chain reads it).
    verified: Option<Arc<VerifiedIds>>,
}

/// Why [`Core::faucet_transfer`] sent nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum FaucetRefusal {
    /// The account has credits or history already: the faucet funds new accounts only.
    NotNew,
    /// A transfer to the account is pending already (from this faucet or another).
    AlreadySent,
    /// The faucet cannot pay the amount.
    Dry,
    /// Admission refused the transfer.
    Refused(surplus_web::Refusal),
}

impl Core {
    /// A core at `head` with the state after it and an empty mempool.
    pub fn new(head: Header, state: Arc<State>, mempool: Mempool) -> Self {
        let snapshot = watch::Sender::new(Arc::new(Snapshot { head, state }));
        Self { snapshot, mempool, own: Vec::new(), chain_id: String::new(), verified: None }
    }

    /// Records in `verified` the id of every entry admission verified, so that the blocks that
    /// carry it do not verify its signature again.
    pub fn with_verified(mut self, verified: Arc<VerifiedIds>) -> Self {
        self.verified = Some(verified);
        self
    }

    /// The keys whose transactions this node signs itself (its node key, for credential
    /// grants; a devnet's faucet key), for chain `chain_id`. The core is the one owner of their
    /// sequence numbers: [`Core::sign_own`] numbers each new transaction from the committed
    /// state and the key's pending transactions read together, and a commit after which a
    /// key's pending transactions no longer follow its committed number re-signs them.
    pub fn own_keys(&mut self, chain_id: &str, keys: Vec<SecretKey>) {
        self.chain_id = chain_id.to_owned();
        self.own = keys;
    }

    /// The secret of own key `author`.
    fn own_key(&self, author: &PublicKey) -> Result<SecretKey, surplus_web::Refusal> {
        self.own.iter().find(|k| k.public() == *author).cloned().ok_or_else(|| {
            surplus_web::Refusal::new(Code::Internal, "not a key this node signs with")
        })
    }

    /// Signs, as own key `author`, the transaction `make` builds for the key's next sequence
    /// number, and admits it at `now_ms`. Returns the entry and what admission said.
    pub fn sign_own(
        &mut self,
        author: &PublicKey,
        make: impl FnOnce(u64) -> Tx,
        now_ms: u64,
    ) -> Result<(Entry, Admitted), surplus_web::Refusal> {
        let key = self.own_key(author)?;
        let state = self.snapshot().state.clone();
        let tx = make(provider::next_seq(&state, author, &self.pending_of(author)));
        let entry = Entry::signed(&self.chain_id, tx.kind(), tx.encode(), &key);
        let admitted = self.admit(entry.clone(), now_ms)?;
        Ok((entry, admitted))
    }

    /// Signs `payload` as an entry of `kind` with own key `author` (an entry without a
    /// sequence number, such as a probe report) and admits it at `now_ms`.
    pub fn sign_entry(
        &mut self,
        author: &PublicKey,
        kind: surplus_ledger::EntryKind,
        payload: Vec<u8>,
        now_ms: u64,
    ) -> Result<(Entry, Admitted), surplus_web::Refusal> {
        let key = self.own_key(author)?;
        let entry = Entry::signed(&self.chain_id, kind, payload, &key);
        let admitted = self.admit(entry.clone(), now_ms)?;
        Ok((entry, admitted))
    }

    /// The faucet's transfer of `amount` to `account` from own key `faucet`, decided on the
    /// committed state and the mempool together: the balance must pay it after every transfer
    /// of the faucet still pending (so no acknowledged transfer is ever refused for funds, and
    /// none leaves later ones waiting for its number), and an account with credits, history or
    /// a transfer pending to it (from any node's faucet) gets none.
    pub fn faucet_transfer(
        &mut self,
        faucet: &PublicKey,
        account: PublicKey,
        amount: u64,
        now_ms: u64,
    ) -> Result<(Entry, Admitted), FaucetRefusal> {
        let known = self.snapshot().state.account(&account);
        if known.balance > 0 || known.seq > 0 {
            return Err(FaucetRefusal::NotNew);
        }
        if self.transfer_pending_to(&account) {
            return Err(FaucetRefusal::AlreadySent);
        }
        let pending: u64 = self
            .pending_of(faucet)
            .iter()
            .map(|t| match t {
                Tx::Transfer { amount, .. } => *amount,
                _ => 0,
            })
            .fold(0, u64::saturating_add);
        let balance = self.snapshot().state.account(faucet).balance;
        if balance.saturating_sub(pending) < amount {
            return Err(FaucetRefusal::Dry);
        }
        self.sign_own(faucet, |seq| Tx::Transfer { to: account, amount, seq }, now_ms)
            .map_err(FaucetRefusal::Refused)
    }

    /// After a commit: for each own key whose pending transactions no longer follow its
    /// committed sequence number (one before them was dropped: a grant whose lease ended
    /// first, say), re-signs them in order from that number and drops the old ones (their
    /// receipts name the new ids). Returns the new entries, to journal and gossip.
    ///
    /// Only when every transaction to sign again is a grant, a termination or a vote: peers may
    /// still hold an old copy, which could then commit too, and a second grant of a lease,
    /// termination of a lease or vote on a proposal is refused, while a second transfer would
    /// pay twice. Transfers
    /// are kept from gaps at the source instead ([`Core::faucet_transfer`]); one waiting behind
    /// a gap anyway leaves the mempool after its wait (`seq_gap`), and the key's numbers go on
    /// from the committed one.
    fn resequence(&mut self, now_ms: u64) -> Vec<Entry> {
        let state = self.snapshot().state.clone();
        let mut out = Vec::new();
        for key in self.own.clone() {
            let me = key.public();
            let mut pending: Vec<(u64, Hash, Tx)> = self
                .mempool
                .iter()
                .filter(|e| matches!(e.auth, surplus_ledger::Auth::Signed { author, .. } if author == me))
                .filter_map(|e| Some((e.id(), Tx::decode(e.kind, &e.payload).ok()?)))
                .map(|(id, tx)| (tx.seq(), id, tx))
                .collect();
            pending.sort_by_key(|(seq, id, _)| (*seq, *id));
            let committed = state.account(&me).seq;
            let Some(gap) =
                pending.iter().enumerate().position(|(i, (seq, ..))| *seq != committed + i as u64)
            else {
                continue;
            };
            let once_only =
                |t: &Tx| matches!(t, Tx::Grant { .. } | Tx::Terminate { .. } | Tx::GovVote { .. });
            if !pending[gap..].iter().all(|(_, _, t)| once_only(t)) {
                continue;
            }
            for (i, (old_seq, old_id, tx)) in pending.into_iter().enumerate().skip(gap) {
                let seq = committed + i as u64;
                let tx = tx.with_seq(seq);
                let entry = Entry::signed(&self.chain_id, tx.kind(), tx.encode(), &key);
                let message = format!(
                    "an earlier transaction of this key was dropped, so the node signed this one \
                     again with sequence number {seq} (was {old_seq}) as entry {}",
                    hex::encode(entry.id())
                );
                self.mempool.drop_refused(vec![(old_id, Code::SeqGap, message)]);
                match self.admit_checked(entry.clone(), now_ms, Check::Journaled) {
                    Ok(_) => out.push(entry),
                    Err(r) => {
                        tracing::warn!(code = %r.code, "an own transaction signed again was refused: {}", r.message)
                    }
                }
            }
        }
        out
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

    /// Admits a new `entry` (from the API, gossip or the node itself) at `now_ms`: the
    /// contract's admission check against the head's state (an order must stay valid for the
    /// admission horizon), then the mempool's limits.
    pub fn admit(&mut self, entry: Entry, now_ms: u64) -> Result<Admitted, surplus_web::Refusal> {
        self.admit_checked(entry, now_ms, Check::New)
    }

    /// [`Core::admit`] for an entry whose signature the caller has just verified.
    pub fn admit_verified(
        &mut self,
        entry: Entry,
        now_ms: u64,
    ) -> Result<Admitted, surplus_web::Refusal> {
        self.admit_checked(entry, now_ms, Check::NewVerified)
    }

    fn admit_checked(
        &mut self,
        entry: Entry,
        now_ms: u64,
        check: Check,
    ) -> Result<Admitted, surplus_web::Refusal> {
        // A copy of a pending entry (gossip brings each from several peers) was checked when the
        // first came, against a state every commit since has rechecked it against.
        let id = entry.id();
        if self.mempool.contains(&id) {
            return Ok(Admitted { id, fresh: false });
        }
        let state = self.snapshot().state.clone();
        let checked = match check {
            Check::New => state.admit(&entry, now_ms),
            Check::NewVerified => state.admit_verified(&entry, now_ms),
            Check::Journaled => state.precheck(&entry, now_ms),
        };
        let admitted = checked.map_err(|r| surplus_web::Refusal::from(&r))?;
        let id = admitted.id;
        // Admission verified the signature (both checks above do).
        if let Some(v) = &self.verified {
            v.insert(id);
        }
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

    /// [`Core::pending`] leaving out the entries `skip` names.
    pub fn pending_except(
        &self,
        max_entries: usize,
        max_bytes: usize,
        skip: impl Fn(&Hash) -> bool,
    ) -> Vec<Entry> {
        self.mempool.pending_except(max_entries, max_bytes, skip)
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
    ///
    /// Returns own transactions signed again after a gap in their key's sequence numbers
    /// ([`Core::own_keys`]), to journal and gossip.
    pub fn commit(
        &mut self,
        head: Header,
        state: Arc<State>,
        ids: &[Hash],
        now_ms: u64,
    ) -> Vec<Entry> {
        self.snapshot.send_replace(Arc::new(Snapshot { head, state: state.clone() }));
        self.mempool.remove_committed(ids);
        self.mempool.evict_expired(now_ms);
        // Signatures were verified on admission; only what the block changed is checked again.
        self.mempool
            .retain(|e| state.recheck(e, now_ms).map(|_| ()).map_err(|r| (r.code(), r.explain())));
        self.resequence(now_ms)
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
            // Acknowledged already: kept while still valid, even if it closes soon.
            match self.admit_checked(entry, now_ms, Check::Journaled) {
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
    /// Jobs of the consensus path (a proposal's entries, a commit), run before any job of
    /// `jobs` still waiting: a backlog of admissions must not hold up blocks.
    first: mpsc::Sender<Job>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Entries in the mempool after the last job (for status and metrics without a job).
    pending: Arc<AtomicUsize>,
    /// Bytes in the mempool after the last job.
    pending_bytes: Arc<AtomicUsize>,
    /// When the oldest entry a block could take was admitted, ms, after the last job
    /// (0: none waits).
    oldest_ready_ms: Arc<AtomicU64>,
    /// Its kind.
    oldest_ready_kind: Arc<AtomicU16>,
}

/// How many jobs may wait for the core (admissions, block building, commits); a caller waits
/// for room beyond it.
pub const QUEUE: usize = 4_096;
/// Capacity of the core's first lane ([`CoreHandle::call_first`]).
const FIRST_QUEUE: usize = 64;

/// Runs `core` on a task of `env`; `dropped` receives the receipts of entries the mempool
/// dropped, after each job. The task ends when every handle is gone.
pub fn spawn(
    mut core: Core,
    env: &surplus_net::Env,
    mut dropped: impl FnMut(Vec<(Hash, Submission)>) + Send + 'static,
) -> CoreHandle {
    let (jobs, mut rx) = mpsc::channel::<Job>(QUEUE);
    let (first, mut first_rx) = mpsc::channel::<Job>(FIRST_QUEUE);
    let pending = Arc::new(AtomicUsize::new(core.mempool.len()));
    let pending_bytes = Arc::new(AtomicUsize::new(core.mempool.bytes()));
    let oldest_ready_ms = Arc::new(AtomicU64::new(core.mempool.oldest_ready_ms().unwrap_or(0)));
    let oldest_ready_kind = Arc::new(AtomicU16::new(0));
    let handle = CoreHandle {
        jobs,
        first,
        snapshot: core.watch(),
        pending: pending.clone(),
        pending_bytes: pending_bytes.clone(),
        oldest_ready_ms: oldest_ready_ms.clone(),
        oldest_ready_kind: oldest_ready_kind.clone(),
    };
    env.spawn(async move {
        loop {
            let job = tokio::select! {
                biased;
                Some(job) = first_rx.recv() => job,
                Some(job) = rx.recv() => job,
                else => break,
            };
            job(&mut core);
            pending.store(core.mempool.len(), Ordering::Relaxed);
            pending_bytes.store(core.mempool.bytes(), Ordering::Relaxed);
            let (ms, kind) = core.mempool.oldest_ready().unwrap_or((0, EntryKind(0)));
            oldest_ready_kind.store(kind.0, Ordering::Relaxed);
            oldest_ready_ms.store(ms, Ordering::Relaxed);
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
        Self::call_on(&self.jobs, f).await
    }

    /// [`CoreHandle::call`] ahead of every job the core has not started (for the consensus
    /// path: a proposal's entries, a commit).
    pub async fn call_first<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> R + Send + 'static,
    ) -> Result<R, Stopped> {
        Self::call_on(&self.first, f).await
    }

    async fn call_on<R: Send + 'static>(
        lane: &mpsc::Sender<Job>,
        f: impl FnOnce(&mut Core) -> R + Send + 'static,
    ) -> Result<R, Stopped> {
        let (tx, rx) = oneshot::channel();
        lane.send(Box::new(move |c: &mut Core| {
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

    /// How long the oldest entry a block could take has waited at `now_ms`, ms (0 when none
    /// waits): the age load shedding reads.
    pub fn backlog_age_ms(&self, now_ms: u64) -> u64 {
        match self.oldest_ready_ms.load(Ordering::Relaxed) {
            0 => 0,
            t => now_ms.saturating_sub(t),
        }
    }

    /// The kind of the entry [`CoreHandle::backlog_age_ms`] measures.
    pub fn backlog_kind(&self) -> EntryKind {
        EntryKind(self.oldest_ready_kind.load(Ordering::Relaxed))
    }

    /// Jobs waiting for the core (the queue's metric).
    pub fn queued(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use surplus_contracts::{Allocation, Genesis, Params};
    use surplus_ledger::testutil::key;
    use surplus_market::Catalogue;

    const CHAIN: &str = "owner-test";
    const NOW: u64 = 1_700_000_000_000;

    /// A chain of one validator (`key("validator", 0)`) with `allocations`.
    fn genesis(allocations: Vec<Allocation>) -> Genesis {
        Genesis {
            validators: vec![key("validator", 0).public()],
            params: Params {
                catalogue: Catalogue::sample(),
                treasury: key("treasury", 0).public(),
                fee_bps: 0,
                penalty_bps: 0,
                notice_ms: surplus_contracts::maintenance::DEFAULT_NOTICE_MS,
                supervision: None,
            },
            allocations,
        }
    }

    /// A core whose own key `faucet` holds `funds`, at height 0 (genesis).
    fn core(funds: u64) -> (Core, SecretKey) {
        core_with(funds, None)
    }

    /// [`core`], with `other` funded at genesis too.
    fn core_with(funds: u64, other: Option<PublicKey>) -> (Core, SecretKey) {
        let faucet = key("faucet", 0);
        let genesis = genesis(
            std::iter::once(Allocation { account: faucet.public(), amount: funds })
                .chain(other.map(|account| Allocation { account, amount: 5 }))
                .collect(),
        );
        let (block, maker) =
            surplus_contracts::BlockMaker::genesis(CHAIN, &genesis, NOW - 1000).unwrap();
        let mut core = Core::new(
            block.header.clone(),
            Arc::new(maker.state.clone()),
            Mempool::new(1000, 1 << 20),
        );
        core.own_keys(CHAIN, vec![faucet.clone()]);
        (core, faucet)
    }

    /// Jobs of the first lane run before every job still waiting in the other, whenever they
    /// were sent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_first_lane_runs_ahead_of_waiting_jobs() {
        let (core, _) = core(0);
        let handle = spawn(core, &surplus_net::Env::system(), |_| {});
        // Hold the task on a job until the others are queued behind it.
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let (holding, started) = std::sync::mpsc::channel::<()>();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let h = handle.clone();
        let blocker = tokio::spawn(async move {
            h.call(move |_| {
                let _ = holding.send(());
                let _ = held.recv();
            })
            .await
        });
        // Only once the task holds it are the others queued (spawned tasks run in any order: an
        // ordinary job taken before the blocker would leave two queued, never three).
        while started.try_recv().is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        // Queue three ordinary jobs and one first-lane job, in that order, while the task waits.
        let mut calls = Vec::new();
        for k in 0..3 {
            let (h, order) = (handle.clone(), order.clone());
            calls.push(tokio::spawn(async move {
                h.call(move |_| order.lock().unwrap().push(format!("job {k}"))).await
            }));
        }
        let (h, o) = (handle.clone(), order.clone());
        let first = tokio::spawn(async move {
            h.call_first(move |_| o.lock().unwrap().push("first".to_string())).await
        });
        // The task holds the blocker; three jobs wait behind it, and one in the first lane.
        while handle.queued() != 3 || handle.first.capacity() != FIRST_QUEUE - 1 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        hold.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        first.await.unwrap().unwrap();
        for c in calls {
            c.await.unwrap().unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order.first().map(String::as_str), Some("first"), "{order:?}");
        assert_eq!(order.len(), 4, "{order:?}");
    }

    fn seqs(core: &Core, who: &PublicKey) -> Vec<u64> {
        let mut s: Vec<u64> = core.pending_of(who).iter().map(Tx::seq).collect();
        s.sort_unstable();
        s
    }

    /// A core whose own key, a provider, has two active leases (from one block of an offer
    /// and two bids), with their ids.
    fn leased() -> (Core, SecretKey, Vec<Hash>) {
        use surplus_market::{Bid, FillRule, Market, Offer, Order, SignedOrder, HOUR_MS};
        let (provider, buyer, validator) =
            (key("provider", 0), key("buyer", 0), key("validator", 0));
        let genesis = genesis(vec![Allocation { account: buyer.public(), amount: 1_000_000 }]);
        let (_, mut maker) =
            surplus_contracts::BlockMaker::genesis(CHAIN, &genesis, NOW - 1000).unwrap();
        let market = Market::new("vm.4c16g", "eu-west-a");
        let offer = Order::Offer(Offer {
            market: market.clone(),
            slots: 4,
            from_ms: NOW,
            until_ms: NOW + 48 * HOUR_MS,
            reserve: 10,
            min_hours: 1,
            expiry_ms: NOW + HOUR_MS,
            nonce: 1,
        });
        let bid = |nonce| {
            let b = Bid {
                market: market.clone(),
                slots: 1,
                hours: 2,
                limit: 20,
                earliest_ms: NOW,
                latest_ms: NOW + HOUR_MS,
                fill: FillRule::AllOrNone,
                expiry_ms: NOW + HOUR_MS,
                nonce,
            };
            SignedOrder::sign(CHAIN, Order::Bid(b), &buyer).0
        };
        let entries = vec![SignedOrder::sign(CHAIN, offer, &provider).0, bid(1), bid(2)];
        let block = maker.next(&entries, NOW + 1, validator.public()).unwrap();
        let leases: Vec<Hash> = maker.state.leases().map(|l| l.id).collect();
        assert_eq!(leases.len(), 2);
        let mut core = Core::new(
            block.0.header.clone(),
            Arc::new(maker.state.clone()),
            Mempool::new(1000, 1 << 20),
        );
        core.own_keys(CHAIN, vec![provider.clone()]);
        (core, provider, leases)
    }

    #[test]
    fn own_grants_after_a_dropped_transaction_are_signed_again_in_order() {
        let (mut core, provider, leases) = leased();
        let me = provider.public();
        let mut ids = Vec::new();
        for l in &leases {
            let lease = core.snapshot().state.lease(l).unwrap().clone();
            let c = surplus_contracts::credential::mint(
                &lease,
                &provider,
                &["read"],
                &mut rand_core::OsRng,
            )
            .unwrap();
            let make = |seq| Tx::Grant {
                lease: lease.id,
                token_hash: c.token_hash,
                revocation_ids: c.revocation_ids,
                seq,
                sealed: Vec::new(),
            };
            ids.push(core.sign_own(&me, make, NOW + 2).unwrap().1.id);
        }
        assert_eq!(seqs(&core, &me), vec![0, 1], "numbered from the state and the mempool");
        // The first is dropped (a proposal refused it): the second waits for number 0.
        core.mempool.drop_refused(vec![(ids[0], Code::LeaseNotActive, "test".into())]);
        let _ = core.take_dropped();
        let snap = core.snapshot();
        let again = core.commit(snap.head.clone(), snap.state.clone(), &[], NOW + 3);
        assert_eq!(again.len(), 1);
        assert_eq!(seqs(&core, &me), vec![0], "signed again from the committed number");
        let dropped = core.take_dropped();
        assert_eq!(dropped.len(), 1);
        let (id, receipt) = &dropped[0];
        assert_eq!(*id, ids[1]);
        let Submission::Dropped { code, message } = receipt else { panic!("{receipt:?}") };
        assert_eq!(*code, Code::SeqGap);
        assert!(message.contains(&hex::encode(again[0].id())), "{message}");
        // Nothing to do once they follow on.
        assert!(core.commit(snap.head.clone(), snap.state.clone(), &[], NOW + 3).is_empty());
    }

    #[test]
    fn transfers_are_not_signed_twice() {
        let (mut core, faucet) = core(1_000);
        let me = faucet.public();
        let ids: Vec<Hash> = (0..3)
            .map(|i| {
                let to = key("buyer", i).public();
                core.sign_own(&me, |seq| Tx::Transfer { to, amount: 10, seq }, NOW).unwrap().1.id
            })
            .collect();
        core.mempool.drop_refused(vec![(ids[0], Code::InsufficientBalance, "test".into())]);
        let snap = core.snapshot();
        // A peer may hold the old copies: signing them again could pay twice.
        assert!(core.commit(snap.head.clone(), snap.state.clone(), &[], NOW).is_empty());
        assert_eq!(seqs(&core, &me), vec![1, 2]);
    }

    #[test]
    fn the_faucet_never_sends_twice_nor_what_it_cannot_pay() {
        let (mut c, faucet) = core(250);
        let me = faucet.public();
        let (a, b) = (key("buyer", 1).public(), key("buyer", 2).public());
        c.faucet_transfer(&me, a, 100, NOW).unwrap();
        assert_eq!(c.faucet_transfer(&me, a, 100, NOW).unwrap_err(), FaucetRefusal::AlreadySent);
        c.faucet_transfer(&me, b, 100, NOW).unwrap();
        // 250 less the 200 pending cannot pay 100.
        let third = key("buyer", 3).public();
        assert_eq!(c.faucet_transfer(&me, third, 100, NOW).unwrap_err(), FaucetRefusal::Dry);
        // An account with credits already is not new.
        let (mut rich, faucet2) = core_with(1_000, Some(b));
        assert_eq!(
            rich.faucet_transfer(&faucet2.public(), b, 1, NOW).unwrap_err(),
            FaucetRefusal::NotNew
        );
        // More than the balance: dry.
        let (mut poor, faucet3) = core(50);
        assert_eq!(
            poor.faucet_transfer(&faucet3.public(), a, 100, NOW).unwrap_err(),
            FaucetRefusal::Dry
        );
    }
}
