//! What the ledger's signature checks accept is exactly what the documented single-signature
//! rules accept (`docs/ledger-format.md` §2): the strict rule for entries and checkpoints, one
//! by one or in a [`BatchVerifier`], and ZIP-215 for certificate votes, one by one or in a
//! [`VoteBatch`].
//!
//! The rules are written out here again from the document, on curve25519-dalek's group
//! operations, and compared with the crate on signatures made the way an attacker holding the
//! key would make them: `R` with a torsion component of order 2, 4 or 8, keys of mixed or small
//! order, non-canonical `s`, non-canonical point encodings, small-order `R`, flipped bits.
//! Admission and block execution (crate `surplus-contracts`) call these same functions; their
//! side of the property is `contracts/tests/it/strict.rs`.

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use proptest::prelude::*;
use surplus_ledger::testutil::challenge;
use surplus_ledger::{
    verify_strict, verify_vote, Auth, BatchVerifier, Checkpoint, Entry, EntryKind, PublicKey,
    Signature, SignedCheckpoint, VoteBatch,
};

/// ℓ, little-endian.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
/// p = 2^255 − 19, little-endian.
const P: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// `a < b` for little-endian 256-bit integers.
fn less(a: &[u8; 32], b: &[u8; 32]) -> bool {
    for i in (0..32).rev() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
    }
    false
}

fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}

fn split(sig: &[u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&sig[..32]);
    s.copy_from_slice(&sig[32..]);
    (r, s)
}

/// ledger-format §2, strict rule: `s < ℓ`; `A` and `R` canonical (y with the sign bit cleared
/// below p), on the curve and not of small order; `[s]B − [k]A` encodes to `R`'s bytes.
fn strict_rule(a: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let (r, s) = split(sig);
    if !less(&s, &ELL) {
        return false;
    }
    let point = |enc: &[u8; 32]| {
        let mut y = *enc;
        y[31] &= 0x7f;
        if !less(&y, &P) {
            return None;
        }
        CompressedEdwardsY(*enc).decompress().filter(|p| !p.is_small_order())
    };
    let (Some(big_a), Some(_)) = (point(a), point(&r)) else {
        return false;
    };
    let s = Scalar::from_canonical_bytes(s).expect("s < ℓ was checked");
    let k = challenge(&r, a, msg);
    (EdwardsPoint::mul_base(&s) - k * big_a).compress().to_bytes() == r
}

/// ledger-format §2, certificate votes (ZIP-215): `s < ℓ`; `A` and `R` decompress (any
/// encoding); `[8]([s]B − R − [k]A)` is the identity.
fn zip215_rule(a: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let (r, s) = split(sig);
    if !less(&s, &ELL) {
        return false;
    }
    let (Some(big_a), Some(big_r)) =
        (CompressedEdwardsY(*a).decompress(), CompressedEdwardsY(r).decompress())
    else {
        return false;
    };
    let s = Scalar::from_canonical_bytes(s).expect("s < ℓ was checked");
    let k = challenge(&r, a, msg);
    (EdwardsPoint::mul_base(&s) - big_r - k * big_a).mul_by_cofactor().is_identity()
}

/// The key an attacker uses.
#[derive(Clone, Copy, Debug)]
enum KeyKind {
    /// `[a]B`, as honest key generation makes.
    Prime,
    /// `[a]B + T` with `T` the torsion point of that index (orders 2, 4, 8).
    Mixed(usize),
    /// A point of small order.
    Small(usize),
    /// `y + p` for a small `y`: a non-canonical encoding.
    NonCanonical(u8),
}

/// How the signature is made (always by the key's owner).
#[derive(Clone, Copy, Debug)]
enum SigKind {
    Honest,
    /// `R = [r]B + T`, `s = r + k·a`.
    TorsionR(usize),
    /// An honest signature with `s + ℓ` in place of `s`.
    NonCanonicalS,
    /// `R` of small order.
    SmallR(usize),
    /// `R` written as `y + p` (a non-canonical encoding) of a small `y`.
    NonCanonicalR(u8),
    /// One bit of an honest signature flipped.
    Flipped(u16),
}

