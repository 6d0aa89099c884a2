//! Opening one HTTP connection to an origin: the tokio shell over the
//! sans-IO parts. It resolves (the race may start before every answer is
//! in: late answers join it), derives candidates ([`CandidateSet`]), has
//! them planned ([`Planning`]), races them ([`Connector`] over
//! [`super::race::Race`]), learns from the race ([`History`]), and runs the
//! HTTP handshake on the winner. Over TCP an attempt includes its TLS
//! handshake, so the others are not cancelled before the winner is usable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::alt_svc::AltSvcCache;
use super::candidates::CandidateSet;
use super::connect::{
    connect_tcp, AttemptStart, ConnectError, Connected, Connector, LateConnection, MoreAttempts,
};
use super::connection::{ConnectionInfo, Established, Secured, VersionPref};
use super::dns::{LateAnswers, Resolution, Resolver};
use super::error::{DialError, HandshakeError};
use super::handshake::{establish, establish_h3, secure, server_name};
use super::history::History;
use super::observe::{NetEvent, NetObserver};
use super::plan::{now_us, Candidate, ConnectRequest, Transport};
use super::planning::{Planned, Planning};
use super::pool::OriginKey;
use super::quic::{Quic, QuicConnection};
use super::race::{AttemptSummary, Outcome};
use super::tls::{Tls, TlsError};
use crate::current::Current;

/// Shared parts every connection needs.
#[derive(Debug, Clone)]
pub struct Dialer {
    /// Name resolution.
    pub resolver: Arc<Resolver>,
    /// TLS configurations.
    pub tls: Tls,
    /// The connection race (a reload may change its preferences; a race
    /// keeps the ones it started with).
    pub connector: Current<Connector>,
    /// HTTP version preference.
    pub version: VersionPref,
    /// Where DNS, connection and TLS events go.
    pub observer: Arc<dyn NetObserver>,
    /// QUIC settings (HTTP/3).
    pub quic: Quic,
    /// Alt-Svc alternatives learned from responses.
    pub alt_svc: Arc<Mutex<AltSvcCache>>,
    /// The network the host is on (Alt-Svc entries and history are per
    /// network).
    pub network: String,
    /// Who plans races, and what a policy's fault means.
    pub planning: Planning,
    /// How earlier connections went, handed to the policy.
    pub history: Arc<Mutex<History>>,
    /// How long to wait for AAAA and HTTPS after the first address answer
    /// before racing without them; `None` waits for every answer.
    pub resolution_delay: Current<Option<Duration>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // What these locks guard stays consistent between statements; a panic
    // elsewhere must not take connecting down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection a race attempt made, by transport.
enum Attempted {
    Tcp(Secured),
    Quic(QuicConnection),
}

/// Where a race stands once it is over.
struct Raced {
    result: Result<Connected<Attempted>, ConnectError>,
    /// The last TLS failure: when every attempt fails, it says more than
    /// "could not connect".
    tls_failure: Option<TlsError>,
    /// Kept attempts (a winner's syn-retry twin) that connect anyway.
    late: mpsc::UnboundedReceiver<LateConnection<Secured>>,
}

impl Dialer {
    /// Opens a connection to `origin`.
    pub async fn dial(&self, origin: &OriginKey) -> Result<Established, DialError> {
        let t0 = Instant::now();
        let staged = self.resolve(origin).await?;
        let dns = t0.elapsed();
        let set = self.candidate_set(origin, &staged.first).await?;
        let request = self.connect_request(origin, set.all().to_vec(), true);
        let planned = self.planning.plan(request).await?;
        let endpoints = set.endpoints();
        let set = Arc::new(Mutex::new(set));
        let (more, follower) = match staged.late {
            Some(late) => {
                let (tx, rx) = mpsc::unbounded_channel();
                (
                    Some(rx),
                    Some(self.follow_late_answers(origin, late, set.clone(), tx)),
                )
            }
            None => (None, None),
        };
        let t1 = Instant::now();
        let raced = self.race(origin, &endpoints, &planned, more).await;
        if let Some(task) = follower {
            task.abort();
        }
        let candidates = lock(&set).all().to_vec();
        self.after_race(origin, candidates, &raced.result);
        let won = match raced.result {
            Ok(won) => won,
            Err(e) => {
                return Err(raced
                    .tls_failure
                    .map_or(DialError::Connect(e), DialError::Tls))
            }
        };
        let (stream, info) = won_race(won, dns, t1, planned.planned_by);
        self.establish_winner(origin, stream, info, raced.late)
            .await
    }

    /// Resolves the origin's host, telling the observer how each query
    /// went; what answers later comes with the result.
    pub(super) async fn resolve(
        &self,
        origin: &OriginKey,
    ) -> Result<super::dns::Staged, DialError> {
        let t0 = Instant::now();
        let staged = self
            .resolver
            .resolve_staged(&origin.host, origin.port, *self.resolution_delay.get())
            .await;
        match staged {
            Ok(staged) => {
                self.observe_queries(&staged.first);
                Ok(staged)
            }
            Err(e) => {
                self.observer.observe(
                    None,
                    NetEvent::Dns {
                        name: origin.host.clone(),
                        record_type: "A/AAAA",
                        answers: 0,
                        elapsed: t0.elapsed(),
                        error: Some(e.to_string()),
                    },
                );
                Err(e.into())
            }
        }
    }

