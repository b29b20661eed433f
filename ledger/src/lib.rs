//! Surplus ledger: the append-only, hash-chained, auditable record of every trade.
//!
//! - [`Block`] = [`Header`] + typed [`Entry`]s + the consensus [`Certificate`] stored beside the
//!   header. Everything hashed or signed has one canonical encoding ([`encoding`]), specified in
//!   `docs/ledger-format.md`.
//! - [`merkle`]: an RFC 9162 Merkle log over all entries (blake3 in production), with
//!   inclusion and consistency proofs.
//! - [`verify()`]: the audit from genesis over any [`BlockSource`]. The sled-backed store and
//!   the export file live in the `surplus-store` crate, so that this crate stays pure.
//! - [`Checkpoint`]: a node's signed statement of its ledger, compared to detect forks.
//!
//! ```
//! use surplus_ledger::{testutil::TestChain, verify, NoHook, VecSource};
//!
//! let chain = TestChain::build("example", 3, 10);
//! let mut source = VecSource::new(chain.blocks.clone());
//! let report = verify(&mut source, &verify::Options::default(), &mut NoHook, &mut |_| {}).unwrap();
//! assert_eq!(report.entries, 30 + 9); // 30 orders; genesis holds validators and 8 allocations
//! ```
#![warn(clippy::unwrap_used)]

mod block;
pub mod bundle;
mod chain;
mod checkpoint;
mod crypto;
pub mod encoding;
pub mod merkle;
pub mod schema;
#[cfg(feature = "test-utils")]
pub mod testutil;
pub mod verify;

pub use block::hex_hash;
pub use block::{
    decode_head, validate_chain_id, vote_bytes, Auth, Block, Certificate, CertificateError,
    CommitSig, Entry, EntryKind, Header, ValidatorSet, VoteKind, HEADER_VERSION, MAX_BLOCK_ENTRIES,
    MAX_ENTRY_PAYLOAD, MAX_TOTAL_POWER, MAX_VALIDATORS,
};
pub use chain::{
    follow_set_changes, genesis_validators, set_change, Advance, ChainState, Checks, Failure,
    SetChange,
};
pub use checkpoint::{Checkpoint, Conflict, SignedCheckpoint};
pub use crypto::{
    parse_hex, verify_strict, verify_vote, BatchVerifier, PublicKey, SecretKey, Signature,
    SignatureError, VoteBatch,
};
pub use encoding::DecodeError;
pub use merkle::{
    prove_consistency, prove_inclusion, range_root, root, verify_consistency, verify_inclusion,
    Blake3, ConsistencyProof, Frontier, Hash, Hasher, InclusionProof, MemoryTree, NodeSource,
    ProofError, ProveError, Sha256,
};
pub use verify::{
    verify, BlockSource, Hook, HookFailure, NoHook, Options, Progress, Report, VecSource,
};
