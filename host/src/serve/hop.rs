//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so
//! a proxy removes them before forwarding a message either way, along with
//! every header the `Connection` header names; and it adds itself to `Via`
//! (§7.6.3).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Version;

/// The pseudonym sockhost gives itself in `Via`.
pub const VIA_NAME: &str = "sockhost";

/// Headers that are always hop-by-hop. `Host` and `Content-Length` are
/// end-to-end, but the pipeline writes both again for the upstream
/// message (the authority of the URL, the body it sends).
const ALWAYS: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("proxy-authentication-info"),
];

/// Removes the hop-by-hop headers of a message being forwarded.
pub fn strip(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(ALWAYS.iter()) {
        headers.remove(name);
    }
}

/// This proxy's `Via` entry for a message received as `received`.
pub fn via(received: Version) -> HeaderValue {
    HeaderValue::from_static(match received {
        Version::HTTP_09 => "0.9 sockhost",
        Version::HTTP_10 => "1.0 sockhost",
        Version::HTTP_2 => "2 sockhost",
        Version::HTTP_3 => "3 sockhost",
        _ => "1.1 sockhost",
    })
}

/// Adds this proxy to the message's `Via`, after what earlier proxies
/// wrote.
pub fn add_via(headers: &mut HeaderMap, received: Version) {
    headers.append(header::VIA, via(received));
}

/// Whether `Via` says this message already passed through sockhost: a
/// request that loops back into the proxy.
pub fn looped(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|hop| hop.split_whitespace().nth(1) == Some(VIA_NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-secret", "1"),
            ("accept", "*/*"),
            ("cookie", "a=b"),
        ]);
        strip(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["accept", "cookie"]);
    }

    #[test]
    fn the_via_entries_name_sockhost() {
        for v in [
            Version::HTTP_10,
            Version::HTTP_11,
            Version::HTTP_2,
            Version::HTTP_3,
        ] {
            let entry = via(v);
            let entry = entry.to_str().unwrap();
            assert_eq!(entry.split_whitespace().nth(1), Some(VIA_NAME), "{entry}");
        }
    }

    #[test]
    fn via_is_appended_and_recognised() {
        let mut h = map(&[("via", "1.1 squid")]);
        assert!(!looped(&h));
        add_via(&mut h, Version::HTTP_2);
        let all: Vec<&str> = h
            .get_all(header::VIA)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(all, vec!["1.1 squid", "2 sockhost"]);
        assert!(looped(&h));
        assert!(looped(&map(&[("via", "1.0 a, 1.1 sockhost")])));
        assert!(!looped(&map(&[("via", "1.1 sockhost-other")])));
    }
}
