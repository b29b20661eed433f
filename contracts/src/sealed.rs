//! A lease's credential sealed to its buyer, so that any node can hand it out and only the
//! buyer can read it (decision 0030, `docs/contracts.md` §6 "Sealed credential").
//!
//! ```text
//! b      = X25519 public key of the buyer's ed25519 key (u = (1 + y) / (1 − y))
//! e, E   = a fresh X25519 key pair of the provider's (E = X25519(e, 9))
//! shared = X25519(e, b)                      (refused if all zero: a small-order key)
//! key    = HKDF-SHA256(salt = E ‖ b, ikm = shared,
//!                      info = "surplus/sealed-credential/v1" ‖ len(chain_id):u8 ‖ chain_id ‖ lease)
//! sealed = E ‖ AES-256-GCM(key, nonce = 12 zero bytes, no associated data, token)
//! ```
//!
//! The buyer opens it with its X25519 private key (the ed25519 secret scalar: the first half of
//! SHA-512 of its seed) and `shared = X25519(that, E)`. The key is used once (a fresh `e` per
//! seal), so the fixed nonce is never reused under one key.

use aes_gcm::aead::Aead as _;
use aes_gcm::{Aes256Gcm, KeyInit as _};
use rand_core::{CryptoRng, RngCore};
use surplus_ledger::encoding::DecodeError;
use surplus_ledger::{Hash, PublicKey, SecretKey};

/// The HKDF `info` tag.
pub const TAG: &[u8] = b"surplus/sealed-credential/v1";
/// Bytes a seal adds to the token: the ephemeral key and the GCM tag.
pub const OVERHEAD: usize = 32 + 16;
/// The longest sealed credential a grant may carry.
pub const MAX_SEALED: usize = 4096;

/// Why a credential could not be sealed or opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The buyer's key is not a point X25519 can seal to.
    #[error(
        "the buyer key is not a canonical ed25519 key of large order: nothing can be sealed to it"
    )]
    BadKey,
    /// The token is too long to seal within [`MAX_SEALED`].
    #[error("the token is {0} bytes: a sealed credential holds at most {max}", max = MAX_SEALED - OVERHEAD)]
    TooLong(usize),
    /// Not a sealed credential, or not sealed to this key for this chain and lease.
    #[error("the sealed credential does not open with this key for this chain and lease")]
    WontOpen,
}

/// Reads a present `var(sealed)` of a grant (transaction payload or state item): 49 to
/// [`MAX_SEALED`] bytes.
pub fn read(r: &mut surplus_ledger::encoding::Reader<'_>) -> Result<Vec<u8>, DecodeError> {
    let at = r.position();
    let sealed = r.bytes("grant.sealed", MAX_SEALED)?;
    if sealed.len() <= OVERHEAD {
        return Err(r.invalid_at(
            "grant.sealed",
            at,
            format!(
                "{} bytes: a sealed credential is more than {OVERHEAD} (a key, a token and a \
                 tag); with none, the field is absent",
                sealed.len()
            ),
        ));
    }
    Ok(sealed.to_vec())
}

fn aead_key(
    shared: &[u8; 32],
    ephemeral: &[u8; 32],
    buyer: &[u8; 32],
    chain_id: &str,
    lease: &Hash,
) -> Aes256Gcm {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(buyer);
    let mut info = TAG.to_vec();
    // Chain ids are at most 255 bytes (the ledger format's short string).
    info.push(chain_id.len().min(255) as u8);
    info.extend_from_slice(chain_id.as_bytes());
    info.extend_from_slice(lease);
    let mut key = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), shared)
        .expand(&info, &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Aes256Gcm::new(&key.into())
}

/// Seals `token` to `buyer` for `lease` on `chain_id`, with a fresh ephemeral key from `rng`.
pub fn seal<R: RngCore + CryptoRng>(
    token: &[u8],
    buyer: &PublicKey,
    chain_id: &str,
    lease: &Hash,
    rng: &mut R,
) -> Result<Vec<u8>, SealError> {
    let mut e = [0u8; 32];
    rng.fill_bytes(&mut e);
    seal_with(token, buyer, chain_id, lease, e)
}

