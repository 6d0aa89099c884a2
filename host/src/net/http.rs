//! Opening one HTTP connection: resolve, race, TLS, then the hyper
//! HTTP/1.1 or HTTP/2 handshake by ALPN — or, for HTTP/3, a QUIC race and
//! the h3 handshake. The connection's driver runs on its own task; its end
//! is reported through a oneshot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::connect::Connector;
use super::dns::Resolver;
use super::happy_eyeballs::builtin_plan;
use super::pool::{OriginKey, Protocol};
use super::quic::QuicConnection;
use super::race::{AttemptSummary, Outcome, PlannedAttempt};
use super::tls::{AlpnOffer, Tls};
use std::sync::Mutex;

use crate::plugins::connect::{
    AttemptReport, Candidate, CandidateSource, ConnectPlugin, ConnectRequest, HistoryEntry,
    IpAddress, Origin, Outcome as ConnectOutcome, Plan, PlanSource, SocketAddress, Transport,
};
use crate::plugins::telemetry::{
    ConnectAttemptEvent, ConnectResultEvent, DnsEvent, EventKind, TlsEvent,
};

/// The request body type of every connection.
pub type ReqBody = Full<Bytes>;

/// Which HTTP version to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VersionPref {
    /// By ALPN (h2 preferred) over TLS; HTTP/1.1 over cleartext.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only (prior knowledge over cleartext).
    Http2,
    /// HTTP/3 only, over QUIC (https only).
    Http3,
}

/// A way to send requests on a connection.
pub enum Sender {
    /// One request at a time; moved to the request while it runs.
    Http1(http1::SendRequest<ReqBody>),
    /// Cloned for every request.
    Http2(http2::SendRequest<ReqBody>),
    /// Cloned for every request.
    Http3(H3Sender),
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // h3's sender has no Debug of its own.
        f.write_str(match self {
            Sender::Http1(_) => "Sender::Http1",
            Sender::Http2(_) => "Sender::Http2",
            Sender::Http3(_) => "Sender::Http3",
        })
    }
}

/// The sending half of an HTTP/3 connection.
pub type H3Sender = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// How the connection was set up (reported with the requests that used it).
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    /// The peer.
    pub remote: Option<SocketAddr>,
    /// DNS time.
    pub dns: Duration,
    /// TCP connect time (the race).
    pub connect: Duration,
    /// TLS handshake time (zero for cleartext).
    pub tls: Duration,
    /// TLS version, ALPN, resumption.
    pub tls_version: Option<String>,
    /// The negotiated ALPN.
    pub alpn: Option<String>,
    /// Whether the TLS session was resumed.
    pub resumed: bool,
    /// The race's attempts.
    pub attempts: Vec<AttemptSummary>,
    /// Addresses of the race's candidates.
    pub candidates: Vec<(u32, SocketAddr)>,
    /// Who planned the race: the connect-policy plugin's name, or
    /// `builtin`.
    pub planned_by: String,
}

/// A new connection.
#[derive(Debug)]
pub struct Established {
    /// Its sender.
    pub sender: Sender,
    /// Its protocol.
    pub protocol: Protocol,
    /// How it was set up.
    pub info: Arc<ConnectionInfo>,
    /// Fires when the connection ends.
    pub closed: oneshot::Receiver<()>,
    /// Connections of the same race that connected after it was won.
    pub late: Option<tokio::sync::mpsc::UnboundedReceiver<super::connect::LateConnection>>,
}

/// Shared parts every connection needs.
#[derive(Debug, Clone)]
pub struct Dialer {
    /// Name resolution.
    pub resolver: Arc<Resolver>,
    /// TLS configurations.
    pub tls: Tls,
    /// The connection race.
    pub connector: Connector,
    /// HTTP version preference.
    pub version: VersionPref,
    /// Where DNS, connection and TLS events go.
    pub bus: crate::telemetry::Bus,
    /// QUIC settings (HTTP/3).
    pub quic: super::quic::Quic,
    /// Alt-Svc alternatives learned from responses.
    pub alt_svc: Arc<Mutex<super::alt_svc::AltSvcCache>>,
    /// The network the host is on (Alt-Svc entries and history are per
    /// network).
    pub network: String,
    /// The connect-policy plugin, if any (the built-in RFC 8305 plan
    /// otherwise, and whenever it faults under fail-open).
    pub policy: Option<Arc<Mutex<ConnectPlugin>>>,
    /// Outcomes per origin, handed to the policy as history.
    pub history: Arc<Mutex<HashMap<OriginKey, Vec<HistoryEntry>>>>,
    /// Origins planned since the last network change; the first plan of
    /// any other origin is told the network changed.
    pub planned_on_network: Arc<Mutex<Option<std::collections::HashSet<OriginKey>>>>,
}

