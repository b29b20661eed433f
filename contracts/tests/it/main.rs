//! Integration tests of the state machine: model tests over random block sequences, every
//! refusal, credentials, and the audit replay over a real ledger store.

mod audit;
mod codes;
mod credentials;
mod golden;
mod governance;
mod helpers;
mod maintenance;
mod model;
mod regressions;
mod snapshot;
mod state_root;
mod strict;
mod supervision;
mod transitions;
