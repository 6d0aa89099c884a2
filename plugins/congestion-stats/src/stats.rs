//! Congestion statistics per connection and plugin-fault counts, bounded in
//! memory.

use std::collections::BTreeMap;

use sockhost_sdk::telemetry::label_value as bounded_label;
use sockhost_sdk::telemetry::{
    Batch, CongestionSample, Event, EventKind, Histogram, Metric, MetricValue,
};
use sockhost_sdk::types::{InstantUs, Origin};

/// Connections tracked at once. Connection ids come from the host and are
/// never reused, so without a cap a long-lived process would grow the probe
/// by one series set per connection it ever opened.
pub const MAX_CONNECTIONS: usize = 256;
/// Distinct (plugin, kind) fault series; faults beyond them count under
/// ([`OTHER`], [`OTHER`]).
pub const MAX_FAULT_SERIES: usize = 64;
/// The label of faults beyond [`MAX_FAULT_SERIES`].
pub const OTHER: &str = "other";

/// The smallest window bucket bound, 16 KiB, as a power of two.
const WINDOW_MIN_LOG2: u32 = 14;
/// The largest window bucket bound, 256 MiB, as a power of two.
const WINDOW_MAX_LOG2: u32 = 28;
/// The smallest RTT bucket bound in microseconds.
const RTT_MIN_US: u64 = 100;
/// RTT bucket bounds, doubling from [`RTT_MIN_US`]: the last is 1.6384 s,
/// the largest such bound not above 2 s.
const RTT_BUCKETS: u32 = 15;

/// Window bucket bounds in bytes.
fn window_bounds() -> Vec<f64> {
    (WINDOW_MIN_LOG2..=WINDOW_MAX_LOG2)
        .map(|e| (1u64 << e) as f64)
        .collect()
}

/// RTT bucket bounds in seconds.
fn rtt_bounds() -> Vec<f64> {
    (0..RTT_BUCKETS).map(|k| seconds(RTT_MIN_US << k)).collect()
}

/// Bounds and observations both go through this one conversion so that an
/// RTT equal to a bound in microseconds equals it as a float too, and lands
/// in that bound's bucket rather than the next.
fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

#[derive(Debug)]
struct Connection {
    /// `scheme://host:port`, computed once: samples of a connection far
    /// outnumber connections.
    origin: String,
    /// The latest `at` of its samples; the connection with the smallest is
    /// the one evicted at the cap.
    last_seen: InstantUs,
    window: Histogram,
    rtt: Histogram,
    lost_bytes: u64,
}

impl Connection {
    fn new(origin: &Origin) -> Self {
        Connection {
            origin: bounded_label(origin.to_url_prefix()),
            last_seen: 0,
            window: Histogram::with_bounds(window_bounds()),
            rtt: Histogram::with_bounds(rtt_bounds()),
            lost_bytes: 0,
        }
    }
}

/// All statistics.
#[derive(Debug, Default)]
pub struct Stats {
    /// By connection id, so `collect` lists connections in a stable order.
    /// Invariant: at most [`MAX_CONNECTIONS`] entries.
    connections: BTreeMap<u64, Connection>,
    /// Faults by (plugin, kind). Invariant: at most [`MAX_FAULT_SERIES`]
    /// entries plus the ([`OTHER`], [`OTHER`]) one.
    faults: BTreeMap<(String, String), u64>,
    samples: u64,
    evicted: u64,
    dropped: u64,
}

impl Stats {
    /// Accounts a batch of events.
    pub fn record(&mut self, batch: Batch, dropped: u64) {
        self.dropped = self.dropped.saturating_add(dropped);
        let Batch { origins, events } = batch;
        for Event { at, kind } in events {
            match kind {
                EventKind::Congestion(sample) => self.sample(at, &sample, &origins),
                EventKind::PluginFault(fault) => self.fault(fault.plugin, fault.kind),
                _ => {}
            }
        }
    }

