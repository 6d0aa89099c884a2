//! Why a connection to an origin could not be made, by the kind of
//! failure, so a caller can answer each differently (a daemon maps them to
//! 502 or 504; a CLI prints one line). Every message names the origin or
//! the host.

use std::sync::Arc;

use super::connect::ConnectError;
use super::dns::DnsError;
use super::plan::PolicyFault;
use super::pool::OriginKey;
use super::quic::QuicError;
use super::tls::TlsError;

/// A dial failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The origin's name could not be resolved.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// HTTP/3 was forced for a cleartext origin.
    #[error("HTTP/3 needs an https origin, not {origin}")]
    Http3NeedsHttps {
        /// The origin.
        origin: OriginKey,
    },
    /// The connect policy faulted and its manifest fails closed.
    #[error("{origin}: connect policy {policy} failed and fails closed: {source}")]
    PolicyFailedClosed {
        /// The origin.
        origin: OriginKey,
        /// The policy's name.
        policy: String,
        /// Its fault.
        source: PolicyFault,
    },
    /// Every attempt failed; at least one got as far as TLS, which failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Every attempt failed: refused, unreachable or timed out.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The connection was made but its HTTP handshake failed.
    #[error("{origin}: {source}")]
    Handshake {
        /// The origin.
        origin: OriginKey,
        /// What failed.
        source: HandshakeError,
    },
}

impl DialError {
    /// Whether the failure was running out of time (a daemon answers 504)
    /// rather than a refusal or an error (502).
    pub fn is_timeout(&self) -> bool {
        match self {
            DialError::Dns(DnsError::Timeout { .. }) => true,
            DialError::Connect(e) => e.timed_out(),
            _ => false,
        }
    }
}

/// Why an HTTP handshake on a new connection failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// hyper's HTTP/1.1 handshake.
    #[error("HTTP/1.1 handshake failed: {0}")]
    Http1(#[source] hyper::Error),
    /// hyper's HTTP/2 handshake (the peer's preface and settings).
    #[error("HTTP/2 handshake failed: {0}")]
    Http2(#[source] hyper::Error),
    /// The h3 handshake over an established QUIC connection.
    #[error("HTTP/3 handshake failed: {0}")]
    Http3(#[source] h3::error::ConnectionError),
    /// The QUIC connection itself (reported when it fails after the race).
    #[error(transparent)]
    Quic(#[from] QuicError),
}

/// Why the pool could not lend a connection.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaseError {
    /// Connecting failed (shared by every request that waited for it).
    #[error(transparent)]
    Dial(#[from] Arc<DialError>),
    /// The connection manager is gone (the host is shutting down).
    #[error("the connection manager has stopped")]
    ManagerStopped,
    /// The connection closed between being chosen and being lent.
    #[error("a connection{} closed before it could be used", on(.0))]
    Vanished(Option<OriginKey>),
    /// The pool chose a connection whose sender was out on loan (the
    /// pool's bookkeeping and the manager's disagree).
    #[error("a connection{} was chosen while busy", on(.0))]
    Busy(Option<OriginKey>),
}

fn on(origin: &Option<OriginKey>) -> String {
    origin
        .as_ref()
        .map(|o| format!(" to {o}"))
        .unwrap_or_default()
}
