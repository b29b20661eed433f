//! The mempool: admitted user entries waiting for a block, bounded in count and bytes.
//!
//! Entries leave in arrival order (what a proposer puts in a block). Every operation but
//! [`Mempool::retain`] is O(log n): a map by id, an arrival-ordered map, an expiry-ordered set
//! and the set of pending (author, nonce) pairs. Nothing depends on hash-map iteration order, so
//! two nodes that saw the same arrivals propose the same block.
//!
//! Nothing leaves silently: every entry dropped without being committed (expired, refused by a
//! block, no longer admissible after one) goes to a bounded log of drops with its refusal code,
//! which the node drains into its receipts (`GET /api/v1/submissions/{id}`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use surplus_contracts::{Admitted, Code};
use surplus_ledger::{Entry, EntryKind, Hash, PublicKey};

/// How long a transaction ahead of its account's next sequence number waits for the ones
/// before it, ms. Past that it is dropped with `seq_gap`.
pub const SEQ_GAP_TTL_MS: u64 = 10 * 60 * 1000;

/// Most drops the log keeps between two drains (the oldest go first).
const DROP_LOG: usize = 16_384;

/// How many of the oldest entries [`Mempool::oldest_ready_ms`] looks at.
pub const READY_SCAN: usize = 256;

/// An entry that left the mempool without being committed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// The entry's id.
    pub id: Hash,
    /// Why, as the API says it.
    pub code: Code,
    /// What happened, for a person.
    pub message: String,
}

/// Why an entry was not taken in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Full of entries that have not expired.
    #[error(
        "the mempool is full ({capacity} entries, {capacity_bytes} bytes) of entries that have \
         not expired: try again after the next block"
    )]
    Full {
        /// Most entries held.
        capacity: usize,
        /// Most bytes held.
        capacity_bytes: usize,
    },
    /// One entry larger than the whole mempool.
    #[error("the entry is {bytes} bytes, more than the mempool's {capacity_bytes}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The mempool's byte capacity.
        capacity_bytes: usize,
    },
    /// Another pending order of this author uses the nonce.
    #[error(
        "another pending order of this author uses nonce {nonce}: sign the order with a fresh nonce"
    )]
    NonceInUse {
        /// The nonce.
        nonce: u64,
    },
    /// Expired already.
    #[error("the entry expired at {expiry_ms} (now {now_ms})")]
    Expired {
        /// Its expiry.
        expiry_ms: u64,
        /// The time of the insert.
        now_ms: u64,
    },
}

impl MempoolError {
    /// The refusal code the API answers with.
    pub fn code(&self) -> Code {
        match self {
            MempoolError::Full { .. } => Code::MempoolFull,
            MempoolError::TooLarge { .. } => Code::TooLarge,
            MempoolError::NonceInUse { .. } => Code::ReplayedNonce,
            MempoolError::Expired { .. } => Code::Expired,
        }
    }
}

/// What [`Mempool::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Taken in; `evicted` expired entries were dropped to make room.
    New {
        /// Expired entries dropped first.
        evicted: usize,
    },
    /// Already held (same id): nothing changed.
    Duplicate,
}

struct Slot {
    entry: Entry,
    arrival: u64,
    /// When it was admitted, ms.
    admitted_ms: u64,
    /// When it was admitted or last gossiped again, ms.
    gossiped_ms: u64,
    bytes: usize,
    expiry_ms: Option<u64>,
    nonce: Option<(PublicKey, u64)>,
    /// A transaction that waits for earlier sequence numbers (its expiry is its wait's end).
    waits_for_seq: bool,
}

/// A bounded pool of admitted entries.
pub struct Mempool {
    capacity_entries: usize,
    capacity_bytes: usize,
    slots: HashMap<Hash, Slot>,
    by_arrival: BTreeMap<u64, Hash>,
    by_expiry: BTreeSet<(u64, u64)>,
    nonces: HashMap<(PublicKey, u64), Hash>,
    bytes: usize,
    next_arrival: u64,
    dropped: VecDeque<Dropped>,
    /// Entries whose gossip reached no peer (none was connected and subscribed yet).
    unsent: HashSet<Hash>,
    /// How long a transaction ahead of its sequence waits ([`SEQ_GAP_TTL_MS`] unless set).
    seq_gap_ttl_ms: u64,
}

