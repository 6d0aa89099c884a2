//! Per-origin request statistics, bounded in memory.

use std::collections::BTreeMap;

use sockhost_sdk::telemetry::{Batch, EventKind, Histogram, Metric, MetricValue};

/// Origins tracked individually; requests to further origins count under
/// [`OTHER`] so that a page touching many hosts cannot grow the plugin
/// without bound.
pub const MAX_ORIGINS: usize = 256;
/// The label of requests to origins beyond [`MAX_ORIGINS`].
pub const OTHER: &str = "other";
/// Latency bucket bounds in seconds (Prometheus' base unit), 1 ms to 10 s.
pub const LATENCY_BOUNDS_SECONDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// `us` microseconds (the host's event times) in seconds.
fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

#[derive(Debug)]
struct OriginStats {
    requests: u64,
    errors: u64,
    by_status_class: [u64; 5],
    bytes_sent: u64,
    bytes_received: u64,
    latency: Histogram,
    ttfb: Histogram,
}

impl OriginStats {
    fn new() -> Self {
        OriginStats {
            requests: 0,
            errors: 0,
            by_status_class: [0; 5],
            bytes_sent: 0,
            bytes_received: 0,
            latency: Histogram::with_bounds(LATENCY_BOUNDS_SECONDS.to_vec()),
            ttfb: Histogram::with_bounds(LATENCY_BOUNDS_SECONDS.to_vec()),
        }
    }
}

/// An origin as a map key, built by moving the batch's strings.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct OriginKey {
    scheme: String,
    host: String,
    port: u16,
}

impl OriginKey {
    fn label(&self) -> String {
        // Bounded: the host refuses a whole collect with an over-long label.
        sockhost_sdk::telemetry::label_value(format!(
            "{}://{}:{}",
            self.scheme, self.host, self.port
        ))
    }
}

/// All statistics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Where each tracked origin's statistics are in `per_origin`.
    /// Invariant: at most [`MAX_ORIGINS`] entries, each a valid position.
    index: BTreeMap<OriginKey, usize>,
    per_origin: Vec<OriginStats>,
    /// Requests to origins beyond the first [`MAX_ORIGINS`].
    other: Option<OriginStats>,
    dropped: u64,
    started: u64,
}

impl Stats {
    /// Accounts a batch of events.
    pub fn record(&mut self, batch: Batch, dropped: u64) {
        self.dropped += dropped;
        let mut keys: Vec<Option<OriginKey>> = batch
            .origins
            .into_iter()
            .map(|o| {
                Some(OriginKey {
                    scheme: o.scheme,
                    host: o.host,
                    port: o.port,
                })
            })
            .collect();
        // Where each of the batch's origins counts (`None`: under OTHER),
        // decided at its first request-end in the batch.
        let mut slots: Vec<Option<Option<usize>>> = vec![None; keys.len()];
        for event in batch.events {
            match event.kind {
                EventKind::RequestStart(_) => self.started += 1,
                EventKind::RequestEnd(end) => {
                    let i = end.origin as usize;
                    // The host sends only valid indexes; skip rather than
                    // panic if one is not.
                    let (Some(slot), Some(key)) = (slots.get_mut(i), keys.get_mut(i)) else {
                        continue;
                    };
                    let slot = match *slot {
                        Some(decided) => decided,
                        None => {
                            let decided = key.take().and_then(|k| self.slot_for(k));
                            *slot = Some(decided);
                            decided
                        }
                    };
                    let s = match slot {
                        Some(p) => &mut self.per_origin[p],
                        None => self.other.get_or_insert_with(OriginStats::new),
                    };
                    s.requests += 1;
                    s.bytes_sent += end.bytes_sent;
                    s.bytes_received += end.bytes_received;
                    if end.error.is_some() {
                        s.errors += 1;
                    }
                    if let Some(status) = end.status {
                        let class = usize::from(status / 100).clamp(1, 5) - 1;
                        s.by_status_class[class] += 1;
                    }
                    s.latency.observe(seconds(end.total));
                    if let Some(t) = end.time_to_first_byte {
                        s.ttfb.observe(seconds(t));
                    }
                }
                _ => {}
            }
        }
    }