/// Plans the race for `request`: the policy plugin's plan, or the built-in.
async fn plan_race(
    policy: Option<Arc<Mutex<ConnectPlugin>>>,
    request: ConnectRequest,
) -> Result<(Plan, String), String> {
    let Some(policy) = policy else {
        return Ok((
            builtin_plan(&request.candidates, &request.history),
            "builtin".to_owned(),
        ));
    };
    tokio::task::spawn_blocking(move || {
        let mut p = policy.lock().unwrap_or_else(|e| e.into_inner());
        let name = p.supervised().name().to_owned();
        match p.plan(&request) {
            Ok((plan, PlanSource::Plugin)) => Ok((plan, name)),
            Ok((plan, PlanSource::Fallback(e))) => {
                Ok((plan, format!("builtin ({name} failed: {e})")))
            }
            Err(e) => Err(format!(
                "connect policy {name} failed and fails closed: {e}"
            )),
        }
    })
    .await
    .map_err(|e| format!("connect policy task failed: {e}"))?
}

impl Dialer {
    /// Opens a connection to `origin`.
    pub async fn dial(&self, origin: &OriginKey) -> Result<Established, String> {
        let t0 = Instant::now();
        let wit_origin = self.bus.origin(&origin.scheme, &origin.host, origin.port);
        let resolution = match self.resolver.resolve(&origin.host, origin.port).await {
            Ok(r) => r,
            Err(e) => {
                self.bus.publish(EventKind::Dns(DnsEvent {
                    name: origin.host.clone(),
                    record_type: "A/AAAA".into(),
                    answers: 0,
                    elapsed: t0.elapsed().as_micros() as u64,
                    cached: false,
                    error: Some(e.to_string()),
                }));
                return Err(e.to_string());
            }
        };
        let dns = t0.elapsed();
        for q in &resolution.queries {
            self.bus.publish(EventKind::Dns(DnsEvent {
                name: resolution.host.clone(),
                record_type: q.record_type.into(),
                answers: q.answers,
                elapsed: q.elapsed.as_micros() as u64,
                cached: false,
                error: q.error.clone(),
            }));
        }
        let quic_only = self.version == VersionPref::Http3;
        if quic_only && origin.scheme != "https" {
            return Err(format!(
                "HTTP/3 needs an https origin, not {}",
                origin.scheme
            ));
        }
        // QUIC is tried when forced, or (by version Auto, over https) when an
        // HTTPS record or a remembered Alt-Svc offers h3.
        let quic_allowed =
            quic_only || (self.version == VersionPref::Auto && origin.scheme == "https");
        let tcp_allowed = !quic_only;
        let mut endpoints: HashMap<u32, SocketAddr> = HashMap::new();
        let mut candidates: Vec<Candidate> = Vec::new();
        let origin_ips: Vec<std::net::IpAddr> = resolution.addrs.iter().map(|a| a.ip).collect();
        // HTTPS records (RFC 9460) in service mode for this very name: the
        // origin's addresses (or the record's hints) at the record's port,
        // ranked by its priority, once per transport the record offers.
        // Other target names need another resolution.
        for svc in &resolution.https {
            if svc.priority == 0 || svc.target != resolution.host {
                continue;
            }
            let tcp_alpn: Vec<String> = svc
                .alpn
                .iter()
                .filter(|a| *a == "h2" || *a == "http/1.1")
                .cloned()
                .collect();
            // Without no-default-alpn a service also speaks http/1.1.
            let offers_tcp = !tcp_alpn.is_empty() || !svc.no_default_alpn;
            let offers_h3 = svc.alpn.iter().any(|a| a == "h3");
            let port = svc.port.unwrap_or(origin.port);
            let mut ips = origin_ips.clone();
            if ips.is_empty() {
                ips.extend(svc.ipv6_hints.iter().map(|&ip| std::net::IpAddr::V6(ip)));
                ips.extend(svc.ipv4_hints.iter().map(|&ip| std::net::IpAddr::V4(ip)));
            }
            for ip in ips {
                let addr = SocketAddr::new(ip, port);
                for (transport, offered, alpn) in [
                    (
                        Transport::Quic,
                        quic_allowed && offers_h3,
                        vec!["h3".to_owned()],
                    ),
                    (Transport::Tcp, tcp_allowed && offers_tcp, tcp_alpn.clone()),
                ] {
                    if !offered {
                        continue;
                    }
                    if let Some(c) = add_candidate(&mut endpoints, &mut candidates, addr, transport)
                    {
                        c.source = CandidateSource::HttpsRecord;
                        c.priority = svc.priority;
                        c.ech = svc.ech_config.is_some();
                        if !alpn.is_empty() {
                            c.alpn = alpn;
                        }
                    }
                }
            }
        }
        // Alt-Svc h3 alternatives remembered for this origin and network.
        if quic_allowed && !quic_only {
            let alternatives = self.alt_svc.lock().unwrap_or_else(|e| e.into_inner()).h3(
                &self.network,
                origin,
                std::time::SystemTime::now(),
            );
            for alt in alternatives {
                let ips = match &alt.host {
                    None => origin_ips.clone(),
                    Some(h) if *h == origin.host => origin_ips.clone(),
                    // Another host: its own addresses (a failure just
                    // leaves this alternative out).
                    Some(h) => self
                        .resolver
                        .resolve(h, alt.port)
                        .await
                        .map(|r| r.addrs.iter().map(|a| a.ip).collect())
                        .unwrap_or_default(),
                };
                for ip in ips {
                    if let Some(c) = add_candidate(
                        &mut endpoints,
                        &mut candidates,
                        SocketAddr::new(ip, alt.port),
                        Transport::Quic,
                    ) {
                        c.source = CandidateSource::AltSvc;
                    }
                }
            }
        }
        for ip in &origin_ips {
            let addr = SocketAddr::new(*ip, origin.port);
            add_candidate(
                &mut endpoints,
                &mut candidates,
                addr,
                if quic_only {
                    Transport::Quic
                } else {
                    Transport::Tcp
                },
            );
        }
        let history = self
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(origin)
            .cloned()
            .unwrap_or_default();
        let request = ConnectRequest {
            origin: Origin::clone(&wit_origin),
            candidates: candidates.clone(),
            history,
            network_changed: self.first_plan_on_new_network(origin),
            now: now_us(),
        };
        let (plan, planned_by) = plan_race(self.policy.clone(), request).await?;
        let is_quic = |id: u32| {
            candidates
                .iter()
                .any(|c| c.id == id && c.transport == Transport::Quic)
        };
        let plan: Vec<PlannedAttempt> = plan
            .attempts
            .iter()
            .map(|a| PlannedAttempt {
                candidate: a.candidate,
                delay: Duration::from_micros(a.delay),
                tcp: !is_quic(a.candidate),
            })
            .collect();
        let quic_ids: std::collections::HashSet<u32> = candidates
            .iter()
            .filter(|c| c.transport == Transport::Quic)
            .map(|c| c.id)
            .collect();
        let what = format!("{}:{}", origin.host, origin.port);
        let t1 = Instant::now();
        // Attempts kept past the race (a winner's syn-retry twin) that
        // connect anyway come back here, for the idle pool.
        let (late_tx, late_rx) = tokio::sync::mpsc::unbounded_channel();
        let connector = self.connector.clone();
        let (q, name, timeout) = (
            self.quic.clone(),
            server_name(&origin.host),
            self.connector.connect_timeout,
        );
        let raced = connector
            .race_with(
                &what,
                &endpoints,
                &plan,
                move |candidate, addr| {
                    let quic = quic_ids.contains(&candidate);
                    let (q, name) = (q.clone(), name.clone());
                    async move {
                        if quic {
                            q.connect(addr, &name)
                                .await
                                .map(Stream::Quic)
                                .map_err(std::io::Error::other)
                        } else {
                            super::connect::connect_tcp(addr, timeout)
                                .await
                                .map(Stream::Tcp)
                        }
                    }
                },
                // A late TCP connection goes to the idle pool; a late QUIC
                // one is closed (one h3 connection per origin is enough).
                move |stream| {
                    if let Stream::Tcp(stream) = stream {
                        if let Ok(addr) = stream.peer_addr() {
                            let _ = late_tx.send(super::connect::LateConnection { addr, stream });
                        }
                    }
                },
            )
            .await;
        let summary = match &raced {
            Ok(w) => w.attempts.clone(),
            Err(e) => e.attempts.clone(),
        };
        for a in summary.iter().filter(|a| a.started.is_some()) {
            let address = wit_address(endpoints[&a.candidate]);
            let transport = if a.tcp {
                Transport::Tcp
            } else {
                Transport::Quic
            };
            self.bus.publish_for(
                &wit_origin,
                EventKind::ConnectAttempt(ConnectAttemptEvent {
                    origin: 0,
                    transport,
                    address,
                }),
            );
            self.bus.publish_for(
                &wit_origin,
                EventKind::ConnectResult(ConnectResultEvent {
                    origin: 0,
                    transport,
                    address,
                    elapsed: a.elapsed.unwrap_or_default().as_micros() as u64,
                    error: match a.outcome {
                        Outcome::Won | Outcome::ConnectedLate => None,
                        Outcome::Failed => Some("failed".into()),
                        Outcome::Cancelled => Some("cancelled".into()),
                        Outcome::NotStarted => Some("not started".into()),
                    },
                }),
            );
        }
        self.learn(origin, &wit_origin, &candidates, &summary, &endpoints);
        let won = raced.map_err(|e| e.to_string())?;
        let connect = t1.elapsed();
        let mut info = ConnectionInfo {
            remote: Some(won.addr),
            dns,
            connect,
            attempts: summary,
            planned_by,
            candidates: endpoints.iter().map(|(k, v)| (*k, *v)).collect(),
            ..ConnectionInfo::default()
        };
        info.candidates.sort();
        match won.stream {
            Stream::Tcp(stream) => {
                let mut est = self.establish(origin, stream, info).await?;
                est.late = Some(late_rx);
                Ok(est)
            }
            Stream::Quic(quic) => establish_h3(quic, info).await,
        }
    }

