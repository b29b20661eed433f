//! The genesis configuration: validators, catalogue, treasury, fee and penalty rates, initial
//! balances; and the genesis block's entries that record it.

use serde::{Deserialize, Serialize};
use surplus_ledger::encoding::{DecodeError, Reader, Writer};
use surplus_ledger::{Auth, Block, Entry, EntryKind, PublicKey, ValidatorSet};
use surplus_market::{Catalogue, Class, Region};

use crate::Error;

/// Basis points: 10,000 = 100 %.
pub const BPS: u64 = 10_000;

/// The consortium's parameters, fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Resource classes and regions.
    pub catalogue: Catalogue,
    /// The account that receives the consortium fee.
    pub treasury: PublicKey,
    /// Fee on every payment to a provider, in basis points (default 0).
    #[serde(default)]
    pub fee_bps: u16,
    /// Penalty a provider pays the buyer when it ends a lease early, in basis points of the
    /// refunded escrow.
    #[serde(default)]
    pub penalty_bps: u16,
    /// How long before a lease's early end a provider's notice must come for the provider to
    /// pay no penalty, ms (default 24 hours; `docs/contracts.md` §9).
    #[serde(default = "default_notice_ms")]
    pub notice_ms: u64,
    /// How the validators supervise each other's leases (`docs/contracts.md` §10); absent:
    /// supervision is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervision: Option<crate::supervision::Supervision>,
}

fn default_notice_ms() -> u64 {
    crate::maintenance::DEFAULT_NOTICE_MS
}

/// Credits given to an account at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The account.
    pub account: PublicKey,
    /// Units (1 credit = 1,000,000 units).
    pub amount: u64,
}

/// Everything the genesis block records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Validator keys, in order.
    pub validators: Vec<PublicKey>,
    /// Parameters.
    pub params: Params,
    /// Initial balances.
    pub allocations: Vec<Allocation>,
}

impl Params {
    /// Checks the parameters.
    pub fn validated(mut self) -> Result<Self, Error> {
        self.catalogue =
            self.catalogue.validated().map_err(|e| Error::Genesis(format!("catalogue: {e}")))?;
        if u64::from(self.fee_bps) > BPS || u64::from(self.penalty_bps) > BPS {
            return Err(Error::Genesis("fee_bps and penalty_bps must be at most 10000".into()));
        }
        if self.notice_ms > crate::maintenance::MAX_WINDOW_AHEAD_MS {
            return Err(Error::Genesis("notice_ms must be at most a year".into()));
        }
        if let Some(s) = &self.supervision {
            s.validate().map_err(Error::Genesis)?;
        }
        for c in &self.catalogue.classes {
            crate::supervision::Terms::check(c).map_err(Error::Genesis)?;
        }
        Ok(self)
    }

    /// Canonical payload of the genesis-params entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&self.treasury.0).u16(self.fee_bps).u16(self.penalty_bps);
        w.u16(self.catalogue.classes.len() as u16);
        for c in &self.catalogue.classes {
            w.short_bytes(c.id.as_bytes()).bytes(c.description.as_bytes());
            w.u16(c.attributes.len() as u16);
            for (k, v) in &c.attributes {
                w.short_bytes(k.as_bytes()).u64(*v);
            }
        }
        w.u16(self.catalogue.regions.len() as u16);
        for r in &self.catalogue.regions {
            w.short_bytes(r.id.as_bytes()).bytes(r.description.as_bytes());
        }
        // Absent when it is the default and nothing follows: parameters that keep it are
        // encoded as before.
        if self.notice_ms != crate::maintenance::DEFAULT_NOTICE_MS || self.supervision.is_some() {
            w.u64(self.notice_ms);
        }
        if let Some(s) = &self.supervision {
            s.encode(&mut w);
        }
        w.finish()
    }

    /// Decodes and validates a genesis-params payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let treasury = PublicKey(r.array("params.treasury")?);
        let fee_bps = r.u16("params.fee_bps")?;
        let penalty_bps = r.u16("params.penalty_bps")?;
        let text =
            |r: &mut Reader<'_>, field: &'static str, long: bool| -> Result<String, DecodeError> {
                let at = r.position();
                let b = if long { r.bytes(field, 4096)? } else { r.short_bytes(field)? };
                String::from_utf8(b.to_vec())
                    .map_err(|_| r.invalid_at(field, at, "not UTF-8".into()))
            };
        let mut classes = Vec::new();
        for _ in 0..r.u16("params.classes")? {
            let id = text(&mut r, "class.id", false)?;
            let description = text(&mut r, "class.description", true)?;
            let mut attributes = std::collections::BTreeMap::new();
            for _ in 0..r.u16("class.attributes")? {
                let k = text(&mut r, "class.attribute", false)?;
                attributes.insert(k, r.u64("class.attribute.value")?);
            }
            classes.push(Class { id, description, attributes });
        }
        let mut regions = Vec::new();
        for _ in 0..r.u16("params.regions")? {
            let id = text(&mut r, "region.id", false)?;
            let description = text(&mut r, "region.description", true)?;
            regions.push(Region { id, description });
        }
        let notice_ms = if r.remaining() == 0 {
            crate::maintenance::DEFAULT_NOTICE_MS
        } else {
            r.u64("params.notice_ms")?
        };
        let supervision = if r.remaining() == 0 {
            None
        } else {
            Some(crate::supervision::Supervision::decode(&mut r)?)
        };
        r.finish()?;
        let p = Params {
            catalogue: Catalogue { classes, regions },
            treasury,
            fee_bps,
            penalty_bps,
            notice_ms,
            supervision,
        };
        let encoded_again = p.encode();
        let p = p.validated().map_err(|e| DecodeError::Invalid {
            field: "params",
            at: 0,
            reason: e.to_string(),
        })?;
        // Canonical: sorted, unique classes and regions, so the bytes re-encode identically.
        if p.encode() != encoded_again {
            return Err(DecodeError::Invalid {
                field: "params",
                at: 0,
                reason: "classes or regions are not in order".into(),
            });
        }
        if encoded_again != bytes {
            return Err(DecodeError::Invalid {
                field: "params",
                at: 0,
                reason: "not the canonical encoding (a default written out)".into(),
            });
        }
        Ok(p)
    }
}

