//! `GET /metrics`: the daemon's own metrics, registered with
//! `prometheus-client`, and every telemetry probe's ([`super::probe_export`]),
//! in one exposition.
//!
//! Two kinds of host metrics:
//! - what only the proxy sees, request by request (requests by status class
//!   and HTTP version, body bytes each way): [`ProxyMetrics`], atomic
//!   counters the proxy bumps once per request, registered as they are;
//! - what the daemon already counts elsewhere and reports in a [`Status`]
//!   snapshot (DNS lookups, plugin calls and faults, bus events…). These
//!   are totals known at scrape time, exposed through `prometheus-client`'s
//!   collector API as constant counters and gauges built from the
//!   snapshot: a counter typed as such whose value is the snapshot's total,
//!   rather than a second set of counters kept in step with the first.
//!
//! [`render`] writes OpenMetrics or the Prometheus text format 0.0.4
//! ([`Format::from_accept`] picks, [`Format::content_type`] names it).

use std::collections::BTreeMap;

use http::Version;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

pub use super::exposition::Format;
use super::exposition::{to_text, LabelValue};
use super::probe_export::{ProbeFamilies, ProbeMetrics};
use super::status::Status;

/// The pool's protocols, always exposed (at 0 when none is open).
pub const PROTOCOLS: [&str; 3] = ["http/1.1", "h2", "h3"];

/// Fault kinds, always exposed per plugin (at 0 when none happened).
pub const FAULT_KINDS: [&str; 5] = ["trap", "panic", "deadline", "memory", "invalid-result"];

/// The client request versions counted without a lookup.
const VERSIONS: [&str; 4] = ["1.0", "1.1", "2", "3"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

type RequestLabels = [(&'static str, &'static str); 2];
type DirectionLabels = [(&'static str, &'static str); 1];

/// What the proxy counts per request: cheap to bump (one atomic add per
/// figure, no lock on the usual versions and statuses), shared by every
/// connection.
#[derive(Debug)]
pub struct ProxyMetrics {
    requests: Family<RequestLabels, Counter>,
    /// `requests`' usual series, by version then class, to bump without a
    /// lookup.
    usual: [[Counter; CLASSES.len()]; VERSIONS.len()],
    body_bytes: Family<DirectionLabels, Counter>,
    to_origin: Counter,
    to_client: Counter,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let usual = VERSIONS.map(|version| {
            CLASSES.map(|class| {
                requests.get_or_create_owned(&[("version", version), ("class", class)])
            })
        });
        let body_bytes = Family::<DirectionLabels, Counter>::default();
        let to_origin = body_bytes.get_or_create_owned(&[("direction", "to-origin")]);
        let to_client = body_bytes.get_or_create_owned(&[("direction", "to-client")]);
        ProxyMetrics {
            requests,
            usual,
            body_bytes,
            to_origin,
            to_client,
        }
    }
}

impl ProxyMetrics {
    /// Counts one answered request: the HTTP version the client asked in,
    /// the status it got, and the response body bytes it was sent.
    pub fn record_response(&self, version: Version, status: u16, body_to_client: u64) {
        let version = version_label(version);
        let class = match status {
            100..=599 => Some(usize::from(status / 100 - 1)),
            _ => None,
        };
        match (VERSIONS.iter().position(|v| *v == version), class) {
            (Some(v), Some(c)) => {
                self.usual[v][c].inc();
            }
            (_, class) => {
                let class = class.map_or("other", |c| CLASSES[c]);
                self.requests
                    .get_or_create(&[("version", version), ("class", class)])
                    .inc();
            }
        }
        self.to_client.inc_by(body_to_client);
    }

    /// Counts request body bytes read from a client and sent upstream (or
    /// into a tunnel).
    pub fn add_body_to_origin(&self, bytes: u64) {
        self.to_origin.inc_by(bytes);
    }

    /// Registers the figures in `registry`.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "sockhost_requests",
            "Requests answered to clients, by the client request's HTTP version and the response's status class",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "sockhost_proxied_body",
            "Body bytes carried: request bodies from clients to origins (to-origin), response bodies to clients (to-client); tunnels included",
            Unit::Bytes,
            self.body_bytes.clone(),
        );
    }
}

/// The label of an HTTP version.
fn version_label(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "other",
    }
}

