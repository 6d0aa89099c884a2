//! Connection planning: which endpoints a new connection tries, in which
//! order, with which head start. A [`ConnectPolicy`] answers a
//! [`ConnectRequest`] with a [`Plan`] and learns from an [`AttemptReport`]
//! per attempt. The built-in Happy Eyeballs v3 policy
//! ([`super::happy_eyeballs::BuiltinPolicy`]) and the connect-policy plugin
//! bridge (`plugins::connect`) are two implementations; the dialer decides
//! in one place ([`super::planning`]) what a policy's fault means.
//!
//! These are the network stack's own types: a plugin bridge converts them
//! to and from its WIT records.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::pool::OriginKey;

/// The longest head start a plan may give an attempt: 30 s, far beyond any
/// connection timeout, so larger values can only be mistakes.
pub const MAX_ATTEMPT_DELAY: Duration = Duration::from_secs(30);

/// Most candidates offered to a policy in one request.
pub const MAX_CANDIDATES: usize = 256;

/// The transport of a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP (then TLS for https).
    Tcp,
    /// QUIC (HTTP/3).
    Quic,
}

/// Where a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateSource {
    /// An A record (or an IPv4 address).
    A,
    /// An AAAA record (or an IPv6 address).
    Aaaa,
    /// An HTTPS (SVCB) record.
    HttpsRecord,
    /// A remembered `Alt-Svc` alternative.
    AltSvc,
    /// A `--resolve` override.
    Override,
}

/// One endpoint a connection may be made to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Unique within one dial.
    pub id: u32,
    /// TCP or QUIC.
    pub transport: Transport,
    /// The address.
    pub addr: SocketAddr,
    /// The ALPN ids offered on it.
    pub alpn: Vec<String>,
    /// Where it came from.
    pub source: CandidateSource,
    /// The HTTPS record's priority; 0 when not from one.
    pub priority: u16,
    /// Whether the HTTPS record carried an ECH configuration.
    pub ech: bool,
}

impl Candidate {
    /// A plain candidate for `addr`: the default ALPN of its transport,
    /// sourced by address family.
    pub fn plain(id: u32, addr: SocketAddr, transport: Transport) -> Candidate {
        Candidate {
            id,
            transport,
            addr,
            alpn: match transport {
                Transport::Tcp => vec!["h2".into(), "http/1.1".into()],
                Transport::Quic => vec!["h3".into()],
            },
            source: if addr.is_ipv6() {
                CandidateSource::Aaaa
            } else {
                CandidateSource::A
            },
            priority: 0,
            ech: false,
        }
    }
}

/// How connections of one kind (transport and family) to an origin went on
/// this network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The transport.
    pub transport: Transport,
    /// IPv6 or IPv4.
    pub ipv6: bool,
    /// Attempts that connected.
    pub successes: u32,
    /// Attempts that failed or were outpaced.
    pub failures: u32,
    /// How long the last successful attempt took.
    pub last_connect_time: Option<Duration>,
    /// When the last attempt was made, in microseconds of [`now_us`].
    pub last_attempt: Option<u64>,
}

/// What a policy is asked to plan.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// The origin connected to.
    pub origin: OriginKey,
    /// What may be tried.
    pub candidates: Vec<Candidate>,
    /// How earlier connections to the origin went on this network.
    pub history: Vec<HistoryEntry>,
    /// Whether this is the origin's first plan since the network changed.
    pub network_changed: bool,
    /// Now, in microseconds of [`now_us`].
    pub now_us: u64,
}

/// One planned attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// The candidate's id.
    pub candidate: u32,
    /// Its head start from the start of the race.
    pub delay: Duration,
}

/// The attempts of one race.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// In any order; the race sorts them by delay.
    pub attempts: Vec<Attempt>,
}

/// Why a plan cannot be raced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// There were candidates and the plan tries none.
    #[error("the plan tries none of the candidates")]
    Empty,
    /// An attempt names a candidate the request did not offer.
    #[error("attempt names unknown candidate {0}")]
    UnknownCandidate(u32),
    /// A candidate appears twice.
    #[error("candidate {0} is attempted twice")]
    Duplicate(u32),
    /// A head start longer than [`MAX_ATTEMPT_DELAY`].
    #[error("attempt on candidate {candidate} delayed {} us, more than {}", .delay.as_micros(), MAX_ATTEMPT_DELAY.as_micros())]
    TooLate {
        /// The candidate.
        candidate: u32,
        /// Its delay.
        delay: Duration,
    },
}

