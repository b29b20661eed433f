//! Integration tests of the ledger crate: the Merkle tree against public vectors and another
//! implementation. The store, audit, export, crash and golden-vector tests are the store
//! crate's (`ledger/store/tests/it/`).

mod merkle;
mod strict;
