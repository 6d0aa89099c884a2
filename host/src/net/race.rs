//! The connection race, sans-IO: it takes the attempt plan, the time and
//! attempt outcomes, and says which connections to start, which to cancel
//! and who won. The tokio shell (`net::connect`) does the I/O.
//!
//! Rules:
//! - each planned attempt starts at its delay from the start of the race, or
//!   at once when every attempt started so far has failed (RFC 8305 §5: a
//!   failure does not wait out the attempt delay);
//! - no two attempts start within [`RacePrefs::min_spacing`] of each other
//!   (Happy Eyeballs v3: 10 ms), whatever the plan says, so a plan cannot
//!   burst connection attempts at a path;
//! - **syn-retry**: a TCP attempt whose transport handshake has not
//!   completed after [`RacePrefs::syn_retry`] gets one parallel twin to the
//!   same address, so a dropped first SYN costs about that long instead of
//!   the kernel's 1 s retransmission timeout;
//! - an attempt is connected when it is usable: over TCP + TLS that is after
//!   the TLS handshake (the shell reports the TCP connection separately with
//!   [`Race::on_transport_up`], which only stops syn-retry), so a TCP
//!   connection whose TLS stalls or fails does not cancel the others;
//! - the first attempt to connect wins; every other attempt is cancelled,
//!   except a winner's own twin, which may finish and go to the idle pool
//!   ([`Action::Keep`]) instead of being thrown away;
//! - attempts may be added while the race runs ([`Race::add`], for addresses
//!   that answered after the race started); while more may come
//!   ([`Race::expect_more`]) the race is not lost;
//! - when every attempt has failed, none is left to start and no more are
//!   expected, the race is lost.

use std::time::{Duration, Instant};

/// Index of an attempt within a race (planned attempts first, twins after).
pub type AttemptId = usize;

/// Tunables of the race.
#[derive(Debug, Clone, Copy)]
pub struct RacePrefs {
    /// How long a TCP handshake may stay incomplete before a twin starts.
    pub syn_retry: Duration,
    /// Whether syn-retry is on.
    pub syn_retry_enabled: bool,
    /// The least time between two attempt starts.
    pub min_spacing: Duration,
    /// How long after the latest start an attempt [added](Race::add) while
    /// others run may start: a late candidate was not in the policy's
    /// plan, so it keeps the plan's usual attempt delay from the attempts
    /// that are (RFC 8305 §5), rather than piling onto them.
    pub late_attempt_delay: Duration,
}

/// Happy Eyeballs v3's minimum connection attempt delay.
pub const DEFAULT_MIN_SPACING: Duration = Duration::from_millis(10);

impl Default for RacePrefs {
    fn default() -> Self {
        RacePrefs {
            syn_retry: Duration::from_millis(250),
            syn_retry_enabled: true,
            min_spacing: DEFAULT_MIN_SPACING,
            late_attempt_delay: Duration::from_millis(250),
        }
    }
}

/// One attempt of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedAttempt {
    /// The candidate (endpoint) to connect to.
    pub candidate: u32,
    /// Delay from the start of the race.
    pub delay: Duration,
    /// Whether it is TCP (syn-retry applies) or QUIC (it does not).
    pub tcp: bool,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start connecting attempt `attempt` to `candidate`.
    Start {
        /// The attempt.
        attempt: AttemptId,
        /// Its candidate.
        candidate: u32,
        /// Whether it is a syn-retry twin of another attempt.
        twin_of: Option<AttemptId>,
    },
    /// Abandon this attempt.
    Cancel(AttemptId),
    /// Let this attempt finish; if it connects, pool the connection.
    Keep(AttemptId),
    /// Use this attempt's connection: the race is won.
    Won(AttemptId),
    /// Every attempt failed.
    Lost,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It won.
    Won,
    /// It connected after another attempt won (pooled or dropped).
    ConnectedLate,
    /// It failed.
    Failed,
    /// It was cancelled.
    Cancelled,
    /// It was never started.
    NotStarted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running {
        since: Instant,
        /// The transport (TCP) handshake completed; TLS may still run.
        transport_up: bool,
    },
    Done(Outcome),
    /// Kept after the race was decided; still running.
    Kept,
}

