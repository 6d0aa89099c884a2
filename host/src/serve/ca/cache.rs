//! Leaves by host, kept in memory so that a host's connections after the
//! first skip key generation and signing. Bounded: when full, the least
//! recently used leaf makes room. A leaf close to its end is issued anew.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::leaf::{Leaf, LeafHost};
use super::{CaError, LocalCa};

/// At most this many leaves are kept (a few KiB each).
pub const LEAF_CACHE_CAPACITY: usize = 1024;

/// A cached leaf with less validity left than this is replaced, so that a
/// connection never starts with a leaf about to expire.
pub const LEAF_RENEW_BEFORE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
struct Entry {
    leaf: Leaf,
    last_used: u64,
}

#[derive(Debug, Default)]
struct Entries {
    by_host: HashMap<LeafHost, Entry>,
    // A use counter: the entry with the smallest `last_used` is the least
    // recently used one.
    clock: u64,
}

/// Leaves issued by one CA, by host.
#[derive(Debug)]
pub struct LeafCache {
    ca: Arc<LocalCa>,
    capacity: usize,
    entries: Mutex<Entries>,
}

impl LeafCache {
    /// An empty cache of [`LEAF_CACHE_CAPACITY`] leaves issued by `ca`.
    pub fn new(ca: Arc<LocalCa>) -> Self {
        Self::with_capacity(ca, LEAF_CACHE_CAPACITY)
    }

    /// An empty cache of at most `capacity` leaves (at least one).
    pub fn with_capacity(ca: Arc<LocalCa>, capacity: usize) -> Self {
        LeafCache {
            ca,
            capacity: capacity.max(1),
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The TLS server configuration for `host` (a name or an IP literal).
    pub fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, CaError> {
        self.server_config_at(host, SystemTime::now())
    }

    /// [`Self::server_config`] as of `now`.
    pub fn server_config_at(
        &self,
        host: &str,
        now: SystemTime,
    ) -> Result<Arc<rustls::ServerConfig>, CaError> {
        let host = LeafHost::parse(host)?;
        if let Some(config) = self.fresh(&host, now) {
            return Ok(config);
        }
        // Issued outside the lock: signing takes a while, and two
        // connections racing for one new host merely issue twice.
        let leaf = self.ca.issue_at(&host, now)?;
        let config = Arc::clone(&leaf.config);
        let mut entries = self.lock();
        if !entries.by_host.contains_key(&host) && entries.by_host.len() >= self.capacity {
            let oldest = entries
                .by_host
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(h, _)| h.clone());
            if let Some(oldest) = oldest {
                entries.by_host.remove(&oldest);
            }
        }
        entries.clock += 1;
        let last_used = entries.clock;
        entries.by_host.insert(host, Entry { leaf, last_used });
        Ok(config)
    }

    /// How many leaves the cache holds.
    pub fn len(&self) -> usize {
        self.lock().by_host.len()
    }

    /// Whether the cache holds no leaf.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fresh(&self, host: &LeafHost, now: SystemTime) -> Option<Arc<rustls::ServerConfig>> {
        let mut entries = self.lock();
        entries.clock += 1;
        let clock = entries.clock;
        let entry = entries.by_host.get_mut(host)?;
        if entry.leaf.not_after <= now + LEAF_RENEW_BEFORE {
            return None;
        }
        entry.last_used = clock;
        Some(Arc::clone(&entry.leaf.config))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic elsewhere cannot leave the map inconsistent (every
        // update is one insert or remove), so a poisoned lock is usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
