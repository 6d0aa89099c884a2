//! An established HTTP connection, as the pool keeps it: how to send on it,
//! its protocol, how it was set up, and a signal when it ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::client::conn::{http1, http2};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::congestion::CongestionStatus;
use super::connect::LateConnection;
use super::pool::Protocol;
use super::race::AttemptSummary;
use super::tls::Handshake;

/// Why a request body could not be read to its end (the client of a
/// proxied upload went away, say); the request is aborted upstream.
pub type UploadError = Box<dyn std::error::Error + Send + Sync>;

/// The request body type of every connection: boxed, because a body is
/// either bytes in memory or a stream read while it is sent.
pub type ReqBody = BoxBody<Bytes, UploadError>;

/// Which HTTP version to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VersionPref {
    /// By ALPN (h2 preferred) over TLS; HTTP/1.1 over cleartext.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only (prior knowledge over cleartext).
    Http2,
    /// HTTP/3 only, over QUIC (https only).
    Http3,
}

/// A way to send requests on a connection.
pub enum Sender {
    /// One request at a time; moved to the request while it runs.
    Http1(http1::SendRequest<ReqBody>),
    /// Cloned for every request.
    Http2(http2::SendRequest<ReqBody>),
    /// Cloned for every request.
    Http3(H3Sender),
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // h3's sender has no Debug of its own.
        f.write_str(match self {
            Sender::Http1(_) => "Sender::Http1",
            Sender::Http2(_) => "Sender::Http2",
            Sender::Http3(_) => "Sender::Http3",
        })
    }
}

/// The sending half of an HTTP/3 connection.
pub type H3Sender = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// How the connection was set up (reported with the requests that used it).
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    /// The peer.
    pub remote: Option<SocketAddr>,
    /// DNS time.
    pub dns: Duration,
    /// TCP connect time (the race).
    pub connect: Duration,
    /// TLS handshake time (zero for cleartext).
    pub tls: Duration,
    /// TLS version, ALPN, resumption.
    pub tls_version: Option<String>,
    /// The negotiated ALPN.
    pub alpn: Option<String>,
    /// Whether the TLS session was resumed.
    pub resumed: bool,
    /// The race's attempts.
    pub attempts: Vec<AttemptSummary>,
    /// Addresses of the race's candidates.
    pub candidates: Vec<(u32, SocketAddr)>,
    /// Who planned the race: the connect policy's name, `builtin`, or the
    /// built-in plan standing in for a policy that faulted.
    pub planned_by: String,
    /// What controls congestion (QUIC connections; TCP's is the kernel's).
    pub congestion: Option<Arc<CongestionStatus>>,
}

/// A new connection.
#[derive(Debug)]
pub struct Established {
    /// Its sender.
    pub sender: Sender,
    /// Its protocol.
    pub protocol: Protocol,
    /// How it was set up.
    pub info: Arc<ConnectionInfo>,
    /// Fires when the connection ends.
    pub closed: oneshot::Receiver<()>,
    /// Connections of the same race that connected after it was won.
    pub late: Option<tokio::sync::mpsc::UnboundedReceiver<LateConnection<Secured>>>,
}

/// A TCP connection ready for HTTP: through TLS for https.
#[derive(Debug)]
pub enum Secured {
    /// Cleartext.
    Plain(TcpStream),
    /// After the TLS handshake.
    Tls(Box<Handshake<TcpStream>>),
}

impl Secured {
    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            Secured::Plain(s) => s.peer_addr().ok(),
            Secured::Tls(h) => h.stream.get_ref().0.peer_addr().ok(),
        }
    }
}
