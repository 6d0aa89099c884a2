//! Alt-Svc (RFC 7838): the header parsed into alternatives, and a bounded
//! cache of them keyed by origin and network, which can be saved to and
//! loaded from a file so that an upgrade learned in one run is used in the
//! next. Sans-IO: callers pass the time, the cache never reads a clock.
//!
//! Only what sockhost can use is kept: `h3` alternatives. An entry the
//! server did not mark `persist=1` is forgotten when the network changes.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::pool::OriginKey;

/// Origins (per network) the cache remembers; the oldest goes first.
pub const MAX_ORIGINS: usize = 1024;
/// Alternatives kept per origin.
pub const MAX_ALTERNATIVES: usize = 8;
/// Longest header value parsed; longer ones are ignored whole.
pub const MAX_HEADER_LEN: usize = 4096;
/// Freshness when the header gives no `ma` (RFC 7838 §3: 24 hours).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(86_400);

/// One alternative service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alternative {
    /// The ALPN protocol id, e.g. `h3`.
    pub protocol: String,
    /// The host to connect to; `None` means the origin's own host.
    pub host: Option<String>,
    /// The port to connect to.
    pub port: u16,
    /// How long it stays fresh from when it was received.
    pub max_age: Duration,
    /// Whether it survives a network change.
    pub persist: bool,
}

/// What a header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AltSvc {
    /// `clear`: forget every alternative of the origin.
    Clear,
    /// These alternatives, in the server's order of preference.
    Alternatives(Vec<Alternative>),
}

/// Why a header value was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AltSvcError {
    /// The value is longer than [`MAX_HEADER_LEN`].
    #[error("Alt-Svc value longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
    /// An alternative is malformed.
    #[error("Alt-Svc alternative {0:?} is malformed: {1}")]
    Malformed(String, &'static str),
}

/// Parses an `Alt-Svc` header value. Alternatives with unknown parameters
/// are kept (parameters are extensible); malformed ones fail the value, as
/// a partial reading could pick the wrong alternative.
pub fn parse(value: &str) -> Result<AltSvc, AltSvcError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(AltSvcError::TooLong);
    }
    if value.trim().eq_ignore_ascii_case("clear") {
        return Ok(AltSvc::Clear);
    }
    let mut out = Vec::new();
    for item in split_outside_quotes(value, ',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let bad = |why| AltSvcError::Malformed(item.to_owned(), why);
        let mut parts = split_outside_quotes(item, ';').into_iter();
        let first = parts.next().unwrap_or_default();
        let (protocol, authority) = first.split_once('=').ok_or_else(|| bad("no '='"))?;
        let protocol = percent_decode(protocol.trim()).ok_or_else(|| bad("bad protocol id"))?;
        let authority = unquote(authority.trim()).ok_or_else(|| bad("authority not quoted"))?;
        let (host, port) = authority.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let mut alt = Alternative {
            protocol,
            host: (!host.is_empty()).then(|| host.to_ascii_lowercase()),
            port,
            max_age: DEFAULT_MAX_AGE,
            persist: false,
        };
        for param in parts {
            let Some((name, v)) = param.split_once('=') else {
                return Err(bad("parameter without '='"));
            };
            let v = unquote(v.trim()).unwrap_or_else(|| v.trim().to_owned());
            match name.trim().to_ascii_lowercase().as_str() {
                "ma" => {
                    let secs: u64 = v.parse().map_err(|_| bad("bad ma"))?;
                    alt.max_age = Duration::from_secs(secs);
                }
                "persist" => alt.persist = v == "1",
                _ => {}
            }
        }
        out.push(alt);
    }
    Ok(AltSvc::Alternatives(out))
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next()? } else { c });
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().filter(|p| !p.is_empty())
}

/// A cached alternative with its expiry (seconds since the Unix epoch, so
/// that it means the same in the next run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    alternative: Alternative,
    expires: u64,
}

/// Alternatives by (network, origin), bounded.
#[derive(Debug, Default, Clone)]
pub struct AltSvcCache {
    /// Invariant: at most [`MAX_ORIGINS`] keys, each with 1 to
    /// [`MAX_ALTERNATIVES`] entries; `order` lists the same keys, oldest
    /// first.
    entries: BTreeMap<(String, String), Vec<Entry>>,
    order: VecDeque<(String, String)>,
}

