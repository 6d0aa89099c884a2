//! Phase 3, send: the request on the leased connection, by the sender of
//! its protocol (one file each), until the response head arrives or the
//! request timeout passes. The body streams afterwards, from the response.

mod h1;
mod h2;
mod h3;
pub mod message;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Version};

use super::target::Target;
use crate::host::body::{BodySource, ResponseBody};
use crate::host::{FetchError, FetchRequest, HttpError};
use crate::net::connection::Sender;
use crate::net::manager::Lease;

/// Sends `request` (its `headers` checked) to `target` on `lease`'s
/// connection, waiting at most `timeout` for the response head. The
/// connection goes back to the pool with the body, or broken on failure.
pub async fn run(
    mut lease: Lease,
    request: &FetchRequest,
    target: &Target,
    headers: &HeaderMap,
    timeout: Duration,
) -> Result<(http::response::Parts, ResponseBody), FetchError> {
    let req = message::build(request, target, headers, version(&lease.sender))?;
    let origin = target.origin.to_string();
    match tokio::time::timeout(timeout, send(&mut lease.sender, req)).await {
        Ok(Ok((parts, source))) => Ok((parts, ResponseBody::new(source, lease, origin))),
        Ok(Err(source)) => {
            lease.give_back(false);
            Err(FetchError::Http { origin, source })
        }
        Err(_) => {
            lease.give_back(false);
            Err(FetchError::Timeout { origin, timeout })
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
    req: http::Request<Bytes>,
) -> Result<(http::response::Parts, BodySource), HttpError> {
    match sender {
        Sender::Http1(s) => h1::send(s, req).await,
        Sender::Http2(s) => h2::send(s, req).await,
        Sender::Http3(s) => h3::send(s, req).await,
    }
}
