//! From a connected transport to a connection that carries requests: TLS
//! over TCP for https, then the hyper HTTP/1.1 or HTTP/2 handshake by ALPN;
//! or the h3 handshake over a QUIC connection. Each connection's driver
//! runs on a task of its own; its end is reported through a oneshot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::connection::{ConnectionInfo, Established, Secured, Sender, VersionPref};
use super::error::HandshakeError;
use super::observe::{NetEvent, NetObserver};
use super::pool::{OriginKey, Protocol};
use super::quic::QuicConnection;
use super::tls::{AlpnOffer, Tls, TlsError};
use super::windows::{CONNECTION_WINDOW, STREAM_WINDOW};

/// The TLS server name for a host (an IPv6 literal without brackets).
pub fn server_name(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

/// TLS over a connected TCP stream for https (telling `observer` how the
/// handshake went); cleartext streams pass as they are.
pub async fn secure(
    tls: &Tls,
    version: VersionPref,
    observer: &dyn NetObserver,
    origin: &OriginKey,
    stream: TcpStream,
) -> Result<Secured, TlsError> {
    if origin.scheme != "https" {
        return Ok(Secured::Plain(stream));
    }
    let offer = match version {
        // HTTP/3 connections are set up over QUIC, never here.
        VersionPref::Auto | VersionPref::Http3 => AlpnOffer::Any,
        VersionPref::Http1 => AlpnOffer::Http1,
        VersionPref::Http2 => AlpnOffer::Http2,
    };
    let started = Instant::now();
    let result = tls.connect(&server_name(&origin.host), offer, stream).await;
    if observer.is_active() {
        let event = match &result {
            Ok(h) => NetEvent::Tls {
                version: h.version.clone(),
                alpn: h.alpn.clone(),
                resumed: h.resumed,
                elapsed: h.elapsed,
                error: None,
            },
            Err(e) => NetEvent::Tls {
                version: String::new(),
                alpn: None,
                resumed: false,
                elapsed: started.elapsed(),
                error: Some(e.to_string()),
            },
        };
        observer.observe(Some(origin), event);
    }
    result.map(|h| Secured::Tls(Box::new(h)))
}

/// The HTTP handshake over a secured stream, by its ALPN (or the version
/// preference over cleartext).
pub async fn establish(
    version: VersionPref,
    secured: Secured,
    mut info: ConnectionInfo,
) -> Result<Established, HandshakeError> {
    let (closed_tx, closed) = oneshot::channel();
    let (sender, protocol) = match secured {
        Secured::Tls(h) => {
            info.tls = h.elapsed;
            info.tls_version = Some(h.version);
            info.resumed = h.resumed;
            info.alpn = h.alpn.clone();
            let protocol = match h.alpn.as_deref() {
                Some("h2") => Protocol::Http2,
                _ => Protocol::Http1,
            };
            let io = TokioIo::new(h.stream);
            (handshake(io, protocol, closed_tx).await?, protocol)
        }
        Secured::Plain(stream) => {
            let protocol = match version {
                VersionPref::Http2 => Protocol::Http2,
                _ => Protocol::Http1,
            };
            let io = TokioIo::new(stream);
            (handshake(io, protocol, closed_tx).await?, protocol)
        }
    };
    Ok(Established {
        sender,
        protocol,
        info: Arc::new(info),
        closed,
        late: None,
    })
}

/// hyper's handshake for `protocol` (HTTP/1.1 unless HTTP/2).
async fn handshake<T>(
    io: T,
    protocol: Protocol,
    closed: oneshot::Sender<()>,
) -> Result<Sender, HandshakeError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    if protocol != Protocol::Http2 {
        let (sender, conn) = http1::handshake(io).await.map_err(HandshakeError::Http1)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("HTTP/1.1 connection ended: {e}");
            }
            let _ = closed.send(());
        });
        return Ok(Sender::Http1(sender));
    }
    // Fixed windows, the connection's larger than all its streams'
    // together (see `windows`): hyper's adaptive window grows both to the
    // same size, so one unread body could stall the whole connection.
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(256 << 10)
        .handshake(io)
        .await
        .map_err(HandshakeError::Http2)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("HTTP/2 connection ended: {e}");
        }
        let _ = closed.send(());
    });
    Ok(Sender::Http2(sender))
}

/// The h3 handshake over a QUIC connection; its driver runs on a task of
/// its own, which also keeps the connection's endpoint (its socket) alive.
pub async fn establish_h3(
    quic: QuicConnection,
    mut info: ConnectionInfo,
) -> Result<Established, HandshakeError> {
    let QuicConnection {
        connection,
        endpoint,
        congestion,
        ..
    } = quic;
    info.congestion = Some(congestion);
    let handshake = connection
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok());
    info.alpn = handshake
        .and_then(|h| h.protocol)
        .map(|p| String::from_utf8_lossy(&p).into_owned());
    info.tls_version = Some("TLSv1.3".to_owned());
    // QUIC's handshake is the TLS handshake: count it once, as connect.
    info.tls = Duration::ZERO;
    let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(connection))
        .await
        .map_err(HandshakeError::Http3)?;
    let (closed_tx, closed) = oneshot::channel();
    tokio::spawn(async move {
        let e = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        tracing::debug!("HTTP/3 connection ended: {e}");
        drop(endpoint);
        let _ = closed_tx.send(());
    });
    Ok(Established {
        sender: Sender::Http3(sender),
        protocol: Protocol::Http3,
        info: Arc::new(info),
        closed,
        late: None,
    })
}
