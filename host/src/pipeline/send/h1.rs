//! Sending on an HTTP/1.1 connection (hyper).

use hyper::client::conn::http1::SendRequest;

use crate::host::body::BodySource;
use crate::host::HttpError;
use crate::net::connection::ReqBody;

/// Sends `req` once the connection is ready; returns the response head and
/// its body.
pub(super) async fn send(
    sender: &mut SendRequest<ReqBody>,
    req: http::Request<ReqBody>,
) -> Result<(http::response::Parts, BodySource), HttpError> {
    sender.ready().await?;
    let (parts, body) = sender.send_request(req).await?.into_parts();
    Ok((parts, BodySource::Hyper(body)))
}
