//! Why a fetch failed: one enum a caller can match on, each variant one
//! line naming what was wrong (and, past the URL, the origin).

use std::time::Duration;

use crate::net::dns::DnsError;
pub use crate::net::error::LeaseError;
use crate::net::quic::QuicConfigError;
use crate::net::tls::TlsConfigError;

/// Why a fetch failed. Every variant is one line a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not an http(s) URL with a host.
    #[error("invalid URL {url:?}: {why}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// A request header is invalid.
    #[error("invalid header {0}")]
    InvalidHeader(String),
    /// No connection: DNS, the connect policy, every connection attempt,
    /// TLS or the HTTP handshake failed (see [`LeaseError`] and
    /// [`crate::net::error::DialError`] for which).
    #[error(transparent)]
    Connect(#[from] LeaseError),
    /// The server's response was not valid HTTP, or the connection broke.
    #[error("HTTP error from {origin}: {source}")]
    Http {
        /// The origin.
        origin: String,
        /// What the HTTP implementation reported.
        source: HttpError,
    },
    /// No response headers within the timeout.
    #[error("no response from {origin} within {timeout:?}")]
    Timeout {
        /// The origin.
        origin: String,
        /// The timeout.
        timeout: Duration,
    },
    /// An extension cancelled the request (or failed closed).
    #[error("blocked by extension {extension}: {reason}")]
    Blocked {
        /// The extension.
        extension: String,
        /// Its reason.
        reason: String,
    },
    /// An extension redirected a `CONNECT`: a tunnel goes where the client
    /// asked or nowhere.
    #[error("an extension redirected a CONNECT tunnel to {to}: tunnels cannot be redirected")]
    TunnelRedirected {
        /// Where the extension wanted it to go.
        to: String,
    },
    /// Extensions redirected the request too many times.
    #[error("too many extension redirects (more than {0}) starting from {1}")]
    TooManyRedirects(usize, String),
    /// The host could not be built.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// Through the daemon ([`crate::client::Client`]): the daemon or the
    /// way to it failed, or it refused the request.
    #[error(transparent)]
    Daemon(#[from] crate::client::DaemonError),
}

impl FetchError {
    /// Whether the fetch ran out of time (DNS, every connection attempt,
    /// or the response head): a proxy answers 504 rather than 502.
    pub fn is_timeout(&self) -> bool {
        match self {
            FetchError::Timeout { .. } => true,
            FetchError::Connect(LeaseError::Dial(e)) => e.is_timeout(),
            FetchError::Daemon(e) => e.is_timeout(),
            _ => false,
        }
    }
}

/// What the HTTP implementation of a connection reported, kept whole so
/// that a caller can look at its kind.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// HTTP/1.1 or HTTP/2 (hyper).
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    /// HTTP/3 (h3): the request's stream failed.
    #[error(transparent)]
    H3(#[from] h3::error::StreamError),
    /// The request body could not be read to its end (a streamed upload's
    /// source failed); HTTP/1.1 and HTTP/2 report it as a hyper error.
    #[error("reading the request body: {0}")]
    Upload(#[source] crate::net::connection::UploadError),
}

/// Why a host could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The DNS configuration is unusable.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// The TLS configuration is unusable.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// QUIC could not be set up with this TLS configuration.
    #[error(transparent)]
    Quic(#[from] QuicConfigError),
    /// The thread that saves the Alt-Svc file could not be started.
    #[error("cannot start the Alt-Svc file writer: {0}")]
    AltSvcWriter(std::io::Error),
}