    /// TLS (for https) and the HTTP handshake over a connected stream.
    pub async fn establish(
        &self,
        origin: &OriginKey,
        stream: TcpStream,
        mut info: ConnectionInfo,
    ) -> Result<Established, String> {
        let wit_origin = self.bus.origin(&origin.scheme, &origin.host, origin.port);
        let (closed_tx, closed) = oneshot::channel();
        if origin.scheme == "https" {
            let offer = match self.version {
                // HTTP/3 connections are set up by `dial`, never here.
                VersionPref::Auto | VersionPref::Http3 => AlpnOffer::Any,
                VersionPref::Http1 => AlpnOffer::Http1,
                VersionPref::Http2 => AlpnOffer::Http2,
            };
            // An IPv6 literal's brackets are URL syntax, not part of the name.
            let name = origin.host.trim_start_matches('[').trim_end_matches(']');
            let t2 = Instant::now();
            let h = match self.tls.connect(name, offer, stream).await {
                Ok(h) => h,
                Err(e) => {
                    self.bus.publish_for(
                        &wit_origin,
                        EventKind::Tls(TlsEvent {
                            origin: 0,
                            version: String::new(),
                            alpn: None,
                            resumed: false,
                            elapsed: t2.elapsed().as_micros() as u64,
                            error: Some(e.to_string()),
                        }),
                    );
                    return Err(e.to_string());
                }
            };
            self.bus.publish_for(
                &wit_origin,
                EventKind::Tls(TlsEvent {
                    origin: 0,
                    version: h.version.clone(),
                    alpn: h.alpn.clone(),
                    resumed: h.resumed,
                    elapsed: h.elapsed.as_micros() as u64,
                    error: None,
                }),
            );
            info.tls = h.elapsed;
            info.tls_version = Some(h.version);
            info.resumed = h.resumed;
            info.alpn = h.alpn.clone();
            let protocol = match h.alpn.as_deref() {
                Some("h2") => Protocol::Http2,
                _ => Protocol::Http1,
            };
            let sender = handshake(TokioIo::new(h.stream), protocol, closed_tx).await?;
            Ok(Established {
                sender,
                protocol,
                info: Arc::new(info),
                closed,
                late: None,
            })
        } else {
            let protocol = match self.version {
                VersionPref::Http2 => Protocol::Http2,
                _ => Protocol::Http1,
            };
            let sender = handshake(TokioIo::new(stream), protocol, closed_tx).await?;
            Ok(Established {
                sender,
                protocol,
                info: Arc::new(info),
                closed,
                late: None,
            })
        }
    }
}

