//! Payloads of the entries the state machine reads and writes (see `docs/contracts.md`).
//!
//! Signed by users: `transfer`, `lease-transition` (terminate, renew) and `credential-grant`.
//! Each carries the author's account sequence number, which must equal the account's next one,
//! so a replayed entry is refused. Written by the state machine (system entries): `fill`,
//! `settlement` and `revocation`.

use serde::{Deserialize, Serialize};
use surplus_ledger::encoding::{DecodeError, Reader, Writer};
use surplus_ledger::{Hash, PublicKey};
use surplus_market::{Fill, Market};

use crate::governance::Action;
use crate::maintenance::text;

/// Most revocation ids a credential may carry (one per token block).
pub const MAX_REVOCATION_IDS: usize = 16;
/// Largest revocation id, bytes.
pub const MAX_REVOCATION_ID_LEN: usize = 128;

/// A user transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Tx {
    /// Move credits to another account.
    Transfer {
        /// Recipient.
        to: PublicKey,
        /// Units.
        amount: u64,
        /// The sender's sequence number.
        seq: u64,
    },
    /// End a lease now (by its buyer or its provider).
    Terminate {
        /// The lease.
        #[serde(with = "surplus_ledger::hex_hash")]
        lease: Hash,
        /// The author's sequence number.
        seq: u64,
    },
    /// Extend a lease by `hours` at the market's last clearing price (by its buyer).
    Renew {
        /// The lease.
        #[serde(with = "surplus_ledger::hex_hash")]
        lease: Hash,
        /// Extra hours.
        hours: u32,
        /// The author's sequence number.
        seq: u64,
    },
    /// Record the credential a provider minted for a lease (never the token in clear).
    Grant {
        /// The lease.
        #[serde(with = "surplus_ledger::hex_hash")]
        lease: Hash,
        /// blake3 of the token bytes.
        #[serde(with = "surplus_ledger::hex_hash")]
        token_hash: Hash,
        /// The token's revocation ids (hex in JSON).
        revocation_ids: Vec<RevocationId>,
        /// The provider's sequence number.
        seq: u64,
        /// The token sealed to the lease's buyer ([`crate::sealed`]), so that any node can hand
        /// it out; empty when the provider sealed none (hex in JSON, absent when empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty", with = "hex::serde")]
        sealed: Vec<u8>,
    },
    /// Propose a change to the validator set or the parameters (by a validator).
    GovPropose {
        /// What it changes.
        action: Action,
        /// The first block under the change.
        effective: u64,
        /// The proposer's sequence number.
        seq: u64,
    },
    /// Vote on a proposal (by a validator of the proposal's set).
    GovVote {
        /// The proposal.
        #[serde(with = "surplus_ledger::hex_hash")]
        proposal: Hash,
        /// Yes or no.
        yes: bool,
        /// The voter's sequence number.
        seq: u64,
    },
    /// Withdraw an open proposal (by its proposer).
    GovWithdraw {
        /// The proposal.
        #[serde(with = "surplus_ledger::hex_hash")]
        proposal: Hash,
        /// The proposer's sequence number.
        seq: u64,
    },
    /// Give a lease notice that it ends at `end_ms` (by its provider, before maintenance).
    Notice {
        /// The lease.
        #[serde(with = "surplus_ledger::hex_hash")]
        lease: Hash,
        /// When it ends, ms since the epoch.
        end_ms: u64,
        /// The provider's sequence number.
        seq: u64,
    },
    /// Record that the provider moved a lease to another of its pools (same id, price and
    /// credential; new access details).
    Move {
        /// The lease.
        #[serde(with = "surplus_ledger::hex_hash")]
        lease: Hash,
        /// The pool it now runs on.
        pool: String,
        /// The provider's sequence number.
        seq: u64,
    },
    /// Record where the other datacenters probe a lease (by its provider, `docs/contracts.md`
    /// §10).
    Probe {
        /// The lease.
        #[serde(with = "surplus_ledger::hex_hash")]
        lease: Hash,
        /// The target.
        target: crate::supervision::ProbeTarget,
        /// The provider's sequence number.
        seq: u64,
    },
    /// Announce a maintenance window for one of the author's pools: it stops offering the
    /// pool's capacity and gives notice to (or moves) the leases on it.
    Maintenance {
        /// The provider's name for the pool.
        pool: String,
        /// The pool's market.
        market: Market,
        /// When the work starts, ms.
        start_ms: u64,
        /// When it ends by itself, ms; 0 until the provider says it is done.
        until_ms: u64,
        /// Why (shown to buyers).
        reason: String,
        /// The provider's sequence number.
        seq: u64,
    },
    /// End a maintenance window of the author's: the pool is back on the market.
    MaintenanceDone {
        /// The pool.
        pool: String,
        /// The provider's sequence number.
        seq: u64,
    },
    /// Lock `amount` of the author's balance in its bond (a provider's, `docs/contracts.md`
    /// §10).
    Bond {
        /// Units.
        amount: u64,
        /// The author's sequence number.
        seq: u64,
    },
    /// Take `amount` of the author's bond back into its balance.
    Unbond {
        /// Units.
        amount: u64,
        /// The author's sequence number.
        seq: u64,
    },
    /// Rotate the author's key to `new_key`: the author's credits move to it, its validator
    /// place (if any) passes to it, and the old key may sign nothing more.
    RotateKey {
        /// The new key.
        new_key: PublicKey,
        /// The old key's sequence number.
        seq: u64,
    },
}

