//! The tokio shell around the sans-IO [`Race`]: it opens the connections
//! the race asks for (TCP with [`Connector::race`]; any transport, TCP+TLS
//! and QUIC as the dialer uses it, through [`Connector::race_with`]), feeds
//! their outcomes back, adds late candidates while it runs, and hands over
//! the winner. Kept attempts (a winner's syn-retry twin) finish in the
//! background and, if they connect, go to the idle pool through a channel.
//! Which attempts to make, and when, is the connect policy's plan
//! ([`super::plan`]); this file only performs it.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use super::race::{Action, AttemptId, AttemptSummary, PlannedAttempt, Race, RacePrefs};

/// Longest one TCP handshake may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection that finished after the race was won, for the idle pool.
#[derive(Debug)]
pub struct LateConnection<T = TcpStream> {
    /// Where it goes.
    pub addr: SocketAddr,
    /// The connection.
    pub stream: T,
}

/// What an attempt's `open` is given.
#[derive(Debug, Clone)]
pub struct AttemptStart {
    /// The candidate.
    pub candidate: u32,
    /// Its address.
    pub addr: SocketAddr,
    /// TCP, or QUIC when false.
    pub tcp: bool,
    /// Signals that the transport handshake completed (see
    /// [`Race::on_transport_up`]).
    pub transport_up: TransportUp,
}

/// Tells the race an attempt's transport is up while its security
/// handshake still runs.
#[derive(Debug, Clone)]
pub struct TransportUp {
    attempt: AttemptId,
    tx: mpsc::UnboundedSender<AttemptId>,
}

impl TransportUp {
    /// The transport handshake completed.
    pub fn signal(&self) {
        let _ = self.tx.send(self.attempt);
    }
}

/// Candidates that became known while the race ran (late DNS answers).
#[derive(Debug, Clone, Default)]
pub struct MoreAttempts {
    /// Their addresses (candidate id → address).
    pub endpoints: Vec<(u32, SocketAddr)>,
    /// Their attempts; delays count from when they arrive.
    pub plan: Vec<PlannedAttempt>,
}

/// The race's winner.
#[derive(Debug)]
pub struct Connected<T = TcpStream> {
    /// The connection.
    pub stream: T,
    /// Where it goes.
    pub addr: SocketAddr,
    /// The winning candidate.
    pub candidate: u32,
    /// Every attempt of the race, as it stood when it was won.
    pub attempts: Vec<AttemptSummary>,
    /// Every candidate's address, including those added during the race.
    pub endpoints: HashMap<u32, SocketAddr>,
    /// From the start of the race to the winner's connection.
    pub elapsed: Duration,
}

/// One attempt that failed.
#[derive(Debug, Clone)]
pub struct AttemptFailure {
    /// Where it went.
    pub addr: SocketAddr,
    /// The kind of I/O error (refused, unreachable, timed out, ...).
    pub kind: std::io::ErrorKind,
    /// What happened.
    pub message: String,
}

/// Every attempt failed.
#[derive(Debug, thiserror::Error)]
#[error("could not connect to {}: {}", what, describe(.failures))]
pub struct ConnectError {
    /// What was being connected to (host:port).
    pub what: String,
    /// Each failed attempt.
    pub failures: Vec<AttemptFailure>,
    /// Every attempt of the race.
    pub attempts: Vec<AttemptSummary>,
    /// Every candidate's address, including those added during the race.
    pub endpoints: HashMap<u32, SocketAddr>,
}

impl ConnectError {
    /// Whether every attempt ran out of time (nothing refused or
    /// unreachable): a timeout rather than a refusal.
    pub fn timed_out(&self) -> bool {
        !self.failures.is_empty()
            && self
                .failures
                .iter()
                .all(|f| f.kind == std::io::ErrorKind::TimedOut)
    }
}

