//! Surplus contracts: the deterministic state machine applied to each decided block.
//!
//! - [`Genesis`]: validators, [`Params`] (catalogue, treasury, fee and penalty rates) and
//!   initial balances, recorded as the genesis block's entries.
//! - [`State::apply_block`]: settles elapsed lease hours, applies transfers, lease transitions
//!   and credential grants ([`Tx`]), runs the market's auction, turns fills into [`Lease`]s with
//!   escrow, and returns the block's full entry list and the state root.
//! - [`State::precheck`]: admission of a user entry against the committed state, with the
//!   state machine's own rules; every [`Refusal`] has a stable [`Code`] (the API's one
//!   vocabulary of refusals, with HTTP status and what to do).
//! - [`governance`]: the validator set with powers and addresses, proposals that change it or
//!   the parameters by a two-thirds vote, and key rotations (`docs/governance.md`).
//! - [`provider`]: what a provider's node must do, as pure functions of the state: the offers
//!   that keep each pool offered exactly once, the leases to provision, grant or end.
//! - [`credential`]: mint, attenuate and verify the Biscuit token of a lease.
//! - [`Replay`]: the audit hook that re-executes a ledger block by block; [`BlockMaker`] builds
//!   blocks the same way a proposer does.
//! - [`State::from_items`]: the state rebuilt from its state-root items ([`State::items`]), for
//!   snapshots and state sync; [`BlockMaker::resume`] continues making blocks after it.
//!
//! Pure and deterministic: time is the block's; randomness (token keys) is an argument.
#![warn(clippy::unwrap_used)]

mod audit;
pub mod credential;
mod error;
mod genesis;
pub mod governance;
pub mod maintenance;
mod precheck;
pub mod provider;
mod refusal;
pub mod root;
pub mod sealed;
mod state;
pub mod supervision;
mod tx;
mod verified;

#[cfg(feature = "test-utils")]
pub mod testutil;
pub use audit::{BlockMaker, Replay};
pub use error::{Error, RestoreError};
pub use genesis::{Allocation, Genesis, Params, BPS};
pub use governance::{
    Action, ConsensusParams, Outcome, Proposal, ProposalStatus, Rotation, Validator,
};
pub use precheck::{Admitted, ADMISSION_HORIZON_MS, MAX_PAYLOAD, MAX_SEQ_AHEAD};
pub use refusal::Code;
pub use state::{Account, Applied, Grant, Lease, LeaseStatus, Mode, Refusal, Segment, State};
pub use surplus_state::drop_in_background;
pub use tx::{
    decode_fill, decode_revocation, encode_fill, encode_revocation, RevocationId, Settlement,
    SettlementReason, Tx, MAX_REVOCATION_IDS, MAX_REVOCATION_ID_LEN,
};
pub use verified::VerifiedIds;
