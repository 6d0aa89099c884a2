//! Probes on live traffic: request-stats counts what was fetched, and the
//! bus never holds up a request.

use std::time::Duration;

use sockhost::host::{read_all, FetchRequest, Host};
use sockhost::net::dns::ResolveOverride;
use sockhost::plugins::telemetry::{MetricValue, TelemetryPlugin};
use sockhost_tests::origin::{OriginOptions, TestOrigin};
use sockhost_tests::{plugin, runtime};

#[test]
fn request_stats_counts_match_the_requests_made() {
    let origin = TestOrigin::start(OriginOptions::default());
    let (prt, _d) = runtime();
    let probe = TelemetryPlugin::new(prt.load(&plugin("request-stats")).unwrap()).unwrap();
    let port = origin.addr.port();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let h = Host::builder()
            .resolve(
                format!("www.test:{port}:127.0.0.1")
                    .parse::<ResolveOverride>()
                    .unwrap(),
            )
            .ca_file(origin.ca_file.clone())
            .no_platform_roots()
            .probe(probe)
            .build()
            .unwrap();
        for path in [
            "/",
            "/bytes/1000",
            "/bytes/2000",
            "/missing",
            "/",
            "/missing",
            "/",
        ] {
            let r = h
                .fetch(FetchRequest::get(format!("https://www.test:{port}{path}")))
                .await
                .unwrap();
            read_all(r.body).await.unwrap();
        }
        h.telemetry().flush(Duration::from_secs(5)).await;
        let collected = h.telemetry().collect().await;
        assert_eq!(collected.len(), 1);
        let (name, metrics) = &collected[0];
        assert_eq!(name, "request-stats");
        let metrics = metrics.as_ref().unwrap();
        let origin_label = format!("https://www.test:{port}");
        let value = |metric: &str, extra: Option<(&str, &str)>| {
            metrics
                .iter()
                .find(|m| {
                    m.name == metric
                        && m.labels
                            .iter()
                            .any(|(k, v)| k == "origin" && *v == origin_label)
                        && extra.is_none_or(|(k, v)| m.labels.iter().any(|(a, b)| a == k && b == v))
                })
                .map(|m| m.value.clone())
                .unwrap_or_else(|| panic!("no {metric} {extra:?} in {metrics:#?}"))
        };
        assert!(matches!(
            value("sockhost_requests_total", None),
            MetricValue::Counter(7)
        ));
        assert!(matches!(
            value("sockhost_responses_total", Some(("status", "2xx"))),
            MetricValue::Counter(5)
        ));
        assert!(matches!(
            value("sockhost_responses_total", Some(("status", "4xx"))),
            MetricValue::Counter(2)
        ));
        let MetricValue::Counter(bytes) = value("sockhost_response_bytes_received_total", None)
        else {
            panic!()
        };
        assert!(bytes >= 3000, "{bytes}");
        assert_eq!(h.telemetry().dropped(), 0);
    });
}
