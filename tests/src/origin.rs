//! An HTTPS origin on loopback (or any address: `listen`, in a network
//! namespace with [`TestOrigin::start_in`]) written with hyper, with a
//! private CA made by rcgen: HTTP/1.1 and HTTP/2 by ALPN, counting its
//! connections; with `h3`, also HTTP/3 (quinn + h3) on the same port number
//! over UDP.
//!
//! Routes: `/` (a short text), `/bytes/N` (N bytes of a known pattern),
//! `/slow/MS` (answers after MS milliseconds), `/headers` (the request
//! headers back, one per line), anything else 404.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::netns::Namespace;

/// What the origin serves and how.
#[derive(Debug, Clone)]
pub struct OriginOptions {
    /// The address the TCP listener, the QUIC endpoint and the UDP black
    /// hole bind (port chosen by the kernel). `::` is dual-stack: it
    /// serves IPv4 too, whatever `net.ipv6.bindv6only` says.
    pub listen: IpAddr,
    /// Names in the certificate.
    pub names: Vec<String>,
    /// ALPN protocols offered, in preference order.
    pub alpn: Vec<&'static str>,
    /// Serve a certificate that expired in 2020.
    pub expired: bool,
    /// Hold every connection after the first this long before its TLS
    /// handshake (a slow new connection, for first-usable dispatch).
    pub slow_new_connections: Option<Duration>,
    /// Start with a full accept queue (backlog 0, filled by one idle
    /// connection) and accept nothing for this long: SYNs arriving
    /// meanwhile are dropped, as on a lossy path.
    pub full_backlog_for: Option<Duration>,
    /// Also serve HTTP/3 over QUIC on the same port number (UDP).
    pub h3: bool,
    /// With `h3`, advertise it on TCP responses: `Alt-Svc: h3=":PORT"`.
    pub advertise_h3: bool,
    /// An `Alt-Svc` value for every TCP response (say, another server's
    /// HTTP/3); takes the place of `advertise_h3`'s.
    pub alt_svc: Option<String>,
    /// Instead of `h3`, a UDP black hole on the port: datagrams are read
    /// and dropped, nothing ever answers (as on a path that drops UDP).
    pub udp_black_hole: bool,
}

impl Default for OriginOptions {
    fn default() -> Self {
        OriginOptions {
            listen: Ipv4Addr::LOCALHOST.into(),
            names: vec!["localhost".into(), "www.test".into(), "127.0.0.1".into()],
            alpn: vec!["h2", "http/1.1"],
            expired: false,
            slow_new_connections: None,
            full_backlog_for: None,
            h3: false,
            advertise_h3: false,
            alt_svc: None,
            udp_black_hole: false,
        }
    }
}

/// A running origin; stops when dropped.
pub struct TestOrigin {
    /// Where it listens: `listen` and the port (`[::]:port` for `::`).
    pub addr: SocketAddr,
    /// The CA that signed its certificate, as a PEM file (`--ca`).
    pub ca_file: PathBuf,
    connections: Arc<AtomicUsize>,
    quic_connections: Arc<AtomicUsize>,
    open: Arc<(AtomicUsize, AtomicUsize)>,
    _dir: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for TestOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestOrigin")
            .field("addr", &self.addr)
            .finish()
    }
}

/// A private CA and a leaf certificate for `names`, signed by it:
/// (CA PEM, leaf certificate, leaf key).
fn issue(names: &[&str], expired: bool) -> (String, rcgen::Certificate, rcgen::KeyPair) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sockhost test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    if expired {
        leaf.not_before = rcgen::date_time_ymd(2019, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    (ca_cert.pem(), leaf_cert, leaf_key)
}

/// PEM files for another server (nginx): (CA, certificate, key).
pub fn certificates(names: &[&str]) -> (String, String, String) {
    let (ca, cert, key) = issue(names, false);
    (ca, cert.pem(), key.serialize_pem())
}

/// The byte at offset `i` of `/bytes/N`.
pub fn pattern_byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// A socket of `kind` bound to `addr`. IPv6 sockets are dual-stack, so
/// that `::` takes IPv4 too (the system default may say otherwise).
fn bound_socket(kind: SocketType, addr: SocketAddr) -> std::io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let fd = rustix::net::socket_with(family, kind, SocketFlags::CLOEXEC, None)?;
    if addr.is_ipv6() {
        rustix::net::sockopt::set_ipv6_v6only(&fd, false)?;
    }
    if kind == SocketType::STREAM {
        // As std's TcpListener::bind does.
        rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
    }
    rustix::net::bind(&fd, &addr)?;
    Ok(fd)
}

/// A TCP listener on `ip` (a port chosen by the kernel) with `backlog`.
fn tcp_listener(ip: IpAddr, backlog: i32) -> std::net::TcpListener {
    let listen = || -> std::io::Result<OwnedFd> {
        let fd = bound_socket(SocketType::STREAM, SocketAddr::new(ip, 0))?;
        rustix::net::listen(&fd, backlog)?;
        Ok(fd)
    };
    std::net::TcpListener::from(listen().unwrap_or_else(|e| panic!("TCP listener on {ip}: {e}")))
}

