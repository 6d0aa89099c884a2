//! The client's one connection to the daemon: HTTP/2 with prior knowledge
//! over the Unix socket, every fetch a stream on it. Its driver runs on a
//! task of its own and marks the connection closed when it ends.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::error::DaemonError;
use super::request::DaemonBody;
use crate::net::windows::STREAM_WINDOW;

/// HTTP/2's largest flow-control window (RFC 9113, 6.9.1).
const MAX_WINDOW: u32 = (1 << 31) - 1;

/// An HTTP/2 connection to the daemon.
#[derive(Debug)]
pub(crate) struct Connection {
    pub sender: SendRequest<DaemonBody>,
    closed: Arc<AtomicBool>,
}

/// Why no connection was made.
#[derive(Debug)]
pub(crate) enum ConnectFailure {
    /// Nobody listens: no socket file, or one a dead daemon left.
    Absent(std::io::Error),
    /// Something else (the error names the socket).
    Failed(DaemonError),
}

impl Connection {
    /// Whether the connection ended (the daemon closed it, or died).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.sender.is_closed()
    }
}

/// Connects to the daemon at `socket` and completes the HTTP/2 handshake.
pub(crate) async fn connect(socket: &Path) -> Result<Connection, ConnectFailure> {
    let stream = match tokio::net::UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(e) if absent(&e) => return Err(ConnectFailure::Absent(e)),
        Err(source) => {
            return Err(ConnectFailure::Failed(DaemonError::Connect {
                socket: socket.to_owned(),
                source,
            }))
        }
    };
    // The pipeline's stream window, so that one fetch's unread body holds
    // at most that much (see `net::windows`). Unlike the pipeline, the
    // client has this one connection for all its fetches, so its window
    // is HTTP/2's largest (as curl's): unread bodies never stall the
    // others, and what they hold (the app's own) is bounded by the
    // daemon's stream limit times the stream window.
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(MAX_WINDOW)
        .max_frame_size(256 << 10)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| {
            ConnectFailure::Failed(DaemonError::Handshake {
                socket: socket.to_owned(),
                source,
            })
        })?;
    let closed = Arc::new(AtomicBool::new(false));
    let mark = closed.clone();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("the connection to the sockhost daemon ended: {e}");
        }
        mark.store(true, Ordering::Release);
    });
    Ok(Connection { sender, closed })
}

/// Whether a connect error means that no daemon listens there: no
/// socket file, or one a dead daemon left.
pub(crate) fn absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_or_stale_socket_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        assert!(matches!(
            connect(&path).await,
            Err(ConnectFailure::Absent(_))
        ));
        // A socket file nobody listens on, as a killed daemon leaves it.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        assert!(matches!(
            connect(&path).await,
            Err(ConnectFailure::Absent(_))
        ));
    }
}
