//! The Surplus node's library half: consensus integration and the order gossip network.
//!
//! The `surplus` binary (`main.rs`) is the node and its command-line tool. These two modules are
//! a library so that the fault tests can run a peer on the node's own network stack and the
//! fuzz targets can reach the decoders that read bytes from other nodes.

pub mod consensus;
pub mod p2p;

/// Milliseconds since the Unix epoch, by this machine's clock (the node's one clock reading).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
