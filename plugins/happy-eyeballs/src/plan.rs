//! Planning: which candidates, in which order, with which delays.

use sockhost_sdk::connect::{Attempt, AttemptPlan, Candidate, ConnectRequest, HistoryEntry};
use sockhost_sdk::types::Transport;

/// RFC 8305 section 5: Connection Attempt Delay, recommended 250 ms.
pub const ATTEMPT_DELAY_US: u64 = 250_000;
/// The head start of the leading transport (QUIC) over the other (TCP).
pub const HEAD_START_US: u64 = 50_000;
/// RFC 8305 section 5: never start two attempts within 10 ms.
pub const MIN_SPACING_US: u64 = 10_000;

/// What this plugin learned about one origin on the current network.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Learned {
    /// QUIC failed while TCP worked: lead with TCP.
    pub quic_blackholed: bool,
    /// IPv6 failed while IPv4 worked: lead with IPv4.
    pub ipv6_broken: bool,
}

/// Whether the host's history says attempts of this kind fail and never
/// succeed.
fn history_says_broken(history: &[HistoryEntry], f: impl Fn(&HistoryEntry) -> bool) -> bool {
    let (ok, bad) = history
        .iter()
        .filter(|h| f(h))
        .fold((0u64, 0u64), |(o, b), h| {
            (o + u64::from(h.successes), b + u64::from(h.failures))
        });
    bad > 0 && ok == 0
}

/// Candidates of one transport in attempt order: grouped by ECH (first),
/// then by HTTPS-record priority (0, meaning none, last), then address
/// families interleaved starting with the preferred one.
fn order(cands: &[Candidate], transport: Transport, prefer_v6: bool) -> Vec<&Candidate> {
    let mut own: Vec<&Candidate> = cands.iter().filter(|c| c.transport == transport).collect();
    let rank = |c: &Candidate| {
        (
            !c.ech,
            if c.priority == 0 {
                u32::MAX
            } else {
                u32::from(c.priority)
            },
        )
    };
    own.sort_by_key(|c| rank(c));
    let mut out = Vec::with_capacity(own.len());
    let mut start = 0;
    while start < own.len() {
        let group_rank = rank(own[start]);
        let end = own[start..]
            .iter()
            .position(|c| rank(c) != group_rank)
            .map_or(own.len(), |n| start + n);
        let (mut first, mut second): (Vec<&Candidate>, Vec<&Candidate>) = own[start..end]
            .iter()
            .partition(|c| c.address.ip.is_ipv6() == prefer_v6);
        first.reverse();
        second.reverse();
        loop {
            match (first.pop(), second.pop()) {
                (None, None) => break,
                (a, b) => out.extend(a.into_iter().chain(b)),
            }
        }
        start = end;
    }
    out
}

/// The plan for `request`, given what was learned about its origin (ignored
/// if the network changed).
pub fn plan(request: &ConnectRequest, learned: Learned) -> AttemptPlan {
    let history: &[HistoryEntry] = if request.network_changed {
        &[]
    } else {
        &request.history
    };
    let learned = if request.network_changed {
        Learned::default()
    } else {
        learned
    };
    let quic_bad =
        learned.quic_blackholed || history_says_broken(history, |h| h.transport == Transport::Quic);
    let v6_bad = learned.ipv6_broken || history_says_broken(history, |h| h.ipv6);
    let prefer_v6 = !v6_bad;

    let quic = order(&request.candidates, Transport::Quic, prefer_v6);
    let tcp = order(&request.candidates, Transport::Tcp, prefer_v6);
    let (lead, follow) = if quic_bad { (tcp, quic) } else { (quic, tcp) };
    let follow_start = if lead.is_empty() { 0 } else { HEAD_START_US };

    let mut attempts: Vec<Attempt> = Vec::with_capacity(request.candidates.len());
    for (i, c) in lead.iter().enumerate() {
        attempts.push(Attempt {
            candidate: c.id,
            delay: i as u64 * ATTEMPT_DELAY_US,
        });
    }
    for (i, c) in follow.iter().enumerate() {
        attempts.push(Attempt {
            candidate: c.id,
            delay: follow_start + i as u64 * ATTEMPT_DELAY_US,
        });
    }
    // Stable: at equal delays the leading transport stays first.
    attempts.sort_by_key(|a| a.delay);
    let mut last: Option<u64> = None;
    for a in &mut attempts {
        if let Some(prev) = last {
            a.delay = a.delay.max(prev + MIN_SPACING_US);
        }
        last = Some(a.delay);
    }
    AttemptPlan { attempts }
}

#[cfg(test)]
pub(crate) mod tests {
    use sockhost_sdk::connect::CandidateSource;
    use sockhost_sdk::types::{IpAddress, Origin, SocketAddress};

    use super::*;

