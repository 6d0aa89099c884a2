//! What the network stack tells about its work: DNS queries, connection
//! attempts and their results, TLS handshakes. The stack publishes through
//! a [`NetObserver`] and never waits on it; the host's telemetry bus is the
//! observer that turns these into probe events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::plan::Transport;
use super::pool::OriginKey;

/// One thing the network stack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// A DNS query answered (or failed).
    Dns {
        /// The name asked for.
        name: String,
        /// `A`, `AAAA`, `HTTPS`, or `A/AAAA` for a failed resolution.
        record_type: &'static str,
        /// Records in the answer.
        answers: u32,
        /// How long it took.
        elapsed: Duration,
        /// Whether the resolver answered it without asking a name server.
        cached: bool,
        /// The failure, if it failed for another reason than "no records".
        error: Option<String>,
    },
    /// A connection attempt started.
    ConnectAttempt {
        /// Its transport.
        transport: Transport,
        /// The peer.
        addr: SocketAddr,
    },
    /// A connection attempt ended.
    ConnectResult {
        /// Its transport.
        transport: Transport,
        /// The peer.
        addr: SocketAddr,
        /// How long it ran.
        elapsed: Duration,
        /// `None` when it connected; else how it ended.
        error: Option<&'static str>,
    },
    /// A TLS handshake over TCP ended.
    Tls {
        /// `TLSv1.3` or `TLSv1.2`; empty when it failed.
        version: String,
        /// The negotiated ALPN.
        alpn: Option<String>,
        /// Whether the session was resumed.
        resumed: bool,
        /// How long it took.
        elapsed: Duration,
        /// The failure.
        error: Option<String>,
    },
}

/// Receives what the network stack did. Implementations must not block:
/// they are called on the connection path.
pub trait NetObserver: Send + Sync + std::fmt::Debug {
    /// Whether anyone listens (when not, events are not even built).
    fn is_active(&self) -> bool;

    /// One event, about `origin` when it concerns one.
    fn observe(&self, origin: Option<&OriginKey>, event: NetEvent);
}

/// An observer that listens to nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unobserved;

impl NetObserver for Unobserved {
    fn is_active(&self) -> bool {
        false
    }

    fn observe(&self, _: Option<&OriginKey>, _: NetEvent) {}
}

/// A shared observer.
pub type SharedObserver = Arc<dyn NetObserver>;
