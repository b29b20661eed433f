//! The ids of user entries whose signatures a node has verified, so that it verifies each
//! entry's signature once: on admission (from a client or a peer), not again when a block that
//! carries the entry is built or re-executed (`docs/performance.md`, Signatures once per node).
//!
//! An entry's id hashes its whole encoding (kind, author, signature and payload) and a node
//! serves one chain, so an id in the set stands for exactly the bytes that were verified. The
//! set is bounded: past [`VerifiedIds::DEFAULT_CAP`] ids the oldest are forgotten, and an
//! entry whose id was forgotten is simply verified again. Nothing outside the node reads it;
//! a block's outcome is the same with or without it.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use surplus_ledger::Hash;

/// Entry ids whose signatures verified (strict rule, this node's chain), oldest forgotten first.
#[derive(Debug)]
pub struct VerifiedIds {
    cap: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    set: HashSet<Hash>,
    order: VecDeque<Hash>,
}

impl Default for VerifiedIds {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAP)
    }
}

impl VerifiedIds {
    /// Ids kept by default: more than a full mempool (50,000 entries by default), about 11 MB.
    pub const DEFAULT_CAP: usize = 131_072;

    /// An empty set keeping at most `cap` ids (at least 1).
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            inner: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Records that the entry with id `id` carries a valid signature.
    pub fn insert(&self, id: Hash) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.set.insert(id) {
            return;
        }
        inner.order.push_back(id);
        while inner.order.len() > self.cap {
            if let Some(old) = inner.order.pop_front() {
                inner.set.remove(&old);
            }
        }
    }

    /// Which of `ids` are known to carry a valid signature; counts hits and misses.
    pub fn known(&self, ids: impl IntoIterator<Item = Hash>) -> Vec<bool> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let known: Vec<bool> = ids.into_iter().map(|id| inner.set.contains(&id)).collect();
        drop(inner);
        let hits = known.iter().filter(|k| **k).count() as u64;
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses.fetch_add(known.len() as u64 - hits, Ordering::Relaxed);
        known
    }

    /// Ids kept now.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).order.len()
    }

    /// Whether no id is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries of blocks whose signature check was skipped because the id was known.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Entries of blocks whose signature had to be checked.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_ids_are_forgotten_past_the_cap() {
        let v = VerifiedIds::new(3);
        for i in 0..5u8 {
            v.insert([i; 32]);
            v.insert([i; 32]);
        }
        assert_eq!(v.len(), 3);
        let ids = (0..5u8).map(|i| [i; 32]);
        assert_eq!(v.known(ids), vec![false, false, true, true, true]);
        assert_eq!((v.hits(), v.misses()), (3, 2));
    }
}