/// A Biscuit revocation id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RevocationId(pub Vec<u8>);

impl Serialize for RevocationId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}
impl<'de> Deserialize<'de> for RevocationId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hex::decode(String::deserialize(d)?).map(RevocationId).map_err(serde::de::Error::custom)
    }
}

const TERMINATE: u8 = 1;
const RENEW: u8 = 2;
const NOTICE: u8 = 3;
const MOVE: u8 = 4;
const PROBE: u8 = 5;
const WINDOW: u8 = 1;
const WINDOW_DONE: u8 = 2;
const BOND_LOCK: u8 = 1;
const BOND_RELEASE: u8 = 2;

fn write_ids(w: &mut Writer, ids: &[RevocationId]) {
    w.u8(ids.len() as u8);
    for id in ids {
        w.short_bytes(&id.0);
    }
}

fn read_ids(r: &mut Reader<'_>) -> Result<Vec<RevocationId>, DecodeError> {
    let at = r.position();
    let n = usize::from(r.u8("revocation_ids.count")?);
    if n == 0 || n > MAX_REVOCATION_IDS {
        return Err(r.invalid_at(
            "revocation_ids.count",
            at,
            format!("{n} ids, 1 to {MAX_REVOCATION_IDS} allowed"),
        ));
    }
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let at = r.position();
        let id = r.short_bytes("revocation_id")?;
        if id.is_empty() || id.len() > MAX_REVOCATION_ID_LEN {
            return Err(r.invalid_at(
                "revocation_id",
                at,
                format!("{} bytes, 1 to {MAX_REVOCATION_ID_LEN} allowed", id.len()),
            ));
        }
        let id = RevocationId(id.to_vec());
        if ids.contains(&id) {
            return Err(r.invalid_at("revocation_id", at, "listed twice".into()));
        }
        ids.push(id);
    }
    Ok(ids)
}

impl Tx {
    /// The ledger entry kind that carries this transaction.
    pub fn kind(&self) -> surplus_ledger::EntryKind {
        use surplus_ledger::EntryKind;
        match self {
            Tx::Transfer { .. } => EntryKind::TRANSFER,
            Tx::Terminate { .. }
            | Tx::Renew { .. }
            | Tx::Notice { .. }
            | Tx::Move { .. }
            | Tx::Probe { .. } => EntryKind::LEASE_TRANSITION,
            Tx::Maintenance { .. } | Tx::MaintenanceDone { .. } => EntryKind::MAINTENANCE,
            Tx::Grant { .. } => EntryKind::CREDENTIAL_GRANT,
            Tx::Bond { .. } | Tx::Unbond { .. } => EntryKind::BOND,
            Tx::GovPropose { .. } => EntryKind::GOV_PROPOSE,
            Tx::GovVote { .. } => EntryKind::GOV_VOTE,
            Tx::GovWithdraw { .. } => EntryKind::GOV_WITHDRAW,
            Tx::RotateKey { .. } => EntryKind::KEY_ROTATION,
        }
    }

    /// The author's sequence number.
    pub fn seq(&self) -> u64 {
        match self {
            Tx::Transfer { seq, .. }
            | Tx::Terminate { seq, .. }
            | Tx::Renew { seq, .. }
            | Tx::Notice { seq, .. }
            | Tx::Move { seq, .. }
            | Tx::Probe { seq, .. }
            | Tx::Maintenance { seq, .. }
            | Tx::MaintenanceDone { seq, .. }
            | Tx::Grant { seq, .. }
            | Tx::Bond { seq, .. }
            | Tx::Unbond { seq, .. }
            | Tx::GovPropose { seq, .. }
            | Tx::GovVote { seq, .. }
            | Tx::GovWithdraw { seq, .. }
            | Tx::RotateKey { seq, .. } => *seq,
        }
    }