/// A UDP socket on `addr`.
fn udp_socket(addr: SocketAddr) -> std::net::UdpSocket {
    bound_socket(SocketType::DGRAM, addr)
        .map(std::net::UdpSocket::from)
        .unwrap_or_else(|e| panic!("UDP port of the origin ({addr}): {e}"))
}

impl TestOrigin {
    /// Starts the origin in network namespace `ns` (its sockets are made
    /// there; its runtime's threads start there too); `options.listen` is
    /// usually `::` or one of `ns`'s addresses.
    pub fn start_in(ns: &Namespace, options: OriginOptions) -> TestOrigin {
        ns.run(|| TestOrigin::start(options))
    }

    /// Starts the origin on its own runtime.
    pub fn start(options: OriginOptions) -> TestOrigin {
        let dir = tempfile::tempdir().expect("temp dir");
        let names: Vec<&str> = options.names.iter().map(String::as_str).collect();
        let (ca_pem, leaf_cert, leaf_key) = issue(&names, options.expired);
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf_cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        config.alpn_protocols = options.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let h3_crypto = options.h3.then(|| {
            let mut c = config.clone();
            c.alpn_protocols = vec![b"h3".to_vec()];
            c.max_early_data_size = 0;
            c
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        // Bound without tokio so that starting an origin works inside a
        // test's own runtime too.
        let (std_listener, filler) = match options.full_backlog_for {
            None => (tcp_listener(options.listen, 128), None),
            Some(_) => {
                let listener = tcp_listener(options.listen, 0);
                let mut to = listener.local_addr().unwrap();
                // The filler needs an address to connect to, not `::`.
                if to.ip().is_unspecified() {
                    to.set_ip(match to.ip() {
                        IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                        IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
                    });
                }
                let filler = std::net::TcpStream::connect(to).unwrap();
                (listener, Some(filler))
            }
        };
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let hold = options.full_backlog_for;
        let alt_svc = match &options.alt_svc {
            Some(v) => Some(v.clone()),
            None => (options.h3 && options.advertise_h3)
                .then(|| format!("h3=\":{}\"; ma=3600", addr.port())),
        }
        .map(|v| http::HeaderValue::from_str(&v).expect("a valid header value"));
        let counter = connections.clone();
        // (open now, most ever open at once)
        let open: Arc<(AtomicUsize, AtomicUsize)> = Arc::default();
        let open_task = open.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            if let Some(d) = hold {
                tokio::time::sleep(d).await;
            }
            let _filler = filler;
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                // As nginx's tcp_nodelay: with Nagle on, the small frames
                // of an h2 response wait for the client's delayed ACK and
                // first bytes arrive ~40 ms late.
                let _ = tcp.set_nodelay(true);
                let index = counter.fetch_add(1, Ordering::SeqCst);
                let now_open = open_task.0.fetch_add(1, Ordering::SeqCst) + 1;
                open_task.1.fetch_max(now_open, Ordering::SeqCst);
                let open_conn = open_task.clone();
                let acceptor = acceptor.clone();
                let delay = options.slow_new_connections.filter(|_| index > 0);
                let alt_svc = alt_svc.clone();
                tokio::spawn(async move {
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(
                                TokioIo::new(tls),
                                hyper::service::service_fn(move |req| {
                                    let alt_svc = alt_svc.clone();
                                    async move {
                                        let mut r = if req.method() == http::Method::POST
                                            && req.uri().path() == "/sink"
                                        {
                                            sink(req.into_body()).await
                                        } else {
                                            route(req).await?
                                        };
                                        if let Some(v) = alt_svc {
                                            r.headers_mut().insert(http::header::ALT_SVC, v);
                                        }
                                        Ok::<_, Infallible>(r)
                                    }
                                }),
                            )
                            .await;
                    }
                    open_conn.0.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let quic_connections = Arc::new(AtomicUsize::new(0));
        if let Some(crypto) = h3_crypto {
            let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(crypto)
                .expect("a TLS 1.3 config for QUIC");
            let server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
            // Endpoint::server would bind with the system default, which
            // may make `::` IPv6-only.
            let socket = udp_socket(addr);
            let endpoint = {
                let _guard = runtime.enter();
                quinn::Endpoint::new(
                    quinn::EndpointConfig::default(),
                    Some(server),
                    socket,
                    Arc::new(quinn::TokioRuntime),
                )
                .expect("QUIC endpoint of the origin")
            };
            runtime.spawn(serve_h3(endpoint, quic_connections.clone()));
        }
        if options.udp_black_hole {
            let hole = udp_socket(addr);
            let dropped = quic_connections.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                // Counts datagrams swallowed; ends with the process.
                while hole.recv_from(&mut buf).is_ok() {
                    dropped.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        TestOrigin {
            addr,
            ca_file,
            connections,
            quic_connections,
            open,
            _dir: dir,
            runtime: Some(runtime),
        }
    }

    /// The most connections that were open at the same time.
    pub fn max_open(&self) -> usize {
        self.open.1.load(Ordering::SeqCst)
    }

    /// QUIC connections accepted so far (with `udp_black_hole`: datagrams
    /// swallowed).
    pub fn quic_connections(&self) -> usize {
        self.quic_connections.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// Serves HTTP/3 on `endpoint`: the same routes as over TCP.
async fn serve_h3(endpoint: quinn::Endpoint, counter: Arc<AtomicUsize>) {
    while let Some(incoming) = endpoint.accept().await {
        let counter = counter.clone();
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let Ok(mut h3) =
                h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn)).await
            else {
                return;
            };
            loop {
                let resolver = match h3.accept().await {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => {
                        if !e.is_h3_no_error() {
                            eprintln!("test origin: h3 accept: {e}");
                        }
                        break;
                    }
                };
                tokio::spawn(async move {
                    let (req, mut stream) = match resolver.resolve_request().await {
                        Ok(r) => r,
                        Err(e) => {
                            eprintln!("test origin: h3 request: {e}");
                            return;
                        }
                    };
                    if req.method() == http::Method::POST && req.uri().path() == "/sink" {
                        sink_h3(stream).await;
                        return;
                    }
                    let Ok(response) = route(req).await;
                    let (parts, mut body) = response.into_parts();
                    if let Err(e) = stream.send_response(Response::from_parts(parts, ())).await {
                        eprintln!("test origin: h3 response: {e}");
                        return;
                    }
                    while let Some(Ok(frame)) = body.frame().await {
                        if let Ok(data) = frame.into_data() {
                            if stream.send_data(data).await.is_err() {
                                return;
                            }
                        }
                    }
                    let _ = stream.finish().await;
                });
            }
        });
    }
}

/// `POST /sink` over HTTP/3: reads the whole request body, answers with
/// how many bytes came (an upload target, so that sockhost is the sender
/// and its congestion controller is the one at work).
async fn sink_h3<S>(mut stream: h3::server::RequestStream<S, Bytes>)
where
    S: h3::quic::BidiStream<Bytes>,
{
    use bytes::Buf;
    let mut n = 0u64;
    loop {
        match stream.recv_data().await {
            Ok(Some(mut chunk)) => {
                n += chunk.remaining() as u64;
                chunk.advance(chunk.remaining());
            }
            Ok(None) => break,
            Err(e) => {
                eprintln!("test origin: h3 upload: {e}");
                return;
            }
        }
    }
    let response = Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(())
        .unwrap();
    if stream.send_response(response).await.is_ok() {
        let _ = stream
            .send_data(Bytes::from(format!("received {n} bytes\n")))
            .await;
        let _ = stream.finish().await;
    }
}

/// `POST /sink` over HTTP/1.1 and HTTP/2: reads the whole request body as
/// it comes and answers with its length and FNV-1a hash, so an upload's
/// sender can check that every byte arrived, in order.
async fn sink(mut body: hyper::body::Incoming) -> Response<Body> {
    let (mut n, mut hash) = (0u64, FNV_OFFSET);
    let answer = loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    n += data.len() as u64;
                    hash = fnv1a(hash, data);
                }
            }
            Some(Err(e)) => break (400, format!("upload broke after {n} bytes: {e}\n")),
            None => break (200, format!("received {n} bytes, fnv1a {hash:016x}\n")),
        }
    };
    Response::builder()
        .status(answer.0)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(answer.1)).boxed())
        .unwrap()
}

