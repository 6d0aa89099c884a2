//! The built-in connection plan (RFC 8305 defaults): used when no
//! connect-policy plugin is configured, or when it faults and fails open.

use std::time::Duration;

use super::plan::{
    Attempt, Candidate, ConnectPolicy, ConnectRequest, HistoryEntry, Plan, PolicyFault, Transport,
};

/// Connection Attempt Delay (RFC 8305 section 5): the head start each
/// attempt gets over the next.
pub const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Head start QUIC gets over TCP when both are candidates.
pub const QUIC_HEAD_START: Duration = Duration::from_millis(50);

/// The built-in policy: [`builtin_plan`], learning nothing beyond the
/// history the dialer keeps.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinPolicy;

/// The name the built-in policy is reported by.
pub const BUILTIN: &str = "builtin";

impl ConnectPolicy for BuiltinPolicy {
    fn name(&self) -> &str {
        BUILTIN
    }

    fn blocks(&self) -> bool {
        false
    }

    fn plan(&self, request: &ConnectRequest) -> Result<Plan, PolicyFault> {
        Ok(builtin_plan(&request.candidates, &request.history))
    }
}

fn is_v6(c: &Candidate) -> bool {
    c.addr.is_ipv6()
}

/// Interleaves address families, IPv6 first (First Address Family Count 1).
fn interleave(cands: Vec<&Candidate>) -> Vec<&Candidate> {
    let (mut v6, mut v4): (Vec<_>, Vec<_>) = cands.into_iter().partition(|c| is_v6(c));
    v6.reverse();
    v4.reverse();
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    loop {
        match (v6.pop(), v4.pop()) {
            (None, None) => break,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
    out
}

/// Whether QUIC attempts to this origin have failed and never connected.
fn quic_broken(history: &[HistoryEntry]) -> bool {
    let (ok, bad) = history
        .iter()
        .filter(|h| h.transport == Transport::Quic)
        .fold((0u64, 0u64), |(o, b), h| {
            (o + u64::from(h.successes), b + u64::from(h.failures))
        });
    bad > 0 && ok == 0
}

/// Plans attempts: QUIC candidates first (each transport interleaving IPv6
/// and IPv4, HTTPS-record priority first), TCP starting 50 ms after the first
/// QUIC attempt, successive attempts of a transport 250 ms apart. When the
/// origin's history says QUIC never connects, TCP leads and QUIC follows.
pub fn builtin_plan(candidates: &[Candidate], history: &[HistoryEntry]) -> Plan {
    let by_priority = |t: Transport| {
        let mut c: Vec<&Candidate> = candidates.iter().filter(|c| c.transport == t).collect();
        // Priority 0 means "not from an HTTPS record": after the ranked ones.
        c.sort_by_key(|c| {
            if c.priority == 0 {
                u32::MAX
            } else {
                u32::from(c.priority)
            }
        });
        interleave(c)
    };
    let quic = by_priority(Transport::Quic);
    let tcp = by_priority(Transport::Tcp);
    // QUIC leads unless this origin's history says it never connects here
    // (a UDP black hole); then TCP leads and QUIC follows after the head
    // start, so a path that heals is noticed.
    let (lead, follow) = if quic_broken(history) {
        (tcp, quic)
    } else {
        (quic, tcp)
    };
    let mut attempts = Vec::with_capacity(candidates.len());
    let follow_start = if lead.is_empty() {
        Duration::ZERO
    } else {
        QUIC_HEAD_START
    };
    for (i, c) in lead.iter().enumerate() {
        attempts.push(Attempt {
            candidate: c.id,
            delay: CONNECTION_ATTEMPT_DELAY * i as u32,
        });
    }
    for (i, c) in follow.iter().enumerate() {
        attempts.push(Attempt {
            candidate: c.id,
            delay: follow_start + CONNECTION_ATTEMPT_DELAY * i as u32,
        });
    }
    attempts.sort_by_key(|a| a.delay);
    Plan { attempts }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: u32, transport: Transport, v6: bool) -> Candidate {
        let addr = if v6 { "[::1]:443" } else { "127.0.0.1:443" };
        Candidate::plain(id, addr.parse().unwrap(), transport)
    }

    #[test]
    fn plans_quic_first_and_interleaves_families() {
        let cands = [
            cand(1, Transport::Tcp, false),
            cand(2, Transport::Tcp, false),
            cand(3, Transport::Tcp, true),
            cand(4, Transport::Quic, true),
        ];
        let plan = builtin_plan(&cands, &[]);
        let got: Vec<(u32, u64)> = plan
            .attempts
            .iter()
            .map(|a| (a.candidate, a.delay.as_micros() as u64))
            .collect();
        assert_eq!(got, vec![(4, 0), (3, 50_000), (1, 300_000), (2, 550_000)]);
    }

    #[test]
    fn tcp_only_starts_at_once() {
        let plan = builtin_plan(&[cand(7, Transport::Tcp, false)], &[]);
        assert_eq!(plan.attempts.len(), 1);
        assert_eq!(plan.attempts[0].delay, Duration::ZERO);
    }

    #[test]
    fn a_quic_that_never_connected_here_follows_tcp() {
        let cands = [
            cand(1, Transport::Tcp, false),
            cand(2, Transport::Quic, false),
        ];
        let hist = |successes, failures| HistoryEntry {
            transport: Transport::Quic,
            ipv6: false,
            successes,
            failures,
            last_connect_time: None,
            last_attempt: None,
        };
        let order = |h: &[HistoryEntry]| -> Vec<(u32, u64)> {
            builtin_plan(&cands, h)
                .attempts
                .iter()
                .map(|a| (a.candidate, a.delay.as_micros() as u64))
                .collect()
        };
        assert_eq!(order(&[]), vec![(2, 0), (1, 50_000)]);
        assert_eq!(order(&[hist(0, 1)]), vec![(1, 0), (2, 50_000)]);
        // It worked before on this network: a failure is not a black hole.
        assert_eq!(order(&[hist(3, 1)]), vec![(2, 0), (1, 50_000)]);
    }
}