/// The whole exposition: the host's metrics from `status` and `proxy`,
/// then every probe's, in `format`.
pub fn render(
    status: &Status,
    proxy: &ProxyMetrics,
    probes: &ProbeMetrics,
    format: Format,
) -> String {
    let mut registry = Registry::default();
    proxy.register(&mut registry);
    registry.register_collector(Box::new(Snapshot(status.clone())));
    registry.register_collector(Box::new(ProbeFamilies::new(probes)));
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail; an encoder error would be a bug
    // of the crate's, and the exposition up to it is still served.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::warn!("encoding /metrics: {e}");
    }
    match format {
        Format::OpenMetrics => out,
        Format::Text => to_text(&out),
    }
}

type Labels = Vec<(&'static str, LabelValue)>;

/// The host's figures known at scrape time.
#[derive(Debug)]
struct Snapshot(Status);

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let mut by_protocol: BTreeMap<&str, u64> = PROTOCOLS.iter().map(|p| (*p, 0)).collect();
        for origin in &s.pool {
            for c in &origin.connections {
                *by_protocol.entry(c.protocol.as_str()).or_default() += 1;
            }
        }
        gauges(
            &mut e,
            "sockhost_pool_connections",
            "Connections to origins in the pool, by protocol",
            by_protocol
                .into_iter()
                .map(|(p, n)| (vec![("protocol", LabelValue::from(p))], n)),
        )?;
        gauge(
            &mut e,
            "sockhost_pool_waiting_requests",
            "Requests waiting for a connection to an origin",
            s.pool_waiting,
        )?;
        gauge(
            &mut e,
            "sockhost_client_connections",
            "Proxy client connections open",
            s.clients.connections,
        )?;
        gauge(
            &mut e,
            "sockhost_requests_in_flight",
            "Requests being answered (tunnels not included)",
            s.clients.requests_in_flight,
        )?;
        gauge(
            &mut e,
            "sockhost_tunnels",
            "CONNECT tunnels open",
            s.clients.tunnels,
        )?;
        counter(
            &mut e,
            "sockhost_dns_lookups",
            "DNS lookups asked of the resolver",
            s.dns.lookups,
        )?;
        counter(
            &mut e,
            "sockhost_dns_cache_hits",
            "DNS lookups answered from the cache",
            s.dns.cache_hits,
        )?;
        gauge(
            &mut e,
            "sockhost_dns_cache_entries",
            "Entries in the DNS cache",
            s.dns.cache_entries,
        )?;
        counter(
            &mut e,
            "sockhost_telemetry_events_published",
            "Events published on the telemetry bus",
            s.telemetry.published,
        )?;
        counter(
            &mut e,
            "sockhost_telemetry_events_dropped",
            "Telemetry events dropped because a probe's queue was full",
            s.telemetry.dropped,
        )?;
        gauge(
            &mut e,
            "sockhost_telemetry_probes",
            "Telemetry probes on the bus",
            s.telemetry.probes,
        )?;
        gauge(
            &mut e,
            "sockhost_resident_memory_bytes",
            "The daemon's resident set size",
            s.memory.rss_bytes,
        )?;
        gauge(
            &mut e,
            "sockhost_wasm_memory_bytes",
            "Linear memory of every live plugin instance",
            s.memory.wasm_bytes,
        )?;
        gauge(
            &mut e,
            "sockhost_config_generation",
            "The config generation: 1 at start, one more per successful reload",
            s.process.generation,
        )?;
        gauge(
            &mut e,
            "sockhost_start_time_seconds",
            "When the daemon started, in seconds since the Unix epoch",
            s.process.started_unix_ms as f64 / 1e3,
        )?;
        gauge(
            &mut e,
            "sockhost_crash_reports",
            "Crash reports kept in the state directory",
            s.process.crashes.total,
        )?;
        gauge(
            &mut e,
            "sockhost_crash_reports_since_last_start",
            "Crash reports written since the daemon's previous start",
            s.process.crashes.since_last_start,
        )?;
        self.plugins(&mut e)
    }
}

