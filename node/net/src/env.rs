//! What a node is given rather than reaching for itself: the wall clock and the runtime its
//! tasks run on. Service and network code read the time and spawn tasks only through an
//! [`Env`], so that a test or a simulation can hand it a clock it moves by hand and a runtime
//! whose timers it pauses (tokio's `start_paused`): the monotonic time (timers, `elapsed`) is
//! the runtime's, `tokio::time::Instant`.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// A wall clock: milliseconds since the Unix epoch (block timestamps, expiries, lease times).
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// This machine's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::now_ms()
    }
}

/// A clock that moves only when told (tests and simulations).
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicU64,
}

impl ManualClock {
    /// A clock that reads `ms`.
    pub fn new(ms: u64) -> Self {
        Self { ms: AtomicU64::new(ms) }
    }

    /// Sets the time; a clock may be set back (as a machine's clock may be).
    pub fn set(&self, ms: u64) {
        self.ms.store(ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| Some(m.saturating_add(by)));
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}

/// The clock and the runtime a node service runs with.
#[derive(Clone)]
pub struct Env {
    clock: Arc<dyn Clock>,
    runtime: Handle,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env").field("clock", &self.clock).finish_non_exhaustive()
    }
}

impl Env {
    /// `clock` for the time, `runtime` for the tasks and timers.
    pub fn new(clock: Arc<dyn Clock>, runtime: Handle) -> Self {
        Self { clock, runtime }
    }

    /// The machine's clock and the runtime this is called from (panics outside a runtime, as
    /// `Handle::current` does).
    pub fn system() -> Self {
        Self::new(Arc::new(SystemClock), Handle::current())
    }

    /// Now, by the given clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The runtime handle.
    pub fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// Runs `task` on the given runtime.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(task)
    }

    /// Runs blocking `work` on the given runtime's blocking threads.
    pub fn spawn_blocking<F, R>(&self, work: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.runtime.spawn_blocking(work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_saturates() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.advance(Duration::from_millis(250));
        assert_eq!(c.now_ms(), 1_250);
        c.set(10);
        assert_eq!(c.now_ms(), 10);
        c.set(u64::MAX - 1);
        c.advance(Duration::from_secs(1));
        assert_eq!(c.now_ms(), u64::MAX);
    }

    #[tokio::test]
    async fn an_env_reads_its_clock_and_spawns_on_its_runtime() {
        let clock = Arc::new(ManualClock::new(42));
        let env = Env::new(clock.clone(), Handle::current());
        assert_eq!(env.now_ms(), 42);
        clock.advance(Duration::from_millis(8));
        assert_eq!(env.now_ms(), 50);
        assert_eq!(env.spawn(async { 7 }).await.unwrap(), 7);
        assert_eq!(env.spawn_blocking(|| 9).await.unwrap(), 9);
        let sys = Env::system();
        assert!(sys.now_ms() > 1_600_000_000_000, "the system clock reads a plausible time");
    }
}
