//! The state root (`docs/contracts.md` §5, version 2): each item of the state is one leaf of a
//! sparse Merkle tree (`surplus-state`), under a key hash made from its kind and natural key,
//! with the item's encoding as its value.

use surplus_ledger::encoding::{tagged_hasher, Writer};
use surplus_ledger::{Hash, PublicKey};
use surplus_market::{Market, Resting};

use crate::state::{Account, Lease};
use crate::tx::{encode_fill, encode_revocation, RevocationId};

/// Domain tag of a leaf's key hash.
pub const KEY_TAG: &[u8] = b"surplus/state/v2/key";
/// Domain tag that starts the value of the chain item.
pub const CHAIN_TAG: &[u8] = b"surplus/state/v2";

/// What an item of the state is; its number is the first byte hashed into its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// The chain item: chain id, height, time, supply, parameters, book time (one per state).
    Chain = 0,
    /// An account, by key.
    Account = 1,
    /// A live lease, by id.
    Lease = 2,
    /// A resting order, by id.
    Order = 3,
    /// A revoked credential id.
    Revoked = 4,
    /// A remembered (author, nonce) pair.
    Nonce = 5,
    /// A market's last clearing price.
    Price = 6,
}

impl Kind {
    /// The kind numbered `b`.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Kind::Chain,
            1 => Kind::Account,
            2 => Kind::Lease,
            3 => Kind::Order,
            4 => Kind::Revoked,
            5 => Kind::Nonce,
            6 => Kind::Price,
            _ => return None,
        })
    }
    /// Its name in documents and APIs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chain => "chain",
            Kind::Account => "account",
            Kind::Lease => "lease",
            Kind::Order => "order",
            Kind::Revoked => "revoked",
            Kind::Nonce => "nonce",
            Kind::Price => "price",
        }
    }
}

/// `blake3(tag(KEY_TAG) ‖ kind ‖ natural key)`.
pub fn key_hash(kind: Kind, key: &[u8]) -> Hash {
    let mut h = tagged_hasher(KEY_TAG);
    h.update(&[kind as u8]);
    h.update(key);
    *h.finalize().as_bytes()
}

/// One item of the state: its kind, natural key and value (the encoding its leaf commits to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// What it is.
    pub kind: Kind,
    /// Its natural key (empty for the chain item).
    pub key: Vec<u8>,
    /// Its encoding.
    pub value: Vec<u8>,
}

impl Item {
    /// The leaf's key hash.
    pub fn key_hash(&self) -> Hash {
        key_hash(self.kind, &self.key)
    }
    /// The leaf's value hash.
    pub fn value_hash(&self) -> Hash {
        surplus_state::value_hash(&self.value)
    }
}

/// The chain item's value.
pub(crate) fn chain_value(
    chain_id: &str,
    height: u64,
    now_ms: u64,
    supply: u64,
    params: &[u8],
    book_ms: u64,
) -> Vec<u8> {
    let mut w = Writer::with_capacity(64 + params.len());
    w.tag(CHAIN_TAG).short_bytes(chain_id.as_bytes()).u64(height).u64(now_ms).u64(supply);
    w.bytes(params).u64(book_ms);
    w.finish()
}

/// An account's value: `key ‖ balance ‖ seq`.
pub(crate) fn account_value(key: &PublicKey, a: &Account) -> Vec<u8> {
    let mut w = Writer::with_capacity(48);
    w.raw(&key.0).u64(a.balance).u64(a.seq);
    w.finish()
}

/// A lease's value.
pub(crate) fn lease_value(l: &Lease) -> Vec<u8> {
    let mut w = Writer::with_capacity(320);
    w.raw(&l.id)
        .bytes(&encode_fill(&l.fill, l.height))
        .u32(l.hours)
        .u32(l.hours_paid)
        .u64(l.escrow)
        .u8(l.status as u8);
    w.u32(l.segments.len() as u32);
    for seg in &l.segments {
        w.u32(seg.hours).u64(seg.price);
    }
    match &l.grant {
        None => {
            w.u8(0);
        }
        Some(g) => {
            w.u8(1).raw(&g.token_hash).bytes(&encode_revocation(&l.id, &g.revocation_ids));
        }
    }
    w.finish()
}

/// A market's natural key: `short(class) ‖ short(region)`.
pub(crate) fn price_key(m: &Market) -> Vec<u8> {
    let mut w = Writer::new();
    w.short_bytes(m.class.as_bytes()).short_bytes(m.region.as_bytes());
    w.finish()
}

/// A last price's value: its key, then the price.
pub(crate) fn price_value(m: &Market, price: u64) -> Vec<u8> {
    let mut v = price_key(m);
    v.extend_from_slice(&price.to_be_bytes());
    v
}

/// A revoked id's natural key and value: `short(id)`.
pub(crate) fn revoked_key(r: &RevocationId) -> Vec<u8> {
    let mut w = Writer::new();
    w.short_bytes(&r.0);
    w.finish()
}

/// A resting order's value.
pub(crate) fn order_value(r: &Resting) -> Vec<u8> {
    let mut w = Writer::with_capacity(512);
    w.bytes(&r.order.to_entry().encode()).u64(r.height).u32(r.remaining);
    w.u32(r.allocations.len() as u32);
    for a in &r.allocations {
        w.raw(&a.bid).u64(a.start_ms).u64(a.end_ms).u32(a.slots);
    }
    w.finish()
}

/// A replay pair's natural key: `author ‖ nonce`.
pub(crate) fn nonce_key(author: &PublicKey, nonce: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(&author.0);
    k[32..].copy_from_slice(&nonce.to_be_bytes());
    k
}

/// A replay pair's value: `author ‖ nonce ‖ expiry_ms`.
pub(crate) fn nonce_value(author: &PublicKey, nonce: u64, expiry_ms: u64) -> Vec<u8> {
    let mut v = nonce_key(author, nonce).to_vec();
    v.extend_from_slice(&expiry_ms.to_be_bytes());
    v
}

/// The account item of `key` holding `account` (its value is `key ‖ balance ‖ seq`), as
/// [`crate::State::items`] lists it; for state proofs to build and check values.
pub fn account_item(key: &PublicKey, account: &Account) -> Item {
    Item { kind: Kind::Account, key: key.0.to_vec(), value: account_value(key, account) }
}

/// The lease item of `lease`, as [`crate::State::items`] lists it; for state proofs to build
/// and check values.
pub fn lease_item(lease: &Lease) -> Item {
    Item { kind: Kind::Lease, key: lease.id.to_vec(), value: lease_value(lease) }
}
