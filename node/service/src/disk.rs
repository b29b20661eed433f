//! Bounded disk: the node measures its data directory's filesystem every few seconds (free
//! space with `statvfs`, and what each part of the data directory takes), and below
//! `[disk] min_free_bytes` it refuses new submissions with 503 `unavailable` and a reason,
//! before anything is journaled. Blocks keep committing (they are small, and the consortium
//! needs them); the refusal ends by itself at the first measurement above the threshold.
//!
//! The measurement runs on the runtime's blocking threads, one at a time, and walks at most
//! [`MAX_WALK`] directory entries; while free space is low the node warns at most once per
//! [`WARN_EVERY_MS`] (by the [`Env`]'s clock), and says when space is back.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use surplus_contracts::Code;
use surplus_net::Env;
use surplus_web::{DiskStatus, DiskUsed, Refusal};

use crate::config;

/// The directories of each part of the data directory ([`DiskUsed`]).
pub const LEDGER: &[&str] = &["ledger"];
/// See [`LEDGER`].
pub const CONSENSUS: &[&str] = &["consensus"];
/// See [`LEDGER`].
pub const JOURNAL: &[&str] = &["journal.log", "mempool"];
/// See [`LEDGER`].
pub const PROVISIONING: &[&str] = &["provisioning", "credentials"];
/// See [`LEDGER`].
pub const SNAPSHOTS: &[&str] = &["snapshots"];
/// See [`LEDGER`].
pub const EXPORTS: &[&str] = &["exports"];

/// Most directory entries one measurement walks (the parts are a few sled directories and one
/// file per lease; past this the sizes are partial rather than the walk unbounded).
pub const MAX_WALK: usize = 200_000;

/// At most one warning this often while free space is low, ms.
pub const WARN_EVERY_MS: u64 = 60_000;

/// Below this many free bytes the disk counts as full whatever the threshold: a node stopped by
/// a failed write waits for at least this much room before it starts again
/// (`runtime::Builder::run_until`).
pub const FULL_BELOW: u64 = 1024 * 1024;

/// One measurement of the data directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Measurement {
    /// Bytes available to the node on the filesystem.
    pub free_bytes: u64,
    /// Size of the filesystem, bytes.
    pub total_bytes: u64,
    /// Bytes on disk by part.
    pub used_bytes: DiskUsed,
}

/// Measures `dir`'s filesystem and parts (blocking: statvfs and a bounded walk).
pub fn measure(dir: &Path) -> Result<Measurement, String> {
    let fs = rustix::fs::statvfs(dir)
        .map_err(|e| format!("cannot measure the filesystem of {}: {e}", dir.display()))?;
    let block = fs.f_frsize.max(1);
    let mut budget = MAX_WALK;
    let mut part =
        |dirs: &[&str]| -> u64 { dirs.iter().map(|d| used(&dir.join(d), &mut budget)).sum() };
    let used_bytes = DiskUsed {
        ledger: part(LEDGER),
        consensus: part(CONSENSUS),
        journal: part(JOURNAL),
        provisioning: part(PROVISIONING),
        snapshots: part(SNAPSHOTS),
        exports: part(EXPORTS),
    };
    Ok(Measurement {
        free_bytes: fs.f_bavail.saturating_mul(block),
        total_bytes: fs.f_blocks.saturating_mul(block),
        used_bytes,
    })
}

/// Bytes available to the node on `dir`'s filesystem now (statvfs only, no walk).
pub fn free_bytes(dir: &Path) -> Result<u64, String> {
    let fs = rustix::fs::statvfs(dir)
        .map_err(|e| format!("cannot measure the filesystem of {}: {e}", dir.display()))?;
    Ok(fs.f_bavail.saturating_mul(fs.f_frsize.max(1)))
}

/// Bytes on disk under `path` (see [`used`]), walking at most [`MAX_WALK`] entries.
pub fn bytes_under(path: &Path) -> u64 {
    let mut budget = MAX_WALK;
    used(path, &mut budget)
}

/// Bytes on disk under `path` (allocated blocks, so sparse files count what they take), not
/// following symbolic links; 0 if it does not exist. Spends one of `budget` per entry.
fn used(path: &Path, budget: &mut usize) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![path.to_owned()];
    while let Some(p) = stack.pop() {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        total = total.saturating_add(on_disk(&meta));
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

#[cfg(unix)]
fn on_disk(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks().saturating_mul(512)
}

#[cfg(not(unix))]
fn on_disk(meta: &std::fs::Metadata) -> u64 {
    meta.len()
}

/// What a measurement asks the node to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Free space is (still) below the threshold: warn (at most once per [`WARN_EVERY_MS`]).
    Low(String),
    /// Free space is back above the threshold.
    Recovered(String),
    /// The measurement failed (warned at most once per [`WARN_EVERY_MS`] too).
    Failed(String),
}

