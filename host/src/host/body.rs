//! A streaming response body. It gives its connection back to the pool
//! when it ends (or is dropped), and publishes the request's end event
//! then.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};

use super::error::{FetchError, HttpError};
use crate::net::connection::Sender;
use crate::net::manager::Lease;
use crate::pipeline::finish::RequestEnd;

/// An error while a response body streams.
pub type BodyError = HttpError;

/// A streaming response body; returns its connection to the pool at the end.
#[derive(Debug)]
pub struct ResponseBody {
    inner: BodySource,
    lease: Option<Lease>,
    /// The origin, for errors while the body streams.
    origin: String,
    /// The request-end event to publish when the body ends or is dropped
    /// (boxed: the response is moved across await points, the event is big).
    end: Option<Box<RequestEnd>>,
}

/// Where a response body comes from.
pub(crate) enum BodySource {
    /// HTTP/1.1 and HTTP/2.
    Hyper(Incoming),
    /// HTTP/3: the request's stream (boxed: it is large, and the response
    /// moves across await points); `done` once its data ended.
    H3 {
        stream: Box<h3::client::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>>,
        done: bool,
    },
}

impl std::fmt::Debug for BodySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodySource::Hyper(b) => b.fmt(f),
            BodySource::H3 { done, .. } => write!(f, "h3 stream (done: {done})"),
        }
    }
}

impl BodySource {
    /// Whether every byte of the body has been read (a server relaying it
    /// stops there, once it has sent the length the headers declared).
    fn is_end_stream(&self) -> bool {
        match self {
            BodySource::Hyper(b) => b.is_end_stream(),
            BodySource::H3 { done, .. } => *done,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            BodySource::Hyper(b) => b.size_hint(),
            BodySource::H3 { .. } => hyper::body::SizeHint::default(),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match self {
            BodySource::Hyper(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(HttpError::from))),
            BodySource::H3 { done: true, .. } => Poll::Ready(None),
            BodySource::H3 { stream, done } => match stream.poll_recv_data(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(Some(mut buf))) => {
                    let len = bytes::Buf::remaining(&buf);
                    let data = bytes::Buf::copy_to_bytes(&mut buf, len);
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Poll::Ready(Ok(None)) => {
                    *done = true;
                    Poll::Ready(None)
                }
                Poll::Ready(Err(e)) => Poll::Ready(Some(Err(HttpError::from(e)))),
            },
        }
    }
}

impl ResponseBody {
    /// The body of a response from `origin`, read from `inner`, on the
    /// connection `lease` holds.
    pub(crate) fn new(inner: BodySource, lease: Lease, origin: String) -> ResponseBody {
        ResponseBody {
            inner,
            lease: Some(lease),
            origin,
            end: None,
        }
    }

    /// The body of a response the daemon sends an IPC client, from
    /// `origin`: its connection is the client's own, not a pooled one.
    pub(crate) fn from_daemon(inner: Incoming, origin: String) -> ResponseBody {
        ResponseBody {
            inner: BodySource::Hyper(inner),
            lease: None,
            origin,
            end: None,
        }
    }

    /// Publishes `end` when the body ends or is dropped.
    pub(crate) fn publish_at_end(&mut self, end: RequestEnd) {
        self.end = Some(Box::new(end));
    }

    fn finish(&mut self, error: Option<String>) {
        if let Some(end) = self.end.take() {
            end.publish(error);
        }
    }

    /// The next chunk, `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, FetchError> {
        loop {
            match self.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
                Some(Err(source)) => {
                    return Err(FetchError::Http {
                        origin: self.origin.clone(),
                        source,
                    })
                }
                None => return Ok(None),
            }
        }
    }

    /// Reads the rest of the body into memory (for small bodies).
    pub async fn bytes(mut self) -> Result<Bytes, FetchError> {
        let mut out = Vec::new();
        while let Some(c) = self.chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(Bytes::from(out))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = self.inner.poll(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some(lease) = self.lease.take() {
                    lease.give_back(true);
                }
                self.finish(None);
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(lease) = self.lease.take() {
                    lease.give_back(false);
                }
                let e = e.to_string();
                self.finish(Some(e));
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(end)) = (frame.data_ref(), self.end.as_mut()) {
                    end.received(data.len());
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Read to its last byte, the body is whole even if nobody asked
        // for the end after it (hyper's server does not, once it has sent
        // the Content-Length it relayed).
        let whole = self.inner.is_end_stream();
        if self.end.is_some() {
            let error = (!whole).then(|| "response body dropped before its end".to_owned());
            self.finish(error);
        }
        if let Some(lease) = self.lease.take() {
            // Unread HTTP/1.1 bytes make the connection unusable; an
            // HTTP/2 stream is simply reset, an HTTP/3 one too.
            let reusable = whole || !matches!(lease.sender, Sender::Http1(_));
            lease.give_back(reusable);
        }
    }
}

/// Reads a whole body (for tests and small responses).
pub async fn read_all(body: ResponseBody) -> Result<Bytes, FetchError> {
    let origin = body.origin.clone();
    Ok(body
        .collect()
        .await
        .map_err(|source| FetchError::Http { origin, source })?
        .to_bytes())
}
