//! Inclusion and exclusion proofs, range proofs, and their byte encoding.

use thiserror::Error;

use crate::{bit, common_prefix_bits, hex, internal_hash, leaf_hash, Hash, PLACEHOLDER};

/// The most siblings a proof or range proof may have: one per bit of a key hash.
pub const MAX_SIBLINGS: usize = 256;

/// Why a proof was refused, when decoding or verifying it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProofError {
    /// The encoding ends early.
    #[error("proof encoding is truncated: needs {needed} bytes, has {got}")]
    Truncated {
        /// The bytes needed to read what the encoding announces so far.
        needed: usize,
        /// The bytes given.
        got: usize,
    },
    /// Bytes follow the proof.
    #[error("proof encoding has {0} trailing bytes")]
    TrailingBytes(usize),
    /// The leaf flag is neither 0 (no leaf) nor 1 (a leaf follows).
    #[error("proof leaf flag is {0:#04x}, expected 0x00 (no leaf) or 0x01 (leaf)")]
    BadLeafFlag(u8),
    /// More siblings than a 256-bit path has levels.
    #[error("proof has {0} siblings, at most 256 allowed")]
    TooManySiblings(usize),
    /// A value was claimed, but the proof has no leaf (it can only show absence).
    #[error("expected an inclusion proof, found an exclusion proof with no leaf")]
    NotInclusion,
    /// An inclusion proof whose leaf is another key's.
    #[error("inclusion proof is for key {proof}, not {expected}")]
    KeyMismatch {
        /// The key of the proof's leaf.
        proof: String,
        /// The key asked about.
        expected: String,
    },
    /// The leaf's value hash is not the claimed one.
    #[error("value hash in proof is {proof}, expected {expected}")]
    ValueMismatch {
        /// The value hash of the proof's leaf.
        proof: String,
        /// The value hash claimed.
        expected: String,
    },
    /// Absence was claimed, but the proof's leaf is the key itself.
    #[error("expected an exclusion proof, but the key is present in the proof")]
    KeyPresent,
    /// An exclusion proof whose leaf does not lie on the key's path down to the proof's depth.
    #[error("exclusion proof's leaf shares {shared} leading bits with the key, fewer than the proof's depth {depth}")]
    PathMismatch {
        /// Leading bits shared by the leaf's key and the key asked about.
        shared: usize,
        /// The proof's depth (its number of siblings).
        depth: usize,
    },
    /// The proof hashes to another root.
    #[error("proof gives root {actual}, expected {expected}")]
    RootMismatch {
        /// The root the proof gives.
        actual: String,
        /// The root expected.
        expected: String,
    },
}

/// A proof that a key hash is present with a value hash, or absent (see the crate docs for the
/// format and the verification rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// The leaf where the walk towards the key stopped, `(key_hash, value_hash)`: the key's own
    /// leaf (inclusion), a different leaf sharing its path (exclusion), or `None` for an empty
    /// position (exclusion).
    pub leaf: Option<(Hash, Hash)>,
    /// The sibling hashes along the path, bottom-up: `siblings[0]` is nearest the leaf.
    pub siblings: Vec<Hash>,
}

impl Proof {
    /// Verifies the proof against `root` for `key_hash`. `value_hash` `Some(v)`: the key is
    /// present with value hash `v`; `None`: the key is absent.
    pub fn verify(
        &self,
        root: &Hash,
        key_hash: &Hash,
        value_hash: Option<&Hash>,
    ) -> Result<(), ProofError> {
        let depth = self.siblings.len();
        if depth > MAX_SIBLINGS {
            return Err(ProofError::TooManySiblings(depth));
        }
        match (value_hash, &self.leaf) {
            (Some(value), Some((k, v))) => {
                if k != key_hash {
                    return Err(ProofError::KeyMismatch { proof: hex(k), expected: hex(key_hash) });
                }
                if v != value {
                    return Err(ProofError::ValueMismatch { proof: hex(v), expected: hex(value) });
                }
            }
            (Some(_), None) => return Err(ProofError::NotInclusion),
            (None, Some((k, _))) => {
                if k == key_hash {
                    return Err(ProofError::KeyPresent);
                }
                let shared = common_prefix_bits(k, key_hash);
                if shared < depth {
                    return Err(ProofError::PathMismatch { shared, depth });
                }
            }
            (None, None) => {}
        }
        let mut hash = self.leaf.as_ref().map_or(PLACEHOLDER, |(k, v)| leaf_hash(k, v));
        for (i, sibling) in self.siblings.iter().enumerate() {
            hash = if bit(key_hash, depth - 1 - i) {
                internal_hash(sibling, &hash)
            } else {
                internal_hash(&hash, sibling)
            };
        }
        if hash != *root {
            return Err(ProofError::RootMismatch { actual: hex(&hash), expected: hex(root) });
        }
        Ok(())
    }