impl Snapshot {
    fn plugins(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let plugins = &self.0.plugins;
        let per = |f: &dyn Fn(&super::status::PluginStatus) -> u64| {
            plugins
                .iter()
                .map(|p| (vec![("plugin", LabelValue::from(p.name.as_str()))], f(p)))
                .collect::<Vec<_>>()
        };
        counters(
            e,
            "sockhost_plugin_calls",
            "Calls into the plugin since it was loaded",
            per(&|p| p.calls),
        )?;
        let faults = plugins.iter().flat_map(|p| {
            let mut kinds: BTreeMap<&str, u64> = FAULT_KINDS.iter().map(|k| (*k, 0)).collect();
            kinds.extend(p.faults.iter().map(|(k, n)| (k.as_str(), *n)));
            kinds.into_iter().map(|(kind, n)| {
                (
                    vec![
                        ("plugin", LabelValue::from(p.name.as_str())),
                        ("kind", LabelValue::from(kind)),
                    ],
                    n,
                )
            })
        });
        counters(
            e,
            "sockhost_plugin_faults",
            "The plugin's faults since it was loaded, by kind",
            faults,
        )?;
        counters(
            e,
            "sockhost_plugin_restarts",
            "The plugin's restarts after faults",
            per(&|p| p.restarts),
        )?;
        let seconds = |us: &dyn Fn(&super::status::PluginStatus) -> u64| {
            plugins
                .iter()
                .map(|p| {
                    (
                        vec![("plugin", LabelValue::from(p.name.as_str()))],
                        us(p) as f64 / 1e6,
                    )
                })
                .collect::<Vec<_>>()
        };
        counters(
            e,
            "sockhost_plugin_call_seconds",
            "Time spent in the plugin's calls",
            seconds(&|p| p.call_time.total_us),
        )?;
        gauges(
            e,
            "sockhost_plugin_call_max_seconds",
            "The plugin's longest call",
            seconds(&|p| p.call_time.max_us),
        )?;
        gauges(
            e,
            "sockhost_plugin_instances",
            "The plugin's live instances",
            per(&|p| p.instances),
        )?;
        gauges(
            e,
            "sockhost_plugin_memory_bytes",
            "Linear memory of the plugin's live instances, summed",
            per(&|p| p.memory_bytes.iter().sum()),
        )?;
        gauges(
            e,
            "sockhost_plugin_memory_limit_bytes",
            "The plugin's memory limit per instance (its manifest's)",
            per(&|p| p.memory_limit_bytes),
        )?;
        gauges(
            e,
            "sockhost_plugin_memory_peak_bytes",
            "The most linear memory one of the plugin's instances has had",
            per(&|p| p.memory_peak_bytes),
        )?;
        gauges(
            e,
            "sockhost_plugin_active",
            "1 when calls go to the plugin, 0 when it is backing off or disabled",
            per(&|p| u64::from(p.state == super::status::PluginState::Active)),
        )?;
        Ok(())
    }
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, &format!("{help}."), None, MetricType::Counter)?;
    m.encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauge<V: EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: V,
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, &format!("{help}."), None, MetricType::Gauge)?;
    m.encode_gauge(&v)
}

fn counters<V: EncodeCounterValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, V)>,
) -> Result<(), std::fmt::Error> {
    family(e, name, help, MetricType::Counter, samples, |m, v| {
        m.encode_counter::<NoLabelSet, _, u64>(v, None)
    })
}

fn gauges<V: EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, V)>,
) -> Result<(), std::fmt::Error> {
    family(e, name, help, MetricType::Gauge, samples, |m, v| {
        m.encode_gauge(v)
    })
}

