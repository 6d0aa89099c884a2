//! Name resolution with hickory: A, AAAA and HTTPS (SVCB) records queried
//! in parallel (a race may start before all have answered: `dns_gate`),
//! answers cached by hickory for their TTL, and curl-style
//! `--resolve host:port:addr` overrides that skip DNS entirely.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::dns_gate::{Query, StartGate};
use super::dns_records::{presentation, RecordsAnswer};
use super::dns_tally::{DnsCounts, DnsTally};
use super::dns_wire::{count_sent, WireCounting};

use hickory_proto::rr::rdata::svcb::SvcParamValue;
use hickory_proto::rr::{RData, RecordType};
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::{DnsError as Answered, NetError, NoRecords};

/// hickory's resolver, its connections to name servers counted.
type Inner = hickory_resolver::Resolver<WireCounting>;

/// How long one query may take before the resolver gives up on it.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Responses kept in the resolver's cache.
pub const CACHE_SIZE: u64 = 4096;
/// hickory's longest negative TTL (its default bound).
const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(86_400);
/// Most HTTPS records of one name considered; the rest are ignored.
const MAX_HTTPS_RECORDS: usize = 16;
/// Hosts whose last addresses are remembered (to trust HTTPS hints that
/// match them); the oldest is forgotten first.
const MAX_KNOWN_HOSTS: usize = 1024;
/// Addresses remembered per host.
const MAX_KNOWN_ADDRS: usize = 32;

/// Each host's addresses from its latest resolution, oldest host first.
type KnownAddrs = Arc<Mutex<KnownMap>>;

#[derive(Debug, Default)]
struct KnownMap {
    by_host: HashMap<String, Vec<IpAddr>>,
    /// Insertion order, for eviction. Invariant: the same keys as `by_host`.
    order: VecDeque<String>,
}

impl KnownMap {
    fn get(&self, host: &str) -> Option<&Vec<IpAddr>> {
        self.by_host.get(host)
    }
}

fn remember(known: &KnownAddrs, host: &str, addrs: &[ResolvedAddr]) {
    let ips: Vec<IpAddr> = addrs
        .iter()
        .filter(|a| matches!(a.source, AddressSource::A | AddressSource::Aaaa))
        .map(|a| a.ip)
        .collect();
    if ips.is_empty() {
        return;
    }
    let mut k = known.lock().unwrap_or_else(|e| e.into_inner());
    let entry = k.by_host.get_mut(host);
    match entry {
        Some(list) => {
            for ip in ips {
                if !list.contains(&ip) {
                    if list.len() == MAX_KNOWN_ADDRS {
                        list.remove(0);
                    }
                    list.push(ip);
                }
            }
        }
        None => {
            if k.order.len() == MAX_KNOWN_HOSTS {
                if let Some(old) = k.order.pop_front() {
                    k.by_host.remove(&old);
                }
            }
            let mut ips = ips;
            ips.truncate(MAX_KNOWN_ADDRS);
            k.order.push_back(host.to_owned());
            k.by_host.insert(host.to_owned(), ips);
        }
    }
}

type PendingQuery = Pin<Box<dyn Future<Output = (Query, Asked)> + Send + 'static>>;

/// A resolution that may start a race before every answer is in.
#[derive(Debug)]
pub struct Staged {
    /// What was known when the race could start.
    pub first: Resolution,
    /// The answers still outstanding, if any.
    pub late: Option<LateAnswers>,
}

/// Answers that arrive after the race started. Dropping it abandons them.
pub struct LateAnswers {
    host: String,
    pending: FuturesUnordered<PendingQuery>,
    /// Addresses already handed out (each is given once).
    seen: Vec<IpAddr>,
    known: KnownAddrs,
}

impl std::fmt::Debug for LateAnswers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateAnswers")
            .field("host", &self.host)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl LateAnswers {
    /// The next answer: its new addresses and HTTPS records (either may be
    /// empty), and its query report. `None` when every query has answered.
    pub async fn next(&mut self) -> Option<Resolution> {
        let (query, asked) = self.pending.next().await?;
        let elapsed = asked.elapsed;
        let mut answer = parse_answer(&self.host, query, asked);
        answer.addrs.retain(|a| !self.seen.contains(&a.ip));
        self.seen.extend(answer.addrs.iter().map(|a| a.ip));
        remember(&self.known, &self.host, &answer.addrs);
        let mut r = Resolution {
            host: self.host.clone(),
            addrs: Vec::new(),
            https: Vec::new(),
            queries: Vec::new(),
            elapsed,
        };
        r.add(answer.addrs, answer.https, answer.report);
        r.sort();
        Some(r)
    }
}

