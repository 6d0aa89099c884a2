//! Why a fetch failed: one enum a caller can match on, each variant one
//! line naming what was wrong (and, past the URL, the origin).

use std::time::Duration;

use crate::net::dns::DnsError;
use crate::net::tls::TlsConfigError;

/// What `Manager::lease` fails with: the one place that names it, so that
/// a typed dial error replaces the text by changing this line.
pub type LeaseError = String;

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
    /// DNS, connection or TLS failed.
    #[error("{0}")]
    Connect(LeaseError),
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
    /// Extensions redirected the request too many times.
    #[error("too many extension redirects (more than {0}) starting from {1}")]
    TooManyRedirects(usize, String),
    /// The host could not be built.
    #[error(transparent)]
    Setup(#[from] SetupError),
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
    /// QUIC could not be set up (its socket or its TLS configuration).
    #[error("{0}")]
    Quic(String),
    /// The thread that saves the Alt-Svc file could not be started.
    #[error("cannot start the Alt-Svc file writer: {0}")]
    AltSvcWriter(std::io::Error),
}
