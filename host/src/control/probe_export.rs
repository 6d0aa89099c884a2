//! Every telemetry probe's metrics in the daemon's exposition: named
//! `sockhost_probe_NAME` (so that no probe can shadow a metric of the
//! host's; a leading `sockhost_` of the probe's name is dropped first:
//! `sockhost_requests_total` becomes `sockhost_probe_requests_total`),
//! labelled `plugin="PROBE"`, grouped into one family per name
//! when several probes export the same one. A probe whose collect failed
//! shows as `sockhost_telemetry_probe_up{plugin="PROBE"} 0` and costs the
//! scrape nothing else; a metric whose type differs from an earlier
//! probe's metric of the same name is left out and counted in
//! `sockhost_telemetry_probe_metrics_skipped{plugin="PROBE"}`.

use std::collections::BTreeMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::exposition::{help, sanitize_name, LabelValue};
use crate::plugins::telemetry::{Metric, MetricValue};
use crate::plugins::CallError;

/// The prefix of every name a probe exports.
pub const PROBE_PREFIX: &str = "sockhost_probe_";

/// The label naming the probe.
pub const PLUGIN_LABEL: &str = "plugin";

/// Each probe's name and its metrics, or why it could not give them (what
/// `Bus::collect` answers).
pub type ProbeMetrics = [(String, Result<Vec<Metric>, CallError>)];

type Labels = Vec<(String, LabelValue)>;

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Counter(u64),
    Gauge(f64),
    /// Sum, count, and each bucket's own count (not cumulative) with its
    /// upper bound, `f64::MAX` standing for `+Inf` as `prometheus-client`
    /// wants it.
    Histogram(f64, u64, Vec<(f64, u64)>),
}

impl Value {
    fn metric_type(&self) -> MetricType {
        match self {
            Value::Counter(_) => MetricType::Counter,
            Value::Gauge(_) => MetricType::Gauge,
            Value::Histogram(..) => MetricType::Histogram,
        }
    }
}

#[derive(Debug)]
struct Family {
    help: String,
    samples: Vec<(Labels, Value)>,
}

/// The probes' metrics, grouped into families, ready to encode.
#[derive(Debug, Default)]
pub struct ProbeFamilies {
    families: BTreeMap<String, Family>,
    /// Per probe: whether its collect succeeded, and how many of its
    /// metrics were left out.
    probes: Vec<(String, bool, u64)>,
}

impl ProbeFamilies {
    /// Groups `all`.
    pub fn new(all: &ProbeMetrics) -> Self {
        let mut out = ProbeFamilies::default();
        for (probe, collected) in all {
            let Ok(metrics) = collected else {
                out.probes.push((probe.clone(), false, 0));
                continue;
            };
            let mut skipped = 0;
            for m in metrics {
                if !out.add(probe, m) {
                    skipped += 1;
                }
            }
            out.probes.push((probe.clone(), true, skipped));
        }
        out
    }

    /// Adds `m` to its family; false when the family has another type.
    fn add(&mut self, probe: &str, m: &Metric) -> bool {
        let value = value(&m.value);
        let base = match value {
            // OpenMetrics names a counter's family without `_total`.
            Value::Counter(_) => m.name.strip_suffix("_total").unwrap_or(&m.name),
            _ => &m.name,
        };
        let base = base.strip_prefix("sockhost_").unwrap_or(base);
        let name = format!("{PROBE_PREFIX}{}", sanitize_name(base));
        let family = self.families.entry(name).or_insert_with(|| Family {
            help: if m.help.trim().is_empty() {
                format!("{} (exported by a telemetry probe).", m.name)
            } else {
                help(&m.help)
            },
            samples: Vec::new(),
        });
        if family
            .samples
            .first()
            .is_some_and(|(_, v)| v.metric_type().as_str() != value.metric_type().as_str())
        {
            return false;
        }
        let mut labels: Labels = Vec::with_capacity(m.labels.len() + 1);
        labels.push((PLUGIN_LABEL.to_owned(), LabelValue::from(probe)));
        for (k, v) in &m.labels {
            labels.push((label_name(k), LabelValue(v.clone())));
        }
        family.samples.push((labels, value));
        true
    }

    /// The families' names, in the order they are encoded.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.families.keys().map(String::as_str)
    }
}

/// A probe's label name, sanitized; names the exposition gives a meaning
/// of its own (the probe's name, a bucket's bound, Prometheus' reserved
/// `__` names) are kept as `exported_NAME`, as Prometheus does on a clash.
fn label_name(k: &str) -> String {
    let k = sanitize_name(k);
    if k == PLUGIN_LABEL || k == "le" || k == "quantile" || k.starts_with("__") {
        format!("exported_{k}")
    } else {
        k
    }
}

fn value(v: &MetricValue) -> Value {
    match v {
        MetricValue::Counter(c) => Value::Counter(*c),
        MetricValue::Gauge(g) => Value::Gauge(*g),
        MetricValue::Histogram(h) => {
            let count = h.counts.iter().sum();
            let bounds = h.bounds.iter().copied().chain(std::iter::once(f64::MAX));
            Value::Histogram(h.sum, count, bounds.zip(h.counts.iter().copied()).collect())
        }
    }
}