fn origin_text(o: &OriginKey) -> String {
    format!("{}://{}:{}", o.scheme, o.host, o.port)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One origin's fresh alternatives on one network, for a status view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryView {
    /// The network.
    pub network: String,
    /// The origin, `scheme://host:port`.
    pub origin: String,
    /// Its alternatives as an `Alt-Svc` header would say them now (`ma`
    /// is what is left of their freshness).
    pub alternatives: Vec<String>,
    /// When the latest of them expires, in seconds since the Unix epoch.
    pub expires_unix: u64,
}

impl Alternative {
    /// The alternative in `Alt-Svc` header form, fresh for `max_age`:
    /// `h3=":443"; ma=3600` (`; persist=1` when it survives a network
    /// change).
    pub fn header(&self, max_age: Duration) -> String {
        let host = match &self.host {
            Some(h) if h.contains(':') => format!("[{h}]"),
            Some(h) => h.clone(),
            None => String::new(),
        };
        let authority = format!("{host}:{}", self.port);
        let mut out = format!(
            "{}=\"{}\"; ma={}",
            percent_encode(&self.protocol),
            authority.replace('\\', "\\\\").replace('"', "\\\""),
            max_age.as_secs()
        );
        if self.persist {
            out.push_str("; persist=1");
        }
        out
    }
}

