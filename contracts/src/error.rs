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
