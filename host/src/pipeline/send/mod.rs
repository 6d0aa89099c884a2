//! Phase 3, send: the request on the leased connection, by the sender of
//! its protocol (one file each), until the response head arrives or the
//! request timeout passes. The response body streams afterwards. The
//! request body streams while the request is sent; the timeout counts from
//! its last progress, so an upload is cut only when it stalls.

mod h1;
mod h2;
mod h3;
pub mod message;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Version};

use super::target::Target;
use crate::host::body::{declared_length, BodySource, ResponseBody};
use crate::host::{FetchError, FetchRequest, HttpError, UploadProgress};
use crate::net::connection::{ReqBody, Sender};
use crate::net::manager::Lease;

/// A request body on its way upstream, and how far it got.
#[derive(Debug)]
pub struct Upload {
    /// The body as connections send it.
    pub body: ReqBody,
    /// What the connection has read of it.
    pub progress: Arc<UploadProgress>,
}

/// Sends `request` with `upload` (its `headers` checked) to `target` on
/// `lease`'s connection, waiting for the response head at most `timeout`
/// after the upload last moved. The connection goes back to the pool with
/// the body, or broken on failure.
pub async fn run(
    mut lease: Lease,
    request: &FetchRequest,
    upload: Upload,
    target: &Target,
    headers: &HeaderMap,
    timeout: Duration,
) -> Result<(http::response::Parts, ResponseBody), FetchError> {
    let req = message::build(
        request,
        upload.body,
        target,
        headers,
        version(&lease.sender),
    )?;
    let origin = target.origin.to_string();
    match unless_stalled(&upload.progress, timeout, send(&mut lease.sender, req)).await {
        Some(Ok((parts, source))) => {
            let length = declared_length(&request.method, parts.status, &parts.headers);
            Ok((parts, ResponseBody::new(source, lease, origin, length)))
        }
        Some(Err(source)) => {
            lease.give_back(false);
            let source = match upload.progress.failure() {
                Some(why) => HttpError::Upload(why.into()),
                None => source,
            };
            Err(FetchError::Http { origin, source })
        }
        None => {
            lease.give_back(false);
            Err(FetchError::Timeout { origin, timeout })
        }
    }
}

/// `sending`'s output, or `None` once `timeout` passed since the upload
/// last moved (or since it started, for a body sent whole).
async fn unless_stalled<T>(
    progress: &UploadProgress,
    timeout: Duration,
    sending: impl Future<Output = T>,
) -> Option<T> {
    tokio::pin!(sending);
    loop {
        let deadline = tokio::time::Instant::from_std(progress.last_progress() + timeout);
        tokio::select! {
            out = &mut sending => return Some(out),
            _ = tokio::time::sleep_until(deadline) => {
                if progress.last_progress() + timeout <= std::time::Instant::now() {
                    return None;
                }
            }
        }
    }
}

/// The HTTP version a sender speaks.
fn version(sender: &Sender) -> Version {
    match sender {
        Sender::Http1(_) => Version::HTTP_11,
        Sender::Http2(_) => Version::HTTP_2,
        Sender::Http3(_) => Version::HTTP_3,
    }
}

/// Sends `req` by the sender of the connection's protocol.
async fn send(
    sender: &mut Sender,
    req: http::Request<ReqBody>,
) -> Result<(http::response::Parts, BodySource), HttpError> {
    match sender {
        Sender::Http1(s) => h1::send(s, req).await,
        Sender::Http2(s) => h2::send(s, req).await,
        Sender::Http3(s) => h3::send(s, req).await,
    }
}
