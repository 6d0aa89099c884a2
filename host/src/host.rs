//! The embeddable host: `Host::builder()…build()` then `host.fetch(req)`,
//! from any tokio program. Responses stream; an HTTP/1.1 connection goes
//! back to the pool when its response body has been read to the end.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};

use crate::extensions::{Extensions, PluginAction, RequestDecision, RequestRef};
use crate::net::alt_svc::AltSvcCache;
use crate::net::connect::Connector;
use crate::net::connection::{ConnectionInfo, Sender, VersionPref};
use crate::net::dial::Dialer;
use crate::net::dns::{DnsConfig, ResolveOverride, Resolver};
use crate::net::manager::{Lease, Manager};
use crate::net::planning::Planning;
use crate::net::pool::{OriginKey, PoolPrefs};
use crate::net::tls::{Tls, TlsOptions};
use crate::plugins::bindings::types::Origin;
use crate::plugins::congestion::{CongestionChoice, CongestionSelection};
use crate::plugins::connect::{ConnectPlugin, PluginPolicy};
use crate::plugins::extension::{ExtensionPlugin, ResourceType};
use crate::plugins::telemetry::{
    EventKind, HttpVersion, Method as WitMethod, PluginFaultEvent, RequestEndEvent,
    RequestStartEvent, TelemetryPlugin,
};
use crate::telemetry::Bus;

/// Longest a request may wait for its response headers by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The network the host considers itself on until it can tell networks
/// apart (Alt-Svc entries and connection history are kept per network).
pub const DEFAULT_NETWORK: &str = "default";
/// Most request headers a caller may add.
const MAX_REQUEST_HEADERS: usize = 256;

/// Why a fetch failed. Every variant is one line a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not an http(s) URL with a host.
    #[error("invalid URL {url:?}: {why}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// A request header is invalid.
    #[error("invalid header {0}")]
    InvalidHeader(String),
    /// DNS, connection or TLS failed.
    #[error("{0}")]
    Connect(String),
    /// The server's response was not valid HTTP, or the connection broke.
    #[error("HTTP error from {origin}: {message}")]
    Http {
        /// The origin.
        origin: String,
        /// What happened.
        message: String,
    },
    /// No response headers within the timeout.
    #[error("no response from {origin} within {timeout:?}")]
    Timeout {
        /// The origin.
        origin: String,
        /// The timeout.
        timeout: Duration,
    },
    /// An extension cancelled the request (or failed closed).
    #[error("blocked by extension {extension}: {reason}")]
    Blocked {
        /// The extension.
        extension: String,
        /// Its reason.
        reason: String,
    },
    /// Extensions redirected the request too many times.
    #[error("too many extension redirects (more than {0}) starting from {1}")]
    TooManyRedirects(usize, String),
    /// The host could not be built.
    #[error("{0}")]
    Setup(String),
}

/// Most extension redirects one fetch follows.
pub const MAX_EXTENSION_REDIRECTS: usize = 5;

/// A request.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// `GET`, `POST`, …
    pub method: Method,
    /// Absolute http(s) URL.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body (empty for GET).
    pub body: Bytes,
    /// What is being loaded (what extension rules and filters see).
    pub resource_type: ResourceType,
}

impl FetchRequest {
    /// A GET of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        FetchRequest {
            method: Method::GET,
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
            resource_type: ResourceType::Document,
        }
    }
}

/// Timings of one fetch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// DNS (zero on a reused connection).
    pub dns: Duration,
    /// TCP connect (zero on a reused connection).
    pub connect: Duration,
    /// TLS handshake (zero on a reused connection or cleartext).
    pub tls: Duration,
    /// From the start of the fetch to the response headers.
    pub first_byte: Duration,
}

/// A response whose body streams.
#[derive(Debug)]
pub struct FetchResponse {
    /// The status.
    pub status: StatusCode,
    /// The HTTP version.
    pub version: Version,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: ResponseBody,
    /// The connection's setup.
    pub connection: Arc<ConnectionInfo>,
    /// Whether the connection was reused.
    pub reused: bool,
    /// Timings up to the headers.
    pub timings: Timings,
    /// When the fetch started.
    pub started: Instant,
    /// The URL finally fetched (after extension redirects).
    pub url: String,
    /// What plugins did to the request and response.
    pub actions: Vec<PluginAction>,
}

