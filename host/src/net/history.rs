//! How connections to each origin went on the current network, which the
//! connect policy plans with, and what a finished race teaches. Sans-IO:
//! it takes the race's summary and `now`, and returns the reports for the
//! policy.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use super::plan::{AttemptReport, HistoryEntry, ReportedOutcome, Transport};
use super::pool::OriginKey;
use super::race::{AttemptSummary, Outcome};

/// Origins whose history is kept; past it the history starts over (the
/// policy then plans with defaults, which is always safe).
pub const MAX_HISTORY_ORIGINS: usize = 4096;

/// Connection history per origin, for one network.
#[derive(Debug, Default)]
pub struct History {
    /// Invariant: at most [`MAX_HISTORY_ORIGINS`] origins.
    entries: HashMap<OriginKey, Vec<HistoryEntry>>,
    /// Origins planned since the last network change (`None`: no change
    /// since the host started). Invariant: at most [`MAX_HISTORY_ORIGINS`].
    planned_on_network: Option<HashSet<OriginKey>>,
}

impl History {
    /// What is known about `origin`.
    pub fn of(&self, origin: &OriginKey) -> Vec<HistoryEntry> {
        self.entries.get(origin).cloned().unwrap_or_default()
    }

    /// The network changed: what was learned described another path.
    pub fn network_changed(&mut self) {
        self.entries.clear();
        self.planned_on_network = Some(HashSet::new());
    }

    /// Whether this is `origin`'s first plan since a network change (it is
    /// then counted as planned).
    pub fn first_plan_on_new_network(&mut self, origin: &OriginKey) -> bool {
        let Some(set) = self.planned_on_network.as_mut() else {
            return false;
        };
        if set.len() >= MAX_HISTORY_ORIGINS {
            set.clear();
        }
        set.insert(origin.clone())
    }

    /// Learns from a finished race (`endpoints`: candidate id → address)
    /// and returns what to report to the policy, one report per attempt
    /// other than syn-retry twins.
    ///
    /// An attempt that had started when the winner began and was still
    /// silent when it won was outpaced: QUIC beaten by TCP (the path may
    /// drop UDP), or IPv6 beaten by IPv4 (IPv6 may be broken here), as
    /// HEv3 has it. It counts as a failure, and is reported as timed out,
    /// so the next plan can lead with the winner's kind.
    pub fn learn(
        &mut self,
        origin: &OriginKey,
        summary: &[AttemptSummary],
        endpoints: &HashMap<u32, SocketAddr>,
        now_us: u64,
    ) -> Vec<AttemptReport> {
        let winner = summary.iter().find(|a| a.outcome == Outcome::Won);
        let is_v6 = |a: &AttemptSummary| endpoints[&a.candidate].is_ipv6();
        let outpaced = |a: &AttemptSummary| outpaced(a, winner, is_v6);
        if self.entries.len() >= MAX_HISTORY_ORIGINS && !self.entries.contains_key(origin) {
            self.entries.clear();
        }
        let h = self.entries.entry(origin.clone()).or_default();
        for a in summary.iter().filter(|a| a.started.is_some()) {
            let e = entry(h, transport(a), is_v6(a));
            match a.outcome {
                Outcome::Won | Outcome::ConnectedLate => {
                    e.successes = e.successes.saturating_add(1);
                    e.last_connect_time = a.elapsed;
                }
                Outcome::Failed => e.failures = e.failures.saturating_add(1),
                _ if outpaced(a) => e.failures = e.failures.saturating_add(1),
                _ => {}
            }
            e.last_attempt = Some(now_us);
        }
        summary
            .iter()
            .filter(|a| !a.twin)
            .map(|a| AttemptReport {
                candidate: a.candidate,
                outcome: match a.outcome {
                    _ if outpaced(a) => ReportedOutcome::TimedOut,
                    Outcome::Won => ReportedOutcome::Connected,
                    Outcome::ConnectedLate => ReportedOutcome::ConnectedLate,
                    Outcome::Failed => ReportedOutcome::Failed("connection failed".into()),
                    Outcome::Cancelled => ReportedOutcome::Cancelled,
                    Outcome::NotStarted => ReportedOutcome::NotStarted,
                },
                elapsed: a.elapsed.unwrap_or_default(),
            })
            .collect()
    }
}

/// Whether `a` was cancelled while silent, having started no later than
/// the winner, which was of a preferred kind (QUIC lost to TCP, or IPv6 to
/// IPv4).
fn outpaced(
    a: &AttemptSummary,
    winner: Option<&AttemptSummary>,
    is_v6: impl Fn(&AttemptSummary) -> bool,
) -> bool {
    let Some(w) = winner else { return false };
    a.outcome == Outcome::Cancelled
        && matches!((a.started, w.started), (Some(s), Some(ws)) if s <= ws)
        && ((!a.tcp && w.tcp) || (is_v6(a) && !is_v6(w)))
}

