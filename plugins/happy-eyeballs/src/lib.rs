//! `happy-eyeballs`: a connect policy with RFC 8305 defaults that races
//! QUIC ahead of TCP and learns, per origin, from each race's outcome.
//!
//! It leads with QUIC when the origin offers it (HTTPS record or Alt-Svc),
//! gives TCP a 50 ms head start behind it, prefers IPv6 with a 250 ms
//! connection attempt delay, and never starts two attempts within 10 ms.
//! After a race where QUIC failed and TCP won (a UDP black hole), it leads
//! with TCP for that origin; after a race where IPv6 failed and IPv4 won, it
//! leads with IPv4. A network change forgets all of that.

use std::collections::BTreeMap;

use sockhost_sdk::connect::{
    AttemptPlan, AttemptReport, Candidate, ConnectPolicy, ConnectRequest, Outcome,
};
use sockhost_sdk::types::{Origin, Transport};

mod plan;

use plan::Learned;

/// Origins remembered; beyond this the oldest knowledge is forgotten (a
/// forgotten origin is planned with the defaults, which is always safe).
const MAX_ORIGINS: usize = 4096;

#[derive(Debug, Default)]
struct HappyEyeballs {
    learned: BTreeMap<String, Learned>,
}

impl HappyEyeballs {
    fn learn(&mut self, origin: &Origin, candidates: &[Candidate], reports: &[AttemptReport]) {
        let find = |id: u32| candidates.iter().find(|c| c.id == id);
        let won =
            |r: &&AttemptReport| matches!(r.outcome, Outcome::Connected | Outcome::ConnectedLate);
        let lost = |r: &&AttemptReport| matches!(r.outcome, Outcome::Failed(_) | Outcome::TimedOut);
        let kind =
            |r: &AttemptReport| find(r.candidate).map(|c| (c.transport, c.address.ip.is_ipv6()));
        let any = |pred: &dyn Fn(&&AttemptReport) -> bool,
                   want: &dyn Fn((Transport, bool)) -> bool| {
            reports
                .iter()
                .filter(pred)
                .any(|r| kind(r).is_some_and(want))
        };
        let key = origin.to_url_prefix();
        let mut l = self.learned.get(&key).copied().unwrap_or_default();
        if any(&won, &|(t, _)| t == Transport::Quic) {
            l.quic_blackholed = false;
        } else if any(&lost, &|(t, _)| t == Transport::Quic)
            && any(&won, &|(t, _)| t == Transport::Tcp)
        {
            l.quic_blackholed = true;
        }
        if any(&won, &|(_, v6)| v6) {
            l.ipv6_broken = false;
        } else if any(&lost, &|(_, v6)| v6) && any(&won, &|(_, v6)| !v6) {
            l.ipv6_broken = true;
        }
        if l == Learned::default() {
            self.learned.remove(&key);
        } else {
            if self.learned.len() >= MAX_ORIGINS && !self.learned.contains_key(&key) {
                self.learned.pop_first();
            }
            self.learned.insert(key, l);
        }
    }
}

impl ConnectPolicy for HappyEyeballs {
    fn new() -> Self {
        HappyEyeballs::default()
    }

    fn plan(&mut self, request: &ConnectRequest) -> AttemptPlan {
        if request.network_changed {
            self.learned.clear();
        }
        let learned = self
            .learned
            .get(&request.origin.to_url_prefix())
            .copied()
            .unwrap_or_default();
        plan::plan(request, learned)
    }

    fn report(&mut self, origin: &Origin, candidates: &[Candidate], reports: &[AttemptReport]) {
        self.learn(origin, candidates, reports);
    }
}

sockhost_sdk::register!(connect: HappyEyeballs);

#[cfg(test)]
mod tests {
    use super::*;

    fn report(candidate: u32, outcome: Outcome) -> AttemptReport {
        AttemptReport {
            candidate,
            outcome,
            elapsed: 1000,
        }
    }

    fn first(p: &AttemptPlan) -> u32 {
        p.attempts[0].candidate
    }

    #[test]
    fn learns_a_udp_black_hole_and_recovers() {
        let mut he = HappyEyeballs::new();
        let cands = vec![
            plan::tests::cand(1, Transport::Tcp, true),
            plan::tests::cand(2, Transport::Quic, true),
        ];
        let req = plan::tests::request(cands.clone(), vec![]);
        assert_eq!(first(&he.plan(&req)), 2, "QUIC leads at first");
        he.report(
            &req.origin,
            &cands,
            &[report(2, Outcome::TimedOut), report(1, Outcome::Connected)],
        );
        assert_eq!(first(&he.plan(&req)), 1, "TCP leads after the black hole");
        // QUIC working again restores the lead.
        he.report(
            &req.origin,
            &cands,
            &[report(2, Outcome::Connected), report(1, Outcome::Cancelled)],
        );
        assert_eq!(first(&he.plan(&req)), 2);
        // A network change forgets.
        he.report(
            &req.origin,
            &cands,
            &[report(2, Outcome::TimedOut), report(1, Outcome::Connected)],
        );
        let mut changed = req.clone();
        changed.network_changed = true;
        assert_eq!(first(&he.plan(&changed)), 2);
        assert!(he.learned.is_empty());
    }

    #[test]
    fn learns_broken_ipv6() {
        let mut he = HappyEyeballs::new();
        let cands = vec![
            plan::tests::cand(1, Transport::Tcp, true),
            plan::tests::cand(2, Transport::Tcp, false),
        ];
        let req = plan::tests::request(cands.clone(), vec![]);
        assert_eq!(first(&he.plan(&req)), 1);
        he.report(
            &req.origin,
            &cands,
            &[
                report(1, Outcome::Failed("unreachable".into())),
                report(2, Outcome::Connected),
            ],
        );
        assert_eq!(first(&he.plan(&req)), 2);
    }

    #[test]
    fn memory_is_bounded() {
        let mut he = HappyEyeballs::new();
        let cands = vec![
            plan::tests::cand(1, Transport::Tcp, true),
            plan::tests::cand(2, Transport::Quic, true),
        ];
        for i in 0..MAX_ORIGINS + 5 {
            let mut req = plan::tests::request(cands.clone(), vec![]);
            req.origin.host = format!("h{i}.test");
            he.report(
                &req.origin,
                &cands,
                &[report(2, Outcome::TimedOut), report(1, Outcome::Connected)],
            );
        }
        assert_eq!(he.learned.len(), MAX_ORIGINS);
    }
}
