//! Why a fetch through the daemon failed where an in-process fetch has no
//! counterpart: the daemon is missing, would not start, broke the
//! connection, or refused the request for a reason the client cannot map
//! back to a [`FetchError`](crate::host::FetchError) variant.

use std::path::PathBuf;
use std::time::Duration;

use http::StatusCode;

use crate::wiring::WiringError;

/// A failure of the daemon or of the way to it. Each names the socket.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Nobody listens on the socket and the client may not start a daemon.
    #[error("no sockhost daemon listens on {}: {source} (start one with `sockhost serve --unix {}`)", .socket.display(), .socket.display())]
    NotRunning {
        /// The socket.
        socket: PathBuf,
        /// What connecting said.
        source: std::io::Error,
    },
    /// The socket exists but could not be connected to (say, permissions).
    #[error("cannot connect to the sockhost daemon at {}: {source}", .socket.display())]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The daemon did not speak HTTP/2.
    #[error("the sockhost daemon at {} did not complete an HTTP/2 handshake: {source}", .socket.display())]
    Handshake {
        /// The socket.
        socket: PathBuf,
        /// What hyper said.
        source: hyper::Error,
    },
    /// The daemon's program could not be run.
    #[error("cannot start the sockhost daemon {}: {source}", .program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A daemon the client started exited before it listened.
    #[error("the sockhost daemon started for {} exited ({status}) before listening", .socket.display())]
    ExitedAtStart {
        /// The socket.
        socket: PathBuf,
        /// How it exited.
        status: std::process::ExitStatus,
    },
    /// A daemon the client started did not listen in time.
    #[error("the sockhost daemon started for {} did not listen within {waited:?}", .socket.display())]
    StartTimeout {
        /// The socket.
        socket: PathBuf,
        /// How long the client waited.
        waited: Duration,
    },
    /// The connection to the daemon broke while this request was on it
    /// (the daemon died, say): the next fetch reconnects or relaunches.
    #[error("the connection to the sockhost daemon at {} broke: {source}", .socket.display())]
    Broken {
        /// The socket.
        socket: PathBuf,
        /// What hyper said.
        source: hyper::Error,
    },
    /// The daemon crashed too often, and the client has no in-process
    /// fallback.
    #[error("the sockhost daemon crashed {crashes} times within {window:?}; giving up on it (no in-process fallback configured)")]
    GaveUp {
        /// Crashes within the window.
        crashes: usize,
        /// The window.
        window: Duration,
    },
    /// The in-process host to fall back to could not be built.
    #[error("cannot build the in-process host to fall back to: {0}")]
    Fallback(Box<WiringError>),
    /// The daemon answered with a refusal of its own (a status and a
    /// one-line reason) that has no [`FetchError`](crate::host::FetchError)
    /// variant of its own.
    #[error("the sockhost daemon refused the request: {status}: {reason}")]
    Refused {
        /// The daemon's status (502, 504, …).
        status: StatusCode,
        /// The daemon's reason.
        reason: String,
    },
}

impl DaemonError {
    /// Whether the daemon said the fetch ran out of time (504).
    pub fn is_timeout(&self) -> bool {
        matches!(self, DaemonError::Refused { status, .. } if *status == StatusCode::GATEWAY_TIMEOUT)
    }
}
