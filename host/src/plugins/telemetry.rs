//! The `telemetry-probe` world: batches of events in, metrics out.
//!
//! Probes are never on the hot path: the host hands them batches from a
//! bounded queue (a later part of the host), and a faulting probe loses its
//! batch, nothing else. Collected metrics are checked before export.

use std::collections::HashSet;

use sockhost_policy::World;
use wasmtime::component::InstancePre;
use wasmtime::Store;

use super::instance::{CallError, Supervised, WorldBindings};
use super::load::{LoadError, LoadedPlugin};
use super::state::PluginState;

#[allow(missing_docs)]
mod generated {
    crate::plugins::wit_version::bindgen_latest!(shared "sockhost:plugin/telemetry-probe");
}

pub use generated::exports::sockhost::plugin::telemetry::{
    Batch, CongestionSample, ConnectAttemptEvent, ConnectResultEvent, DnsEvent, Event, EventKind,
    Histogram, HttpVersion, Method, Metric, MetricValue, OriginIndex, PluginFaultEvent,
    RequestEndEvent, RequestStartEvent, TlsEvent,
};

/// Most events in one batch.
pub const MAX_BATCH: usize = 1024;

impl Method {
    /// The WIT form of an HTTP method.
    pub fn from_http(m: &http::Method) -> Method {
        match *m {
            http::Method::GET => Method::Get,
            http::Method::HEAD => Method::Head,
            http::Method::POST => Method::Post,
            http::Method::PUT => Method::Put,
            http::Method::DELETE => Method::Delete,
            http::Method::OPTIONS => Method::Options,
            http::Method::PATCH => Method::Patch,
            http::Method::CONNECT => Method::Connect,
            http::Method::TRACE => Method::Trace,
            _ => Method::Other(m.as_str().to_owned()),
        }
    }
}

impl HttpVersion {
    /// The WIT form of an HTTP version; `None` for HTTP/0.9 and 1.0, which
    /// the host does not speak.
    pub fn from_http(v: http::Version) -> Option<HttpVersion> {
        match v {
            http::Version::HTTP_11 => Some(HttpVersion::Http1),
            http::Version::HTTP_2 => Some(HttpVersion::Http2),
            http::Version::HTTP_3 => Some(HttpVersion::Http3),
            _ => None,
        }
    }
}

impl EventKind {
    /// The origin index this event carries, if its kind names an origin.
    pub fn origin_mut(&mut self) -> Option<&mut OriginIndex> {
        match self {
            EventKind::Dns(_) | EventKind::PluginFault(_) => None,
            EventKind::ConnectAttempt(e) => Some(&mut e.origin),
            EventKind::ConnectResult(e) => Some(&mut e.origin),
            EventKind::Tls(e) => Some(&mut e.origin),
            EventKind::RequestStart(e) => Some(&mut e.origin),
            EventKind::RequestEnd(e) => Some(&mut e.origin),
            EventKind::Congestion(e) => Some(&mut e.origin),
        }
    }
}
/// Most metrics one `collect` may return.
pub const MAX_METRICS: usize = 10_000;
/// Most labels on one metric.
pub const MAX_LABELS: usize = 16;
/// Most buckets in one histogram.
pub const MAX_BUCKETS: usize = 128;
/// Longest metric name, label name, label value or help text, in bytes.
pub const MAX_METRIC_TEXT: usize = 256;

/// Bindings of the telemetry-probe world.
pub struct TelemetryBindings(generated::TelemetryProbe);

impl std::fmt::Debug for TelemetryBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TelemetryBindings")
    }
}

impl WorldBindings for TelemetryBindings {
    type Pre = generated::TelemetryProbePre<PluginState>;
    const WORLD: World = World::TelemetryProbe;
    // A probe's counters live in its instance: recycling would reset them
    // without a fault to say so.
    const RECYCLES: bool = false;
    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre> {
        generated::TelemetryProbePre::new(pre)
    }
    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self> {
        pre.instantiate(store).map(TelemetryBindings)
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && s.len() <= MAX_METRIC_TEXT
}

/// Why metrics returned by a probe were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// More than [`MAX_METRICS`].
    #[error("{count} metrics, more than {MAX_METRICS}")]
    TooMany {
        /// How many the probe returned.
        count: usize,
    },
    /// One metric is malformed.
    #[error("metric {name:?}: {problem}")]
    Metric {
        /// The metric's name, as the probe gave it.
        name: String,
        /// What is wrong with it.
        problem: MetricProblem,
    },
}

/// What is wrong with one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MetricProblem {
    /// Not a Prometheus-style name, or too long.
    #[error("name must match [a-z_][a-z0-9_]*")]
    Name,
    /// Help longer than [`MAX_METRIC_TEXT`].
    #[error("help text too long")]
    HelpTooLong,
    /// More than [`MAX_LABELS`].
    #[error("too many labels")]
    TooManyLabels,
    /// A label name that is not a metric name, or a long value.
    #[error("label names must match [a-z_][a-z0-9_]*, values be short")]
    Label,
    /// Another metric has the same name and labels.
    #[error("the same name and labels appear twice")]
    Duplicate,
    /// More than [`MAX_BUCKETS`] histogram bounds.
    #[error("too many buckets")]
    TooManyBuckets,
    /// Counts do not match bounds.
    #[error("a histogram needs one count per bound plus one")]
    Counts,
    /// Bounds not finite or not ascending.
    #[error("histogram bounds must be finite and ascending")]
    Bounds,
}