/// The latest measurement and the verdict the API's submissions obey.
#[derive(Debug)]
pub struct DiskWatch {
    dir: PathBuf,
    min_free_bytes: u64,
    state: Mutex<Inner>,
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    status: DiskStatus,
    /// When the last warning was logged, ms (by the node's clock).
    warned_ms: Option<u64>,
}

impl DiskWatch {
    /// A watch over `dir` that refuses submissions below `min_free_bytes` (0: never); nothing
    /// measured yet (not low).
    pub fn new(dir: impl Into<PathBuf>, min_free_bytes: u64) -> Self {
        let status = DiskStatus { min_free_bytes, ..DiskStatus::default() };
        Self {
            dir: dir.into(),
            min_free_bytes,
            state: Mutex::new(Inner { status, warned_ms: None }),
            refused: AtomicU64::new(0),
        }
    }

    /// Measures `dir` now (blocking, once, at start) and then every `check_interval_ms` on
    /// `env`'s runtime while the watch is in use.
    pub fn start(dir: &Path, config: &config::Disk, env: &Env) -> Arc<Self> {
        let watch = Arc::new(Self::new(dir, config.min_free_bytes));
        watch.observe(measure(dir), env.now_ms());
        let weak = Arc::downgrade(&watch);
        let every = Duration::from_millis(config.check_interval_ms.max(1));
        let task_env = env.clone();
        env.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(w) = weak.upgrade() else { break };
                let dir = w.dir.clone();
                let m = task_env
                    .spawn_blocking(move || measure(&dir))
                    .await
                    .unwrap_or_else(|e| Err(format!("the disk measurement failed: {e}")));
                w.observe(m, task_env.now_ms());
            }
        });
        watch
    }

    /// [`DiskWatch::record`], and logs what it asks for.
    pub fn observe(&self, m: Result<Measurement, String>, now_ms: u64) {
        match self.record(m, now_ms) {
            Some(Notice::Low(msg)) => tracing::warn!(dir = %self.dir.display(), "{msg}"),
            Some(Notice::Recovered(msg)) => tracing::info!(dir = %self.dir.display(), "{msg}"),
            Some(Notice::Failed(msg)) => tracing::warn!("{msg}"),
            None => {}
        }
    }

    /// Takes a measurement made at `now_ms`: the new verdict, and what to log, if anything
    /// (a failed measurement keeps the previous verdict).
    pub fn record(&self, m: Result<Measurement, String>, now_ms: u64) -> Option<Notice> {
        let mut inner = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let due = inner.warned_ms.is_none_or(|t| now_ms.saturating_sub(t) >= WARN_EVERY_MS);
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                inner.status.error = Some(e.clone());
                inner.status.measured_ms = now_ms;
                if !due {
                    return None;
                }
                inner.warned_ms = Some(now_ms);
                return Some(Notice::Failed(e));
            }
        };
        let was_low = inner.status.low;
        let low = is_low(m.free_bytes, self.min_free_bytes);
        inner.status = DiskStatus {
            free_bytes: m.free_bytes,
            total_bytes: m.total_bytes,
            min_free_bytes: self.min_free_bytes,
            low,
            used_bytes: m.used_bytes,
            measured_ms: now_ms,
            refused: 0,
            error: None,
        };
        match (was_low, low) {
            (_, true) if !was_low || due => {
                inner.warned_ms = Some(now_ms);
                Some(Notice::Low(format!(
                    "{}; new submissions are refused until it is back (blocks keep committing)",
                    low_reason(m.free_bytes, self.min_free_bytes)
                )))
            }
            (true, false) => {
                inner.warned_ms = None;
                Some(Notice::Recovered(format!(
                    "the data directory's disk has {} free again (threshold {}): submissions \
                     are accepted again",
                    human(m.free_bytes),
                    human(self.min_free_bytes)
                )))
            }
            _ => None,
        }
    }

    /// Ok while free space is above the threshold; otherwise the 503 refusal, counted.
    pub fn admit(&self) -> Result<(), Refusal> {
        let (low, free) = {
            let inner = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (inner.status.low, inner.status.free_bytes)
        };
        if !low {
            return Ok(());
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        Err(Refusal::new(
            Code::Unavailable,
            format!("{}; try another node or later", low_reason(free, self.min_free_bytes)),
        ))
    }

    /// Whether the disk is full now, measured now (blocking: one statvfs): below the threshold
    /// or below [`FULL_BELOW`] free. A failed measurement counts as not full.
    pub fn full_now(&self) -> bool {
        free_bytes(&self.dir).is_ok_and(|free| free < self.min_free_bytes.max(FULL_BELOW))
    }

    /// The latest measurement, verdict and refusals (for the status and `/metrics`).
    pub fn status(&self) -> DiskStatus {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner()).status.clone();
        s.refused = self.refused.load(Ordering::Relaxed);
        s
    }
}

/// Free space is low: a threshold is set and free space is below it.
fn is_low(free_bytes: u64, min_free_bytes: u64) -> bool {
    min_free_bytes > 0 && free_bytes < min_free_bytes
}

