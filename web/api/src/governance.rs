//! Governance: the validator set with addresses, the parameters in force, the proposals open or
//! waiting for their height, rotated keys, and the sets each height was decided by.

use serde::{Deserialize, Serialize};
use surplus_contracts::{Action, Proposal, ProposalStatus, Validator};
use surplus_ledger::{Hash, PublicKey};
use surplus_market::{Class, Region};
use utoipa::ToSchema;

/// `GET /api/v1/governance`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GovernanceView {
    /// The chain id.
    pub chain_id: String,
    /// The head's height: the state this describes is after that block.
    pub height: u64,
    /// Fewest blocks between the block in which a proposal passes and its effective height;
    /// a proposal must pass by its effective height minus this.
    pub enactment_delay: u64,
    /// The validator set in force for the next block, in its order.
    pub validators: Vec<Validator>,
    /// Its total voting power.
    pub total_power: u64,
    /// Voting power that decides a block or passes a proposal proposed now.
    pub quorum: u64,
    /// The parameters in force.
    pub params: ParamsView,
    /// The proposals open or passed and waiting for their height, by id.
    pub proposals: Vec<ProposalView>,
    /// Rotated keys, by old key.
    pub rotations: Vec<RotationView>,
    /// Every validator set the ledger put in force, from genesis on: the height from which
    /// each decided blocks.
    pub history: Vec<SetPeriod>,
}

/// The parameters in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ParamsView {
    /// The account that receives the consortium fee.
    #[schema(value_type = String)]
    pub treasury: PublicKey,
    /// Fee on payments to providers, basis points.
    pub fee_bps: u16,
    /// Penalty of a provider that ends a lease early, basis points of the refund.
    pub penalty_bps: u16,
    /// Resource classes.
    #[schema(value_type = Vec<Object>)]
    pub classes: Vec<Class>,
    /// Regions.
    #[schema(value_type = Vec<Object>)]
    pub regions: Vec<Region>,
    /// The consensus parameters governance set (batch interval, block limits); absent until it
    /// sets them, while each node uses its own configuration.
    pub consensus: Option<surplus_contracts::ConsensusParams>,
}

/// A proposal with its tally.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProposalView {
    /// Its id: the id of its `gov-propose` entry.
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub id: Hash,
    /// Open (taking votes) or passed (waiting for its effective height).
    pub status: ProposalStatus,
    /// The validator that proposed it.
    #[schema(value_type = String)]
    pub proposer: PublicKey,
    /// What it changes.
    pub action: Action,
    /// The block that proposed it.
    pub height: u64,
    /// The first block under the change.
    pub effective: u64,
    /// The last block it can pass in.
    pub deadline: u64,
    /// The block it passed in (passed only).
    pub passed: Option<u64>,
    /// Who may vote, with their powers (the set of the block that proposed it).
    pub voters: Vec<VoterView>,
    /// Voting power of the yes votes.
    pub yes_power: u64,
    /// Voting power of the no votes.
    pub no_power: u64,
    /// Voting power it needs to pass.
    pub quorum: u64,
}

/// A voter of a proposal and its vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VoterView {
    /// The validator.
    #[schema(value_type = String)]
    pub key: PublicKey,
    /// Its voting power on this proposal.
    pub power: u64,
    /// Its vote: `true` yes, `false` no, absent if it has not voted.
    pub vote: Option<bool>,
}

impl From<&Proposal> for ProposalView {
    fn from(p: &Proposal) -> Self {
        let (yes_power, no_power) = p.tally();
        let voters = p
            .voters
            .iter()
            .map(|(key, power)| VoterView {
                key: *key,
                power: *power,
                vote: p.votes.iter().find(|(k, _)| k == key).map(|(_, v)| *v),
            })
            .collect();
        Self {
            id: p.id,
            status: p.status(),
            proposer: p.proposer,
            action: p.action.clone(),
            height: p.height,
            effective: p.effective,
            deadline: p.deadline(),
            passed: p.passed,
            voters,
            yes_power,
            no_power,
            quorum: p.quorum(),
        }
    }
}

/// A rotated key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RotationView {
    /// The old key (it signs nothing more).
    #[schema(value_type = String)]
    pub old: PublicKey,
    /// The key it was rotated to.
    #[schema(value_type = String)]
    pub new: PublicKey,
    /// The block that rotated it.
    pub height: u64,
}

/// A validator set and the first height it decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetPeriod {
    /// The first block it decided (0 for the genesis set, which decided every block from 1).
    pub from_height: u64,
    /// Validator keys, in the set's order.
    #[schema(value_type = Vec<String>)]
    pub validators: Vec<PublicKey>,
    /// Their voting powers.
    pub powers: Vec<u64>,
}

/// `POST /api/v1/operator/votes`: the node votes on a proposal with its own key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorVote {
    /// The proposal id (hex).
    pub proposal: String,
    /// Yes or no.
    pub yes: bool,
}
