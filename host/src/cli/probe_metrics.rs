//! What the probes counted, as Prometheus-style text lines: `fetch
//! --metrics` prints it after a fetch, `serve` when it stops.

use sockhost::plugins::telemetry::{Metric, MetricValue};
use sockhost::plugins::CallError;

/// Each probe's name and its metrics (or why it could not give them).
pub type ProbeMetrics = [(String, Result<Vec<Metric>, CallError>)];

/// Prometheus text format, one block per probe.
pub fn render(all: &ProbeMetrics) -> String {
    let mut out = String::new();
    for (probe, metrics) in all {
        out.push_str(&format!("# probe {probe}\n"));
        let metrics = match metrics {
            Ok(m) => m,
            Err(e) => {
                out.push_str(&format!("# failed: {e}\n"));
                continue;
            }
        };
        for m in metrics {
            let labels = |extra: Option<(&str, String)>| {
                let mut l: Vec<String> = m
                    .labels
                    .iter()
                    .map(|(k, v)| {
                        format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                    })
                    .collect();
                if let Some((k, v)) = extra {
                    l.push(format!("{k}=\"{v}\""));
                }
                if l.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", l.join(","))
                }
            };
            match &m.value {
                MetricValue::Counter(v) => {
                    out.push_str(&format!("{}{} {v}\n", m.name, labels(None)))
                }
                MetricValue::Gauge(v) => out.push_str(&format!("{}{} {v}\n", m.name, labels(None))),
                MetricValue::Histogram(h) => {
                    let mut cumulative = 0;
                    for (i, c) in h.counts.iter().enumerate() {
                        cumulative += c;
                        let le = h.bounds.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
                        out.push_str(&format!(
                            "{}_bucket{} {cumulative}\n",
                            m.name,
                            labels(Some(("le", le)))
                        ));
                    }
                    out.push_str(&format!("{}_sum{} {}\n", m.name, labels(None), h.sum));
                    out.push_str(&format!("{}_count{} {cumulative}\n", m.name, labels(None)));
                }
            }
        }
    }
    out
}
