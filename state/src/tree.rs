//! The persistent tree: `Arc`-shared, immutable nodes; every update builds new nodes along the
//! changed paths and shares the rest.

use std::sync::Arc;

use crate::{bit, internal_hash, leaf_hash, Hash, Proof, RangeProof, PLACEHOLDER};

/// A node. Cloning it clones one `Arc`. An empty subtree is `None` in an `Option<Node>`.
#[derive(Clone)]
pub(crate) enum Node {
    Leaf(Arc<Leaf>),
    Internal(Arc<Internal>),
}

pub(crate) struct Leaf {
    pub(crate) key: Hash,
    pub(crate) value: Hash,
    hash: Hash,
}

/// Invariant: never two empty children, and never one empty child beside a leaf (that leaf
/// would be lifted in its place).
pub(crate) struct Internal {
    hash: Hash,
    pub(crate) left: Option<Node>,
    pub(crate) right: Option<Node>,
}

impl Node {
    fn leaf(key: Hash, value: Hash) -> Node {
        Node::Leaf(Arc::new(Leaf { key, value, hash: leaf_hash(&key, &value) }))
    }

    #[inline]
    pub(crate) fn hash(&self) -> &Hash {
        match self {
            Node::Leaf(l) => &l.hash,
            Node::Internal(i) => &i.hash,
        }
    }
}

/// The hash of a possibly empty subtree.
#[inline]
pub(crate) fn hash_of(node: Option<&Node>) -> Hash {
    node.map_or(PLACEHOLDER, |n| *n.hash())
}

fn same(a: &Option<Node>, b: &Option<Node>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(Node::Leaf(x)), Some(Node::Leaf(y))) => Arc::ptr_eq(x, y),
        (Some(Node::Internal(x)), Some(Node::Internal(y))) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

/// The subtree whose children are `left` and `right`, normalised: empty if both are empty, the
/// leaf itself if the other side is empty.
fn join(left: Option<Node>, right: Option<Node>) -> Option<Node> {
    match (left, right) {
        (None, None) => None,
        (None, Some(Node::Leaf(l))) | (Some(Node::Leaf(l)), None) => Some(Node::Leaf(l)),
        (left, right) => {
            let hash = internal_hash(&hash_of(left.as_ref()), &hash_of(right.as_ref()));
            Some(Node::Internal(Arc::new(Internal { hash, left, right })))
        }
    }
}

/// Builds the subtree at `depth` from leaves sorted by strictly increasing key, all sharing the
/// subtree's `depth`-bit prefix.
fn build(depth: usize, leaves: &[(Hash, Hash)]) -> Option<Node> {
    match leaves {
        [] => None,
        [(k, v)] => Some(Node::leaf(*k, *v)),
        _ => {
            let mid = leaves.partition_point(|(k, _)| !bit(k, depth));
            join(build(depth + 1, &leaves[..mid]), build(depth + 1, &leaves[mid..]))
        }
    }
}

/// Applies `changes` (strictly increasing keys, all under this subtree's prefix) to the subtree
/// `node` at `depth`, adding the change in leaf count to `delta`.
///
/// Nodes this tree alone owns (no clone shares them) are updated in place; shared ones are copied,
/// so that every other version keeps its nodes.
fn update(
    node: Option<Node>,
    depth: usize,
    changes: &[(Hash, Option<Hash>)],
    delta: &mut isize,
) -> Option<Node> {
    if changes.is_empty() {
        return node;
    }
    match node {
        None => {
            if let [(k, v)] = changes {
                return v.map(|v| {
                    *delta += 1;
                    Node::leaf(*k, v)
                });
            }
            let leaves: Vec<(Hash, Hash)> =
                changes.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect();
            *delta += leaves.len() as isize;
            build(depth, &leaves)
        }
        Some(Node::Leaf(mut l)) => {
            if let [(k, v)] = changes {
                if *k == l.key {
                    return match v {
                        None => {
                            *delta -= 1;
                            None
                        }
                        Some(v) if *v == l.value => Some(Node::Leaf(l)),
                        Some(v) => match Arc::get_mut(&mut l) {
                            Some(m) => {
                                m.value = *v;
                                m.hash = leaf_hash(k, v);
                                Some(Node::Leaf(l))
                            }
                            None => Some(Node::leaf(*k, *v)),
                        },
                    };
                }
            }
            if let [(k, Some(v))] = changes {
                // The common insert: a new leaf beside this one, without allocating a list.
                *delta += 1;
                let pair = if *k < l.key {
                    [(*k, *v), (l.key, l.value)]
                } else {
                    [(l.key, l.value), (*k, *v)]
                };
                return build(depth, &pair);
            }
            let mut merged = Vec::with_capacity(changes.len() + 1);
            let mut existing = Some((l.key, l.value));
            for &(k, v) in changes {
                if let Some(e) = existing {
                    if e.0 < k {
                        merged.push(e);
                        existing = None;
                    } else if e.0 == k {
                        existing = None;
                        *delta -= 1;
                    }
                }
                if let Some(v) = v {
                    merged.push((k, v));
                    *delta += 1;
                }
            }
            if let Some(e) = existing {
                merged.push(e);
            }
            if let [(k, v)] = merged.as_slice() {
                if *k == l.key && *v == l.value {
                    return Some(Node::Leaf(l));
                }
            }
            build(depth, &merged)
        }
        Some(Node::Internal(mut arc)) => {
            let mid = changes.partition_point(|(k, _)| !bit(k, depth));
            let (lc, rc) = changes.split_at(mid);
            if let Some(inner) = Arc::get_mut(&mut arc) {
                let left = update(inner.left.take(), depth + 1, lc, delta);
                let right = update(inner.right.take(), depth + 1, rc, delta);
                match (left, right) {
                    (None, None) => None,
                    (None, Some(Node::Leaf(l))) | (Some(Node::Leaf(l)), None) => {
                        Some(Node::Leaf(l))
                    }
                    (left, right) => {
                        inner.hash =
                            internal_hash(&hash_of(left.as_ref()), &hash_of(right.as_ref()));
                        inner.left = left;
                        inner.right = right;
                        Some(Node::Internal(arc))
                    }
                }
            } else {
                let left = update(arc.left.clone(), depth + 1, lc, delta);
                let right = update(arc.right.clone(), depth + 1, rc, delta);
                if same(&left, &arc.left) && same(&right, &arc.right) {
                    return Some(Node::Internal(arc));
                }
                join(left, right)
            }
        }
    }
}