impl Dialer {
    /// The network changed: history is flushed (it described another
    /// path), Alt-Svc entries not marked `persist` are dropped, and each
    /// origin's next plan is told, so that a policy is careful again.
    pub fn network_changed(&self) {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.alt_svc
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .network_changed();
        *self
            .planned_on_network
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Default::default());
    }

    /// Whether this is `origin`'s first plan since a network change.
    fn first_plan_on_new_network(&self, origin: &OriginKey) -> bool {
        let mut planned = self
            .planned_on_network
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match planned.as_mut() {
            // No change since the host started.
            None => false,
            Some(set) => {
                if set.len() >= MAX_HISTORY_ORIGINS {
                    set.clear();
                }
                set.insert(origin.clone())
            }
        }
    }

    /// Updates the history and reports the race to the policy (off the
    /// request path: the report is not awaited).
    fn learn(
        &self,
        origin: &OriginKey,
        wit_origin: &Origin,
        candidates: &[Candidate],
        summary: &[AttemptSummary],
        endpoints: &HashMap<u32, SocketAddr>,
    ) {
        let now = now_us();
        // A QUIC attempt that had started when a TCP attempt began and was
        // still silent when that TCP attempt won was outpaced: the path
        // may drop UDP (HEv3). It counts as a failure, and is reported to
        // the policy as timed out, so the next plan can lead with TCP.
        let tcp_winner_start = summary
            .iter()
            .find(|a| a.outcome == Outcome::Won && a.tcp)
            .and_then(|a| a.started);
        let outpaced = |a: &AttemptSummary| {
            !a.tcp
                && a.outcome == Outcome::Cancelled
                && matches!((a.started, tcp_winner_start), (Some(s), Some(w)) if s <= w)
        };
        {
            let mut all = self.history.lock().unwrap_or_else(|e| e.into_inner());
            if all.len() >= MAX_HISTORY_ORIGINS && !all.contains_key(origin) {
                all.clear();
            }
            let h = all.entry(origin.clone()).or_default();
            for a in summary.iter().filter(|a| a.started.is_some()) {
                let ipv6 = endpoints[&a.candidate].is_ipv6();
                let transport = if a.tcp {
                    Transport::Tcp
                } else {
                    Transport::Quic
                };
                let idx = match h
                    .iter()
                    .position(|e| e.transport == transport && e.ipv6 == ipv6)
                {
                    Some(i) => i,
                    None => {
                        h.push(HistoryEntry {
                            transport,
                            ipv6,
                            successes: 0,
                            failures: 0,
                            last_connect_time: None,
                            last_attempt: None,
                        });
                        h.len() - 1
                    }
                };
                let e = &mut h[idx];
                match a.outcome {
                    Outcome::Won | Outcome::ConnectedLate => {
                        e.successes = e.successes.saturating_add(1);
                        e.last_connect_time = a.elapsed.map(|d| d.as_micros() as u64);
                    }
                    Outcome::Failed => e.failures = e.failures.saturating_add(1),
                    _ if outpaced(a) => e.failures = e.failures.saturating_add(1),
                    _ => {}
                }
                e.last_attempt = Some(now);
            }
        }
        let Some(policy) = self.policy.clone() else {
            return;
        };
        let reports: Vec<AttemptReport> = summary
            .iter()
            .filter(|a| !a.twin)
            .map(|a| AttemptReport {
                candidate: a.candidate,
                outcome: match a.outcome {
                    _ if outpaced(a) => ConnectOutcome::TimedOut,
                    Outcome::Won => ConnectOutcome::Connected,
                    Outcome::ConnectedLate => ConnectOutcome::ConnectedLate,
                    Outcome::Failed => ConnectOutcome::Failed("connection failed".into()),
                    Outcome::Cancelled => ConnectOutcome::Cancelled,
                    Outcome::NotStarted => ConnectOutcome::NotStarted,
                },
                elapsed: a.elapsed.unwrap_or_default().as_micros() as u64,
            })
            .collect();
        let (origin, candidates) = (wit_origin.clone(), candidates.to_vec());
        tokio::task::spawn_blocking(move || {
            let mut p = policy.lock().unwrap_or_else(|e| e.into_inner());
            // A fault is recorded by the runtime; nothing waits on it.
            let _ = p.report(&origin, &candidates, &reports);
        });
    }
}