/// A protocol id as a token: `%`, and what a token may not hold, become
/// `%XX` (RFC 7838 §3).
fn percent_encode(id: &str) -> String {
    let mut out = String::new();
    for b in id.bytes() {
        let tchar = b.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&b);
        if tchar {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The file format: one record per (network, origin).
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    network: String,
    origin: String,
    alternatives: Vec<Entry>,
}

impl AltSvcCache {
    /// Records what `origin` said on `network` at `now`. Returns whether
    /// the alternatives changed (a refreshed expiry alone is no change), so
    /// that callers save only when there is news.
    pub fn update(
        &mut self,
        network: &str,
        origin: &OriginKey,
        said: AltSvc,
        now: SystemTime,
    ) -> bool {
        let key = (network.to_owned(), origin_text(origin));
        let alternatives = match said {
            AltSvc::Clear => Vec::new(),
            AltSvc::Alternatives(a) => a,
        };
        let fresh: Vec<Entry> = alternatives
            .into_iter()
            .filter(|a| a.protocol == "h3" && !a.max_age.is_zero())
            .take(MAX_ALTERNATIVES)
            .map(|a| Entry {
                expires: unix(now).saturating_add(a.max_age.as_secs()),
                alternative: a,
            })
            .collect();
        let before: Vec<Alternative> = self
            .entries
            .get(&key)
            .map(|v| v.iter().map(|e| e.alternative.clone()).collect())
            .unwrap_or_default();
        let changed = before.len() != fresh.len()
            || before.iter().zip(&fresh).any(|(a, e)| *a != e.alternative);
        self.order.retain(|k| *k != key);
        if fresh.is_empty() {
            self.entries.remove(&key);
            return changed;
        }
        self.entries.insert(key.clone(), fresh);
        self.order.push_back(key);
        while self.order.len() > MAX_ORIGINS {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
        changed
    }

    /// The fresh h3 alternatives of `origin` on `network`, best first.
    pub fn h3(&self, network: &str, origin: &OriginKey, now: SystemTime) -> Vec<Alternative> {
        let now = unix(now);
        self.entries
            .get(&(network.to_owned(), origin_text(origin)))
            .map(|v| {
                v.iter()
                    .filter(|e| e.expires > now)
                    .map(|e| e.alternative.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every origin with a fresh alternative at `now`, by network then
    /// origin.
    pub fn entries(&self, now: SystemTime) -> Vec<EntryView> {
        let now = unix(now);
        self.entries
            .iter()
            .filter_map(|((network, origin), entries)| {
                let fresh: Vec<&Entry> = entries.iter().filter(|e| e.expires > now).collect();
                let expires_unix = fresh.iter().map(|e| e.expires).max()?;
                Some(EntryView {
                    network: network.clone(),
                    origin: origin.clone(),
                    alternatives: fresh
                        .iter()
                        .map(|e| e.alternative.header(Duration::from_secs(e.expires - now)))
                        .collect(),
                    expires_unix,
                })
            })
            .collect()
    }

    /// Forgets an alternative that failed (RFC 7838 §2.4: a client may).
    pub fn forget(&mut self, network: &str, origin: &OriginKey) {
        let key = (network.to_owned(), origin_text(origin));
        self.entries.remove(&key);
        self.order.retain(|k| *k != key);
    }

    /// The network changed: entries not marked `persist` are dropped.
    pub fn network_changed(&mut self) {
        for v in self.entries.values_mut() {
            v.retain(|e| e.alternative.persist);
        }
        self.entries.retain(|_, v| !v.is_empty());
        let entries = &self.entries;
        self.order.retain(|k| entries.contains_key(k));
    }

    /// The cache as JSON, expired entries left out.
    pub fn save(&self, now: SystemTime) -> String {
        let now = unix(now);
        let saved: Vec<Saved> = self
            .order
            .iter()
            .filter_map(|k| {
                let alternatives: Vec<Entry> = self
                    .entries
                    .get(k)?
                    .iter()
                    .filter(|e| e.expires > now)
                    .cloned()
                    .collect();
                (!alternatives.is_empty()).then(|| Saved {
                    network: k.0.clone(),
                    origin: k.1.clone(),
                    alternatives,
                })
            })
            .collect();
        serde_json::to_string_pretty(&saved).unwrap_or_else(|_| "[]".to_owned())
    }

    /// A cache from [`AltSvcCache::save`]'s output; expired entries, and
    /// any beyond the bounds, are dropped. A file that is not such JSON is
    /// an error naming what is wrong.
    pub fn load(text: &str, now: SystemTime) -> Result<AltSvcCache, AltSvcLoadError> {
        let saved: Vec<Saved> = serde_json::from_str(text).map_err(AltSvcLoadError)?;
        let now = unix(now);
        let mut cache = AltSvcCache::default();
        for s in saved {
            let fresh: Vec<Entry> = s
                .alternatives
                .into_iter()
                .filter(|e| e.expires > now && e.alternative.protocol == "h3")
                .take(MAX_ALTERNATIVES)
                .collect();
            if fresh.is_empty() {
                continue;
            }
            let key = (s.network, s.origin);
            cache.order.retain(|k| *k != key);
            cache.entries.insert(key.clone(), fresh);
            cache.order.push_back(key);
            while cache.order.len() > MAX_ORIGINS {
                if let Some(old) = cache.order.pop_front() {
                    cache.entries.remove(&old);
                }
            }
        }
        Ok(cache)
    }
}

/// A saved Alt-Svc cache that is not the JSON [`AltSvcCache::save`] wrote.
#[derive(Debug, thiserror::Error)]
#[error("Alt-Svc cache: {0}")]
pub struct AltSvcLoadError(#[source] serde_json::Error);

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(host: &str) -> OriginKey {
        OriginKey {
            scheme: "https".into(),
            host: host.into(),
            port: 443,
        }
    }

    #[test]
    fn headers_parse_as_rfc_7838_says() {
        let cases: [(&str, Result<AltSvc, ()>); 9] = [
            ("clear", Ok(AltSvc::Clear)),
            (
                r#"h3=":443"; ma=3600; persist=1, h2="alt.example:8443""#,
                Ok(AltSvc::Alternatives(vec![
                    Alternative {
                        protocol: "h3".into(),
                        host: None,
                        port: 443,
                        max_age: Duration::from_secs(3600),
                        persist: true,
                    },
                    Alternative {
                        protocol: "h2".into(),
                        host: Some("alt.example".into()),
                        port: 8443,
                        max_age: DEFAULT_MAX_AGE,
                        persist: false,
                    },
                ])),
            ),
            (
                // Percent-encoded protocol id, an IPv6 literal, an unknown
                // parameter, a quoted ma.
                r#"h%33="[::1]:9443"; foo=bar; ma="60""#,
                Ok(AltSvc::Alternatives(vec![Alternative {
                    protocol: "h3".into(),
                    host: Some("::1".into()),
                    port: 9443,
                    max_age: Duration::from_secs(60),
                    persist: false,
                }])),
            ),
            ("", Ok(AltSvc::Alternatives(vec![]))),
            ("h3=:443", Err(())),
            (r#"h3="example""#, Err(())),
            (r#"h3=":99999""#, Err(())),
            (r#"h3=":443"; ma=soon"#, Err(())),
            (r#"="":443""#, Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).map_err(|_| ()), want, "{text}");
        }
        assert_eq!(parse(&"a".repeat(5000)), Err(AltSvcError::TooLong));
    }

    #[test]
    fn the_cache_keeps_fresh_h3_per_network_and_origin() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut c = AltSvcCache::default();
        let said = parse(r#"h3=":443"; ma=100, h2=":443""#).unwrap();
        c.update("wifi", &origin("a.test"), said, t0);
        assert_eq!(
            c.h3("wifi", &origin("a.test"), t0).len(),
            1,
            "h2 is not kept"
        );
        assert!(
            c.h3("cell", &origin("a.test"), t0).is_empty(),
            "per network"
        );
        assert!(c.h3("wifi", &origin("b.test"), t0).is_empty(), "per origin");
        let later = t0 + Duration::from_secs(101);
        assert!(
            c.h3("wifi", &origin("a.test"), later).is_empty(),
            "ma=100 expired"
        );
        c.update("wifi", &origin("a.test"), AltSvc::Clear, t0);
        assert!(c.h3("wifi", &origin("a.test"), t0).is_empty(), "clear");
    }

    #[test]
    fn entries_list_fresh_alternatives_in_header_form() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut c = AltSvcCache::default();
        let said = parse(r#"h3=":443"; ma=100; persist=1, h3="[::1]:8443"; ma=50"#).unwrap();
        c.update("wifi", &origin("a.test"), said, t0);
        c.update(
            "cell",
            &origin("b.test"),
            parse(r#"h3="alt.test:443""#).unwrap(),
            t0,
        );
        let later = t0 + Duration::from_secs(10);
        let e = c.entries(later);
        assert_eq!(
            e,
            [
                EntryView {
                    network: "cell".into(),
                    origin: "https://b.test:443".into(),
                    alternatives: vec![format!(
                        "h3=\"alt.test:443\"; ma={}",
                        DEFAULT_MAX_AGE.as_secs() - 10
                    )],
                    expires_unix: 1_000_000 + DEFAULT_MAX_AGE.as_secs(),
                },
                EntryView {
                    network: "wifi".into(),
                    origin: "https://a.test:443".into(),
                    alternatives: vec![
                        "h3=\":443\"; ma=90; persist=1".into(),
                        "h3=\"[::1]:8443\"; ma=40".into()
                    ],
                    expires_unix: 1_000_100,
                },
            ]
        );
        // What the header form says parses back to the same alternative.
        assert_eq!(
            parse(&e[1].alternatives[1]).unwrap(),
            parse(r#"h3="[::1]:8443"; ma=40"#).unwrap()
        );
        // Past the shorter one's expiry only the longer is listed.
        let e = c.entries(t0 + Duration::from_secs(60));
        assert_eq!(e[1].alternatives, ["h3=\":443\"; ma=40; persist=1"]);
        assert!(c.entries(t0 + DEFAULT_MAX_AGE).is_empty());
        assert_eq!(percent_encode("h3 x%"), "h3%20x%25");
    }

    #[test]
    fn a_network_change_keeps_only_persisted_entries() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut c = AltSvcCache::default();
        c.update("n", &origin("a.test"), parse(r#"h3=":443""#).unwrap(), t0);
        c.update(
            "n",
            &origin("b.test"),
            parse(r#"h3=":443"; persist=1"#).unwrap(),
            t0,
        );
        c.network_changed();
        assert!(c.h3("n", &origin("a.test"), t0).is_empty());
        assert_eq!(c.h3("n", &origin("b.test"), t0).len(), 1);
    }

    #[test]
    fn the_cache_is_bounded_and_survives_a_save_and_load() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut c = AltSvcCache::default();
        for i in 0..MAX_ORIGINS + 5 {
            c.update(
                "n",
                &origin(&format!("h{i}.test")),
                parse(r#"h3=":443""#).unwrap(),
                t0,
            );
        }
        assert_eq!(c.entries.len(), MAX_ORIGINS);
        assert!(
            c.h3("n", &origin("h0.test"), t0).is_empty(),
            "oldest evicted"
        );
        let text = c.save(t0);
        let back = AltSvcCache::load(&text, t0).unwrap();
        assert_eq!(back.entries, c.entries);
        // Expired by the time of the next run: nothing comes back.
        let much_later = t0 + DEFAULT_MAX_AGE + Duration::from_secs(1);
        assert!(AltSvcCache::load(&text, much_later)
            .unwrap()
            .entries
            .is_empty());
        assert!(AltSvcCache::load("{not json", t0)
            .unwrap_err()
            .to_string()
            .contains("Alt-Svc cache"));
    }
}
