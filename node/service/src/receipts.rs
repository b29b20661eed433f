//! Receipts: what became of each user entry this node saw leave its mempool or reach a block,
//! so that a client whose submission was acknowledged can always learn its fate
//! (`GET /api/v1/submissions/{id}`): committed at height H, or dropped with its refusal code.
//!
//! Kept in the node's journal database (`DIR/mempool`, trees `receipts`, `receipts_order` and
//! `receipts_meta`), bounded in count: past `[storage] receipts_keep` ([`CAPACITY`] by default) the oldest receipts are forgotten
//! first. Receipts are not flushed on their own (sled flushes within half a second), so a crash
//! may forget the last few; the node derives those of committed entries again from its ledger
//! at start (`receipts_meta` holds the last height whose receipts were recorded), and records a
//! dropped receipt for each journaled entry it can no longer admit. An entry whose receipt was
//! lost otherwise reads as unknown, never as something it was not.

use std::sync::Mutex;

use surplus_ledger::Hash;
use surplus_web::Submission as Receipt;

/// Most receipts kept unless the node's `[storage] receipts_keep` says otherwise (about 100
/// bytes each on disk, with their place in the order).
pub const CAPACITY: u64 = 500_000;

/// The page cache of the journal database that holds them (`DIR/mempool`) unless the node's
/// `[storage] receipts_cache_bytes` says otherwise.
pub const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// The key of the last recorded height in `receipts_meta`.
const HEIGHT_KEY: &[u8] = b"height";

/// The receipts store.
pub(crate) struct Receipts {
    by_id: sled::Tree,
    order: sled::Tree,
    meta: sled::Tree,
    capacity: u64,
    /// (next position in the order, receipts held)
    counters: Mutex<(u64, u64)>,
}

impl Receipts {
    /// Opens (or creates) the receipts in `db`, keeping at most `capacity`.
    pub(crate) fn open(db: &sled::Db, capacity: u64) -> sled::Result<Self> {
        let by_id = db.open_tree("receipts")?;
        let order = db.open_tree("receipts_order")?;
        let meta = db.open_tree("receipts_meta")?;
        let next = match order.last()? {
            Some((k, _)) => <[u8; 8]>::try_from(&k[..]).map_or(0, u64::from_be_bytes) + 1,
            None => 0,
        };
        let held = by_id.len() as u64;
        Ok(Self {
            by_id,
            order,
            meta,
            capacity: capacity.max(1),
            counters: Mutex::new((next, held)),
        })
    }

    /// Records the receipts of the block at `height` (its signed entries, committed there), and
    /// that receipts are recorded up to it.
    pub(crate) fn record_block(&self, height: u64, receipts: &[(Hash, Receipt)]) {
        self.record(receipts);
        if let Err(e) = self.meta.insert(HEIGHT_KEY, &height.to_be_bytes()) {
            tracing::warn!(error = %e, "cannot record the receipts' height");
        }
    }

    /// The last height whose receipts were recorded, if any.
    pub(crate) fn height(&self) -> Option<u64> {
        let v = self.meta.get(HEIGHT_KEY).ok()??;
        <[u8; 8]>::try_from(&v[..]).ok().map(u64::from_be_bytes)
    }

    /// Records the fate of each entry in `receipts` (a later receipt of the same entry replaces
    /// the earlier, except that a committed entry is never recorded dropped afterwards: a
    /// block is final), then forgets the oldest past the capacity.
    pub(crate) fn record(&self, receipts: &[(Hash, Receipt)]) {
        if receipts.is_empty() {
            return;
        }
        if let Err(e) = self.try_record(receipts) {
            tracing::warn!(error = %e, "cannot record entry receipts");
        }
    }