    /// The encoding: flag `0x00` (no leaf) or `0x01` then `key_hash ‖ value_hash`; then the
    /// sibling count as a big-endian `u16`; then the siblings, 32 bytes each, bottom-up.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 64 + 2 + 32 * self.siblings.len());
        match &self.leaf {
            None => out.push(0),
            Some((k, v)) => {
                out.push(1);
                out.extend_from_slice(k);
                out.extend_from_slice(v);
            }
        }
        encode_hashes(&self.siblings, &mut out);
        out
    }

    /// Decodes [`Proof::encode`]'s format, refusing short input, trailing bytes, a bad flag and
    /// more than 256 siblings.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofError> {
        let mut r = Reader { bytes, pos: 0 };
        let leaf = match r.take(1)?[0] {
            0 => None,
            1 => Some((r.hash()?, r.hash()?)),
            flag => return Err(ProofError::BadLeafFlag(flag)),
        };
        let siblings = r.hashes()?;
        r.end()?;
        Ok(Proof { leaf, siblings })
    }
}

/// The proof for a snapshot chunk: the hashes of the siblings on the right of the path to the
/// chunk's last key, bottom-up (jmt's `SparseMerkleRangeProof`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeProof {
    /// The right-hand siblings, bottom-up.
    pub right_siblings: Vec<Hash>,
}

impl RangeProof {
    /// The encoding: the count as a big-endian `u16`, then the hashes, 32 bytes each, bottom-up.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 32 * self.right_siblings.len());
        encode_hashes(&self.right_siblings, &mut out);
        out
    }

    /// Decodes [`RangeProof::encode`]'s format, refusing short input, trailing bytes and more
    /// than 256 hashes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofError> {
        let mut r = Reader { bytes, pos: 0 };
        let right_siblings = r.hashes()?;
        r.end()?;
        Ok(RangeProof { right_siblings })
    }
}

fn encode_hashes(hashes: &[Hash], out: &mut Vec<u8>) {
    // More than u16::MAX cannot be written; such a proof is invalid anyway (verify refuses > 256),
    // and saturating keeps the output undecodable rather than silently truncated.
    let count = u16::try_from(hashes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for h in hashes {
        out.extend_from_slice(h);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProofError> {
        let end = self.pos + n;
        if end > self.bytes.len() {
            return Err(ProofError::Truncated { needed: end, got: self.bytes.len() });
        }
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn hash(&mut self) -> Result<Hash, ProofError> {
        let mut h = [0u8; 32];
        h.copy_from_slice(self.take(32)?);
        Ok(h)
    }

    fn hashes(&mut self) -> Result<Vec<Hash>, ProofError> {
        let c = self.take(2)?;
        let count = u16::from_be_bytes([c[0], c[1]]) as usize;
        if count > MAX_SIBLINGS {
            return Err(ProofError::TooManySiblings(count));
        }
        (0..count).map(|_| self.hash()).collect()
    }

    fn end(&self) -> Result<(), ProofError> {
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            n => Err(ProofError::TrailingBytes(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_refuses_malformed_input() {
        let p = Proof { leaf: Some(([1; 32], [2; 32])), siblings: vec![[3; 32], [4; 32]] };
        let e = p.encode();
        assert_eq!(e.len(), 1 + 64 + 2 + 64);
        assert_eq!(e[0], 1);
        assert_eq!(&e[65..67], &[0, 2]);
        assert_eq!(Proof::decode(&e), Ok(p.clone()));
        let q = Proof { leaf: None, siblings: vec![] };
        assert_eq!(q.encode(), vec![0, 0, 0]);
        assert_eq!(Proof::decode(&[0, 0, 0]), Ok(q));

        let mut long = e.clone();
        long.push(0);
        assert_eq!(Proof::decode(&long), Err(ProofError::TrailingBytes(1)));
        assert!(matches!(Proof::decode(&e[..e.len() - 1]), Err(ProofError::Truncated { .. })));
        assert!(matches!(Proof::decode(&[]), Err(ProofError::Truncated { .. })));
        let mut bad = e.clone();
        bad[0] = 2;
        assert_eq!(Proof::decode(&bad), Err(ProofError::BadLeafFlag(2)));
        assert_eq!(Proof::decode(&[0, 1, 1]), Err(ProofError::TooManySiblings(257)));
        let mut max = vec![0, 1, 0];
        max.extend(std::iter::repeat_n(0u8, 256 * 32));
        assert_eq!(Proof::decode(&max).map(|p| p.siblings.len()), Ok(256));

        let r = RangeProof { right_siblings: vec![[9; 32]] };
        let e = r.encode();
        assert_eq!(e.len(), 34);
        assert_eq!(RangeProof::decode(&e), Ok(r));
        assert_eq!(RangeProof::decode(&[1, 1]), Err(ProofError::TooManySiblings(257)));
        assert_eq!(RangeProof::decode(&[0, 0, 0]), Err(ProofError::TrailingBytes(1)));
        assert!(matches!(RangeProof::decode(&[0]), Err(ProofError::Truncated { .. })));
    }

    #[test]
    fn verify_refuses_too_many_siblings() {
        let p = Proof { leaf: None, siblings: vec![PLACEHOLDER; 257] };
        assert_eq!(p.verify(&PLACEHOLDER, &[0; 32], None), Err(ProofError::TooManySiblings(257)));
    }

    #[test]
    fn empty_tree_proof() {
        let p = Proof { leaf: None, siblings: vec![] };
        assert_eq!(p.verify(&PLACEHOLDER, &[5; 32], None), Ok(()));
        assert_eq!(p.verify(&PLACEHOLDER, &[5; 32], Some(&[1; 32])), Err(ProofError::NotInclusion));
    }
}
