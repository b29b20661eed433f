//! Errors of the state machine.

use crate::state::Refusal;

/// Errors of the state machine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The genesis configuration or block is not valid.
    #[error("genesis: {0}")]
    Genesis(String),
    /// A block cannot be applied (height, time).
    #[error("block: {0}")]
    Block(String),
    /// A user entry of a block under validation is refused; the block is invalid.
    #[error("entry {index} refused: {refusal}")]
    Refused {
        /// Index of the entry among the block's user entries.
        index: usize,
        /// Why.
        refusal: Refusal,
    },
}

/// Why a state cannot be rebuilt from its items ([`crate::State::from_items`]) or a block maker
/// resumed from it ([`crate::BlockMaker::resume`]): the items are not those of a state that
/// blocks could have made, or they do not belong to the header given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// No item of kind `chain`.
    #[error("no chain item")]
    NoChain,
    /// Two items of kind `chain`.
    #[error("two chain items")]
    TwoChains,
    /// The same item (kind and natural key) is given twice.
    #[error("{kind} item {key} appears twice")]
    Duplicate {
        /// Its kind's name.
        kind: &'static str,
        /// The start of its natural key, hex.
        key: String,
    },
    /// One item does not decode, is not in its canonical form, or its key does not match it.
    #[error("{kind} item{}: {reason}", if key.is_empty() { String::new() } else { format!(" {key}") })]
    Item {
        /// Its kind's name.
        kind: &'static str,
        /// The start of its natural key, hex (empty for the chain item).
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The items decode one by one but do not make a consistent state together.
    #[error("inconsistent state: {0}")]
    Inconsistent(String),
    /// The state, or the Merkle frontier, does not match the header it is to continue from.
    #[error("the {field} of the header does not match: {reason}")]
    Header {
        /// The header's field.
        field: &'static str,
        /// What was found instead.
        reason: String,
    },
}
