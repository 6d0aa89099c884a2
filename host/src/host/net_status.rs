//! The network's part of the status document, from live state: the pool
//! (asked of its manager task), the resolver's counts, a lookup through
//! the resolver connections use, the Alt-Svc cache, and the telemetry
//! bus's counters.

use std::time::SystemTime;

use super::Host;
use crate::control::status::{
    AltSvcEntryStatus, AltSvcNetworkStatus, ConnectionStatus, DnsAnswer, DnsStatus, OriginStatus,
    TelemetryStatus,
};
use crate::net::alt_svc::EntryView;
use crate::net::dns_records::RecordsAnswer;
use crate::net::manager::PoolStats;

impl Host {
    /// The pool per origin (established connections, requests on each,
    /// requests queued), and the requests queued over every origin. Empty
    /// if the pool's manager has stopped.
    pub async fn pool_status(&self) -> (Vec<OriginStatus>, u64) {
        match self.pipeline.manager.stats().await {
            Some(stats) => pool_status(stats),
            None => (Vec::new(), 0),
        }
    }

    /// The resolver's cache entries, lookups and cache hits.
    pub fn dns_status(&self) -> DnsStatus {
        let counts = self.network.resolver.counts();
        DnsStatus {
            cache_entries: counts.cache_entries,
            lookups: counts.lookups,
            cache_hits: counts.cache_hits,
        }
    }

    /// What the resolver connections use answers for `host` (A, AAAA and
    /// HTTPS, through the same cache): never fails, each record type's
    /// failure is a line of `errors`.
    pub async fn dns_lookup(&self, host: &str) -> DnsAnswer {
        dns_answer(self.network.resolver.lookup_records(host).await)
    }

    /// Alt-Svc alternatives still fresh, per network.
    pub fn alt_svc_status(&self) -> Vec<AltSvcNetworkStatus> {
        let entries = self
            .network
            .alt_svc
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries(SystemTime::now());
        alt_svc_status(entries)
    }

    /// The telemetry bus: probes, events published and dropped.
    pub fn telemetry_status(&self) -> TelemetryStatus {
        let bus = &self.pipeline.bus;
        TelemetryStatus {
            probes: bus.probe_count() as u64,
            published: bus.published(),
            dropped: bus.dropped(),
        }
    }
}

fn pool_status(stats: PoolStats) -> (Vec<OriginStatus>, u64) {
    let origins = stats
        .origins
        .into_iter()
        .map(|o| OriginStatus {
            origin: o.origin.to_string(),
            queued: o.queued as u64,
            connections: o
                .connections
                .into_iter()
                .map(|c| ConnectionStatus {
                    protocol: c.protocol.alpn().to_owned(),
                    peer: c.peer.map(|p| p.to_string()).unwrap_or_default(),
                    active: c.active as u64,
                    congestion: c.congestion.map(|s| s.describe()),
                })
                .collect(),
        })
        .collect();
    (origins, stats.waiting as u64)
}

fn dns_answer(r: RecordsAnswer) -> DnsAnswer {
    DnsAnswer {
        host: r.host,
        a: r.a.iter().map(ToString::to_string).collect(),
        aaaa: r.aaaa.iter().map(ToString::to_string).collect(),
        https: r.https,
        cached: r.cached,
        elapsed_us: u64::try_from(r.elapsed.as_micros()).unwrap_or(u64::MAX),
        errors: r.errors,
        overrides: r.overrides,
    }
}

/// Entries come by network then origin; each network becomes one group.
fn alt_svc_status(entries: Vec<EntryView>) -> Vec<AltSvcNetworkStatus> {
    let mut out: Vec<AltSvcNetworkStatus> = Vec::new();
    for e in entries {
        let entry = AltSvcEntryStatus {
            origin: e.origin,
            alternatives: e.alternatives,
            expires_unix_ms: e.expires_unix.saturating_mul(1000),
        };
        match out.last_mut() {
            Some(n) if n.network == e.network => n.entries.push(entry),
            _ => out.push(AltSvcNetworkStatus {
                network: e.network,
                entries: vec![entry],
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::net::congestion::CongestionStatus;
    use crate::net::manager::{ConnectionStats, OriginStats};
    use crate::net::pool::{OriginKey, Protocol};

    #[test]
    fn the_pool_becomes_origins_with_their_connections() {
        let stats = PoolStats {
            connections: 2,
            waiting: 3,
            origins: vec![OriginStats {
                origin: OriginKey {
                    scheme: "https".into(),
                    host: "a.test".into(),
                    port: 443,
                },
                connections: vec![ConnectionStats {
                    protocol: Protocol::Http3,
                    peer: Some("127.0.0.1:443".parse().unwrap()),
                    active: 2,
                    congestion: Some(Arc::new(CongestionStatus::new("newreno"))),
                }],
                queued: 3,
            }],
        };
        let (origins, waiting) = pool_status(stats);
        assert_eq!(waiting, 3);
        assert_eq!(
            origins,
            [OriginStatus {
                origin: "https://a.test:443".into(),
                connections: vec![ConnectionStatus {
                    protocol: "h3".into(),
                    peer: "127.0.0.1:443".into(),
                    active: 2,
                    congestion: Some("newreno".into()),
                }],
                queued: 3,
            }]
        );
    }

    #[test]
    fn alt_svc_entries_are_grouped_by_network() {
        let view = |network: &str, origin: &str| EntryView {
            network: network.into(),
            origin: origin.into(),
            alternatives: vec!["h3=\":443\"; ma=60".into()],
            expires_unix: 2,
        };
        let got = alt_svc_status(vec![
            view("cell", "https://a.test:443"),
            view("wifi", "https://a.test:443"),
            view("wifi", "https://b.test:443"),
        ]);
        let shape: Vec<(&str, usize)> = got
            .iter()
            .map(|n| (n.network.as_str(), n.entries.len()))
            .collect();
        assert_eq!(shape, [("cell", 1), ("wifi", 2)]);
        assert_eq!(got[1].entries[1].expires_unix_ms, 2000);
    }
}
