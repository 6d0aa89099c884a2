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

use super::connect::{AttemptStart, Connector, MoreAttempts};
use super::dns::{HttpsService, Resolution, Resolver};
use super::happy_eyeballs::builtin_plan;
use super::pool::{OriginKey, Protocol};
use super::quic::QuicConnection;
use super::race::{AttemptSummary, Outcome, PlannedAttempt};
use super::tls::{AlpnOffer, Handshake, Tls};
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
    /// What controls congestion (QUIC connections; TCP's is the kernel's).
    pub congestion: Option<Arc<crate::plugins::congestion::CongestionStatus>>,
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
    pub late: Option<tokio::sync::mpsc::UnboundedReceiver<super::connect::LateConnection<Secured>>>,
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
    /// How long to wait for AAAA and HTTPS after the first address answer
    /// before racing without them; `None` waits for every answer.
    pub resolution_delay: Option<Duration>,
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
    /// Opens a connection to `origin`: resolves it (the race may start
    /// before every answer is in; late answers join it), plans and races
    /// every candidate, and runs the HTTP handshake on the winner. Over
    /// TCP an attempt includes its TLS handshake, so the others are not
    /// cancelled before the winner is usable.
    pub async fn dial(&self, origin: &OriginKey) -> Result<Established, String> {
        let t0 = Instant::now();
        let wit_origin = self.bus.origin(&origin.scheme, &origin.host, origin.port);
        let staged = match self
            .resolver
            .resolve_staged(&origin.host, origin.port, self.resolution_delay)
            .await
        {
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
        self.publish_queries(&staged.first);
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
        let mut found = Found {
            host: staged.first.host.clone(),
            port: origin.port,
            quic_allowed,
            tcp_allowed: !quic_only,
            ..Found::default()
        };
        // Alt-Svc h3 alternatives remembered for this origin and network:
        // those on the origin's own host follow its addresses (late ones
        // too); another host's are resolved once, here (a failure just
        // leaves that alternative out).
        let mut other_hosts = Vec::new();
        if quic_allowed && !quic_only {
            let alternatives = self.alt_svc.lock().unwrap_or_else(|e| e.into_inner()).h3(
                &self.network,
                origin,
                std::time::SystemTime::now(),
            );
            for alt in alternatives {
                match &alt.host {
                    Some(h) if *h != origin.host => {
                        if let Ok(r) = self.resolver.resolve(h, alt.port).await {
                            other_hosts
                                .extend(r.addrs.iter().map(|a| SocketAddr::new(a.ip, alt.port)));
                        }
                    }
                    _ => found.alt_ports.push(alt.port),
                }
            }
        }
        found.absorb(&staged.first);
        for addr in other_hosts {
            if let Some(c) = found.add(addr, Transport::Quic) {
                c.source = CandidateSource::AltSvc;
            }
        }
        let request = ConnectRequest {
            origin: Origin::clone(&wit_origin),
            candidates: found.candidates.clone(),
            history: self.origin_history(origin),
            network_changed: self.first_plan_on_new_network(origin),
            now: now_us(),
        };
        let (plan, planned_by) = plan_race(self.policy.clone(), request).await?;
        let plan = planned(&plan, &found.candidates);
        let endpoints = found.endpoints.clone();
        let found = Arc::new(Mutex::new(found));
        // Answers that come after the race started add candidates to it,
        // planned by the same policy.
        let (more_tx, more_rx) = tokio::sync::mpsc::unbounded_channel();
        let late_answers = staged.late.map(|mut late| {
            let (dialer, found, origin, wit_origin) = (
                self.clone(),
                found.clone(),
                origin.clone(),
                Origin::clone(&wit_origin),
            );
            tokio::spawn(async move {
                while let Some(part) = late.next().await {
                    dialer.publish_queries(&part);
                    let (new, endpoints) = {
                        let mut f = found.lock().unwrap_or_else(|e| e.into_inner());
                        let before = f.candidates.len();
                        f.absorb(&part);
                        let new = f.candidates[before..].to_vec();
                        let endpoints: Vec<(u32, SocketAddr)> =
                            new.iter().map(|c| (c.id, f.endpoints[&c.id])).collect();
                        (new, endpoints)
                    };
                    if new.is_empty() {
                        continue;
                    }
                    let request = ConnectRequest {
                        origin: wit_origin.clone(),
                        candidates: new.clone(),
                        history: dialer.origin_history(&origin),
                        network_changed: false,
                        now: now_us(),
                    };
                    // Under fail-closed a faulting policy plans nothing
                    // for them; the race goes on with what it has.
                    let Ok((plan, _)) = plan_race(dialer.policy.clone(), request).await else {
                        continue;
                    };
                    let more = MoreAttempts {
                        endpoints,
                        plan: planned(&plan, &new),
                    };
                    if more_tx.send(more).is_err() {
                        break;
                    }
                }
            })
        });
        let what = format!("{}:{}", origin.host, origin.port);
        let t1 = Instant::now();
        // Attempts kept past the race (a winner's syn-retry twin) that
        // connect anyway come back here, for the idle pool.
        let (late_tx, late_rx) = tokio::sync::mpsc::unbounded_channel();
        // The last TLS failure: when every attempt fails, it says more than
        // "could not connect".
        let tls_failure: Arc<Mutex<Option<String>>> = Arc::default();
        let (q, name, timeout, dialer, key, tls_failed) = (
            self.quic.clone(),
            server_name(&origin.host),
            self.connector.connect_timeout,
            self.clone(),
            origin.clone(),
            tls_failure.clone(),
        );
        let raced = self
            .connector
            .race_with(
                &what,
                &endpoints,
                &plan,
                late_answers.is_some().then_some(more_rx),
                move |a: AttemptStart| {
                    let (q, name, dialer, key, tls_failed) = (
                        q.clone(),
                        name.clone(),
                        dialer.clone(),
                        key.clone(),
                        tls_failed.clone(),
                    );
                    async move {
                        if !a.tcp {
                            return q
                                .connect(a.addr, &name, &key)
                                .await
                                .map(Attempted::Quic)
                                .map_err(std::io::Error::other);
                        }
                        let tcp = super::connect::connect_tcp(a.addr, timeout).await?;
                        a.transport_up.signal();
                        match dialer.secure(&key, tcp).await {
                            Ok(s) => Ok(Attempted::Tcp(s)),
                            Err(e) => {
                                *tls_failed.lock().unwrap_or_else(|e| e.into_inner()) =
                                    Some(e.clone());
                                Err(std::io::Error::other(e))
                            }
                        }
                    }
                },
                // A late TCP connection goes to the idle pool; a late QUIC
                // one is closed (one h3 connection per origin is enough).
                move |stream| {
                    if let Attempted::Tcp(stream) = stream {
                        if let Some(addr) = stream.peer_addr() {
                            let _ = late_tx.send(super::connect::LateConnection { addr, stream });
                        }
                    }
                },
            )
            .await;
        if let Some(task) = late_answers {
            task.abort();
        }
        let (summary, endpoints) = match &raced {
            Ok(w) => (w.attempts.clone(), w.endpoints.clone()),
            Err(e) => (e.attempts.clone(), e.endpoints.clone()),
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
        let candidates = found
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .candidates
            .clone();
        self.learn(origin, &wit_origin, &candidates, &summary, &endpoints);
        let won = match raced {
            Ok(w) => w,
            Err(e) => {
                let tls = tls_failure.lock().unwrap_or_else(|e| e.into_inner()).take();
                return Err(tls.unwrap_or_else(|| e.to_string()));
            }
        };
        let mut info = ConnectionInfo {
            remote: Some(won.addr),
            dns,
            connect: t1.elapsed(),
            attempts: summary,
            planned_by,
            candidates: endpoints.iter().map(|(k, v)| (*k, *v)).collect(),
            ..ConnectionInfo::default()
        };
        info.candidates.sort();
        match won.stream {
            Attempted::Tcp(secured) => {
                // The race timed TCP and TLS together; report them apart.
                if let Secured::Tls(h) = &secured {
                    info.connect = info.connect.saturating_sub(h.elapsed);
                }
                let mut est = self.establish(origin, secured, info).await?;
                est.late = Some(late_rx);
                Ok(est)
            }
            Attempted::Quic(quic) => establish_h3(quic, info).await,
        }
    }

    fn publish_queries(&self, resolution: &Resolution) {
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
    }

    fn origin_history(&self, origin: &OriginKey) -> Vec<HistoryEntry> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(origin)
            .cloned()
            .unwrap_or_default()
    }

    /// TLS over a connected TCP stream for https (publishing the TLS
    /// event); cleartext streams pass as they are.
    pub async fn secure(&self, origin: &OriginKey, stream: TcpStream) -> Result<Secured, String> {
        if origin.scheme != "https" {
            return Ok(Secured::Plain(stream));
        }
        let wit_origin = self.bus.origin(&origin.scheme, &origin.host, origin.port);
        let offer = match self.version {
            // HTTP/3 connections are set up by `dial`, never here.
            VersionPref::Auto | VersionPref::Http3 => AlpnOffer::Any,
            VersionPref::Http1 => AlpnOffer::Http1,
            VersionPref::Http2 => AlpnOffer::Http2,
        };
        let t2 = Instant::now();
        let result = self
            .tls
            .connect(&server_name(&origin.host), offer, stream)
            .await;
        let (event, result) = match result {
            Ok(h) => (
                TlsEvent {
                    origin: 0,
                    version: h.version.clone(),
                    alpn: h.alpn.clone(),
                    resumed: h.resumed,
                    elapsed: h.elapsed.as_micros() as u64,
                    error: None,
                },
                Ok(Secured::Tls(Box::new(h))),
            ),
            Err(e) => (
                TlsEvent {
                    origin: 0,
                    version: String::new(),
                    alpn: None,
                    resumed: false,
                    elapsed: t2.elapsed().as_micros() as u64,
                    error: Some(e.to_string()),
                },
                Err(e.to_string()),
            ),
        };
        self.bus.publish_for(&wit_origin, EventKind::Tls(event));
        result
    }

    /// The HTTP handshake over a secured stream, by its ALPN (or the
    /// version preference over cleartext).
    pub async fn establish(
        &self,
        _origin: &OriginKey,
        secured: Secured,
        mut info: ConnectionInfo,
    ) -> Result<Established, String> {
        let (closed_tx, closed) = oneshot::channel();
        let (sender, protocol) = match secured {
            Secured::Tls(h) => {
                info.tls = h.elapsed;
                info.tls_version = Some(h.version);
                info.resumed = h.resumed;
                info.alpn = h.alpn.clone();
                let protocol = match h.alpn.as_deref() {
                    Some("h2") => Protocol::Http2,
                    _ => Protocol::Http1,
                };
                let io = TokioIo::new(h.stream);
                (handshake(io, protocol, closed_tx).await?, protocol)
            }
            Secured::Plain(stream) => {
                let protocol = match self.version {
                    VersionPref::Http2 => Protocol::Http2,
                    _ => Protocol::Http1,
                };
                let io = TokioIo::new(stream);
                (handshake(io, protocol, closed_tx).await?, protocol)
            }
        };
        Ok(Established {
            sender,
            protocol,
            info: Arc::new(info),
            closed,
            late: None,
        })
    }
}

