//! Where a request goes: the origin and the path-and-query of its URL.

use crate::host::FetchError;
use crate::net::pool::OriginKey;

/// The origin and the path-and-query of an http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Scheme, host and port.
    pub origin: OriginKey,
    /// The path and query (no fragment).
    pub path: String,
}

impl Target {
    /// Parses an http(s) URL with a host.
    pub fn parse(text: &str) -> Result<Target, FetchError> {
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
        let origin = OriginKey {
            scheme: scheme.to_owned(),
            host,
            port,
        };
        Ok(Target { origin, path })
    }

    /// The `Host` header (or `:authority`): the port is left out when it
    /// is the scheme's default.
    pub fn authority(&self) -> String {
        let o = &self.origin;
        if (o.scheme == "https" && o.port == 443) || (o.scheme == "http" && o.port == 80) {
            o.host.clone()
        } else {
            format!("{}:{}", o.host, o.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let t = Target::parse("https://Example.com/a/b?c=d#frag").unwrap();
        assert_eq!(t.origin.to_string(), "https://example.com:443");
        assert_eq!(t.path, "/a/b?c=d");
        assert_eq!(t.authority(), "example.com");
        let t = Target::parse("http://[::1]:8080").unwrap();
        assert_eq!((t.origin.host.as_str(), t.origin.port), ("[::1]", 8080));
        assert_eq!(t.authority(), "[::1]:8080");
        for bad in [
            "",
            "example.com",
            "ftp://example.com/",
            "https://",
            "http://exa mple.com/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
    }
}
