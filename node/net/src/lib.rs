//! Surplus network: everything a node says to other nodes.
//!
//! - [`p2p`]: the order and checkpoint gossip on libp2p; one task owns the swarm, the rest talks
//!   to it through a cloneable [`p2p::Gossip`] client; every peer is rate limited and scored.
//! - [`gossip_batch`]: the data of a message on the orders topic (several entries framed).
//! - [`consensus`]: the adapter to the Malachite (Tendermint) engine: the application side of
//!   its channels, the wire codec, signing, and the chain of decided blocks in the store.
//! - [`snapfetch`]: snapshot state sync over libp2p: what a node serves ([`p2p::start_with`])
//!   and the [`snapfetch::SnapshotClient`] a node catching up fetches with.
//!
//! The node service (`surplus-service`) runs both; the fault tests run a peer on this same
//! stack, and the fuzz targets reach the decoders that read bytes from other nodes.

pub mod consensus;
pub mod env;
pub mod gossip_batch;
pub mod p2p;
pub mod snapfetch;

pub use env::{Clock, Env, ManualClock, SystemClock};

/// Milliseconds since the Unix epoch, by this machine's clock: the one reading of it, behind
/// [`SystemClock`]. Tools (the CLI, load and demo) call it; node code reads its [`Env`]'s clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