fn key_kind() -> impl Strategy<Value = KeyKind> {
    prop_oneof![
        4 => Just(KeyKind::Prime),
        2 => (1..8usize).prop_map(KeyKind::Mixed),
        1 => (0..8usize).prop_map(KeyKind::Small),
        1 => (0..19u8).prop_map(KeyKind::NonCanonical),
    ]
}

fn sig_kind() -> impl Strategy<Value = SigKind> {
    prop_oneof![
        4 => Just(SigKind::Honest),
        4 => (1..8usize).prop_map(SigKind::TorsionR),
        1 => Just(SigKind::NonCanonicalS),
        1 => (0..8usize).prop_map(SigKind::SmallR),
        1 => (0..19u8).prop_map(SigKind::NonCanonicalR),
        1 => (0..512u16).prop_map(SigKind::Flipped),
    ]
}

/// A non-canonical encoding `y + p` (y < 19 keeps it below 2^255), sign bit set or not.
fn non_canonical(y: u8) -> [u8; 32] {
    let mut small = [0u8; 32];
    small[0] = y % 19;
    let mut enc = add_le(&P, &small);
    if y >= 10 {
        enc[31] |= 0x80;
    }
    enc
}

/// Makes a key and a signature over `msg` with the secret scalar `a` and nonce `r`.
fn craft(a: Scalar, r: Scalar, key: KeyKind, how: SigKind, msg: &[u8]) -> (PublicKey, Signature) {
    let b = ED25519_BASEPOINT_POINT;
    let a_enc = match key {
        KeyKind::Prime => (a * b).compress().to_bytes(),
        KeyKind::Mixed(t) => (a * b + EIGHT_TORSION[t]).compress().to_bytes(),
        KeyKind::Small(t) => EIGHT_TORSION[t].compress().to_bytes(),
        KeyKind::NonCanonical(y) => non_canonical(y),
    };
    let r_enc = match how {
        SigKind::TorsionR(t) => (r * b + EIGHT_TORSION[t]).compress().to_bytes(),
        SigKind::SmallR(t) => EIGHT_TORSION[t].compress().to_bytes(),
        SigKind::NonCanonicalR(y) => non_canonical(y),
        _ => (r * b).compress().to_bytes(),
    };
    let s = r + challenge(&r_enc, &a_enc, msg) * a;
    let mut s_enc = s.to_bytes();
    if let SigKind::NonCanonicalS = how {
        s_enc = add_le(&s_enc, &ELL);
    }
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r_enc);
    sig[32..].copy_from_slice(&s_enc);
    if let SigKind::Flipped(bit) = how {
        sig[usize::from(bit / 8)] ^= 1 << (bit % 8);
    }
    (PublicKey(a_enc), Signature(sig))
}

fn scalar(seed: [u8; 32]) -> Scalar {
    Scalar::from_bytes_mod_order(seed)
}

/// One crafted signature over `msg`.
fn item(msg: Vec<u8>) -> impl Strategy<Value = (PublicKey, Vec<u8>, Signature)> {
    (any::<[u8; 32]>(), any::<[u8; 32]>(), key_kind(), sig_kind()).prop_map(
        move |(a, r, key, how)| {
            let (k, s) = craft(scalar(a), scalar(r), key, how, &msg);
            (k, msg.clone(), s)
        },
    )
}

fn first_failure(
    items: &[(PublicKey, Vec<u8>, Signature)],
    rule: fn(&[u8; 32], &[u8], &[u8; 64]) -> bool,
) -> Option<usize> {
    items.iter().position(|(k, m, s)| !rule(&k.0, m, &s.0))
}

const CHAIN: &str = "strict-test";

