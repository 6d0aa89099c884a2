//! What the proxy answers instead of a response from the origin: a status
//! and a one-line reason, as text or as JSON when the client accepts it.
//! Which status a failed fetch gets is decided here. Sans-IO.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::host::{FetchError, LeaseError};
use crate::net::error::DialError;

/// The header that marks the proxy's own answers (a refusal, not the
/// origin's response), for clients that must tell them apart
/// ([`crate::client::Client`]); removed from relayed responses.
pub const REFUSAL_HEADER: &str = "sockhost-refusal";

/// A status and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The status.
    pub status: StatusCode,
    /// One line.
    pub reason: String,
}

impl Refusal {
    /// `status` because of `reason`.
    pub fn new(status: StatusCode, reason: &str) -> Self {
        Refusal {
            status,
            reason: reason.replace(['\r', '\n'], " "),
        }
    }

    /// 400.
    pub fn bad_request(reason: &str) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, reason)
    }

    /// 508: the request would come back to the proxy.
    pub fn loop_detected(reason: &str) -> Self {
        Refusal::new(StatusCode::LOOP_DETECTED, reason)
    }

    /// The status a failed fetch gets:
    ///
    /// | failure | status |
    /// | --- | --- |
    /// | a bad URL or header | 400 |
    /// | an extension cancels or redirects a tunnel, or a plugin fails closed | 403 |
    /// | DNS, refused, unreachable, TLS, HTTP from the origin | 502 |
    /// | a timeout (DNS, every attempt, the response head) | 504 |
    /// | extension redirects that loop | 508 |
    pub fn from_fetch(error: &FetchError) -> Self {
        let status = match error {
            FetchError::InvalidUrl { .. } | FetchError::InvalidHeader(_) => StatusCode::BAD_REQUEST,
            FetchError::Blocked { .. } | FetchError::TunnelRedirected { .. } => {
                StatusCode::FORBIDDEN
            }
            FetchError::Connect(LeaseError::Dial(e))
                if matches!(**e, DialError::PolicyFailedClosed { .. }) =>
            {
                StatusCode::FORBIDDEN
            }
            e if e.is_timeout() => StatusCode::GATEWAY_TIMEOUT,
            FetchError::TooManyRedirects(..) => StatusCode::LOOP_DETECTED,
            e if upload_over_limit(e) => StatusCode::PAYLOAD_TOO_LARGE,
            FetchError::Setup(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_GATEWAY,
        };
        Refusal::new(status, &error.to_string())
    }

    /// The answer: `application/json` (`{"error": …}`) when `json` (see
    /// [`wants_json`]), else one line of text.
    pub fn body(&self, json: bool) -> (HeaderValue, Bytes) {
        if json {
            let body = serde_json::json!({
                "error": self.reason,
                "status": self.status.as_u16(),
            });
            (
                HeaderValue::from_static("application/json"),
                Bytes::from(format!("{body}\n")),
            )
        } else {
            (
                HeaderValue::from_static("text/plain; charset=utf-8"),
                Bytes::from(format!("{}\n", self.reason)),
            )
        }
    }
}

/// Whether a fetch failed because the client's body passed the proxy's
/// limit while it streamed (the body error sits under the HTTP error).
fn upload_over_limit(error: &FetchError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Whether a client's `Accept` names `application/json`: it then gets the
/// proxy's own answers as JSON.
pub fn wants_json(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::net::connect::{AttemptFailure, ConnectError};
    use crate::net::dns::DnsError;

    fn dial(e: DialError) -> FetchError {
        FetchError::Connect(LeaseError::Dial(Arc::new(e)))
    }

    fn connect(kind: std::io::ErrorKind) -> FetchError {
        dial(DialError::Connect(ConnectError {
            what: "www.test:443".into(),
            failures: vec![AttemptFailure {
                addr: "127.0.0.1:443".parse().unwrap(),
                kind,
                message: "nope".into(),
            }],
            attempts: Vec::new(),
            endpoints: Default::default(),
        }))
    }

    #[test]
    fn failures_become_the_statuses_a_proxy_client_expects() {
        let status = |e: FetchError| Refusal::from_fetch(&e).status;
        let dns = dial(DialError::Dns(DnsError::NotFound {
            host: "nope.test".into(),
        }));
        assert_eq!(status(dns), StatusCode::BAD_GATEWAY);
        let dns_timeout = dial(DialError::Dns(DnsError::Timeout {
            host: "slow.test".into(),
            timeout: Duration::from_secs(5),
        }));
        assert_eq!(status(dns_timeout), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            status(connect(std::io::ErrorKind::ConnectionRefused)),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            status(connect(std::io::ErrorKind::TimedOut)),
            StatusCode::GATEWAY_TIMEOUT
        );
        let blocked = FetchError::Blocked {
            extension: "blocklist".into(),
            reason: "ads.example is an ad host".into(),
        };
        let r = Refusal::from_fetch(&blocked);
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.reason.contains("blocklist"), "{r:?}");
        let late = FetchError::Timeout {
            origin: "https://www.test:443".into(),
            timeout: Duration::from_secs(30),
        };
        assert_eq!(status(late), StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn the_reason_is_one_line_of_text_or_json() {
        let r = Refusal::new(StatusCode::BAD_GATEWAY, "could not resolve x\nreally");
        let (ct, body) = r.body(wants_json(&HeaderMap::new()));
        assert_eq!(ct, "text/plain; charset=utf-8");
        assert_eq!(body, "could not resolve x really\n");
        let mut accept = HeaderMap::new();
        accept.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let (ct, body) = r.body(wants_json(&accept));
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], 502);
        assert_eq!(v["error"], "could not resolve x really");
    }
}
