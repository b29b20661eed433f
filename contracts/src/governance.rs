//! Governance (`docs/governance.md`, `docs/contracts.md` §8): the validator set with its voting
//! powers and network addresses, proposals to change the set or the consortium's parameters,
//! the votes that pass them, and key rotations. The rules that read and change the state are in
//! the state machine (`state/governance.rs`); this module holds the values and their encodings.

use serde::{Deserialize, Serialize};
use surplus_ledger::encoding::{DecodeError, Reader, Writer};
use surplus_ledger::{Hash, PublicKey};
use surplus_market::{validate_name, Class, Region};

/// Fewest blocks between the block in which a proposal passes and its effective height: every
/// node learns of the change this many blocks before it applies.
pub const ENACTMENT_DELAY: u64 = 10;
/// Furthest a proposal's effective height may be after the block that proposes it, blocks.
pub const MAX_PROPOSAL_WINDOW: u64 = 1_000_000;
/// Most proposals open (or passed and waiting for their height) at once.
pub const MAX_OPEN_PROPOSALS: usize = 64;
/// Longest network address of a validator, bytes.
pub const MAX_ADDRESS_LEN: usize = 256;
/// Longest description of a class or region a proposal may carry, bytes.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// Most attributes a proposed class may have.
pub const MAX_ATTRIBUTES: usize = 32;
/// Bounds of a governed batch interval, ms.
pub const BATCH_INTERVAL_MS: std::ops::RangeInclusive<u64> = 10..=60_000;
/// Bounds of a governed largest block, bytes.
pub const MAX_BLOCK_BYTES: std::ops::RangeInclusive<u64> = 65_536..=16 * 1024 * 1024;

/// The consensus parameters a consortium may set by vote; until it does, each node uses its
/// own configuration (`[consensus]` in `config.toml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsensusParams {
    /// While entries wait, a block at least this often, ms.
    pub batch_interval_ms: u64,
    /// Most user entries in one block.
    pub max_block_entries: u32,
    /// Largest block, bytes.
    pub max_block_bytes: u64,
}

impl ConsensusParams {
    /// Checks the bounds: a batch interval of 10 ms to 60 s, 1 to the ledger's limit of entries,
    /// 64 KiB to 16 MiB a block.
    pub fn validate(&self) -> Result<(), String> {
        if !BATCH_INTERVAL_MS.contains(&self.batch_interval_ms) {
            return Err(format!(
                "batch interval {} ms, 10 to 60000 allowed",
                self.batch_interval_ms
            ));
        }
        let max = surplus_ledger::MAX_BLOCK_ENTRIES;
        if self.max_block_entries == 0 || self.max_block_entries as usize > max {
            return Err(format!("{} entries a block, 1 to {max} allowed", self.max_block_entries));
        }
        if !MAX_BLOCK_BYTES.contains(&self.max_block_bytes) {
            return Err(format!(
                "{} bytes a block, 65536 to 16777216 allowed",
                self.max_block_bytes
            ));
        }
        Ok(())
    }
}

/// A validator: its key, voting power and the network address other nodes dial.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Validator {
    /// The node key that signs its votes and proposals.
    #[schema(value_type = String)]
    pub key: PublicKey,
    /// Its voting power (at least 1).
    pub power: u64,
    /// Its libp2p multiaddr, such as `/ip4/10.0.0.5/tcp/7000` (empty for genesis validators,
    /// whose addresses the nodes' configuration gives).
    pub address: String,
}