    /// The candidate set of a dial to `origin`, with its Alt-Svc h3
    /// alternatives for this network: those on the origin's own host
    /// follow its addresses (late ones too); another host's are resolved
    /// once, here (a failure just leaves that alternative out).
    async fn candidate_set(
        &self,
        origin: &OriginKey,
        first: &Resolution,
    ) -> Result<CandidateSet, DialError> {
        let quic_only = self.version == VersionPref::Http3;
        if quic_only && origin.scheme != "https" {
            return Err(DialError::Http3NeedsHttps {
                origin: origin.clone(),
            });
        }
        // QUIC is tried when forced, or (by version Auto, over https) when
        // an HTTPS record or a remembered Alt-Svc offers h3.
        let quic_allowed =
            quic_only || (self.version == VersionPref::Auto && origin.scheme == "https");
        let mut set = CandidateSet::new(&origin.host, origin.port, quic_allowed, !quic_only);
        let mut elsewhere = Vec::new();
        if quic_allowed && !quic_only {
            let now = std::time::SystemTime::now();
            let alternatives = lock(&self.alt_svc).h3(&self.network, origin, now);
            for alt in alternatives {
                match &alt.host {
                    Some(h) if *h != origin.host => {
                        if let Ok(r) = self.resolver.resolve(h, alt.port).await {
                            elsewhere
                                .extend(r.addrs.iter().map(|a| SocketAddr::new(a.ip, alt.port)));
                        }
                    }
                    _ => set.alt_svc_port(alt.port),
                }
            }
        }
        set.absorb(first);
        for addr in elsewhere {
            set.alt_svc_addr(addr);
        }
        Ok(set)
    }

    pub(super) fn connect_request(
        &self,
        origin: &OriginKey,
        candidates: Vec<Candidate>,
        first: bool,
    ) -> ConnectRequest {
        let mut history = lock(&self.history);
        ConnectRequest {
            origin: origin.clone(),
            candidates,
            history: history.of(origin),
            network_changed: first && history.first_plan_on_new_network(origin),
            now_us: now_us(),
        }
    }

    /// Answers that come after the race started add candidates to it,
    /// planned by the same policy. Under fail-closed a faulting policy
    /// plans nothing for them; the race goes on with what it has.
    fn follow_late_answers(
        &self,
        origin: &OriginKey,
        mut late: LateAnswers,
        set: Arc<Mutex<CandidateSet>>,
        more: mpsc::UnboundedSender<MoreAttempts>,
    ) -> JoinHandle<()> {
        let (dialer, origin) = (self.clone(), origin.clone());
        tokio::spawn(async move {
            while let Some(part) = late.next().await {
                dialer.observe_queries(&part);
                let new = lock(&set).absorb(&part);
                if new.is_empty() {
                    continue;
                }
                let request = dialer.connect_request(&origin, new.clone(), false);
                let Ok(planned) = dialer.planning.plan(request).await else {
                    continue;
                };
                let added = MoreAttempts {
                    endpoints: new.iter().map(|c| (c.id, c.addr)).collect(),
                    plan: planned.attempts,
                };
                if more.send(added).is_err() {
                    break;
                }
            }
        })
    }

    /// Races the plan: QUIC attempts open a QUIC connection, TCP ones
    /// connect and then secure the stream.
    async fn race(
        &self,
        origin: &OriginKey,
        endpoints: &HashMap<u32, SocketAddr>,
        planned: &Planned,
        more: Option<mpsc::UnboundedReceiver<MoreAttempts>>,
    ) -> Raced {
        let (late_tx, late) = mpsc::unbounded_channel();
        let tls_failure: Arc<Mutex<Option<TlsError>>> = Arc::default();
        let open = {
            let (dialer, origin, failed) = (self.clone(), origin.clone(), tls_failure.clone());
            move |a: AttemptStart| dialer.clone().attempt(origin.clone(), a, failed.clone())
        };
        let what = format!("{}:{}", origin.host, origin.port);
        let result = self
            .connector
            .get()
            .race_with(&what, endpoints, &planned.attempts, more, open, move |c| {
                // A late TCP connection goes to the idle pool; a late QUIC
                // one is closed (one h3 connection per origin is enough).
                if let Attempted::Tcp(stream) = c {
                    if let Some(addr) = stream.peer_addr() {
                        let _ = late_tx.send(LateConnection { addr, stream });
                    }
                }
            })
            .await;
        let tls_failure = lock(&tls_failure).take();
        Raced {
            result,
            tls_failure,
            late,
        }
    }