impl Collector for ProbeFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, family) in &self.families {
            let Some((_, first)) = family.samples.first() else {
                continue;
            };
            let mut metric =
                encoder.encode_descriptor(name, &family.help, None, first.metric_type())?;
            for (labels, value) in &family.samples {
                let mut sample = metric.encode_family(labels)?;
                match value {
                    Value::Counter(v) => sample.encode_counter::<NoLabelSet, _, u64>(v, None)?,
                    Value::Gauge(v) => sample.encode_gauge(v)?,
                    Value::Histogram(sum, count, buckets) => {
                        sample.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?
                    }
                }
            }
        }
        if self.probes.is_empty() {
            return Ok(());
        }
        let per_probe = |value: &dyn Fn(bool, u64) -> i64| {
            self.probes
                .iter()
                .map(|(p, ok, skipped)| {
                    (
                        [(PLUGIN_LABEL, LabelValue::from(p.as_str()))],
                        value(*ok, *skipped),
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut up = encoder.encode_descriptor(
            "sockhost_telemetry_probe_up",
            "1 when the probe's metrics were collected for this scrape, 0 when its collect failed.",
            None,
            MetricType::Gauge,
        )?;
        for (labels, v) in per_probe(&|ok, _| i64::from(ok)) {
            up.encode_family(&labels)?.encode_gauge(&v)?;
        }
        let mut skipped = encoder.encode_descriptor(
            "sockhost_telemetry_probe_metrics_skipped",
            "The probe's metrics left out of this scrape: another probe exports the name with another type.",
            None,
            MetricType::Gauge,
        )?;
        for (labels, v) in per_probe(&|_, skipped| skipped as i64) {
            skipped.encode_family(&labels)?.encode_gauge(&v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::telemetry::Histogram;
    use prometheus_client::registry::Registry;

    fn metric(name: &str, labels: &[(&str, &str)], value: MetricValue) -> Metric {
        Metric {
            name: name.to_owned(),
            help: format!("{name} help"),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            value,
        }
    }

    fn encode(all: &ProbeMetrics) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ProbeFamilies::new(all)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn two_probes_exporting_one_name_make_one_family_with_a_plugin_label_each() {
        let a = vec![
            metric(
                "requests_total",
                &[("class", "2xx")],
                MetricValue::Counter(3),
            ),
            metric("queue", &[("plugin", "x\"y")], MetricValue::Gauge(1.5)),
        ];
        let b = vec![metric(
            "sockhost_requests_total",
            &[],
            MetricValue::Counter(4),
        )];
        let out = encode(&[("a".into(), Ok(a)), ("b".into(), Ok(b))]);
        assert_eq!(
            out.matches("# TYPE sockhost_probe_requests counter")
                .count(),
            1,
            "{out}"
        );
        assert_eq!(
            out.matches("# HELP sockhost_probe_requests ").count(),
            1,
            "{out}"
        );
        assert!(
            out.contains("sockhost_probe_requests_total{plugin=\"a\",class=\"2xx\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("sockhost_probe_requests_total{plugin=\"b\"} 4\n"),
            "{out}"
        );
        assert!(
            out.contains("sockhost_probe_queue{plugin=\"a\",exported_plugin=\"x\\\"y\"} 1.5\n"),
            "{out}"
        );
        assert!(
            out.contains("sockhost_telemetry_probe_up{plugin=\"b\"} 1\n"),
            "{out}"
        );
    }

    #[test]
    fn a_histogram_has_cumulative_buckets_up_to_inf() {
        let h = MetricValue::Histogram(Histogram {
            bounds: vec![0.1, 1.0],
            counts: vec![2, 3, 1],
            sum: 4.2,
        });
        let out = encode(&[("p".into(), Ok(vec![metric("latency_seconds", &[], h)]))]);
        for line in [
            "sockhost_probe_latency_seconds_bucket{le=\"0.1\",plugin=\"p\"} 2\n",
            "sockhost_probe_latency_seconds_bucket{le=\"1.0\",plugin=\"p\"} 5\n",
            "sockhost_probe_latency_seconds_bucket{le=\"+Inf\",plugin=\"p\"} 6\n",
            "sockhost_probe_latency_seconds_count{plugin=\"p\"} 6\n",
            "sockhost_probe_latency_seconds_sum{plugin=\"p\"} 4.2\n",
        ] {
            assert!(out.contains(line), "{line} not in {out}");
        }
    }

    #[test]
    fn a_failed_collect_and_a_type_clash_are_reported_not_fatal() {
        let disabled = CallError::Disabled {
            plugin: "broken".into(),
            by_operator: false,
        };
        let a = vec![metric("depth", &[], MetricValue::Gauge(1.0))];
        let b = vec![metric("depth", &[], MetricValue::Counter(1))];
        let out = encode(&[
            ("broken".into(), Err(disabled)),
            ("a".into(), Ok(a)),
            ("b".into(), Ok(b)),
        ]);
        assert!(
            out.contains("sockhost_telemetry_probe_up{plugin=\"broken\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("sockhost_telemetry_probe_up{plugin=\"a\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("sockhost_telemetry_probe_metrics_skipped{plugin=\"b\"} 1\n"),
            "{out}"
        );
        assert!(!out.contains("depth_total"), "{out}");
        assert!(out.ends_with("# EOF\n"), "{out}");
    }
}