/// What a proposal changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Admit a validator.
    AddValidator {
        /// Its key.
        #[schema(value_type = String)]
        key: PublicKey,
        /// Its voting power.
        power: u64,
        /// Its libp2p multiaddr.
        address: String,
    },
    /// Remove a validator.
    RemoveValidator {
        /// Its key.
        #[schema(value_type = String)]
        key: PublicKey,
    },
    /// Change a validator's voting power.
    SetPower {
        /// Its key.
        #[schema(value_type = String)]
        key: PublicKey,
        /// The new power.
        power: u64,
    },
    /// Change the fee and penalty rates.
    SetFees {
        /// Fee on payments to providers, basis points.
        fee_bps: u16,
        /// Penalty of a provider that ends a lease early, basis points of the refund.
        penalty_bps: u16,
    },
    /// Open the markets of a new resource class.
    AddClass {
        /// The class.
        #[schema(value_type = Object)]
        class: Class,
    },
    /// Retire a class: its markets stop taking orders; running leases continue to their end.
    RetireClass {
        /// The class id.
        id: String,
    },
    /// Open the markets of a new region.
    AddRegion {
        /// The region.
        #[schema(value_type = Object)]
        region: Region,
    },
    /// Retire a region, as a class is retired.
    RetireRegion {
        /// The region id.
        id: String,
    },
    /// Set the consensus parameters every node then uses instead of its own configuration.
    SetConsensus {
        /// The parameters.
        params: ConsensusParams,
    },
    /// Replace a validator's key (when the old key is lost), keeping its place, power and
    /// address.
    RotateValidator {
        /// The key it has now.
        #[schema(value_type = String)]
        old: PublicKey,
        /// The key it will have.
        #[schema(value_type = String)]
        new: PublicKey,
    },
}

const ADD_VALIDATOR: u8 = 1;
const REMOVE_VALIDATOR: u8 = 2;
const SET_POWER: u8 = 3;
const SET_FEES: u8 = 4;
const ADD_CLASS: u8 = 5;
const RETIRE_CLASS: u8 = 6;
const ADD_REGION: u8 = 7;
const RETIRE_REGION: u8 = 8;
const ROTATE_VALIDATOR: u8 = 9;
const SET_CONSENSUS: u8 = 10;

fn text(r: &mut Reader<'_>, field: &'static str, long: bool) -> Result<String, DecodeError> {
    let at = r.position();
    let b = if long { r.bytes(field, MAX_DESCRIPTION_LEN)? } else { r.short_bytes(field)? };
    String::from_utf8(b.to_vec()).map_err(|_| r.invalid_at(field, at, "not UTF-8".into()))
}

/// Checks a validator's network address: 1 to [`MAX_ADDRESS_LEN`] bytes of printable ASCII
/// starting with `/` (a multiaddr; the node parses it when it dials).
pub fn validate_address(address: &str) -> Result<(), String> {
    if address.is_empty() || address.len() > MAX_ADDRESS_LEN {
        return Err(format!(
            "an address of {} bytes, 1 to {MAX_ADDRESS_LEN} allowed",
            address.len()
        ));
    }
    if !address.starts_with('/') || !address.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("{address:?} is not a multiaddr (printable ASCII starting with /)"));
    }
    Ok(())
}