impl Plan {
    /// Checks the plan against the request it answers: every attempt names
    /// one of its candidates, at most once, within [`MAX_ATTEMPT_DELAY`].
    pub fn check(&self, request: &ConnectRequest) -> Result<(), PlanError> {
        let ids: HashSet<u32> = request.candidates.iter().map(|c| c.id).collect();
        if self.attempts.is_empty() && !request.candidates.is_empty() {
            return Err(PlanError::Empty);
        }
        let mut seen = HashSet::new();
        for a in &self.attempts {
            if !ids.contains(&a.candidate) {
                return Err(PlanError::UnknownCandidate(a.candidate));
            }
            if !seen.insert(a.candidate) {
                return Err(PlanError::Duplicate(a.candidate));
            }
            if a.delay > MAX_ATTEMPT_DELAY {
                return Err(PlanError::TooLate {
                    candidate: a.candidate,
                    delay: a.delay,
                });
            }
        }
        Ok(())
    }
}

/// How one attempt ended, as a policy learns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportedOutcome {
    /// It won the race.
    Connected,
    /// It connected after another attempt won.
    ConnectedLate,
    /// It failed.
    Failed(String),
    /// It was outpaced: still silent when an attempt of another kind that
    /// started no earlier won (HEv3 counts that as a failure).
    TimedOut,
    /// It was cancelled.
    Cancelled,
    /// The race never needed it.
    NotStarted,
}

/// How one attempt of a plan went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    /// The candidate.
    pub candidate: u32,
    /// How it ended.
    pub outcome: ReportedOutcome,
    /// How long it ran.
    pub elapsed: Duration,
}

/// What a policy's fault means for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Plan with the built-in policy instead.
    FailOpen,
    /// Fail the connection.
    FailClosed,
}

/// A policy could not plan.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{source}")]
pub struct PolicyFault {
    /// What the dialer does about it.
    pub mode: FaultMode,
    /// What went wrong (shared: every waiter of the dial sees it).
    pub source: std::sync::Arc<dyn std::error::Error + Send + Sync>,
}

/// Plans connections and learns from how they went.
///
/// Calls may block for as long as the policy's own budget allows when
/// [`ConnectPolicy::blocks`] says so; the dialer then makes them on the
/// blocking pool, never on the async runtime.
pub trait ConnectPolicy: Send + Sync + std::fmt::Debug {
    /// The policy's name, as reported in `planned_by`.
    fn name(&self) -> &str;

    /// Whether calls may block (a WASM plugin); the built-in policy does
    /// not.
    fn blocks(&self) -> bool {
        true
    }

    /// Plans one race. Late candidates (from answers that arrive after the
    /// race started) are planned in a further call that lists only them;
    /// their delays count from when they arrived.
    fn plan(&self, request: &ConnectRequest) -> Result<Plan, PolicyFault>;

    /// Learns how every attempt of a race went. Nothing waits on it.
    fn report(&self, origin: &OriginKey, candidates: &[Candidate], reports: &[AttemptReport]) {
        let _ = (origin, candidates, reports);
    }
}

/// Microseconds on the host's monotonic clock, counted from its first use
/// (what instants in [`ConnectRequest`] and [`HistoryEntry`] mean).
pub fn now_us() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(ids: &[u32]) -> ConnectRequest {
        ConnectRequest {
            origin: OriginKey {
                scheme: "https".into(),
                host: "a.test".into(),
                port: 443,
            },
            candidates: ids
                .iter()
                .map(|&id| Candidate::plain(id, "127.0.0.1:443".parse().unwrap(), Transport::Tcp))
                .collect(),
            history: Vec::new(),
            network_changed: false,
            now_us: 0,
        }
    }

    fn plan(attempts: &[(u32, u64)]) -> Plan {
        Plan {
            attempts: attempts
                .iter()
                .map(|&(candidate, ms)| Attempt {
                    candidate,
                    delay: Duration::from_millis(ms),
                })
                .collect(),
        }
    }

    #[test]
    fn a_plan_must_try_known_candidates_once_and_soon_enough() {
        let r = request(&[1, 2]);
        assert_eq!(plan(&[(1, 0), (2, 250)]).check(&r), Ok(()));
        assert_eq!(plan(&[]).check(&r), Err(PlanError::Empty));
        assert_eq!(plan(&[]).check(&request(&[])), Ok(()));
        assert_eq!(
            plan(&[(3, 0)]).check(&r),
            Err(PlanError::UnknownCandidate(3))
        );
        assert_eq!(
            plan(&[(1, 0), (1, 5)]).check(&r),
            Err(PlanError::Duplicate(1))
        );
        let late = plan(&[(2, 30_001)]).check(&r).unwrap_err();
        assert_eq!(
            late.to_string(),
            "attempt on candidate 2 delayed 30001000 us, more than 30000000"
        );
    }

    #[test]
    fn plain_candidates_take_their_source_from_the_family() {
        let v6 = Candidate::plain(0, "[::1]:443".parse().unwrap(), Transport::Quic);
        assert_eq!(v6.source, CandidateSource::Aaaa);
        assert_eq!(v6.alpn, vec!["h3".to_owned()]);
        let v4 = Candidate::plain(1, "127.0.0.1:80".parse().unwrap(), Transport::Tcp);
        assert_eq!(v4.source, CandidateSource::A);
        assert_eq!(v4.alpn, vec!["h2".to_owned(), "http/1.1".to_owned()]);
    }
}
