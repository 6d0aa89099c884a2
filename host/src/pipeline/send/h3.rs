//! Sending on an HTTP/3 connection (h3 over quinn).

use bytes::Bytes;

use crate::host::body::BodySource;
use crate::host::HttpError;
use crate::net::connection::H3Sender;

/// Sends `req` on a new stream; returns the response head and the stream,
/// from which the body is read.
pub(super) async fn send(
    sender: &mut H3Sender,
    req: http::Request<Bytes>,
) -> Result<(http::response::Parts, BodySource), HttpError> {
    let (parts, body) = req.into_parts();
    let mut stream = sender
        .send_request(http::Request::from_parts(parts, ()))
        .await?;
    // RFC 9114 4.1.1: a server may answer before reading the whole request
    // and stop our sending side (quinn servers do so whenever they drop a
    // request they did not read to its end); the response must still be
    // read.
    let mut sent = Ok(());
    if !body.is_empty() {
        sent = stream.send_data(body).await;
    }
    if sent.is_ok() {
        sent = stream.finish().await;
    }
    match sent {
        Ok(()) | Err(h3::error::StreamError::RemoteTerminate { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let (parts, ()) = stream.recv_response().await?.into_parts();
    let stream = Box::new(stream);
    Ok((
        parts,
        BodySource::H3 {
            stream,
            done: false,
        },
    ))
}