/// A labelled family: its descriptor once, then each sample.
fn family<V>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, V)>,
    write: impl Fn(&mut MetricEncoder, &V) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, &format!("{help}."), None, kind)?;
    for (labels, v) in samples {
        write(&mut m.encode_family(&labels)?, &v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::status::{ConnectionStatus, OriginStatus, PluginState, PluginStatus};

    fn status() -> Status {
        let conn = |protocol: &str| ConnectionStatus {
            protocol: protocol.into(),
            ..ConnectionStatus::default()
        };
        let mut faults = BTreeMap::new();
        faults.insert("deadline".to_owned(), 3);
        let mut s = Status {
            pool: vec![
                OriginStatus {
                    origin: "https://a.test:443".into(),
                    connections: vec![conn("h2"), conn("h3")],
                    queued: 0,
                },
                OriginStatus {
                    origin: "https://b.test:443".into(),
                    connections: vec![conn("h2")],
                    queued: 1,
                },
            ],
            plugins: vec![PluginStatus {
                name: "block\"list".into(),
                calls: 12,
                faults,
                memory_bytes: vec![65_536, 131_072],
                memory_limit_bytes: 1 << 20,
                state: PluginState::BackingOff { until_unix_ms: 1 },
                ..PluginStatus::default()
            }],
            ..Status::default()
        };
        s.dns.lookups = 10;
        s.dns.cache_hits = 7;
        s.telemetry.dropped = 2;
        s.plugins[0].call_time.total_us = 1_500_000;
        s.plugins[0].call_time.max_us = 250;
        s
    }

    #[test]
    fn requests_are_counted_by_version_and_class_and_bodies_by_direction() {
        let m = ProxyMetrics::default();
        m.record_response(Version::HTTP_11, 200, 1000);
        m.record_response(Version::HTTP_11, 204, 0);
        m.record_response(Version::HTTP_2, 502, 90);
        m.record_response(Version::HTTP_09, 200, 5);
        m.record_response(Version::HTTP_3, 700, 0);
        m.add_body_to_origin(33);
        let out = render(&Status::default(), &m, &[], Format::Text);
        for line in [
            "sockhost_requests_total{version=\"1.1\",class=\"2xx\"} 2\n",
            "sockhost_requests_total{version=\"2\",class=\"5xx\"} 1\n",
            "sockhost_requests_total{version=\"3\",class=\"1xx\"} 0\n",
            "sockhost_requests_total{version=\"0.9\",class=\"2xx\"} 1\n",
            "sockhost_requests_total{version=\"3\",class=\"other\"} 1\n",
            "sockhost_proxied_body_bytes_total{direction=\"to-client\"} 1095\n",
            "sockhost_proxied_body_bytes_total{direction=\"to-origin\"} 33\n",
            "# TYPE sockhost_requests_total counter\n",
            "# TYPE sockhost_proxied_body_bytes_total counter\n",
        ] {
            assert!(out.contains(line), "{line} not in\n{out}");
        }
    }

    #[test]
    fn snapshot_totals_are_counters_and_connections_are_counted_per_protocol() {
        let out = render(
            &status(),
            &ProxyMetrics::default(),
            &[],
            Format::OpenMetrics,
        );
        for line in [
            "sockhost_pool_connections{protocol=\"h2\"} 2\n",
            "sockhost_pool_connections{protocol=\"h3\"} 1\n",
            "sockhost_pool_connections{protocol=\"http/1.1\"} 0\n",
            "# TYPE sockhost_dns_lookups counter\n",
            "sockhost_dns_lookups_total 10\n",
            "sockhost_dns_cache_hits_total 7\n",
            "sockhost_telemetry_events_dropped_total 2\n",
            "sockhost_plugin_calls_total{plugin=\"block\\\"list\"} 12\n",
            "sockhost_plugin_faults_total{plugin=\"block\\\"list\",kind=\"deadline\"} 3\n",
            "sockhost_plugin_faults_total{plugin=\"block\\\"list\",kind=\"trap\"} 0\n",
            "sockhost_plugin_call_seconds_total{plugin=\"block\\\"list\"} 1.5\n",
            "sockhost_plugin_call_max_seconds{plugin=\"block\\\"list\"} 0.00025\n",
            "sockhost_plugin_memory_bytes{plugin=\"block\\\"list\"} 196608\n",
            "sockhost_plugin_memory_limit_bytes{plugin=\"block\\\"list\"} 1048576\n",
            "sockhost_plugin_active{plugin=\"block\\\"list\"} 0\n",
        ] {
            assert!(out.contains(line), "{line} not in\n{out}");
        }
        assert!(out.ends_with("# EOF\n"), "{out}");
    }

    #[test]
    fn every_family_is_described_once_and_prefixed() {
        let out = render(&status(), &ProxyMetrics::default(), &[], Format::Text);
        let mut seen = std::collections::HashSet::new();
        for line in out.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).unwrap();
            assert!(name.starts_with("sockhost_"), "{line}");
            assert!(seen.insert(name.to_owned()), "{name} twice in\n{out}");
        }
        assert_eq!(
            seen.len(),
            out.lines().filter(|l| l.starts_with("# HELP ")).count(),
            "{out}"
        );
    }
}