    /// The same transaction with sequence number `seq`.
    pub fn with_seq(mut self, new: u64) -> Tx {
        match &mut self {
            Tx::Transfer { seq, .. }
            | Tx::Terminate { seq, .. }
            | Tx::Renew { seq, .. }
            | Tx::Notice { seq, .. }
            | Tx::Move { seq, .. }
            | Tx::Probe { seq, .. }
            | Tx::Maintenance { seq, .. }
            | Tx::MaintenanceDone { seq, .. }
            | Tx::Grant { seq, .. }
            | Tx::Bond { seq, .. }
            | Tx::Unbond { seq, .. }
            | Tx::GovPropose { seq, .. }
            | Tx::GovVote { seq, .. }
            | Tx::GovWithdraw { seq, .. }
            | Tx::RotateKey { seq, .. } => *seq = new,
        }
        self
    }

    /// Canonical payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Tx::Transfer { to, amount, seq } => {
                w.raw(&to.0).u64(*amount).u64(*seq);
            }
            Tx::Terminate { lease, seq } => {
                w.u8(TERMINATE).raw(lease).u64(*seq);
            }
            Tx::Renew { lease, hours, seq } => {
                w.u8(RENEW).raw(lease).u64(*seq).u32(*hours);
            }
            Tx::Notice { lease, end_ms, seq } => {
                w.u8(NOTICE).raw(lease).u64(*seq).u64(*end_ms);
            }
            Tx::Move { lease, pool, seq } => {
                w.u8(MOVE).raw(lease).u64(*seq).short_bytes(pool.as_bytes());
            }
            Tx::Probe { lease, target, seq } => {
                w.u8(PROBE).raw(lease).u64(*seq);
                target.encode(&mut w);
            }
            Tx::Maintenance { pool, market, start_ms, until_ms, reason, seq } => {
                w.u8(WINDOW).u64(*seq).short_bytes(pool.as_bytes());
                w.short_bytes(market.class.as_bytes()).short_bytes(market.region.as_bytes());
                w.u64(*start_ms).u64(*until_ms).bytes(reason.as_bytes());
            }
            Tx::MaintenanceDone { pool, seq } => {
                w.u8(WINDOW_DONE).u64(*seq).short_bytes(pool.as_bytes());
            }
            Tx::Grant { lease, token_hash, revocation_ids, seq, sealed } => {
                w.raw(lease).raw(token_hash).u64(*seq);
                write_ids(&mut w, revocation_ids);
                // Absent when there is none: a grant without one is encoded as before.
                if !sealed.is_empty() {
                    w.bytes(sealed);
                }
            }
            Tx::Bond { amount, seq } => {
                w.u8(BOND_LOCK).u64(*seq).u64(*amount);
            }
            Tx::Unbond { amount, seq } => {
                w.u8(BOND_RELEASE).u64(*seq).u64(*amount);
            }
            Tx::GovPropose { action, effective, seq } => {
                w.u64(*seq).u64(*effective);
                action.encode(&mut w);
            }
            Tx::GovVote { proposal, yes, seq } => {
                w.raw(proposal).u8(u8::from(*yes)).u64(*seq);
            }
            Tx::GovWithdraw { proposal, seq } => {
                w.raw(proposal).u64(*seq);
            }
            Tx::RotateKey { new_key, seq } => {
                w.raw(&new_key.0).u64(*seq);
            }
        }
        w.finish()
    }

    /// Decodes the payload of an entry of `kind`.
    pub fn decode(kind: surplus_ledger::EntryKind, bytes: &[u8]) -> Result<Self, DecodeError> {
        use surplus_ledger::EntryKind;
        let mut r = Reader::new(bytes);
        let tx = match kind {
            EntryKind::TRANSFER => Tx::Transfer {
                to: PublicKey(r.array("transfer.to")?),
                amount: r.u64("transfer.amount")?,
                seq: r.u64("transfer.seq")?,
            },
            EntryKind::LEASE_TRANSITION => {
                let at = r.position();
                match r.u8("transition.action")? {
                    TERMINATE => Tx::Terminate {
                        lease: r.array("transition.lease")?,
                        seq: r.u64("transition.seq")?,
                    },
                    RENEW => Tx::Renew {
                        lease: r.array("transition.lease")?,
                        seq: r.u64("transition.seq")?,
                        hours: r.u32("transition.hours")?,
                    },
                    NOTICE => Tx::Notice {
                        lease: r.array("transition.lease")?,
                        seq: r.u64("transition.seq")?,
                        end_ms: r.u64("transition.end_ms")?,
                    },
                    MOVE => Tx::Move {
                        lease: r.array("transition.lease")?,
                        seq: r.u64("transition.seq")?,
                        pool: text(&mut r, "transition.pool", false)?,
                    },
                    PROBE => Tx::Probe {
                        lease: r.array("transition.lease")?,
                        seq: r.u64("transition.seq")?,
                        target: crate::supervision::ProbeTarget::decode(&mut r)?,
                    },
                    other => {
                        return Err(r.invalid_at(
                            "transition.action",
                            at,
                            format!("unknown action {other}"),
                        ))
                    }
                }
            }
            EntryKind::CREDENTIAL_GRANT => Tx::Grant {
                lease: r.array("grant.lease")?,
                token_hash: r.array("grant.token_hash")?,
                seq: r.u64("grant.seq")?,
                revocation_ids: read_ids(&mut r)?,
                // Absent, or present and 49 to 4,096 bytes.
                sealed: if r.remaining() == 0 { Vec::new() } else { crate::sealed::read(&mut r)? },
            },
            EntryKind::MAINTENANCE => {
                let at = r.position();
                match r.u8("maintenance.action")? {
                    WINDOW => {
                        let seq = r.u64("maintenance.seq")?;
                        let pool = text(&mut r, "maintenance.pool", false)?;
                        let class = text(&mut r, "maintenance.class", false)?;
                        let region = text(&mut r, "maintenance.region", false)?;
                        Tx::Maintenance {
                            pool,
                            market: Market::from_names(class, region),
                            start_ms: r.u64("maintenance.start_ms")?,
                            until_ms: r.u64("maintenance.until_ms")?,
                            reason: text(&mut r, "maintenance.reason", true)?,
                            seq,
                        }
                    }
                    WINDOW_DONE => Tx::MaintenanceDone {
                        seq: r.u64("maintenance.seq")?,
                        pool: text(&mut r, "maintenance.pool", false)?,
                    },
                    other => {
                        return Err(r.invalid_at(
                            "maintenance.action",
                            at,
                            format!("unknown action {other}"),
                        ))
                    }
                }
            }
            EntryKind::BOND => {
                let at = r.position();
                match r.u8("bond.action")? {
                    BOND_LOCK => {
                        Tx::Bond { seq: r.u64("bond.seq")?, amount: r.u64("bond.amount")? }
                    }
                    BOND_RELEASE => {
                        Tx::Unbond { seq: r.u64("bond.seq")?, amount: r.u64("bond.amount")? }
                    }
                    other => {
                        return Err(r.invalid_at(
                            "bond.action",
                            at,
                            format!("unknown action {other}"),
                        ))
                    }
                }
            }
            EntryKind::GOV_PROPOSE => {
                let seq = r.u64("propose.seq")?;
                let effective = r.u64("propose.effective")?;
                Tx::GovPropose { action: Action::decode(&mut r)?, effective, seq }
            }
            EntryKind::GOV_VOTE => {
                let proposal = r.array("vote.proposal")?;
                let at = r.position();
                let yes = match r.u8("vote.yes")? {
                    0 => false,
                    1 => true,
                    other => {
                        return Err(r.invalid_at("vote.yes", at, format!("{other} is not 0 or 1")))
                    }
                };
                Tx::GovVote { proposal, yes, seq: r.u64("vote.seq")? }
            }
            EntryKind::GOV_WITHDRAW => Tx::GovWithdraw {
                proposal: r.array("withdraw.proposal")?,
                seq: r.u64("withdraw.seq")?,
            },
            EntryKind::KEY_ROTATION => Tx::RotateKey {
                new_key: PublicKey(r.array("rotation.new_key")?),
                seq: r.u64("rotation.seq")?,
            },
            other => {
                return Err(DecodeError::Invalid {
                    field: "kind",
                    at: 0,
                    reason: format!("kind {} is not a transaction", other.0),
                })
            }
        };
        r.finish()?;
        Ok(tx)
    }
}

