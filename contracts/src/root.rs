//! The state root (`docs/contracts.md` §5, version 2): each item of the state is one leaf of a
//! sparse Merkle tree (`surplus-state`), under a key hash made from its kind and natural key,
//! with the item's encoding as its value.

use surplus_ledger::encoding::{tagged_hasher, DecodeError, Reader, Writer};
use surplus_ledger::{Entry, Hash, PublicKey, MAX_ENTRY_PAYLOAD};
use surplus_market::{Allocation, Allocations, Market, Resting, SignedOrder};

use crate::governance::{Action, ConsensusParams, Proposal, Rotation, Validator};
use crate::maintenance::Notice;
use crate::state::{Account, Grant, Lease, LeaseStatus, Segment};
use crate::tx::{decode_fill, decode_revocation, encode_fill, encode_revocation, RevocationId};

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
    /// An allocation of a resting offer's slots to a lease, by offer, bid and start.
    Allocation = 7,
    /// A validator of the set in force for the next block, by key.
    Validator = 8,
    /// A proposal open or waiting for its height, by id.
    Proposal = 9,
    /// A rotated key, by the old key.
    Rotation = 10,
    /// The consensus parameters set by governance (at most one; none until set).
    Consensus = 11,
    /// A provider's open maintenance window, by provider and pool.
    Maintenance = 12,
    /// The down reports counted for a lease in an interval, by interval and lease.
    Tally = 13,
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
            7 => Kind::Allocation,
            8 => Kind::Validator,
            9 => Kind::Proposal,
            10 => Kind::Rotation,
            11 => Kind::Consensus,
            12 => Kind::Maintenance,
            13 => Kind::Tally,
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
            Kind::Allocation => "allocation",
            Kind::Validator => "validator",
            Kind::Proposal => "proposal",
            Kind::Rotation => "rotation",
            Kind::Consensus => "consensus",
            Kind::Maintenance => "maintenance",
            Kind::Tally => "tally",
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

