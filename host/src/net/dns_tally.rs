//! What the resolver was asked and what it answers from memory, for the
//! status view. hickory keeps its cache to itself (not even its size is
//! public), so the numbers are counted at the resolver's edge:
//!
//! - a *lookup* is one record type asked for one name (a resolution asks
//!   AAAA, A and HTTPS: three lookups); `--resolve` overrides and IP
//!   literals ask nothing and are not counted;
//! - a *cache hit* is a lookup that sent no message to a name server
//!   ([`super::dns_wire`]);
//! - *cache entries* are the answers received from name servers whose TTL
//!   has not run out — what hickory keeps: positive answers for their
//!   records' smallest TTL, "no records" answers for their negative TTL,
//!   failures not at all — at most [`super::dns::CACHE_SIZE`] of them, as
//!   hickory. Entries hickory adds on its own for the targets of CNAME
//!   chains are not seen, and when both are full the answers each forgets
//!   may differ.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsCounts {
    /// Answers held now.
    pub cache_entries: u64,
    /// Lookups asked since start.
    pub lookups: u64,
    /// Of those, answered without asking a name server.
    pub cache_hits: u64,
}

/// A record type asked for a name, as the cache keys it.
pub type AnswerKey = (String, u16);

/// The answers a resolver holds, by when each expires. Sans-IO.
#[derive(Debug)]
pub struct HeldAnswers {
    capacity: usize,
    /// Invariant: at most `capacity` entries.
    expires: HashMap<AnswerKey, Instant>,
}

impl HeldAnswers {
    /// Holds at most `capacity` answers.
    pub fn new(capacity: usize) -> HeldAnswers {
        HeldAnswers {
            capacity,
            expires: HashMap::new(),
        }
    }

    /// An answer for `key` arrived at `now`, held until `expires`.
    pub fn hold(&mut self, key: AnswerKey, expires: Instant, now: Instant) {
        if expires <= now || self.capacity == 0 {
            self.expires.remove(&key);
            return;
        }
        if !self.expires.contains_key(&key) && self.expires.len() >= self.capacity {
            self.expires.retain(|_, e| *e > now);
            if self.expires.len() >= self.capacity {
                // Full of live answers: the one closest to expiring goes.
                let soonest = self
                    .expires
                    .iter()
                    .min_by_key(|(_, e)| **e)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    self.expires.remove(&k);
                }
            }
        }
        self.expires.insert(key, expires);
    }

    /// Answers still fresh at `now`.
    pub fn live(&self, now: Instant) -> usize {
        self.expires.values().filter(|e| **e > now).count()
    }
}

/// The resolver's counters, shared by every lookup.
#[derive(Debug)]
pub struct DnsTally {
    lookups: AtomicU64,
    cache_hits: AtomicU64,
    held: Mutex<HeldAnswers>,
}

impl DnsTally {
    /// Counters for a resolver caching at most `capacity` answers.
    pub fn new(capacity: usize) -> DnsTally {
        DnsTally {
            lookups: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            held: Mutex::new(HeldAnswers::new(capacity)),
        }
    }

    /// A lookup for `key` finished: `sent` messages went to name servers;
    /// the answer, when there is one to keep, stays fresh for `ttl`.
    /// Returns whether the resolver answered it itself.
    pub fn looked_up(&self, key: AnswerKey, sent: u32, ttl: Option<Duration>) -> bool {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        if sent == 0 {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        if let Some(ttl) = ttl {
            let now = Instant::now();
            self.held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .hold(key, now + ttl, now);
        }
        false
    }

    /// The counts now.
    pub fn counts(&self) -> DnsCounts {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        DnsCounts {
            cache_entries: held.live(Instant::now()) as u64,
            lookups: self.lookups.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> AnswerKey {
        (name.to_owned(), 1)
    }

    #[test]
    fn answers_are_held_until_they_expire_and_bounded() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let mut h = HeldAnswers::new(2);
        h.hold(key("a."), t + s(10), t);
        h.hold(key("b."), t + s(20), t);
        assert_eq!(h.live(t), 2);
        // A refreshed answer replaces its entry.
        h.hold(key("a."), t + s(30), t);
        assert_eq!(h.live(t + s(25)), 1, "b expired, a refreshed");
        // Full: the one expiring soonest goes.
        h.hold(key("c."), t + s(40), t);
        assert_eq!(h.live(t), 2);
        assert_eq!(h.live(t + s(35)), 1);
        // Full but for expired ones: they make room first.
        h.hold(key("d."), t + s(50), t + s(36));
        assert_eq!(h.live(t + s(36)), 2);
        // A zero TTL is not kept.
        h.hold(key("e."), t, t);
        assert_eq!(h.live(t + s(36)), 2);
    }

    #[test]
    fn lookups_that_sent_nothing_are_hits() {
        let tally = DnsTally::new(8);
        assert!(!tally.looked_up(key("a."), 1, Some(Duration::from_secs(60))));
        assert!(!tally.looked_up(key("b."), 2, None));
        assert!(tally.looked_up(key("a."), 0, Some(Duration::from_secs(59))));
        assert_eq!(
            tally.counts(),
            DnsCounts {
                cache_entries: 1,
                lookups: 3,
                cache_hits: 1
            }
        );
    }
}
