//! Keys and signatures.
//!
//! Two acceptance rules, each matching the party that must agree with the audit:
//! - Everything Surplus signs itself (entries, checkpoints) uses ed25519-dalek's *strict* rule
//!   plus a canonical key: `s < ℓ`, canonical encodings of `A` and `R`, neither of small order
//!   ([`verify_strict`]). Many signatures are checked together by [`BatchVerifier`], which
//!   applies exactly that rule to each one, spread over the machine's cores: a cofactorless batch
//!   equation cannot agree with the single rule on signatures with a torsion component
//!   (`docs/decisions/0014-exact-strict-signatures.md`).
//! - Commit-certificate votes are checked the way the consensus engine checks them (ZIP-215,
//!   crate ed25519-consensus), so the audit never rejects a block that consensus accepted
//!   ([`verify_vote`], [`VoteBatch`]); under ZIP-215's cofactored equation, batch and single
//!   verification agree.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{OnceLock, RwLock};

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::Scalar;
use ed25519_dalek::{Signer as _, SigningKey};
use rand_core::SeedableRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha512};

use crate::encoding::{domain, tagged_hasher};

/// An ed25519 public key as its 32-byte encoding (not yet checked to be a valid point).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; 32]);

/// An ed25519 signature as its 64 bytes `R || s`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

/// Why a signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The public key is not a canonical encoding of a curve point of large order.
    #[error("the public key is malformed, non-canonical or of small order")]
    BadKey,
    /// `R` or `s` is non-canonical, or `R` has small order.
    #[error("the signature is non-canonical or has a small-order R")]
    Malleable,
    /// The signature does not verify for this key and message.
    #[error("the signature does not match the key and message")]
    Mismatch,
}

impl PublicKey {
    /// The key's X25519 public key (RFC 7748 u-coordinate, the birational map
    /// `u = (1 + y) / (1 − y)` of the Edwards point), or `None` if the bytes are not a canonical
    /// encoding of a point of large order.
    pub fn to_x25519(&self) -> Option<[u8; 32]> {
        let point = curve25519_dalek::edwards::CompressedEdwardsY(self.0).decompress()?;
        let canonical = point.compress().0 == self.0;
        (canonical && !point.is_small_order()).then(|| point.to_montgomery().to_bytes())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl FromStr for PublicKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_hex::<32>(s, "public key").map(PublicKey)
    }
}
impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}
impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl FromStr for Signature {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_hex::<64>(s, "signature").map(Signature)
    }
}

/// Parses exactly `N` bytes of hex, naming `what` in the error.
pub fn parse_hex<const N: usize>(s: &str, what: &str) -> Result<[u8; N], String> {
    let s = s.trim();
    let bytes = hex::decode(s).map_err(|e| format!("{what} is not hex: {e}"))?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        format!("{what} must be {N} bytes ({} hex digits), got {} bytes", 2 * N, bytes.len())
    })
}

macro_rules! hex_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
hex_serde!(PublicKey);
hex_serde!(Signature);

/// A private signing key, built from a 32-byte seed.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public())
    }
}

impl SecretKey {
    /// The key whose seed is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }
    /// A new key from the operating system's random source (the caller's randomness).
    pub fn generate<R: rand_core::RngCore + rand_core::CryptoRng>(rng: &mut R) -> Self {
        Self(SigningKey::generate(rng))
    }
    /// The 32-byte seed (keep it secret).
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }
    /// The key's X25519 private key (RFC 7748): the first half of SHA-512 of the seed, the
    /// ed25519 secret scalar before clamping (X25519 clamps it). Its public half is
    /// [`PublicKey::to_x25519`] of this key's public key.
    pub fn x25519_secret(&self) -> [u8; 32] {
        self.0.to_scalar_bytes()
    }
    /// Signs `msg` (deterministic RFC 8032 signature).
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg).to_bytes())
    }
    /// Reads a key file: the seed as 64 hex digits, optionally followed by a newline.
    pub fn from_file_contents(text: &str) -> Result<Self, String> {
        parse_hex::<32>(text, "key file seed").map(Self::from_seed)
    }
    /// The text of a key file for this key.
    pub fn to_file_contents(&self) -> String {
        format!("{}\n", hex::encode(self.seed()))
    }
}