/// A TCP connection ready for HTTP: through TLS for https.
#[derive(Debug)]
pub enum Secured {
    /// Cleartext.
    Plain(TcpStream),
    /// After the TLS handshake.
    Tls(Box<Handshake<TcpStream>>),
}

impl Secured {
    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            Secured::Plain(s) => s.peer_addr().ok(),
            Secured::Tls(h) => h.stream.get_ref().0.peer_addr().ok(),
        }
    }
}

/// The candidates of one dial as its answers come in. Each answer adds
/// to what is known (addresses, HTTPS records) and the candidates are
/// derived again from all of it; only those not seen before are new.
#[derive(Debug, Default)]
struct Found {
    host: String,
    port: u16,
    quic_allowed: bool,
    tcp_allowed: bool,
    /// Ports of Alt-Svc h3 alternatives on the origin's own host.
    alt_ports: Vec<u16>,
    ips: Vec<std::net::IpAddr>,
    https: Vec<HttpsService>,
    endpoints: HashMap<u32, SocketAddr>,
    candidates: Vec<Candidate>,
}

impl Found {
    fn absorb(&mut self, part: &Resolution) {
        for a in &part.addrs {
            if !self.ips.contains(&a.ip) {
                self.ips.push(a.ip);
            }
        }
        self.https.extend(part.https.iter().cloned());
        // HTTPS records (RFC 9460) in service mode for this very name: the
        // origin's addresses (or the record's hints) at the record's port,
        // ranked by its priority, once per transport the record offers.
        // Other target names need another resolution.
        let services: Vec<HttpsService> = self
            .https
            .iter()
            .filter(|s| s.priority > 0 && s.target == self.host)
            .cloned()
            .collect();
        for svc in services {
            let tcp_alpn: Vec<String> = svc
                .alpn
                .iter()
                .filter(|a| *a == "h2" || *a == "http/1.1")
                .cloned()
                .collect();
            // Without no-default-alpn a service also speaks http/1.1.
            let offers_tcp = !tcp_alpn.is_empty() || !svc.no_default_alpn;
            let offers_h3 = svc.alpn.iter().any(|a| a == "h3");
            let port = svc.port.unwrap_or(self.port);
            let mut ips = self.ips.clone();
            if ips.is_empty() {
                ips.extend(svc.ipv6_hints.iter().map(|&ip| std::net::IpAddr::V6(ip)));
                ips.extend(svc.ipv4_hints.iter().map(|&ip| std::net::IpAddr::V4(ip)));
            }
            for ip in ips {
                let addr = SocketAddr::new(ip, port);
                for (transport, offered, alpn) in [
                    (
                        Transport::Quic,
                        self.quic_allowed && offers_h3,
                        vec!["h3".to_owned()],
                    ),
                    (
                        Transport::Tcp,
                        self.tcp_allowed && offers_tcp,
                        tcp_alpn.clone(),
                    ),
                ] {
                    if !offered {
                        continue;
                    }
                    if let Some(c) = self.add(addr, transport) {
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
        for port in self.alt_ports.clone() {
            for ip in self.ips.clone() {
                if let Some(c) = self.add(SocketAddr::new(ip, port), Transport::Quic) {
                    c.source = CandidateSource::AltSvc;
                }
            }
        }
        let plain = if self.tcp_allowed {
            Transport::Tcp
        } else {
            Transport::Quic
        };
        for ip in self.ips.clone() {
            self.add(SocketAddr::new(ip, self.port), plain);
        }
    }

    /// Adds a candidate unless the same transport already has `addr`.
    fn add(&mut self, addr: SocketAddr, transport: Transport) -> Option<&mut Candidate> {
        let endpoints = &self.endpoints;
        if self
            .candidates
            .iter()
            .any(|c| c.transport == transport && endpoints[&c.id] == addr)
        {
            return None;
        }
        let id = self.endpoints.len() as u32;
        self.endpoints.insert(id, addr);
        self.candidates.push(candidate(id, addr, transport));
        self.candidates.last_mut()
    }
}

/// A policy's plan as race attempts (QUIC or TCP by the candidate).
fn planned(plan: &Plan, candidates: &[Candidate]) -> Vec<PlannedAttempt> {
    let is_quic = |id: u32| {
        candidates
            .iter()
            .any(|c| c.id == id && c.transport == Transport::Quic)
    };
    plan.attempts
        .iter()
        .map(|a| PlannedAttempt {
            candidate: a.candidate,
            delay: Duration::from_micros(a.delay),
            tcp: !is_quic(a.candidate),
        })
        .collect()
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
        // An attempt that had started when the winner began and was still
        // silent when it won was outpaced: QUIC beaten by TCP (the path
        // may drop UDP), or IPv6 beaten by IPv4 (IPv6 may be broken here),
        // as HEv3 has it. It counts as a failure, and is reported to the
        // policy as timed out, so the next plan can lead with the winner's
        // kind.
        let winner = summary.iter().find(|a| a.outcome == Outcome::Won);
        let is_v6 = |a: &AttemptSummary| endpoints[&a.candidate].is_ipv6();
        let outpaced = |a: &AttemptSummary| {
            let Some(w) = winner else { return false };
            a.outcome == Outcome::Cancelled
                && matches!((a.started, w.started), (Some(s), Some(ws)) if s <= ws)
                && ((!a.tcp && w.tcp) || (is_v6(a) && !is_v6(w)))
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

/// A connection a race attempt made, by transport.
enum Attempted {
    Tcp(Secured),
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
        congestion,
        ..
    } = quic;
    info.congestion = Some(congestion);
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
