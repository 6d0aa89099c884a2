//! How a tunnel's end is judged. A blind tunnel cannot see the exchange
//! inside it, only how its two TCP streams end, and only the client knows
//! when that exchange is done. A reset or a broken pipe on the client's
//! side is how the client ends it: curl, having read its response, sends
//! its TLS `close_notify` and closes its socket with bytes the origin
//! sent (a session ticket, the origin's own `close_notify`) unread, so
//! its kernel resets the connection instead of closing it (seen in about
//! half of `tests/tests/request_end.rs`' runs). Once either side has ended
//! its half (read to EOF), a reset or a broken pipe is the teardown too.
//! Any other error, and a reset by the origin before either side ended,
//! is a failure.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Why a tunnel that carried `carried` failed, or `None` when it ended;
/// `by_client`: the error was the client's stream's; `a_side_ended`:
/// either side was read to its end before.
pub fn failure(
    carried: &io::Result<(u64, u64)>,
    by_client: bool,
    a_side_ended: bool,
) -> Option<String> {
    let e = carried.as_ref().err()?;
    let teardown = matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    );
    (!(teardown && (by_client || a_side_ended))).then(|| format!("tunnel: {e}"))
}

/// One side of a tunnel: counts what was read from it and whether it was
/// read to its end.
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
    /// Bytes read.
    pub read: u64,
    /// Whether a read found the end.
    pub ended: bool,
    /// Whether a read or a write on it failed.
    pub failed: bool,
}

impl<T> Watched<T> {
    /// Watches `inner`.
    pub fn new(inner: T) -> Self {
        Watched {
            inner,
            read: 0,
            ended: false,
            failed: false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                self.read += n as u64;
                // Zero bytes into room for some: the end.
                if n == 0 && buf.remaining() > 0 {
                    self.ended = true;
                }
            }
            Poll::Ready(Err(_)) => self.failed = true,
            Poll::Pending => {}
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Err(_)) = polled {
            self.failed = true;
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn err(kind: io::ErrorKind) -> io::Result<(u64, u64)> {
        Err(io::Error::new(kind, "x"))
    }

    use io::ErrorKind::{BrokenPipe, ConnectionReset, TimedOut};

    #[test]
    fn a_reset_by_the_client_or_after_one_side_ended_is_the_teardown() {
        assert_eq!(failure(&Ok((1, 2)), false, false), None);
        assert_eq!(failure(&err(ConnectionReset), true, false), None);
        assert_eq!(failure(&err(ConnectionReset), false, true), None);
        assert_eq!(failure(&err(BrokenPipe), false, true), None);
    }

    #[test]
    fn a_reset_by_the_origin_before_either_side_ended_or_another_error_fails() {
        assert_eq!(
            failure(&err(ConnectionReset), false, false).as_deref(),
            Some("tunnel: x")
        );
        assert!(failure(&err(TimedOut), true, true).is_some());
    }

    #[tokio::test]
    async fn a_watched_stream_counts_its_bytes_and_sees_its_end() {
        let (mut a, b) = tokio::io::duplex(64);
        let mut w = Watched::new(b);
        a.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(w.read(&mut buf).await.unwrap(), 5);
        assert!(!w.ended);
        drop(a);
        assert_eq!(w.read(&mut buf).await.unwrap(), 0);
        assert_eq!((w.read, w.ended), (5, true));
    }
}
