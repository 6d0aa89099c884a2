//! Name resolution with hickory: A, AAAA and HTTPS (SVCB) records queried
//! in parallel, answers cached by hickory for their TTL, and curl-style
//! `--resolve host:port:addr` overrides that skip DNS entirely.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::rr::rdata::svcb::SvcParamValue;
use hickory_proto::rr::{RData, RecordType};
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::TokioResolver;

/// How long one query may take before the resolver gives up on it.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Responses kept in the resolver's cache.
const CACHE_SIZE: u64 = 4096;
/// Most HTTPS records of one name considered; the rest are ignored.
const MAX_HTTPS_RECORDS: usize = 16;

/// Where the resolver sends queries.
#[derive(Debug, Clone, Default)]
pub struct DnsConfig {
    /// Name servers (address and port); empty means the system's
    /// configuration (`/etc/resolv.conf`).
    pub name_servers: Vec<SocketAddr>,
    /// `--resolve` overrides, consulted before any query.
    pub overrides: Vec<ResolveOverride>,
    /// Per-query timeout; `None` means [`DEFAULT_QUERY_TIMEOUT`].
    pub timeout: Option<Duration>,
}

/// A curl-style override: connections to `host:port` go to `addrs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOverride {
    /// The host name, lowercase, without a trailing dot.
    pub host: String,
    /// The port the override applies to.
    pub port: u16,
    /// The addresses to use instead of DNS.
    pub addrs: Vec<IpAddr>,
}

impl std::str::FromStr for ResolveOverride {
    type Err = String;

    /// Parses `host:port:addr[,addr…]`; IPv6 addresses may be bracketed.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("--resolve {text:?}: {why} (expected host:port:addr[,addr])");
        let mut parts = text.splitn(3, ':');
        let host = parts.next().unwrap_or("");
        let port = parts.next().ok_or_else(|| bad("missing port"))?;
        let addrs = parts.next().ok_or_else(|| bad("missing address"))?;
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("the port must be 1 to 65535"))?;
        let addrs = addrs
            .split(',')
            .map(|a| {
                let a = a.trim();
                let a = a
                    .strip_prefix('[')
                    .and_then(|a| a.strip_suffix(']'))
                    .unwrap_or(a);
                a.parse::<IpAddr>()
                    .map_err(|_| bad(&format!("{a:?} is not an IP address")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ResolveOverride {
            host: normalize_host(host),
            port,
            addrs,
        })
    }
}

/// How an address was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSource {
    /// An A record.
    A,
    /// An AAAA record.
    Aaaa,
    /// A `--resolve` override.
    Override,
    /// The host was an IP literal.
    Literal,
}

/// One address of a resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedAddr {
    /// The address.
    pub ip: IpAddr,
    /// Where it came from.
    pub source: AddressSource,
}

/// One HTTPS (SVCB) record: an alternative endpoint for the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsService {
    /// SvcPriority; 0 is alias mode (the target is another name).
    pub priority: u16,
    /// TargetName, without the trailing dot; `.` (empty here) means the
    /// origin's own name.
    pub target: String,
    /// ALPN protocol ids (`h3`, `h2`, `http/1.1`).
    pub alpn: Vec<String>,
    /// Whether the default ALPN (`http/1.1`) is excluded.
    pub no_default_alpn: bool,
    /// The port to use instead of the origin's.
    pub port: Option<u16>,
    /// IPv4 addresses the client may use before A answers.
    pub ipv4_hints: Vec<Ipv4Addr>,
    /// IPv6 addresses the client may use before AAAA answers.
    pub ipv6_hints: Vec<Ipv6Addr>,
    /// An ECHConfigList, kept for encrypted client hello.
    pub ech_config: Option<Vec<u8>>,
}

/// One query the resolution made (for telemetry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryReport {
    /// The record type.
    pub record_type: &'static str,
    /// Records of that type in the answer.
    pub answers: u32,
    /// How long it took.
    pub elapsed: Duration,
    /// The failure, if it failed for another reason than "no such records".
    pub error: Option<String>,
}

/// Everything known about a host after resolving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The name resolved.
    pub host: String,
    /// Addresses, AAAA before A in answer order.
    pub addrs: Vec<ResolvedAddr>,
    /// HTTPS records, by priority.
    pub https: Vec<HttpsService>,
    /// The queries made; empty for overrides and literals.
    pub queries: Vec<QueryReport>,
    /// From start to the last answer.
    pub elapsed: Duration,
}

