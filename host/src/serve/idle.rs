//! Idle limits on a client's byte stream: a connection with no byte either
//! way for the limit fails with `TimedOut`, which closes it (hyper's
//! connection, or a `CONNECT` tunnel's copy, ends with that error). While
//! the connection has requests in flight it is not idle, however long the
//! origin takes. It also counts the bytes each way, for the access log.
//!
//! The timer is looked at whenever the stream waits to read or write, and
//! an HTTP connection always waits to read (for the next request, or for
//! the client to close), so a silent client cannot escape it. Activity only
//! stores an instant; the timer is moved when it fires early.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A stream closed after `limit` without a byte either way.
#[derive(Debug)]
pub struct IdleIo<S> {
    inner: S,
    limit: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
    /// Requests in flight on the connection; it is idle only at zero.
    busy: Option<Arc<AtomicUsize>>,
    read: u64,
    written: u64,
}

impl<S> IdleIo<S> {
    /// `inner`, failing after `limit` idle; `busy` counts the requests
    /// in flight, if the stream carries requests.
    pub fn new(inner: S, limit: Duration, busy: Option<Arc<AtomicUsize>>) -> Self {
        let last = Instant::now();
        IdleIo {
            inner,
            limit,
            last,
            timer: Box::pin(tokio::time::sleep_until(last + limit)),
            busy,
            read: 0,
            written: 0,
        }
    }

    /// The bytes read from and written to the stream so far.
    pub fn bytes(&self) -> (u64, u64) {
        (self.read, self.written)
    }

    /// Ready with the error once the stream has been idle for the limit;
    /// otherwise the timer is armed for when it might be.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let busy = self
                .busy
                .as_ref()
                .is_some_and(|b| b.load(Ordering::Relaxed) > 0);
            let deadline = self.last + self.limit;
            if !busy && now >= deadline {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("idle for {:?}", self.limit),
                ));
            }
            let next = if busy { now + self.limit } else { deadline };
            self.timer.as_mut().reset(next);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                if n > 0 {
                    self.read += n as u64;
                    self.last = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S> IdleIo<S> {
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.written += n as u64;
                    self.last = Instant::now();
                }
                Poll::Ready(Ok(n))
            }
            // A client that reads nothing is as idle as one that sends
            // nothing.
            Poll::Pending => self.poll_idle(cx).map(Err),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMIT: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_silent_stream_fails_after_the_limit_and_activity_defers_it() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut io = IdleIo::new(near, LIMIT, None);
        let mut buf = [0u8; 8];
        far.write_all(b"hi").await.unwrap();
        tokio::time::sleep(LIMIT * 2 / 3).await;
        assert_eq!(io.read(&mut buf).await.unwrap(), 2);
        io.write_all(b"hello").await.unwrap();
        let last = Instant::now();
        let e = io.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        // The limit after the last byte, not after the start.
        let waited = last.elapsed();
        assert!(waited >= LIMIT && waited < LIMIT * 3, "{waited:?}");
        assert_eq!(io.bytes(), (2, 5));
    }

    #[tokio::test]
    async fn requests_in_flight_keep_it_open() {
        let (near, _far) = tokio::io::duplex(64);
        let busy = Arc::new(AtomicUsize::new(1));
        let mut io = IdleIo::new(near, LIMIT, Some(busy.clone()));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            let r = io.read(&mut buf).await.map_err(|e| e.kind());
            (r, Instant::now())
        });
        tokio::time::sleep(LIMIT * 3).await;
        assert!(!reader.is_finished());
        let ended = Instant::now();
        busy.store(0, Ordering::Relaxed);
        let (r, at) = reader.await.unwrap();
        assert_eq!(r, Err(io::ErrorKind::TimedOut));
        // The first check after the request ended: at most a limit later.
        assert!(at - ended <= LIMIT * 2, "{:?}", at - ended);
    }

    #[tokio::test]
    async fn a_peer_that_reads_nothing_is_idle_too() {
        let (near, _far) = tokio::io::duplex(4);
        let mut io = IdleIo::new(near, LIMIT, None);
        let e = io.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(io.bytes(), (0, 4));
    }
}