fn low_reason(free_bytes: u64, min_free_bytes: u64) -> String {
    format!(
        "the node's disk has {} free, below the {} threshold ([disk] min_free_bytes)",
        human(free_bytes),
        human(min_free_bytes)
    )
}

/// Bytes for people: `512 B`, `3.5 KiB`, `12.0 MiB`, `1.2 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(bytes: u64) -> Result<Measurement, String> {
        Ok(Measurement { free_bytes: bytes, total_bytes: 1 << 30, ..Measurement::default() })
    }

    #[test]
    fn the_threshold_refuses_strictly_below_it_and_zero_never_refuses() {
        let w = DiskWatch::new("/d", 1_000);
        // Nothing measured yet: not low.
        assert!(w.admit().is_ok());
        w.record(free(1_000), 0);
        assert!(w.admit().is_ok(), "exactly at the threshold is enough");
        w.record(free(999), 1);
        let r = w.admit().unwrap_err();
        assert_eq!(r.code, Code::Unavailable);
        assert_eq!(r.http_status(), 503);
        assert!(r.message.contains("999 B free, below the 1000 B threshold"), "{}", r.message);
        assert!(r.message.contains("try another node or later"), "{}", r.message);
        let s = w.status();
        assert!(s.low);
        assert_eq!((s.free_bytes, s.min_free_bytes, s.refused), (999, 1_000, 1));
        w.record(free(1_001), 2);
        assert!(w.admit().is_ok(), "recovers at the next measurement");
        assert_eq!(w.status().refused, 1);

        let never = DiskWatch::new("/d", 0);
        never.record(free(0), 0);
        assert!(never.admit().is_ok());
        assert!(!never.status().low);
    }

    #[test]
    fn a_low_disk_warns_once_a_minute_and_says_when_it_is_back() {
        let w = DiskWatch::new("/d", 1_000);
        assert_eq!(w.record(free(5_000), 0), None);
        let first = w.record(free(10), 1_000);
        assert!(matches!(&first, Some(Notice::Low(m)) if m.contains("10 B free")), "{first:?}");
        // Measured every 2 s: silent for the rest of the minute.
        for t in (3_000..61_000).step_by(2_000) {
            assert_eq!(w.record(free(10), t), None, "at {t}");
        }
        assert!(matches!(w.record(free(10), 61_000), Some(Notice::Low(_))));
        assert_eq!(w.record(free(10), 62_000), None);
        assert!(matches!(w.record(free(2_000), 63_000), Some(Notice::Recovered(_))));
        assert_eq!(w.record(free(2_000), 65_000), None);
        // Low again right after: warned at once, not a minute later.
        assert!(matches!(w.record(free(10), 66_000), Some(Notice::Low(_))));
        // A clock set back does not silence it for good.
        assert_eq!(w.record(free(10), 5_000), None);
        assert!(matches!(w.record(free(10), 126_000), Some(Notice::Low(_))));
    }

    #[test]
    fn a_failed_measurement_keeps_the_verdict_and_warns_at_most_once_a_minute() {
        let w = DiskWatch::new("/d", 1_000);
        w.record(free(10), 0);
        assert!(matches!(w.record(Err("gone".into()), 70_000), Some(Notice::Failed(_))));
        assert_eq!(w.record(Err("gone".into()), 72_000), None);
        let s = w.status();
        assert!(s.low && s.error.as_deref() == Some("gone"), "{s:?}");
        assert!(w.admit().is_err());
        w.record(free(5_000), 74_000);
        assert!(w.status().error.is_none());
        assert!(w.admit().is_ok());
    }

    #[test]
    fn measure_reports_free_space_and_each_part() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ledger/sub")).unwrap();
        std::fs::write(dir.path().join("ledger/sub/blob"), vec![7u8; 64 * 1024]).unwrap();
        std::fs::create_dir_all(dir.path().join("credentials")).unwrap();
        std::fs::write(dir.path().join("credentials/x.token"), vec![1u8; 8 * 1024]).unwrap();
        let m = measure(dir.path()).unwrap();
        assert!(m.free_bytes > 0 && m.total_bytes >= m.free_bytes, "{m:?}");
        assert!(m.used_bytes.ledger >= 64 * 1024, "{m:?}");
        assert!(m.used_bytes.provisioning >= 8 * 1024, "{m:?}");
        assert_eq!((m.used_bytes.snapshots, m.used_bytes.journal), (0, 0), "absent parts are 0");
        assert!(measure(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn the_walk_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..20 {
            std::fs::write(dir.path().join(format!("f{i}")), vec![1u8; 4096]).unwrap();
        }
        let mut budget = 5;
        let partial = used(dir.path(), &mut budget);
        assert_eq!(budget, 0);
        let mut plenty = 1_000;
        assert!(partial < used(dir.path(), &mut plenty));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(256 * 1024 * 1024), "256.0 MiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
