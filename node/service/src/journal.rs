//! The journal of entries acknowledged to API clients (`DIR/mempool`), made durable before the
//! acknowledgement with group commit: while one flush runs, later writers wait, and the next
//! flush covers all of them at once, so concurrent submissions share fsyncs instead of queueing
//! one each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Mutex};

/// Where the journal keeps its entries: a sled tree in a node, a simulated disk that loses
/// unflushed writes on a crash in the simulation ([`crate::sim`]).
pub(crate) trait JournalDisk: Send + Sync + 'static {
    /// Writes `key → value` (not durable until a flush).
    fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), String>;
    /// Removes `key` (needs no flush: a removed entry that comes back after a crash is
    /// re-admitted and dropped as committed or stale).
    fn remove(&self, key: &[u8]);
    /// Makes every write so far durable; blocks.
    fn flush(&self) -> Result<(), String>;
    /// Every entry, in key order.
    fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)>;
}

impl JournalDisk for sled::Tree {
    fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        sled::Tree::insert(self, key, value).map(drop).map_err(|e| e.to_string())
    }
    fn remove(&self, key: &[u8]) {
        if let Err(e) = sled::Tree::remove(self, key) {
            tracing::warn!(error = %e, "cannot remove a journal entry");
        }
    }
    fn flush(&self) -> Result<(), String> {
        sled::Tree::flush(self).map(drop).map_err(|e| e.to_string())
    }
    fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.iter().flatten().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }
}

/// Entries whose writes become durable in shared flushes.
pub(crate) struct Journal {
    disk: Arc<dyn JournalDisk>,
    /// Writes made so far (a write's ticket is the count after it).
    written: AtomicU64,
    /// Every write up to this ticket is durable.
    durable: watch::Sender<u64>,
    /// One flush at a time.
    flushing: Mutex<()>,
    /// Flushes done (for the operator's health line and tests).
    flushes: AtomicU64,
}

impl Journal {
    pub(crate) fn new(disk: Arc<dyn JournalDisk>) -> Self {
        Self {
            disk,
            written: AtomicU64::new(0),
            durable: watch::channel(0).0,
            flushing: Mutex::new(()),
            flushes: AtomicU64::new(0),
        }
    }

    /// Every entry (for replay and pruning), in key order.
    pub(crate) fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.disk.entries()
    }

    /// Removes an entry (no flush needed: see [`JournalDisk::remove`]).
    pub(crate) fn remove(&self, key: &[u8]) {
        self.disk.remove(key)
    }

    /// Writes `key → value` and returns once it is durable.
    pub(crate) async fn insert_durable(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        self.insert_many_durable(&[(key, value)]).await
    }

    /// Writes every `key → value` and returns once all are durable (one flush covers them).
    pub(crate) async fn insert_many_durable(
        &self,
        items: &[(impl AsRef<[u8]>, impl AsRef<[u8]>)],
    ) -> Result<(), String> {
        for (key, value) in items {
            self.disk.insert(key.as_ref(), value.as_ref())?;
        }
        let n = items.len() as u64;
        let ticket = self.written.fetch_add(n, Ordering::AcqRel) + n;
        loop {
            if *self.durable.borrow() >= ticket {
                return Ok(());
            }
            let _one = self.flushing.lock().await;
            if *self.durable.borrow() >= ticket {
                return Ok(()); // the flush before ours covered this write
            }
            // Everything written before the flush starts is covered by it.
            let covers = self.written.load(Ordering::Acquire);
            // A blocking flush on tokio's blocking pool, not `flush_async`: sled 0.34's
            // `flush_async` runs on sled's own small I/O pool, and concurrent calls fill it with
            // flushes that wait for writes only that pool can do, wedging every tree of the
            // process, consensus included (spacejam/sled#1308; seen with 32 concurrent clients).
            let disk = self.disk.clone();
            tokio::task::spawn_blocking(move || disk.flush())
                .await
                .map_err(|e| e.to_string())??;
            self.flushes.fetch_add(1, Ordering::Relaxed);
            self.durable.send_modify(|d| *d = (*d).max(covers));
        }
    }

    /// Flushes done since start.
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_are_all_durable_and_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let n = 200u32;
        {
            let db = sled::open(dir.path()).unwrap();
            let j = Arc::new(Journal::new(Arc::new(db.open_tree("accepted").unwrap())));
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    let j = j.clone();
                    tokio::spawn(async move {
                        j.insert_durable(&i.to_be_bytes(), b"entry").await.unwrap()
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            assert!(j.flushes() >= 1 && j.flushes() <= u64::from(n), "{}", j.flushes());
        }
        // Every acknowledged write is there after reopening. Sled's flusher thread lets go of
        // the directory's lock a moment after the last handle is dropped: retry (bounded).
        let db = (0..50)
            .find_map(|_| {
                sled::open(dir.path()).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    None
                })
            })
            .expect("the journal reopens within 5 s");
        let tree = db.open_tree("accepted").unwrap();
        assert_eq!(tree.len(), n as usize);
        for i in 0..n {
            assert_eq!(tree.get(i.to_be_bytes()).unwrap().as_deref(), Some(&b"entry"[..]));
        }
    }
}