    /// Where `key`'s statistics are, adding it while under the cap.
    fn slot_for(&mut self, key: OriginKey) -> Option<usize> {
        if let Some(&p) = self.index.get(&key) {
            return Some(p);
        }
        if self.index.len() >= MAX_ORIGINS {
            return None;
        }
        self.per_origin.push(OriginStats::new());
        let p = self.per_origin.len() - 1;
        self.index.insert(key, p);
        Some(p)
    }

    /// The metrics, Prometheus-style names.
    pub fn metrics(&self) -> Vec<Metric> {
        let mut out = vec![
            metric(
                "sockhost_requests_started_total",
                "Requests started",
                vec![],
                MetricValue::Counter(self.started),
            ),
            metric(
                "sockhost_events_dropped_total",
                "Events the host dropped before this probe saw them",
                vec![],
                MetricValue::Counter(self.dropped),
            ),
        ];
        let all = self
            .index
            .iter()
            .map(|(k, p)| (k.label(), &self.per_origin[*p]))
            .chain(self.other.iter().map(|s| (OTHER.to_owned(), s)));
        for (origin, s) in all {
            let labels = || vec![("origin".to_owned(), origin.clone())];
            out.push(metric(
                "sockhost_requests_total",
                "Requests finished",
                labels(),
                MetricValue::Counter(s.requests),
            ));
            out.push(metric(
                "sockhost_request_errors_total",
                "Requests that failed, before or during the response",
                labels(),
                MetricValue::Counter(s.errors),
            ));
            for (i, n) in s
                .by_status_class
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
            {
                let mut l = labels();
                l.push(("status".to_owned(), format!("{}xx", i + 1)));
                out.push(metric(
                    "sockhost_responses_total",
                    "Responses by status class",
                    l,
                    MetricValue::Counter(*n),
                ));
            }
            out.push(metric(
                "sockhost_request_bytes_sent_total",
                "Request bytes sent",
                labels(),
                MetricValue::Counter(s.bytes_sent),
            ));
            out.push(metric(
                "sockhost_response_bytes_received_total",
                "Response bytes received",
                labels(),
                MetricValue::Counter(s.bytes_received),
            ));
            out.push(metric(
                "sockhost_request_duration_seconds",
                "Request duration, start to end of body, in seconds",
                labels(),
                MetricValue::Histogram(s.latency.clone()),
            ));
            out.push(metric(
                "sockhost_time_to_first_byte_seconds",
                "Time to the first response byte, in seconds",
                labels(),
                MetricValue::Histogram(s.ttfb.clone()),
            ));
        }
        out
    }
}

fn metric(name: &str, help: &str, labels: Vec<(String, String)>, value: MetricValue) -> Metric {
    Metric {
        name: name.to_owned(),
        help: help.to_owned(),
        labels,
        value,
    }
}

#[cfg(test)]
mod tests {
    use sockhost_sdk::telemetry::{Event, HttpVersion, Method, RequestEndEvent, RequestStartEvent};
    use sockhost_sdk::types::Origin;

    use super::*;

    fn batch(hosts: &[&str], events: Vec<Event>) -> Batch {
        Batch {
            origins: hosts
                .iter()
                .map(|h| Origin {
                    scheme: "https".into(),
                    host: (*h).into(),
                    port: 443,
                })
                .collect(),
            events,
        }
    }

    fn end(origin: u32, status: Option<u16>, total_us: u64) -> Event {
        Event {
            at: 0,
            kind: EventKind::RequestEnd(RequestEndEvent {
                id: 1,
                origin,
                method: Method::Get,
                status,
                protocol: Some(HttpVersion::Http2),
                bytes_sent: 100,
                bytes_received: 1000,
                time_to_first_byte: Some(total_us / 2),
                total: total_us,
                error: status.is_none().then(|| "reset".to_owned()),
            }),
        }
    }

