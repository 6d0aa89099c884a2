//! A real Prometheus (Debian's, installed by scripts/setup.sh) scrapes a
//! real daemon's `/metrics` over its loopback TCP control listener with
//! the bearer token, after curl fetched through the daemon from nginx; the
//! test then asks Prometheus' HTTP API what it stored: `up`, the requests
//! by HTTP version and status class, the blocklist's calls, and the
//! request-stats probe's metrics labelled with its name. A second job with
//! a wrong token records `up == 0`, and curl without a token gets 401.
//! Off CI a missing prometheus skips the test, saying so.

use sockhost::control::status::Status;
use sockhost_tests::daemon::{curl, fetch, token_file, Daemon};
use sockhost_tests::nginx::Nginx;
use sockhost_tests::prometheus::{installed, Prometheus};

/// The daemon's status document, from its control socket.
fn status(d: &Daemon) -> Status {
    let (code, body) = d.control_api("GET", "/v1/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("the status document")
}

#[test]
fn prometheus_scrapes_the_daemon_with_its_token_and_stores_what_it_counted() {
    let Some(prometheus) = installed("prometheus", "prometheus_scrape") else {
        return;
    };
    let nginx = Nginx::start(&[("small.txt", 1024)]);
    let dir = tempfile::tempdir().unwrap();
    let good = token_file(dir.path(), "good", "0123456789abcdefghijkl");
    let bad = token_file(dir.path(), "bad", "lkjihgfedcba9876543210");
    let d = Daemon::start_with_control_port(&good);
    let control = d.control_tcp();
    let metrics_url = format!("http://{control}/metrics");

    // Without the token, or with another one: refused.
    let (code, _, body) = fetch(&[&metrics_url]);
    assert_eq!(code, 401, "{}", String::from_utf8_lossy(&body));
    let (code, _, _) = fetch(&[
        "-H",
        "Authorization: Bearer lkjihgfedcba9876543210",
        &metrics_url,
    ]);
    assert_eq!(code, 401);

    // Through the daemon to nginx: four 200s and a 404 over HTTP/1.1, two
    // 200s over HTTP/1.0.
    let proxy = d.proxy();
    let origin = format!("http://{}", nginx.http_addr);
    let requests: [(&str, &str, u16); 7] = [
        ("--http1.1", "/small.txt", 200),
        ("--http1.1", "/small.txt", 200),
        ("--http1.1", "/small.txt", 200),
        ("--http1.1", "/small.txt", 200),
        ("--http1.1", "/missing", 404),
        ("--http1.0", "/small.txt", 200),
        ("--http1.0", "/small.txt", 200),
    ];
    for (version, path, want) in requests {
        let url = format!("{origin}{path}");
        let (code, headers, body) = fetch(&[version, "-x", &proxy, &url]);
        assert_eq!(code, want, "{version} {url}: {headers}");
        if want == 200 {
            assert_eq!(body.len(), 1024, "{url}");
        }
    }

    let config = format!(
        "global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: sockhost
    authorization:
      type: Bearer
      credentials_file: {good}
    static_configs:
      - targets: [\"{control}\"]
  - job_name: wrong-token
    authorization:
      type: Bearer
      credentials_file: {bad}
    static_configs:
      - targets: [\"{control}\"]
",
        good = good.display(),
        bad = bad.display(),
    );
    let prometheus = Prometheus::start(prometheus, &config);

    let job = "job=\"sockhost\"";
    assert_eq!(prometheus.wait_for(&format!("up{{{job}}}"), |_| true), "1");
    assert_eq!(
        prometheus.wait_for("up{job=\"wrong-token\"}", |_| true),
        "0"
    );
    let stored = |version: &str, class: &str, want: &str| {
        let q = format!("sockhost_requests_total{{{job},version=\"{version}\",class=\"{class}\"}}");
        // What was counted before Prometheus started: the first scrape
        // stored it all.
        assert_eq!(prometheus.wait_for(&q, |_| true), want, "{q}");
    };
    stored("1.1", "2xx", "4");
    stored("1.1", "4xx", "1");
    stored("1.0", "2xx", "2");
    // The probe counts from the telemetry bus, which the requests fed
    // asynchronously: its total reaches the seven requests.
    let probe = format!("sum(sockhost_probe_requests_total{{{job},plugin=\"request-stats\"}})");
    assert_eq!(prometheus.wait_for(&probe, |v| v == "7"), "7");
    let histogram = format!(
        "sum(sockhost_probe_request_duration_seconds_count{{{job},plugin=\"request-stats\"}})"
    );
    assert_eq!(prometheus.wait_for(&histogram, |v| v == "7"), "7");
    assert_eq!(
        prometheus.wait_for(
            &format!("sockhost_telemetry_probe_up{{{job},plugin=\"request-stats\"}}"),
            |_| true
        ),
        "1"
    );

    // The blocklist saw every request; Prometheus stored what the status
    // says it was called (scrapes do not call it).
    let calls = status(&d)
        .plugins
        .iter()
        .find(|p| p.name == "blocklist")
        .expect("the blocklist in the status")
        .calls;
    assert!(calls >= 7, "the blocklist was called {calls} times");
    let q = format!("sockhost_plugin_calls_total{{{job},plugin=\"blocklist\"}}");
    assert_eq!(prometheus.wait_for(&q, |_| true), calls.to_string(), "{q}");
    let q = format!("sockhost_plugin_active{{{job},plugin=\"blocklist\"}}");
    assert_eq!(prometheus.wait_for(&q, |_| true), "1", "{q}");

    // The right token by curl too (what Prometheus was given works).
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Authorization: Bearer 0123456789abcdefghijkl",
        &metrics_url,
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    assert!(!d.log().contains("panicked"), "{}", d.log());
}