impl Action {
    /// Canonical encoding: a one-byte tag, then the action's fields.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Action::AddValidator { key, power, address } => {
                w.u8(ADD_VALIDATOR).raw(&key.0).u64(*power).short_bytes(address.as_bytes());
            }
            Action::RemoveValidator { key } => {
                w.u8(REMOVE_VALIDATOR).raw(&key.0);
            }
            Action::SetPower { key, power } => {
                w.u8(SET_POWER).raw(&key.0).u64(*power);
            }
            Action::SetFees { fee_bps, penalty_bps } => {
                w.u8(SET_FEES).u16(*fee_bps).u16(*penalty_bps);
            }
            Action::AddClass { class } => {
                w.u8(ADD_CLASS)
                    .short_bytes(class.id.as_bytes())
                    .bytes(class.description.as_bytes());
                w.u16(class.attributes.len() as u16);
                for (k, v) in &class.attributes {
                    w.short_bytes(k.as_bytes()).u64(*v);
                }
            }
            Action::RetireClass { id } => {
                w.u8(RETIRE_CLASS).short_bytes(id.as_bytes());
            }
            Action::AddRegion { region } => {
                w.u8(ADD_REGION).short_bytes(region.id.as_bytes());
                w.bytes(region.description.as_bytes());
            }
            Action::RetireRegion { id } => {
                w.u8(RETIRE_REGION).short_bytes(id.as_bytes());
            }
            Action::RotateValidator { old, new } => {
                w.u8(ROTATE_VALIDATOR).raw(&old.0).raw(&new.0);
            }
            Action::SetConsensus { params: p } => {
                w.u8(SET_CONSENSUS).u64(p.batch_interval_ms).u32(p.max_block_entries);
                w.u64(p.max_block_bytes);
            }
        }
    }

    /// Decodes an action and checks its own rules ([`Action::validate`]).
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let a = match r.u8("action.type")? {
            ADD_VALIDATOR => Action::AddValidator {
                key: PublicKey(r.array("action.key")?),
                power: r.u64("action.power")?,
                address: text(r, "action.address", false)?,
            },
            REMOVE_VALIDATOR => Action::RemoveValidator { key: PublicKey(r.array("action.key")?) },
            SET_POWER => Action::SetPower {
                key: PublicKey(r.array("action.key")?),
                power: r.u64("action.power")?,
            },
            SET_FEES => Action::SetFees {
                fee_bps: r.u16("action.fee_bps")?,
                penalty_bps: r.u16("action.penalty_bps")?,
            },
            ADD_CLASS => {
                let id = text(r, "class.id", false)?;
                let description = text(r, "class.description", true)?;
                let n = r.u16("class.attributes")?;
                let mut attributes = std::collections::BTreeMap::new();
                for _ in 0..n {
                    let at = r.position();
                    let k = text(r, "class.attribute", false)?;
                    let v = r.u64("class.attribute.value")?;
                    if attributes.keys().next_back().is_some_and(|last| *last >= k) {
                        return Err(r.invalid_at(
                            "class.attribute",
                            at,
                            "attributes must be in increasing order, each once".into(),
                        ));
                    }
                    attributes.insert(k, v);
                }
                Action::AddClass { class: Class { id, description, attributes } }
            }
            RETIRE_CLASS => Action::RetireClass { id: text(r, "action.class", false)? },
            ADD_REGION => Action::AddRegion {
                region: Region {
                    id: text(r, "region.id", false)?,
                    description: text(r, "region.description", true)?,
                },
            },
            RETIRE_REGION => Action::RetireRegion { id: text(r, "action.region", false)? },
            ROTATE_VALIDATOR => Action::RotateValidator {
                old: PublicKey(r.array("action.old")?),
                new: PublicKey(r.array("action.new")?),
            },
            SET_CONSENSUS => Action::SetConsensus {
                params: ConsensusParams {
                    batch_interval_ms: r.u64("action.batch_interval_ms")?,
                    max_block_entries: r.u32("action.max_block_entries")?,
                    max_block_bytes: r.u64("action.max_block_bytes")?,
                },
            },
            other => {
                return Err(r.invalid_at("action.type", at, format!("unknown action {other}")))
            }
        };
        a.validate().map_err(|reason| r.invalid_at("action", at, reason))?;
        Ok(a)
    }

    /// The rules an action must follow whatever the state: powers of at least 1 (and at most
    /// the ledger's total), rates of at most 10,000 bps, valid names and addresses, attributes
    /// in canonical order (sorted, unique), two distinct keys for a rotation.
    pub fn validate(&self) -> Result<(), String> {
        let power = |p: u64| {
            if p == 0 || p > surplus_ledger::MAX_TOTAL_POWER {
                Err(format!("voting power {p}, 1 to {} allowed", surplus_ledger::MAX_TOTAL_POWER))
            } else {
                Ok(())
            }
        };
        match self {
            Action::AddValidator { power: p, address, .. } => {
                power(*p)?;
                validate_address(address)
            }
            Action::SetPower { power: p, .. } => power(*p),
            Action::RemoveValidator { .. } => Ok(()),
            Action::SetFees { fee_bps, penalty_bps } => {
                if u64::from(*fee_bps) > crate::BPS || u64::from(*penalty_bps) > crate::BPS {
                    return Err("fee_bps and penalty_bps must be at most 10000".into());
                }
                Ok(())
            }
            Action::AddClass { class } => {
                validate_name("class", &class.id)?;
                if class.description.len() > MAX_DESCRIPTION_LEN {
                    return Err(format!("a description longer than {MAX_DESCRIPTION_LEN} bytes"));
                }
                if class.attributes.len() > MAX_ATTRIBUTES {
                    return Err(format!("more than {MAX_ATTRIBUTES} attributes"));
                }
                for k in class.attributes.keys() {
                    validate_name("attribute", k)?;
                }
                crate::supervision::Terms::check(class)
            }
            Action::AddRegion { region } => {
                validate_name("region", &region.id)?;
                if region.description.len() > MAX_DESCRIPTION_LEN {
                    return Err(format!("a description longer than {MAX_DESCRIPTION_LEN} bytes"));
                }
                Ok(())
            }
            Action::RetireClass { id } => validate_name("class", id),
            Action::RetireRegion { id } => validate_name("region", id),
            Action::RotateValidator { old, new } => {
                if old == new {
                    return Err("a rotation needs a new key".into());
                }
                Ok(())
            }
            Action::SetConsensus { params } => params.validate(),
        }
    }

    /// Whether the action changes the validator set.
    pub fn changes_validators(&self) -> bool {
        matches!(
            self,
            Action::AddValidator { .. }
                | Action::RemoveValidator { .. }
                | Action::SetPower { .. }
                | Action::RotateValidator { .. }
        )
    }
}

