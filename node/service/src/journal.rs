//! The journal of entries acknowledged to API clients (`DIR/mempool`), made durable before the
//! acknowledgement with group commit: while one flush runs, later writers wait, and the next
//! flush covers all of them at once, so concurrent submissions share fsyncs instead of queueing
//! one each.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{watch, Mutex};

/// A sled tree whose writes become durable in shared flushes.
pub(crate) struct Journal {
    tree: sled::Tree,
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
    pub(crate) fn new(tree: sled::Tree) -> Self {
        Self {
            tree,
            written: AtomicU64::new(0),
            durable: watch::channel(0).0,
            flushing: Mutex::new(()),
            flushes: AtomicU64::new(0),
        }
    }

    /// The tree, for reading, replay and removal (removals need no flush: a removed entry that
    /// comes back after a crash is re-admitted and dropped as committed or stale).
    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Writes `key → value` and returns once it is durable.
    pub(crate) async fn insert_durable(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        self.tree.insert(key, value).map_err(|e| e.to_string())?;
        let ticket = self.written.fetch_add(1, Ordering::AcqRel) + 1;
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
            let tree = self.tree.clone();
            tokio::task::spawn_blocking(move || tree.flush())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
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
            let j = Arc::new(Journal::new(db.open_tree("accepted").unwrap()));
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