/// Microseconds on the host's monotonic clock (what `instant-us` means to
/// connect policies).
fn now_us() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Origins whose connection history is kept; past it the history starts
/// over (the policy then plans with defaults, which is always safe).
const MAX_HISTORY_ORIGINS: usize = 4096;

async fn handshake<T>(
    io: T,
    protocol: Protocol,
    closed: oneshot::Sender<()>,
) -> Result<Sender, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    match protocol {
        Protocol::Http3 => Err("HTTP/3 runs over QUIC, not over a TCP stream".to_owned()),
        Protocol::Http1 => {
            let (sender, conn) = http1::handshake(io)
                .await
                .map_err(|e| format!("HTTP/1.1 handshake failed: {e}"))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("HTTP/1.1 connection ended: {e}");
                }
                let _ = closed.send(());
            });
            Ok(Sender::Http1(sender))
        }
        Protocol::Http2 => {
            // Flow-control windows sized by BDP estimation (hyper's adaptive
            // window) instead of the 64 KiB default, which caps a single
            // stream's throughput at 64 KiB per round trip.
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .adaptive_window(true)
                .max_frame_size(256 << 10)
                .handshake(io)
                .await
                .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("HTTP/2 connection ended: {e}");
                }
                let _ = closed.send(());
            });
            Ok(Sender::Http2(sender))
        }
    }
}