/// A streaming response body; returns its connection to the pool at the end.
#[derive(Debug)]
pub struct ResponseBody {
    inner: BodySource,
    lease: Option<Lease>,
    /// The request-end event to publish when the body ends or is dropped
    /// (boxed: the response is moved across await points, the event is big).
    end: Option<Box<RequestEnd>>,
}

/// Where a response body comes from.
enum BodySource {
    /// HTTP/1.1 and HTTP/2.
    Hyper(Incoming),
    /// HTTP/3: the request's stream (boxed: it is large, and the response
    /// moves across await points); `done` once its data ended.
    H3 {
        stream: Box<h3::client::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>>,
        done: bool,
    },
}

impl std::fmt::Debug for BodySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodySource::Hyper(b) => b.fmt(f),
            BodySource::H3 { done, .. } => write!(f, "h3 stream (done: {done})"),
        }
    }
}

/// An error while a response body streams.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A request-end event waiting for its body to end.
#[derive(Debug)]
struct RequestEnd {
    bus: Bus,
    origin: Arc<Origin>,
    event: RequestEndEvent,
    started: Instant,
}

impl ResponseBody {
    fn finish(&mut self, error: Option<String>) {
        if let Some(end) = self.end.take() {
            let RequestEnd {
                bus,
                origin,
                mut event,
                started,
            } = *end;
            event.total = started.elapsed().as_micros() as u64;
            event.error = error;
            bus.publish_for(&origin, EventKind::RequestEnd(event));
        }
    }
}

impl ResponseBody {
    /// The next chunk, `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, FetchError> {
        loop {
            match self.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
                Some(Err(e)) => {
                    return Err(FetchError::Http {
                        origin: String::new(),
                        message: e.to_string(),
                    })
                }
                None => return Ok(None),
            }
        }
    }

    /// Reads the rest of the body into memory (for small bodies).
    pub async fn bytes(mut self) -> Result<Bytes, FetchError> {
        let mut out = Vec::new();
        while let Some(c) = self.chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(Bytes::from(out))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled: Poll<Option<Result<Frame<Bytes>, BodyError>>> = match &mut self.inner {
            BodySource::Hyper(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(BodyError::from))),
            BodySource::H3 { done: true, .. } => Poll::Ready(None),
            BodySource::H3 { stream, done } => match stream.poll_recv_data(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(Some(mut buf))) => {
                    let len = bytes::Buf::remaining(&buf);
                    let data = bytes::Buf::copy_to_bytes(&mut buf, len);
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Poll::Ready(Ok(None)) => {
                    *done = true;
                    Poll::Ready(None)
                }
                Poll::Ready(Err(e)) => Poll::Ready(Some(Err(BodyError::from(e)))),
            },
        };
        match &polled {
            Poll::Ready(None) => {
                if let Some(lease) = self.lease.take() {
                    lease.give_back(true);
                }
                self.finish(None);
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(lease) = self.lease.take() {
                    lease.give_back(false);
                }
                let e = e.to_string();
                self.finish(Some(e));
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(end)) = (frame.data_ref(), self.end.as_mut()) {
                    end.event.bytes_received += data.len() as u64;
                }
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if self.end.is_some() {
            self.finish(Some("response body dropped before its end".into()));
        }
        if let Some(lease) = self.lease.take() {
            // Unread HTTP/1.1 bytes make the connection unusable; an
            // HTTP/2 stream is simply reset.
            let reusable = match &self.inner {
                BodySource::Hyper(b) => {
                    b.is_end_stream() || matches!(lease.sender, Sender::Http2(_))
                }
                // The stream is reset; the connection carries on.
                BodySource::H3 { .. } => true,
            };
            lease.give_back(reusable);
        }
    }
}

