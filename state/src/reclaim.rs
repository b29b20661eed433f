//! Freeing replaced versions off the block's path.
//!
//! A block's new version of a persistent structure shares everything it did not change with
//! the version before; when the new one replaces the old, what only the old one held (a copy of
//! every node on every changed path: thousands of allocations for a block of a thousand
//! entries over a large state) is freed. Freeing it walks those nodes and decrements the count
//! of every child they point to, mostly cold memory: at 10^6 keys it cost as much as updating the
//! tree. [`drop_in_background`] hands such a value to one background thread that drops it, so
//! that the block which replaced it, and the next one, do not wait for that work. Only memory is
//! freed there: nothing a drop does is observable, so no order or result depends on it.
//!
//! The hand-over queue holds [`QUEUE`] values; when it is full (the thread is behind), the caller
//! drops the value itself, so at most [`QUEUE`] replaced versions wait and memory stays bounded.

use std::any::Any;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;

/// Values waiting to be dropped, at most.
pub const QUEUE: usize = 4;

type Parcel = Box<dyn Any + Send>;

fn sender() -> Option<&'static SyncSender<Parcel>> {
    static SENDER: OnceLock<Option<SyncSender<Parcel>>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            let (tx, rx) = sync_channel::<Parcel>(QUEUE);
            std::thread::Builder::new()
                .name("surplus-reclaim".into())
                .spawn(move || {
                    for parcel in rx {
                        drop(parcel);
                    }
                })
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

/// Drops `value` on the background thread, or here if that thread's queue is full or it could
/// not be started.
pub fn drop_in_background<T: Send + 'static>(value: T) {
    if let Some(sender) = sender() {
        match sender.try_send(Box::new(value)) {
            Ok(()) => {}
            Err(TrySendError::Full(parcel) | TrySendError::Disconnected(parcel)) => drop(parcel),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    /// Sends on `tx` when dropped.
    struct Signal(std::sync::mpsc::Sender<std::thread::ThreadId>);

    impl Drop for Signal {
        fn drop(&mut self) {
            let _ = self.0.send(std::thread::current().id());
        }
    }

    #[test]
    fn values_are_dropped_and_a_full_queue_drops_in_place() {
        let (tx, rx) = channel();
        drop_in_background(Signal(tx.clone()));
        let id = rx.recv_timeout(Duration::from_secs(30)).expect("dropped");
        assert_ne!(id, std::thread::current().id());
        // Many at once: every one is dropped, on one thread or the other.
        for _ in 0..100 {
            drop_in_background(Signal(tx.clone()));
        }
        for _ in 0..100 {
            rx.recv_timeout(Duration::from_secs(30)).expect("dropped");
        }
    }
}