    fn try_record(&self, receipts: &[(Hash, Receipt)]) -> Result<(), String> {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let (next, held) = &mut *counters;
        let mut ids = sled::Batch::default();
        let mut order = sled::Batch::default();
        for (id, receipt) in receipts {
            if matches!(receipt, Receipt::Dropped { .. })
                && matches!(self.get(id), Some(Receipt::Committed { .. }))
            {
                continue;
            }
            let value = serde_json::to_vec(receipt).map_err(|e| e.to_string())?;
            // A new id takes a place in the order; a known one keeps its place.
            if self.by_id.insert(id, value).map_err(|e| e.to_string())?.is_none() {
                order.insert(&next.to_be_bytes(), id);
                *next += 1;
                *held += 1;
            }
        }
        self.order.apply_batch(order).map_err(|e| e.to_string())?;
        while *held > self.capacity {
            let Some((_, id)) = self.order.pop_min().map_err(|e| e.to_string())? else { break };
            ids.remove(id);
            *held -= 1;
        }
        self.by_id.apply_batch(ids).map_err(|e| e.to_string())
    }

    /// The receipt of entry `id`, if this node keeps one.
    pub(crate) fn get(&self, id: &Hash) -> Option<Receipt> {
        let value = self.by_id.get(id).ok()??;
        serde_json::from_slice(&value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use surplus_contracts::Code;

    fn id(i: u8) -> Hash {
        [i; 32]
    }

    #[test]
    fn receipts_replace_survive_reopening_and_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let r = Receipts::open(&db, 3).unwrap();
        let dropped = Receipt::Dropped { code: Code::Expired, message: "late".into() };
        r.record(&[(id(1), dropped.clone()), (id(2), Receipt::Committed { height: 4 })]);
        assert_eq!(r.get(&id(1)), Some(dropped));
        // Dropped, then sent again and committed: the later receipt wins, in the same place.
        r.record(&[(id(1), Receipt::Committed { height: 9 })]);
        assert_eq!(r.get(&id(1)), Some(Receipt::Committed { height: 9 }));
        r.record(&[(id(3), Receipt::Committed { height: 9 })]);
        assert_eq!(r.get(&id(3)), Some(Receipt::Committed { height: 9 }));
        assert_eq!(r.get(&id(7)), None);
        drop(r);

        // Reopened: the counters come back, and the oldest receipt goes first past capacity.
        let r = Receipts::open(&db, 3).unwrap();
        r.record(&[(id(4), Receipt::Committed { height: 10 })]);
        assert_eq!(r.get(&id(1)), None);
        for i in 2..=4 {
            assert!(r.get(&id(i)).is_some(), "{i}");
        }
        assert_eq!(db.open_tree("receipts").unwrap().len(), 3);
        assert_eq!(db.open_tree("receipts_order").unwrap().len(), 3);
    }

    /// Found by the web tests on the real node: a block built before the node had applied the
    /// previous one refused that block's entries as already applied, and the pool recorded
    /// them dropped, which could land after their committed receipt.
    #[test]
    fn web_tests_a_committed_entry_is_never_recorded_dropped_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let r = Receipts::open(&db, 10).unwrap();
        r.record_block(5, &[(id(1), Receipt::Committed { height: 5 })]);
        let replayed = Receipt::Dropped { code: Code::ReplayedNonce, message: "used".into() };
        r.record(&[(id(1), replayed.clone()), (id(2), replayed.clone())]);
        assert_eq!(r.get(&id(1)), Some(Receipt::Committed { height: 5 }));
        assert_eq!(r.get(&id(2)), Some(replayed));
    }

    /// Found by the crash loop: a node killed after a block was stored but before its
    /// receipts reached the disk answered 404 for orders it had acknowledged. The height whose
    /// receipts are recorded tells the node where to read the ledger back from.
    #[test]
    fn crash_loop_the_recorded_height_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let r = Receipts::open(&db, 10).unwrap();
        assert_eq!(r.height(), None);
        r.record_block(5, &[(id(1), Receipt::Committed { height: 5 })]);
        r.record_block(6, &[]);
        assert_eq!(r.height(), Some(6));
        drop(r);
        let r = Receipts::open(&db, 10).unwrap();
        assert_eq!(r.height(), Some(6));
        assert_eq!(r.get(&id(1)), Some(Receipt::Committed { height: 5 }));
    }
}