/// Why a name could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The host is not a valid DNS name.
    #[error("{host:?} is not a valid host name: {why}")]
    InvalidName {
        /// The host.
        host: String,
        /// What is wrong.
        why: String,
    },
    /// No A or AAAA records (or NXDOMAIN).
    #[error("could not resolve {host}: no such host")]
    NotFound {
        /// The host.
        host: String,
    },
    /// The name servers did not answer in time.
    #[error("could not resolve {host}: timed out after {timeout:?}")]
    Timeout {
        /// The host.
        host: String,
        /// The per-query timeout.
        timeout: Duration,
    },
    /// Any other failure (refused, server failure, malformed answer).
    #[error("could not resolve {host}: {message}")]
    Failed {
        /// The host.
        host: String,
        /// What the resolver said.
        message: String,
    },
    /// The resolver could not be configured.
    #[error("cannot configure DNS: {0}")]
    Config(String),
}

/// The resolver.
#[derive(Debug)]
pub struct Resolver {
    inner: TokioResolver,
    overrides: HashMap<(String, u16), Vec<IpAddr>>,
    timeout: Duration,
}

impl Resolver {
    /// A resolver for `config`. Must be called within a tokio runtime.
    pub fn new(config: &DnsConfig) -> Result<Self, DnsError> {
        let timeout = config.timeout.unwrap_or(DEFAULT_QUERY_TIMEOUT);
        let provider = TokioRuntimeProvider::default();
        let mut builder = if config.name_servers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| DnsError::Config(e.to_string()))?
        } else {
            let servers = config
                .name_servers
                .iter()
                .map(|addr| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = addr.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = addr.port();
                    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                    ns.connections = vec![udp, tcp];
                    ns
                })
                .collect();
            let mut b = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                provider,
            );
            // Explicit name servers mean exactly those: no /etc/hosts.
            b.options_mut().use_hosts_file = ResolveHosts::Never;
            b
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.cache_size = CACHE_SIZE;
        opts.edns0 = true;
        let inner = builder
            .build()
            .map_err(|e| DnsError::Config(e.to_string()))?;
        let overrides = config
            .overrides
            .iter()
            .map(|o| ((o.host.clone(), o.port), o.addrs.clone()))
            .collect();
        Ok(Resolver {
            inner,
            overrides,
            timeout,
        })
    }

    /// Resolves `host` for a connection to `port`: overrides first, IP
    /// literals as they are, otherwise A, AAAA and HTTPS queried together.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Resolution, DnsError> {
        let started = Instant::now();
        let name = normalize_host(host);
        let literal = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(&name);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(Resolution {
                host: name.clone(),
                addrs: vec![ResolvedAddr {
                    ip,
                    source: AddressSource::Literal,
                }],
                https: Vec::new(),
                queries: Vec::new(),
                elapsed: started.elapsed(),
            });
        }
        if let Some(addrs) = self.overrides.get(&(name.clone(), port)) {
            return Ok(Resolution {
                host: name.clone(),
                addrs: addrs
                    .iter()
                    .map(|&ip| ResolvedAddr {
                        ip,
                        source: AddressSource::Override,
                    })
                    .collect(),
                https: Vec::new(),
                queries: Vec::new(),
                elapsed: started.elapsed(),
            });
        }
        check_name(&name)?;
        // Fully qualified, so search domains do not multiply the queries.
        let fqdn = format!("{name}.");
        let (aaaa, a, https) = tokio::join!(
            self.query(&fqdn, RecordType::AAAA),
            self.query(&fqdn, RecordType::A),
            self.query(&fqdn, RecordType::HTTPS),
        );
        let mut addrs = Vec::new();
        let mut https_services = Vec::new();
        let mut queries = Vec::new();
        let mut errors = Vec::new();
        for (record_type, result) in [("AAAA", aaaa), ("A", a), ("HTTPS", https)] {
            let (answers, elapsed) = match result {
                Ok((records, elapsed)) => (records, elapsed),
                Err((e, elapsed)) => {
                    let message = (!e.is_no_records_found()).then(|| e.to_string());
                    if record_type != "HTTPS" {
                        errors.push(e);
                    }
                    queries.push(QueryReport {
                        record_type,
                        answers: 0,
                        elapsed,
                        error: message,
                    });
                    continue;
                }
            };
            let mut count = 0u32;
            for data in answers {
                match data {
                    RData::AAAA(aaaa) if record_type == "AAAA" => {
                        count += 1;
                        addrs.push(ResolvedAddr {
                            ip: IpAddr::V6(aaaa.0),
                            source: AddressSource::Aaaa,
                        });
                    }
                    RData::A(a) if record_type == "A" => {
                        count += 1;
                        addrs.push(ResolvedAddr {
                            ip: IpAddr::V4(a.0),
                            source: AddressSource::A,
                        });
                    }
                    RData::HTTPS(h) if record_type == "HTTPS" => {
                        count += 1;
                        if https_services.len() < MAX_HTTPS_RECORDS {
                            https_services.push(https_service(&h.0, &name));
                        }
                    }
                    _ => {}
                }
            }
            queries.push(QueryReport {
                record_type,
                answers: count,
                elapsed,
                error: None,
            });
        }
        https_services.sort_by_key(|s| s.priority);
        if addrs.is_empty() {
            return Err(self.classify(&name, &errors));
        }
        Ok(Resolution {
            host: name,
            addrs,
            https: https_services,
            queries,
            elapsed: started.elapsed(),
        })
    }

    async fn query(
        &self,
        fqdn: &str,
        record_type: RecordType,
    ) -> Result<(Vec<RData>, Duration), (NetError, Duration)> {
        let started = Instant::now();
        match self.inner.lookup(fqdn, record_type).await {
            Ok(lookup) => Ok((
                lookup.answers().iter().map(|r| r.data.clone()).collect(),
                started.elapsed(),
            )),
            Err(e) => Err((e, started.elapsed())),
        }
    }

    /// The error for a name with no addresses, from the A/AAAA failures.
    fn classify(&self, host: &str, errors: &[NetError]) -> DnsError {
        let host = host.to_owned();
        if errors.iter().any(|e| matches!(e, NetError::Timeout)) {
            return DnsError::Timeout {
                host,
                timeout: self.timeout,
            };
        }
        if let Some(e) = errors
            .iter()
            .find(|e| !e.is_no_records_found() && !e.is_nx_domain())
        {
            return DnsError::Failed {
                host,
                message: e.to_string(),
            };
        }
        DnsError::NotFound { host }
    }
}

