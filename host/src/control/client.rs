//! The control API's client, what `sockhost status`, `reload`, `plugins`
//! and `dns` talk through: HTTP/1.1, one request per connection, to the
//! control Unix socket, or to a loopback TCP port with a bearer token.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::client::absent;

use super::status::{DnsAnswer, FaultStatus, PluginStatus, ReloadStatus, Status};
use super::token::{Token, TokenError};

/// How long a request may take by default: a reload compiles every
/// changed plugin, which takes seconds for a large component.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The largest answer read (the status of a daemon with many plugins and
/// origins is tens of KiB).
pub const MAX_BODY: usize = 16 << 20;

/// Where the control listener is.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// Its Unix socket (mode 0600: the user's own).
    Unix(PathBuf),
    /// A loopback TCP port, which takes `Authorization: Bearer TOKEN`.
    Tcp {
        /// The address.
        addr: SocketAddr,
        /// The token (its `Debug` does not show it).
        token: Token,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
            Endpoint::Tcp { addr, .. } => write!(f, "http://{addr}"),
        }
    }
}

impl Endpoint {
    /// `http://127.0.0.1:PORT` (or `[::1]`, or `localhost`) with the token
    /// in `token_file`, checked as the daemon checks it (mode 0600, one
    /// line). Only loopback: the control plane is never reached over a
    /// network.
    pub fn tcp(url: &str, token_file: &Path) -> Result<Endpoint, ControlError> {
        let addr = loopback_addr(url)?;
        let token = Token::load(token_file)?;
        Ok(Endpoint::Tcp { addr, token })
    }
}

