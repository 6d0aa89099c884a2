//! The proxy's request handler: a client's request becomes a
//! [`FetchRequest`] that goes through the one request pipeline
//! ([`Host::fetch`]), and the response streams back. What it cannot or
//! will not forward gets a status and a one-line reason ([`Refusal`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::Method;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{Either, Full, Limited};
use hyper::body::{Body, Incoming};

use super::access_log::{AccessLog, Entry};
use super::auth::{self, Credentials};
use super::client::{ClientConn, InFlight};
use super::counted::{Counted, OnDone};
use super::idle::IdleIo;
use super::intercept::Interceptor;
use super::limits::Limits;
use super::refusal::{wants_json, Refusal, REFUSAL_HEADER};
use super::target::{authority, classify, ProxyTarget};
use super::tunnels::Tunnels;
use super::{actions_header, fetch_dest, hop};
use crate::control::metrics::ProxyMetrics;
use crate::extensions::PluginAction;
use crate::host::{FetchRequest, FetchResponse, Host, RequestBody, ResponseBody, Timings};

/// The ports `CONNECT` may tunnel to unless configured otherwise: a
/// tunnel carries anything, so only HTTPS's port by default.
pub const DEFAULT_CONNECT_PORTS: &[u16] = &[443];

/// What a client gets: the origin's body streaming (counted for the
/// access log), or the proxy's own.
pub type ProxyBody = Either<Counted<ResponseBody>, Full<Bytes>>;

/// The request handler shared by every client connection.
#[derive(Debug, Clone)]
pub struct Proxy {
    host: Host,
    /// The proxy's own addresses (a request to one of them would loop).
    listening: Vec<SocketAddr>,
    /// The largest request body forwarded; `None`: no limit (a body
    /// streams, so its size costs the proxy no memory).
    max_request_body: Option<u64>,
    /// A blind tunnel with no byte either way this long is closed.
    tunnel_idle: Duration,
    connect_ports: Vec<u16>,
    /// Set when `CONNECT`s are intercepted rather than tunnelled blind.
    interceptor: Option<Interceptor>,
    /// Set when clients must authenticate.
    credentials: Option<Arc<Credentials>>,
    access_log: Option<AccessLog>,
    /// Requests and body bytes counted for `/metrics`.
    metrics: Option<Arc<ProxyMetrics>>,
    /// The client of an intercepted tunnel, for the requests inside it
    /// (which come through [`Proxy::handle_inside`], not the server).
    client: Option<ClientConn>,
    /// The tunnels open, which a shutdown waits for.
    tunnels: Tunnels,
}

impl Proxy {
    /// Forwards through `host`; `listening` are the proxy's addresses.
    pub fn new(host: Host, listening: Vec<SocketAddr>) -> Self {
        let limits = Limits::default();
        Proxy {
            host,
            listening,
            max_request_body: limits.max_request_body,
            tunnel_idle: limits.tunnel_idle,
            connect_ports: DEFAULT_CONNECT_PORTS.to_vec(),
            interceptor: None,
            credentials: None,
            access_log: None,
            metrics: None,
            client: None,
            tunnels: Tunnels::default(),
        }
    }

    /// Intercepts `CONNECT`s to the connect ports instead of tunnelling
    /// them blind (see [`super::intercept`]).
    pub fn intercept(mut self, interceptor: Interceptor) -> Self {
        self.interceptor = Some(interceptor);
        self
    }

    /// The ports `CONNECT` may tunnel to (default [`DEFAULT_CONNECT_PORTS`]).
    pub fn connect_ports(mut self, ports: Vec<u16>) -> Self {
        self.connect_ports = ports;
        self
    }

    /// The limits on requests: `max_request_body` and `tunnel_idle` (the
    /// server takes the others, [`super::server::Server::limits`]).
    pub fn limits(mut self, limits: &Limits) -> Self {
        self.max_request_body = limits.max_request_body;
        self.tunnel_idle = limits.tunnel_idle;
        self
    }

    /// Every request must authenticate as one of `credentials`
    /// (`Proxy-Authorization`), or gets 407.
    pub fn authenticate(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(Arc::new(credentials));
        self
    }

    /// Logs every request to `log`.
    pub fn log_to(mut self, log: AccessLog) -> Self {
        self.access_log = Some(log);
        self
    }