/// Where a proposal is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Taking votes.
    Open,
    /// Passed; waiting for its effective height.
    Passed,
}

/// A proposal in the state: open, or passed and waiting for its effective height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Proposal {
    /// Its id: the id of the entry that proposed it.
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub id: Hash,
    /// The validator that proposed it.
    #[schema(value_type = String)]
    pub proposer: PublicKey,
    /// What it changes.
    pub action: Action,
    /// The block that proposed it.
    pub height: u64,
    /// The first block under the change.
    pub effective: u64,
    /// The block in which it passed (`None` while open).
    pub passed: Option<u64>,
    /// Who may vote, with their voting power: the validator set of the block that proposed it.
    #[schema(value_type = Vec<(String, u64)>)]
    pub voters: Vec<(PublicKey, u64)>,
    /// The votes cast, in voter key order: `true` for yes.
    #[schema(value_type = Vec<(String, bool)>)]
    pub votes: Vec<(PublicKey, bool)>,
}

impl Proposal {
    /// Its status.
    pub fn status(&self) -> ProposalStatus {
        if self.passed.is_some() {
            ProposalStatus::Passed
        } else {
            ProposalStatus::Open
        }
    }
    /// Total voting power of its voters.
    pub fn total_power(&self) -> u64 {
        self.voters.iter().map(|(_, p)| p).sum()
    }
    /// Voting power it needs to pass: more than two thirds of its voters' power.
    pub fn quorum(&self) -> u64 {
        self.total_power() * 2 / 3 + 1
    }
    /// Voting power of the yes votes and of the no votes.
    pub fn tally(&self) -> (u64, u64) {
        let power = |k: &PublicKey| self.voters.iter().find(|(v, _)| v == k).map_or(0, |(_, p)| *p);
        let mut yes = 0;
        let mut no = 0;
        for (k, v) in &self.votes {
            if *v {
                yes += power(k);
            } else {
                no += power(k);
            }
        }
        (yes, no)
    }
    /// The last block in which it can still pass: [`ENACTMENT_DELAY`] blocks before its
    /// effective height.
    pub fn deadline(&self) -> u64 {
        self.effective.saturating_sub(ENACTMENT_DELAY)
    }
}

/// How a proposal left the state (the payload of a `gov-outcome` entry).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Passed, and applied at the end of the block before its effective height.
    Enacted = 1,
    /// Did not pass by its deadline.
    Expired = 2,
    /// Votes against it made passing impossible.
    Rejected = 3,
    /// Passed, but the state no longer allowed its action at its effective height (another
    /// change came first); nothing changed.
    Void = 4,
}

/// Canonical payload of a `gov-outcome` system entry: `proposal ‖ outcome`.
pub fn encode_outcome(proposal: &Hash, outcome: Outcome) -> Vec<u8> {
    let mut w = Writer::with_capacity(33);
    w.raw(proposal).u8(outcome as u8);
    w.finish()
}

/// Decodes a `gov-outcome` payload.
pub fn decode_outcome(bytes: &[u8]) -> Result<(Hash, Outcome), DecodeError> {
    let mut r = Reader::new(bytes);
    let id = r.array("outcome.proposal")?;
    let at = r.position();
    let o = match r.u8("outcome.outcome")? {
        1 => Outcome::Enacted,
        2 => Outcome::Expired,
        3 => Outcome::Rejected,
        4 => Outcome::Void,
        other => {
            return Err(r.invalid_at("outcome.outcome", at, format!("unknown outcome {other}")))
        }
    };
    r.finish()?;
    Ok((id, o))
}

/// A key rotation in the state: who the old key became, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rotation {
    /// The new key.
    #[schema(value_type = String)]
    pub new: PublicKey,
    /// The block that rotated it.
    pub height: u64,
}