/// Adds a candidate unless the same transport already has `addr`.
fn add_candidate<'a>(
    endpoints: &mut HashMap<u32, SocketAddr>,
    candidates: &'a mut Vec<Candidate>,
    addr: SocketAddr,
    transport: Transport,
) -> Option<&'a mut Candidate> {
    if candidates
        .iter()
        .any(|c| c.transport == transport && endpoints[&c.id] == addr)
    {
        return None;
    }
    let id = endpoints.len() as u32;
    endpoints.insert(id, addr);
    candidates.push(candidate(id, addr, transport));
    candidates.last_mut()
}

/// A connection a race attempt made, by transport.
enum Stream {
    Tcp(TcpStream),
    Quic(QuicConnection),
}

/// The TLS server name for a host (an IPv6 literal without brackets).
fn server_name(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

/// The h3 handshake over a QUIC connection; its driver runs on a task of
/// its own, which also keeps the connection's endpoint (its socket) alive.
async fn establish_h3(
    quic: QuicConnection,
    mut info: ConnectionInfo,
) -> Result<Established, String> {
    let QuicConnection {
        connection,
        endpoint,
        elapsed,
        ..
    } = quic;
    let handshake = connection
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok());
    info.alpn = handshake
        .and_then(|h| h.protocol)
        .map(|p| String::from_utf8_lossy(&p).into_owned());
    info.tls_version = Some("TLSv1.3".to_owned());
    // QUIC's handshake is the TLS handshake: count it once, as connect.
    info.tls = Duration::ZERO;
    let _ = elapsed;
    let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(connection))
        .await
        .map_err(|e| format!("HTTP/3 handshake failed: {e}"))?;
    let (closed_tx, closed) = oneshot::channel();
    tokio::spawn(async move {
        let e = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        tracing::debug!("HTTP/3 connection ended: {e}");
        drop(endpoint);
        let _ = closed_tx.send(());
    });
    Ok(Established {
        sender: Sender::Http3(sender),
        protocol: Protocol::Http3,
        info: Arc::new(info),
        closed,
        late: None,
    })
}

fn wit_address(addr: SocketAddr) -> SocketAddress {
    candidate(0, addr, Transport::Tcp).address
}

fn candidate(id: u32, addr: SocketAddr, transport: Transport) -> Candidate {
    let (ip, source) = match addr.ip() {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            (IpAddress::Ipv4((a, b, c, d)), CandidateSource::A)
        }
        std::net::IpAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.segments();
            (
                IpAddress::Ipv6((a, b, c, d, e, f, g, h)),
                CandidateSource::Aaaa,
            )
        }
    };
    Candidate {
        id,
        transport,
        address: SocketAddress {
            ip,
            port: addr.port(),
        },
        alpn: match transport {
            Transport::Tcp => vec!["h2".into(), "http/1.1".into()],
            Transport::Quic => vec!["h3".into()],
        },
        source,
        priority: 0,
        ech: false,
    }
}
