//! A response body that says how many bytes it carried when it is done
//! (sent whole, or dropped with its connection): the access log's bytes
//! down and duration, and the end of a request in flight.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use hyper::body::{Body, Frame, SizeHint};

/// What to do with the byte count when the body is done.
pub type OnDone = Box<dyn FnOnce(u64) + Send + Sync>;

/// `B`, counted.
pub struct Counted<B> {
    inner: B,
    bytes: u64,
    done: Option<OnDone>,
}

impl<B> Counted<B> {
    /// Counts `inner`'s data bytes; `done` gets the count once.
    pub fn new(inner: B, done: Option<OnDone>) -> Self {
        Counted {
            inner,
            bytes: 0,
            done,
        }
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for Counted<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counted")
            .field("inner", &self.inner)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(self.bytes);
        }
    }
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes += data.remaining() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn the_count_is_given_once_when_the_body_is_done() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let body = Counted::new(
            Full::new(Bytes::from_static(b"hello")),
            Some(Box::new(move |n| s.lock().unwrap().push(n))),
        );
        assert_eq!(body.size_hint().exact(), Some(5));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, "hello");
        assert_eq!(*seen.lock().unwrap(), vec![5]);
    }
}
