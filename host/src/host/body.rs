//! A streaming response body. It gives its connection back to the pool
//! when it ends (or is dropped), and publishes the request's end event
//! then.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
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
    /// The bytes the response's head declares that have not arrived yet
    /// (`None`: no length declared, or more arrived than declared).
    missing: Option<u64>,
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

/// How long the body of a response with `status` and `headers` to a
/// `method` request is, as its head says: none for HEAD, 1xx, 204 and 304
/// (RFC 9110 6.4.1), else its one Content-Length; `None` when unknown.
pub(crate) fn declared_length(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<u64> {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Some(0);
    }
    let mut lengths = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let first = lengths.next()?.to_str().ok()?.trim().parse().ok()?;
    // Repeated values must agree (RFC 9110 8.6), else the length is unknown.
    lengths
        .all(|v| v.to_str().ok().and_then(|v| v.trim().parse().ok()) == Some(first))
        .then_some(first)
}

impl ResponseBody {
    /// The body of a response from `origin`, read from `inner`, on the
    /// connection `lease` holds; `length` is what its head declares (see
    /// [`declared_length`]).
    pub(crate) fn new(
        inner: BodySource,
        lease: Lease,
        origin: String,
        length: Option<u64>,
    ) -> ResponseBody {
        ResponseBody {
            inner,
            lease: Some(lease),
            origin,
            end: None,
            missing: length,
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
            missing: None,
        }
    }

    /// Whether the body is whole: read to its end, or to the last byte its
    /// head declared. HTTP/2 and HTTP/3 may signal the end in a frame of
    /// its own after the last byte, and a server relaying the body with
    /// its Content-Length (hyper's) drops it once it has sent that many
    /// bytes, before that frame is read.
    fn is_whole(&self) -> bool {
        self.inner.is_end_stream() || self.missing == Some(0)
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
                if let Some(data) = frame.data_ref() {
                    let len = data.len();
                    self.missing = self.missing.and_then(|m| m.checked_sub(len as u64));
                    if let Some(end) = self.end.as_mut() {
                        end.received(len);
                    }
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
        let whole = self.is_whole();
        if self.end.is_some() {
            let error = (!whole).then(|| "response body dropped before its end".to_owned());
            self.finish(error);
        }
        if let Some(lease) = self.lease.take() {
            // Unread HTTP/1.1 bytes make the connection unusable; an
            // HTTP/2 stream is simply reset, an HTTP/3 one too. (hyper's
            // HTTP/1.1 body ends with its last declared byte.)
            let reusable = self.inner.is_end_stream() || !matches!(lease.sender, Sender::Http1(_));
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

#[cfg(test)]
mod tests {
    use http::header::CONTENT_LENGTH;

    use super::*;

    fn headers(lengths: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lengths {
            h.append(CONTENT_LENGTH, l.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_body_is_as_long_as_its_content_length() {
        let ok = StatusCode::OK;
        assert_eq!(
            declared_length(&Method::GET, ok, &headers(&["1000"])),
            Some(1000)
        );
        assert_eq!(
            declared_length(&Method::GET, ok, &headers(&["7", "7"])),
            Some(7)
        );
        assert_eq!(
            declared_length(&Method::GET, ok, &headers(&["7", "8"])),
            None
        );
        assert_eq!(declared_length(&Method::GET, ok, &headers(&["x"])), None);
        assert_eq!(declared_length(&Method::GET, ok, &headers(&[])), None);
    }

    #[test]
    fn head_and_bodiless_statuses_have_none_whatever_the_length_says() {
        let h = headers(&["1000"]);
        assert_eq!(declared_length(&Method::HEAD, StatusCode::OK, &h), Some(0));
        for status in [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED] {
            assert_eq!(declared_length(&Method::GET, status, &h), Some(0));
        }
        assert_eq!(
            declared_length(&Method::GET, StatusCode::NOT_FOUND, &headers(&[])),
            None
        );
    }
}