fn describe(failures: &[AttemptFailure]) -> String {
    if failures.is_empty() {
        return "no addresses to try".to_owned();
    }
    failures
        .iter()
        .map(|f| format!("{}: {}", f.addr, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Opens TCP connections by racing a plan.
#[derive(Debug, Clone)]
pub struct Connector {
    /// Race tunables.
    pub prefs: RacePrefs,
    /// Per-attempt handshake timeout.
    pub connect_timeout: Duration,
    /// Where kept attempts that connect late are sent (the idle pool).
    pub late: Option<mpsc::UnboundedSender<LateConnection>>,
}

impl Default for Connector {
    fn default() -> Self {
        Connector {
            prefs: RacePrefs::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            late: None,
        }
    }
}

type AttemptResult<T> = (AttemptId, std::io::Result<T>);

impl Connector {
    /// Races `plan` over `endpoints` (candidate id → address) with TCP.
    /// `what` names the destination in errors.
    pub async fn race(
        &self,
        what: &str,
        endpoints: &HashMap<u32, SocketAddr>,
        plan: &[PlannedAttempt],
    ) -> Result<Connected, ConnectError> {
        let timeout = self.connect_timeout;
        let late = self.late.clone();
        self.race_with(
            what,
            endpoints,
            plan,
            None,
            move |a: AttemptStart| connect_tcp(a.addr, timeout),
            move |stream: TcpStream| {
                if let (Some(late), Ok(addr)) = (&late, stream.peer_addr()) {
                    let _ = late.send(LateConnection { addr, stream });
                }
            },
        )
        .await
    }

    /// Races `plan` with `open` making each attempt's connection; a kept
    /// attempt that connects after the race was won goes to `on_late`.
    /// With `more`, attempts may join while the race runs, and it is not
    /// lost before `more` closes.
    pub async fn race_with<T, Open, Fut, Late>(
        &self,
        what: &str,
        endpoints: &HashMap<u32, SocketAddr>,
        plan: &[PlannedAttempt],
        more: Option<mpsc::UnboundedReceiver<MoreAttempts>>,
        open: Open,
        on_late: Late,
    ) -> Result<Connected<T>, ConnectError>
    where
        T: Send + 'static,
        Open: Fn(AttemptStart) -> Fut,
        Fut: Future<Output = std::io::Result<T>> + Send + 'static,
        Late: Fn(T) + Send + 'static,
    {
        let started = Instant::now();
        let plan: Vec<PlannedAttempt> = plan
            .iter()
            .filter(|p| endpoints.contains_key(&p.candidate))
            .copied()
            .collect();
        let (up_tx, up_rx) = mpsc::unbounded_channel();
        let mut run = RaceRun {
            race: Race::new(&plan, self.prefs, started),
            started,
            endpoints: endpoints.clone(),
            set: JoinSet::new(),
            handles: HashMap::new(),
            failures: Vec::new(),
            up_tx,
            up_rx,
            more,
            just_connected: None,
        };
        let mut actions = run.race.expect_more(run.more.is_some(), started);
        loop {
            match run.apply(actions, &open) {
                Some(Decided::Won(attempt)) => return Ok(run.won(attempt, on_late)),
                Some(Decided::Lost) => return Err(run.lost(what)),
                None => {}
            }
            actions = run.next_event().await;
        }
    }
}

/// How a race ended.
enum Decided {
    Won(AttemptId),
    Lost,
}

/// One race while it runs: the sans-IO [`Race`] and the attempts' tasks.
struct RaceRun<T> {
    race: Race,
    started: Instant,
    endpoints: HashMap<u32, SocketAddr>,
    set: JoinSet<AttemptResult<T>>,
    handles: HashMap<AttemptId, AbortHandle>,
    failures: Vec<AttemptFailure>,
    up_tx: mpsc::UnboundedSender<AttemptId>,
    up_rx: mpsc::UnboundedReceiver<AttemptId>,
    more: Option<mpsc::UnboundedReceiver<MoreAttempts>>,
    /// The stream of the attempt whose connection is being reported.
    just_connected: Option<(AttemptId, T)>,
}

impl<T: Send + 'static> RaceRun<T> {
    /// Performs the race's actions; says whether the race is decided.
    fn apply<Open, Fut>(&mut self, actions: Vec<Action>, open: &Open) -> Option<Decided>
    where
        Open: Fn(AttemptStart) -> Fut,
        Fut: Future<Output = std::io::Result<T>> + Send + 'static,
    {
        let mut decided = None;
        for action in actions {
            match action {
                Action::Start {
                    attempt, candidate, ..
                } => {
                    let attempt_future = open(AttemptStart {
                        candidate,
                        addr: self.endpoints[&candidate],
                        tcp: self.race.is_tcp(attempt),
                        transport_up: TransportUp {
                            attempt,
                            tx: self.up_tx.clone(),
                        },
                    });
                    let h = self
                        .set
                        .spawn(async move { (attempt, attempt_future.await) });
                    self.handles.insert(attempt, h);
                }
                Action::Cancel(attempt) => {
                    if let Some(h) = self.handles.remove(&attempt) {
                        h.abort();
                    }
                }
                Action::Keep(_) => {}
                Action::Won(attempt) => decided = Some(Decided::Won(attempt)),
                Action::Lost => return Some(Decided::Lost),
            }
        }
        if decided.is_none() {
            // A connection that lost the race (the race already dropped it).
            drop(self.just_connected.take());
        }
        decided
    }

    /// Waits for the next thing that happens to the race: an attempt's
    /// end, a transport coming up, late candidates, or a timer.
    async fn next_event(&mut self) -> Vec<Action> {
        let deadline = self.race.next_deadline();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            joined = self.set.join_next(), if !self.set.is_empty() => {
                let Some(Ok((attempt, result))) = joined else { return Vec::new() };
                self.attempt_ended(attempt, result)
            }
            Some(attempt) = self.up_rx.recv() => {
                self.race.on_transport_up(attempt);
                Vec::new()
            }
            added = recv_more(&mut self.more), if self.more.is_some() => self.more_attempts(added),
            _ = sleep => self.race.poll(Instant::now()),
        }
    }

    fn attempt_ended(&mut self, attempt: AttemptId, result: std::io::Result<T>) -> Vec<Action> {
        self.handles.remove(&attempt);
        let now = Instant::now();
        match result {
            Ok(stream) => {
                self.just_connected = Some((attempt, stream));
                self.race.on_connected(attempt, now)
            }
            Err(e) => {
                self.failures.push(AttemptFailure {
                    addr: self.endpoints[&self.race.candidate(attempt)],
                    kind: e.kind(),
                    message: e.to_string(),
                });
                self.race.on_failed(attempt, now)
            }
        }
    }

    fn more_attempts(&mut self, added: Option<MoreAttempts>) -> Vec<Action> {
        let now = Instant::now();
        let Some(m) = added else {
            self.more = None;
            return self.race.expect_more(false, now);
        };
        self.endpoints.extend(m.endpoints.iter().copied());
        let from_start = now - self.started;
        let mut actions = Vec::new();
        for p in m.plan.iter() {
            if self.endpoints.contains_key(&p.candidate) {
                let p = PlannedAttempt {
                    delay: from_start + p.delay,
                    ..*p
                };
                actions.extend(self.race.add(p, now));
            }
        }
        actions
    }

    fn won(mut self, attempt: AttemptId, on_late: impl Fn(T) + Send + 'static) -> Connected<T> {
        let (id, stream) = self
            .just_connected
            .take()
            .expect("a win follows a connection");
        debug_assert_eq!(id, attempt);
        let candidate = self.race.candidate(attempt);
        let connected = Connected {
            addr: self.endpoints[&candidate],
            stream,
            candidate,
            attempts: self.race.summary(),
            endpoints: self.endpoints,
            elapsed: self.started.elapsed(),
        };
        if !self.set.is_empty() {
            tokio::spawn(finish_kept(self.set, on_late));
        }
        connected
    }

    fn lost(self, what: &str) -> ConnectError {
        ConnectError {
            what: what.to_owned(),
            failures: self.failures,
            attempts: self.race.summary(),
            endpoints: self.endpoints,
        }
    }
}

async fn recv_more(
    more: &mut Option<mpsc::UnboundedReceiver<MoreAttempts>>,
) -> Option<MoreAttempts> {
    match more {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// One TCP connection attempt, bounded by `timeout`.
pub async fn connect_tcp(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer in {timeout:?}"),
            ))
        }
    };
    // Requests are written whole; Nagle would only delay them.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Lets kept attempts finish; those that connect go to `on_late`.
async fn finish_kept<T: Send + 'static>(
    mut set: JoinSet<AttemptResult<T>>,
    on_late: impl Fn(T) + Send + 'static,
) {
    while let Some(joined) = set.join_next().await {
        if let Ok((_, Ok(stream))) = joined {
            on_late(stream);
        }
    }
}