/// One parsed answer.
struct Answer {
    addrs: Vec<ResolvedAddr>,
    https: Vec<HttpsService>,
    report: QueryReport,
    /// An A/AAAA failure, for the error when no family has addresses.
    error: Option<NetError>,
}

fn parse_answer(host: &str, query: Query, asked: Asked) -> Answer {
    let record_type = match query {
        Query::Aaaa => "AAAA",
        Query::A => "A",
        Query::Https => "HTTPS",
    };
    let mut answer = Answer {
        addrs: Vec::new(),
        https: Vec::new(),
        report: QueryReport {
            record_type,
            answers: 0,
            elapsed: asked.elapsed,
            cached: asked.cached,
            error: None,
        },
        error: None,
    };
    let records = match asked.result {
        Ok(records) => records,
        Err(e) => {
            answer.report.error = (!e.is_no_records_found()).then(|| e.to_string());
            if query != Query::Https {
                answer.error = Some(e);
            }
            return answer;
        }
    };
    for data in records {
        match (query, data) {
            (Query::Aaaa, RData::AAAA(aaaa)) => {
                answer.report.answers += 1;
                answer.addrs.push(ResolvedAddr {
                    ip: IpAddr::V6(aaaa.0),
                    source: AddressSource::Aaaa,
                });
            }
            (Query::A, RData::A(a)) => {
                answer.report.answers += 1;
                answer.addrs.push(ResolvedAddr {
                    ip: IpAddr::V4(a.0),
                    source: AddressSource::A,
                });
            }
            (Query::Https, RData::HTTPS(h)) => {
                answer.report.answers += 1;
                if answer.https.len() < MAX_HTTPS_RECORDS {
                    answer.https.push(https_service(&h.0, host));
                }
            }
            _ => {}
        }
    }
    answer
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

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

/// A `--resolve` value that is not `host:port:addr[,addr]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--resolve {text:?}: {problem} (expected host:port:addr[,addr])")]
pub struct ResolveOverrideError {
    /// The value given.
    pub text: String,
    /// What is wrong with it.
    pub problem: ResolveOverrideProblem,
}

/// What is wrong with a `--resolve` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveOverrideProblem {
    /// No `:port`.
    #[error("missing port")]
    MissingPort,
    /// No `:addr`.
    #[error("missing address")]
    MissingAddress,
    /// Nothing before the first colon.
    #[error("empty host")]
    EmptyHost,
    /// The port is not 1 to 65535.
    #[error("the port must be 1 to 65535")]
    BadPort,
    /// One of the addresses is not an IP address.
    #[error("{0:?} is not an IP address")]
    NotAnAddress(String),
}

impl std::str::FromStr for ResolveOverride {
    type Err = ResolveOverrideError;