// 2^255 - 19, little-endian.
const FIELD_P: [u8; 32] = {
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// Whether the y coordinate of a point encoding (sign bit cleared) is reduced mod p.
fn is_canonical_y(enc: &[u8; 32]) -> bool {
    let mut y = *enc;
    y[31] &= 0x7f;
    // Compare little-endian integers from the most significant byte.
    for i in (0..32).rev() {
        if y[i] != FIELD_P[i] {
            return y[i] < FIELD_P[i];
        }
    }
    false
}

/// The y coordinates (sign bit cleared) of the eight points of small order.
fn small_order_ys() -> &'static [[u8; 32]] {
    static YS: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    YS.get_or_init(|| {
        let mut ys: Vec<[u8; 32]> = curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .map(|p| {
                let mut y = p.compress().to_bytes();
                y[31] &= 0x7f;
                y
            })
            .collect();
        ys.sort();
        ys.dedup();
        ys
    })
}

/// Whether an encoding is canonical and names no point of small order. Whether it is on the
/// curve at all is left to decompression.
fn is_acceptable_point(enc: &[u8; 32]) -> bool {
    if !is_canonical_y(enc) {
        return false;
    }
    let mut y = *enc;
    y[31] &= 0x7f;
    !small_order_ys().contains(&y)
}

/// Checks that `s` is reduced mod ℓ.
fn is_canonical_s(sig: &[u8; 64]) -> bool {
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig[32..]);
    bool::from(curve25519_dalek::Scalar::from_canonical_bytes(s).is_some())
}

/// The key's point, negated (what the verification equation multiplies).
fn decode_key(key: &PublicKey) -> Result<EdwardsPoint, SignatureError> {
    if !is_acceptable_point(&key.0) {
        return Err(SignatureError::BadKey);
    }
    CompressedEdwardsY(key.0).decompress().map(|a| -a).ok_or(SignatureError::BadKey)
}

/// Most decompressed keys kept between batches; past it the cache starts over.
const KEY_CACHE_LIMIT: usize = 1 << 16;

/// Decompressed keys, kept across batches: the same accounts sign block after block, and
/// decompressing a key costs about a third of a signature check. Only valid keys are kept, and a
/// key's decompression never changes, so the cache cannot change a result.
fn cached_key(key: &PublicKey) -> Result<EdwardsPoint, SignatureError> {
    static CACHE: OnceLock<RwLock<HashMap<PublicKey, EdwardsPoint>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(vk) = cache.read().ok().and_then(|c| c.get(key).copied()) {
        return Ok(vk);
    }
    let vk = decode_key(key)?;
    if let Ok(mut c) = cache.write() {
        if c.len() >= KEY_CACHE_LIMIT {
            c.clear();
        }
        c.insert(*key, vk);
    }
    Ok(vk)
}

fn precheck_sig(sig: &Signature) -> Result<(), SignatureError> {
    let mut r = [0u8; 32];
    r.copy_from_slice(&sig.0[..32]);
    if is_acceptable_point(&r) && is_canonical_s(&sig.0) {
        Ok(())
    } else {
        Err(SignatureError::Malleable)
    }
}

