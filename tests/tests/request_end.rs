//! A response that reached the client whole is never a failed request to
//! the probes: curl fetches through the daemon's proxy (in process, with
//! the real request-stats probe) bodies with a Content-Length from an
//! HTTP/2 origin, an HTTP/1.1-only one and an HTTP/3 one (HTTP/2 and
//! HTTP/3 may end a body in a frame of their own after its last byte),
//! HEAD requests, 404s, and a blind tunnel; request-stats counts every
//! request and no error.

use std::collections::BTreeMap;

use sockhost::host::HostBuilder;
use sockhost::net::connection::VersionPref;
use sockhost::net::dns::ResolveOverride;
use sockhost::plugins::telemetry::{Metric, MetricValue};
use sockhost_tests::daemon::fetch;
use sockhost_tests::origin::{OriginOptions, TestOrigin};
use sockhost_tests::probed_proxy;

/// request-stats' counter `name` per origin label.
fn counters(metrics: &[Metric], name: &str) -> BTreeMap<String, u64> {
    metrics
        .iter()
        .filter(|m| m.name == name)
        .filter_map(|m| {
            let origin = m.labels.iter().find(|(k, _)| k == "origin")?.1.clone();
            match m.value {
                MetricValue::Counter(n) => Some((origin, n)),
                _ => None,
            }
        })
        .collect()
}

/// A host resolving `www.test` to each of `origins` and trusting their
/// CAs, preferring `version`.
fn host_for(origins: &[&TestOrigin], version: VersionPref) -> HostBuilder {
    let mut b = sockhost::host::Host::builder()
        .no_platform_roots()
        .version(version);
    for o in origins {
        b = b
            .resolve(
                format!("www.test:{}:127.0.0.1", o.addr.port())
                    .parse::<ResolveOverride>()
                    .unwrap(),
            )
            .ca_file(o.ca_file.clone());
    }
    b
}

/// Runs `requests` (given the proxy's URL) against the proxy in process
/// over `host` with the real request-stats probe, tunnelling to
/// `connect_ports`; what the probe counted: requests and errors per
/// origin.
fn counted(
    host: HostBuilder,
    connect_ports: Vec<u16>,
    requests: impl FnOnce(&str),
) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let probes = probed_proxy::with_request_stats(
        host,
        |proxy| proxy.connect_ports(connect_ports),
        requests,
    );
    let metrics = probes[0].1.as_ref().unwrap();
    let requests = counters(metrics, "sockhost_requests_total");
    let errors = counters(metrics, "sockhost_request_errors_total");
    eprintln!("request-stats: requests {requests:?}, errors {errors:?}");
    (requests, errors)
}

/// curl through the proxy at `daemon` over HTTP/1.1: status, headers,
/// body.
fn via(daemon: &str, args: &[&str], url: &str) -> (u16, String, Vec<u8>) {
    fetch(&[&["--http1.1"], args, &["--request-target", url, daemon]].concat())
}

fn url(o: &TestOrigin, path: &str) -> String {
    format!("https://www.test:{}{path}", o.addr.port())
}

fn origin_label(o: &TestOrigin) -> String {
    format!("https://www.test:{}", o.addr.port())
}

#[test]
fn whole_responses_over_http2_and_http11_and_a_tunnel_count_no_error() {
    let h2 = TestOrigin::start(OriginOptions::default());
    let h1 = TestOrigin::start(OriginOptions {
        alpn: vec!["http/1.1"],
        ..OriginOptions::default()
    });
    let (requests, errors) = counted(
        host_for(&[&h2, &h1], VersionPref::Auto),
        vec![h2.addr.port()],
        |daemon| {
            for (o, version) in [(&h2, "http/2.0"), (&h1, "http/1.1")] {
                for (args, path, want, body_len) in [
                    (&[][..], "/bytes/1000", 200, Some(1000)),
                    // curl -I writes the head where the body would go.
                    (&["-I"][..], "/bytes/1000", 200, None),
                    (&[][..], "/missing", 404, Some("no route /missing\n".len())),
                ] {
                    let (code, headers, body) = via(daemon, args, &url(o, path));
                    assert_eq!(
                        (code, body_len.map(|_| body.len())),
                        (want, body_len),
                        "{args:?} {path}: {headers}"
                    );
                    assert!(
                        headers.contains(&format!("x-origin-version: {version}")),
                        "{headers}"
                    );
                }
            }
            // A blind tunnel: curl's own TLS to the origin through CONNECT.
            let (code, headers, body) = fetch(&[
                "--proxy",
                daemon,
                "--proxytunnel",
                "--cacert",
                h2.ca_file.to_str().unwrap(),
                &url(&h2, "/bytes/2000"),
            ]);
            assert_eq!((code, body.len()), (200, 2000), "{headers}");
        },
    );
    let want = BTreeMap::from([(origin_label(&h2), 4), (origin_label(&h1), 3)]);
    assert_eq!(requests, want);
    assert!(errors.values().all(|n| *n == 0), "errors {errors:?}");
}

#[test]
fn whole_responses_over_http3_count_no_error() {
    let h3 = TestOrigin::start(OriginOptions {
        h3: true,
        ..OriginOptions::default()
    });
    let (requests, errors) = counted(host_for(&[&h3], VersionPref::Http3), vec![], |daemon| {
        for (args, path, want, body_len) in [
            (&[][..], "/bytes/3000", 200, Some(3000)),
            // The stream's end is never asked for: the head says
            // there is no body.
            (&["-I"][..], "/bytes/3000", 200, None),
            (&[][..], "/missing", 404, Some("no route /missing\n".len())),
        ] {
            let (code, headers, body) = via(daemon, args, &url(&h3, path));
            assert_eq!(
                (code, body_len.map(|_| body.len())),
                (want, body_len),
                "{args:?} {path}: {headers}"
            );
            assert!(headers.contains("x-origin-version: http/3.0"), "{headers}");
        }
    });
    assert_eq!(requests, BTreeMap::from([(origin_label(&h3), 3)]));
    assert!(errors.values().all(|n| *n == 0), "errors {errors:?}");
}
