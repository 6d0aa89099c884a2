//! The control listener: the control API over HTTP/1.1 on a Unix socket
//! that only the daemon's user can reach (0600), and optionally on a
//! loopback TCP port where every request needs the bearer token. Thin: a
//! request is routed ([`super::route`]), answered by the daemon
//! ([`ControlPlane`]) and written out; errors are 4xx with one line.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use super::exposition::Format;
use super::plane::{ControlPlane, ReloadError};
use super::route::{route, Route};
use super::token::Token;

/// How long a control client may take to send a request's headers.
pub const CONTROL_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes a control request's head may take: the API's paths and
/// queries are short.
pub const CONTROL_MAX_HEAD: usize = 16 << 10;

/// The control listeners and what answers them.
pub struct ControlServer<P> {
    plane: Arc<P>,
    unix: Option<(UnixListener, PathBuf)>,
    tcp: Option<(TcpListener, Token)>,
    crash_enabled: bool,
}

impl<P> std::fmt::Debug for ControlServer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer")
            .field("unix", &self.unix.as_ref().map(|(_, p)| p))
            .field(
                "tcp",
                &self.tcp.as_ref().and_then(|(l, _)| l.local_addr().ok()),
            )
            .field("crash_enabled", &self.crash_enabled)
            .finish()
    }
}

impl<P: ControlPlane> ControlServer<P> {
    /// Answers with `plane` on a Unix socket (bound by
    /// [`crate::serve::listen::unix`], so 0600).
    pub fn new(plane: Arc<P>, unix: Option<(UnixListener, PathBuf)>) -> Self {
        ControlServer {
            plane,
            unix,
            tcp: None,
            crash_enabled: false,
        }
    }

    /// Also answers on a loopback TCP listener, to requests that carry
    /// `token`.
    pub fn tcp(mut self, listener: TcpListener, token: Token) -> Self {
        self.tcp = Some((listener, token));
        self
    }

    /// Serves `POST /v1/debug/crash`, which panics on purpose to try the
    /// crash reporter (off by default).
    pub fn crash_endpoint(mut self, on: bool) -> Self {
        self.crash_enabled = on;
        self
    }

    /// Serves until `shutdown` resolves; the socket file is removed then.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let handler = Arc::new(Handler {
            plane: self.plane,
            crash_enabled: self.crash_enabled,
        });
        let mut loops = Vec::new();
        let socket = self.unix.as_ref().map(|(_, p)| p.clone());
        if let Some((listener, _)) = self.unix {
            let handler = handler.clone();
            loops.push(tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((s, _)) => serve(handler.clone(), None, s),
                        Err(e) => accept_failed(&e).await,
                    }
                }
            }));
        }
        if let Some((listener, token)) = self.tcp {
            let token = Arc::new(token);
            loops.push(tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((s, _)) => serve(handler.clone(), Some(token.clone()), s),
                        Err(e) => accept_failed(&e).await,
                    }
                }
            }));
        }
        shutdown.await;
        for l in loops {
            l.abort();
        }
        if let Some(path) = socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds the control API's TCP listener: loopback only, whatever else the
/// daemon allows (the API changes what the daemon does).
pub async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, crate::serve::listen::ListenError> {
    crate::serve::listen::tcp(addr).await
}

async fn accept_failed(e: &std::io::Error) {
    tracing::warn!("control listener: accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

struct Handler<P> {
    plane: Arc<P>,
    crash_enabled: bool,
}

fn serve<P: ControlPlane, S>(handler: Arc<Handler<P>>, token: Option<Arc<Token>>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let (handler, token) = (handler.clone(), token.clone());
        async move {
            if let Some(token) = &token {
                let query = request.uri().query().unwrap_or("");
                if request.uri().path() == "/" && token.admits_query(query) {
                    // The browser's way in: the token becomes a cookie, and
                    // the address bar loses it.
                    let mut r = text(StatusCode::SEE_OTHER, "to the status page");
                    r.headers_mut()
                        .insert(header::LOCATION, HeaderValue::from_static("/"));
                    if let Ok(cookie) = HeaderValue::from_str(&token.cookie()) {
                        r.headers_mut().insert(header::SET_COOKIE, cookie);
                    }
                    return Ok::<_, Infallible>(r);
                }
                if !token.admits(request.headers()) {
                    let mut r = text(
                        StatusCode::UNAUTHORIZED,
                        "the control API on TCP needs Authorization: Bearer TOKEN (the daemon's control token file); a browser opens /?token=TOKEN once",
                    );
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    return Ok::<_, Infallible>(r);
                }
            }
            Ok::<_, Infallible>(handler.answer(&request).await)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(CONTROL_HEADER_TIMEOUT)
        .max_buf_size(CONTROL_MAX_HEAD);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("control client: {e}");
        }
    });
}