    /// Counts every request in `metrics` (what the access log would say of
    /// it: the same requests, statuses and bytes).
    pub fn count_to(mut self, metrics: Arc<ProxyMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The host requests go through.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The tunnels open.
    pub fn tunnels(&self) -> &Tunnels {
        &self.tunnels
    }

    /// Where requests are logged, if anywhere.
    pub fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.as_ref()
    }

    /// Answers one client request; the server puts its [`ClientConn`] in
    /// the request's extensions.
    pub async fn handle(&self, mut request: Request<Incoming>) -> Response<ProxyBody> {
        let client = request.extensions().get::<ClientConn>().cloned();
        let exchange = Exchange::start(&mut request, client, None);
        if let Some(credentials) = &self.credentials {
            if let Err(denied) = credentials.check(request.headers()) {
                let refusal = Refusal::new(
                    StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                    &denied.to_string(),
                );
                let mut out = self.refused(exchange, &refusal);
                out.headers_mut()
                    .insert(header::PROXY_AUTHENTICATE, auth::CHALLENGE);
                return out;
            }
        }
        let url = match classify(request.method(), request.uri(), &self.listening) {
            Ok(ProxyTarget::Fetch(url)) => url,
            Ok(ProxyTarget::Connect { host, port }) => {
                return match self.connect(&host, port, request, exchange.clone()).await {
                    Ok(response) => response,
                    Err(refusal) => self.refused(exchange, &refusal),
                };
            }
            Err(refusal) => return self.refused(exchange, &refusal),
        };
        if hop::looped(request.headers()) {
            let refusal =
                Refusal::loop_detected("the request already passed through sockhost (Via)");
            return self.refused(exchange, &refusal);
        }
        self.fetch(url, request, exchange).await
    }

    /// A request through the pipeline, the response back.
    async fn fetch(
        &self,
        url: String,
        request: Request<Incoming>,
        exchange: Exchange,
    ) -> Response<ProxyBody> {
        let fetched = match self.fetch_request(url, request).await {
            Ok(fetch) => self
                .host
                .fetch(fetch)
                .await
                .map_err(|e| Refusal::from_fetch(&e)),
            Err(refusal) => Err(refusal),
        };
        match fetched {
            Ok(response) => self.relayed(response, exchange),
            Err(refusal) => self.refused(exchange, &refusal),
        }
    }

