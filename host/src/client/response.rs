//! The daemon's response as a [`FetchResponse`]: the pipeline's timings
//! from its `Server-Timing`, the upstream protocol from its `Via` entry,
//! the body streaming. Fields only the daemon knew (the connection's
//! setup, whether it was reused, plugin actions, redirects) keep their
//! defaults. The header parsing is sans-IO.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap};
use http::Version;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::refused;
use crate::host::{FetchError, FetchResponse, ResponseBody, Timings};
use crate::net::connection::ConnectionInfo;
use crate::serve::hop::VIA_NAME;
use crate::serve::refusal::REFUSAL_HEADER;

/// The longest refusal body read (a one-line reason).
const MAX_REFUSAL_BODY: usize = 64 << 10;

/// `response` to a fetch of `url` that started at `started`; `origin`
/// names the origin (and the daemon) in body errors.
pub(crate) async fn from_daemon(
    response: http::Response<Incoming>,
    url: String,
    started: Instant,
    origin: String,
) -> Result<FetchResponse, FetchError> {
    let first_byte = started.elapsed();
    let (parts, body) = response.into_parts();
    if parts.headers.contains_key(REFUSAL_HEADER) {
        let text = Limited::new(body, MAX_REFUSAL_BODY)
            .collect()
            .await
            .map(|b| refused::reason(&b.to_bytes()))
            .unwrap_or_else(|e| format!("(the reason could not be read: {e})"));
        return Err(refused::to_error(parts.status, text));
    }
    let timings = Timings {
        first_byte,
        ..timings(&parts.headers)
    };
    Ok(FetchResponse {
        status: parts.status,
        version: upstream_version(&parts.headers).unwrap_or(parts.version),
        body: ResponseBody::from_daemon(body, origin),
        headers: parts.headers,
        connection: Arc::new(ConnectionInfo::default()),
        reused: false,
        timings,
        started,
        url,
        actions: Vec::new(),
    })
}

/// The pipeline's DNS, connect and TLS times from the daemon's
/// `Server-Timing` metrics (`dns;dur=1.5, …`, milliseconds); the daemon
/// appends its entry last, so a later metric of a name wins over an
/// origin's earlier one.
pub fn timings(headers: &HeaderMap) -> Timings {
    let mut t = Timings::default();
    let metrics = headers
        .get_all("server-timing")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for metric in metrics {
        let mut params = metric.split(';').map(str::trim);
        let name = params.next().unwrap_or_default();
        let Some(dur) = params
            .filter_map(|p| p.strip_prefix("dur="))
            .find_map(|d| d.parse::<f64>().ok())
            .filter(|d| d.is_finite() && *d >= 0.0)
        else {
            continue;
        };
        let dur = Duration::from_secs_f64(dur / 1000.0);
        match name {
            "dns" => t.dns = dur,
            "connect" => t.connect = dur,
            "tls" => t.tls = dur,
            "ttfb" => t.first_byte = dur,
            _ => {}
        }
    }
    t
}

/// The protocol the daemon got the response in, from its (last) `Via`
/// entry: `2 sockhost` is HTTP/2.
pub fn upstream_version(headers: &HeaderMap) -> Option<Version> {
    let entry = headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|hop| hop.split_whitespace().nth(1) == Some(VIA_NAME))?;
    match entry.split_whitespace().next()? {
        "1.0" => Some(Version::HTTP_10),
        "1.1" => Some(Version::HTTP_11),
        "2" => Some(Version::HTTP_2),
        "3" => Some(Version::HTTP_3),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(*n, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn server_timing_fills_the_timings_the_daemon_appended_last() {
        let h = map(&[
            ("server-timing", "dns;dur=99, cache;desc=\"hit\""),
            (
                "server-timing",
                "dns;dur=1.500, connect;dur=2.000, tls;dur=0.250, ttfb;dur=10.000",
            ),
        ]);
        let t = timings(&h);
        assert_eq!(t.dns, Duration::from_micros(1500));
        assert_eq!(t.connect, Duration::from_millis(2));
        assert_eq!(t.tls, Duration::from_micros(250));
        assert_eq!(t.first_byte, Duration::from_millis(10));
        let t = timings(&map(&[("server-timing", "dns;dur=-1, tls;dur=x")]));
        assert_eq!(t.dns, Duration::ZERO);
        assert_eq!(t.tls, Duration::ZERO);
    }

    #[test]
    fn via_names_the_upstream_protocol() {
        let h = map(&[("via", "1.1 squid, 2 sockhost")]);
        assert_eq!(upstream_version(&h), Some(Version::HTTP_2));
        let h = map(&[("via", "3 sockhost")]);
        assert_eq!(upstream_version(&h), Some(Version::HTTP_3));
        assert_eq!(upstream_version(&map(&[("via", "1.1 squid")])), None);
        assert_eq!(upstream_version(&HeaderMap::new()), None);
    }
}