/// Verifies one signature under the strict rule: after the encoding checks, recomputes
/// `R = [s]B − [k]A` and compares its encoding with the signature's `R`, as
/// `docs/ledger-format.md` §2 words it (an `R` that is not a curve point can never match).
/// This is ed25519-dalek's `verify_strict` without its decompression of `R`, which it needs only
/// for the small-order check that the encoding check has already made.
pub fn verify_strict(key: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), SignatureError> {
    let minus_a = cached_key(key)?;
    precheck_sig(sig)?;
    let mut r = [0u8; 32];
    r.copy_from_slice(&sig.0[..32]);
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig.0[32..]);
    let s =
        Option::<Scalar>::from(Scalar::from_canonical_bytes(s)).ok_or(SignatureError::Malleable)?;
    let mut wide = [0u8; 64];
    wide.copy_from_slice(
        &Sha512::new().chain_update(r).chain_update(key.0).chain_update(msg).finalize(),
    );
    let k = Scalar::from_bytes_mod_order_wide(&wide);
    let expected = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &minus_a, &s);
    if expected.compress().0 == r {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Fewest queued signatures for which [`BatchVerifier`] spreads the work over several threads.
const PARALLEL_MIN: usize = 16;

/// Collects signatures and verifies them together under the strict rule; on failure, names the
/// first bad one.
///
/// Each signature is checked exactly as [`verify_strict`] checks it alone, so what a batch
/// accepts is what the documented single-signature rule accepts, whatever the batch holds. A
/// random-linear-combination batch equation would be cheaper per signature but cannot be exact:
/// with a torsion component in `R` (which only the key's owner can make) it passes with
/// probability up to 1/2, and checking every `R` for torsion costs about as much as the single
/// check (`docs/decisions/0014-exact-strict-signatures.md`). Large batches are split over the
/// machine's cores instead.
#[derive(Debug, Default)]
pub struct BatchVerifier {
    keys: Vec<PublicKey>,
    msgs: Vec<Vec<u8>>,
    sigs: Vec<Signature>,
}

impl BatchVerifier {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of queued signatures.
    pub fn len(&self) -> usize {
        self.sigs.len()
    }
    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }
    /// Queues one signature over `msg`.
    pub fn push(&mut self, key: PublicKey, msg: Vec<u8>, sig: Signature) {
        self.keys.push(key);
        self.msgs.push(msg);
        self.sigs.push(sig);
    }
    /// Verifies every signature queued, each by the strict rule, over the machine's cores, and
    /// empties the batch: one verdict per signature, in queue order.
    pub fn verify_each(&mut self) -> Vec<Result<(), SignatureError>> {
        let n = self.sigs.len();
        let check = |i: usize| verify_strict(&self.keys[i], &self.msgs[i], &self.sigs[i]);
        let threads = match n / PARALLEL_MIN {
            0 | 1 => 1,
            chunks => std::thread::available_parallelism().map_or(1, usize::from).min(chunks),
        };
        let verdicts = if threads <= 1 {
            (0..n).map(check).collect()
        } else {
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|t| {
                        let range = t * n / threads..(t + 1) * n / threads;
                        scope.spawn(move || range.map(check).collect::<Vec<_>>())
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                    .collect()
            })
        };
        self.keys.clear();
        self.msgs.clear();
        self.sigs.clear();
        verdicts
    }

    /// Verifies everything queued and empties the batch. `Err((i, why))` names the first
    /// signature, in queue order, that fails the strict rule.
    pub fn verify(&mut self) -> Result<(), (usize, SignatureError)> {
        let result = self.verify_inner();
        self.keys.clear();
        self.msgs.clear();
        self.sigs.clear();
        result
    }

    fn verify_inner(&self) -> Result<(), (usize, SignatureError)> {
        let n = self.sigs.len();
        let check = |i: usize| {
            verify_strict(&self.keys[i], &self.msgs[i], &self.sigs[i]).map_err(|e| (i, e))
        };
        // `available_parallelism` reads the cgroup files each call: only asked when the batch
        // is large enough to share.
        let threads = match n / PARALLEL_MIN {
            0 | 1 => 1,
            chunks => std::thread::available_parallelism().map_or(1, usize::from).min(chunks),
        };
        if threads <= 1 {
            return (0..n).try_for_each(check);
        }
        // Contiguous ranges in queue order: the first failing range holds the first failure.
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let range = t * n / threads..(t + 1) * n / threads;
                    scope.spawn(move || range.into_iter().try_for_each(check))
                })
                .collect();
            let mut first = Ok(());
            for worker in workers {
                let result = worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                if first.is_ok() {
                    first = result;
                }
            }
            first
        })
    }
}

/// Verifies one consensus vote signature under the engine's rule (ZIP-215).
pub fn verify_vote(key: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), SignatureError> {
    let vk =
        ed25519_consensus::VerificationKey::try_from(key.0).map_err(|_| SignatureError::BadKey)?;
    vk.verify(&ed25519_consensus::Signature::from(sig.0), msg).map_err(|_| SignatureError::Mismatch)
}

/// Batch verification of consensus votes (ZIP-215, whose batch and single checks agree).
///
/// The batch's random coefficients come from a hash of everything queued, so the result is a
/// function of the input alone, as the pure ledger crate requires.
pub struct VoteBatch {
    items: Vec<(PublicKey, Vec<u8>, Signature)>,
    seed: blake3::Hasher,
}

impl fmt::Debug for VoteBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoteBatch").field("len", &self.items.len()).finish()
    }
}

impl Default for VoteBatch {
    fn default() -> Self {
        Self { items: Vec::new(), seed: tagged_hasher(domain::BATCH_SEED) }
    }
}

