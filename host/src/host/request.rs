//! What a caller hands the host and what it gets back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, StatusCode, Version};

use super::body::ResponseBody;
use super::request_body::RequestBody;
use crate::extensions::PluginAction;
use crate::net::connection::ConnectionInfo;
use crate::plugins::extension::ResourceType;

/// A request. Not `Clone`: its body may be a stream read once.
#[derive(Debug)]
pub struct FetchRequest {
    /// `GET`, `POST`, …
    pub method: Method,
    /// Absolute http(s) URL.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body (empty for GET): bytes, or a stream sent with
    /// backpressure.
    pub body: RequestBody,
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
            body: RequestBody::empty(),
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

impl Timings {
    /// The timings of a response whose headers came `first_byte` after the
    /// start, on a connection set up as `info` says; a reused connection's
    /// setup was paid by an earlier request.
    pub fn new(info: &ConnectionInfo, reused: bool, first_byte: Duration) -> Timings {
        if reused {
            return Timings {
                first_byte,
                ..Timings::default()
            };
        }
        Timings {
            dns: info.dns,
            connect: info.connect,
            tls: info.tls,
            first_byte,
        }
    }
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
