//! The leases that have left the live state: each block's ended leases (completed or
//! terminated, `surplus_contracts::Applied::ended`) in their final form, kept on disk so that the
//! API can still show them. Derived from the ledger: a crash between a block's append and its
//! record here is repaired when the chain opens and replays the ledger.

use std::path::Path;

use anyhow::{Context as _, Result};
use surplus_contracts::Lease;
use surplus_ledger::{Hash, PublicKey};

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
    /// Opens (or creates) the history in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(8 * 1024 * 1024)
            .open()
            .with_context(|| format!("cannot open the lease history in {}", dir.display()))?;
        Ok(Self {
            leases: db.open_tree("leases")?,
            by_account: db.open_tree("by_account")?,
            meta: db.open_tree("meta")?,
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
            let h = LeaseHistory::open(dir.path()).unwrap();
            assert_eq!(h.height(), 0);
            h.record(2, &a.ended).unwrap();
            // A replay of the same height changes nothing.
            h.record(2, &a.ended[..0]).unwrap();
            h.record(1, &a.ended).unwrap();
        }
        let h = LeaseHistory::open(dir.path()).unwrap();
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