    fn sample(&mut self, at: InstantUs, sample: &CongestionSample, origins: &[Origin]) {
        // The host sends only valid indexes; skip rather than panic if one
        // is not.
        let Some(origin) = origins.get(sample.origin as usize) else {
            return;
        };
        if self.connections.len() >= MAX_CONNECTIONS
            && !self.connections.contains_key(&sample.connection)
        {
            self.evict_oldest();
        }
        let c = self
            .connections
            .entry(sample.connection)
            .or_insert_with(|| Connection::new(origin));
        self.samples += 1;
        // Batches arrive oldest first, but a late event must not make a
        // busy connection look idle.
        c.last_seen = c.last_seen.max(at);
        c.window.observe(sample.window as f64);
        c.rtt.observe(seconds(sample.smoothed_rtt));
        // Saturating: a wrapped counter would read as a reset.
        c.lost_bytes = c.lost_bytes.saturating_add(sample.lost_bytes);
    }

    /// Drops the connection sampled longest ago (the lowest id among
    /// equals, so that eviction is deterministic).
    fn evict_oldest(&mut self) {
        let oldest = self
            .connections
            .iter()
            .min_by_key(|(_, c)| c.last_seen)
            .map(|(id, _)| *id);
        if let Some(id) = oldest {
            self.connections.remove(&id);
            self.evicted += 1;
        }
    }

    fn fault(&mut self, plugin: String, kind: String) {
        let key = (bounded_label(plugin), bounded_label(kind));
        let key = if self.faults.len() < MAX_FAULT_SERIES || self.faults.contains_key(&key) {
            key
        } else {
            (OTHER.to_owned(), OTHER.to_owned())
        };
        *self.faults.entry(key).or_insert(0) += 1;
    }

