//! Open HTTP connections: at most [`Limits::max_connections`] in all and
//! [`Limits::max_connections_per_ip`] from one client address. Each connection is counted from
//! its accept (`HttpServer::on_connect`) until it closes; one over a limit is shut down at once,
//! before it holds the descriptor any longer, so idle connections from one client cannot take
//! the descriptors the node needs for others, its ledger, its hooks and its peers.

use std::any::Any;
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::Extensions;

use crate::limits::Limits;

/// The count of open connections, in all and by client address.
#[derive(Debug)]
pub(crate) struct Connections {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<Open>,
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// Kept in a connection's data while it is open; dropped when it closes.
struct Held {
    conns: Arc<Connections>,
    ip: IpAddr,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.conns.state.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_ip.remove(&self.ip);
            }
        }
    }
}

impl Connections {
    pub(crate) fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Self {
            max_total: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
            state: Mutex::default(),
            refused: AtomicU64::new(0),
        })
    }

    /// Counts a new connection from `ip`, or `None` if it is over a limit (counted refused).
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Held> {
        let mut open = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = open.by_ip.get(&ip).copied().unwrap_or(0);
        if open.total >= self.max_total || (self.max_per_ip > 0 && from_ip >= self.max_per_ip) {
            drop(open);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        open.total += 1;
        *open.by_ip.entry(ip).or_insert(0) += 1;
        Some(Held { conns: self.clone(), ip })
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Connections shut down at accept because they were over a limit, since start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The `on_connect` hook: counts the connection, or shuts it down (with a reset, so the
    /// descriptor is freed at once) when it is over a limit.
    pub(crate) fn on_connect(self: &Arc<Self>, io: &dyn Any, data: &mut Extensions) {
        let Some(stream) = io.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        let Ok(peer) = stream.peer_addr() else { return };
        match self.admit(peer.ip()) {
            Some(held) => {
                data.insert(held);
            }
            None => {
                let socket = socket2::SockRef::from(stream);
                let _ = socket.set_linger(Some(Duration::ZERO));
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_address_and_in_all_and_frees_on_close() {
        let conns = Connections::new(&Limits {
            max_connections: 5,
            max_connections_per_ip: 3,
            ..Limits::default()
        });
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap(), "::1".parse().unwrap());
        let from_a: Vec<Held> = (0..3).map(|_| conns.admit(a).unwrap()).collect();
        assert!(conns.admit(a).is_none(), "a fourth from one address");
        let from_b: Vec<Held> = (0..2).map(|_| conns.admit(b).unwrap()).collect();
        assert!(conns.admit(c).is_none(), "a sixth in all");
        assert_eq!((conns.open(), conns.refused()), (5, 2));
        drop(from_a);
        assert_eq!(conns.open(), 2);
        assert!(conns.admit(a).is_some(), "closed ones are freed");
        drop(from_b);
        assert_eq!(conns.open(), 0);
        assert!(conns.state.lock().unwrap().by_ip.is_empty(), "no address is remembered");

        let open = Connections::new(&Limits { max_connections_per_ip: 0, ..Limits::default() });
        let many: Vec<Held> = (0..100).map(|_| open.admit(a).unwrap()).collect();
        assert_eq!(many.len(), 100, "0: no limit per address");
    }
}