    /// Parses `host:port:addr[,addr…]`; IPv6 addresses may be bracketed.
    fn from_str(text: &str) -> Result<Self, ResolveOverrideError> {
        let bad = |problem| ResolveOverrideError {
            text: text.to_owned(),
            problem,
        };
        let mut parts = text.splitn(3, ':');
        let host = parts.next().unwrap_or("");
        let port = parts
            .next()
            .ok_or_else(|| bad(ResolveOverrideProblem::MissingPort))?;
        let addrs = parts
            .next()
            .ok_or_else(|| bad(ResolveOverrideProblem::MissingAddress))?;
        if host.is_empty() {
            return Err(bad(ResolveOverrideProblem::EmptyHost));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(ResolveOverrideProblem::BadPort))?;
        let addrs = addrs
            .split(',')
            .map(|a| {
                let a = a.trim();
                let a = a
                    .strip_prefix('[')
                    .and_then(|a| a.strip_suffix(']'))
                    .unwrap_or(a);
                a.parse::<IpAddr>()
                    .map_err(|_| bad(ResolveOverrideProblem::NotAnAddress(a.to_owned())))
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
    /// An HTTPS record's ipv4hint/ipv6hint, used before A/AAAA answered
    /// because it matched what the host resolved to before.
    Hint,
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
    /// Whether the resolver answered it without asking a name server.
    pub cached: bool,
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

impl Resolution {
    fn add(&mut self, addrs: Vec<ResolvedAddr>, https: Vec<HttpsService>, report: QueryReport) {
        for a in addrs {
            if !self.addrs.contains(&a) {
                self.addrs.push(a);
            }
        }
        let room = MAX_HTTPS_RECORDS.saturating_sub(self.https.len());
        self.https.extend(https.into_iter().take(room));
        self.queries.push(report);
    }

    /// IPv6 before IPv4, each in answer order; HTTPS records by priority;
    /// queries AAAA, A, HTTPS.
    fn sort(&mut self) {
        self.addrs.sort_by_key(|a| a.ip.is_ipv4());
        self.https.sort_by_key(|s| s.priority);
        let rank = |t: &str| ["AAAA", "A", "HTTPS"].iter().position(|x| *x == t);
        self.queries.sort_by_key(|q| rank(q.record_type));
    }
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
    inner: Inner,
    overrides: HashMap<(String, u16), Vec<IpAddr>>,
    timeout: Duration,
    known: KnownAddrs,
    tally: Arc<DnsTally>,
}

impl Resolver {
    /// A resolver for `config`. Must be called within a tokio runtime.
    pub fn new(config: &DnsConfig) -> Result<Self, DnsError> {
        let timeout = config.timeout.unwrap_or(DEFAULT_QUERY_TIMEOUT);
        let provider = WireCounting::default();
        let mut builder = if config.name_servers.is_empty() {
            Inner::builder(provider).map_err(|e| DnsError::Config(e.to_string()))?
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
            let mut b =
                Inner::builder_with_config(ResolverConfig::from_name_servers(servers), provider);
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
            known: KnownAddrs::default(),
            tally: Arc::new(DnsTally::new(CACHE_SIZE as usize)),
        })
    }

    /// Lookups asked, answered from the cache, and answers held
    /// ([`super::dns_tally`] says exactly what each counts).
    pub fn counts(&self) -> DnsCounts {
        self.tally.counts()
    }

    /// What `host` resolves to, for people: A, AAAA and HTTPS asked
    /// together through the same cache as connections, each record type's
    /// failure a line of `errors`. An IP literal answers itself; a host
    /// with `--resolve` overrides (for any port) is answered by them.
    pub async fn lookup_records(&self, host: &str) -> RecordsAnswer {
        let started = Instant::now();
        let name = normalize_host(host);
        let mut answer = RecordsAnswer {
            host: name.clone(),
            ..RecordsAnswer::default()
        };
        let literal = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(&name);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            push_ip(&mut answer, ip);
            answer.elapsed = started.elapsed();
            return answer;
        }
        let mut overrides: Vec<(&u16, &Vec<IpAddr>)> = self
            .overrides
            .iter()
            .filter(|((h, _), _)| *h == name)
            .map(|((_, port), addrs)| (port, addrs))
            .collect();
        if !overrides.is_empty() {
            overrides.sort();
            for (port, addrs) in overrides {
                let list: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
                answer
                    .overrides
                    .push(format!("{name}:{port}:{}", list.join(",")));
                for ip in addrs {
                    push_ip(&mut answer, *ip);
                }
            }
            answer.elapsed = started.elapsed();
            return answer;
        }
        if let Err(e) = check_name(&name) {
            answer.errors.push(e.to_string());
            answer.elapsed = started.elapsed();
            return answer;
        }
        let fqdn = format!("{name}.");
        let asking = |t| ask(self.inner.clone(), self.tally.clone(), fqdn.clone(), t);
        let (a, aaaa, https) = tokio::join!(
            asking(RecordType::A),
            asking(RecordType::AAAA),
            asking(RecordType::HTTPS)
        );
        let asked = [a, aaaa, https];
        answer.cached = asked.iter().all(|a| a.cached);
        for (record_type, a) in [RecordType::A, RecordType::AAAA, RecordType::HTTPS]
            .into_iter()
            .zip(asked)
        {
            let records = match a.result {
                Ok(records) => records,
                Err(e) => {
                    answer
                        .errors
                        .push(format!("{record_type}: {}", self.describe(&e)));
                    continue;
                }
            };
            let before = answer.a.len() + answer.aaaa.len() + answer.https.len();
            for data in records {
                match data {
                    RData::A(a) if record_type == RecordType::A => answer.a.push(a.0),
                    RData::AAAA(a) if record_type == RecordType::AAAA => answer.aaaa.push(a.0),
                    RData::HTTPS(h) if record_type == RecordType::HTTPS => {
                        answer.https.push(presentation(&h.0))
                    }
                    _ => {}
                }
            }
            if answer.a.len() + answer.aaaa.len() + answer.https.len() == before {
                answer.errors.push(format!("{record_type}: no records"));
            }
        }
        answer.elapsed = started.elapsed();
        answer
    }

    /// A record type's failure in a few words.
    fn describe(&self, e: &NetError) -> String {
        if e.is_nx_domain() {
            "no such host (NXDOMAIN)".to_owned()
        } else if e.is_no_records_found() {
            "no records".to_owned()
        } else if matches!(e, NetError::Timeout) {
            format!("timed out after {:?}", self.timeout)
        } else {
            e.to_string()
        }
    }

    /// Resolves `host` for a connection to `port`: overrides first, IP
    /// literals as they are, otherwise A, AAAA and HTTPS queried together,
    /// waiting for every answer.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Resolution, DnsError> {
        Ok(self.resolve_staged(host, port, None).await?.first)
    }

    /// Like [`Resolver::resolve`], but returns as soon as a connection race
    /// may start ([`StartGate`] with `resolution_delay`; `None` waits for
    /// everything): the answers still outstanding then come from
    /// [`Staged::late`].
    pub async fn resolve_staged(
        &self,
        host: &str,
        port: u16,
        resolution_delay: Option<Duration>,
    ) -> Result<Staged, DnsError> {
        let started = Instant::now();
        let name = normalize_host(host);
        if let Some(addrs) = self.fixed(&name, port) {
            let first = Resolution {
                host: name,
                addrs,
                https: Vec::new(),
                queries: Vec::new(),
                elapsed: started.elapsed(),
            };
            return Ok(Staged { first, late: None });
        }
        check_name(&name)?;
        let mut pending = self.queries(&name);
        let (mut first, errors) = self
            .first_answers(&name, &mut pending, resolution_delay)
            .await;
        first.elapsed = started.elapsed();
        let late = (!pending.is_empty()).then(|| LateAnswers {
            host: name.clone(),
            pending,
            seen: first.addrs.iter().map(|a| a.ip).collect(),
            known: self.known.clone(),
        });
        if first.addrs.is_empty() {
            // Every query answered (the gate opens without addresses only
            // then): there is nothing to connect to.
            return Err(self.classify(&name, &errors));
        }
        remember(&self.known, &name, &first.addrs);
        Ok(Staged { first, late })
    }

    /// The addresses of an IP literal or a `--resolve` override: no query.
    fn fixed(&self, name: &str, port: u16) -> Option<Vec<ResolvedAddr>> {
        let literal = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            let source = AddressSource::Literal;
            return Some(vec![ResolvedAddr { ip, source }]);
        }
        let addrs = self.overrides.get(&(name.to_owned(), port))?;
        let source = AddressSource::Override;
        Some(
            addrs
                .iter()
                .map(|&ip| ResolvedAddr { ip, source })
                .collect(),
        )
    }