/// Builds a [`Host`].
#[derive(Debug, Default)]
pub struct HostBuilder {
    /// Where Alt-Svc alternatives are kept across runs.
    alt_svc_file: Option<PathBuf>,
    /// Batching is on unless this is set (so that `Default` means on).
    no_udp_batching: bool,
    /// `None`: the default; `Some(None)`: wait for every DNS answer.
    resolution_delay: Option<Option<Duration>>,
    dns: DnsConfig,
    tls: TlsOptions,
    version: VersionPref,
    pool: PoolPrefs,
    connector: Connector,
    request_timeout: Option<Duration>,
    extensions: Extensions,
    probes: Vec<TelemetryPlugin>,
    connect_policy: Option<ConnectPlugin>,
    congestion: CongestionChoice,
    fault_log: Option<crate::plugins::FaultLog>,
}

impl HostBuilder {
    /// Which congestion controller QUIC connections get (default: quinn's
    /// Cubic for all). Replace it while running with
    /// [`Host::set_congestion`].
    pub fn congestion(mut self, choice: CongestionChoice) -> Self {
        self.congestion = choice;
        self
    }

    /// Publishes the faults recorded in `log` (the plugin runtime's) to the
    /// probes as plugin-fault events.
    pub fn fault_log(mut self, log: crate::plugins::FaultLog) -> Self {
        self.fault_log = Some(log);
        self
    }

    /// Plans connections with this connect-policy plugin instead of the
    /// built-in RFC 8305 plan.
    pub fn connect_policy(mut self, plugin: ConnectPlugin) -> Self {
        self.connect_policy = Some(plugin);
        self
    }

    /// Adds a telemetry probe; it receives events in batches, off the
    /// request path.
    pub fn probe(mut self, probe: TelemetryPlugin) -> Self {
        self.probes.push(probe);
        self
    }

    /// Adds an extension; extensions see requests in the order added.
    pub fn extension(mut self, plugin: ExtensionPlugin) -> Self {
        self.extensions.push(plugin);
        self
    }

    /// Use these name servers instead of the system's.
    pub fn name_servers(mut self, servers: Vec<std::net::SocketAddr>) -> Self {
        self.dns.name_servers = servers;
        self
    }

    /// A curl-style `--resolve` override.
    pub fn resolve(mut self, o: ResolveOverride) -> Self {
        self.dns.overrides.push(o);
        self
    }

    /// Trust the CA certificates in this PEM file too.
    pub fn ca_file(mut self, path: PathBuf) -> Self {
        self.tls.ca_files.push(path);
        self
    }

    /// Trust only `--ca` files, not the platform's roots.
    pub fn no_platform_roots(mut self) -> Self {
        self.tls.no_platform_roots = true;
        self
    }

    /// Keeps Alt-Svc alternatives in `path` (JSON), so that an HTTP/3
    /// upgrade learned in one run is used from the first request of the
    /// next.
    pub fn alt_svc_file(mut self, path: PathBuf) -> Self {
        self.alt_svc_file = Some(path);
        self
    }

    /// How long a connection race waits for AAAA and HTTPS answers after
    /// the first address answer (Happy Eyeballs v3; default
    /// [`DEFAULT_RESOLUTION_DELAY`]); `None` waits for every answer.
    ///
    /// [`DEFAULT_RESOLUTION_DELAY`]: crate::net::dns_gate::DEFAULT_RESOLUTION_DELAY
    pub fn resolution_delay(mut self, delay: Option<Duration>) -> Self {
        self.resolution_delay = Some(delay);
        self
    }

    /// Turns batched UDP I/O (recvmmsg, GSO, GRO) off for QUIC: one
    /// datagram per system call, for comparison. On by default.
    pub fn udp_batching(mut self, on: bool) -> Self {
        self.no_udp_batching = !on;
        self
    }

    /// Force an HTTP version.
    pub fn version(mut self, v: VersionPref) -> Self {
        self.version = v;
        self
    }

    /// Connection limits and idle timeout.
    pub fn pool(mut self, prefs: PoolPrefs) -> Self {
        self.pool = prefs;
        self
    }