    /// A blind tunnel: extensions decide, the connection is raced, then
    /// the client's bytes go through untouched once it has the 200.
    async fn connect(
        &self,
        host: &str,
        port: u16,
        request: Request<Incoming>,
        exchange: Exchange,
    ) -> Result<Response<ProxyBody>, Refusal> {
        if !self.connect_ports.contains(&port) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                &format!(
                    "CONNECT to port {port} is not allowed (connect-ports: {:?})",
                    self.connect_ports
                ),
            ));
        }
        if let Some(interceptor) = &self.interceptor {
            let mut inside = self.clone();
            inside.client = exchange.client.clone();
            let response = interceptor.intercept(inside, host, port, request)?;
            // The requests inside are logged one by one.
            self.log(exchange, response.status(), Some(0), None, &[]);
            return Ok(response);
        }
        let mut headers = request.headers().clone();
        hop::strip(&mut headers);
        let pairs = headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let authority = authority(host, port);
        let mut tunnel = self
            .host
            .tunnel(&authority, pairs)
            .await
            .map_err(|e| Refusal::from_fetch(&e))?;
        let actions = std::mem::take(&mut tunnel.actions);
        let mut out = Response::new(Either::Right(Full::new(Bytes::new())));
        hop::add_via(out.headers_mut(), Version::HTTP_11);
        if exchange.show_actions {
            out.headers_mut()
                .insert(actions_header::HEADER, actions_header::encode(&actions));
        }
        let upgrade = hyper::upgrade::on(request);
        let (log, idle) = (self.access_log.clone(), self.tunnel_idle);
        let metrics = self.metrics.clone();
        let open = self.tunnels.open();
        tokio::spawn(async move {
            let _open = open;
            let client = match upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => return tracing::debug!("CONNECT {authority}: the client left: {e}"),
            };
            let mut client = IdleIo::new(hyper_util::rt::TokioIo::new(client), idle, None);
            if let Err(e) = tunnel.carry(&mut client).await {
                tracing::debug!("tunnel to {authority} ended: {e}");
            }
            let (up, down) = client.bytes();
            tracing::debug!("tunnel to {authority} closed: {up} bytes up, {down} down");
            if let Some(metrics) = metrics {
                metrics.add_body_to_origin(up);
                metrics.record_response(exchange.version, 200, down);
            }
            if let Some(log) = log {
                log.record(exchange.entry(StatusCode::OK, Some(up), Some(down), None, &actions));
            }
        });
        Ok(out)
    }

    /// Answers a request from inside an intercepted tunnel to `authority`:
    /// its origin-form target becomes an `https://` URL, and it goes
    /// through the pipeline like any other.
    pub async fn handle_inside(
        &self,
        authority: &str,
        mut request: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let url = format!("https://{authority}{path}");
        let exchange = Exchange::start(&mut request, self.client.clone(), Some(url.clone()));
        self.fetch(url, request, exchange).await
    }

    /// The origin's response as the client gets it: hop-by-hop headers
    /// removed, this proxy in `Via`, the pipeline's timings in
    /// `Server-Timing`, the plugins' actions in `Sockhost-Actions` when
    /// asked, the body streaming, logged when it ends.
    fn relayed(&self, response: FetchResponse, exchange: Exchange) -> Response<ProxyBody> {
        let FetchResponse {
            status,
            version,
            mut headers,
            body,
            timings,
            actions,
            ..
        } = response;
        hop::strip(&mut headers);
        // Only the daemon's own answers carry it (the IPC client trusts it).
        headers.remove(REFUSAL_HEADER);
        hop::add_via(&mut headers, version);
        if let Ok(v) = HeaderValue::from_str(&server_timing(&timings)) {
            headers.append(HeaderName::from_static("server-timing"), v);
        }
        if exchange.show_actions {
            headers.insert(actions_header::HEADER, actions_header::encode(&actions));
        }
        let (log, metrics) = (self.access_log.clone(), self.metrics.clone());
        let done: OnDone = Box::new(move |down| {
            if let Some(metrics) = metrics {
                metrics.record_response(exchange.version, status.as_u16(), down);
            }
            if let Some(log) = log {
                log.record(exchange.entry(
                    status,
                    exchange.bytes_up,
                    Some(down),
                    Some(version),
                    &actions,
                ));
            }
        });
        let mut out = Response::new(Either::Left(Counted::new(body, Some(done))));
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        out
    }

    /// The proxy's own answer, logged.
    fn refused(&self, exchange: Exchange, refusal: &Refusal) -> Response<ProxyBody> {
        tracing::debug!(
            "{} {} {}: {} {}",
            exchange.client_name(),
            exchange.method,
            exchange.url,
            refusal.status.as_u16(),
            refusal.reason
        );
        let out = refused(refusal, exchange.json);
        let size = out.body().size_hint().exact();
        self.log(exchange, refusal.status, size, None, &[]);
        out
    }

    fn log(
        &self,
        exchange: Exchange,
        status: StatusCode,
        down: Option<u64>,
        upstream: Option<Version>,
        actions: &[PluginAction],
    ) {
        if let Some(metrics) = &self.metrics {
            metrics.record_response(exchange.version, status.as_u16(), down.unwrap_or(0));
        }
        if let Some(log) = &self.access_log {
            log.record(exchange.entry(status, exchange.bytes_up, down, upstream, actions));
        }
    }

    /// The client's request as the pipeline takes it: hop-by-hop headers
    /// removed, the body streaming (up to the limit).
    async fn fetch_request(
        &self,
        url: String,
        request: Request<Incoming>,
    ) -> Result<FetchRequest, Refusal> {
        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        hop::strip(&mut headers);
        // The pipeline writes both again for the upstream message.
        headers.remove(header::HOST);
        headers.remove(header::CONTENT_LENGTH);
        let resource_type = fetch_dest::resource_type(&headers);
        let mut pairs = Vec::with_capacity(headers.len() + 1);
        for (name, value) in headers.iter() {
            let value = value.to_str().map_err(|_| {
                Refusal::bad_request(&format!("header {name} is not visible ASCII"))
            })?;
            pairs.push((name.as_str().to_owned(), value.to_owned()));
        }
        let via = hop::via(parts.version);
        pairs.push((
            "via".to_owned(),
            via.to_str().unwrap_or_default().to_owned(),
        ));
        let body = self.upload(body)?;
        Ok(FetchRequest {
            method: parts.method,
            url,
            headers: pairs,
            body,
            resource_type,
        })
    }

    /// The client's body as an upload that streams upstream with
    /// backpressure (hyper reads the client only as fast as the upstream
    /// connection takes it), refused or cut at the limit.
    fn upload(&self, body: Incoming) -> Result<RequestBody, Refusal> {
        let counted = self
            .metrics
            .clone()
            .map(|m| -> OnDone { Box::new(move |up| m.add_body_to_origin(up)) });
        let body = Counted::new(body, counted);
        let Some(limit) = self.max_request_body else {
            return Ok(RequestBody::stream(body));
        };
        let declared = body.size_hint().exact();
        if declared.is_some_and(|n| n > limit) {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body larger than {limit} bytes"),
            ));
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(RequestBody::stream(Limited::new(body, limit)))
    }
}