    pub(crate) fn cand(id: u32, transport: Transport, v6: bool) -> Candidate {
        Candidate {
            id,
            transport,
            address: SocketAddress {
                ip: if v6 {
                    IpAddress::Ipv6((0x2001, 0xdb8, 0, 0, 0, 0, 0, id as u16))
                } else {
                    IpAddress::Ipv4((192, 0, 2, id as u8))
                },
                port: 443,
            },
            alpn: vec![if transport == Transport::Quic {
                "h3"
            } else {
                "h2"
            }
            .into()],
            source: if v6 {
                CandidateSource::Aaaa
            } else {
                CandidateSource::A
            },
            priority: 0,
            ech: false,
        }
    }

    pub(crate) fn request(
        candidates: Vec<Candidate>,
        history: Vec<HistoryEntry>,
    ) -> ConnectRequest {
        ConnectRequest {
            origin: Origin {
                scheme: "https".into(),
                host: "example.test".into(),
                port: 443,
            },
            candidates,
            history,
            network_changed: false,
            now: 0,
        }
    }

    fn delays(p: &AttemptPlan) -> Vec<(u32, u64)> {
        p.attempts.iter().map(|a| (a.candidate, a.delay)).collect()
    }

    fn hist(transport: Transport, ipv6: bool, successes: u32, failures: u32) -> HistoryEntry {
        HistoryEntry {
            transport,
            ipv6,
            successes,
            failures,
            last_connect_time: None,
            last_attempt: None,
        }
    }

    #[test]
    fn quic_leads_tcp_follows_after_its_head_start() {
        let r = request(
            vec![
                cand(1, Transport::Tcp, false),
                cand(2, Transport::Tcp, true),
                cand(3, Transport::Quic, true),
                cand(4, Transport::Quic, false),
            ],
            vec![],
        );
        assert_eq!(
            delays(&plan(&r, Learned::default())),
            vec![(3, 0), (2, 50_000), (4, 250_000), (1, 300_000)]
        );
    }

    #[test]
    fn families_interleave_ipv6_first() {
        let r = request(
            vec![
                cand(1, Transport::Tcp, false),
                cand(2, Transport::Tcp, false),
                cand(3, Transport::Tcp, true),
                cand(4, Transport::Tcp, true),
            ],
            vec![],
        );
        assert_eq!(
            delays(&plan(&r, Learned::default())),
            vec![(3, 0), (1, 250_000), (4, 500_000), (2, 750_000)]
        );
    }

    #[test]
    fn a_blackholed_quic_goes_after_tcp() {
        let r = request(
            vec![
                cand(1, Transport::Tcp, true),
                cand(2, Transport::Quic, true),
            ],
            vec![],
        );
        let learned = Learned {
            quic_blackholed: true,
            ipv6_broken: false,
        };
        assert_eq!(delays(&plan(&r, learned)), vec![(1, 0), (2, 50_000)]);
        // The host's history alone says the same.
        let r = request(
            r.candidates.clone(),
            vec![
                hist(Transport::Quic, true, 0, 2),
                hist(Transport::Tcp, true, 3, 0),
            ],
        );
        assert_eq!(
            delays(&plan(&r, Learned::default())),
            vec![(1, 0), (2, 50_000)]
        );
        // A network change forgets both.
        let mut changed = r.clone();
        changed.network_changed = true;
        assert_eq!(delays(&plan(&changed, learned)), vec![(2, 0), (1, 50_000)]);
    }

    #[test]
    fn broken_ipv6_leads_with_ipv4() {
        let r = request(
            vec![
                cand(1, Transport::Tcp, true),
                cand(2, Transport::Tcp, false),
            ],
            vec![hist(Transport::Tcp, true, 0, 1)],
        );
        assert_eq!(
            delays(&plan(&r, Learned::default())),
            vec![(2, 0), (1, 250_000)]
        );
    }

    #[test]
    fn ech_and_priority_group_before_families() {
        let mut a = cand(1, Transport::Tcp, true);
        a.priority = 2;
        let mut b = cand(2, Transport::Tcp, false);
        b.priority = 1;
        let mut c = cand(3, Transport::Tcp, false);
        c.ech = true;
        c.priority = 5;
        let r = request(vec![a, b, c], vec![]);
        assert_eq!(
            delays(&plan(&r, Learned::default())),
            vec![(3, 0), (2, 250_000), (1, 500_000)]
        );
    }

    #[test]
    fn attempts_are_at_least_10ms_apart() {
        // Two transports whose schedules would collide at 250 ms and 300 ms
        // are fine; with a 0 ms head start they would not be.
        let r = request(
            vec![
                cand(1, Transport::Quic, true),
                cand(2, Transport::Tcp, true),
            ],
            vec![],
        );
        let p = plan(&r, Learned::default());
        for w in p.attempts.windows(2) {
            assert!(w[1].delay >= w[0].delay + MIN_SPACING_US);
        }
    }
}
