//! A client connection as the request handler sees it: where it comes
//! from, its place among the daemon's `max-clients`, and how many of its
//! requests are in flight (a connection with one in flight is not idle).
//! The server puts one in every request's extensions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::activity::{Activity, Answering, Open};

/// Where a client connected from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client's address.
    Tcp(SocketAddr),
    /// A client on the Unix socket.
    Unix,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix => f.write_str("unix"),
        }
    }
}

/// One client connection; clones share it. Its place among `max-clients`
/// is given back when the last clone is dropped: the connection and, for
/// a `CONNECT`, the tunnel that outlives it.
#[derive(Debug, Clone)]
pub struct ClientConn {
    /// Where it comes from.
    pub peer: Peer,
    busy: Arc<AtomicUsize>,
    _slot: Option<Arc<OwnedSemaphorePermit>>,
    // Counted among the daemon's open connections until the last clone
    // goes; requests are counted through `busy`.
    activity: Option<(Arc<Activity>, Arc<Open>)>,
}

impl ClientConn {
    /// A connection from `peer` holding `slot`.
    pub fn new(peer: Peer, slot: Option<OwnedSemaphorePermit>) -> Self {
        ClientConn {
            peer,
            busy: Arc::new(AtomicUsize::new(0)),
            _slot: slot.map(Arc::new),
            activity: None,
        }
    }

    /// Counts this connection and its requests in `activity`.
    pub fn counted_in(mut self, activity: &Arc<Activity>) -> Self {
        self.activity = Some((activity.clone(), Arc::new(activity.connection())));
        self
    }

    /// The count of requests in flight, for [`super::idle::IdleIo`].
    pub fn busy_count(&self) -> Arc<AtomicUsize> {
        self.busy.clone()
    }

    /// A request in flight until the guard is dropped.
    pub fn busy(&self) -> InFlight {
        self.busy.fetch_add(1, Ordering::Relaxed);
        InFlight {
            busy: self.busy.clone(),
            _counted: self.activity.as_ref().map(|(a, _)| a.request()),
        }
    }
}

/// A request in flight on a connection (and in the daemon's activity).
#[derive(Debug)]
pub struct InFlight {
    busy: Arc<AtomicUsize>,
    _counted: Option<Answering>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_in_flight_are_counted_and_the_slot_held_by_every_clone() {
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let conn = ClientConn::new(
            Peer::Tcp("127.0.0.1:5000".parse().unwrap()),
            Some(slots.clone().try_acquire_owned().unwrap()),
        );
        let count = conn.busy_count();
        let (a, b) = (conn.busy(), conn.busy());
        assert_eq!(count.load(Ordering::Relaxed), 2);
        drop((a, b));
        assert_eq!(count.load(Ordering::Relaxed), 0);
        let tunnel = conn.clone();
        drop(conn);
        assert_eq!(slots.available_permits(), 0);
        drop(tunnel);
        assert_eq!(slots.available_permits(), 1);
        assert_eq!(Peer::Unix.to_string(), "unix");
    }
}