impl Mempool {
    /// An empty mempool holding at most `capacity_entries` entries and `capacity_bytes` bytes.
    pub fn new(capacity_entries: usize, capacity_bytes: usize) -> Self {
        Self {
            capacity_entries,
            capacity_bytes,
            slots: HashMap::new(),
            by_arrival: BTreeMap::new(),
            by_expiry: BTreeSet::new(),
            nonces: HashMap::new(),
            bytes: 0,
            next_arrival: 0,
            dropped: VecDeque::new(),
            unsent: HashSet::new(),
            seq_gap_ttl_ms: SEQ_GAP_TTL_MS,
        }
    }

    /// The same, where a transaction ahead of its account's next sequence number waits
    /// `ms` instead of [`SEQ_GAP_TTL_MS`] (the simulation shortens it to keep runs short).
    pub fn with_seq_gap_ttl(mut self, ms: u64) -> Self {
        self.seq_gap_ttl_ms = ms;
        self
    }

    /// Takes in an entry that passed admission (`admitted` describes it). Drops expired entries
    /// first when full; refuses when still full.
    pub fn insert(
        &mut self,
        entry: Entry,
        admitted: &Admitted,
        now_ms: u64,
    ) -> Result<Inserted, MempoolError> {
        if self.slots.contains_key(&admitted.id) {
            return Ok(Inserted::Duplicate);
        }
        if let Some(expiry_ms) = admitted.expiry_ms.filter(|e| *e <= now_ms) {
            return Err(MempoolError::Expired { expiry_ms, now_ms });
        }
        // A transaction ahead of its account's next sequence number waits a while for the ones
        // before it (they may be in flight); then it is dropped, and says so.
        let waits_for_seq = admitted.seq.is_some_and(|(_, ahead)| ahead);
        let expiry_ms = match admitted.expiry_ms {
            None if waits_for_seq => Some(now_ms.saturating_add(self.seq_gap_ttl_ms)),
            other => other,
        };
        let nonce = admitted.nonce.map(|n| (admitted.author, n));
        if let Some(key) = nonce.filter(|k| self.nonces.contains_key(k)) {
            return Err(MempoolError::NonceInUse { nonce: key.1 });
        }
        let bytes = admitted.bytes;
        if bytes > self.capacity_bytes {
            return Err(MempoolError::TooLarge { bytes, capacity_bytes: self.capacity_bytes });
        }
        let mut evicted = 0;
        if !self.fits(bytes) {
            evicted = self.evict_expired(now_ms);
            if !self.fits(bytes) {
                return Err(MempoolError::Full {
                    capacity: self.capacity_entries,
                    capacity_bytes: self.capacity_bytes,
                });
            }
        }
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.by_arrival.insert(arrival, admitted.id);
        if let Some(e) = expiry_ms {
            self.by_expiry.insert((e, arrival));
        }
        if let Some(k) = nonce {
            self.nonces.insert(k, admitted.id);
        }
        self.bytes += bytes;
        self.slots.insert(
            admitted.id,
            Slot {
                entry,
                arrival,
                admitted_ms: now_ms,
                gossiped_ms: now_ms,
                bytes,
                expiry_ms,
                nonce,
                waits_for_seq,
            },
        );
        Ok(Inserted::New { evicted })
    }

    fn fits(&self, bytes: usize) -> bool {
        self.slots.len() < self.capacity_entries && self.bytes + bytes <= self.capacity_bytes
    }

    /// Up to `max_entries` entries and `max_bytes` bytes, oldest first, stopping at the first
    /// that does not fit (so that no entry is overtaken for being large).
    pub fn pending(&self, max_entries: usize, max_bytes: usize) -> Vec<Entry> {
        self.pending_except(max_entries, max_bytes, |_| false)
    }