/// Why money moved on a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettlementReason {
    /// Hours of block time passed.
    Hourly = 1,
    /// The lease reached its end.
    Completion = 2,
    /// The buyer ended it early.
    BuyerTermination = 3,
    /// The provider ended it early.
    ProviderTermination = 4,
    /// The buyer extended it (escrow added).
    Renewal = 5,
    /// It ended at the time of the provider's notice (before maintenance).
    Notice = 6,
}

/// A settlement: what a block moved for one lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    /// The lease.
    #[serde(with = "surplus_ledger::hex_hash")]
    pub lease: Hash,
    /// Why.
    pub reason: SettlementReason,
    /// Hours paid for so far (after this settlement).
    pub hours_paid: u32,
    /// Paid to the provider from escrow (after the fee).
    pub to_provider: u64,
    /// Paid to the treasury from escrow.
    pub fee: u64,
    /// Returned from escrow to the buyer.
    pub refund: u64,
    /// Paid by the provider to the buyer (provider termination).
    pub penalty: u64,
    /// Added to escrow by the buyer (renewal).
    pub added: u64,
}

impl Settlement {
    /// Canonical payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&self.lease).u8(self.reason as u8).u32(self.hours_paid);
        w.u64(self.to_provider).u64(self.fee).u64(self.refund).u64(self.penalty).u64(self.added);
        w.finish()
    }
    /// Decodes a settlement payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let lease = r.array("settlement.lease")?;
        let at = r.position();
        let reason = match r.u8("settlement.reason")? {
            1 => SettlementReason::Hourly,
            2 => SettlementReason::Completion,
            3 => SettlementReason::BuyerTermination,
            4 => SettlementReason::ProviderTermination,
            5 => SettlementReason::Renewal,
            6 => SettlementReason::Notice,
            other => {
                return Err(r.invalid_at(
                    "settlement.reason",
                    at,
                    format!("unknown reason {other}"),
                ))
            }
        };
        let s = Settlement {
            lease,
            reason,
            hours_paid: r.u32("settlement.hours_paid")?,
            to_provider: r.u64("settlement.to_provider")?,
            fee: r.u64("settlement.fee")?,
            refund: r.u64("settlement.refund")?,
            penalty: r.u64("settlement.penalty")?,
            added: r.u64("settlement.added")?,
        };
        r.finish()?;
        Ok(s)
    }
}