    /// AAAA, A and HTTPS queries for `name`, sent together.
    fn queries(&self, name: &str) -> FuturesUnordered<PendingQuery> {
        // Fully qualified, so search domains do not multiply the queries.
        let fqdn = format!("{name}.");
        let pending = FuturesUnordered::new();
        for (query, record_type) in [
            (Query::Aaaa, RecordType::AAAA),
            (Query::A, RecordType::A),
            (Query::Https, RecordType::HTTPS),
        ] {
            let asking = ask(
                self.inner.clone(),
                self.tally.clone(),
                fqdn.clone(),
                record_type,
            );
            let lookup: PendingQuery = Box::pin(async move { (query, asking.await) });
            pending.push(lookup);
        }
        pending
    }

    /// The answers that arrive before the [`StartGate`] opens, with the
    /// HTTPS records' hints standing in for a family that has not answered
    /// when the gate opened on them; and the queries' errors.
    async fn first_answers(
        &self,
        name: &str,
        pending: &mut FuturesUnordered<PendingQuery>,
        resolution_delay: Option<Duration>,
    ) -> (Resolution, Vec<NetError>) {
        let mut gate = StartGate::new(resolution_delay);
        let mut first = Resolution {
            host: name.to_owned(),
            addrs: Vec::new(),
            https: Vec::new(),
            queries: Vec::new(),
            elapsed: Duration::ZERO,
        };
        let mut errors = Vec::new();
        let mut hints: Vec<ResolvedAddr> = Vec::new();
        while !gate.ready(Instant::now()) {
            let deadline = gate.deadline();
            let answered = tokio::select! {
                a = pending.next() => a,
                _ = sleep_until(deadline) => continue,
            };
            let Some((query, asked)) = answered else {
                break;
            };
            let answer = parse_answer(name, query, asked);
            gate.answered(query, !answer.addrs.is_empty(), Instant::now());
            errors.extend(answer.error);
            if query == Query::Https && resolution_delay.is_some() {
                hints = self.known_hints(name, &answer.https);
                if !hints.is_empty() {
                    gate.hints_usable();
                }
            }
            first.add(answer.addrs, answer.https, answer.report);
        }
        for hint in hints {
            let answered = match hint.ip {
                IpAddr::V6(_) => first.addrs.iter().any(|a| a.source == AddressSource::Aaaa),
                IpAddr::V4(_) => first.addrs.iter().any(|a| a.source == AddressSource::A),
            };
            if !answered && !first.addrs.contains(&hint) {
                first.addrs.push(hint);
            }
        }
        first.sort();
        (first, errors)
    }