fn checkpoint(height: u64) -> Checkpoint {
    Checkpoint {
        chain_id: CHAIN.into(),
        height,
        tree_size: height * 3,
        root: [height as u8; 32],
        header_hash: [7; 32],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// One signature alone, under each rule.
    #[test]
    fn single_checks_are_the_documented_rules(
        (key, msg, sig) in item(b"a message".to_vec())
    ) {
        prop_assert_eq!(verify_strict(&key, &msg, &sig).is_ok(), strict_rule(&key.0, &msg, &sig.0));
        prop_assert_eq!(verify_vote(&key, &msg, &sig).is_ok(), zip215_rule(&key.0, &msg, &sig.0));
    }

    #[test]
    fn entries_and_checkpoints_follow_the_strict_rule(
        a in any::<[u8; 32]>(),
        r in any::<[u8; 32]>(),
        key in key_kind(),
        how in sig_kind(),
        payload in proptest::collection::vec(any::<u8>(), 0..40),
        height in 1..1000u64,
    ) {
        // An entry: the author signs its signing bytes.
        let author = craft(scalar(a), scalar(r), key, SigKind::Honest, b"").0;
        let msg = Entry::signing_bytes(CHAIN, EntryKind::ORDER, &author, &payload);
        let (author, signature) = craft(scalar(a), scalar(r), key, how, &msg);
        let entry = Entry { kind: EntryKind::ORDER, auth: Auth::Signed { author, signature }, payload };
        prop_assert_eq!(
            entry.verify_signature(CHAIN).is_ok(),
            strict_rule(&author.0, &msg, &signature.0)
        );
        // A checkpoint.
        let c = checkpoint(height);
        let (signer, signature) = craft(scalar(a), scalar(r), key, how, &c.signing_bytes());
        let signed = SignedCheckpoint { checkpoint: c.clone(), signer, signature };
        prop_assert_eq!(
            signed.verify().is_ok(),
            strict_rule(&signer.0, &c.signing_bytes(), &signature.0)
        );
    }

    /// A batch of up to 80 signatures (several threads from 32) accepts exactly when each passes
    /// alone, and names the first that does not.
    #[test]
    fn batches_accept_exactly_what_single_rules_accept(
        honest in proptest::collection::vec(any::<[u8; 32]>(), 0..80),
        crafted in proptest::collection::vec(
            (0..80usize, any::<u8>()).prop_flat_map(|(at, m)| (Just(at), item(vec![m; 3]))),
            0..3,
        ),
    ) {
        let mut items: Vec<_> = honest
            .iter()
            .map(|seed| {
                let msg = seed[..4].to_vec();
                let (k, s) = craft(scalar(*seed), scalar([seed[0]; 32]), KeyKind::Prime, SigKind::Honest, &msg);
                (k, msg, s)
            })
            .collect();
        for (at, it) in crafted {
            items.insert(at.min(items.len()), it);
        }
        let mut batch = BatchVerifier::new();
        let mut votes = VoteBatch::new();
        for (k, m, s) in &items {
            batch.push(*k, m.clone(), *s);
            votes.push(*k, m.clone(), *s);
        }
        prop_assert_eq!(batch.verify().err().map(|e| e.0), first_failure(&items, strict_rule));
        prop_assert_eq!(votes.verify().err().map(|e| e.0), first_failure(&items, zip215_rule));
    }
}

/// The torsioned signatures that made decision 0002 wrong: for each torsion order, a signature
/// by the key's owner with `R = [r]B + T` is refused by every strict check, alone or among 63
/// honest ones, at every position, while ZIP-215 accepts it.
#[test]
fn a_torsioned_r_is_refused_at_every_position_of_a_batch() {
    for (t, order) in [(4usize, 2u32), (2, 4), (1, 8)] {
        assert_eq!(
            (0..8).find(|i| (EIGHT_TORSION[t] * Scalar::from(1u64 << i)).is_identity()),
            Some(order.trailing_zeros() as usize)
        );
        for at in [0usize, 17, 40, 63] {
            let mut batch = BatchVerifier::new();
            for i in 0..64u8 {
                let msg = vec![i; 5];
                let how = if usize::from(i) == at { SigKind::TorsionR(t) } else { SigKind::Honest };
                let (k, s) =
                    craft(scalar([i + 1; 32]), scalar([i + 101; 32]), KeyKind::Prime, how, &msg);
                if usize::from(i) == at {
                    assert!(!strict_rule(&k.0, &msg, &s.0));
                    assert!(zip215_rule(&k.0, &msg, &s.0));
                    assert!(verify_strict(&k, &msg, &s).is_err());
                    assert!(verify_vote(&k, &msg, &s).is_ok());
                }
                batch.push(k, msg, s);
            }
            assert_eq!(batch.verify().err().map(|e| e.0), Some(at), "order {order}");
        }
    }
}
