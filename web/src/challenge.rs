//! Challenges a buyer signs to fetch a lease's credential: issued in memory, bounded, single use.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use surplus_ledger::Hash;

pub use surplus_api::leases::{challenge_bytes, CHALLENGE_TAG};

/// How long a challenge may be answered, ms.
pub const CHALLENGE_VALIDITY_MS: u64 = 60_000;
/// Challenges held at most; issuing more forgets the oldest.
pub const MAX_CHALLENGES: usize = 10_000;

/// A challenge as issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Issued {
    pub(crate) lease: Hash,
    pub(crate) expires_ms: u64,
}

#[derive(Debug, Default)]
struct Inner {
    live: HashMap<[u8; 32], Issued>,
    // Issue order; every challenge has the same validity, so this is also expiry order.
    order: VecDeque<[u8; 32]>,
}

/// Issued challenges not yet answered.
#[derive(Debug, Default)]
pub(crate) struct Challenges {
    inner: Mutex<Inner>,
}

impl Challenges {
    /// Remembers `nonce` for `lease` until `expires_ms`, forgetting expired challenges and, past
    /// [`MAX_CHALLENGES`], the oldest.
    pub(crate) fn issue(&self, nonce: [u8; 32], lease: Hash, expires_ms: u64, now_ms: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(front) = inner.order.front().copied() {
            let expired = inner.live.get(&front).is_none_or(|i| i.expires_ms <= now_ms);
            if !expired && inner.order.len() < MAX_CHALLENGES {
                break;
            }
            inner.order.pop_front();
            inner.live.remove(&front);
        }
        inner.live.insert(nonce, Issued { lease, expires_ms });
        inner.order.push_back(nonce);
    }

    /// Takes a challenge out: whatever the answer, it cannot be used again.
    pub(crate) fn take(&self, nonce: &[u8; 32]) -> Option<Issued> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).live.remove(nonce)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_follow_the_documented_layout() {
        let b = challenge_bytes("chain", &[1; 32], &[2; 32], 0x0102);
        let mut want = b"surplus/credential-challenge/v1".to_vec();
        want.push(5);
        want.extend_from_slice(b"chain");
        want.extend_from_slice(&[1; 32]);
        want.extend_from_slice(&[2; 32]);
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(b, want);
    }

    #[test]
    fn single_use_and_bounded() {
        let c = Challenges::default();
        c.issue([1; 32], [9; 32], 100, 0);
        assert_eq!(c.take(&[1; 32]), Some(Issued { lease: [9; 32], expires_ms: 100 }));
        assert_eq!(c.take(&[1; 32]), None);
        for i in 0..(MAX_CHALLENGES + 10) {
            let mut n = [0u8; 32];
            n[..8].copy_from_slice(&(i as u64).to_be_bytes());
            c.issue(n, [0; 32], 1_000, 10);
        }
        assert!(c.len() <= MAX_CHALLENGES);
        // The oldest were forgotten, the newest kept.
        assert_eq!(c.take(&[0; 32]), None);
        let mut last = [0u8; 32];
        last[..8].copy_from_slice(&((MAX_CHALLENGES + 9) as u64).to_be_bytes());
        assert!(c.take(&last).is_some());
        // Expired ones are dropped on the next issue.
        c.issue([7; 32], [0; 32], 2_000, 1_500);
        assert_eq!(c.len(), 1);
    }
}
