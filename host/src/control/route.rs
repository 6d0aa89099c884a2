//! What a control request asks for: method, path and query in, a
//! [`Route`] or the 4xx that names what was wrong out. Sans-IO.

use http::Method;

/// The longest host name `GET /v1/dns` takes (DNS's own limit).
pub const MAX_DNS_NAME: usize = 253;
/// The longest plugin name a path may carry (manifests allow 64).
pub const MAX_PLUGIN_NAME: usize = 64;

/// A control request the daemon serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /` or `GET /?dns=NAME`: the status page, with the answer for
    /// NAME when its DNS form was used.
    Page {
        /// The name asked for in the page's form, checked as for `/v1/dns`.
        dns: Option<String>,
    },
    /// `GET /v1/status`: the status document (JSON).
    Status,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `POST /v1/reload`.
    Reload,
    /// `POST /v1/plugins/{name}/enable` or `…/disable`.
    SetPlugin {
        /// The plugin.
        name: String,
        /// Enable (true) or disable.
        enable: bool,
    },
    /// `POST /v1/network-changed`.
    NetworkChanged,
    /// `GET /v1/faults`: recent faults (JSON).
    Faults,
    /// `GET /v1/dns?host=NAME`: what the resolver answers.
    Dns {
        /// The name, lower-cased, without a trailing dot.
        host: String,
    },
    /// `POST /v1/debug/crash`: panics on purpose, to try the crash
    /// reporter (Firefox's about:crashparent). Only when the daemon was
    /// started with it enabled; otherwise 404 like any unknown path.
    Crash,
}

/// Why a control request has no route: each is a 4xx with a one-line
/// reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No such resource.
    #[error("no such resource: {0}")]
    NotFound(String),
    /// The resource exists but not with this method.
    #[error("{path} takes {allowed} only")]
    MethodNotAllowed {
        /// The path.
        path: String,
        /// The method it takes (the `Allow` header).
        allowed: &'static str,
    },
    /// The query or a path segment is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl RouteError {
    /// The status code.
    pub fn status(&self) -> u16 {
        match self {
            RouteError::NotFound(_) => 404,
            RouteError::MethodNotAllowed { .. } => 405,
            RouteError::BadRequest(_) => 400,
        }
    }
}

/// Routes a request. `crash_enabled` says whether `POST /v1/debug/crash`
/// exists.
pub fn route(
    method: &Method,
    path: &str,
    query: Option<&str>,
    crash_enabled: bool,
) -> Result<Route, RouteError> {
    let want = |allowed: &'static Method, r: Route| -> Result<Route, RouteError> {
        allow(method, path, allowed)?;
        Ok(r)
    };
    match path {
        "/" => {
            allow(method, path, &Method::GET)?;
            let asked = query.is_some_and(|q| q.split('&').any(|p| p.starts_with("dns=")));
            let dns = match asked {
                // The form's field is `dns`; the same checks as /v1/dns.
                true => Some(dns_host(
                    query.map(|q| q.replacen("dns=", "host=", 1)).as_deref(),
                )?),
                false => None,
            };
            Ok(Route::Page { dns })
        }
        "/v1/status" => want(&Method::GET, Route::Status),
        "/metrics" => want(&Method::GET, Route::Metrics),
        "/v1/reload" => want(&Method::POST, Route::Reload),
        "/v1/network-changed" => want(&Method::POST, Route::NetworkChanged),
        "/v1/faults" => want(&Method::GET, Route::Faults),
        "/v1/dns" => {
            allow(method, path, &Method::GET)?;
            Ok(Route::Dns {
                host: dns_host(query)?,
            })
        }
        "/v1/debug/crash" if crash_enabled => want(&Method::POST, Route::Crash),
        _ => match path.strip_prefix("/v1/plugins/") {
            Some(rest) => plugin_route(method, path, rest),
            None => Err(RouteError::NotFound(printable(path))),
        },
    }
}

/// Whether `method` is the one `path` takes; HEAD is GET without the body,
/// as any HTTP server allows.
fn allow(method: &Method, path: &str, allowed: &'static Method) -> Result<(), RouteError> {
    if method == allowed || (allowed == Method::GET && method == Method::HEAD) {
        return Ok(());
    }
    Err(RouteError::MethodNotAllowed {
        path: printable(path),
        allowed: if allowed == Method::GET {
            "GET"
        } else {
            "POST"
        },
    })
}

fn plugin_route(method: &Method, path: &str, rest: &str) -> Result<Route, RouteError> {
    let (name, verb) = rest
        .rsplit_once('/')
        .ok_or_else(|| RouteError::NotFound(printable(path)))?;
    let enable = match verb {
        "enable" => true,
        "disable" => false,
        _ => return Err(RouteError::NotFound(printable(path))),
    };
    allow(method, path, &Method::POST)?;
    plugin_name(name)?;
    Ok(Route::SetPlugin {
        name: name.to_owned(),
        enable,
    })
}

/// A plugin name as manifests allow it: lower-case letters, digits, `-`
/// and `_`, at most [`MAX_PLUGIN_NAME`].
fn plugin_name(name: &str) -> Result<(), RouteError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_PLUGIN_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RouteError::BadRequest(format!(
            "\"{}\" is not a plugin name (lower-case letters, digits, - and _, at most {MAX_PLUGIN_NAME})",
            printable(name)
        )))
    }
}