    fn find<'a>(m: &'a [Metric], name: &str, origin: &str) -> &'a MetricValue {
        &m.iter()
            .find(|m| m.name == name && m.labels.iter().any(|(_, v)| v == origin))
            .unwrap_or_else(|| panic!("no {name} for {origin}"))
            .value
    }

    #[test]
    fn a_long_origin_label_is_cut_to_what_the_host_accepts() {
        let long = format!("{}.test", "a".repeat(250));
        let mut s = Stats::default();
        s.record(batch(&[&long], vec![end(0, Some(200), 1_000)]), 0);
        for m in s.metrics() {
            for (_, v) in &m.labels {
                assert!(
                    v.len() <= sockhost_sdk::telemetry::MAX_LABEL_BYTES,
                    "{}",
                    v.len()
                );
            }
        }
        assert!(s
            .metrics()
            .iter()
            .any(|m| m.labels.iter().any(|(_, v)| v.starts_with("https://aaa"))));
    }

    #[test]
    fn counts_bytes_and_latency_per_origin() {
        let mut s = Stats::default();
        let start = Event {
            at: 0,
            kind: EventKind::RequestStart(RequestStartEvent {
                id: 1,
                origin: 0,
                method: Method::Get,
                headers: None,
            }),
        };
        s.record(
            batch(
                &["a.test", "b.test"],
                vec![
                    start,
                    end(0, Some(200), 3_000),
                    end(0, Some(404), 30_000),
                    end(1, None, 1_000),
                ],
            ),
            7,
        );
        let m = s.metrics();
        assert!(matches!(
            find(&m, "sockhost_requests_total", "https://a.test:443"),
            MetricValue::Counter(2)
        ));
        assert!(matches!(
            find(&m, "sockhost_requests_total", "https://b.test:443"),
            MetricValue::Counter(1)
        ));
        assert!(matches!(
            find(&m, "sockhost_request_errors_total", "https://b.test:443"),
            MetricValue::Counter(1)
        ));
        assert!(matches!(
            find(
                &m,
                "sockhost_response_bytes_received_total",
                "https://a.test:443"
            ),
            MetricValue::Counter(2000)
        ));
        let MetricValue::Histogram(h) = find(
            &m,
            "sockhost_request_duration_seconds",
            "https://a.test:443",
        ) else {
            panic!()
        };
        assert_eq!(h.count(), 2);
        assert!((h.sum - 0.033).abs() < 1e-12, "{}", h.sum);
        // 3 ms falls in the bucket up to 5 ms, 30 ms in the one up to 50 ms.
        let bucket = |le: f64| {
            h.counts[LATENCY_BOUNDS_SECONDS
                .iter()
                .position(|b| *b == le)
                .unwrap()]
        };
        assert_eq!((bucket(0.005), bucket(0.05)), (1, 1));
        assert!(m.iter().any(|m| m.name == "sockhost_events_dropped_total"
            && matches!(m.value, MetricValue::Counter(7))));
        assert!(m.iter().any(|m| m.name == "sockhost_requests_started_total"
            && matches!(m.value, MetricValue::Counter(1))));
    }

    #[test]
    fn an_origin_adds_up_across_batches_whatever_its_index() {
        let mut s = Stats::default();
        s.record(batch(&["a.test"], vec![end(0, Some(200), 1_000)]), 0);
        s.record(
            batch(&["b.test", "a.test"], vec![end(1, Some(200), 1_000)]),
            0,
        );
        assert!(matches!(
            find(
                &s.metrics(),
                "sockhost_requests_total",
                "https://a.test:443"
            ),
            MetricValue::Counter(2)
        ));
        // b.test was named but had no request end: no series for it.
        assert_eq!(s.index.len(), 1);
    }

    #[test]
    fn an_index_outside_the_batch_is_skipped() {
        let mut s = Stats::default();
        s.record(batch(&["a.test"], vec![end(5, Some(200), 1_000)]), 0);
        assert!(s.index.is_empty() && s.other.is_none());
    }

    #[test]
    fn origins_are_bounded() {
        let mut s = Stats::default();
        let hosts: Vec<String> = (0..MAX_ORIGINS + 10)
            .map(|i| format!("h{i}.test"))
            .collect();
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let events = (0..hosts.len() as u32)
            .map(|i| end(i, Some(200), 1000))
            .collect();
        s.record(batch(&hosts, events), 0);
        assert_eq!(s.index.len(), MAX_ORIGINS);
        assert!(matches!(
            find(&s.metrics(), "sockhost_requests_total", OTHER),
            MetricValue::Counter(10)
        ));
    }
}