/// Checks metrics returned by a probe.
pub fn check_metrics(metrics: &[Metric]) -> Result<(), MetricsError> {
    if metrics.len() > MAX_METRICS {
        return Err(MetricsError::TooMany {
            count: metrics.len(),
        });
    }
    let mut series = HashSet::new();
    for m in metrics {
        metric_problem(m, &mut series).map_err(|problem| MetricsError::Metric {
            name: m.name.clone(),
            problem,
        })?;
    }
    Ok(())
}

/// Checks one metric; `series` holds the (name, labels) pairs seen so far.
fn metric_problem<'a>(
    m: &'a Metric,
    series: &mut HashSet<(&'a String, &'a Vec<(String, String)>)>,
) -> Result<(), MetricProblem> {
    if !is_metric_name(&m.name) {
        return Err(MetricProblem::Name);
    }
    if m.help.len() > MAX_METRIC_TEXT {
        return Err(MetricProblem::HelpTooLong);
    }
    if m.labels.len() > MAX_LABELS {
        return Err(MetricProblem::TooManyLabels);
    }
    if m.labels
        .iter()
        .any(|(k, v)| !is_metric_name(k) || v.len() > MAX_METRIC_TEXT)
    {
        return Err(MetricProblem::Label);
    }
    if !series.insert((&m.name, &m.labels)) {
        return Err(MetricProblem::Duplicate);
    }
    if let MetricValue::Histogram(h) = &m.value {
        if h.bounds.len() > MAX_BUCKETS {
            return Err(MetricProblem::TooManyBuckets);
        }
        if h.counts.len() != h.bounds.len() + 1 {
            return Err(MetricProblem::Counts);
        }
        if h.bounds.iter().any(|b| !b.is_finite()) || h.bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(MetricProblem::Bounds);
        }
    }
    Ok(())
}

/// A telemetry probe plugin.
#[derive(Debug)]
pub struct TelemetryPlugin {
    inner: Supervised<TelemetryBindings>,
}

impl TelemetryPlugin {
    /// Wraps a loaded probe.
    pub fn new(loaded: LoadedPlugin) -> Result<Self, LoadError> {
        Ok(Self {
            inner: Supervised::new(loaded)?,
        })
    }

    /// The supervised instance (for status and tests).
    pub fn supervised(&self) -> &Supervised<TelemetryBindings> {
        &self.inner
    }

    /// Delivers a batch of at most [`MAX_BATCH`] events whose origin
    /// indexes are valid for `batch.origins` (the bus builds batches so);
    /// `dropped` counts events lost since the last batch.
    pub fn on_events(&mut self, batch: &Batch, dropped: u64) -> Result<(), CallError> {
        if batch.events.is_empty() && dropped == 0 {
            return Ok(());
        }
        self.inner.call("on-events", |b, s| {
            b.0.sockhost_plugin_telemetry()
                .call_on_events(s, batch, dropped)
        })
    }

    /// Collects the probe's metrics, checked.
    pub fn collect(&mut self) -> Result<Vec<Metric>, CallError> {
        let metrics = self.inner.call("collect", |b, s| {
            b.0.sockhost_plugin_telemetry().call_collect(s)
        })?;
        match check_metrics(&metrics) {
            Ok(()) => Ok(metrics),
            Err(why) => Err(self.inner.invalid_result("collect", why.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(name: &str, value: MetricValue) -> Metric {
        Metric {
            name: name.into(),
            help: String::new(),
            labels: vec![],
            value,
        }
    }

    #[test]
    fn metrics_are_checked() {
        let hist = |bounds: Vec<f64>, counts: Vec<u64>| {
            MetricValue::Histogram(Histogram {
                bounds,
                counts,
                sum: 0.0,
            })
        };
        let cases = [
            (
                vec![metric("requests_total", MetricValue::Counter(1))],
                true,
            ),
            (vec![metric("Bad-Name", MetricValue::Counter(1))], false),
            (vec![metric("", MetricValue::Counter(1))], false),
            (vec![metric("h", hist(vec![0.1, 1.0], vec![0, 0, 0]))], true),
            (vec![metric("h", hist(vec![0.1, 1.0], vec![0, 0]))], false),
            (
                vec![metric("h", hist(vec![1.0, 0.1], vec![0, 0, 0]))],
                false,
            ),
            (vec![metric("h", hist(vec![f64::NAN], vec![0, 0]))], false),
            (
                vec![
                    metric("a", MetricValue::Gauge(1.0)),
                    metric("a", MetricValue::Gauge(2.0)),
                ],
                false,
            ),
        ];
        for (metrics, ok) in cases {
            assert_eq!(check_metrics(&metrics).is_ok(), ok, "{metrics:?}");
        }
    }

    #[test]
    fn refusals_name_the_metric_and_the_problem() {
        let err = check_metrics(&[metric("Bad-Name", MetricValue::Counter(1))]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"metric "Bad-Name": name must match [a-z_][a-z0-9_]*"#
        );
        let twice = [
            metric("a", MetricValue::Gauge(1.0)),
            metric("a", MetricValue::Gauge(2.0)),
        ];
        assert_eq!(
            check_metrics(&twice),
            Err(MetricsError::Metric {
                name: "a".into(),
                problem: MetricProblem::Duplicate
            })
        );
        let many = vec![metric("a", MetricValue::Counter(1)); MAX_METRICS + 1];
        assert_eq!(
            check_metrics(&many).unwrap_err().to_string(),
            format!("{} metrics, more than {MAX_METRICS}", MAX_METRICS + 1)
        );
    }
}