impl<P: ControlPlane> Handler<P> {
    async fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let uri = request.uri();
        let r = match route(
            request.method(),
            uri.path(),
            uri.query(),
            self.crash_enabled,
        ) {
            Ok(r) => r,
            // The page's own form sent what is not a host name: the page,
            // saying so, rather than a bare line of text.
            Err(super::route::RouteError::BadRequest(why)) if uri.path() == "/" => {
                let mut r = self.page(None, Some(&why)).await;
                *r.status_mut() = StatusCode::BAD_REQUEST;
                return r;
            }
            Err(e) => {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                let mut response = text(status, &e.to_string());
                if let super::route::RouteError::MethodNotAllowed { allowed, .. } = e {
                    response
                        .headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static(allowed));
                }
                return response;
            }
        };
        match r {
            Route::Status => json(StatusCode::OK, &self.plane.status().await),
            Route::Metrics => {
                // OpenMetrics for a Prometheus that asks for it; the
                // classic text format for everyone else (curl, promtool).
                let accept = request.headers().get(header::ACCEPT);
                let format = Format::from_accept(accept.and_then(|v| v.to_str().ok()));
                let mut r = Response::new(Full::new(Bytes::from(self.plane.metrics(format).await)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                );
                r
            }
            Route::Reload => match self.plane.reload().await {
                Ok(done) => json(StatusCode::OK, &done),
                Err(e) => {
                    let status = match e {
                        ReloadError::Busy => StatusCode::CONFLICT,
                        _ => StatusCode::UNPROCESSABLE_ENTITY,
                    };
                    text(status, &format!("reload refused, nothing changed: {e}"))
                }
            },
            Route::SetPlugin { name, enable } => match self.plane.set_plugin(&name, enable) {
                Ok(plugin) => json(StatusCode::OK, &plugin),
                Err(e) => text(StatusCode::NOT_FOUND, &e.to_string()),
            },
            Route::NetworkChanged => {
                self.plane.network_changed();
                text(
                    StatusCode::OK,
                    "network change noted: connection history and Alt-Svc entries not marked persist were dropped",
                )
            }
            Route::Faults => json(StatusCode::OK, &self.plane.faults()),
            Route::Dns { host } => json(StatusCode::OK, &self.plane.dns(&host).await),
            Route::Page { dns } => self.page(dns, None).await,
            Route::Crash => {
                tracing::error!("POST /v1/debug/crash: panicking on purpose");
                panic!("crash requested through the control API (POST /v1/debug/crash)");
            }
        }
    }

    async fn page(&self, dns: Option<String>, dns_error: Option<&str>) -> Response<Full<Bytes>> {
        let status = self.plane.status().await;
        let answer = match &dns {
            Some(host) => Some(self.plane.dns(host).await),
            None => None,
        };
        let html = super::page::render(&status, answer.as_ref(), dns_error);
        let mut r = Response::new(Full::new(Bytes::from(html)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        // The page shows what the daemon holds; no other origin frames it.
        r.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'"),
        );
        r
    }
}

/// A one-line text answer. Anything the daemon says is flattened to one
/// line: a config error quoting the file would otherwise span several.
fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let line: String = message
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    let mut r = Response::new(Full::new(Bytes::from(format!("{line}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot write the answer as JSON: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_line_reason_is_sent_as_one_line() {
        let r = text(StatusCode::BAD_REQUEST, "a\n  b  \n\nc");
        assert_eq!(r.status(), 400);
        let body = http_body_util::BodyExt::collect(r.into_body());
        let bytes = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap()
            .to_bytes();
        assert_eq!(&bytes[..], b"a |   b | c\n");
    }
}