impl VoteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }
    /// Queues one vote signature.
    pub fn push(&mut self, key: PublicKey, msg: Vec<u8>, sig: Signature) {
        self.seed.update(&key.0);
        self.seed.update(&(msg.len() as u64).to_be_bytes());
        self.seed.update(&msg);
        self.seed.update(&sig.0);
        self.items.push((key, msg, sig));
    }
    /// Verifies everything queued; `Err((i, why))` names the first bad vote in queue order.
    pub fn verify(self) -> Result<(), (usize, SignatureError)> {
        let mut batch = ed25519_consensus::batch::Verifier::new();
        for (key, msg, sig) in &self.items {
            let vkb = ed25519_consensus::VerificationKeyBytes::from(key.0);
            batch.queue((vkb, ed25519_consensus::Signature::from(sig.0), msg.as_slice()));
        }
        let rng = rand_chacha::ChaCha20Rng::from_seed(*self.seed.finalize().as_bytes());
        if batch.verify(rng).is_ok() {
            return Ok(());
        }
        for (i, (key, msg, sig)) in self.items.iter().enumerate() {
            verify_vote(key, msg, sig).map_err(|e| (i, e))?;
        }
        // ZIP-215 batch and single verification agree except with negligible probability.
        Err((0, SignatureError::Mismatch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{Blake3, Hasher};
    use crate::{Entry, EntryKind};

    #[test]
    fn streamed_leaf_hash_equals_the_hash_of_the_encoding() {
        let k = SecretKey::from_seed([3; 32]);
        for e in [
            Entry::signed("c", EntryKind::ORDER, vec![1, 2, 3], &k),
            Entry::system(EntryKind::FILL, vec![]),
            Entry::system(EntryKind::FILL, vec![9; 300]),
        ] {
            assert_eq!(e.leaf_hash(), Blake3::leaf(&e.encode()));
        }
    }

    #[test]
    fn strict_accepts_a_real_signature_and_rejects_changes() {
        let k = SecretKey::from_seed([7; 32]);
        let sig = k.sign(b"hello");
        assert_eq!(verify_strict(&k.public(), b"hello", &sig), Ok(()));
        assert_eq!(verify_strict(&k.public(), b"hellO", &sig), Err(SignatureError::Mismatch));
        let mut bad = sig;
        bad.0[63] |= 0xf0; // s >= ℓ
        assert_eq!(verify_strict(&k.public(), b"hello", &bad), Err(SignatureError::Malleable));
    }

    #[test]
    fn small_order_and_non_canonical_keys_are_refused() {
        for p in curve25519_dalek::constants::EIGHT_TORSION.iter() {
            let enc = p.compress().to_bytes();
            assert!(!is_acceptable_point(&enc));
            let mut flipped = enc;
            flipped[31] ^= 0x80;
            assert!(!is_acceptable_point(&flipped));
        }
        assert!(!is_canonical_y(&FIELD_P));
        let k = SecretKey::from_seed([1; 32]);
        assert!(is_acceptable_point(&k.public().0));
        // The identity as a key with a signature that would verify under the lax rule.
        let identity = PublicKey(curve25519_dalek::edwards::EdwardsPoint::default().compress().0);
        assert_eq!(
            verify_strict(&identity, b"m", &Signature([0; 64])),
            Err(SignatureError::BadKey)
        );
    }

    #[test]
    fn batch_names_the_first_bad_signature() {
        let keys: Vec<_> = (0..5u8).map(|i| SecretKey::from_seed([i; 32])).collect();
        let mut b = BatchVerifier::new();
        for (i, k) in keys.iter().enumerate() {
            let msg = vec![i as u8; 10];
            b.push(k.public(), msg.clone(), k.sign(&msg));
        }
        assert_eq!(b.verify(), Ok(()));
        for (i, k) in keys.iter().enumerate() {
            let msg = vec![i as u8; 10];
            let sig = if i == 3 { k.sign(b"other") } else { k.sign(&msg) };
            b.push(k.public(), msg, sig);
        }
        assert_eq!(b.verify(), Err((3, SignatureError::Mismatch)));
    }

    #[test]
    fn vote_batch_agrees_with_single() {
        let keys: Vec<_> = (0..4u8).map(|i| SecretKey::from_seed([i + 10; 32])).collect();
        let mut b = VoteBatch::new();
        for k in &keys {
            b.push(k.public(), b"vote".to_vec(), k.sign(b"vote"));
            assert_eq!(verify_vote(&k.public(), b"vote", &k.sign(b"vote")), Ok(()));
        }
        assert_eq!(b.verify(), Ok(()));
        let mut b = VoteBatch::new();
        for (i, k) in keys.iter().enumerate() {
            let sig = if i == 2 { k.sign(b"x") } else { k.sign(b"vote") };
            b.push(k.public(), b"vote".to_vec(), sig);
        }
        assert_eq!(b.verify(), Err((2, SignatureError::Mismatch)));
    }
}
