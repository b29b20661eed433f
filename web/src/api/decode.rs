//! Entries as the API shows them (the types live in `surplus_api`).

pub use surplus_api::ledger::{decode, EntryView};
