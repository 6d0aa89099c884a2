//! A request's body: bytes already in memory, or a stream (an upload) that
//! is read only as fast as the upstream takes it, so a proxied upload of
//! any size costs a few frames of memory and a slow origin slows the
//! client down (backpressure) instead of filling a buffer.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};

use crate::net::connection::{ReqBody, UploadError};

/// A request body.
#[derive(Default)]
pub struct RequestBody {
    kind: Kind,
}

#[derive(Default)]
enum Kind {
    #[default]
    Empty,
    Full(Bytes),
    Stream(BoxBody<Bytes, UploadError>),
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Empty => f.write_str("RequestBody(empty)"),
            Kind::Full(b) => write!(f, "RequestBody({} bytes)", b.len()),
            Kind::Stream(s) => write!(f, "RequestBody(stream, {:?})", s.size_hint()),
        }
    }
}

impl RequestBody {
    /// No body.
    pub fn empty() -> RequestBody {
        RequestBody::default()
    }

    /// A body read from `body` while the request is sent. An error from
    /// `body` aborts the request upstream.
    pub fn stream<B>(body: B) -> RequestBody
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<UploadError>,
    {
        RequestBody {
            kind: Kind::Stream(body.map_err(Into::into).boxed()),
        }
    }

    /// The body's length when it is known before it is sent (in memory,
    /// or a stream of declared length).
    pub fn known_len(&self) -> Option<u64> {
        match &self.kind {
            Kind::Empty => Some(0),
            Kind::Full(b) => Some(b.len() as u64),
            Kind::Stream(s) => s.size_hint().exact(),
        }
    }

    /// The bytes of a body held in memory; `None` for a stream.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Empty => Some(&[]),
            Kind::Full(b) => Some(b),
            Kind::Stream(_) => None,
        }
    }

    /// The body as the upstream connection sends it, and what tells how
    /// far the upload got.
    pub(crate) fn into_upstream(self) -> (ReqBody, Arc<UploadProgress>) {
        let progress = Arc::new(UploadProgress::new());
        let body = match self.kind {
            Kind::Empty => Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed(),
            Kind::Full(b) => {
                // Handed to the connection whole: all of it counts as sent.
                progress.advance(b.len());
                Full::new(b).map_err(|never| match never {}).boxed()
            }
            Kind::Stream(inner) => Tracked {
                inner,
                progress: progress.clone(),
            }
            .boxed(),
        };
        (body, progress)
    }
}

impl From<Bytes> for RequestBody {
    fn from(bytes: Bytes) -> Self {
        RequestBody {
            kind: Kind::Full(bytes),
        }
    }
}

impl From<Vec<u8>> for RequestBody {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl From<String> for RequestBody {
    fn from(text: String) -> Self {
        Bytes::from(text).into()
    }
}

impl From<&'static str> for RequestBody {
    fn from(text: &'static str) -> Self {
        Bytes::from_static(text.as_bytes()).into()
    }
}

/// How far an upload got: bytes handed to the connection, and when the
/// last of them was. The request timeout counts from the last progress,
/// so a long upload that keeps moving is never cut, and a stalled one is.
#[derive(Debug)]
pub struct UploadProgress {
    base: Instant,
    bytes: AtomicU64,
    /// Microseconds after `base` of the last progress.
    last: AtomicU64,
    /// Why the body's source failed, if it did: HTTP/2 tells the peer only
    /// "internal error", so the request's error takes the cause from here.
    failure: std::sync::OnceLock<String>,
}

impl UploadProgress {
    fn new() -> UploadProgress {
        UploadProgress {
            base: Instant::now(),
            bytes: AtomicU64::new(0),
            last: AtomicU64::new(0),
            failure: std::sync::OnceLock::new(),
        }
    }

    fn advance(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let micros = self.base.elapsed().as_micros() as u64;
        self.last.fetch_max(micros, Ordering::Relaxed);
    }

    /// Bytes handed to the connection so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Why the body's source failed, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// When the upload last moved (its start if it never did).
    pub fn last_progress(&self) -> Instant {
        self.base + std::time::Duration::from_micros(self.last.load(Ordering::Relaxed))
    }
}

/// A streamed body that records its progress as the connection reads it.
struct Tracked {
    inner: BoxBody<Bytes, UploadError>,
    progress: Arc<UploadProgress>,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = UploadError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UploadError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.progress.advance(data.len());
                }
            }
            Poll::Ready(Some(Err(e))) => {
                let _ = self.progress.failure.set(e.to_string());
            }
            _ => {}
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
    use http_body_util::StreamBody;

    fn chunks(parts: &[&'static str]) -> RequestBody {
        let frames: Vec<Result<Frame<Bytes>, UploadError>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        RequestBody::stream(StreamBody::new(futures_util::stream::iter(frames)))
    }

    #[tokio::test]
    async fn a_stream_counts_what_the_connection_read() {
        let body = chunks(&["ab", "cde"]);
        assert_eq!(body.known_len(), None);
        assert!(body.as_bytes().is_none());
        let (upstream, progress) = body.into_upstream();
        assert_eq!(progress.bytes(), 0);
        let read = upstream.collect().await.unwrap().to_bytes();
        assert_eq!(&read[..], b"abcde");
        assert_eq!(progress.bytes(), 5);
        assert!(progress.last_progress() >= progress.base);
    }

    #[tokio::test]
    async fn bytes_in_memory_count_as_sent_at_once() {
        let body = RequestBody::from("hello");
        assert_eq!(body.known_len(), Some(5));
        assert_eq!(body.as_bytes(), Some(&b"hello"[..]));
        let (upstream, progress) = body.into_upstream();
        assert_eq!(progress.bytes(), 5);
        assert_eq!(upstream.size_hint().exact(), Some(5));
        assert_eq!(RequestBody::empty().known_len(), Some(0));
    }

    #[tokio::test]
    async fn a_stream_error_reaches_the_connection() {
        let frames: Vec<Result<Frame<Bytes>, UploadError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"x"))),
            Err("client went away".into()),
        ];
        let body = RequestBody::stream(StreamBody::new(futures_util::stream::iter(frames)));
        let (upstream, progress) = body.into_upstream();
        let err = upstream.collect().await.unwrap_err();
        assert_eq!(err.to_string(), "client went away");
        assert_eq!(progress.bytes(), 1);
        assert_eq!(progress.failure(), Some("client went away"));
    }
}