    /// The metrics, Prometheus-style names (exporters may prefix the plugin's
    /// name when exporting).
    pub fn metrics(&self) -> Vec<Metric> {
        let mut out = vec![
            metric(
                "samples_total",
                "Congestion samples received",
                vec![],
                MetricValue::Counter(self.samples),
            ),
            metric(
                "connections_evicted_total",
                "Connections dropped from the statistics to stay under the cap",
                vec![],
                MetricValue::Counter(self.evicted),
            ),
            metric(
                "events_dropped_total",
                "Events the host dropped before this probe saw them",
                vec![],
                MetricValue::Counter(self.dropped),
            ),
        ];
        for (id, c) in &self.connections {
            let labels = || {
                vec![
                    ("connection".to_owned(), id.to_string()),
                    ("origin".to_owned(), c.origin.clone()),
                ]
            };
            out.push(metric(
                "congestion_window_bytes",
                "Congestion window at each sample",
                labels(),
                MetricValue::Histogram(c.window.clone()),
            ));
            out.push(metric(
                "smoothed_rtt_seconds",
                "Smoothed round-trip time at each sample",
                labels(),
                MetricValue::Histogram(c.rtt.clone()),
            ));
            out.push(metric(
                "lost_bytes_total",
                "Bytes declared lost",
                labels(),
                MetricValue::Counter(c.lost_bytes),
            ));
        }
        for ((plugin, kind), n) in &self.faults {
            out.push(metric(
                "plugin_faults_total",
                "Plugin faults by plugin and kind",
                vec![
                    ("plugin".to_owned(), plugin.clone()),
                    ("kind".to_owned(), kind.clone()),
                ],
                MetricValue::Counter(*n),
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
    use std::collections::HashSet;

    use sockhost_sdk::telemetry::{Method, PluginFaultEvent, RequestStartEvent};

    use super::*;

    fn origin(host: &str) -> Origin {
        Origin {
            scheme: "https".into(),
            host: host.into(),
            port: 443,
        }
    }

    fn batch(hosts: &[&str], events: Vec<Event>) -> Batch {
        Batch {
            origins: hosts.iter().map(|h| origin(h)).collect(),
            events,
        }
    }

    fn sample(at: u64, connection: u64, origin: u32, window: u64, rtt_us: u64, lost: u64) -> Event {
        Event {
            at,
            kind: EventKind::Congestion(CongestionSample {
                connection,
                origin,
                window,
                smoothed_rtt: rtt_us,
                lost_bytes: lost,
            }),
        }
    }

    fn fault(plugin: &str, kind: &str) -> Event {
        Event {
            at: 0,
            kind: EventKind::PluginFault(PluginFaultEvent {
                plugin: plugin.into(),
                kind: kind.into(),
                message: "boom".into(),
                disabled: false,
            }),
        }
    }

    /// The value of the series `name` whose labels include every pair of
    /// `labels`.
    fn find<'a>(m: &'a [Metric], name: &str, labels: &[(&str, &str)]) -> &'a MetricValue {
        &m.iter()
            .find(|m| {
                m.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| m.labels.iter().any(|(mk, mv)| mk == k && mv == v))
            })
            .unwrap_or_else(|| panic!("no {name} with {labels:?}"))
            .value
    }

    fn histogram<'a>(m: &'a [Metric], name: &str, connection: &str) -> &'a Histogram {
        match find(m, name, &[("connection", connection)]) {
            MetricValue::Histogram(h) => h,
            other => panic!("{name} is {other:?}"),
        }
    }

    fn counter(m: &[Metric], name: &str, labels: &[(&str, &str)]) -> u64 {
        match find(m, name, labels) {
            MetricValue::Counter(n) => *n,
            other => panic!("{name} is {other:?}"),
        }
    }

    #[test]
    fn bounds_double_over_the_stated_ranges() {
        let w = window_bounds();
        assert_eq!(w.len(), 15);
        assert_eq!(w[0], 16_384.0);
        assert_eq!(w[14], 268_435_456.0);
        assert!(w.windows(2).all(|p| p[1] == 2.0 * p[0]));
        let r = rtt_bounds();
        assert_eq!(r.len(), 15);
        assert_eq!(r[0], 0.0001);
        assert_eq!(r[14], 1.6384);
        assert!(r.windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn a_window_on_a_bound_counts_in_that_bound_s_bucket() {
        let mut s = Stats::default();
        let windows = [
            1,
            1 << 14,
            (1 << 14) + 1,
            1 << 15,
            1 << 28,
            (1 << 28) + 1,
            u64::MAX / 2,
        ];
        let events = windows
            .iter()
            .map(|w| sample(0, 7, 0, *w, 1_000, 0))
            .collect();
        s.record(batch(&["a.test"], events), 0);
        let m = s.metrics();
        let h = histogram(&m, "congestion_window_bytes", "7");
        let mut want = vec![0; 16];
        want[0] = 2; // 1 and exactly 16 KiB
        want[1] = 2; // 16 KiB + 1 and exactly 32 KiB
        want[14] = 1; // exactly 256 MiB
        want[15] = 2; // above the last bound
        assert_eq!(h.counts, want);
    }

    #[test]
    fn an_rtt_on_a_bound_counts_in_that_bound_s_bucket() {
        let mut s = Stats::default();
        let rtts_us = [0, 100, 101, 200, 100 << 14, (100 << 14) + 1, 10_000_000];
        let events = rtts_us
            .iter()
            .map(|r| sample(0, 7, 0, 1 << 20, *r, 0))
            .collect();
        s.record(batch(&["a.test"], events), 0);
        let m = s.metrics();
        let h = histogram(&m, "smoothed_rtt_seconds", "7");
        let mut want = vec![0; 16];
        want[0] = 2; // 0 and exactly 100 µs
        want[1] = 2; // 101 µs and exactly 200 µs
        want[14] = 1; // exactly 1.6384 s
        want[15] = 2; // above the last bound
        assert_eq!(h.counts, want);
        assert!((h.sum - 13.277_202).abs() < 1e-9, "{}", h.sum);
    }

    #[test]
    fn connections_are_kept_apart_whatever_their_origin_index() {
        let mut s = Stats::default();
        s.record(
            batch(
                &["a.test", "b.test"],
                vec![
                    sample(1, 1, 0, 20_000, 1_000, 0),
                    sample(1, 2, 0, 1 << 20, 1_000, 0),
                    sample(2, 3, 1, 1 << 20, 1_000, 0),
                ],
            ),
            0,
        );
        // Connection 1's origin is at index 1 this time.
        s.record(
            batch(
                &["b.test", "a.test"],
                vec![sample(3, 1, 1, 30_000, 1_000, 0)],
            ),
            0,
        );
        let m = s.metrics();
        let one = histogram(&m, "congestion_window_bytes", "1");
        assert_eq!((one.count(), one.sum), (2, 50_000.0));
        assert_eq!(one.counts[1], 2);
        assert_eq!(histogram(&m, "congestion_window_bytes", "2").counts[6], 1);
        let origin_of = |id: &str| {
            m.iter()
                .find(|m| m.name == "lost_bytes_total" && m.labels[0].1 == id)
                .map(|m| m.labels[1].1.as_str())
        };
        assert_eq!(origin_of("1"), Some("https://a.test:443"));
        assert_eq!(origin_of("2"), Some("https://a.test:443"));
        assert_eq!(origin_of("3"), Some("https://b.test:443"));
        assert_eq!(counter(&m, "samples_total", &[]), 4);
    }

    #[test]
    fn lost_bytes_add_up_per_connection() {
        let mut s = Stats::default();
        s.record(
            batch(
                &["a.test"],
                vec![
                    sample(1, 1, 0, 1 << 20, 1_000, 1_200),
                    sample(2, 2, 0, 1 << 20, 1_000, 0),
                    sample(3, 1, 0, 1 << 20, 1_000, 2_400),
                ],
            ),
            0,
        );
        s.record(
            batch(&["a.test"], vec![sample(4, 1, 0, 1 << 20, 1_000, 1)]),
            0,
        );
        let m = s.metrics();
        assert_eq!(
            counter(&m, "lost_bytes_total", &[("connection", "1")]),
            3_601
        );
        assert_eq!(counter(&m, "lost_bytes_total", &[("connection", "2")]), 0);
    }

    #[test]
    fn at_the_cap_the_connection_sampled_longest_ago_is_evicted() {
        let mut s = Stats::default();
        let cap = MAX_CONNECTIONS as u64;
        let events = (0..cap)
            .map(|id| sample(1_000 + id, id, 0, 1 << 20, 1_000, 0))
            .collect();
        s.record(batch(&["a.test"], events), 0);
        assert_eq!(s.connections.len(), MAX_CONNECTIONS);
        assert_eq!(s.evicted, 0);
        // Connection 0 was added first but is sampled again, so connection
        // 1 is now the one sampled longest ago, then connection 2.
        s.record(
            batch(
                &["a.test"],
                vec![
                    sample(5_000, 0, 0, 1 << 20, 1_000, 0),
                    sample(6_000, cap, 0, 1 << 20, 1_000, 0),
                    sample(6_001, cap + 1, 0, 1 << 20, 1_000, 0),
                ],
            ),
            0,
        );
        assert_eq!(s.connections.len(), MAX_CONNECTIONS);
        assert!(s.connections.contains_key(&0));
        assert!(!s.connections.contains_key(&1));
        assert!(!s.connections.contains_key(&2));
        assert!(s.connections.contains_key(&3));
        assert!(s.connections.contains_key(&cap));
        assert!(s.connections.contains_key(&(cap + 1)));
        let m = s.metrics();
        assert_eq!(counter(&m, "connections_evicted_total", &[]), 2);
        assert_eq!(counter(&m, "samples_total", &[]), cap + 3);
        // A known connection's sample at the cap evicts nothing.
        s.record(
            batch(&["a.test"], vec![sample(7_000, 3, 0, 1 << 20, 1_000, 0)]),
            0,
        );
        assert_eq!(s.evicted, 2);
        assert_eq!(
            histogram(&s.metrics(), "congestion_window_bytes", "3").count(),
            2
        );
    }

    #[test]
    fn an_older_sample_does_not_make_a_connection_look_idle() {
        let mut s = Stats::default();
        let events = (0..MAX_CONNECTIONS as u64)
            .map(|id| sample(1_000 + id, id, 0, 1 << 20, 1_000, 0))
            .chain([sample(0, 1, 0, 1 << 20, 1_000, 0)])
            .collect();
        s.record(batch(&["a.test"], events), 0);
        s.record(
            batch(
                &["a.test"],
                vec![sample(9_000, 9_999, 0, 1 << 20, 1_000, 0)],
            ),
            0,
        );
        assert!(s.connections.contains_key(&1));
        assert!(!s.connections.contains_key(&0));
    }

    #[test]
    fn faults_count_by_plugin_and_kind() {
        let mut s = Stats::default();
        s.record(
            batch(
                &[],
                vec![
                    fault("newreno", "deadline"),
                    fault("newreno", "deadline"),
                    fault("newreno", "trap"),
                    fault("request-stats", "deadline"),
                ],
            ),
            0,
        );
        let m = s.metrics();
        let faults = |plugin, kind| {
            counter(
                &m,
                "plugin_faults_total",
                &[("plugin", plugin), ("kind", kind)],
            )
        };
        assert_eq!(faults("newreno", "deadline"), 2);
        assert_eq!(faults("newreno", "trap"), 1);
        assert_eq!(faults("request-stats", "deadline"), 1);
        assert_eq!(
            m.iter().filter(|m| m.name == "plugin_faults_total").count(),
            3
        );
    }

    #[test]
    fn fault_series_are_bounded() {
        let mut s = Stats::default();
        let events = (0..MAX_FAULT_SERIES + 10)
            .map(|i| fault(&format!("p{i}"), "trap"))
            .chain([fault("p0", "trap")])
            .collect();
        s.record(batch(&[], events), 0);
        assert_eq!(s.faults.len(), MAX_FAULT_SERIES + 1);
        let m = s.metrics();
        assert_eq!(
            counter(
                &m,
                "plugin_faults_total",
                &[("plugin", OTHER), ("kind", OTHER)]
            ),
            10
        );
        // A series that exists keeps counting past the cap.
        assert_eq!(
            counter(
                &m,
                "plugin_faults_total",
                &[("plugin", "p0"), ("kind", "trap")]
            ),
            2
        );
    }

    #[test]
    fn other_events_and_bad_indexes_are_ignored() {
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
            batch(&["a.test"], vec![start, sample(0, 1, 3, 1 << 20, 1_000, 0)]),
            5,
        );
        assert!(s.connections.is_empty() && s.faults.is_empty());
        let m = s.metrics();
        assert_eq!(counter(&m, "samples_total", &[]), 0);
        assert_eq!(counter(&m, "events_dropped_total", &[]), 5);
        assert_eq!(m.len(), 3);
    }

    fn is_name(s: &str) -> bool {
        let mut b = s.bytes();
        matches!(b.next(), Some(b'a'..=b'z' | b'_'))
            && b.all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_'))
    }

    #[test]
    fn collect_output_is_what_the_host_accepts() {
        let mut s = Stats::default();
        // Odd-length prefix: the 256-byte cut falls inside an "é".
        let long_host = format!("a{}.test", "é".repeat(200));
        let hosts = ["a.test", long_host.as_str()];
        let events = (0..MAX_CONNECTIONS as u64 + 20)
            .map(|id| sample(id, id, (id % 2) as u32, 1 << (id % 40), id * 37, id))
            .chain([fault(&"x".repeat(1_000), "trap")])
            .chain((0..MAX_FAULT_SERIES + 5).map(|i| fault(&format!("p{i}"), "panic")))
            .collect();
        s.record(batch(&hosts, events), 0);
        let m = s.metrics();
        // The host's MAX_METRICS per collect.
        assert!(m.len() <= 10_000, "{}", m.len());
        assert_eq!(
            m.iter()
                .filter(|m| m.name == "congestion_window_bytes")
                .count(),
            MAX_CONNECTIONS
        );
        let mut series = HashSet::new();
        for metric in &m {
            assert!(is_name(&metric.name), "{:?}", metric.name);
            assert!(series.insert((&metric.name, &metric.labels)), "{metric:?}");
            for (k, v) in &metric.labels {
                assert!(is_name(k), "{k:?}");
                assert!(
                    v.len() <= sockhost_sdk::telemetry::MAX_LABEL_BYTES,
                    "{} bytes",
                    v.len()
                );
            }
            match &metric.value {
                MetricValue::Histogram(h) => {
                    assert_eq!(h.counts.len(), h.bounds.len() + 1);
                    assert!(h.bounds.iter().all(|b| b.is_finite()));
                    assert!(h.bounds.windows(2).all(|p| p[0] < p[1]));
                    assert!(h.sum.is_finite());
                    assert_eq!(h.count(), 1);
                }
                MetricValue::Gauge(g) => assert!(g.is_finite()),
                MetricValue::Counter(_) => {}
            }
        }
        // The long origin was cut on a character boundary, not dropped.
        assert!(m.iter().any(|m| m
            .labels
            .iter()
            .any(|(k, v)| k == "origin" && v.starts_with("https://aéé") && v.len() == 255)));
    }
}
