//! The leases that have left the live state: each block's ended leases (completed or
//! terminated, `surplus_contracts::Applied::ended`) in their final form, kept on disk so that the
//! API can still show them. Derived from the ledger: a crash between a block's append and its
//! record here is repaired when the chain opens and replays the ledger.

use std::path::Path;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use surplus_contracts::maintenance::Window;
use surplus_contracts::supervision::{Credit, CreditReason};
use surplus_contracts::{Applied, Lease, State};
use surplus_ledger::{EntryKind, Hash, PublicKey};

/// The page cache of the history's sled database unless the node's `[storage]
/// history_cache_bytes` says otherwise.
pub const CACHE_BYTES: u64 = 8 * 1024 * 1024;

const HEIGHT_KEY: &[u8] = b"height";

/// Ended leases by id, with an index by account (buyer and provider). Cheap to clone.
#[derive(Clone)]
pub struct LeaseHistory {
    db: sled::Db,
    /// lease id → the lease as JSON.
    leases: sled::Tree,
    /// account ‖ height:u64 ‖ lease id → nothing, for the account's leases, most recent last.
    by_account: sled::Tree,
    /// `height` → the last height whose ended leases are recorded; `paid` ‖ provider → what
    /// the provider's ended leases paid it in all (hours paid at their prices, before fees).
    meta: sled::Tree,
    /// provider ‖ end_ms ‖ lease id → start_ms, for the time a provider's ended leases ran.
    by_end: sled::Tree,
    /// provider ‖ from_ms ‖ lease id → a [`Downtime`] as JSON: the intervals the quorum found
    /// down (`credit` entries of reason 1).
    down: sled::Tree,
    /// provider ‖ start_ms ‖ pool → the maintenance [`Window`] as JSON, as last seen open.
    windows: sled::Tree,
}

/// A lease's interval that the consortium's quorum found down (`docs/contracts.md` §10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downtime {
    /// The provider (the fill's key).
    pub provider: PublicKey,
    /// The lease.
    #[serde(with = "surplus_ledger::hex_hash")]
    pub lease: Hash,
    /// The lease's market, `class@region`.
    pub market: String,
    /// The interval's part inside the lease: from, ms.
    pub from_ms: u64,
    /// To, ms.
    pub to_ms: u64,
    /// What the buyer was credited for it, units.
    pub credited: u64,
    /// The block that decided it.
    pub height: u64,
}

fn time_key(provider: &PublicKey, t: u64, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(40 + rest.len());
    k.extend_from_slice(&provider.0);
    k.extend_from_slice(&t.to_be_bytes());
    k.extend_from_slice(rest);
    k
}

/// The down intervals that `applied` (a block at `height`, leaving `state`) decided.
pub fn downtime_of(height: u64, applied: &Applied, state: &State) -> Vec<Downtime> {
    let Some(sup) = state.params.supervision else { return Vec::new() };
    let lease = |id: &Hash| {
        state.lease(id).cloned().or_else(|| applied.ended.iter().find(|l| l.id == *id).cloned())
    };
    applied
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::CREDIT)
        .filter_map(|e| Credit::decode(&e.payload).ok())
        .filter(|c| c.reason == CreditReason::Down)
        .filter_map(|c| {
            let l = lease(&c.lease)?;
            let (start, end) = sup.span(c.interval)?;
            Some(Downtime {
                provider: l.fill.provider,
                lease: c.lease,
                market: l.fill.market.to_string(),
                from_ms: start.max(l.fill.start_ms),
                to_ms: end.min(l.fill.end_ms.max(l.fill.start_ms)),
                credited: c.from_balance + c.from_bond,
                height,
            })
        })
        .collect()
}

impl std::fmt::Debug for LeaseHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseHistory").field("height", &self.height()).finish()
    }
}

fn account_key(account: &PublicKey, height: u64, id: &Hash) -> [u8; 72] {
    let mut k = [0u8; 72];
    k[..32].copy_from_slice(&account.0);
    k[32..40].copy_from_slice(&height.to_be_bytes());
    k[40..].copy_from_slice(id);
    k
}

fn paid_key(provider: &PublicKey) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..4].copy_from_slice(b"paid");
    k[4..].copy_from_slice(&provider.0);
    k
}

