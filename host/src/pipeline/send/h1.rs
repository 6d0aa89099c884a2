//! Sending on an HTTP/1.1 connection (hyper).

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;

use crate::host::body::BodySource;
use crate::host::HttpError;

/// Sends `req` once the connection is ready; returns the response head and
/// its body.
pub(super) async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    req: http::Request<Bytes>,
) -> Result<(http::response::Parts, BodySource), HttpError> {
    sender.ready().await?;
    let (parts, body) = sender.send_request(req.map(Full::new)).await?.into_parts();
    Ok((parts, BodySource::Hyper(body)))
}