/// Fewest changes for which [`Tree::apply`] updates the root's two halves on two threads.
const PARALLEL_MIN: usize = 512;

/// [`update`] at the root: with many changes and more than one core, the two halves of the tree
/// are updated at once, one on a scoped thread (a block changes a few thousand keys spread over
/// both halves; the result is the same tree).
fn update_root(
    node: Option<Node>,
    changes: &[(Hash, Option<Hash>)],
    delta: &mut isize,
) -> Option<Node> {
    // Asked only for a large change: `available_parallelism` reads the cgroup files each call
    // (tens of microseconds, more than a small block's whole update).
    let parallel = || std::thread::available_parallelism().map_or(1, usize::from) > 1;
    let mut arc = match node {
        Some(Node::Internal(arc)) if changes.len() >= PARALLEL_MIN && parallel() => arc,
        node => return update(node, 0, changes, delta),
    };
    let mid = changes.partition_point(|(k, _)| !bit(k, 0));
    let (lc, rc) = changes.split_at(mid);
    let (left, right) = match Arc::get_mut(&mut arc) {
        Some(inner) => (inner.left.take(), inner.right.take()),
        None => (arc.left.clone(), arc.right.clone()),
    };
    drop(arc);
    let ((left, dl), (right, dr)) = std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            let mut d = 0;
            (update(left, 1, lc, &mut d), d)
        });
        let mut d = 0;
        let right = (update(right, 1, rc, &mut d), d);
        (worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), right)
    });
    *delta += dl + dr;
    join(left, right)
}

/// Sorts by key, keeping the last of several entries with the same key.
fn sort_last_wins<V: Copy>(items: &mut Vec<(Hash, V)>) {
    // A stable sort keeps equal keys in input order, so the last of a run is the last given.
    items.sort_by_key(|e| e.0);
    let mut w = 0;
    for r in 0..items.len() {
        if w > 0 && items[w - 1].0 == items[r].0 {
            items[w - 1] = items[r];
        } else {
            items[w] = items[r];
            w += 1;
        }
    }
    items.truncate(w);
}

/// The authenticated state map from key hashes to value hashes.
///
/// Persistent: nodes are immutable and `Arc`-shared, so [`Clone`] is O(1) and [`Tree::apply`] on
/// a clone shares every unchanged subtree with the original, which keeps its root and contents.
#[derive(Clone, Default)]
pub struct Tree {
    root: Option<Node>,
    len: usize,
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tree")
            .field("len", &self.len)
            .field("root", &crate::hex(&self.root()))
            .finish()
    }
}

impl Tree {
    /// The empty tree; its root is [`PLACEHOLDER`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of leaves.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The root hash (cached, O(1)).
    pub fn root(&self) -> Hash {
        hash_of(self.root.as_ref())
    }

    /// The value hash stored under `key_hash`, if any.
    pub fn get(&self, key_hash: &Hash) -> Option<Hash> {
        let mut node = self.root.as_ref();
        let mut depth = 0;
        loop {
            match node? {
                Node::Leaf(l) => return (l.key == *key_hash).then_some(l.value),
                Node::Internal(i) => {
                    node = if bit(key_hash, depth) { i.right.as_ref() } else { i.left.as_ref() };
                    depth += 1;
                }
            }
        }
    }

