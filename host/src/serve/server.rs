//! The daemon's accept loops: every client connection, on loopback TCP or
//! the Unix socket, is served by hyper (HTTP/1.1 with keep-alive, or h2c
//! with prior knowledge, told apart by the connection preface). On
//! shutdown it stops accepting, lets requests in flight finish up to a
//! deadline, and saves what the host learned.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::proxy::Proxy;

/// How long a client may take to send a request's headers (slowloris),
/// unless [`Server::header_read_timeout`] says otherwise.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The most bytes an HTTP/1 request head may take (request line and
/// headers); a larger one is answered 431 by hyper. Browsers send a few
/// KiB; 64 KiB leaves room for big cookies without letting a client make
/// the proxy buffer without bound (hyper's own default is ~400 KiB).
pub const MAX_HEADER_BYTES: usize = 64 << 10;
/// The most header fields an HTTP/1 request may carry; more is answered
/// 431 by hyper (whose default, 100, a cookie-heavy browser request can
/// come near).
pub const MAX_HEADERS: usize = 128;
/// How long requests in flight may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The daemon's listeners and handler.
#[derive(Debug)]
pub struct Server {
    proxy: Arc<Proxy>,
    tcp: Vec<TcpListener>,
    unix: Option<(UnixListener, PathBuf)>,
    header_read_timeout: Duration,
}

impl Server {
    /// Serves `proxy` on these listeners.
    pub fn new(proxy: Proxy, tcp: Vec<TcpListener>, unix: Option<(UnixListener, PathBuf)>) -> Self {
        Server {
            proxy: Arc::new(proxy),
            tcp,
            unix,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }

    /// How long a client may take to send a request's headers (default
    /// [`HEADER_READ_TIMEOUT`]); a connection that takes longer is closed.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let (tx, mut accepted) = tokio::sync::mpsc::channel::<Accepted>(64);
        let header_read_timeout = self.header_read_timeout;
        let mut loops = Vec::new();
        for listener in self.tcp {
            let tx = tx.clone();
            loops.push(tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((s, _)) => {
                            let _ = s.set_nodelay(true);
                            let tx = tx.clone();
                            tokio::spawn(async move {
                                if speaks_within(&s, header_read_timeout).await {
                                    let _ = tx.send(Accepted::Tcp(s)).await;
                                }
                            });
                        }
                        Err(e) => accept_failed(&e).await,
                    }
                }
            }));
        }
        let socket_path = self.unix.as_ref().map(|(_, p)| p.clone());
        if let Some((listener, _)) = self.unix {
            let tx = tx.clone();
            loops.push(tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((s, _)) => {
                            let tx = tx.clone();
                            tokio::spawn(async move {
                                if speaks_within(&s, header_read_timeout).await {
                                    let _ = tx.send(Accepted::Unix(s)).await;
                                }
                            });
                        }
                        Err(e) => accept_failed(&e).await,
                    }
                }
            }));
        }
        drop(tx);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                next = accepted.recv() => match next {
                    Some(Accepted::Tcp(s)) => serve(&self.proxy, &graceful, self.header_read_timeout, s),
                    Some(Accepted::Unix(s)) => serve(&self.proxy, &graceful, self.header_read_timeout, s),
                    None => break,
                },
                () = &mut shutdown => break,
            }
        }
        for l in loops {
            l.abort();
        }
        if let Some(path) = socket_path {
            let _ = std::fs::remove_file(path);
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}: stopping anyway");
        }
        self.proxy.host().flush().await;
    }
}

enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Out of file descriptors and the like: say so, and do not spin.
async fn accept_failed(e: &std::io::Error) {
    tracing::warn!("accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Whether a new client sends something (or closes) within `timeout`. A
/// connection is handed to hyper only then: hyper's header read timeout
/// starts once it reads a head, and until the first bytes tell HTTP/1
/// from h2 (hyper_util's auto builder) nothing would close a client that
/// connects and stays silent. The bytes are peeked, not read, so hyper
/// still gets them.
async fn speaks_within<S: Peek>(s: &S, timeout: Duration) -> bool {
    let first = async {
        loop {
            // Readiness can be reported before any byte arrived: only a
            // peek that does not block says there is one (or the end).
            s.readable().await?;
            let peeked = s.try_read_io(|| {
                rustix::net::recv(s, &mut [0u8; 1][..], rustix::net::RecvFlags::PEEK)
                    .map_err(std::io::Error::from)
            });
            match peeked {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    };
    matches!(tokio::time::timeout(timeout, first).await, Ok(Ok(())))
}

/// A client socket whose first bytes can be awaited without reading them.
trait Peek: AsFd + Sync {
    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send;
    fn try_read_io<R>(&self, f: impl FnOnce() -> std::io::Result<R>) -> std::io::Result<R>;
}

impl Peek for TcpStream {
    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send {
        TcpStream::readable(self)
    }
    fn try_read_io<R>(&self, f: impl FnOnce() -> std::io::Result<R>) -> std::io::Result<R> {
        self.try_io(Interest::READABLE, f)
    }
}

impl Peek for UnixStream {
    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send {
        UnixStream::readable(self)
    }
    fn try_read_io<R>(&self, f: impl FnOnce() -> std::io::Result<R>) -> std::io::Result<R> {
        self.try_io(Interest::READABLE, f)
    }
}

/// Serves one client connection on a task of its own.
fn serve<S>(
    proxy: &Arc<Proxy>,
    graceful: &GracefulShutdown,
    header_read_timeout: Duration,
    stream: S,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let proxy = proxy.clone();
    let service = service_fn(move |request| {
        let proxy = proxy.clone();
        async move { Ok::<_, std::convert::Infallible>(proxy.handle(request).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let connection = graceful.watch(connection.into_owned());
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("client connection ended: {e}");
        }
    });
}

/// The addresses of `listeners`, for loop detection and for saying where
/// the daemon listens.
pub fn addresses(listeners: &[TcpListener]) -> Vec<SocketAddr> {
    listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect()
}