#[derive(Debug, Clone)]
struct Attempt {
    candidate: u32,
    /// When it is due, from the start of the race.
    delay: Duration,
    tcp: bool,
    twin_of: Option<AttemptId>,
    /// Invariant: a twin never gets a twin, and an attempt gets at most one.
    twinned: bool,
    state: State,
    started: Option<Instant>,
    ended: Option<Instant>,
}

impl Attempt {
    fn planned(p: PlannedAttempt) -> Attempt {
        Attempt {
            candidate: p.candidate,
            delay: p.delay,
            tcp: p.tcp,
            twin_of: None,
            twinned: false,
            state: State::Pending,
            started: None,
            ended: None,
        }
    }
}

/// One race.
#[derive(Debug)]
pub struct Race {
    prefs: RacePrefs,
    start: Instant,
    attempts: Vec<Attempt>,
    winner: Option<AttemptId>,
    lost: bool,
    /// The latest start, for the minimum spacing.
    last_start: Option<Instant>,
    /// Attempts may still be added (addresses still resolving).
    more_coming: bool,
}

/// How one attempt went, for the report to the connect policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptSummary {
    /// The attempt.
    pub attempt: AttemptId,
    /// Its candidate.
    pub candidate: u32,
    /// Whether it was a syn-retry twin.
    pub twin: bool,
    /// TCP, or QUIC when false.
    pub tcp: bool,
    /// When it started, from the start of the race.
    pub started: Option<Duration>,
    /// How long it ran.
    pub elapsed: Option<Duration>,
    /// How it ended (`NotStarted` for attempts the race never needed).
    pub outcome: Outcome,
}

impl Race {
    /// A race of `plan` starting at `now`. An empty plan is lost at once.
    pub fn new(plan: &[PlannedAttempt], prefs: RacePrefs, now: Instant) -> Race {
        let mut attempts: Vec<Attempt> = plan.iter().map(|p| Attempt::planned(*p)).collect();
        // Ids follow start order where the plan fixes it; equal delays keep
        // plan order.
        attempts.sort_by_key(|a| a.delay);
        Race {
            prefs,
            start: now,
            attempts,
            winner: None,
            lost: false,
            last_start: None,
            more_coming: false,
        }
    }

    /// Adds an attempt to a running race (its delay counts from the start
    /// of the race, like the plan's). While other attempts run it waits at
    /// least [`RacePrefs::late_attempt_delay`] after the latest start.
    /// Ignored once the race is decided.
    pub fn add(&mut self, planned: PlannedAttempt, now: Instant) -> Vec<Action> {
        if self.is_decided() {
            return Vec::new();
        }
        let mut attempt = Attempt::planned(planned);
        if let (true, Some(last)) = (self.any_running(), self.last_start) {
            let earliest = last + self.prefs.late_attempt_delay - self.start;
            attempt.delay = attempt.delay.max(earliest);
        }
        self.attempts.push(attempt);
        self.poll(now)
    }

    /// Whether attempts may still be [added](Race::add). While they may,
    /// the race is not lost when everything so far failed; saying no more
    /// will come may lose it at once.
    pub fn expect_more(&mut self, more: bool, now: Instant) -> Vec<Action> {
        self.more_coming = more;
        self.poll(now)
    }

    /// Whether the race is decided (won or lost).
    pub fn is_decided(&self) -> bool {
        self.winner.is_some() || self.lost
    }

    /// The winner, once there is one.
    pub fn winner(&self) -> Option<AttemptId> {
        self.winner
    }

    /// The candidate of `attempt`.
    pub fn candidate(&self, attempt: AttemptId) -> u32 {
        self.attempts[attempt].candidate
    }

