//! The tokio shell around [`Race`]: it opens the connections the race asks
//! for (TCP here; any transport through [`Connector::race_with`]), feeds
//! their outcomes back, and hands over the winner. Kept attempts (a
//! winner's syn-retry twin) finish in the background and, if they connect,
//! go to the idle pool through a channel.

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

/// Every attempt failed.
#[derive(Debug, thiserror::Error)]
#[error("could not connect to {}: {}", what, describe(.failures))]
pub struct ConnectError {
    /// What was being connected to (host:port).
    pub what: String,
    /// Each attempt's address and error.
    pub failures: Vec<(SocketAddr, String)>,
    /// Every attempt of the race.
    pub attempts: Vec<AttemptSummary>,
    /// Every candidate's address, including those added during the race.
    pub endpoints: HashMap<u32, SocketAddr>,
}

fn describe(failures: &[(SocketAddr, String)]) -> String {
    if failures.is_empty() {
        return "no addresses to try".to_owned();
    }
    failures
        .iter()
        .map(|(a, e)| format!("{a}: {e}"))
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
        mut more: Option<mpsc::UnboundedReceiver<MoreAttempts>>,
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
        let mut endpoints = endpoints.clone();
        let mut race = Race::new(&plan, self.prefs, started);
        let mut set: JoinSet<AttemptResult<T>> = JoinSet::new();
        let mut handles: HashMap<AttemptId, AbortHandle> = HashMap::new();
        let mut failures = Vec::new();
        let (up_tx, mut up_rx) = mpsc::unbounded_channel();
        let mut actions = race.expect_more(more.is_some(), started);
        // The stream of the attempt whose connection is being reported.
        let mut just_connected: Option<(AttemptId, T)> = None;
        loop {
            let mut won = None;
            for action in actions.drain(..) {
                match action {
                    Action::Start {
                        attempt, candidate, ..
                    } => {
                        let attempt_future = open(AttemptStart {
                            candidate,
                            addr: endpoints[&candidate],
                            tcp: race.is_tcp(attempt),
                            transport_up: TransportUp {
                                attempt,
                                tx: up_tx.clone(),
                            },
                        });
                        let h = set.spawn(async move { (attempt, attempt_future.await) });
                        handles.insert(attempt, h);
                    }
                    Action::Cancel(attempt) => {
                        if let Some(h) = handles.remove(&attempt) {
                            h.abort();
                        }
                    }
                    Action::Keep(_) => {}
                    Action::Won(attempt) => won = Some(attempt),
                    Action::Lost => {
                        return Err(ConnectError {
                            what: what.to_owned(),
                            failures,
                            attempts: race.summary(),
                            endpoints,
                        });
                    }
                }
            }
            if let Some(attempt) = won {
                let (id, stream) = just_connected.take().expect("a win follows a connection");
                debug_assert_eq!(id, attempt);
                let candidate = race.candidate(attempt);
                let connected = Connected {
                    addr: endpoints[&candidate],
                    stream,
                    candidate,
                    attempts: race.summary(),
                    endpoints,
                    elapsed: started.elapsed(),
                };
                if !set.is_empty() {
                    tokio::spawn(finish_kept(set, on_late));
                }
                return Ok(connected);
            }
            // A connection that lost the race (the race already dropped it).
            drop(just_connected.take());
            let deadline = race.next_deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                joined = set.join_next(), if !set.is_empty() => {
                    let Some(Ok((attempt, result))) = joined else { continue };
                    handles.remove(&attempt);
                    let now = Instant::now();
                    match result {
                        Ok(stream) => {
                            just_connected = Some((attempt, stream));
                            actions = race.on_connected(attempt, now);
                        }
                        Err(e) => {
                            failures.push((endpoints[&race.candidate(attempt)], e.to_string()));
                            actions = race.on_failed(attempt, now);
                        }
                    }
                }
                Some(attempt) = up_rx.recv() => {
                    race.on_transport_up(attempt);
                }
                added = recv_more(&mut more), if more.is_some() => {
                    let now = Instant::now();
                    match added {
                        Some(m) => {
                            endpoints.extend(m.endpoints.iter().copied());
                            let from_start = now - started;
                            for p in m.plan.iter().filter(|p| endpoints.contains_key(&p.candidate)) {
                                let p = PlannedAttempt { delay: from_start + p.delay, ..*p };
                                actions.extend(race.add(p, now));
                            }
                        }
                        None => {
                            more = None;
                            actions = race.expect_more(false, now);
                        }
                    }
                }
                _ = sleep => {
                    actions = race.poll(Instant::now());
                }
            }
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
