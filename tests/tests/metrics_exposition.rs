//! `/metrics` read by Prometheus' own linter: the daemon's proxy (in
//! process, on a loopback port) answers curl's requests over HTTP/1.0
//! and HTTP/1.1 with the real request-stats probe on its bus; the
//! exposition of those counts, of a status snapshot with every section
//! filled, and of the probe's metrics goes through `promtool check
//! metrics` (Debian's `prometheus`, installed by scripts/setup.sh), which
//! must find nothing at all, and is left in
//! `target/tmp/metrics_exposition.txt`. Off CI a
//! missing promtool skips the test, saying so; with `CI=true` it fails.
//! And a real Prometheus (the same package) scrapes the exposition in
//! OpenMetrics, which promtool does not read, and answers queries of what
//! it stored.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sockhost::control::metrics::{render, Format, ProxyMetrics};
use sockhost::control::status::{
    ConnectionStatus, OriginStatus, PluginState, PluginStatus, Status,
};
use sockhost_tests::daemon::fetch;
use sockhost_tests::origin::{OriginOptions, TestOrigin};
use sockhost_tests::prometheus::{installed, Prometheus};
use sockhost_tests::{origin_host, probed_proxy};

/// `promtool check metrics` of `text`: its exit code and what it printed.
fn check(promtool: &str, text: &str) -> (Option<i32>, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

/// A snapshot with every section the exposition reads filled.
fn status() -> Status {
    let conn = |protocol: &str| ConnectionStatus {
        protocol: protocol.into(),
        peer: "127.0.0.1:443".into(),
        active: 1,
        congestion: None,
    };
    let mut faults = std::collections::BTreeMap::new();
    faults.insert("trap".to_owned(), 2);
    faults.insert("deadline".to_owned(), 1);
    let mut s = Status {
        pool: vec![OriginStatus {
            origin: "https://www.test:443".into(),
            connections: vec![conn("http/1.1"), conn("h2"), conn("h3")],
            queued: 2,
        }],
        pool_waiting: 2,
        plugins: vec![
            PluginStatus {
                name: "request-stats".into(),
                world: "telemetry-probe".into(),
                calls: 40,
                instances: 1,
                memory_bytes: vec![1 << 17],
                memory_limit_bytes: 1 << 24,
                memory_peak_bytes: 1 << 17,
                ..PluginStatus::default()
            },
            PluginStatus {
                name: "blocklist".into(),
                world: "extension".into(),
                calls: 100,
                faults,
                restarts: 3,
                instances: 2,
                memory_bytes: vec![1 << 16, 1 << 17],
                memory_limit_bytes: 1 << 20,
                memory_peak_bytes: 1 << 18,
                state: PluginState::Disabled {
                    by: "faults".into(),
                },
                ..PluginStatus::default()
            },
        ],
        ..Status::default()
    };
    s.process.generation = 2;
    s.process.started_unix_ms = 1_796_000_000_000;
    s.process.crashes.total = 1;
    s.clients.connections = 1;
    s.dns.lookups = 5;
    s.dns.cache_hits = 4;
    s.dns.cache_entries = 1;
    s.telemetry.probes = 1;
    s.telemetry.published = 80;
    s.memory.rss_bytes = 50 << 20;
    s.memory.wasm_bytes = 1 << 19;
    s.plugins[1].call_time.total_us = 2_500;
    s.plugins[1].call_time.max_us = 900;
    s
}

/// What the proxy and the probe counted of curl's requests.
struct Counted {
    metrics: Arc<ProxyMetrics>,
    probes: probed_proxy::Collected,
    /// The origin's port (in the probe's `origin` label).
    port: u16,
}

/// The proxy in process with the real request-stats probe, and five
/// requests through it by curl: HTTP/1.1 and 1.0, 200s, a 404 and an
/// upload of 700 bytes.
fn count_requests() -> Counted {
    let origin = TestOrigin::start(OriginOptions::default());
    let port = origin.addr.port();
    let metrics = Arc::new(ProxyMetrics::default());
    let upload = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(upload.path(), vec![b'u'; 700]).unwrap();
    let upload_arg = format!("@{}", upload.path().display());
    let probes = probed_proxy::with_request_stats(
        origin_host(&origin),
        |proxy| proxy.count_to(metrics.clone()),
        |daemon| {
            let target = |path: &str| format!("https://www.test:{port}{path}");
            let requests: [(&[&str], &str, u16); 5] = [
                (&["--http1.1"], "/bytes/1000", 200),
                (&["--http1.0"], "/bytes/2000", 200),
                (&["--http1.1"], "/", 200),
                (&["--http1.1"], "/missing", 404),
                (
                    &["--http1.1", "-X", "POST", "--data-binary", &upload_arg],
                    "/sink",
                    200,
                ),
            ];
            for (args, path, want) in requests {
                let url = target(path);
                let (code, headers, _) =
                    fetch(&[args, &["--request-target", &url, daemon]].concat());
                assert_eq!(code, want, "{args:?} {path}: {headers}");
            }
        },
    );
    assert!(probes[0].1.is_ok(), "{probes:?}");
    Counted {
        metrics,
        probes,
        port,
    }
}

#[test]
fn promtool_accepts_the_exposition_of_the_host_and_of_request_stats() {
    let Some(promtool) = installed("promtool", "metrics_exposition") else {
        return;
    };
    let Counted {
        metrics,
        probes,
        port,
    } = count_requests();

    let text = render(&status(), &metrics, &probes, Format::Text);
    for line in [
        "sockhost_requests_total{version=\"1.1\",class=\"2xx\"} 3\n",
        "sockhost_requests_total{version=\"1.1\",class=\"4xx\"} 1\n",
        "sockhost_requests_total{version=\"1.0\",class=\"2xx\"} 1\n",
        "sockhost_proxied_body_bytes_total{direction=\"to-origin\"} 700\n",
        "sockhost_pool_connections{protocol=\"h3\"} 1\n",
        "sockhost_plugin_faults_total{plugin=\"blocklist\",kind=\"trap\"} 2\n",
        "sockhost_telemetry_probe_up{plugin=\"request-stats\"} 1\n",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    let to_client = text
        .lines()
        .find_map(|l| l.strip_prefix("sockhost_proxied_body_bytes_total{direction=\"to-client\"} "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no body bytes to clients in\n{text}"));
    assert!(to_client >= 3000, "{to_client} bytes to clients\n{text}");
    let probe_requests = format!(
        "sockhost_probe_requests_total{{plugin=\"request-stats\",origin=\"https://www.test:{port}\"}} 5\n"
    );
    assert!(
        text.contains(&probe_requests),
        "{probe_requests} not in\n{text}"
    );
    for histogram in ["request_duration_seconds", "time_to_first_byte_seconds"] {
        let count = format!(
            "sockhost_probe_{histogram}_count{{plugin=\"request-stats\",origin=\"https://www.test:{port}\"}} "
        );
        assert!(text.contains(&count), "{count} not in\n{text}");
    }
    // Every response came whole (curl checked each status and read each
    // body to its end): the probe counts no failed request. The origin
    // speaks HTTP/2 and ends a streamed body in a frame of its own after
    // the last byte, which the proxy's HTTP/1.x side never reads once it
    // has sent the Content-Length it relayed.
    let errors = format!(
        "sockhost_probe_request_errors_total{{plugin=\"request-stats\",origin=\"https://www.test:{port}\"}} 0\n"
    );
    assert!(text.contains(&errors), "{errors} not in\n{text}");

    // For people to read.
    let saved = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("metrics_exposition.txt");
    std::fs::write(&saved, &text).unwrap();
    let (code, said) = check(promtool, &text);
    println!("promtool check metrics: exit {code:?}\n{said}");
    // Not one finding, the probe's metrics included.
    assert_eq!((code, said.as_str()), (Some(0), ""), "{text}");
    let host_only = render(&status(), &metrics, &[], Format::Text);
    let (code, said) = check(promtool, &host_only);
    assert_eq!((code, said.as_str()), (Some(0), ""), "{host_only}");

    let openmetrics = render(&status(), &metrics, &probes, Format::OpenMetrics);
    assert!(openmetrics.ends_with("# EOF\n"));
    assert!(openmetrics.contains("# TYPE sockhost_requests counter\n"));
}

#[test]
fn prometheus_scrapes_openmetrics_and_stores_what_was_counted() {
    let Some(prometheus) = installed("prometheus", "metrics_exposition") else {
        return;
    };
    let Counted {
        metrics, probes, ..
    } = count_requests();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let target = listener.local_addr().unwrap();
    let accepts = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = accepts.clone();
    let exposed = Arc::new((status(), metrics, probes));
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (exposed, seen) = (exposed.clone(), seen.clone());
            let answer = hyper::service::service_fn(move |req: http::Request<_>| {
                let accept = req
                    .headers()
                    .get(http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let format = Format::from_accept(accept.as_deref());
                seen.lock().unwrap().push(accept.unwrap_or_default());
                let (status, metrics, probes) = &*exposed;
                let body = render(status, metrics, probes, format);
                let response = http::Response::builder()
                    .header(http::header::CONTENT_TYPE, format.content_type())
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)));
                async move { response }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), answer),
            );
        }
    });

    let prometheus = Prometheus::start(
        prometheus,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: sockhost\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    );

    let want = "sockhost_requests_total{version=\"1.1\",class=\"2xx\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let got = prometheus.query(want);
        if !got.is_empty() {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus stored no {want} within 60 s; scrapes: {:?}",
            accepts.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(stored[0].1, "3", "{stored:?}");
    let value = |q: &str| {
        let got = prometheus.query(q);
        assert_eq!(got.len(), 1, "{q}: {got:?}");
        got[0].1.clone()
    };
    assert_eq!(value("up{job=\"sockhost\"}"), "1");
    assert_eq!(
        value("sockhost_proxied_body_bytes_total{direction=\"to-origin\"}"),
        "700"
    );
    assert_eq!(
        value("sockhost_plugin_faults_total{plugin=\"blocklist\",kind=\"trap\"}"),
        "2"
    );
    assert_eq!(value("sockhost_pool_connections{protocol=\"h2\"}"), "1");
    assert_eq!(
        value("sum(sockhost_probe_requests_total{plugin=\"request-stats\"})"),
        "5"
    );
    assert_eq!(
        value("sum(sockhost_probe_request_duration_seconds_count{plugin=\"request-stats\"})"),
        "5"
    );
    let accepts = accepts.lock().unwrap();
    assert!(
        accepts
            .iter()
            .all(|a| Format::from_accept(Some(a)) == Format::OpenMetrics),
        "Prometheus asked for {accepts:?}"
    );
}