/// The socket address of a control URL, which must be loopback.
fn loopback_addr(text: &str) -> Result<SocketAddr, ControlError> {
    let bad = |why: &str| ControlError::BadUrl {
        url: text.to_owned(),
        why: why.to_owned(),
    };
    let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "http" {
        return Err(bad("the control listener speaks http:// only"));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(bad("give the address only: http://127.0.0.1:PORT"));
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(url::Host::Domain("localhost")) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => return Err(bad("the control listener is on loopback only")),
    };
    if !ip.is_loopback() {
        return Err(bad("the control listener is on loopback only"));
    }
    let port = url.port().ok_or_else(|| bad("the port is missing"))?;
    Ok(SocketAddr::new(ip, port))
}

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No daemon: the socket is missing, or one a dead daemon left.
    #[error("sockhost is not running (no control socket at {})", .socket.display())]
    NotRunning {
        /// The socket.
        socket: PathBuf,
    },
    /// No daemon listens on the control TCP port.
    #[error("sockhost is not running (nothing listens at http://{addr})")]
    NotListening {
        /// The address.
        addr: SocketAddr,
    },
    /// The connection failed otherwise (permissions, …).
    #[error("cannot reach the control listener at {at}: {source}")]
    Connect {
        /// The endpoint.
        at: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP exchange broke off (the peer is not the control listener,
    /// or it closed the connection).
    #[error("the control listener at {at} broke off the exchange: {source}")]
    Exchange {
        /// The endpoint.
        at: String,
        /// Why.
        source: hyper::Error,
    },
    /// The daemon answered 4xx or 5xx, with its one-line reason.
    #[error("the daemon answered {status}: {reason}")]
    HttpStatus {
        /// The status code.
        status: u16,
        /// The reason it gave (its body's first line).
        reason: String,
    },
    /// A 2xx answer that is not the JSON document asked for.
    #[error("the daemon's answer to {path} is not the expected JSON: {source}")]
    Json {
        /// The resource.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The answer is larger than [`MAX_BODY`] or not UTF-8 text where
    /// text was asked for.
    #[error("the daemon's answer to {path} is {why}")]
    Body {
        /// The resource.
        path: String,
        /// What was wrong.
        why: String,
    },
    /// No answer in time.
    #[error("the control listener at {at} did not answer within {}", crate::units::human_duration(*.after))]
    Timeout {
        /// The endpoint.
        at: String,
        /// The time allowed.
        after: Duration,
    },
    /// The control URL is not a loopback `http://ADDR:PORT`.
    #[error("control URL {url}: {why}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What was wrong.
        why: String,
    },
    /// The token file could not be used.
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl ControlError {
    /// Whether the daemon is not running at all (`sockhost` exits 3).
    pub fn is_not_running(&self) -> bool {
        matches!(
            self,
            ControlError::NotRunning { .. } | ControlError::NotListening { .. }
        )
    }
}

/// A client of one control listener.
#[derive(Debug, Clone)]
pub struct ControlClient {
    endpoint: Endpoint,
    timeout: Duration,
}

impl ControlClient {
    /// A client of `endpoint`, with [`DEFAULT_TIMEOUT`].
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same, with requests bounded by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Where it connects.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<Status, ControlError> {
        self.json(Method::GET, "/v1/status").await
    }

    /// `GET /v1/status` as the daemon wrote it.
    pub async fn status_text(&self) -> Result<String, ControlError> {
        self.text(Method::GET, "/v1/status").await
    }

    /// `GET /metrics`: Prometheus text.
    pub async fn metrics(&self) -> Result<String, ControlError> {
        self.text(Method::GET, "/metrics").await
    }

    /// `GET /v1/faults`.
    pub async fn faults(&self) -> Result<Vec<FaultStatus>, ControlError> {
        self.json(Method::GET, "/v1/faults").await
    }

    /// `POST /v1/reload`.
    pub async fn reload(&self) -> Result<ReloadStatus, ControlError> {
        self.json(Method::POST, "/v1/reload").await
    }

    /// `POST /v1/plugins/{name}/enable` or `…/disable`.
    pub async fn set_plugin(&self, name: &str, enable: bool) -> Result<PluginStatus, ControlError> {
        let verb = if enable { "enable" } else { "disable" };
        let path = format!("/v1/plugins/{}/{verb}", path_segment(name));
        self.json(Method::POST, &path).await
    }

    /// `POST /v1/network-changed`.
    pub async fn network_changed(&self) -> Result<(), ControlError> {
        self.exchange(Method::POST, "/v1/network-changed")
            .await
            .map(drop)
    }

    /// `GET /v1/dns?host=HOST`.
    pub async fn dns(&self, host: &str) -> Result<DnsAnswer, ControlError> {
        let query: String = url::form_urlencoded::byte_serialize(host.as_bytes()).collect();
        self.json(Method::GET, &format!("/v1/dns?host={query}"))
            .await
    }

    /// `GET path` (with its query), the body of its 2xx as text.
    pub async fn text(&self, method: Method, path: &str) -> Result<String, ControlError> {
        let body = self.exchange(method, path).await?;
        String::from_utf8(body.to_vec()).map_err(|_| ControlError::Body {
            path: path.to_owned(),
            why: "not UTF-8".into(),
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
    ) -> Result<T, ControlError> {
        let body = self.exchange(method, path).await?;
        serde_json::from_slice(&body).map_err(|source| ControlError::Json {
            path: path.to_owned(),
            source,
        })
    }

    /// One request on a connection of its own; the body of a 2xx answer,
    /// or the error that names what failed.
    pub async fn exchange(&self, method: Method, path: &str) -> Result<Bytes, ControlError> {
        let at = self.endpoint.to_string();
        tokio::time::timeout(self.timeout, self.exchange_untimed(method, path))
            .await
            .map_err(|_| ControlError::Timeout {
                at,
                after: self.timeout,
            })?
    }

    async fn exchange_untimed(&self, method: Method, path: &str) -> Result<Bytes, ControlError> {
        let at = self.endpoint.to_string();
        let connect_err = |source: std::io::Error| ControlError::Connect {
            at: at.clone(),
            source,
        };
        let mut req = Request::builder().method(method).uri(path);
        let (status, body) = match &self.endpoint {
            Endpoint::Unix(socket) => {
                let stream = match tokio::net::UnixStream::connect(socket).await {
                    Ok(s) => s,
                    Err(e) if absent(&e) => {
                        return Err(ControlError::NotRunning {
                            socket: socket.clone(),
                        })
                    }
                    Err(e) => return Err(connect_err(e)),
                };
                req = req.header(header::HOST, "localhost");
                send(stream, req, &at, path).await?
            }
            Endpoint::Tcp { addr, token } => {
                let stream = match tokio::net::TcpStream::connect(addr).await {
                    Ok(s) => s,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        return Err(ControlError::NotListening { addr: *addr })
                    }
                    Err(e) => return Err(connect_err(e)),
                };
                req = req
                    .header(header::HOST, addr.to_string())
                    .header(header::AUTHORIZATION, token.header_value());
                send(stream, req, &at, path).await?
            }
        };
        if status.is_success() {
            return Ok(body);
        }
        Err(ControlError::HttpStatus {
            status: status.as_u16(),
            reason: reason_line(&body, status),
        })
    }
}

/// Sends `req` on a new HTTP/1.1 connection over `io` and reads the whole
/// answer.
async fn send<T>(
    io: T,
    req: http::request::Builder,
    at: &str,
    path: &str,
) -> Result<(StatusCode, Bytes), ControlError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let broke = |source| ControlError::Exchange {
        at: at.to_owned(),
        source,
    };
    let req = req
        .header(header::ACCEPT, "application/json, text/plain")
        .body(Empty::<Bytes>::new())
        .map_err(|e| ControlError::BadUrl {
            url: path.to_owned(),
            why: e.to_string(),
        })?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(io)).await.map_err(broke)?;
    // The connection is driven on its own task; it ends when the answer
    // has been read and the sender dropped.
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("control connection: {e}");
        }
    });
    let resp = sender.send_request(req).await.map_err(broke)?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| match e.downcast::<hyper::Error>() {
            Ok(e) => broke(*e),
            Err(_) => ControlError::Body {
                path: path.to_owned(),
                why: format!("larger than {MAX_BODY} bytes"),
            },
        })?
        .to_bytes();
    Ok((status, body))
}

