//! Integration tests of the store crate: the store, the audit over stores and export files,
//! crash safety and the golden vectors of the ledger format.

mod audit;
mod base;
mod crash;
mod golden;
mod store;
mod validators;
