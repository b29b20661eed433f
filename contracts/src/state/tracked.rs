//! A persistent map that remembers which keys a block changed, so that bringing the state root
//! up to date visits those keys only. Comparing the map with its version before the block (imbl's
//! `diff`) walks every node the two versions do not share, and with a block's changes spread over
//! a large map that is most of the paths from the root: at 1,000,000 accounts and leases it was a
//! quarter of a block's execution.

use std::ops::Deref;

use imbl::OrdMap;

/// An `OrdMap` whose every change goes through a method that records the key. Reading goes
/// through `Deref`. The record is a list of keys, possibly repeated, possibly of keys that ended
/// up unchanged; [`Tracked::touched`] sorts and deduplicates it.
#[derive(Clone, Debug)]
pub(crate) struct Tracked<K: Ord + Clone, V: Clone> {
    map: OrdMap<K, V>,
    touched: Vec<K>,
}

impl<K: Ord + Clone, V: Clone> Default for Tracked<K, V> {
    fn default() -> Self {
        Tracked { map: OrdMap::new(), touched: Vec::new() }
    }
}

impl<K: Ord + Clone, V: Clone> Deref for Tracked<K, V> {
    type Target = OrdMap<K, V>;

    fn deref(&self) -> &OrdMap<K, V> {
        &self.map
    }
}

/// Equal maps are equal, whatever either recorded.
impl<K: Ord + Clone, V: Clone + PartialEq> PartialEq for Tracked<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<K: Ord + Clone, V: Clone + Eq> Eq for Tracked<K, V> {}

impl<K: Ord + Clone, V: Clone> From<OrdMap<K, V>> for Tracked<K, V> {
    fn from(map: OrdMap<K, V>) -> Self {
        Tracked { map, touched: Vec::new() }
    }
}

impl<K: Ord + Clone, V: Clone> Tracked<K, V> {
    /// The value under `key`, inserted as the default if absent.
    pub(crate) fn entry_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        self.touched.push(key.clone());
        self.map.entry(key).or_default()
    }

    /// The value under `key`, to change.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.touched.push(key.clone());
        self.map.get_mut(key)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.touched.push(key.clone());
        self.map.insert(key, value)
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.touched.push(key.clone());
        self.map.remove(key)
    }

    /// Forgets what was recorded (at the start of a block).
    pub(crate) fn clear_touched(&mut self) {
        self.touched.clear();
    }

    /// The keys changed since [`Tracked::clear_touched`] (and perhaps some left as they were),
    /// in increasing order, each once.
    pub(crate) fn touched(&mut self) -> &[K] {
        self.touched.sort_unstable();
        self.touched.dedup();
        &self.touched
    }

    /// Each recorded key, in increasing order and once, with its value now (`None`: absent).
    /// A key may be listed whose value ended as it was, or that was absent before and after:
    /// for the state root that is a change to the same value (or a removal of what is not
    /// there), which changes nothing. Looking each key up in the version before the block to
    /// leave those out cost more than it saved.
    pub(crate) fn changes(&mut self) -> impl Iterator<Item = (&K, Option<&V>)> + '_ {
        self.touched();
        let map = &self.map;
        self.touched.iter().map(move |k| (k, map.get(k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_cover_those_of_a_diff() {
        let mut base: OrdMap<u32, u32> = (0..1000u32).map(|i| (i, i)).collect();
        base.remove(&500);
        let mut t = Tracked::from(base.clone());
        *t.entry_or_default(3) += 1; // changed
        *t.entry_or_default(4) += 0; // touched, unchanged
        *t.entry_or_default(500) += 0; // added with the default
        t.insert(2000, 1); // added
        t.insert(2001, 1); // added, then removed: no change
        t.remove(&2001);
        t.remove(&7); // removed
        t.remove(&9999); // absent: no change
        if let Some(v) = t.get_mut(&8) {
            *v = 8; // unchanged
        }
        let _ = t.get_mut(&4242); // absent
                                  // What differs from the map before.
        let got: Vec<(u32, Option<u32>)> = t
            .changes()
            .filter(|(k, v)| base.get(*k) != *v)
            .map(|(k, v)| (*k, v.copied()))
            .collect();
        let mut want: Vec<(u32, Option<u32>)> = base
            .diff(&t)
            .map(|d| match d {
                imbl::ordmap::DiffItem::Add(k, v) => (*k, Some(*v)),
                imbl::ordmap::DiffItem::Update { new: (k, v), .. } => (*k, Some(*v)),
                imbl::ordmap::DiffItem::Remove(k, _) => (*k, None),
            })
            .collect();
        want.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(got, vec![(3, Some(4)), (7, None), (500, Some(0)), (2000, Some(1))]);
        t.clear_touched();
        // Only what was recorded since the clear counts.
        assert_eq!(t.changes().count(), 0);
    }
}
