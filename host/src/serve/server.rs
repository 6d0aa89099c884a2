//! The daemon's accept loops: every client connection, on loopback TCP or
//! the Unix socket, is served by hyper (HTTP/1.1 with keep-alive, or h2c
//! with prior knowledge, told apart by the connection preface), within the
//! [`Limits`]: at most `max-clients` connections (more wait in the listen
//! queue), a header read timeout, and an idle timeout for connections with
//! no request in flight. On shutdown it stops accepting, lets requests in
//! flight finish up to a deadline, saves what the host learned (the
//! Alt-Svc cache) and flushes the access log.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::activity::Activity;
use super::client::{ClientConn, Peer};
use super::idle::IdleIo;
use super::limits::Limits;
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
    limits: Limits,
    activity: Arc<Activity>,
}

impl Server {
    /// Serves `proxy` on these listeners, with the default [`Limits`].
    pub fn new(proxy: Proxy, tcp: Vec<TcpListener>, unix: Option<(UnixListener, PathBuf)>) -> Self {
        Server {
            proxy: Arc::new(proxy),
            tcp,
            unix,
            limits: Limits::default(),
            activity: Arc::default(),
        }
    }

    /// The request handler.
    pub fn proxy(&self) -> Arc<Proxy> {
        self.proxy.clone()
    }

    /// Client connections and requests, counted as they come and go.
    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    /// The limits on client connections: `max_clients`,
    /// `header_read_timeout` and `keep_alive_idle` (the proxy takes the
    /// others, [`Proxy::limits`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How long a client may take to send a request's headers (default
    /// [`HEADER_READ_TIMEOUT`]); a connection that takes longer is closed.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.header_read_timeout = timeout;
        self
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let (tx, mut accepted) = tokio::sync::mpsc::channel::<Accepted>(64);
        let slots = Arc::new(Semaphore::new(self.limits.max_clients));
        let mut loops = Vec::new();
        for listener in self.tcp {
            let accept = accept_loop(listener, slots.clone(), tx.clone(), self.limits);
            loops.push(tokio::spawn(accept));
        }
        let socket_path = self.unix.as_ref().map(|(_, p)| p.clone());
        if let Some((listener, _)) = self.unix {
            let accept = accept_loop(listener, slots.clone(), tx.clone(), self.limits);
            loops.push(tokio::spawn(accept));
        }
        drop(tx);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                next = accepted.recv() => match next {
                    Some(Accepted { stream: Stream::Tcp(s), client }) => serve(&self.proxy, &graceful, self.limits, s, client.counted_in(&self.activity)),
                    Some(Accepted { stream: Stream::Unix(s), client }) => serve(&self.proxy, &graceful, self.limits, s, client.counted_in(&self.activity)),
                    None => break,
                },
                () = &mut shutdown => break,
            }
        }
        tracing::debug!("shutting down: no new clients; finishing requests in flight");
        for l in loops {
            l.abort();
        }
        if let Some(path) = socket_path {
            let _ = std::fs::remove_file(path);
        }
        // Tunnels are no longer hyper's: they are waited for on their own.
        let tunnels = self.proxy.tunnels().clone();
        tunnels.stop();
        let drained = async {
            graceful.shutdown().await;
            tunnels.drained().await;
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
            tracing::warn!(
                "requests or {} tunnels still running after {SHUTDOWN_GRACE:?}: stopping anyway",
                tunnels.count()
            );
        }
        self.proxy.host().flush().await;
        if let Some(log) = self.proxy.access_log() {
            log.flush().await;
            if log.dropped() > 0 {
                tracing::warn!("access log: {} entries dropped in all", log.dropped());
            }
        }
        tracing::info!("stopped");
    }
}

/// A client connection that spoke, with its place among `max-clients`.
struct Accepted {
    stream: Stream,
    client: ClientConn,
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A listener the accept loop takes clients from.
trait Listen: Send + 'static {
    fn accept(&self) -> impl Future<Output = std::io::Result<(Stream, Peer)>> + Send;
}

impl Listen for TcpListener {
    async fn accept(&self) -> std::io::Result<(Stream, Peer)> {
        let (s, addr) = TcpListener::accept(self).await?;
        let _ = s.set_nodelay(true);
        Ok((Stream::Tcp(s), Peer::Tcp(addr)))
    }
}

impl Listen for UnixListener {
    async fn accept(&self) -> std::io::Result<(Stream, Peer)> {
        let (s, _) = UnixListener::accept(self).await?;
        Ok((Stream::Unix(s), Peer::Unix))
    }
}

/// Takes clients from `listener` while fewer than `max_clients` are
/// served; at the limit it stops accepting until one ends, so new clients
/// wait in the kernel's listen queue. A client is passed on once it
/// speaks.
async fn accept_loop<L: Listen>(
    listener: L,
    slots: Arc<Semaphore>,
    tx: tokio::sync::mpsc::Sender<Accepted>,
    limits: Limits,
) {
    // Said once each time the limit is reached, not for every client.
    let mut full = false;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                full = false;
                slot
            }
            Err(_) => {
                if !full {
                    tracing::info!(
                        "max-clients ({}) reached: new clients wait until one leaves",
                        limits.max_clients
                    );
                    full = true;
                }
                match slots.clone().acquire_owned().await {
                    Ok(slot) => slot,
                    Err(_) => return,
                }
            }
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                tracing::debug!("client {peer} connected");
                let tx = tx.clone();
                tokio::spawn(async move {
                    let speaks = match &stream {
                        Stream::Tcp(s) => speaks_within(s, limits.header_read_timeout).await,
                        Stream::Unix(s) => speaks_within(s, limits.header_read_timeout).await,
                    };
                    if speaks {
                        let client = ClientConn::new(peer, Some(slot));
                        let _ = tx.send(Accepted { stream, client }).await;
                    } else {
                        tracing::debug!("client {peer} sent nothing in time: closed");
                    }
                });
            }
            Err(e) => {
                drop(slot);
                accept_failed(&e).await;
            }
        }
    }
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

/// Serves one client connection on a task of its own; it is closed after
/// `keep_alive_idle` without a request in flight or a byte either way.
fn serve<S>(
    proxy: &Arc<Proxy>,
    graceful: &GracefulShutdown,
    limits: Limits,
    stream: S,
    client: ClientConn,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let proxy = proxy.clone();
    let peer = client.peer;
    let stream = IdleIo::new(stream, limits.keep_alive_idle, Some(client.busy_count()));
    let service = service_fn(move |mut request: Request<Incoming>| {
        let proxy = proxy.clone();
        request.extensions_mut().insert(client.clone());
        async move { Ok::<_, std::convert::Infallible>(proxy.handle(request).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let connection = graceful.watch(connection.into_owned());
    tokio::spawn(async move {
        match connection.await {
            Ok(()) => tracing::debug!("client {peer} left"),
            Err(e) => tracing::debug!("client {peer}: connection ended: {e}"),
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