    /// [`Mempool::pending`] leaving out the entries `skip` names, which count in neither limit.
    pub fn pending_except(
        &self,
        max_entries: usize,
        max_bytes: usize,
        skip: impl Fn(&Hash) -> bool,
    ) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for id in self.by_arrival.values() {
            if skip(id) {
                continue;
            }
            let Some(slot) = self.slots.get(id) else { continue };
            if out.len() >= max_entries || bytes + slot.bytes > max_bytes {
                break;
            }
            bytes += slot.bytes;
            out.push(slot.entry.clone());
        }
        out
    }

    /// When the oldest entry that a block could take now was admitted, ms: the head of the
    /// queue whose age says whether blocks keep up (entries that wait for earlier sequence
    /// numbers are skipped; only the oldest [`READY_SCAN`] are looked at, and `None` if none of
    /// them is ready).
    pub fn oldest_ready_ms(&self) -> Option<u64> {
        self.oldest_ready().map(|(ms, _)| ms)
    }

    /// [`Mempool::oldest_ready_ms`], with the entry's kind.
    pub fn oldest_ready(&self) -> Option<(u64, EntryKind)> {
        self.by_arrival
            .values()
            .take(READY_SCAN)
            .filter_map(|id| self.slots.get(id))
            .find(|s| !s.waits_for_seq)
            .map(|s| (s.admitted_ms, s.entry.kind))
    }

    /// Entries admitted or last gossiped at least `age_ms` before `now_ms`, oldest first, at
    /// most `max`; they count as gossiped now. The node publishes them again, so that an entry
    /// that reached no peer when it was admitted (its node was cut off) reaches them once the
    /// network is back, instead of waiting for this node's own turn to propose.
    pub fn due_for_gossip(&mut self, now_ms: u64, age_ms: u64, max: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        for id in self.by_arrival.values() {
            if out.len() >= max {
                break;
            }
            let Some(slot) = self.slots.get_mut(id) else { continue };
            if slot.gossiped_ms.saturating_add(age_ms) <= now_ms {
                slot.gossiped_ms = now_ms;
                out.push(slot.entry.clone());
            }
        }
        out
    }

    /// Marks a held entry as not gossiped: its publication reached no peer. Ids not held are
    /// skipped.
    pub fn mark_unsent(&mut self, id: &Hash) {
        if self.slots.contains_key(id) {
            self.unsent.insert(*id);
        }
    }

    /// Whether any held entry waits for its first successful gossip.
    pub fn has_unsent(&self) -> bool {
        !self.unsent.is_empty()
    }

    /// Up to `max` entries marked by [`Mempool::mark_unsent`], oldest first; they are no longer
    /// marked (mark them again if this publication reaches no peer either).
    pub fn take_unsent(&mut self, max: usize) -> Vec<Entry> {
        let mut ids: Vec<(u64, Hash)> = self
            .unsent
            .iter()
            .filter_map(|id| self.slots.get(id).map(|s| (s.arrival, *id)))
            .collect();
        ids.sort_unstable();
        ids.truncate(max);
        ids.into_iter()
            .filter_map(|(_, id)| {
                self.unsent.remove(&id);
                self.slots.get(&id).map(|s| s.entry.clone())
            })
            .collect()
    }

    /// Every pending entry, oldest first, without copying.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.by_arrival.values().filter_map(|id| self.slots.get(id).map(|s| &s.entry))
    }

    /// Drops the entries a block committed (ids not held are skipped); returns how many.
    pub fn remove_committed(&mut self, ids: &[Hash]) -> usize {
        ids.iter().filter(|id| self.remove(id)).count()
    }

    /// Drops every entry whose expiry is at or before `now_ms` into the log of drops; returns
    /// how many.
    pub fn evict_expired(&mut self, now_ms: u64) -> usize {
        let mut n = 0;
        while let Some(&(expiry, arrival)) = self.by_expiry.first() {
            if expiry > now_ms {
                break;
            }
            match self.by_arrival.get(&arrival).copied() {
                Some(id) => {
                    let (code, message) = match self.slots.get(&id) {
                        Some(s) if s.waits_for_seq => (
                            Code::SeqGap,
                            format!(
                                "the transactions before it did not arrive within {} s",
                                self.seq_gap_ttl_ms / 1_000
                            ),
                        ),
                        Some(s) if s.entry.kind == EntryKind::CANCEL => {
                            (Code::Expired, format!("the order it cancels expired at {expiry}"))
                        }
                        _ => (
                            Code::Expired,
                            format!("it expired at {expiry} before a block took it"),
                        ),
                    };
                    self.drop_entry(&id, code, message);
                }
                None => {
                    self.by_expiry.remove(&(expiry, arrival));
                }
            }
            n += 1;
        }
        n
    }

    /// Keeps only the entries `check` accepts (for example those that still pass admission
    /// after a block); the others go to the log of drops with the refusal `check` gave.
    /// Returns how many were dropped.
    pub fn retain(&mut self, mut check: impl FnMut(&Entry) -> Result<(), (Code, String)>) -> usize {
        let drop: Vec<(Hash, Code, String)> = self
            .by_arrival
            .values()
            .filter_map(|id| {
                let slot = self.slots.get(id)?;
                check(&slot.entry).err().map(|(code, message)| (*id, code, message))
            })
            .collect();
        let n = drop.len();
        for (id, code, message) in drop {
            self.drop_entry(&id, code, message);
        }
        n
    }

    /// Drops entries a proposal refused (ids not held are skipped), into the log of drops;
    /// returns how many.
    pub fn drop_refused(&mut self, refused: Vec<(Hash, Code, String)>) -> usize {
        refused
            .into_iter()
            .filter(|(id, code, message)| self.drop_entry(id, *code, message.clone()))
            .count()
    }

    /// The entries dropped since the last call, oldest first.
    pub fn take_dropped(&mut self) -> Vec<Dropped> {
        self.dropped.drain(..).collect()
    }

    /// Whether the held transaction `id` waits for earlier sequence numbers.
    pub fn waits_for_seq(&self, id: &Hash) -> bool {
        self.slots.get(id).is_some_and(|s| s.waits_for_seq)
    }

    fn drop_entry(&mut self, id: &Hash, code: Code, message: String) -> bool {
        if !self.remove(id) {
            return false;
        }
        if self.dropped.len() >= DROP_LOG {
            self.dropped.pop_front();
        }
        self.dropped.push_back(Dropped { id: *id, code, message });
        true
    }

    fn remove(&mut self, id: &Hash) -> bool {
        let Some(slot) = self.slots.remove(id) else { return false };
        self.unsent.remove(id);
        self.by_arrival.remove(&slot.arrival);
        if let Some(e) = slot.expiry_ms {
            self.by_expiry.remove(&(e, slot.arrival));
        }
        if let Some(k) = slot.nonce {
            self.nonces.remove(&k);
        }
        self.bytes -= slot.bytes;
        true
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Bytes held (sum of the admitted sizes).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the entry with this id is held.
    pub fn contains(&self, id: &Hash) -> bool {
        self.slots.contains_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use surplus_ledger::testutil::key;

    /// A distinct entry and its admission facts (orders carry a nonce).
    fn item(i: u64, author: u64, expiry: Option<u64>, nonce: Option<u64>) -> (Entry, Admitted) {
        let k = key("author", author);
        let e = Entry::signed("mempool-test", EntryKind::ORDER, i.to_be_bytes().to_vec(), &k);
        let a = Admitted {
            id: e.id(),
            kind: e.kind,
            expiry_ms: expiry,
            author: k.public(),
            nonce,
            seq: None,
            bytes: e.encode().len(),
        };
        (e, a)
    }

    /// Found by the partition test: orders a cut-off node acknowledged reached no peer, and
    /// waited for that node's own turn to propose. They are now gossiped again once old.
    #[test]
    fn partition_orders_acknowledged_while_cut_off_are_due_for_gossip_again() {
        let mut m = Mempool::new(10, 1 << 20);
        let items: Vec<_> = (0..4).map(|i| item(i, 0, None, Some(i))).collect();
        for (i, (e, a)) in items.iter().enumerate() {
            m.insert(e.clone(), a, 1_000 * i as u64).unwrap();
        }
        // Admitted at 0, 1000, 2000, 3000 ms; due once 30 s old, oldest first, at most `max`.
        assert!(m.due_for_gossip(29_999, 30_000, 10).is_empty());
        assert_eq!(
            m.due_for_gossip(31_000, 30_000, 10),
            vec![items[0].0.clone(), items[1].0.clone()]
        );
        assert_eq!(m.due_for_gossip(40_000, 30_000, 1), vec![items[2].0.clone()]);
        // Gossiped again just now: not due until another 30 s have passed.
        assert_eq!(m.due_for_gossip(40_000, 30_000, 10), vec![items[3].0.clone()]);
        assert!(m.due_for_gossip(60_000, 30_000, 10).is_empty());
        assert_eq!(m.due_for_gossip(70_000, 30_000, 10).len(), 4);
        // Committed entries are gone from the pool, so never gossiped again.
        m.remove_committed(&[items[0].1.id]);
        assert_eq!(m.due_for_gossip(200_000, 30_000, 10).len(), 3);
    }

    /// Found by the crash loop: an order acknowledged just before a crash was replayed from the
    /// journal at restart, published while no peer was connected yet, and waited for this
    /// node's own turn to propose. Such entries are marked and published again at once.
    #[test]
    fn crash_loop_entries_that_reached_no_peer_are_gossiped_again_oldest_first() {
        let mut m = Mempool::new(10, 1 << 20);
        let items: Vec<_> = (0..4).map(|i| item(i, 0, None, Some(i))).collect();
        for (i, (e, a)) in items.iter().enumerate() {
            m.insert(e.clone(), a, 1_000 * i as u64).unwrap();
        }
        assert!(!m.has_unsent());
        m.mark_unsent(&items[2].1.id);
        m.mark_unsent(&items[0].1.id);
        m.mark_unsent(&items[3].1.id);
        m.mark_unsent(&[7; 32]); // not held: skipped
        assert!(m.has_unsent());
        assert_eq!(m.take_unsent(2), vec![items[0].0.clone(), items[2].0.clone()]);
        // A committed entry is no longer due.
        m.remove_committed(&[items[3].1.id]);
        assert!(!m.has_unsent());
        assert!(m.take_unsent(10).is_empty());
        // Taken entries are unmarked until they fail again.
        m.mark_unsent(&items[1].1.id);
        assert_eq!(m.take_unsent(10), vec![items[1].0.clone()]);
        assert!(m.take_unsent(10).is_empty());
    }

    /// The age that load shedding reads: the oldest entry a block could take, not one that
    /// waits for earlier sequence numbers.
    #[test]
    fn oldest_ready_skips_entries_waiting_for_their_sequence() {
        let mut m = Mempool::new(10, 1 << 20);
        assert_eq!(m.oldest_ready_ms(), None);
        let (e0, mut a0) = item(0, 0, None, None);
        a0.seq = Some((5, true));
        m.insert(e0, &a0, 1_000).unwrap();
        assert_eq!(m.oldest_ready_ms(), None, "only a transaction ahead of its sequence");
        let (e1, a1) = item(1, 1, None, Some(1));
        let (e2, a2) = item(2, 1, None, Some(2));
        m.insert(e1, &a1, 2_000).unwrap();
        m.insert(e2, &a2, 3_000).unwrap();
        assert_eq!(m.oldest_ready_ms(), Some(2_000));
        m.remove_committed(&[a1.id]);
        assert_eq!(m.oldest_ready_ms(), Some(3_000));
        m.remove_committed(&[a2.id]);
        assert_eq!(m.oldest_ready_ms(), None);
    }

    #[test]
    fn arrival_order_dedupe_and_removal() {
        let mut m = Mempool::new(10, 1 << 20);
        let items: Vec<_> = (0..5).map(|i| item(i, 0, Some(100 + i), Some(i))).collect();
        for (e, a) in &items {
            assert_eq!(m.insert(e.clone(), a, 0), Ok(Inserted::New { evicted: 0 }));
        }
        assert_eq!(m.insert(items[2].0.clone(), &items[2].1, 0), Ok(Inserted::Duplicate));
        assert_eq!(m.len(), 5);
        let size = items[0].1.bytes;
        assert_eq!(m.bytes(), 5 * size);
        let all: Vec<Entry> = items.iter().map(|(e, _)| e.clone()).collect();
        assert_eq!(m.pending(100, usize::MAX), all);
        assert_eq!(m.pending(2, usize::MAX), all[..2]);
        assert_eq!(m.pending(100, 3 * size + 1), all[..3]);
        // Entries left out (those of a block the node has not applied yet) count in neither
        // limit: the next ones fill their place.
        let skip = |id: &Hash| *id == items[0].1.id || *id == items[1].1.id;
        assert_eq!(m.pending_except(2, usize::MAX, skip), all[2..4]);
        assert_eq!(m.pending_except(100, 2 * size, skip), all[2..4]);
        assert_eq!(m.pending_except(100, usize::MAX, |_| true), Vec::<Entry>::new());

        assert_eq!(m.remove_committed(&[items[0].1.id, items[3].1.id, [9; 32]]), 2);
        assert!(!m.contains(&items[0].1.id) && m.contains(&items[1].1.id));
        assert_eq!(
            m.pending(100, usize::MAX),
            vec![all[1].clone(), all[2].clone(), all[4].clone()]
        );
        assert_eq!(m.bytes(), 3 * size);

        // A removed order's nonce is free again.
        let (e, mut a) = item(50, 0, Some(500), Some(0));
        a.nonce = Some(0);
        assert!(m.insert(e, &a, 0).is_ok());

        let refused = || (Code::Expired, "test".to_owned());
        assert_eq!(
            m.retain(|e| if e.payload != 2u64.to_be_bytes() { Ok(()) } else { Err(refused()) }),
            1
        );
        assert_eq!(m.len(), 3);
        // Nothing leaves silently: the drop is logged with its code, once.
        let dropped = m.take_dropped();
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].code, Code::Expired);
        assert!(m.take_dropped().is_empty());
    }

    #[test]
    fn transactions_ahead_in_sequence_wait_then_drop_with_seq_gap() {
        let mut m = Mempool::new(10, 1 << 20);
        let (e, mut a) = item(1, 0, None, None);
        a.seq = Some((5, true));
        assert!(m.insert(e.clone(), &a, 1_000).is_ok());
        assert!(m.waits_for_seq(&a.id));
        // Still waiting just before its time is up.
        assert_eq!(m.evict_expired(1_000 + SEQ_GAP_TTL_MS - 1), 0);
        assert_eq!(m.evict_expired(1_000 + SEQ_GAP_TTL_MS), 1);
        let dropped = m.take_dropped();
        assert_eq!((dropped[0].id, dropped[0].code), (a.id, Code::SeqGap));
        // A transaction at the account's next number never times out.
        let (e, mut a) = item(2, 0, None, None);
        a.seq = Some((0, false));
        assert!(m.insert(e, &a, 1_000).is_ok());
        assert_eq!(m.evict_expired(u64::MAX), 0);
        // Refused by a proposal: dropped with the proposal's code.
        assert_eq!(m.drop_refused(vec![(a.id, Code::InsufficientBalance, "x".into())]), 1);
        assert_eq!(m.take_dropped()[0].code, Code::InsufficientBalance);
    }

    #[test]
    fn pending_nonces_are_refused() {
        let mut m = Mempool::new(10, 1 << 20);
        let (e, a) = item(1, 0, Some(10), Some(7));
        m.insert(e, &a, 0).unwrap();
        let (e, a) = item(2, 0, Some(10), Some(7));
        let err = m.insert(e.clone(), &a, 0).unwrap_err();
        assert_eq!(err, MempoolError::NonceInUse { nonce: 7 });
        assert!(err.to_string().contains("fresh nonce"));
        // Another author may use it.
        let (e, a) = item(3, 1, Some(10), Some(7));
        assert!(m.insert(e, &a, 0).is_ok());
    }

    #[test]
    fn full_evicts_the_expired_then_refuses() {
        let mut m = Mempool::new(3, 1 << 20);
        m.insert(item(0, 0, Some(10), None).0, &item(0, 0, Some(10), None).1, 0).unwrap();
        let (e, a) = item(1, 0, None, None);
        m.insert(e, &a, 0).unwrap();
        let (e, a) = item(2, 0, Some(50), None);
        m.insert(e, &a, 0).unwrap();

        let (e, a) = item(3, 0, Some(100), None);
        assert_eq!(m.insert(e.clone(), &a, 20), Ok(Inserted::New { evicted: 1 }));
        assert_eq!(m.len(), 3);
        let (e4, a4) = item(4, 0, Some(100), None);
        let err = m.insert(e4, &a4, 20).unwrap_err();
        assert_eq!(err, MempoolError::Full { capacity: 3, capacity_bytes: 1 << 20 });
        assert!(err.to_string().contains("full"), "{err}");

        // Already expired on arrival.
        let mut m2 = Mempool::new(3, 1 << 20);
        let (e, a) = item(9, 0, Some(5), None);
        assert_eq!(m2.insert(e, &a, 5), Err(MempoolError::Expired { expiry_ms: 5, now_ms: 5 }));

        // Byte capacity.
        let size = a.bytes;
        let mut m3 = Mempool::new(100, 2 * size);
        for i in 0..2 {
            let (e, a) = item(i, 0, None, None);
            m3.insert(e, &a, 0).unwrap();
        }
        let (e, a) = item(7, 0, None, None);
        assert!(matches!(m3.insert(e, &a, 0), Err(MempoolError::Full { .. })));
        let mut m4 = Mempool::new(100, size - 1);
        let (e, a) = item(7, 0, None, None);
        assert!(matches!(m4.insert(e, &a, 0), Err(MempoolError::TooLarge { .. })));
    }

    #[test]
    fn evict_expired_drops_exactly_the_expired() {
        let mut m = Mempool::new(10, 1 << 20);
        for i in 0..6 {
            let (e, a) = item(i, 0, if i % 2 == 0 { Some(i * 10) } else { None }, None);
            let _ = m.insert(e, &a, 0);
        }
        // Entry 0 expired at 0 was refused; 2 and 4 expire at 20 and 40.
        assert_eq!(m.len(), 5);
        assert_eq!(m.evict_expired(20), 1);
        assert_eq!(m.evict_expired(20), 0);
        assert_eq!(m.evict_expired(1000), 1);
        assert_eq!(m.len(), 3);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert { i: u64, author: u64, expiry: Option<u64>, nonce: Option<u64> },
        Evict,
        Commit(usize),
        Retain(u64),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..200u64, 0..3u64, proptest::option::of(0..400u64), proptest::option::of(0..20u64))
                .prop_map(|(i, author, expiry, nonce)| Op::Insert { i, author, expiry, nonce }),
            1 => Just(Op::Evict),
            1 => (0..10usize).prop_map(Op::Commit),
            1 => (2..5u64).prop_map(Op::Retain),
            2 => (0..40u64).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn capacity_holds_and_evict_leaves_nothing_expired(
            ops in proptest::collection::vec(op(), 1..120),
            cap in 1..12usize,
            cap_items in 2..12usize,
        ) {
            let size = item(0, 0, None, None).1.bytes;
            let mut m = Mempool::new(cap, cap_items * size);
            let mut now = 0u64;
            let mut held: BTreeMap<Hash, (Option<u64>, Entry)> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert { i, author, expiry, nonce } => {
                        let (e, a) = item(i, author, expiry, nonce);
                        if let Ok(Inserted::New { .. }) = m.insert(e.clone(), &a, now) {
                            held.insert(a.id, (expiry, e));
                        }
                    }
                    Op::Evict => {
                        m.evict_expired(now);
                        let pending = m.pending(usize::MAX, usize::MAX);
                        for e in &pending {
                            let exp = held.get(&e.id()).and_then(|h| h.0);
                            prop_assert!(exp.is_none_or(|x| x > now), "expired entry left");
                        }
                    }
                    Op::Commit(k) => {
                        let ids: Vec<Hash> =
                            m.pending(k, usize::MAX).iter().map(Entry::id).collect();
                        prop_assert_eq!(m.remove_committed(&ids), ids.len());
                    }
                    Op::Retain(d) => {
                        m.retain(|e| {
                            if e.payload.last().is_some_and(|b| u64::from(*b) % d != 0) {
                                Ok(())
                            } else {
                                Err((Code::Expired, String::new()))
                            }
                        });
                    }
                    Op::Advance(t) => now += t,
                }
                prop_assert!(m.len() <= cap);
                prop_assert!(m.bytes() <= cap_items * size);
                let pending = m.pending(usize::MAX, usize::MAX);
                prop_assert_eq!(pending.len(), m.len());
                prop_assert_eq!(pending.iter().map(|e| e.encode().len()).sum::<usize>(), m.bytes());
                for e in &pending {
                    prop_assert!(m.contains(&e.id()));
                }
            }
        }
    }
}
