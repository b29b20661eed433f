//! The Malachite `Context`: our heights, values, votes, proposals and validators.
//!
//! The engine only ever sees a block's header hash (the [`Value`]); the block itself travels as a
//! proposal part and is stored by the application. Votes are signed over the ledger's own
//! [`surplus_ledger::vote_bytes`], so a quorum of the engine's precommits *is* the ledger's commit
//! certificate.

use std::fmt;

use bytes::Bytes;
use malachitebft_app_channel::app::types::core::{
    self as core, Context, NilOrVal, Round, SignedExtension, ValidatorSet as _, VoteType,
};
use malachitebft_signing_ed25519::{Ed25519, PublicKey as ConsensusKey};
use surplus_ledger::{encoding::Writer, Hash, PublicKey};

/// Domain tag of the bytes a proposer signs for a proposal.
pub const PROPOSAL_TAG: &[u8] = b"surplus/proposal/v1";

/// A validator's address: its ed25519 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub PublicKey);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &hex::encode(self.0 .0)[..12])
    }
}

impl core::Address for Address {}

/// A block height (genesis is 0; consensus starts at 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl core::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// The id of a proposed block: its header hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValueId(pub Hash);

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &hex::encode(self.0)[..12])
    }
}

/// What consensus agrees on: a block, named by its header hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Value(pub Hash);

impl core::Value for Value {
    type Id = ValueId;

    fn id(&self) -> ValueId {
        ValueId(self.0)
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// Height voted at.
    pub height: Height,
    /// Round voted in.
    pub round: Round,
    /// The block voted for, or nil.
    pub value: NilOrVal<ValueId>,
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// The voter.
    pub validator: Address,
}

/// Round number as it enters signed bytes (`Round::Nil` never does in a valid message).
pub fn round_u32(round: Round) -> u32 {
    round.as_u32().unwrap_or(u32::MAX)
}

impl Vote {
    /// The bytes a validator signs: the ledger's vote preimage.
    pub fn sign_bytes(&self, chain_id: &str) -> Vec<u8> {
        let kind = match self.vote_type {
            VoteType::Prevote => surplus_ledger::VoteKind::Prevote,
            VoteType::Precommit => surplus_ledger::VoteKind::Precommit,
        };
        let value = match &self.value {
            NilOrVal::Nil => None,
            NilOrVal::Val(v) => Some(&v.0),
        };
        surplus_ledger::vote_bytes(chain_id, self.height.0, round_u32(self.round), kind, value)
    }
}

impl core::Vote<Ctx> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<ValueId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<ValueId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.vote_type
    }
    fn validator_address(&self) -> &Address {
        &self.validator
    }
    fn extension(&self) -> Option<&SignedExtension<Ctx>> {
        None
    }
    fn take_extension(&mut self) -> Option<SignedExtension<Ctx>> {
        None
    }
    fn extend(self, _extension: SignedExtension<Ctx>) -> Self {
        self
    }
}

/// A proposal: the proposer names the block (by hash) it proposes for a height and round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The proposed block.
    pub value: Value,
    /// The round in which the value was locked, or nil.
    pub pol_round: Round,
    /// The proposer.
    pub proposer: Address,
}

impl Proposal {
    /// The bytes a proposer signs: tag, chain id, height, round, proof-of-lock round, block hash.
    pub fn sign_bytes(&self, chain_id: &str) -> Vec<u8> {
        let mut w = Writer::with_capacity(128);
        w.tag(PROPOSAL_TAG)
            .short_bytes(chain_id.as_bytes())
            .u64(self.height.0)
            .u32(round_u32(self.round))
            .u64(self.pol_round.as_i64() as u64)
            .raw(&self.value.0)
            .raw(&self.proposer.0 .0);
        w.finish()
    }
}

impl core::Proposal<Ctx> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &Value {
        &self.value
    }
    fn take_value(self) -> Value {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// The one part of a proposal stream: the whole block, without its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalPart {
    /// Height.
    pub height: Height,
    /// Round the block is proposed in.
    pub round: Round,
    /// The proposer that streams it.
    pub proposer: Address,
    /// `Block::encode()` of the block with an empty certificate.
    pub block: Bytes,
}

impl core::ProposalPart<Ctx> for ProposalPart {
    fn is_first(&self) -> bool {
        true
    }
    fn is_last(&self) -> bool {
        true
    }
}

/// A validator and its voting power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Its address.
    pub address: Address,
    /// Its key in the engine's signing scheme.
    pub public_key: ConsensusKey,
    /// Its voting power (1 for every genesis validator).
    pub power: u64,
}

impl core::Validator<Ctx> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &ConsensusKey {
        &self.public_key
    }
    fn voting_power(&self) -> u64 {
        self.power
    }
}

/// The validator set of a height, in the ledger's order (a certificate names validators by this
/// index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    /// Validators.
    pub validators: Vec<Validator>,
}

impl ValidatorSet {
    /// The set of `keys`, each with voting power 1; fails on a key that is not a valid ed25519
    /// point.
    pub fn new(keys: &[PublicKey]) -> Result<Self, String> {
        Self::weighted(keys.iter().map(|k| (*k, 1)))
    }

    /// The engine's form of a ledger validator set.
    pub fn from_ledger(set: &surplus_ledger::ValidatorSet) -> Result<Self, String> {
        Self::weighted(set.validators.iter().copied().zip(set.powers.iter().copied()))
    }

    fn weighted(keys: impl Iterator<Item = (PublicKey, u64)>) -> Result<Self, String> {
        let validators = keys
            .map(|(k, power)| {
                ConsensusKey::from_bytes(k.0)
                    .map(|public_key| Validator { address: Address(k), public_key, power })
                    .map_err(|e| format!("validator key {k}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { validators })
    }

    /// Index of `address` in the set.
    pub fn index_of(&self, address: &Address) -> Option<usize> {
        self.validators.iter().position(|v| v.address == *address)
    }
}

impl core::ValidatorSet<Ctx> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> u64 {
        self.validators.iter().map(|v| v.power).sum()
    }
    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators.iter().find(|v| v.address == *address)
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// Our Malachite context.
#[derive(Clone, Debug, Default)]
pub struct Ctx;

impl Context for Ctx {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = core::LinearTimeouts;
    type Value = Value;
    type Vote = Vote;
    type Extension = Bytes;
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(
        &self,
        set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        let n = set.count().max(1);
        let r = round.as_u32().unwrap_or(0) as u64;
        let index = (height.0.saturating_sub(1).wrapping_add(r) % n as u64) as usize;
        // The set is never empty: genesis validation refuses an empty validator list.
        &set.validators[index]
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: Value,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal { height, round, value, pol_round, proposer: address }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<ValueId>,
        address: Address,
    ) -> Vote {
        Vote { height, round, value: value_id, vote_type: VoteType::Prevote, validator: address }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<ValueId>,
        address: Address,
    ) -> Vote {
        Vote { height, round, value: value_id, vote_type: VoteType::Precommit, validator: address }
    }
}