/// Canonical payload of a `fill` system entry of block `height` (the height makes every fill
/// entry, and so every lease id, unique even when two blocks share a time).
pub fn encode_fill(f: &Fill, height: u64) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(height).raw(&f.bid).raw(&f.offer).raw(&f.buyer.0).raw(&f.provider.0);
    w.short_bytes(f.market.class.as_bytes()).short_bytes(f.market.region.as_bytes());
    w.u32(f.slots).u64(f.start_ms).u64(f.end_ms).u64(f.price);
    w.finish()
}

/// Decodes a `fill` payload: the fill and its block height.
pub fn decode_fill(bytes: &[u8]) -> Result<(Fill, u64), DecodeError> {
    let mut r = Reader::new(bytes);
    let height = r.u64("fill.height")?;
    let bid = r.array("fill.bid")?;
    let offer = r.array("fill.offer")?;
    let buyer = PublicKey(r.array("fill.buyer")?);
    let provider = PublicKey(r.array("fill.provider")?);
    let at = r.position();
    let class = String::from_utf8(r.short_bytes("fill.class")?.to_vec());
    let region = String::from_utf8(r.short_bytes("fill.region")?.to_vec());
    let (Ok(class), Ok(region)) = (class, region) else {
        return Err(r.invalid_at("fill.market", at, "not UTF-8".into()));
    };
    let f = Fill {
        bid,
        offer,
        buyer,
        provider,
        market: Market::from_names(class, region),
        slots: r.u32("fill.slots")?,
        start_ms: r.u64("fill.start_ms")?,
        end_ms: r.u64("fill.end_ms")?,
        price: r.u64("fill.price")?,
    };
    r.finish()?;
    Ok((f, height))
}

/// Canonical payload of a `revocation` system entry: the lease and its credential's ids.
pub fn encode_revocation(lease: &Hash, ids: &[RevocationId]) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(lease);
    write_ids(&mut w, ids);
    w.finish()
}

/// Decodes a `revocation` payload.
pub fn decode_revocation(bytes: &[u8]) -> Result<(Hash, Vec<RevocationId>), DecodeError> {
    let mut r = Reader::new(bytes);
    let lease = r.array("revocation.lease")?;
    let ids = read_ids(&mut r)?;
    r.finish()?;
    Ok((lease, ids))
}

impl utoipa::PartialSchema for RevocationId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        surplus_ledger::schema::hex("a Biscuit revocation id, hex", None).into()
    }
}
impl utoipa::ToSchema for RevocationId {}