    /// Race tunables (syn-retry, connect timeout).
    pub fn connector(mut self, c: Connector) -> Self {
        self.connector = c;
        self
    }

    /// Longest wait for response headers.
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = Some(t);
        self
    }

    /// Builds the host; must be called within a tokio runtime.
    pub fn build(self) -> Result<Host, FetchError> {
        let resolver = Resolver::new(&self.dns).map_err(|e| FetchError::Setup(e.to_string()))?;
        let tls = Tls::new(&self.tls).map_err(|e| FetchError::Setup(e.to_string()))?;
        let bus = Bus::start(self.probes);
        let mut quic = crate::net::quic::Quic::new(tls.h3_config(), !self.no_udp_batching)
            .map_err(|e| FetchError::Setup(e.to_string()))?;
        // One handshake timeout for TCP and QUIC attempts alike.
        quic.handshake_timeout = self.connector.connect_timeout;
        let congestion = Arc::new(CongestionSelection::new(self.congestion, bus.clone()));
        quic.congestion = congestion.clone();
        if let (Some(log), true) = (&self.fault_log, bus.is_active()) {
            let weak = bus.downgrade();
            log.listen(move |f| {
                let Some(bus) = weak.upgrade() else {
                    return false;
                };
                bus.publish(EventKind::PluginFault(PluginFaultEvent {
                    plugin: f.plugin.to_string(),
                    kind: f.kind.as_str().to_owned(),
                    message: f.message.clone(),
                    disabled: f.action == crate::plugins::FaultAction::Disabled,
                }));
                true
            });
        }
        let alt_svc = match &self.alt_svc_file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => {
                    AltSvcCache::load(&text, std::time::SystemTime::now()).unwrap_or_else(|e| {
                        // A damaged cache costs an upgrade, not the run.
                        tracing::warn!(
                            "{}: {e}; starting with an empty Alt-Svc cache",
                            path.display()
                        );
                        AltSvcCache::default()
                    })
                }
                Err(_) => AltSvcCache::default(),
            },
            None => AltSvcCache::default(),
        };
        let alt_svc = Arc::new(std::sync::Mutex::new(alt_svc));
        let dialer = Dialer {
            resolver: Arc::new(resolver),
            quic,
            alt_svc: alt_svc.clone(),
            network: DEFAULT_NETWORK.to_owned(),
            tls,
            connector: self.connector,
            version: self.version,
            observer: Arc::new(bus.clone()),
            planning: Planning::new(self.connect_policy.map(|p| {
                Arc::new(PluginPolicy::new(p)) as Arc<dyn crate::net::plan::ConnectPolicy>
            })),
            history: Arc::default(),
            resolution_delay: self
                .resolution_delay
                .unwrap_or(Some(crate::net::dns_gate::DEFAULT_RESOLUTION_DELAY)),
        };
        Ok(Host {
            alt_svc,
            alt_svc_file: self.alt_svc_file.map(Arc::new),
            network: dialer.clone(),
            congestion,
            manager: Manager::start(dialer, self.pool),
            request_timeout: self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
            extensions: self.extensions,
            next_id: Arc::new(std::sync::atomic::AtomicU64::new(1)),
            bus,
        })
    }
}

/// The socket process as a library.
#[derive(Debug, Clone)]
pub struct Host {
    /// The dialer's shared state (history, Alt-Svc), for network changes.
    network: Dialer,
    /// Shared with the dialer, which reads it.
    alt_svc: Arc<std::sync::Mutex<AltSvcCache>>,
    alt_svc_file: Option<Arc<PathBuf>>,
    /// The congestion choice new QUIC connections get (shared with the
    /// dialer's QUIC settings).
    congestion: Arc<CongestionSelection>,
    manager: Manager,
    request_timeout: Duration,
    extensions: Extensions,
    next_id: Arc<std::sync::atomic::AtomicU64>,
    bus: Bus,
}

impl Host {
    /// Starts building a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// Connections and waiting requests in the pool right now.
    pub async fn pool_stats(&self) -> Option<crate::net::manager::PoolStats> {
        self.manager.stats().await
    }