    /// Applies changes: `Some(v)` inserts or updates the key with value hash `v`, `None` deletes it
    /// (deleting an absent key is a no-op). If a key appears several times, the last one wins.
    /// Changes may come in any order: they are sorted, then applied in one recursive pass, so each
    /// changed path is rehashed once.
    pub fn apply<I: IntoIterator<Item = (Hash, Option<Hash>)>>(&mut self, changes: I) {
        let mut changes: Vec<(Hash, Option<Hash>)> = changes.into_iter().collect();
        if changes.is_empty() {
            return;
        }
        sort_last_wins(&mut changes);
        let mut delta = 0isize;
        self.root = update_root(self.root.take(), &changes, &mut delta);
        self.len = self.len.checked_add_signed(delta).unwrap_or(0);
    }

    /// Builds a tree from leaves `(key_hash, value_hash)` in any order (for a duplicate key, the
    /// last one wins). Sorts, then builds bottom-up: much faster than inserting one by one.
    pub fn from_leaves<I: IntoIterator<Item = (Hash, Hash)>>(leaves: I) -> Self {
        let mut leaves: Vec<(Hash, Hash)> = leaves.into_iter().collect();
        sort_last_wins(&mut leaves);
        Tree { root: build(0, &leaves), len: leaves.len() }
    }

    /// Every leaf `(key_hash, value_hash)`, in increasing key-hash order.
    pub fn iter(&self) -> impl Iterator<Item = (Hash, Hash)> + '_ {
        Iter { stack: self.root.iter().collect() }
    }

    /// The leaves whose key hash is `>= start`, in increasing key-hash order (to cut snapshot
    /// chunks).
    pub fn range_from(&self, start: &Hash) -> impl Iterator<Item = (Hash, Hash)> + '_ {
        let mut stack = Vec::new();
        let mut node = self.root.as_ref();
        let mut depth = 0;
        while let Some(n) = node {
            match n {
                Node::Leaf(l) => {
                    if l.key >= *start {
                        stack.push(n);
                    }
                    break;
                }
                Node::Internal(i) => {
                    if bit(start, depth) {
                        // The left subtree holds only keys below `start`.
                        node = i.right.as_ref();
                    } else {
                        // The right subtree holds only keys above `start`: visit it after.
                        stack.extend(i.right.as_ref());
                        node = i.left.as_ref();
                    }
                    depth += 1;
                }
            }
        }
        Iter { stack }
    }

    /// The proof that `key_hash` is present with its value, or absent.
    pub fn prove(&self, key_hash: &Hash) -> Proof {
        let mut siblings = Vec::new();
        let mut node = self.root.as_ref();
        let mut depth = 0;
        let leaf = loop {
            match node {
                None => break None,
                Some(Node::Leaf(l)) => break Some((l.key, l.value)),
                Some(Node::Internal(i)) => {
                    let (next, sibling) = if bit(key_hash, depth) {
                        (&i.right, &i.left)
                    } else {
                        (&i.left, &i.right)
                    };
                    siblings.push(hash_of(sibling.as_ref()));
                    node = next.as_ref();
                    depth += 1;
                }
            }
        };
        siblings.reverse();
        Proof { leaf, siblings }
    }

    /// The range proof for a snapshot chunk whose last key is `last_key`: the hashes of the
    /// siblings on the right of its path, bottom-up (jmt's `SparseMerkleRangeProof`). `None` if
    /// `last_key` is not in the tree.
    pub fn range_proof(&self, last_key: &Hash) -> Option<RangeProof> {
        let proof = self.prove(last_key);
        match proof.leaf {
            Some((k, _)) if k == *last_key => {}
            _ => return None,
        }
        let n = proof.siblings.len();
        let right_siblings = proof
            .siblings
            .iter()
            .enumerate()
            .filter(|(i, _)| !bit(last_key, n - 1 - i))
            .map(|(_, s)| *s)
            .collect();
        Some(RangeProof { right_siblings })
    }

    /// The root node, for the restore.
    pub(crate) fn root_node(&self) -> Option<&Node> {
        self.root.as_ref()
    }
}

/// In-order traversal over a stack of subtrees still to visit (the next one on top).
struct Iter<'a> {
    stack: Vec<&'a Node>,
}