    /// Whether `attempt` is TCP (QUIC otherwise).
    pub fn is_tcp(&self, attempt: AttemptId) -> bool {
        self.attempts[attempt].tcp
    }

    /// Advances the clock: starts what is due.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.is_decided() {
            return actions;
        }
        self.start_due(now, &mut actions);
        self.check_lost(&mut actions);
        actions
    }

    /// When [`Race::poll`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.is_decided() {
            return None;
        }
        let next_start = self
            .attempts
            .iter()
            .filter(|a| a.state == State::Pending)
            .map(|a| self.start + a.delay)
            .min();
        let next_twin = self
            .attempts
            .iter()
            .filter(|a| self.wants_twin(a))
            .filter_map(|a| match a.state {
                State::Running { since, .. } => Some(since + self.prefs.syn_retry),
                _ => None,
            })
            .min();
        let next = match (next_start, next_twin) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(match self.last_start {
            Some(last) => next.max(last + self.prefs.min_spacing),
            None => next,
        })
    }

    /// Attempt `attempt`'s transport handshake completed (TCP connected);
    /// it is not usable yet (TLS runs), but needs no syn-retry twin.
    pub fn on_transport_up(&mut self, attempt: AttemptId) {
        if let State::Running { transport_up, .. } = &mut self.attempts[attempt].state {
            *transport_up = true;
        }
    }

    /// Attempt `attempt` connected at `now`.
    pub fn on_connected(&mut self, attempt: AttemptId, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let a = &mut self.attempts[attempt];
        match a.state {
            State::Running { .. } if self.winner.is_none() => {
                a.state = State::Done(Outcome::Won);
                a.ended = Some(now);
                self.winner = Some(attempt);
                actions.push(Action::Won(attempt));
                self.settle_others(attempt, now, &mut actions);
            }
            State::Running { .. } | State::Kept => {
                a.state = State::Done(Outcome::ConnectedLate);
                a.ended = Some(now);
            }
            _ => {}
        }
        actions
    }

    /// Attempt `attempt` failed at `now`.
    pub fn on_failed(&mut self, attempt: AttemptId, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let a = &mut self.attempts[attempt];
        if matches!(a.state, State::Running { .. } | State::Kept) {
            a.state = State::Done(Outcome::Failed);
            a.ended = Some(now);
        }
        if self.is_decided() {
            return actions;
        }
        // Nothing running any more: the next attempt need not wait for its
        // delay (only for the minimum spacing).
        if !self.any_running() {
            if let Some(next) = self.next_pending() {
                let a = &mut self.attempts[next];
                a.delay = a.delay.min(now.saturating_duration_since(self.start));
            }
        }
        self.start_due(now, &mut actions);
        self.check_lost(&mut actions);
        actions
    }

    /// How each attempt went.
    pub fn summary(&self) -> Vec<AttemptSummary> {
        self.attempts
            .iter()
            .enumerate()
            .map(|(i, a)| AttemptSummary {
                attempt: i,
                candidate: a.candidate,
                twin: a.twin_of.is_some(),
                tcp: a.tcp,
                started: a.started.map(|s| s - self.start),
                elapsed: a.started.zip(a.ended).map(|(s, e)| e - s),
                outcome: match a.state {
                    State::Pending => Outcome::NotStarted,
                    State::Running { .. } | State::Kept => Outcome::Cancelled,
                    State::Done(o) => o,
                },
            })
            .collect()
    }

    fn any_running(&self) -> bool {
        self.attempts
            .iter()
            .any(|a| matches!(a.state, State::Running { .. }))
    }

    /// The pending attempt to start next: smallest delay, then plan order.
    fn next_pending(&self) -> Option<AttemptId> {
        (0..self.attempts.len())
            .filter(|&i| self.attempts[i].state == State::Pending)
            .min_by_key(|&i| (self.attempts[i].delay, i))
    }

    fn wants_twin(&self, a: &Attempt) -> bool {
        self.prefs.syn_retry_enabled
            && a.tcp
            && !a.twinned
            && a.twin_of.is_none()
            && matches!(
                a.state,
                State::Running {
                    transport_up: false,
                    ..
                }
            )
    }

    fn spaced(&self, now: Instant) -> bool {
        self.last_start
            .is_none_or(|last| now >= last + self.prefs.min_spacing)
    }

    fn launch(&mut self, i: AttemptId, now: Instant, actions: &mut Vec<Action>) {
        self.last_start = Some(now);
        let a = &mut self.attempts[i];
        a.state = State::Running {
            since: now,
            transport_up: false,
        };
        a.started = Some(now);
        actions.push(Action::Start {
            attempt: i,
            candidate: a.candidate,
            twin_of: a.twin_of,
        });
    }

    /// Starts at most one attempt (the minimum spacing allows no more at
    /// one instant): a twin that is due first, else the next planned one.
    fn start_due(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if !self.spaced(now) {
            return;
        }
        let twin_due = (0..self.attempts.len()).find(|&i| {
            let a = &self.attempts[i];
            self.wants_twin(a)
                && matches!(a.state, State::Running { since, .. } if since + self.prefs.syn_retry <= now)
        });
        if let Some(i) = twin_due {
            self.attempts[i].twinned = true;
            let twin = Attempt {
                candidate: self.attempts[i].candidate,
                delay: now - self.start,
                tcp: true,
                twin_of: Some(i),
                twinned: true,
                state: State::Pending,
                started: None,
                ended: None,
            };
            self.attempts.push(twin);
            let id = self.attempts.len() - 1;
            self.launch(id, now, actions);
            return;
        }
        if let Some(i) = self
            .next_pending()
            .filter(|&i| self.start + self.attempts[i].delay <= now)
        {
            self.launch(i, now, actions);
        }
    }

    fn settle_others(&mut self, winner: AttemptId, now: Instant, actions: &mut Vec<Action>) {
        let twin_pair = |a: &Attempt, i: AttemptId| {
            a.twin_of == Some(winner) || self.attempts[winner].twin_of == Some(i)
        };
        let decisions: Vec<(AttemptId, bool)> = self
            .attempts
            .iter()
            .enumerate()
            .filter(|(i, a)| *i != winner && matches!(a.state, State::Running { .. }))
            .map(|(i, a)| (i, twin_pair(a, i)))
            .collect();
        for (i, keep) in decisions {
            if keep {
                self.attempts[i].state = State::Kept;
                actions.push(Action::Keep(i));
            } else {
                self.attempts[i].state = State::Done(Outcome::Cancelled);
                self.attempts[i].ended = Some(now);
                actions.push(Action::Cancel(i));
            }
        }
    }

    fn check_lost(&mut self, actions: &mut Vec<Action>) {
        let all_failed = self
            .attempts
            .iter()
            .all(|a| a.state == State::Done(Outcome::Failed));
        if all_failed && !self.lost && !self.more_coming {
            self.lost = true;
            actions.push(Action::Lost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn tcp(candidate: u32, delay: u64) -> PlannedAttempt {
        PlannedAttempt {
            candidate,
            delay: ms(delay),
            tcp: true,
        }
    }

    fn starts(actions: &[Action]) -> Vec<(AttemptId, u32, Option<AttemptId>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Start {
                    attempt,
                    candidate,
                    twin_of,
                } => Some((*attempt, *candidate, *twin_of)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn attempts_start_at_their_delays_and_the_first_to_connect_wins() {
        let t0 = Instant::now();
        let mut r = Race::new(
            &[tcp(1, 0), tcp(2, 250)],
            RacePrefs {
                syn_retry_enabled: false,
                ..RacePrefs::default()
            },
            t0,
        );
        assert_eq!(starts(&r.poll(t0)), vec![(0, 1, None)]);
        assert_eq!(r.next_deadline(), Some(t0 + ms(250)));
        assert!(r.poll(t0 + ms(100)).is_empty());
        assert_eq!(starts(&r.poll(t0 + ms(250))), vec![(1, 2, None)]);
        let a = r.on_connected(1, t0 + ms(260));
        assert_eq!(a, vec![Action::Won(1), Action::Cancel(0)]);
        assert_eq!(r.winner(), Some(1));
        assert_eq!(r.next_deadline(), None);
        let s = r.summary();
        assert_eq!(s[0].outcome, Outcome::Cancelled);
        assert_eq!(s[1].outcome, Outcome::Won);
        assert_eq!(s[1].started, Some(ms(250)));
        assert_eq!(s[1].elapsed, Some(ms(10)));
    }

    #[test]
    fn a_failure_starts_the_next_attempt_at_once() {
        let t0 = Instant::now();
        let mut r = Race::new(
            &[tcp(1, 0), tcp(2, 250), tcp(3, 500)],
            RacePrefs::default(),
            t0,
        );
        r.poll(t0);
        let a = r.on_failed(0, t0 + ms(20));
        assert_eq!(starts(&a), vec![(1, 2, None)]);
        let a = r.on_failed(1, t0 + ms(30));
        assert_eq!(starts(&a), vec![(2, 3, None)]);
        let a = r.on_failed(2, t0 + ms(40));
        assert_eq!(a, vec![Action::Lost]);
        assert!(r.is_decided());
    }

    #[test]
    fn syn_retry_starts_a_twin_and_the_twin_can_win() {
        let t0 = Instant::now();
        let mut r = Race::new(&[tcp(7, 0)], RacePrefs::default(), t0);
        r.poll(t0);
        assert_eq!(r.next_deadline(), Some(t0 + ms(250)));
        assert!(r.poll(t0 + ms(249)).is_empty());
        // The first SYN was dropped: at 250 ms a twin goes to the same address.
        assert_eq!(starts(&r.poll(t0 + ms(250))), vec![(1, 7, Some(0))]);
        // Only one twin per attempt, and twins get none.
        assert!(r.poll(t0 + ms(600)).is_empty());
        let a = r.on_connected(1, t0 + ms(251));
        // The original may still connect (its SYN retransmits): keep it for the pool.
        assert_eq!(a, vec![Action::Won(1), Action::Keep(0)]);
        assert!(r.on_connected(0, t0 + ms(1000)).is_empty());
        let s = r.summary();
        assert_eq!(s[0].outcome, Outcome::ConnectedLate);
        assert!(s[1].twin);
    }

    #[test]
    fn a_twin_failing_does_not_lose_while_the_original_runs() {
        let t0 = Instant::now();
        let mut r = Race::new(&[tcp(7, 0)], RacePrefs::default(), t0);
        r.poll(t0);
        r.poll(t0 + ms(250));
        assert!(r.on_failed(1, t0 + ms(260)).is_empty());
        assert!(!r.is_decided());
        assert_eq!(r.on_connected(0, t0 + ms(1000)), vec![Action::Won(0)]);
    }

    #[test]
    fn quic_attempts_get_no_twin() {
        let t0 = Instant::now();
        let mut r = Race::new(
            &[PlannedAttempt {
                candidate: 1,
                delay: ms(0),
                tcp: false,
            }],
            RacePrefs::default(),
            t0,
        );
        r.poll(t0);
        assert!(r.poll(t0 + ms(1000)).is_empty());
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn no_two_attempts_start_within_the_minimum_spacing() {
        let t0 = Instant::now();
        // The plan asks for three at once; they go 10 ms apart.
        let mut r = Race::new(&[tcp(1, 0), tcp(2, 0), tcp(3, 0)], RacePrefs::default(), t0);
        assert_eq!(starts(&r.poll(t0)), vec![(0, 1, None)]);
        assert_eq!(r.next_deadline(), Some(t0 + ms(10)));
        assert!(r.poll(t0 + ms(9)).is_empty());
        assert_eq!(starts(&r.poll(t0 + ms(10))), vec![(1, 2, None)]);
        // A failure does not skip the spacing either.
        assert!(starts(&r.on_failed(0, t0 + ms(12))).is_empty());
        assert_eq!(r.next_deadline(), Some(t0 + ms(20)));
        assert_eq!(starts(&r.poll(t0 + ms(20))), vec![(2, 3, None)]);
    }

    #[test]
    fn a_failure_waits_only_for_the_spacing_when_nothing_runs() {
        let t0 = Instant::now();
        let mut r = Race::new(&[tcp(1, 0), tcp(2, 250)], RacePrefs::default(), t0);
        r.poll(t0);
        // Refused after 3 ms: the next may start at 10 ms, not 250 ms.
        assert!(r.on_failed(0, t0 + ms(3)).is_empty());
        assert_eq!(r.next_deadline(), Some(t0 + ms(10)));
        assert_eq!(starts(&r.poll(t0 + ms(10))), vec![(1, 2, None)]);
    }

    #[test]
    fn tls_still_running_neither_wins_nor_gets_a_twin() {
        let t0 = Instant::now();
        let mut r = Race::new(&[tcp(1, 0), tcp(2, 250)], RacePrefs::default(), t0);
        r.poll(t0);
        // TCP is up at 5 ms, but TLS stalls: no twin at 250 ms, and the
        // second attempt still starts at its delay.
        r.on_transport_up(0);
        assert_eq!(starts(&r.poll(t0 + ms(250))), vec![(1, 2, None)]);
        assert_eq!(
            r.on_connected(1, t0 + ms(300)),
            vec![Action::Won(1), Action::Cancel(0)]
        );
    }

    #[test]
    fn attempts_added_later_join_the_race_and_keep_it_alive() {
        let t0 = Instant::now();
        let mut r = Race::new(&[tcp(1, 0)], RacePrefs::default(), t0);
        r.expect_more(true, t0);
        r.poll(t0);
        // The only attempt fails, but an answer is still outstanding.
        assert!(r.on_failed(0, t0 + ms(5)).is_empty());
        assert!(!r.is_decided());
        let a = r.add(
            PlannedAttempt {
                candidate: 9,
                delay: ms(40),
                tcp: true,
            },
            t0 + ms(40),
        );
        assert_eq!(starts(&a), vec![(1, 9, None)]);
        assert!(r.expect_more(false, t0 + ms(41)).is_empty());
        assert_eq!(r.on_failed(1, t0 + ms(50)), vec![Action::Lost]);
    }

    #[test]
    fn an_attempt_added_while_others_run_keeps_the_attempt_delay() {
        let t0 = Instant::now();
        let mut r = Race::new(&[tcp(1, 0)], RacePrefs::default(), t0);
        r.expect_more(true, t0);
        r.poll(t0);
        // A late answer at 12 ms, planned "at once": it waits until 250 ms
        // after the running attempt's start.
        let late = PlannedAttempt {
            candidate: 2,
            delay: ms(12),
            tcp: true,
        };
        assert!(starts(&r.add(late, t0 + ms(12))).is_empty());
        assert_eq!(r.next_deadline(), Some(t0 + ms(250)));
    }

    #[test]
    fn no_more_coming_after_everything_failed_loses() {
        let t0 = Instant::now();
        let mut r = Race::new(&[tcp(1, 0)], RacePrefs::default(), t0);
        r.expect_more(true, t0);
        r.poll(t0);
        assert!(r.on_failed(0, t0 + ms(5)).is_empty());
        assert_eq!(r.expect_more(false, t0 + ms(60)), vec![Action::Lost]);
    }

    #[test]
    fn an_empty_plan_is_lost() {
        let t0 = Instant::now();
        let mut r = Race::new(&[], RacePrefs::default(), t0);
        assert_eq!(r.poll(t0), vec![Action::Lost]);
    }
}