    /// Tells the host the network changed (another Wi-Fi, a VPN, …):
    /// connection history is flushed, Alt-Svc entries not marked `persist`
    /// are dropped, and each origin's next plan is told, so the policy is
    /// careful again. Open connections are left to fail or finish.
    pub fn network_changed(&self) {
        self.network.network_changed();
    }

    /// Replaces the congestion controller choice: connections opened from
    /// now on use it, open ones finish on the controller they have.
    pub fn set_congestion(&self, choice: CongestionChoice) {
        self.congestion.replace(choice);
    }

    /// The congestion controller choice new connections get.
    pub fn congestion(&self) -> Arc<CongestionChoice> {
        self.congestion.choice()
    }

    /// The telemetry bus (to flush it or collect the probes' metrics).
    pub fn telemetry(&self) -> &Bus {
        &self.bus
    }

    /// Fetches `request`; the body streams from the returned response.
    /// Extensions decide first, before any network work.
    pub async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, FetchError> {
        let started = Instant::now();
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut actions = Vec::new();
        let mut request = request;
        let first_url = request.url.clone();
        let mut hops = 0;
        // Parsed once, and again only when an extension redirects.
        let mut parsed = parse_url(&request.url)?;
        loop {
            if self.extensions.is_empty() {
                break;
            }
            let decision = self
                .extensions
                .before_request(
                    id,
                    &request.url,
                    request.method.as_str(),
                    request.resource_type,
                    &mut request.headers,
                    &mut actions,
                )
                .await;
            match decision {
                RequestDecision::Continue => break,
                RequestDecision::Cancel { extension, reason } => {
                    return Err(FetchError::Blocked { extension, reason })
                }
                RequestDecision::Redirect { url, .. } => {
                    hops += 1;
                    if hops > MAX_EXTENSION_REDIRECTS {
                        return Err(FetchError::TooManyRedirects(
                            MAX_EXTENSION_REDIRECTS,
                            first_url,
                        ));
                    }
                    request.url = url;
                    parsed = parse_url(&request.url)?;
                }
            }
        }
        let (origin, path) = parsed;
        // Probes see the origin and method, not the URL or header values.
        // Nothing is built for them when there are none.
        let end_event = self.bus.is_active().then(|| {
            let wit_origin = self.bus.origin(&origin.scheme, &origin.host, origin.port);
            let method = WitMethod::from_http(&request.method);
            self.bus.publish_for(
                &wit_origin,
                EventKind::RequestStart(RequestStartEvent {
                    id,
                    origin: 0,
                    method: method.clone(),
                    headers: None,
                }),
            );
            let event = RequestEndEvent {
                id,
                origin: 0,
                method,
                status: None,
                protocol: None,
                bytes_sent: request.body.len() as u64,
                bytes_received: 0,
                time_to_first_byte: None,
                total: 0,
                error: None,
            };
            (wit_origin, event)
        });
        let mut response = match self.fetch_once(&request, origin, path, started).await {
            Ok(r) => r,
            Err(e) => {
                if let Some((wit_origin, mut event)) = end_event {
                    event.total = started.elapsed().as_micros() as u64;
                    event.error = Some(e.to_string());
                    self.bus
                        .publish_for(&wit_origin, EventKind::RequestEnd(event));
                }
                return Err(e);
            }
        };
        if let Some((wit_origin, mut event)) = end_event {
            event.status = Some(response.status.as_u16());
            event.protocol = HttpVersion::from_http(response.version);
            event.time_to_first_byte = Some(response.timings.first_byte.as_micros() as u64);
            response.body.end = Some(Box::new(RequestEnd {
                bus: self.bus.clone(),
                origin: wit_origin,
                event,
                started,
            }));
        }
        if !self.extensions.is_empty() {
            self.extensions
                .after_response(
                    RequestRef {
                        id,
                        url: &request.url,
                        method: request.method.as_str(),
                        resource_type: request.resource_type,
                    },
                    response.status.as_u16(),
                    &mut response.headers,
                    &mut actions,
                )
                .await
                .map_err(|(extension, reason)| FetchError::Blocked { extension, reason })?;
        }
        response.actions = actions;
        Ok(response)
    }