/// An account's value: `key ‖ balance ‖ seq [‖ bond]` (the bond only when it is not 0).
pub(crate) fn account_value(key: &PublicKey, a: &Account) -> Vec<u8> {
    let mut w = Writer::with_capacity(56);
    w.raw(&key.0).u64(a.balance).u64(a.seq);
    if a.bond != 0 {
        w.u64(a.bond);
    }
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
            // 2 when it carries a sealed credential; a grant without one is encoded as before.
            w.u8(if g.sealed.is_empty() { 1 } else { 2 })
                .raw(&g.token_hash)
                .bytes(&encode_revocation(&l.id, &g.revocation_ids));
            if !g.sealed.is_empty() {
                w.bytes(&g.sealed);
            }
        }
    }
    // Absent without a notice: a lease without one is encoded as before.
    if let Some(n) = &l.notice {
        w.u8(1).u64(n.end_ms).u64(n.given_ms).u8(u8::from(n.in_time));
    }
    // Absent while the probes found it down never: such a lease is encoded as before.
    if l.down_ms != 0 || l.credited != 0 {
        w.u8(2).u64(l.down_ms).u64(l.credited);
    }
    // Absent until the provider recorded where to probe it.
    if let Some(t) = &l.probe {
        w.u8(3);
        t.encode(&mut w);
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

/// A resting order's value: `var(entry) ‖ height ‖ remaining` (an offer's allocations are
/// items of their own).
pub(crate) fn order_value(r: &Resting) -> Vec<u8> {
    let mut w = Writer::with_capacity(512);
    w.bytes(&r.order.to_entry().encode()).u64(r.height).u32(r.remaining);
    w.finish()
}

/// An allocation's natural key: `offer ‖ bid ‖ start_ms`.
pub(crate) fn allocation_key(offer: &Hash, bid: &Hash, start_ms: u64) -> [u8; 72] {
    let mut k = [0u8; 72];
    k[..32].copy_from_slice(offer);
    k[32..64].copy_from_slice(bid);
    k[64..].copy_from_slice(&start_ms.to_be_bytes());
    k
}

/// An allocation's value: `offer ‖ bid ‖ start_ms ‖ end_ms ‖ slots`.
pub(crate) fn allocation_value(offer: &Hash, a: &Allocation) -> Vec<u8> {
    let mut w = Writer::with_capacity(84);
    w.raw(offer).raw(&a.bid).u64(a.start_ms).u64(a.end_ms).u32(a.slots);
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

/// A validator's value: `position u16 ‖ key ‖ power u64 ‖ short(address)`, where the position
/// is its index in the set.
pub(crate) fn validator_value(position: usize, v: &Validator) -> Vec<u8> {
    let mut w = Writer::with_capacity(48 + v.address.len());
    w.u16(position as u16).raw(&v.key.0).u64(v.power).short_bytes(v.address.as_bytes());
    w.finish()
}

/// A proposal's value: `id ‖ proposer ‖ height ‖ effective ‖ passed ‖ var(action) ‖
/// u16 n ‖ (voter ‖ power)×n ‖ u16 m ‖ (voter ‖ yes u8)×m` (`passed` is 0 while open).
pub(crate) fn proposal_value(p: &Proposal) -> Vec<u8> {
    let mut action = Writer::new();
    p.action.encode(&mut action);
    let mut w = Writer::with_capacity(200 + 40 * p.voters.len() + 33 * p.votes.len());
    w.raw(&p.id).raw(&p.proposer.0).u64(p.height).u64(p.effective).u64(p.passed.unwrap_or(0));
    w.bytes(action.as_slice());
    w.u16(p.voters.len() as u16);
    for (k, power) in &p.voters {
        w.raw(&k.0).u64(*power);
    }
    w.u16(p.votes.len() as u16);
    for (k, yes) in &p.votes {
        w.raw(&k.0).u8(u8::from(*yes));
    }
    w.finish()
}

/// The consensus item's value: `batch_interval_ms:u64 ‖ max_block_entries:u32 ‖
/// max_block_bytes:u64`.
pub(crate) fn consensus_value(c: &ConsensusParams) -> Vec<u8> {
    let mut w = Writer::with_capacity(20);
    w.u64(c.batch_interval_ms).u32(c.max_block_entries).u64(c.max_block_bytes);
    w.finish()
}

/// Decodes the consensus item's value.
pub(crate) fn decode_consensus(v: &[u8]) -> Result<ConsensusParams, DecodeError> {
    let mut r = Reader::new(v);
    let c = ConsensusParams {
        batch_interval_ms: r.u64("consensus.batch_interval_ms")?,
        max_block_entries: r.u32("consensus.max_block_entries")?,
        max_block_bytes: r.u64("consensus.max_block_bytes")?,
    };
    r.finish()?;
    Ok(c)
}

/// A rotation's value: `old ‖ new ‖ height`.
pub(crate) fn rotation_value(old: &PublicKey, r: &Rotation) -> Vec<u8> {
    let mut w = Writer::with_capacity(72);
    w.raw(&old.0).raw(&r.new.0).u64(r.height);
    w.finish()
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

// Decoders: the inverses of the encoders above, for rebuilding a state from its items. Each
// reads one whole value (trailing bytes are refused); the caller also re-encodes what it read
// and compares, so that only the canonical encoding of a value is accepted.

/// Largest `var` field in a value: a genesis-params payload, a fill or revocation payload, or
/// an order's whole entry (its payload and at most 103 bytes of kind and authorization).
const MAX_VAR: usize = MAX_ENTRY_PAYLOAD + 1024;

/// The fields of the chain item.
pub(crate) struct ChainFields {
    pub(crate) chain_id: String,
    pub(crate) height: u64,
    pub(crate) now_ms: u64,
    pub(crate) supply: u64,
    pub(crate) params: Vec<u8>,
    pub(crate) book_ms: u64,
}

/// Reads `n` repetitions of a `size`-byte element, refusing a count the input cannot hold
/// before anything is allocated.
fn count(r: &mut Reader<'_>, field: &'static str, size: usize) -> Result<usize, DecodeError> {
    let at = r.position();
    let n = r.u32(field)? as usize;
    if n.saturating_mul(size) > r.remaining() {
        return Err(DecodeError::Truncated {
            field,
            at,
            needed: n.saturating_mul(size),
            available: r.remaining(),
        });
    }
    Ok(n)
}

fn utf8(r: &Reader<'_>, field: &'static str, at: usize, b: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(|_| r.invalid_at(field, at, "not UTF-8".into()))
}

/// Decodes the chain item's value.
pub(crate) fn decode_chain(v: &[u8]) -> Result<ChainFields, DecodeError> {
    let mut r = Reader::new(v);
    let tag = r.short_bytes("chain.tag")?;
    if tag != CHAIN_TAG {
        return Err(r.invalid_at("chain.tag", 0, "not the tag surplus/state/v2".into()));
    }
    let at = r.position();
    let chain_id = r.short_bytes("chain.chain_id")?;
    let chain_id = utf8(&r, "chain.chain_id", at, chain_id)?;
    let height = r.u64("chain.height")?;
    let now_ms = r.u64("chain.time_ms")?;
    let supply = r.u64("chain.supply")?;
    let params = r.bytes("chain.genesis_params", MAX_VAR)?.to_vec();
    let book_ms = r.u64("chain.book_time_ms")?;
    r.finish()?;
    Ok(ChainFields { chain_id, height, now_ms, supply, params, book_ms })
}

/// Decodes an account's value.
pub(crate) fn decode_account(v: &[u8]) -> Result<(PublicKey, Account), DecodeError> {
    let mut r = Reader::new(v);
    let key = PublicKey(r.array("account.key")?);
    let balance = r.u64("account.balance")?;
    let seq = r.u64("account.seq")?;
    let bond = if r.remaining() >= 8 { r.u64("account.bond")? } else { 0 };
    r.finish()?;
    Ok((key, Account { balance, seq, bond }))
}

/// Decodes a lease's value.
pub(crate) fn decode_lease(v: &[u8]) -> Result<Lease, DecodeError> {
    let mut r = Reader::new(v);
    let id = r.array("lease.id")?;
    let at = r.position();
    let (fill, height) = decode_fill(r.bytes("lease.fill", MAX_VAR)?)
        .map_err(|e| r.invalid_at("lease.fill", at, e.to_string()))?;
    let hours = r.u32("lease.hours")?;
    let hours_paid = r.u32("lease.hours_paid")?;
    let escrow = r.u64("lease.escrow")?;
    let at = r.position();
    let status = match r.u8("lease.status")? {
        1 => LeaseStatus::Active,
        2 => LeaseStatus::Completed,
        3 => LeaseStatus::TerminatedByBuyer,
        4 => LeaseStatus::TerminatedByProvider,
        5 => LeaseStatus::EndedByNotice,
        other => return Err(r.invalid_at("lease.status", at, format!("unknown status {other}"))),
    };
    let k = count(&mut r, "lease.segments", 12)?;
    let mut segments = Vec::with_capacity(k);
    for _ in 0..k {
        segments.push(Segment { hours: r.u32("segment.hours")?, price: r.u64("segment.price")? });
    }
    let at = r.position();
    let grant = match r.u8("lease.grant")? {
        0 => None,
        tag @ (1 | 2) => {
            let token_hash = r.array("grant.token_hash")?;
            let at = r.position();
            let (lease, revocation_ids) = decode_revocation(r.bytes("grant.revocation", MAX_VAR)?)
                .map_err(|e| r.invalid_at("grant.revocation", at, e.to_string()))?;
            if lease != id {
                return Err(r.invalid_at(
                    "grant.revocation",
                    at,
                    "names another lease than the lease's id".into(),
                ));
            }
            let sealed = if tag == 1 { Vec::new() } else { crate::sealed::read(&mut r)? };
            Some(Grant { token_hash, revocation_ids, sealed })
        }
        other => return Err(r.invalid_at("lease.grant", at, format!("unknown tag {other}"))),
    };
    let notice = if r.remaining() == 0 || matches!(r.peek_u8(), Some(2 | 3)) {
        None
    } else {
        let at = r.position();
        if r.u8("lease.notice")? != 1 {
            return Err(r.invalid_at(
                "lease.notice",
                at,
                "trailing bytes after the grant (a notice starts with 0x01, probes with 0x02)"
                    .into(),
            ));
        }
        let end_ms = r.u64("lease.notice.end_ms")?;
        let given_ms = r.u64("lease.notice.given_ms")?;
        let at = r.position();
        let in_time = match r.u8("lease.notice.in_time")? {
            0 => false,
            1 => true,
            other => {
                return Err(r.invalid_at(
                    "lease.notice.in_time",
                    at,
                    format!("{other} is not 0 or 1"),
                ))
            }
        };
        Some(Notice { end_ms, given_ms, in_time })
    };
    let (mut down_ms, mut credited) = (0, 0);
    if r.peek_u8() == Some(2) {
        r.u8("lease.probes")?;
        down_ms = r.u64("lease.down_ms")?;
        credited = r.u64("lease.credited")?;
    }
    let mut probe = None;
    if r.peek_u8() == Some(3) {
        r.u8("lease.probe")?;
        probe = Some(crate::supervision::ProbeTarget::decode(&mut r)?);
    }
    r.finish()?;
    Ok(Lease {
        id,
        fill,
        height,
        hours,
        segments,
        hours_paid,
        escrow,
        status,
        grant,
        notice,
        down_ms,
        credited,
        probe,
    })
}

/// Decodes a resting order's value (the order's signature is not checked: the state root
/// vouches for the item).
pub(crate) fn decode_order(v: &[u8]) -> Result<Resting, DecodeError> {
    let mut r = Reader::new(v);
    let at = r.position();
    let entry = Entry::decode(r.bytes("resting.entry", MAX_VAR)?)
        .map_err(|e| r.invalid_at("resting.entry", at, e.to_string()))?;
    let order = SignedOrder::from_entry(&entry)
        .map_err(|e| r.invalid_at("resting.entry", at, e.to_string()))?;
    let height = r.u64("resting.height")?;
    let remaining = r.u32("resting.remaining")?;
    r.finish()?;
    Ok(Resting { order, height, remaining, allocations: Allocations::new() })
}

/// Decodes an allocation's value: its offer and the allocation.
pub(crate) fn decode_allocation(v: &[u8]) -> Result<(Hash, Allocation), DecodeError> {
    let mut r = Reader::new(v);
    let offer = r.array("allocation.offer")?;
    let a = Allocation {
        bid: r.array("allocation.bid")?,
        start_ms: r.u64("allocation.start_ms")?,
        end_ms: r.u64("allocation.end_ms")?,
        slots: r.u32("allocation.slots")?,
    };
    r.finish()?;
    Ok((offer, a))
}

/// Decodes a revoked id's value.
pub(crate) fn decode_revoked(v: &[u8]) -> Result<RevocationId, DecodeError> {
    let mut r = Reader::new(v);
    let id = RevocationId(r.short_bytes("revoked.id")?.to_vec());
    r.finish()?;
    Ok(id)
}

/// Decodes a replay pair's value: author, nonce, expiry.
pub(crate) fn decode_nonce(v: &[u8]) -> Result<(PublicKey, u64, u64), DecodeError> {
    let mut r = Reader::new(v);
    let author = PublicKey(r.array("nonce.author")?);
    let nonce = r.u64("nonce.nonce")?;
    let expiry = r.u64("nonce.expiry_ms")?;
    r.finish()?;
    Ok((author, nonce, expiry))
}

/// Decodes a last price's value.
pub(crate) fn decode_price(v: &[u8]) -> Result<(Market, u64), DecodeError> {
    let mut r = Reader::new(v);
    let at = r.position();
    let class = r.short_bytes("price.class")?;
    let class = utf8(&r, "price.class", at, class)?;
    let at = r.position();
    let region = r.short_bytes("price.region")?;
    let region = utf8(&r, "price.region", at, region)?;
    let price = r.u64("price.price")?;
    r.finish()?;
    Ok((Market::from_names(class, region), price))
}

/// Decodes a validator's value: its position and the validator.
pub(crate) fn decode_validator(v: &[u8]) -> Result<(usize, Validator), DecodeError> {
    let mut r = Reader::new(v);
    let position = usize::from(r.u16("validator.position")?);
    let key = PublicKey(r.array("validator.key")?);
    let power = r.u64("validator.power")?;
    let at = r.position();
    let address = r.short_bytes("validator.address")?;
    let address = utf8(&r, "validator.address", at, address)?;
    r.finish()?;
    Ok((position, Validator { key, power, address }))
}

/// Decodes a proposal's value.
pub(crate) fn decode_proposal(v: &[u8]) -> Result<Proposal, DecodeError> {
    let mut r = Reader::new(v);
    let id = r.array("proposal.id")?;
    let proposer = PublicKey(r.array("proposal.proposer")?);
    let height = r.u64("proposal.height")?;
    let effective = r.u64("proposal.effective")?;
    let passed = r.u64("proposal.passed")?;
    let at = r.position();
    let action_bytes = r.bytes("proposal.action", MAX_VAR)?;
    let mut ar = Reader::new(action_bytes);
    let action = Action::decode(&mut ar)
        .and_then(|a| ar.finish().map(|()| a))
        .map_err(|e| r.invalid_at("proposal.action", at, e.to_string()))?;
    let n = r.u16("proposal.voters")? as usize;
    let mut voters = Vec::with_capacity(n.min(surplus_ledger::MAX_VALIDATORS));
    for _ in 0..n {
        voters.push((PublicKey(r.array("proposal.voter")?), r.u64("proposal.power")?));
    }
    let m = r.u16("proposal.votes")? as usize;
    let mut votes = Vec::with_capacity(m.min(surplus_ledger::MAX_VALIDATORS));
    for _ in 0..m {
        let k = PublicKey(r.array("proposal.vote.voter")?);
        let at = r.position();
        let yes = match r.u8("proposal.vote.yes")? {
            0 => false,
            1 => true,
            other => return Err(r.invalid_at("proposal.vote.yes", at, format!("{other}"))),
        };
        votes.push((k, yes));
    }
    r.finish()?;
    let passed = (passed != 0).then_some(passed);
    Ok(Proposal { id, proposer, action, height, effective, passed, voters, votes })
}

/// Decodes a rotation's value: the old key and its rotation.
pub(crate) fn decode_rotation(v: &[u8]) -> Result<(PublicKey, Rotation), DecodeError> {
    let mut r = Reader::new(v);
    let old = PublicKey(r.array("rotation.old")?);
    let new = PublicKey(r.array("rotation.new")?);
    let height = r.u64("rotation.height")?;
    r.finish()?;
    Ok((old, Rotation { new, height }))
}
