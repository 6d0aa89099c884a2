//! The daemon's limits on its clients, with their defaults
//! (`[serve.limits]` in the config file).

use std::time::Duration;

/// Client connections served at once unless configured otherwise.
pub const DEFAULT_MAX_CLIENTS: usize = 1024;
/// How long a client connection with no request in flight may stay
/// silent before it is closed.
pub const DEFAULT_KEEP_ALIVE_IDLE: Duration = Duration::from_secs(60);
/// How long a `CONNECT` tunnel may carry no byte either way before it is
/// closed.
pub const DEFAULT_TUNNEL_IDLE: Duration = Duration::from_secs(300);

/// Limits on the daemon's clients. The header read timeout defaults to
/// [`super::server::HEADER_READ_TIMEOUT`]; request bodies have no limit
/// unless one is set (they stream, so their size costs no memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Client connections served at once (a `CONNECT` tunnel keeps its
    /// connection's place). Over it, the daemon stops accepting until one
    /// ends: new connections wait in the kernel's listen queue.
    pub max_clients: usize,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// A client connection (HTTP/1.1 or h2c) with no request in flight and
    /// no byte either way for this long is closed.
    pub keep_alive_idle: Duration,
    /// A `CONNECT` tunnel with no byte either way for this long is closed.
    pub tunnel_idle: Duration,
    /// The largest request body forwarded; a larger one gets 413.
    pub max_request_body: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clients: DEFAULT_MAX_CLIENTS,
            header_read_timeout: super::server::HEADER_READ_TIMEOUT,
            keep_alive_idle: DEFAULT_KEEP_ALIVE_IDLE,
            tunnel_idle: DEFAULT_TUNNEL_IDLE,
            max_request_body: None,
        }
    }
}