    async fn fetch_once(
        &self,
        request: &FetchRequest,
        origin: OriginKey,
        path: String,
        started: Instant,
    ) -> Result<FetchResponse, FetchError> {
        let mut headers = HeaderMap::new();
        if request.headers.len() > MAX_REQUEST_HEADERS {
            return Err(FetchError::InvalidHeader(format!(
                "list: more than {MAX_REQUEST_HEADERS} headers"
            )));
        }
        for (name, value) in &request.headers {
            let n = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| FetchError::InvalidHeader(format!("name {name:?}")))?;
            let v = HeaderValue::from_str(value.trim())
                .map_err(|_| FetchError::InvalidHeader(format!("value of {name}")))?;
            headers.append(n, v);
        }
        let origin_text = origin.to_string();
        let lease = self
            .manager
            .lease(origin.clone())
            .await
            .map_err(|e| FetchError::Connect(e.to_string()))?;
        let reused = lease.reused;
        let info = lease.info.clone();
        let host_header = if (origin.scheme == "https" && origin.port == 443)
            || (origin.scheme == "http" && origin.port == 80)
        {
            origin.host.clone()
        } else {
            format!("{}:{}", origin.host, origin.port)
        };
        let mut builder = http::Request::builder().method(request.method.clone());
        let multiplexed = matches!(lease.sender, Sender::Http2(_) | Sender::Http3(_));
        builder = if multiplexed {
            let version = match lease.sender {
                Sender::Http3(_) => Version::HTTP_3,
                _ => Version::HTTP_2,
            };
            builder
                .uri(format!("{}://{}{}", origin.scheme, host_header, path))
                .version(version)
        } else {
            builder
                .uri(path.clone())
                .header(http::header::HOST, &host_header)
        };
        let mut req =
            builder
                .body(Full::new(request.body.clone()))
                .map_err(|e| FetchError::InvalidUrl {
                    url: request.url.clone(),
                    why: e.to_string(),
                })?;
        if !headers.contains_key(http::header::USER_AGENT) {
            req.headers_mut().insert(
                http::header::USER_AGENT,
                HeaderValue::from_static(concat!("sockhost/", env!("CARGO_PKG_VERSION"))),
            );
        }
        for (n, v) in headers.iter() {
            req.headers_mut().append(n.clone(), v.clone());
        }
        let mut lease = lease;
        let body = request.body.clone();
        let sent = async {
            let hyper_response = |r: Result<http::Response<Incoming>, hyper::Error>| {
                r.map(|r| {
                    let (parts, b) = r.into_parts();
                    (parts, BodySource::Hyper(b))
                })
                .map_err(|e| e.to_string())
            };
            match &mut lease.sender {
                Sender::Http1(s) => {
                    s.ready().await.map_err(|e| e.to_string())?;
                    hyper_response(s.send_request(req).await)
                }
                Sender::Http2(s) => {
                    s.ready().await.map_err(|e| e.to_string())?;
                    hyper_response(s.send_request(req).await)
                }
                Sender::Http3(s) => {
                    let (parts, _) = req.into_parts();
                    let mut stream = s
                        .send_request(http::Request::from_parts(parts, ()))
                        .await
                        .map_err(|e| e.to_string())?;
                    // RFC 9114 4.1.1: a server may answer before reading the
                    // whole request and stop our sending side (quinn servers
                    // do so whenever they drop a request they did not read to
                    // its end); the response must still be read.
                    let mut sent = Ok(());
                    if !body.is_empty() {
                        sent = stream.send_data(body).await;
                    }
                    if sent.is_ok() {
                        sent = stream.finish().await;
                    }
                    match sent {
                        Ok(()) | Err(h3::error::StreamError::RemoteTerminate { .. }) => {}
                        Err(e) => return Err(e.to_string()),
                    }
                    let response = stream.recv_response().await.map_err(|e| e.to_string())?;
                    let (parts, ()) = response.into_parts();
                    Ok((
                        parts,
                        BodySource::H3 {
                            stream: Box::new(stream),
                            done: false,
                        },
                    ))
                }
            }
        };
        let (parts, source) = match tokio::time::timeout(self.request_timeout, sent).await {
            Ok(Ok(r)) => r,
            Ok(Err(message)) => {
                lease.give_back(false);
                return Err(FetchError::Http {
                    origin: origin_text,
                    message,
                });
            }
            Err(_) => {
                lease.give_back(false);
                return Err(FetchError::Timeout {
                    origin: origin_text,
                    timeout: self.request_timeout,
                });
            }
        };
        let first_byte = started.elapsed();
        if let Some(value) = parts.headers.get(http::header::ALT_SVC) {
            self.learn_alt_svc(&origin, value);
        }
        let timings = if reused {
            Timings {
                first_byte,
                ..Timings::default()
            }
        } else {
            Timings {
                dns: info.dns,
                connect: info.connect,
                tls: info.tls,
                first_byte,
            }
        };
        Ok(FetchResponse {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body: ResponseBody {
                inner: source,
                lease: Some(lease),
                end: None,
            },
            connection: info,
            reused,
            timings,
            started,
            url: request.url.clone(),
            actions: Vec::new(),
        })
    }
}