impl Allocation {
    /// Canonical payload of a genesis-allocation entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&self.account.0).u64(self.amount);
        w.finish()
    }
    /// Decodes a genesis-allocation payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let a = Allocation {
            account: PublicKey(r.array("allocation.account")?),
            amount: r.u64("allocation.amount")?,
        };
        r.finish()?;
        Ok(a)
    }
}

impl Genesis {
    /// The genesis block's entries: validators, parameters, then allocations in account order.
    pub fn entries(&self) -> Result<Vec<Entry>, Error> {
        let set = ValidatorSet::new(self.validators.clone()).map_err(Error::Genesis)?;
        let params = self.params.clone().validated()?;
        let mut allocations = self.allocations.clone();
        allocations.sort_by_key(|a| a.account);
        if let Some(w) = allocations.windows(2).find(|w| w[0].account == w[1].account) {
            return Err(Error::Genesis(format!("account {} is allocated twice", w[0].account)));
        }
        let total = allocations.iter().try_fold(0u64, |t, a| t.checked_add(a.amount));
        if total.is_none() {
            return Err(Error::Genesis("the allocations add up to more than 2^64 units".into()));
        }
        let mut out = vec![
            Entry::system(EntryKind::VALIDATORS, set.encode()),
            Entry::system(EntryKind::GENESIS_PARAMS, params.encode()),
        ];
        out.extend(
            allocations.iter().map(|a| Entry::system(EntryKind::GENESIS_ALLOCATION, a.encode())),
        );
        Ok(out)
    }

    /// Reads the genesis configuration back from a genesis block.
    pub fn from_block(block: &Block) -> Result<Self, Error> {
        let validators = surplus_ledger::genesis_validators(block)
            .map_err(|f| Error::Genesis(f.to_string()))?
            .validators;
        let mut params = None;
        let mut allocations = Vec::new();
        for (i, e) in block.entries.iter().enumerate() {
            if e.auth != Auth::System {
                return Err(Error::Genesis(format!(
                    "genesis entry {i} is signed; genesis holds system entries only"
                )));
            }
            let bad = |err: DecodeError| Error::Genesis(format!("genesis entry {i}: {err}"));
            match e.kind {
                EntryKind::VALIDATORS => {}
                EntryKind::GENESIS_PARAMS if params.is_none() => {
                    params = Some(Params::decode(&e.payload).map_err(bad)?)
                }
                EntryKind::GENESIS_ALLOCATION => {
                    allocations.push(Allocation::decode(&e.payload).map_err(bad)?)
                }
                other => {
                    return Err(Error::Genesis(format!(
                        "genesis entry {i} has unexpected kind {}",
                        other.0
                    )))
                }
            }
        }
        let params =
            params.ok_or_else(|| Error::Genesis("genesis has no parameters entry".into()))?;
        let g = Genesis { validators, params, allocations };
        if g.entries()? != block.entries {
            return Err(Error::Genesis("genesis entries are not in canonical order".into()));
        }
        Ok(g)
    }
}
