//! What a client asks the proxy for, from its request line: an
//! absolute-form `http://` or `https://` URL to fetch, a `CONNECT
//! host:port`, or something a forward proxy refuses. Sans-IO.

use std::net::SocketAddr;

use http::{Method, Uri};

use super::refusal::Refusal;

/// A request the proxy will act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyTarget {
    /// Fetch this absolute http(s) URL through the pipeline.
    Fetch(String),
    /// Tunnel to `host:port`.
    Connect {
        /// The host, as the client wrote it.
        host: String,
        /// The port.
        port: u16,
    },
}

/// `host:port` as an authority: an IPv6 literal in brackets.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Classifies a request line. `listening` are the proxy's own addresses:
/// a request addressed to one of them would loop back into the proxy.
pub fn classify(
    method: &Method,
    uri: &Uri,
    listening: &[SocketAddr],
) -> Result<ProxyTarget, Refusal> {
    if method == Method::CONNECT {
        let authority = uri
            .authority()
            .ok_or_else(|| Refusal::bad_request("CONNECT needs host:port as its target"))?;
        let port = authority
            .port_u16()
            .ok_or_else(|| Refusal::bad_request("CONNECT needs a port in its target"))?;
        return Ok(ProxyTarget::Connect {
            host: authority.host().to_owned(),
            port,
        });
    }
    let Some(scheme) = uri.scheme_str() else {
        return Err(Refusal::bad_request(
            "this is a forward proxy: send the absolute URL (GET http://host/path), not a path",
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(Refusal::bad_request(&format!(
            "only http and https URLs can be proxied, not {scheme}:"
        )));
    }
    let Some(authority) = uri.authority() else {
        return Err(Refusal::bad_request("the URL has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(Refusal::bad_request(
            "credentials in the URL are not forwarded; send an Authorization header",
        ));
    }
    let default_port = if scheme == "https" { 443 } else { 80 };
    let port = authority.port_u16().unwrap_or(default_port);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        let me = SocketAddr::new(ip, port);
        if listening
            .iter()
            .any(|l| *l == me || (l.port() == port && ip.is_unspecified()))
        {
            return Err(Refusal::loop_detected(&format!(
                "the request is addressed to the proxy itself ({me})"
            )));
        }
    }
    Ok(ProxyTarget::Fetch(uri.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn go(method: &str, target: &str) -> Result<ProxyTarget, Refusal> {
        let listening = ["127.0.0.1:8128".parse().unwrap()];
        classify(
            &method.parse().unwrap(),
            &target.parse().unwrap(),
            &listening,
        )
    }

    #[test]
    fn absolute_form_urls_are_fetched() {
        assert_eq!(
            go("GET", "http://www.test:8080/a?b=c"),
            Ok(ProxyTarget::Fetch("http://www.test:8080/a?b=c".into()))
        );
        assert_eq!(
            go("POST", "https://www.test/"),
            Ok(ProxyTarget::Fetch("https://www.test/".into()))
        );
    }

    #[test]
    fn connect_takes_host_and_port() {
        assert_eq!(
            go("CONNECT", "www.test:443"),
            Ok(ProxyTarget::Connect {
                host: "www.test".into(),
                port: 443
            })
        );
        assert_eq!(
            go("CONNECT", "www.test").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn authorities_bracket_ipv6_literals() {
        assert_eq!(authority("www.test", 443), "www.test:443");
        assert_eq!(authority("::1", 8443), "[::1]:8443");
    }

    #[test]
    fn what_a_forward_proxy_refuses_says_why() {
        let origin_form = go("GET", "/index.html").unwrap_err();
        assert_eq!(origin_form.status, StatusCode::BAD_REQUEST);
        assert!(
            origin_form.reason.contains("absolute URL"),
            "{origin_form:?}"
        );
        let ftp = go("GET", "ftp://www.test/").unwrap_err();
        assert!(ftp.reason.contains("ftp"), "{ftp:?}");
        let creds = go("GET", "http://user:pw@www.test/").unwrap_err();
        assert!(creds.reason.contains("credentials"), "{creds:?}");
        let me = go("GET", "http://127.0.0.1:8128/").unwrap_err();
        assert_eq!(me.status, StatusCode::LOOP_DETECTED);
    }
}