/// One request from arrival to the end of its response: what the access
/// log says of it, what the client asked of the proxy, and the request
/// in flight on its connection.
#[derive(Debug, Clone)]
struct Exchange {
    time: SystemTime,
    started: Instant,
    client: Option<ClientConn>,
    method: Method,
    /// The client request's HTTP version.
    version: Version,
    url: String,
    bytes_up: Option<u64>,
    json: bool,
    show_actions: bool,
    _in_flight: Option<Arc<InFlight>>,
}

impl Exchange {
    /// Takes what the proxy needs from `request` (the `Sockhost-Actions`
    /// header, which is the proxy's, is removed); `url` when the request's
    /// target is not the URL (inside an intercepted tunnel).
    fn start(
        request: &mut Request<Incoming>,
        client: Option<ClientConn>,
        url: Option<String>,
    ) -> Self {
        let show_actions = actions_header::take_request(request.headers_mut());
        // The body's length when the client said it, or sent none.
        let bytes_up = match request.method() {
            &Method::CONNECT => None,
            _ => request
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .or_else(|| request.body().is_end_stream().then_some(0)),
        };
        let url = url.unwrap_or_else(|| match request.method() {
            &Method::CONNECT => request
                .uri()
                .authority()
                .map_or_else(|| request.uri().to_string(), |a| a.to_string()),
            _ => request.uri().to_string(),
        });
        Exchange {
            time: SystemTime::now(),
            started: Instant::now(),
            _in_flight: client.as_ref().map(|c| Arc::new(c.busy())),
            client,
            method: request.method().clone(),
            version: request.version(),
            url,
            bytes_up,
            json: wants_json(request.headers()),
            show_actions,
        }
    }

    fn client_name(&self) -> String {
        self.client
            .as_ref()
            .map_or_else(|| "in-process".to_owned(), |c| c.peer.to_string())
    }

    fn entry(
        &self,
        status: StatusCode,
        up: Option<u64>,
        down: Option<u64>,
        upstream: Option<Version>,
        actions: &[PluginAction],
    ) -> Entry {
        Entry {
            time: self.time,
            client: self.client_name(),
            method: self.method.to_string(),
            url: self.url.clone(),
            status: status.as_u16(),
            bytes_up: up,
            bytes_down: down,
            duration: self.started.elapsed(),
            upstream,
            actions: Entry::action_names(actions),
        }
    }
}

/// The pipeline's timings, in milliseconds, as `Server-Timing` metrics.
fn server_timing(t: &Timings) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "dns;dur={:.3}, connect;dur={:.3}, tls;dur={:.3}, ttfb;dur={:.3}",
        ms(t.dns),
        ms(t.connect),
        ms(t.tls),
        ms(t.first_byte)
    )
}

/// The proxy's own answer.
fn refused(refusal: &Refusal, json: bool) -> Response<ProxyBody> {
    let (content_type, body) = refusal.body(json);
    let mut out = Response::new(Either::Right(Full::new(body)));
    *out.status_mut() = refusal.status;
    out.headers_mut().insert(header::CONTENT_TYPE, content_type);
    out.headers_mut()
        .insert(REFUSAL_HEADER, HeaderValue::from_static("1"));
    hop::add_via(out.headers_mut(), Version::HTTP_11);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_are_server_timing_metrics_in_milliseconds() {
        let t = Timings {
            dns: Duration::from_micros(1500),
            connect: Duration::from_millis(2),
            tls: Duration::ZERO,
            first_byte: Duration::from_millis(10),
        };
        assert_eq!(
            server_timing(&t),
            "dns;dur=1.500, connect;dur=2.000, tls;dur=0.000, ttfb;dur=10.000"
        );
    }
}