/// The `host` parameter of `/v1/dns`: one, a DNS name or an IP literal.
fn dns_host(query: Option<&str>) -> Result<String, RouteError> {
    let bad = |why: String| RouteError::BadRequest(why);
    let mut host = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "host" if host.is_some() => return Err(bad("host is given twice".into())),
            "host" => {
                host = Some(
                    percent_decode(v)
                        .ok_or_else(|| bad("host is not UTF-8 once decoded".into()))?,
                )
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter \"{}\" (only host=NAME)",
                    printable(other)
                )))
            }
        }
    }
    let host = host.ok_or_else(|| bad("host=NAME is missing".into()))?;
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return Err(bad("host is empty".into()));
    }
    if host.len() > MAX_DNS_NAME {
        return Err(bad(format!("host is longer than {MAX_DNS_NAME} bytes")));
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(host);
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !host.split('.').all(label_ok) {
        return Err(bad(format!("\"{}\" is not a host name", printable(&host))));
    }
    Ok(host)
}

/// `%XX` and `+` decoded; `None` when the result is not UTF-8 or an escape
/// is cut short.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// A client's text as it may appear in a one-line reason: control
/// characters escaped, at most 100 characters.
fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(100).flat_map(char::escape_default).collect();
    if s.chars().count() > 100 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, query: Option<&str>) -> Result<Route, RouteError> {
        route(&Method::GET, path, query, false)
    }

    fn post(path: &str) -> Result<Route, RouteError> {
        route(&Method::POST, path, None, false)
    }

    #[test]
    fn every_resource_with_its_method() {
        assert_eq!(get("/", None), Ok(Route::Page { dns: None }));
        assert_eq!(
            get("/", Some("dns=localhost")),
            Ok(Route::Page {
                dns: Some("localhost".into())
            })
        );
        assert_eq!(get("/", Some("dns=")).unwrap_err().status(), 400);
        assert_eq!(get("/v1/status", None), Ok(Route::Status));
        assert_eq!(
            route(&Method::HEAD, "/metrics", None, false),
            Ok(Route::Metrics)
        );
        assert_eq!(post("/v1/reload"), Ok(Route::Reload));
        assert_eq!(post("/v1/network-changed"), Ok(Route::NetworkChanged));
        assert_eq!(get("/v1/faults", None), Ok(Route::Faults));
        assert_eq!(
            post("/v1/plugins/request-stats/disable"),
            Ok(Route::SetPlugin {
                name: "request-stats".into(),
                enable: false
            })
        );
        assert_eq!(
            post("/v1/plugins/blocklist/enable"),
            Ok(Route::SetPlugin {
                name: "blocklist".into(),
                enable: true
            })
        );
    }

    #[test]
    fn a_wrong_method_is_405_naming_the_right_one() {
        let e = get("/v1/reload", None).unwrap_err();
        assert_eq!(e.status(), 405);
        assert_eq!(e.to_string(), "/v1/reload takes POST only");
        assert_eq!(post("/v1/status").unwrap_err().status(), 405);
        assert_eq!(get("/v1/plugins/x/enable", None).unwrap_err().status(), 405);
        assert_eq!(
            route(&Method::DELETE, "/metrics", None, false)
                .unwrap_err()
                .to_string(),
            "/metrics takes GET only"
        );
    }

    #[test]
    fn unknown_paths_are_404_and_the_crash_route_exists_only_when_enabled() {
        assert_eq!(get("/v2/status", None).unwrap_err().status(), 404);
        assert_eq!(post("/v1/plugins/x/restart").unwrap_err().status(), 404);
        assert_eq!(post("/v1/plugins/enable").unwrap_err().status(), 404);
        assert_eq!(post("/v1/debug/crash").unwrap_err().status(), 404);
        assert_eq!(
            route(&Method::POST, "/v1/debug/crash", None, true),
            Ok(Route::Crash)
        );
        let e = get("/\u{7}bell", None).unwrap_err();
        assert_eq!(e.to_string(), "no such resource: /\\u{7}bell");
    }

    #[test]
    fn plugin_names_are_checked() {
        for bad in ["", "Blocklist", "a%2Fb", "x y", &"a".repeat(65)] {
            let e = post(&format!("/v1/plugins/{bad}/enable")).unwrap_err();
            assert!(
                matches!(e, RouteError::BadRequest(_) | RouteError::NotFound(_)),
                "{bad}: {e:?}"
            );
        }
        assert_eq!(
            post("/v1/plugins/a/b/enable").unwrap_err().status(),
            400,
            "a slash inside the name"
        );
    }

    #[test]
    fn dns_takes_one_host_name_or_address() {
        let dns = |q: &str| get("/v1/dns", Some(q));
        assert_eq!(
            dns("host=Example.COM."),
            Ok(Route::Dns {
                host: "example.com".into()
            })
        );
        assert_eq!(dns("host=%3A%3A1"), Ok(Route::Dns { host: "::1".into() }));
        for (q, why) in [
            ("", "host=NAME is missing"),
            ("host=", "host is empty"),
            ("host=a&host=b", "host is given twice"),
            ("name=a", "unknown parameter \"name\" (only host=NAME)"),
            ("host=a..b", "\"a..b\" is not a host name"),
            ("host=-a.b", "\"-a.b\" is not a host name"),
            ("host=a%2", "host is not UTF-8 once decoded"),
            ("host=%FF", "host is not UTF-8 once decoded"),
            ("host=a%0Ab", "\"a\\nb\" is not a host name"),
        ] {
            assert_eq!(dns(q), Err(RouteError::BadRequest(why.into())), "{q}");
        }
        let long = format!("host={}a", "a.".repeat(127));
        assert_eq!(
            dns(&long).unwrap_err().to_string(),
            "bad request: host is longer than 253 bytes"
        );
        assert_eq!(post("/v1/dns").unwrap_err().status(), 405);
    }
}
