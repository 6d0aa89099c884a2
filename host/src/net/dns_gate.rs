//! When a connection race may start before every DNS answer is in, sans-IO
//! (draft-ietf-happy-happyeyeballs-v3 §4): AAAA, A and HTTPS are asked
//! together; the race starts once the preferred family (IPv6) and HTTPS
//! have answered, or once the resolution delay has passed since the first
//! answer with addresses — a slow AAAA or HTTPS answer then joins the
//! race late instead of holding it back. HTTPS address hints that match
//! what this host resolved to before may start it before A/AAAA answer.

use std::time::{Duration, Instant};

/// Happy Eyeballs v3's resolution delay.
pub const DEFAULT_RESOLUTION_DELAY: Duration = Duration::from_millis(50);

/// The three queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// IPv6 addresses (the preferred family).
    Aaaa,
    /// IPv4 addresses.
    A,
    /// Service bindings (ALPN, port, hints, ECH).
    Https,
}

/// Whether the race may start yet.
#[derive(Debug, Clone)]
pub struct StartGate {
    /// `None`: wait for every answer.
    delay: Option<Duration>,
    /// Per query: `None` until answered, then whether it brought addresses
    /// (for HTTPS: whether it answered at all counts; the flag is unused).
    aaaa: Option<bool>,
    a: Option<bool>,
    https: Option<bool>,
    /// When the first answer with addresses arrived.
    first_address: Option<Instant>,
    /// HTTPS hints matched known addresses: they stand in for A/AAAA.
    hints_usable: bool,
}

impl StartGate {
    /// A gate waiting `delay` after the first address answer for the
    /// preferred family and HTTPS; `None` waits for every answer.
    pub fn new(delay: Option<Duration>) -> StartGate {
        StartGate {
            delay,
            aaaa: None,
            a: None,
            https: None,
            first_address: None,
            hints_usable: false,
        }
    }

    /// `query` answered at `now`; `addresses` says whether it brought any
    /// (failures and empty answers count as answered without).
    pub fn answered(&mut self, query: Query, addresses: bool, now: Instant) {
        let slot = match query {
            Query::Aaaa => &mut self.aaaa,
            Query::A => &mut self.a,
            Query::Https => &mut self.https,
        };
        *slot = Some(addresses);
        if addresses && query != Query::Https && self.first_address.is_none() {
            self.first_address = Some(now);
        }
    }

    /// The HTTPS answer's address hints match this host's known addresses,
    /// so they may be used before A/AAAA answer.
    pub fn hints_usable(&mut self) {
        self.hints_usable = true;
    }

    /// Whether every query has answered.
    pub fn all_answered(&self) -> bool {
        self.aaaa.is_some() && self.a.is_some() && self.https.is_some()
    }

    /// Whether the race may start at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        if self.all_answered() {
            return true;
        }
        if self.delay.is_none() {
            return false;
        }
        if self.hints_usable {
            return true;
        }
        let have_addresses = self.aaaa == Some(true) || self.a == Some(true);
        if !have_addresses {
            return false;
        }
        // The preferred family said what it has (perhaps nothing) and the
        // service bindings are known: nothing better is coming.
        if self.aaaa.is_some() && self.https.is_some() {
            return true;
        }
        self.deadline().is_some_and(|d| now >= d)
    }

    /// When the gate opens by itself if nothing else answers.
    pub fn deadline(&self) -> Option<Instant> {
        Some(self.first_address? + self.delay?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn aaaa_and_https_open_it_without_waiting_for_a() {
        let t0 = Instant::now();
        let mut g = StartGate::new(Some(ms(50)));
        g.answered(Query::Https, false, t0 + ms(3));
        assert!(!g.ready(t0 + ms(3)));
        g.answered(Query::Aaaa, true, t0 + ms(4));
        assert!(g.ready(t0 + ms(4)));
        assert!(!g.all_answered());
    }

    #[test]
    fn an_early_a_waits_the_resolution_delay_for_aaaa() {
        let t0 = Instant::now();
        let mut g = StartGate::new(Some(ms(50)));
        g.answered(Query::A, true, t0 + ms(2));
        g.answered(Query::Https, false, t0 + ms(3));
        assert_eq!(g.deadline(), Some(t0 + ms(52)));
        assert!(!g.ready(t0 + ms(51)));
        assert!(g.ready(t0 + ms(52)));
    }

    #[test]
    fn a_missing_https_answer_is_waited_for_only_the_delay() {
        let t0 = Instant::now();
        let mut g = StartGate::new(Some(ms(50)));
        g.answered(Query::Aaaa, true, t0 + ms(2));
        g.answered(Query::A, true, t0 + ms(2));
        assert!(!g.ready(t0 + ms(20)));
        assert!(g.ready(t0 + ms(52)));
    }

    #[test]
    fn no_addresses_yet_keeps_it_shut_past_the_delay() {
        let t0 = Instant::now();
        let mut g = StartGate::new(Some(ms(50)));
        g.answered(Query::Aaaa, false, t0 + ms(1));
        g.answered(Query::Https, false, t0 + ms(1));
        assert_eq!(g.deadline(), None);
        assert!(!g.ready(t0 + ms(500)));
        g.answered(Query::A, true, t0 + ms(600));
        assert!(g.ready(t0 + ms(600)));
    }

    #[test]
    fn an_empty_aaaa_with_https_starts_on_a() {
        let t0 = Instant::now();
        let mut g = StartGate::new(Some(ms(50)));
        g.answered(Query::A, true, t0 + ms(1));
        g.answered(Query::Aaaa, false, t0 + ms(2));
        assert!(!g.ready(t0 + ms(2)), "HTTPS may still bring QUIC");
        g.answered(Query::Https, false, t0 + ms(5));
        assert!(g.ready(t0 + ms(5)));
    }

    #[test]
    fn known_hints_open_it_before_any_address_answer() {
        let t0 = Instant::now();
        let mut g = StartGate::new(Some(ms(50)));
        g.answered(Query::Https, false, t0 + ms(1));
        assert!(!g.ready(t0 + ms(1)));
        g.hints_usable();
        assert!(g.ready(t0 + ms(1)));
    }

    #[test]
    fn without_a_delay_it_waits_for_everything() {
        let t0 = Instant::now();
        let mut g = StartGate::new(None);
        g.answered(Query::Aaaa, true, t0);
        g.answered(Query::Https, false, t0);
        g.hints_usable();
        assert!(!g.ready(t0 + ms(1000)));
        g.answered(Query::A, false, t0 + ms(1001));
        assert!(g.ready(t0 + ms(1001)));
    }
}