/// The reason a 4xx or 5xx body gives: its first line, control characters
/// escaped, at most 300 characters; the status's own reason when the body
/// is empty.
fn reason_line(body: &[u8], status: StatusCode) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    match line {
        Some(l) => {
            let mut out: String = l.chars().take(300).flat_map(char::escape_default).collect();
            if l.chars().count() > 300 {
                out.push('…');
            }
            // escape_default also escapes quotes, which reasons use.
            out.replace("\\\"", "\"").replace("\\'", "'")
        }
        None => status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned(),
    }
}

/// `name` as one path segment: what is not unreserved is percent-encoded,
/// so that a name with a slash or a space reaches the daemon, which says
/// what is wrong with it.
fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_or_stale_socket_means_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let client = ControlClient::new(Endpoint::Unix(path.clone()));
        let e = client.status().await.unwrap_err();
        assert!(e.is_not_running(), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "sockhost is not running (no control socket at {})",
                path.display()
            )
        );
        // A socket file nobody listens on, as a killed daemon leaves it.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let e = client.reload().await.unwrap_err();
        assert!(e.is_not_running(), "{e:?}");
    }

    #[tokio::test]
    async fn a_closed_tcp_port_means_not_running() {
        // A port that was free a moment ago.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = ControlClient::new(Endpoint::Tcp {
            addr,
            token: Token::parse("0123456789abcdefghijkl").unwrap(),
        });
        let e = client.status().await.unwrap_err();
        assert!(e.is_not_running(), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("sockhost is not running (nothing listens at http://{addr})")
        );
    }

    #[tokio::test]
    async fn a_peer_that_hangs_up_or_stays_silent_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            // The first connection is closed at once; the second is held
            // open without a word.
            drop(listener.accept().await.unwrap());
            let held = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(held);
        });
        let client = ControlClient::new(Endpoint::Unix(path.clone()))
            .with_timeout(Duration::from_millis(300));
        let e = client.status().await.unwrap_err();
        assert!(matches!(e, ControlError::Exchange { .. }), "{e:?}");
        let e = client.status().await.unwrap_err();
        assert!(matches!(e, ControlError::Timeout { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "the control listener at {} did not answer within 300.0 ms",
                path.display()
            )
        );
        server.abort();
    }

    #[test]
    fn control_urls_are_loopback_http_addresses() {
        assert_eq!(
            loopback_addr("http://127.0.0.1:8129").unwrap(),
            "127.0.0.1:8129".parse().unwrap()
        );
        assert_eq!(
            loopback_addr("http://[::1]:8129/").unwrap(),
            "[::1]:8129".parse().unwrap()
        );
        assert_eq!(
            loopback_addr("http://localhost:9").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        for (url, why) in [
            (
                "https://127.0.0.1:8129",
                "the control listener speaks http:// only",
            ),
            (
                "http://192.0.2.1:8129",
                "the control listener is on loopback only",
            ),
            (
                "http://example.com:8129",
                "the control listener is on loopback only",
            ),
            ("http://127.0.0.1", "the port is missing"),
            (
                "http://127.0.0.1:1/v1/status",
                "give the address only: http://127.0.0.1:PORT",
            ),
        ] {
            let e = loopback_addr(url).unwrap_err();
            assert_eq!(e.to_string(), format!("control URL {url}: {why}"));
        }
        assert!(loopback_addr("127.0.0.1:8129").is_err());
    }

    #[test]
    fn the_token_is_checked_as_the_daemon_checks_it_and_never_printed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret-0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let ep = Endpoint::tcp("http://127.0.0.1:8129", &file).unwrap();
        assert!(!format!("{ep:?} {ep}").contains("s3cret"));
        std::fs::write(&file, "short\n").unwrap();
        let e = Endpoint::tcp("http://127.0.0.1:8129", &file).unwrap_err();
        assert!(matches!(e, ControlError::Token(_)), "{e:?}");
        let missing = dir.path().join("nope");
        assert!(Endpoint::tcp("http://127.0.0.1:8129", &missing).is_err());
    }

    #[test]
    fn reasons_are_one_printable_line() {
        let r = reason_line(
            b"no plugin named \"x\" (GET /v1/status lists them)\nmore",
            StatusCode::NOT_FOUND,
        );
        assert_eq!(r, "no plugin named \"x\" (GET /v1/status lists them)");
        assert_eq!(
            reason_line(b"\x1b[31mred", StatusCode::BAD_REQUEST),
            "\\u{1b}[31mred"
        );
        assert_eq!(reason_line(b"", StatusCode::UNAUTHORIZED), "Unauthorized");
        assert_eq!(
            reason_line(&[b'a'; 400], StatusCode::BAD_REQUEST).len(),
            303
        );
    }

    #[test]
    fn plugin_names_travel_as_one_path_segment() {
        assert_eq!(path_segment("request-stats_2"), "request-stats_2");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