impl Host {
    /// Remembers what an origin's Alt-Svc header says (only over https, as
    /// RFC 7838 §2.1 requires of what is used), saving the cache when the
    /// alternatives changed.
    fn learn_alt_svc(&self, origin: &OriginKey, value: &HeaderValue) {
        if origin.scheme != "https" {
            return;
        }
        let said = match value
            .to_str()
            .map_err(|e| e.to_string())
            .and_then(|v| crate::net::alt_svc::parse(v).map_err(|e| e.to_string()))
        {
            Ok(said) => said,
            Err(e) => {
                tracing::debug!("{origin}: Alt-Svc ignored: {e}");
                return;
            }
        };
        let now = std::time::SystemTime::now();
        let mut cache = self.alt_svc.lock().unwrap_or_else(|e| e.into_inner());
        if !cache.update(DEFAULT_NETWORK, origin, said, now) {
            return;
        }
        let Some(path) = self.alt_svc_file.clone() else {
            return;
        };
        let text = cache.save(now);
        drop(cache);
        // Written now, not on a background task, so that a process that
        // exits right after its request still keeps what it learned; this
        // happens only when an origin's alternatives change, and the file
        // is small (bounded by MAX_ORIGINS). A failed save costs an
        // upgrade in the next run, nothing else.
        let tmp = path.with_extension("tmp");
        let saved = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &*path));
        if let Err(e) = saved {
            tracing::warn!("cannot save the Alt-Svc cache to {}: {e}", path.display());
        }
    }
}

/// The origin and the path-and-query of an http(s) URL.
fn parse_url(text: &str) -> Result<(OriginKey, String), FetchError> {
    let bad = |why: &str| FetchError::InvalidUrl {
        url: text.to_owned(),
        why: why.to_owned(),
    };
    let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(bad("only http and https URLs can be fetched"));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        None => return Err(bad("it has no host")),
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| bad("it has no port"))?;
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    Ok((
        OriginKey {
            scheme: scheme.to_owned(),
            host,
            port,
        },
        path,
    ))
}

/// Reads a whole body (for tests and small responses).
pub async fn read_all(body: ResponseBody) -> Result<Bytes, FetchError> {
    Ok(body
        .collect()
        .await
        .map_err(|e| FetchError::Http {
            origin: String::new(),
            message: e.to_string(),
        })?
        .to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let (o, p) = parse_url("https://Example.com/a/b?c=d#frag").unwrap();
        assert_eq!(o.to_string(), "https://example.com:443");
        assert_eq!(p, "/a/b?c=d");
        let (o, _) = parse_url("http://[::1]:8080").unwrap();
        assert_eq!((o.host.as_str(), o.port), ("[::1]", 8080));
        for bad in [
            "",
            "example.com",
            "ftp://example.com/",
            "https://",
            "http://exa mple.com/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad:?}");
        }
    }
}
