//! Surplus node service: one node of a consortium as a library.
//!
//! - [`runtime`]: runs a node from its data dir: gossip and consensus (`surplus-net`), the
//!   mempool, the journal of acknowledged entries and their receipts, the provider's duties
//!   (offers, provisioning hooks, credential grants) and the HTTP API (`surplus-web`).
//! - [`config`], [`genesis_cmd`], [`inventory`]: the files an operator writes, read and checked
//!   with errors that name the field; [`keyfile`]: key files; [`devnet_file`]: `devnet.json`.
//! - [`mempool`], [`receipts`]: the bounded pool of admitted entries and what became of each.
//!
//! The `surplus` binary parses arguments and calls this crate.

pub mod config;
pub mod devnet_file;
pub mod genesis_cmd;
pub mod inventory;
mod journal;
pub mod keyfile;
pub mod mempool;
pub mod provision;
pub mod receipts;
pub mod runtime;
mod turnwatch;
mod webdata;

pub use surplus_net::{consensus, now_ms, p2p};