impl Iterator for Iter<'_> {
    type Item = (Hash, Hash);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(node) = self.stack.pop() {
            match node {
                Node::Leaf(l) => return Some((l.key, l.value)),
                Node::Internal(i) => {
                    self.stack.extend(i.right.as_ref());
                    self.stack.extend(i.left.as_ref());
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value_hash;

    fn key(i: u32) -> Hash {
        value_hash(&i.to_be_bytes())
    }

    /// Checks the node invariants and returns the number of leaves.
    fn check(node: Option<&Node>, depth: usize, prefix: &Hash) -> usize {
        match node {
            None => 0,
            Some(Node::Leaf(l)) => {
                assert!(crate::common_prefix_bits(&l.key, prefix) >= depth);
                assert_eq!(l.hash, leaf_hash(&l.key, &l.value));
                1
            }
            Some(Node::Internal(i)) => {
                assert_eq!(
                    i.hash,
                    internal_hash(&hash_of(i.left.as_ref()), &hash_of(i.right.as_ref()))
                );
                assert!(
                    !matches!(
                        (&i.left, &i.right),
                        (None, None) | (None, Some(Node::Leaf(_))) | (Some(Node::Leaf(_)), None)
                    ),
                    "unnormalised internal node at depth {depth}"
                );
                let mut right = *prefix;
                right[depth / 8] |= 0x80 >> (depth % 8);
                check(i.left.as_ref(), depth + 1, prefix)
                    + check(i.right.as_ref(), depth + 1, &right)
            }
        }
    }

    #[test]
    fn invariants_hold_through_inserts_and_deletes() {
        let mut t = Tree::new();
        t.apply((0..500).map(|i| (key(i), Some(key(i + 1000)))));
        assert_eq!(check(t.root.as_ref(), 0, &[0; 32]), 500);
        assert_eq!(t.len(), 500);
        t.apply((0..500).filter(|i| i % 3 != 0).map(|i| (key(i), None)));
        assert_eq!(check(t.root.as_ref(), 0, &[0; 32]), 167);
        assert_eq!(t.len(), 167);
        let rebuilt = Tree::from_leaves(t.iter());
        assert_eq!(rebuilt.root(), t.root());
        t.apply((0..500).map(|i| (key(i), None)));
        assert!(t.is_empty());
        assert_eq!(t.root(), PLACEHOLDER);
    }

    #[test]
    fn one_leaf_is_the_root_and_two_share_a_path() {
        let mut a = [0u8; 32];
        let mut t = Tree::new();
        t.apply([(a, Some([7; 32]))]);
        assert_eq!(t.root(), leaf_hash(&a, &[7; 32]));
        // Keys differing only in the last bit: 255 internal nodes with an empty side, then the pair.
        let mut b = a;
        b[31] = 1;
        t.apply([(b, Some([8; 32]))]);
        let mut h = internal_hash(&leaf_hash(&a, &[7; 32]), &leaf_hash(&b, &[8; 32]));
        for _ in 0..255 {
            h = internal_hash(&h, &PLACEHOLDER);
        }
        assert_eq!(t.root(), h);
        assert_eq!(t.prove(&b).siblings.len(), 256);
        t.apply([(a, None)]);
        assert_eq!(t.root(), leaf_hash(&b, &[8; 32]));
        a[0] = 0xff;
        assert_eq!(t.get(&a), None);
    }

    #[test]
    fn last_change_wins_and_absent_deletes_are_no_ops() {
        let mut t = Tree::new();
        t.apply([(key(1), Some(key(10))), (key(2), Some(key(20))), (key(1), Some(key(11)))]);
        assert_eq!(t.get(&key(1)), Some(key(11)));
        assert_eq!(t.len(), 2);
        t.apply([(key(1), None), (key(1), Some(key(12)))]);
        assert_eq!(t.get(&key(1)), Some(key(12)));
        t.apply([(key(2), Some(key(21))), (key(2), None)]);
        assert_eq!(t.get(&key(2)), None);
        assert_eq!(t.len(), 1);
        let root = t.root();
        t.apply([(key(3), None), (key(4), None)]);
        assert_eq!(t.root(), root);
        assert_eq!(t.len(), 1);
        let t2 = Tree::from_leaves([(key(5), key(1)), (key(5), key(2))]);
        assert_eq!(t2.len(), 1);
        assert_eq!(t2.get(&key(5)), Some(key(2)));
    }

    #[test]
    fn range_from_starts_at_the_first_key_not_below() {
        let t = Tree::from_leaves((0..300).map(|i| (key(i), key(i))));
        let all: Vec<_> = t.iter().collect();
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(all.len(), 300);
        for (i, (k, _)) in all.iter().enumerate().step_by(7) {
            assert_eq!(t.range_from(k).collect::<Vec<_>>(), all[i..]);
            let mut after = *k;
            after[31] = after[31].wrapping_add(1);
            let expected: Vec<_> = all.iter().copied().filter(|(x, _)| *x >= after).collect();
            assert_eq!(t.range_from(&after).collect::<Vec<_>>(), expected);
        }
        assert_eq!(t.range_from(&[0; 32]).count(), 300);
        assert_eq!(t.range_from(&[0xff; 32]).count(), 0);
    }
}