impl LeaseHistory {
    /// Opens (or creates) the history in `dir` with a page cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
            .with_context(|| format!("cannot open the lease history in {}", dir.display()))?;
        Ok(Self {
            leases: db.open_tree("leases")?,
            by_account: db.open_tree("by_account")?,
            meta: db.open_tree("meta")?,
            by_end: db.open_tree("by_end")?,
            down: db.open_tree("down")?,
            windows: db.open_tree("windows")?,
            db,
        })
    }

    /// The last height that ended a lease and whose ended leases are recorded (0 if none).
    pub fn height(&self) -> u64 {
        self.meta
            .get(HEIGHT_KEY)
            .ok()
            .flatten()
            .and_then(|v| v.as_ref().try_into().ok())
            .map_or(0, u64::from_be_bytes)
    }

    /// Records what the block at `height` did that the status page tells (its down intervals,
    /// the maintenance windows open after it) and the leases it ended. Every key is derived
    /// from the block, so recording a block again (a replay after a restart) writes the same.
    pub fn record_block(&self, height: u64, applied: &Applied, state: &State) -> Result<()> {
        let down = downtime_of(height, applied, state);
        if !down.is_empty() {
            let mut b = sled::Batch::default();
            for d in &down {
                b.insert(time_key(&d.provider, d.from_ms, &d.lease), serde_json::to_vec(d)?);
            }
            self.down.apply_batch(b)?;
        }
        for w in state.maintenance() {
            let k = time_key(&w.provider, w.start_ms, w.pool.as_bytes());
            self.windows.insert(k, serde_json::to_vec(w)?)?;
        }
        self.record(height, &applied.ended)
    }

    /// The down intervals recorded that end after `since_ms`, of every provider, oldest first.
    pub fn downtime(&self, since_ms: u64) -> Vec<Downtime> {
        let mut out: Vec<Downtime> = self
            .down
            .iter()
            .values()
            .filter_map(|v| v.ok())
            .filter_map(|v| serde_json::from_slice::<Downtime>(&v).ok())
            .filter(|d| d.to_ms > since_ms)
            .collect();
        out.sort_by_key(|d| (d.from_ms, d.provider, d.lease));
        out
    }

    /// The maintenance windows seen open that end after `since_ms` (or have no end), by start.
    pub fn windows(&self, since_ms: u64) -> Vec<Window> {
        let mut out: Vec<Window> = self
            .windows
            .iter()
            .values()
            .filter_map(|v| v.ok())
            .filter_map(|v| serde_json::from_slice::<Window>(&v).ok())
            .filter(|w| w.until_ms == 0 || w.until_ms > since_ms)
            .collect();
        out.sort_by_key(|w| (w.start_ms, w.provider));
        out
    }

    /// The time `provider`'s ended leases ran within `[from_ms, to_ms)`, ms (lease by lease).
    pub fn ended_leased_ms(&self, provider: &PublicKey, from_ms: u64, to_ms: u64) -> u64 {
        self.by_end
            .range(time_key(provider, from_ms, &[])..)
            .filter_map(|kv| kv.ok())
            .take_while(|(k, _)| k.starts_with(&provider.0))
            .filter_map(|(k, v)| {
                let end = u64::from_be_bytes(k.get(32..40)?.try_into().ok()?);
                let start = u64::from_be_bytes(v.as_ref().try_into().ok()?);
                Some(end.min(to_ms).saturating_sub(start.max(from_ms)))
            })
            .sum()
    }

    /// Every provider with an ended lease that ended after `since_ms`.
    pub fn providers_since(&self, since_ms: u64) -> std::collections::BTreeSet<PublicKey> {
        let mut out = std::collections::BTreeSet::new();
        for (k, _) in self.by_end.iter().filter_map(|kv| kv.ok()) {
            let (Some(p), Some(t)) = (k.get(..32), k.get(32..40)) else { continue };
            let t = u64::from_be_bytes(t.try_into().unwrap_or([0; 8]));
            if t > since_ms {
                if let Ok(p) = <[u8; 32]>::try_from(p) {
                    out.insert(PublicKey(p));
                }
            }
        }
        out
    }

    /// Records the leases that ended in the block at `height`, durably, unless that height is
    /// already recorded (a replay after a restart).
    pub fn record(&self, height: u64, ended: &[Lease]) -> Result<()> {
        // A block that ended no lease writes nothing (no flush per block): `height` is then the
        // last block that ended one, and a replay records the blocks after it again, which
        // writes the same keys and values.
        if ended.is_empty() || height <= self.height() {
            return Ok(());
        }
        let mut leases = sled::Batch::default();
        let mut index = sled::Batch::default();
        for l in ended {
            leases.insert(&l.id[..], serde_json::to_vec(l)?);
            let made = l.height;
            index.insert(&account_key(&l.fill.buyer, made, &l.id)[..], &[][..]);
            index.insert(&account_key(&l.fill.provider, made, &l.id)[..], &[][..]);
            self.by_end.insert(
                time_key(&l.fill.provider, l.fill.end_ms, &l.id),
                &l.fill.start_ms.to_be_bytes(),
            )?;
        }
        // The leases and their index first; the height last, so that a crash in between only
        // makes the next open record the same block again (the same keys and values).
        self.leases.apply_batch(leases)?;
        self.by_account.apply_batch(index)?;
        // The totals and the height in one batch of one tree (atomic): a block is counted once.
        let mut meta = sled::Batch::default();
        let mut paid: std::collections::BTreeMap<PublicKey, u64> = Default::default();
        for l in ended {
            let p = paid.entry(l.fill.provider).or_insert_with(|| self.paid(&l.fill.provider));
            *p = p.saturating_add(l.cost_between(0, l.hours_paid));
        }
        for (provider, total) in paid {
            meta.insert(paid_key(&provider).to_vec(), &total.to_be_bytes());
        }
        meta.insert(HEIGHT_KEY, &height.to_be_bytes());
        self.meta.apply_batch(meta)?;
        self.db.flush().context("cannot flush the lease history")?;
        Ok(())
    }

    /// What `provider`'s ended leases paid it in all (their hours paid at their prices, before
    /// the fee).
    pub fn paid(&self, provider: &PublicKey) -> u64 {
        self.meta
            .get(paid_key(provider))
            .ok()
            .flatten()
            .and_then(|v| v.as_ref().try_into().ok())
            .map_or(0, u64::from_be_bytes)
    }

    /// An ended lease.
    pub fn lease(&self, id: &Hash) -> Option<Lease> {
        let v = self.leases.get(id).ok().flatten()?;
        serde_json::from_slice(&v).ok()
    }

    /// Up to `limit` ended leases of `account` (as buyer or provider), the most recently made
    /// first.
    pub fn of_account(&self, account: &PublicKey, limit: usize) -> Vec<Lease> {
        self.by_account
            .scan_prefix(account.0)
            .rev()
            .filter_map(|kv| kv.ok())
            .filter_map(|(k, _)| <[u8; 32]>::try_from(&k[40..]).ok())
            .filter_map(|id| self.lease(&id))
            .take(limit)
            .collect()
    }

    /// Up to `limit` ended leases, in id order.
    pub fn all(&self, limit: usize) -> Vec<Lease> {
        self.leases
            .iter()
            .values()
            .filter_map(|v| v.ok())
            .filter_map(|v| serde_json::from_slice(&v).ok())
            .take(limit)
            .collect()
    }

    /// Bytes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use surplus_contracts::testutil::{bid, buyer, genesis, offer, provider, tx, CHAIN, T0};
    use surplus_contracts::{LeaseStatus, Mode, State, Tx};

    #[test]
    fn ended_leases_are_kept_by_id_and_account_and_survive_reopening() {
        let mut s = State::genesis(CHAIN, &genesis(100, 1000), T0).unwrap();
        s.apply_block(
            1,
            T0,
            &[offer(&provider(0), 4, 20, 48, 1, T0), bid(&buyer(0), 2, 6, 30, 1, T0)],
            Mode::Validate,
        )
        .unwrap();
        let id = s.leases().next().unwrap().id;
        let a = s
            .apply_block(
                2,
                T0 + 1,
                &[tx(&buyer(0), Tx::Terminate { lease: id, seq: 0 })],
                Mode::Validate,
            )
            .unwrap();
        assert_eq!(a.ended.len(), 1);
        let dir = tempfile::tempdir().unwrap();
        {
            let h = LeaseHistory::open(dir.path(), CACHE_BYTES).unwrap();
            assert_eq!(h.height(), 0);
            h.record(2, &a.ended).unwrap();
            // A replay of the same height changes nothing.
            h.record(2, &a.ended[..0]).unwrap();
            h.record(1, &a.ended).unwrap();
        }
        let h = LeaseHistory::open(dir.path(), CACHE_BYTES).unwrap();
        assert_eq!(h.height(), 2);
        let l = h.lease(&id).unwrap();
        assert_eq!(l.status, LeaseStatus::TerminatedByBuyer);
        assert_eq!(h.of_account(&buyer(0).public(), 10), vec![l.clone()]);
        assert_eq!(h.of_account(&provider(0).public(), 10), vec![l.clone()]);
        assert!(h.of_account(&buyer(1).public(), 10).is_empty());
        assert_eq!(h.paid(&provider(0).public()), l.cost_between(0, l.hours_paid));
        assert!(h.paid(&provider(0).public()) > 0);
        assert_eq!(h.all(10), vec![l]);
        assert!(h.lease(&[9; 32]).is_none());
    }
}
