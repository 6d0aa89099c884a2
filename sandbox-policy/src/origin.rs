//! Host patterns (`capabilities.hosts`) and origin patterns
//! (`capabilities.fetch`).

use std::fmt;

/// Which hosts a plugin may see: `*` (every host), `example.com` (exactly
/// that host) or `*.example.com` (that host and every subdomain, as in
/// WebExtension match patterns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Every host.
    Any,
    /// Exactly this host (lowercase, no trailing dot).
    Exact(String),
    /// This domain and all of its subdomains (lowercase, no trailing dot).
    Domain(String),
}

/// A text is not a host pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a host pattern (use \"*\", \"example.com\" or \"*.example.com\")")]
pub struct HostPatternError {
    /// The text.
    pub text: String,
}

/// Why a text is not an origin pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an origin: {problem}")]
pub struct OriginPatternError {
    /// The text.
    pub text: String,
    /// What is wrong with it.
    pub problem: OriginProblem,
}

/// What is wrong with an origin pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginProblem {
    /// No `://`.
    #[error("expected scheme://host[:port]")]
    NoScheme,
    /// Neither `http` nor `https`.
    #[error("the scheme must be http or https")]
    Scheme,
    /// A path, query, fragment or user part.
    #[error("an origin has no path, query, fragment or user")]
    NotAnOrigin,
    /// A port that is not 1 to 65535.
    #[error("the port must be 1 to 65535")]
    Port,
    /// `*` as the host.
    #[error("an origin names its host (\"*\" would allow fetching anywhere)")]
    AnyHost,
    /// The host is not a host pattern.
    #[error(transparent)]
    Host(#[from] HostPatternError),
}

impl HostPattern {
    /// Parses a pattern; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, HostPatternError> {
        if text == "*" {
            return Ok(HostPattern::Any);
        }
        let (domain, rest) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let name = rest.strip_suffix('.').unwrap_or(rest);
        if !is_host_name(name) {
            return Err(HostPatternError {
                text: text.to_owned(),
            });
        }
        let name = name.to_ascii_lowercase();
        Ok(if domain {
            HostPattern::Domain(name)
        } else {
            HostPattern::Exact(name)
        })
    }

    /// Whether `host` (any case, optional trailing dot) matches.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name),
            HostPattern::Domain(name) => {
                host.eq_ignore_ascii_case(name)
                    || (host.len() > name.len() + 1
                        && host[host.len() - name.len()..].eq_ignore_ascii_case(name)
                        && host.as_bytes()[host.len() - name.len() - 1] == b'.')
            }
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Any => f.write_str("*"),
            HostPattern::Exact(n) => f.write_str(n),
            HostPattern::Domain(n) => write!(f, "*.{n}"),
        }
    }
}

/// An origin a plugin may fetch through the host: scheme, host pattern and
/// optional port, e.g. `https://api.example.com` or `https://*.example.com:8443`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    /// `http` or `https`.
    pub scheme: String,
    /// Which hosts.
    pub host: HostPattern,
    /// The port; `None` means the scheme's default port.
    pub port: Option<u16>,
}

impl OriginPattern {
    /// Parses a pattern; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, OriginPatternError> {
        let bad = |problem: OriginProblem| OriginPatternError {
            text: text.to_owned(),
            problem,
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad(OriginProblem::NoScheme))?;
        if scheme != "http" && scheme != "https" {
            return Err(bad(OriginProblem::Scheme));
        }
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad(OriginProblem::NotAnOrigin));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad(OriginProblem::Port))?;
                (h, Some(port))
            }
            None => (rest, None),
        };
        if host == "*" {
            return Err(bad(OriginProblem::AnyHost));
        }
        let host = HostPattern::parse(host).map_err(|e| bad(e.into()))?;
        Ok(OriginPattern {
            scheme: scheme.to_owned(),
            host,
            port,
        })
    }

    /// Whether an origin (scheme, host, port) matches.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let default = if self.scheme == "https" { 443 } else { 80 };
        scheme.eq_ignore_ascii_case(&self.scheme)
            && self.host.matches(host)
            && port == self.port.unwrap_or(default)
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// A DNS name: dot-separated labels of letters, digits and hyphens (also
/// `_` for service labels), each 1..=63 long, at most 253 in all.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_parse() {
        for (text, ok) in [
            ("*", true),
            ("example.com", true),
            ("*.example.com", true),
            ("Example.COM.", true),
            ("localhost", true),
            ("", false),
            ("*.", false),
            ("**.example.com", false),
            ("ex ample.com", false),
            ("example..com", false),
            ("-bad.com", false),
            ("a.*.com", false),
            ("https://example.com", false),
        ] {
            assert_eq!(HostPattern::parse(text).is_ok(), ok, "{text:?}");
        }
    }

    #[test]
    fn host_patterns_match() {
        let exact = HostPattern::parse("example.com").unwrap();
        let domain = HostPattern::parse("*.example.com").unwrap();
        for (host, e, d) in [
            ("example.com", true, true),
            ("EXAMPLE.com.", true, true),
            ("www.example.com", false, true),
            ("a.b.example.com", false, true),
            ("badexample.com", false, false),
            ("example.com.evil", false, false),
            ("com", false, false),
        ] {
            assert_eq!(exact.matches(host), e, "exact {host}");
            assert_eq!(domain.matches(host), d, "domain {host}");
        }
        assert!(HostPattern::Any.matches("anything.test"));
    }

    #[test]
    fn origin_patterns() {
        for (text, ok) in [
            ("https://api.example.com", true),
            ("http://localhost:8080", true),
            ("https://*.example.com:8443", true),
            ("ftp://example.com", false),
            ("example.com", false),
            ("https://example.com/path", false),
            ("https://user@example.com", false),
            ("https://example.com:0", false),
            ("https://example.com:70000", false),
            ("https://*", false),
        ] {
            assert_eq!(OriginPattern::parse(text).is_ok(), ok, "{text:?}");
        }
        let o = OriginPattern::parse("https://*.example.com").unwrap();
        assert!(o.matches("https", "api.example.com", 443));
        assert!(!o.matches("https", "api.example.com", 8443));
        assert!(!o.matches("http", "api.example.com", 443));
        let o = OriginPattern::parse("http://localhost:8080").unwrap();
        assert!(o.matches("http", "localhost", 8080));
        assert!(!o.matches("http", "localhost", 80));
    }

    #[test]
    fn pattern_errors_say_what_is_wrong() {
        assert_eq!(
            HostPattern::parse("a.*.com").unwrap_err().to_string(),
            r#""a.*.com" is not a host pattern (use "*", "example.com" or "*.example.com")"#
        );
        let origin = |t| OriginPattern::parse(t).unwrap_err();
        assert_eq!(
            origin("https://*").to_string(),
            r#""https://*" is not an origin: an origin names its host ("*" would allow fetching anywhere)"#
        );
        assert_eq!(origin("example.com").problem, OriginProblem::NoScheme);
        assert_eq!(origin("ftp://example.com").problem, OriginProblem::Scheme);
        assert_eq!(
            origin("https://a.test/x").problem,
            OriginProblem::NotAnOrigin
        );
        assert_eq!(origin("https://a.test:0").problem, OriginProblem::Port);
        assert_eq!(
            origin("https://a..test").to_string(),
            r#""https://a..test" is not an origin: "a..test" is not a host pattern (use "*", "example.com" or "*.example.com")"#
        );
    }
}