fn https_service(svcb: &hickory_proto::rr::rdata::SVCB, origin: &str) -> HttpsService {
    let target = svcb.target_name.to_ascii();
    let target = target.trim_end_matches('.');
    let mut s = HttpsService {
        priority: svcb.svc_priority,
        target: if target.is_empty() {
            origin.to_owned()
        } else {
            target.to_ascii_lowercase()
        },
        alpn: Vec::new(),
        no_default_alpn: false,
        port: None,
        ipv4_hints: Vec::new(),
        ipv6_hints: Vec::new(),
        ech_config: None,
    };
    for (_, value) in &svcb.svc_params {
        match value {
            SvcParamValue::Alpn(alpn) => s.alpn = alpn.0.clone(),
            SvcParamValue::NoDefaultAlpn => s.no_default_alpn = true,
            SvcParamValue::Port(p) => s.port = Some(*p),
            SvcParamValue::Ipv4Hint(h) => s.ipv4_hints = h.0.iter().map(|a| a.0).collect(),
            SvcParamValue::Ipv6Hint(h) => s.ipv6_hints = h.0.iter().map(|a| a.0).collect(),
            SvcParamValue::EchConfigList(e) => s.ech_config = Some(e.0.clone()),
            _ => {}
        }
    }
    s
}

/// Lowercase, without a trailing dot.
fn normalize_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// A DNS name hickory can query: labels of 1..=63 bytes, 253 in all.
fn check_name(name: &str) -> Result<(), DnsError> {
    let invalid = |why: &str| DnsError::InvalidName {
        host: name.to_owned(),
        why: why.to_owned(),
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > 253 {
        return Err(invalid("it is longer than 253 bytes"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(invalid("it has an empty label"));
        }
        if label.len() > 63 {
            return Err(invalid("a label is longer than 63 bytes"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid("only letters, digits, '-' and '_' are allowed"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_overrides_parse() {
        let o: ResolveOverride = "Example.com:443:127.0.0.1,[::1]".parse().unwrap();
        assert_eq!(o.host, "example.com");
        assert_eq!(o.port, 443);
        assert_eq!(
            o.addrs,
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse::<IpAddr>().unwrap()
            ]
        );
        for bad in [
            "example.com",
            "example.com:443",
            ":443:127.0.0.1",
            "example.com:0:127.0.0.1",
            "example.com:x:127.0.0.1",
            "example.com:443:localhost",
        ] {
            let err = bad.parse::<ResolveOverride>().unwrap_err();
            assert!(err.contains("--resolve"), "{err}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("www.example.com").is_ok());
        assert!(check_name("_dns.resolver.arpa").is_ok());
        for bad in ["", "a..b", "exa mple.com", &"a".repeat(64), "ü.com"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