    /// The HTTPS records' address hints for `host`, when every one of them
    /// is an address `host` resolved to before (so using them early cannot
    /// send the connection somewhere new).
    fn known_hints(&self, host: &str, services: &[HttpsService]) -> Vec<ResolvedAddr> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let Some(addrs) = known.get(host) else {
            return Vec::new();
        };
        let mut hints = Vec::new();
        for svc in services
            .iter()
            .filter(|s| s.priority > 0 && s.target == host)
        {
            let v6 = svc.ipv6_hints.iter().map(|&ip| IpAddr::V6(ip));
            let v4 = svc.ipv4_hints.iter().map(|&ip| IpAddr::V4(ip));
            for ip in v6.chain(v4) {
                if !addrs.contains(&ip) {
                    return Vec::new();
                }
                let hint = ResolvedAddr {
                    ip,
                    source: AddressSource::Hint,
                };
                if !hints.contains(&hint) {
                    hints.push(hint);
                }
            }
        }
        hints
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

/// One record type asked of hickory.
struct Asked {
    result: Result<Vec<RData>, NetError>,
    elapsed: Duration,
    /// Answered without asking a name server.
    cached: bool,
}

/// Asks hickory for `record_type` of `fqdn`, counting the lookup in
/// `tally` with how long hickory keeps its answer.
async fn ask(inner: Inner, tally: Arc<DnsTally>, fqdn: String, record_type: RecordType) -> Asked {
    let started = Instant::now();
    let (result, sent) = count_sent(inner.lookup(fqdn.as_str(), record_type)).await;
    let cached = tally.looked_up((fqdn, u16::from(record_type)), sent, kept_for(&result));
    Asked {
        result: result.map(|l| l.answers().iter().map(|r| r.data.clone()).collect()),
        elapsed: started.elapsed(),
        cached,
    }
}

/// How long hickory's cache keeps an answer: records until their
/// smallest TTL, "no records" for the negative TTL, failures not at all.
fn kept_for(result: &Result<Lookup, NetError>) -> Option<Duration> {
    match result {
        Ok(lookup) => Some(
            lookup
                .valid_until()
                .saturating_duration_since(Instant::now()),
        ),
        Err(NetError::Dns(Answered::NoRecordsFound(NoRecords { negative_ttl, .. }))) => {
            Some(Duration::from_secs(negative_ttl.unwrap_or(0).into()).min(MAX_NEGATIVE_TTL))
        }
        Err(_) => None,
    }
}

/// Adds a literal or overridden address to `answer`.
fn push_ip(answer: &mut RecordsAnswer, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => answer.a.push(v4),
        IpAddr::V6(v6) => answer.aaaa.push(v6),
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
            assert!(err.to_string().contains("--resolve"), "{err}");
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
