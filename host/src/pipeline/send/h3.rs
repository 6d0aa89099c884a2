//! Sending on an HTTP/3 connection (h3 over quinn).

use http_body_util::BodyExt;

use crate::host::body::BodySource;
use crate::host::HttpError;
use crate::net::connection::{H3Sender, ReqBody};

/// Sends `req` on a new stream; returns the response head and the stream,
/// from which the body is read.
pub(super) async fn send(
    sender: &mut H3Sender,
    req: http::Request<ReqBody>,
) -> Result<(http::response::Parts, BodySource), HttpError> {
    let (parts, mut body) = req.into_parts();
    let mut stream = sender
        .send_request(http::Request::from_parts(parts, ()))
        .await?;
    // RFC 9114 4.1.1: a server may answer before reading the whole request
    // and stop our sending side (quinn servers do so whenever they drop a
    // request they did not read to its end); the response must still be
    // read. Each frame is sent before the next is read: QUIC's flow
    // control paces the upload.
    let mut sent = Ok(());
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(HttpError::Upload)?;
        sent = match frame.into_data() {
            Ok(data) if data.is_empty() => continue,
            Ok(data) => stream.send_data(data).await,
            Err(frame) => match frame.into_trailers() {
                Ok(trailers) => stream.send_trailers(trailers).await,
                Err(_) => continue,
            },
        };
        if sent.is_err() {
            break;
        }
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
