//! The open-file limit. Every socket, ledger file and hook pipe takes a descriptor; a node that
//! runs out cannot accept, write or provision. At start the node raises its soft limit to the
//! hard one where the system allows, keeps a reserve for its ledger, hooks and peers, and
//! serves at most what is left to HTTP clients (`[http] max_connections` is lowered to fit).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors kept for everything but HTTP, beyond two per allowed peer connection: the
/// ledger's and state's files, the journal, snapshots, hook pipes and the runtime.
pub const RESERVE: u64 = 256;

/// Fewest HTTP connections a node starts with.
pub const MIN_HTTP: u64 = 32;

/// Largest soft limit the node asks for when the hard limit is unlimited.
const CEILING: u64 = 1 << 20;

/// The soft open-file limit before and after raising it to the hard limit (or [`CEILING`]).
/// A refused raise leaves it as it was.
pub fn raise_limit() -> (u64, u64) {
    let now = getrlimit(Resource::Nofile);
    let before = now.current.unwrap_or(CEILING);
    let hard = now.maximum.unwrap_or(CEILING).min(CEILING);
    if hard > before {
        let raised = Rlimit { current: Some(hard), maximum: now.maximum };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return (before, hard);
        }
    }
    (before, before)
}

/// HTTP connections to allow with `limit` descriptors, `peers` allowed peer connections and
/// `configured` asked for: at most what the reserve leaves, or an error that says what to do.
pub fn http_connections(limit: u64, peers: u32, configured: u32) -> Result<usize, String> {
    let reserve = RESERVE + 2 * u64::from(peers);
    let room = limit.saturating_sub(reserve);
    if room < MIN_HTTP {
        return Err(format!(
            "the open-file limit is {limit}: the node keeps {reserve} descriptors for its ledger, \
             hooks and {peers} peer connections ([p2p] max_connections) and needs at least \
             {MIN_HTTP} more for HTTP clients; raise the limit (`ulimit -n 4096` in the shell \
             that starts it, or LimitNOFILE=65536 in its systemd unit) or lower \
             [p2p] max_connections"
        ));
    }
    Ok(usize::try_from(room.min(u64::from(configured))).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_gets_what_the_reserve_leaves() {
        // The usual 1,024 with 128 peers: 512 for HTTP, under the 1,024 asked for.
        assert_eq!(http_connections(1024, 128, 1024), Ok(512));
        assert_eq!(http_connections(65_536, 128, 1024), Ok(1024));
        let e = http_connections(500, 128, 1024).unwrap_err();
        assert!(e.contains("open-file limit is 500") && e.contains("ulimit -n"), "{e}");
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let (before, after) = raise_limit();
        assert!(after >= before);
        let now = getrlimit(Resource::Nofile);
        assert_eq!(now.current, Some(after));
        assert_eq!(now.maximum.unwrap_or(CEILING).min(CEILING), after, "soft is now hard");
    }
}
