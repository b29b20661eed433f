//! Integration tests of the ledger crate: store, audit, export, proofs, crash safety, golden
//! vectors and the Merkle tree against public vectors and another implementation.

mod audit;
mod crash;
mod golden;
mod merkle;
mod store;