/// [`seal`] with the ephemeral private key given (test vectors; never reuse one).
pub fn seal_with(
    token: &[u8],
    buyer: &PublicKey,
    chain_id: &str,
    lease: &Hash,
    ephemeral_secret: [u8; 32],
) -> Result<Vec<u8>, SealError> {
    if token.len() > MAX_SEALED - OVERHEAD {
        return Err(SealError::TooLong(token.len()));
    }
    let b = buyer.to_x25519().ok_or(SealError::BadKey)?;
    let e = x25519_dalek::StaticSecret::from(ephemeral_secret);
    let big_e = x25519_dalek::PublicKey::from(&e).to_bytes();
    let shared = e.diffie_hellman(&x25519_dalek::PublicKey::from(b));
    if !shared.was_contributory() {
        return Err(SealError::BadKey);
    }
    let cipher = aead_key(shared.as_bytes(), &big_e, &b, chain_id, lease);
    let body = cipher.encrypt(&[0u8; 12].into(), token).map_err(|_| SealError::WontOpen)?;
    let mut out = Vec::with_capacity(32 + body.len());
    out.extend_from_slice(&big_e);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens a credential sealed to `buyer`'s key for `lease` on `chain_id`.
pub fn open(
    sealed: &[u8],
    buyer: &SecretKey,
    chain_id: &str,
    lease: &Hash,
) -> Result<Vec<u8>, SealError> {
    if sealed.len() < OVERHEAD || sealed.len() > MAX_SEALED {
        return Err(SealError::WontOpen);
    }
    let b = buyer.public().to_x25519().ok_or(SealError::BadKey)?;
    let mut big_e = [0u8; 32];
    big_e.copy_from_slice(&sealed[..32]);
    let secret = x25519_dalek::StaticSecret::from(buyer.x25519_secret());
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(big_e));
    if !shared.was_contributory() {
        return Err(SealError::WontOpen);
    }
    let cipher = aead_key(shared.as_bytes(), &big_e, &b, chain_id, lease);
    cipher.decrypt(&[0u8; 12].into(), &sealed[32..]).map_err(|_| SealError::WontOpen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buyer() -> SecretKey {
        SecretKey::from_seed([7; 32])
    }

    #[test]
    fn only_the_buyer_opens_and_only_for_its_chain_and_lease() {
        let token = b"a biscuit token".to_vec();
        let lease = [3u8; 32];
        let s = seal(&token, &buyer().public(), "c", &lease, &mut rand_core::OsRng).unwrap();
        assert_eq!(s.len(), token.len() + OVERHEAD);
        assert_eq!(open(&s, &buyer(), "c", &lease).unwrap(), token);
        let other = SecretKey::from_seed([8; 32]);
        assert_eq!(open(&s, &other, "c", &lease), Err(SealError::WontOpen));
        assert_eq!(open(&s, &buyer(), "d", &lease), Err(SealError::WontOpen));
        assert_eq!(open(&s, &buyer(), "c", &[4; 32]), Err(SealError::WontOpen));
        let mut flipped = s.clone();
        flipped[40] ^= 1;
        assert_eq!(open(&flipped, &buyer(), "c", &lease), Err(SealError::WontOpen));
        assert_eq!(open(&s[..20], &buyer(), "c", &lease), Err(SealError::WontOpen));
        // Two seals of one token differ (a fresh ephemeral key each).
        let t = seal(&token, &buyer().public(), "c", &lease, &mut rand_core::OsRng).unwrap();
        assert_ne!(s, t);
    }

    #[test]
    fn small_order_and_non_canonical_keys_are_refused() {
        let lease = [3u8; 32];
        // The identity point (y = 1) and a non-canonical y (≥ p).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let r = seal(b"t", &PublicKey(identity), "c", &lease, &mut rand_core::OsRng);
        assert_eq!(r, Err(SealError::BadKey));
        let r = seal(b"t", &PublicKey([0xff; 32]), "c", &lease, &mut rand_core::OsRng);
        assert_eq!(r, Err(SealError::BadKey));
        let long = vec![0u8; MAX_SEALED];
        let r = seal(&long, &buyer().public(), "c", &lease, &mut rand_core::OsRng);
        assert_eq!(r, Err(SealError::TooLong(MAX_SEALED)));
    }

    #[test]
    fn the_x25519_keys_agree_with_the_ed25519_ones() {
        // X25519(x25519_secret, 9) is the Montgomery form of the ed25519 public key.
        let k = buyer();
        let s = x25519_dalek::StaticSecret::from(k.x25519_secret());
        let p = x25519_dalek::PublicKey::from(&s).to_bytes();
        assert_eq!(Some(p), k.public().to_x25519());
    }
}