    /// One attempt of a race.
    async fn attempt(
        self,
        origin: OriginKey,
        a: AttemptStart,
        tls_failure: Arc<Mutex<Option<TlsError>>>,
    ) -> std::io::Result<Attempted> {
        if !a.tcp {
            let name = server_name(&origin.host);
            return self
                .quic
                .connect(a.addr, &name, &origin)
                .await
                .map(Attempted::Quic)
                .map_err(std::io::Error::other);
        }
        let tcp = connect_tcp(a.addr, self.connector.get().connect_timeout).await?;
        a.transport_up.signal();
        match secure(&self.tls, self.version, &*self.observer, &origin, tcp).await {
            Ok(s) => Ok(Attempted::Tcp(s)),
            Err(e) => {
                let io = std::io::Error::other(e.to_string());
                *lock(&tls_failure) = Some(e);
                Err(io)
            }
        }
    }

    /// Tells the observer about every attempt that started, and learns
    /// from the race (the policy's report is not awaited).
    pub(super) fn after_race<T>(
        &self,
        origin: &OriginKey,
        candidates: Vec<Candidate>,
        result: &Result<Connected<T>, ConnectError>,
    ) {
        let (summary, endpoints) = match result {
            Ok(w) => (&w.attempts, &w.endpoints),
            Err(e) => (&e.attempts, &e.endpoints),
        };
        if self.observer.is_active() {
            for a in summary.iter().filter(|a| a.started.is_some()) {
                self.observe_attempt(origin, a, endpoints[&a.candidate]);
            }
        }
        let reports = lock(&self.history).learn(origin, summary, endpoints, now_us());
        self.planning.report(origin.clone(), candidates, reports);
    }

    fn observe_attempt(&self, origin: &OriginKey, a: &AttemptSummary, addr: SocketAddr) {
        let transport = if a.tcp {
            Transport::Tcp
        } else {
            Transport::Quic
        };
        let o = Some(origin);
        self.observer
            .observe(o, NetEvent::ConnectAttempt { transport, addr });
        let error = match a.outcome {
            Outcome::Won | Outcome::ConnectedLate => None,
            Outcome::Failed => Some("failed"),
            Outcome::Cancelled => Some("cancelled"),
            Outcome::NotStarted => Some("not started"),
        };
        let elapsed = a.elapsed.unwrap_or_default();
        self.observer.observe(
            o,
            NetEvent::ConnectResult {
                transport,
                addr,
                elapsed,
                error,
            },
        );
    }

    /// The HTTP handshake on the race's winner.
    async fn establish_winner(
        &self,
        origin: &OriginKey,
        stream: Attempted,
        mut info: ConnectionInfo,
        late: mpsc::UnboundedReceiver<LateConnection<Secured>>,
    ) -> Result<Established, DialError> {
        let handshake_failed = |source: HandshakeError| DialError::Handshake {
            origin: origin.clone(),
            source,
        };
        match stream {
            Attempted::Tcp(secured) => {
                // The race timed TCP and TLS together; report them apart.
                if let Secured::Tls(h) = &secured {
                    info.connect = info.connect.saturating_sub(h.elapsed);
                }
                let mut est = establish(self.version, secured, info)
                    .await
                    .map_err(handshake_failed)?;
                est.late = Some(late);
                Ok(est)
            }
            Attempted::Quic(quic) => establish_h3(quic, info).await.map_err(handshake_failed),
        }
    }

    /// The HTTP handshake on a connection made outside a dial (a late
    /// syn-retry winner adopted by the pool).
    pub async fn establish(
        &self,
        origin: &OriginKey,
        secured: Secured,
        info: ConnectionInfo,
    ) -> Result<Established, DialError> {
        establish(self.version, secured, info)
            .await
            .map_err(|source| DialError::Handshake {
                origin: origin.clone(),
                source,
            })
    }

    fn observe_queries(&self, resolution: &Resolution) {
        if !self.observer.is_active() {
            return;
        }
        for q in &resolution.queries {
            self.observer.observe(
                None,
                NetEvent::Dns {
                    name: resolution.host.clone(),
                    record_type: q.record_type,
                    answers: q.answers,
                    elapsed: q.elapsed,
                    error: q.error.clone(),
                },
            );
        }
    }

    /// The network changed: history is flushed (it described another
    /// path), Alt-Svc entries not marked `persist` are dropped, and each
    /// origin's next plan is told, so that a policy is careful again.
    pub fn network_changed(&self) {
        lock(&self.history).network_changed();
        lock(&self.alt_svc).network_changed();
    }
}

/// The winner's stream, and how its connection was made: `dns` took that
/// long, the race started at `raced_from`.
pub(super) fn won_race<T>(
    won: Connected<T>,
    dns: Duration,
    raced_from: Instant,
    planned_by: String,
) -> (T, ConnectionInfo) {
    let mut candidates: Vec<(u32, SocketAddr)> =
        won.endpoints.iter().map(|(k, v)| (*k, *v)).collect();
    candidates.sort();
    let info = ConnectionInfo {
        remote: Some(won.addr),
        dns,
        connect: raced_from.elapsed(),
        candidates,
        attempts: won.attempts,
        planned_by,
        ..ConnectionInfo::default()
    };
    (won.stream, info)
}
