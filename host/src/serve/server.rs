//! The daemon's accept loops: every client connection, on loopback TCP or
//! the Unix socket, is served by hyper (HTTP/1.1 with keep-alive, or h2c
//! with prior knowledge, told apart by the connection preface). On
//! shutdown it stops accepting, lets requests in flight finish up to a
//! deadline, and saves what the host learned.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use super::proxy::Proxy;

/// How long a client may take to send a request's headers (slowloris).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long requests in flight may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The daemon's listeners and handler.
#[derive(Debug)]
pub struct Server {
    proxy: Arc<Proxy>,
    tcp: Vec<TcpListener>,
    unix: Option<(UnixListener, PathBuf)>,
}

impl Server {
    /// Serves `proxy` on these listeners.
    pub fn new(proxy: Proxy, tcp: Vec<TcpListener>, unix: Option<(UnixListener, PathBuf)>) -> Self {
        Server {
            proxy: Arc::new(proxy),
            tcp,
            unix,
        }
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let (tx, mut accepted) = tokio::sync::mpsc::channel::<Accepted>(64);
        let mut loops = Vec::new();
        for listener in self.tcp {
            let tx = tx.clone();
            loops.push(tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((s, _)) => {
                            let _ = s.set_nodelay(true);
                            if tx.send(Accepted::Tcp(s)).await.is_err() {
                                break;
                            }
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
                            if tx.send(Accepted::Unix(s)).await.is_err() {
                                break;
                            }
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
                    Some(Accepted::Tcp(s)) => serve(&self.proxy, &graceful, s),
                    Some(Accepted::Unix(s)) => serve(&self.proxy, &graceful, s),
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
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Out of file descriptors and the like: say so, and do not spin.
async fn accept_failed(e: &std::io::Error) {
    tracing::warn!("accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Serves one client connection on a task of its own.
fn serve<S>(proxy: &Arc<Proxy>, graceful: &GracefulShutdown, stream: S)
where
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
        .header_read_timeout(HEADER_READ_TIMEOUT)
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
