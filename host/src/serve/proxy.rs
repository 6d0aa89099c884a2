//! The proxy's request handler: a client's request becomes a
//! [`FetchRequest`] that goes through the one request pipeline
//! ([`Host::fetch`]), and the response streams back. What it cannot or
//! will not forward gets a status and a one-line reason ([`Refusal`]).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;

use super::hop;
use super::intercept::Interceptor;
use super::refusal::{wants_json, Refusal, REFUSAL_HEADER};
use super::target::{authority, classify, ProxyTarget};
use crate::host::{FetchRequest, FetchResponse, Host, ResponseBody, Timings};
use crate::plugins::extension::ResourceType;

/// The ports `CONNECT` may tunnel to unless configured otherwise: a
/// tunnel carries anything, so only HTTPS's port by default.
pub const DEFAULT_CONNECT_PORTS: &[u16] = &[443];

/// The largest request body the proxy forwards by default; it is read
/// whole before the request goes upstream (bodies stream only from the
/// origin for now).
pub const DEFAULT_MAX_REQUEST_BODY: usize = 16 << 20;

/// What a client gets: the origin's body streaming, or the proxy's own.
pub type ProxyBody = Either<ResponseBody, Full<Bytes>>;

/// The request handler shared by every client connection.
#[derive(Debug, Clone)]
pub struct Proxy {
    host: Host,
    /// The proxy's own addresses (a request to one of them would loop).
    listening: Vec<SocketAddr>,
    max_request_body: usize,
    connect_ports: Vec<u16>,
    /// Set when `CONNECT`s are intercepted rather than tunnelled blind.
    interceptor: Option<Interceptor>,
}

impl Proxy {
    /// Forwards through `host`; `listening` are the proxy's addresses.
    pub fn new(host: Host, listening: Vec<SocketAddr>) -> Self {
        Proxy {
            host,
            listening,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            connect_ports: DEFAULT_CONNECT_PORTS.to_vec(),
            interceptor: None,
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

    /// The host requests go through.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Answers one client request.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let json = wants_json(request.headers());
        match self.forward(request).await {
            Ok(response) => response,
            Err(refusal) => refused(&refusal, json),
        }
    }

    async fn forward(&self, request: Request<Incoming>) -> Result<Response<ProxyBody>, Refusal> {
        let url = match classify(request.method(), request.uri(), &self.listening)? {
            ProxyTarget::Fetch(url) => url,
            ProxyTarget::Connect { host, port } => return self.connect(&host, port, request).await,
        };
        if hop::looped(request.headers()) {
            return Err(Refusal::loop_detected(
                "the request already passed through sockhost (Via)",
            ));
        }
        let fetch = self.fetch_request(url, request).await?;
        let response = self
            .host
            .fetch(fetch)
            .await
            .map_err(|e| Refusal::from_fetch(&e))?;
        Ok(relayed(response))
    }

    /// A blind tunnel: extensions decide, the connection is raced, then
    /// the client's bytes go through untouched once it has the 200.
    async fn connect(
        &self,
        host: &str,
        port: u16,
        request: Request<Incoming>,
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
            return interceptor.intercept(self.clone(), host, port, request);
        }
        let mut headers = request.headers().clone();
        hop::strip(&mut headers);
        let pairs = headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let authority = authority(host, port);
        let tunnel = self
            .host
            .tunnel(&authority, pairs)
            .await
            .map_err(|e| Refusal::from_fetch(&e))?;
        let upgrade = hyper::upgrade::on(request);
        tokio::spawn(async move {
            match upgrade.await {
                Ok(upgraded) => {
                    let mut client = hyper_util::rt::TokioIo::new(upgraded);
                    if let Err(e) = tunnel.carry(&mut client).await {
                        tracing::debug!("tunnel to {authority} ended: {e}");
                    }
                }
                Err(e) => tracing::debug!("CONNECT {authority}: the client left: {e}"),
            }
        });
        let mut out = Response::new(Either::Right(Full::new(Bytes::new())));
        hop::add_via(out.headers_mut(), Version::HTTP_11);
        Ok(out)
    }

    /// Answers a request from inside an intercepted tunnel to `authority`:
    /// its origin-form target becomes an `https://` URL, and it goes
    /// through the pipeline like any other.
    pub async fn handle_inside(
        &self,
        authority: &str,
        request: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let json = wants_json(request.headers());
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let url = format!("https://{authority}{path}");
        let fetched = match self.fetch_request(url, request).await {
            Ok(fetch) => self
                .host
                .fetch(fetch)
                .await
                .map_err(|e| Refusal::from_fetch(&e)),
            Err(refusal) => Err(refusal),
        };
        match fetched {
            Ok(response) => relayed(response),
            Err(refusal) => refused(&refusal, json),
        }
    }

    /// The client's request as the pipeline takes it: hop-by-hop headers
    /// removed, the body read (up to the limit).
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
        let resource_type = resource_type(&headers);
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
        let body = Limited::new(body, self.max_request_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Refusal::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("request body larger than {} bytes", self.max_request_body),
                    )
                } else {
                    Refusal::bad_request(&format!("request body: {e}"))
                }
            })?
            .to_bytes();
        Ok(FetchRequest {
            method: parts.method,
            url,
            headers: pairs,
            body,
            resource_type,
        })
    }
}

/// The origin's response as the client gets it: hop-by-hop headers
/// removed, this proxy in `Via`, the pipeline's timings in
/// `Server-Timing`, the body streaming.
fn relayed(response: FetchResponse) -> Response<ProxyBody> {
    let FetchResponse {
        status,
        version,
        mut headers,
        body,
        timings,
        ..
    } = response;
    hop::strip(&mut headers);
    headers.remove(REFUSAL_HEADER);
    hop::add_via(&mut headers, version);
    if let Ok(v) = HeaderValue::from_str(&server_timing(&timings)) {
        headers.append(HeaderName::from_static("server-timing"), v);
    }
    let mut out = Response::new(Either::Left(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
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

/// What a browser says it loads (`Sec-Fetch-Dest`), as extensions see it;
/// a document when it does not say.
fn resource_type(headers: &HeaderMap) -> ResourceType {
    let dest = headers
        .get("sec-fetch-dest")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("document");
    match dest {
        "document" | "iframe" | "frame" | "embed" | "object" => ResourceType::Document,
        "script" | "worker" | "sharedworker" | "serviceworker" | "audioworklet"
        | "paintworklet" => ResourceType::Script,
        "style" => ResourceType::Stylesheet,
        "image" => ResourceType::Image,
        "font" => ResourceType::Font,
        "audio" | "video" | "track" => ResourceType::Media,
        "websocket" => ResourceType::Websocket,
        "empty" => ResourceType::Xhr,
        _ => ResourceType::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sec_fetch_dest_sets_the_resource_type() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("sec-fetch-dest", HeaderValue::from_static(v));
            resource_type(&h)
        };
        assert_eq!(with("script"), ResourceType::Script);
        assert_eq!(with("image"), ResourceType::Image);
        assert_eq!(with("empty"), ResourceType::Xhr);
        assert_eq!(with("manifest"), ResourceType::Other);
        assert_eq!(resource_type(&HeaderMap::new()), ResourceType::Document);
    }

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