/// FNV-1a's offset basis (64-bit).
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Folds `data` into a 64-bit FNV-1a hash.
pub fn fnv1a(mut hash: u64, data: &[u8]) -> u64 {
    for b in data {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

async fn route<B>(req: Request<B>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let version = format!("{:?}", req.version());
    let text = |status: u16, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain")
            .header("x-origin-version", version.clone())
            .body(Full::new(Bytes::from(body)).boxed())
            .unwrap()
    };
    if path == "/" {
        return Ok(text(200, "hello from the test origin\n".into()));
    }
    if path == "/headers" {
        let mut out = String::new();
        for (name, value) in req.headers() {
            out.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        return Ok(text(200, out));
    }
    if let Some(ms) = path
        .strip_prefix("/slow/")
        .and_then(|n| n.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Ok(text(200, format!("slept {ms} ms\n")));
    }
    if let Some(n) = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        // Streamed in 64 KiB frames, so large bodies never sit in memory.
        let chunks = (0..n.div_ceil(65536)).map(move |c| {
            let start = c * 65536;
            let end = (start + 65536).min(n);
            let data: Vec<u8> = (start..end).map(pattern_byte).collect();
            Ok::<_, Infallible>(Frame::data(Bytes::from(data)))
        });
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        return Ok(Response::builder()
            .status(200)
            .header("content-length", n.to_string())
            .header("x-origin-version", version)
            .body(BodyExt::boxed(body))
            .unwrap());
    }
    Ok(text(404, format!("no route {path}\n")))
}