fn transport(a: &AttemptSummary) -> Transport {
    if a.tcp {
        Transport::Tcp
    } else {
        Transport::Quic
    }
}

/// The entry for one kind of attempt, made when first needed.
fn entry(h: &mut Vec<HistoryEntry>, transport: Transport, ipv6: bool) -> &mut HistoryEntry {
    let i = match h
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
    &mut h[i]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::race::AttemptId;
    use std::time::Duration;

    fn origin() -> OriginKey {
        OriginKey {
            scheme: "https".into(),
            host: "www.test".into(),
            port: 443,
        }
    }

    fn attempt(id: u32, tcp: bool, started_ms: Option<u64>, outcome: Outcome) -> AttemptSummary {
        AttemptSummary {
            attempt: id as AttemptId,
            candidate: id,
            twin: false,
            tcp,
            started: started_ms.map(Duration::from_millis),
            elapsed: started_ms.map(|_| Duration::from_millis(5)),
            outcome,
        }
    }

    fn endpoints(v6: &[u32], all: u32) -> HashMap<u32, SocketAddr> {
        (0..all)
            .map(|id| {
                let addr = if v6.contains(&id) {
                    "[::1]:443"
                } else {
                    "127.0.0.1:443"
                };
                (id, addr.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn quic_outpaced_by_tcp_counts_as_a_failure_and_is_reported_timed_out() {
        let mut h = History::default();
        let summary = [
            attempt(0, false, Some(0), Outcome::Cancelled),
            attempt(1, true, Some(50), Outcome::Won),
        ];
        let reports = h.learn(&origin(), &summary, &endpoints(&[], 2), 7);
        assert_eq!(reports[0].outcome, ReportedOutcome::TimedOut);
        assert_eq!(reports[1].outcome, ReportedOutcome::Connected);
        let entries = h.of(&origin());
        let quic = entries
            .iter()
            .find(|e| e.transport == Transport::Quic)
            .unwrap();
        assert_eq!((quic.successes, quic.failures), (0, 1));
        let tcp = entries
            .iter()
            .find(|e| e.transport == Transport::Tcp)
            .unwrap();
        assert_eq!((tcp.successes, tcp.failures), (1, 0));
        assert_eq!(tcp.last_connect_time, Some(Duration::from_millis(5)));
        assert_eq!(tcp.last_attempt, Some(7));
    }

    #[test]
    fn ipv6_outpaced_by_ipv4_counts_but_a_later_start_does_not() {
        let mut h = History::default();
        let summary = [
            attempt(0, true, Some(0), Outcome::Cancelled),
            attempt(1, true, Some(250), Outcome::Won),
            // Started after the winner: not outpaced, just cancelled.
            attempt(2, true, Some(300), Outcome::Cancelled),
        ];
        let reports = h.learn(&origin(), &summary, &endpoints(&[0, 2], 3), 0);
        let outcomes: Vec<_> = reports.iter().map(|r| r.outcome.clone()).collect();
        assert_eq!(
            outcomes,
            vec![
                ReportedOutcome::TimedOut,
                ReportedOutcome::Connected,
                ReportedOutcome::Cancelled
            ]
        );
        let v6 = h.of(&origin()).into_iter().find(|e| e.ipv6).unwrap();
        assert_eq!((v6.successes, v6.failures), (0, 1));
    }

    #[test]
    fn twins_are_learned_from_but_not_reported_and_unstarted_attempts_not_learned() {
        let mut h = History::default();
        let mut twin = attempt(1, true, Some(250), Outcome::Failed);
        twin.twin = true;
        let summary = [
            attempt(0, true, Some(0), Outcome::Won),
            twin,
            attempt(2, false, None, Outcome::NotStarted),
        ];
        let reports = h.learn(&origin(), &summary, &endpoints(&[], 3), 0);
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[1].outcome, ReportedOutcome::NotStarted);
        let entries = h.of(&origin());
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!((entries[0].successes, entries[0].failures), (1, 1));
    }

    #[test]
    fn a_network_change_forgets_and_flags_each_origins_first_plan() {
        let mut h = History::default();
        assert!(!h.first_plan_on_new_network(&origin()));
        h.learn(
            &origin(),
            &[attempt(0, true, Some(0), Outcome::Won)],
            &endpoints(&[], 1),
            0,
        );
        h.network_changed();
        assert!(h.of(&origin()).is_empty());
        assert!(h.first_plan_on_new_network(&origin()));
        assert!(!h.first_plan_on_new_network(&origin()));
    }
}
