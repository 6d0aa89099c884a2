//! `sockhost fetch` as a user runs it, against the in-repo origin.

use std::process::Command;

use sockhost_tests::origin::{OriginOptions, TestOrigin};
use sockhost_tests::sockhost_bin;

fn fetch(origin: &TestOrigin, extra: &[&str], path: &str) -> std::process::Output {
    Command::new(sockhost_bin())
        .arg("fetch")
        .arg(format!("https://www.test:{}{path}", origin.addr.port()))
        .arg("--resolve")
        .arg(format!("www.test:{}:127.0.0.1", origin.addr.port()))
        .arg("--ca")
        .arg(&origin.ca_file)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn fetch_prints_the_body_or_one_json_object() {
    let origin = TestOrigin::start(OriginOptions::default());
    let out = fetch(&origin, &[], "/");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"hello from the test origin\n");

    let out = fetch(&origin, &["--json", "--http1.1"], "/bytes/1000");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["status"], 200);
    assert_eq!(v["http_version"], "HTTP/1.1");
    assert_eq!(v["bytes"], 1000);
    assert_eq!(
        v["remote_address"],
        format!("127.0.0.1:{}", origin.addr.port())
    );
    assert_eq!(v["tls"]["alpn"], "http/1.1");
    for t in ["dns", "connect", "tls", "first_byte", "total"] {
        assert!(v["timings_ms"][t].as_f64().is_some(), "{t}: {v}");
    }
    assert_eq!(v["attempts"][0]["outcome"], "won");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    let out = fetch(
        &origin,
        &["-o", file.to_str().unwrap(), "-H", "X-Test: 1"],
        "/headers",
    );
    assert!(out.status.success());
    let body = std::fs::read_to_string(&file).unwrap();
    assert!(body.contains("x-test: 1"), "{body}");
}

#[test]
fn failures_are_one_line_and_exit_non_zero() {
    let origin = TestOrigin::start(OriginOptions::default());
    let run = |args: &[&str]| {
        let out = Command::new(sockhost_bin())
            .arg("fetch")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        (out.status.success(), err)
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for (args, words) in [
        (vec!["not a url".to_owned()], "invalid URL"),
        (
            vec![
                "https://www.test/".to_owned(),
                "--resolve".into(),
                "bogus".into(),
            ],
            "--resolve",
        ),
        (
            vec![format!("https://127.0.0.1:{}/", closed.port())],
            "could not connect",
        ),
        // No --ca: the private CA is unknown.
        (
            vec![
                format!("https://www.test:{}/", origin.addr.port()),
                "--resolve".into(),
                format!("www.test:{}:127.0.0.1", origin.addr.port()),
            ],
            "unknown issuer",
        ),
        (
            vec![
                "https://nonexistent.invalid/".to_owned(),
                "--dns-server".into(),
                "127.0.0.1:9".into(),
                "--max-time".into(),
                "3".into(),
            ],
            "could not resolve nonexistent.invalid",
        ),
        // Nothing answers QUIC on the origin's UDP port: --max-time ends
        // the wait, connection setup included.
        (
            vec![
                format!("https://www.test:{}/", origin.addr.port()),
                "--resolve".into(),
                format!("www.test:{}:127.0.0.1", origin.addr.port()),
                "--ca".into(),
                origin.ca_file.display().to_string(),
                "--http3".into(),
                "--max-time".into(),
                "1".into(),
            ],
            "--max-time",
        ),
    ] {
        let (ok, err) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!ok, "{args:?} succeeded");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("error: ") && err.contains(words),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn the_default_plugins_act_on_live_requests() {
    let origin = TestOrigin::start(OriginOptions::default());
    let port = origin.addr.port();
    // The built-in blocklist cancels an ad host before connecting.
    let out = Command::new(sockhost_bin())
        .args(["fetch", &format!("https://ads.example:{port}/x.js")])
        .args(["--resolve", &format!("ads.example:{port}:127.0.0.1")])
        .arg("--ca")
        .arg(&origin.ca_file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("blocked by extension blocklist"), "{err}");
    assert_eq!(origin.connections(), 0);

    // Its hook strips tracking parameters; request-stats counts the request.
    let out = fetch(&origin, &["--json", "--metrics"], "/?utm_source=x&page=2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["url_fetched"], format!("https://www.test:{port}/?page=2"));
    let actions = v["plugin_actions"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a["plugin"] == "blocklist" && a["action"] == "hook-redirect"),
        "{actions:?}"
    );
    let metrics = v["metrics"].as_str().unwrap();
    assert!(
        metrics.contains(&format!(
            "sockhost_requests_total{{origin=\"https://www.test:{port}\"}} 1"
        )),
        "{metrics}"
    );

    // Without the defaults, nothing acts.
    let out = fetch(
        &origin,
        &["--json", "--no-default-plugins"],
        "/?utm_source=x",
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plugin_actions"].as_array().unwrap().len(), 0);
}

#[test]
fn fetch_http3_speaks_quic_and_says_so() {
    let origin = TestOrigin::start(OriginOptions {
        h3: true,
        ..OriginOptions::default()
    });
    for extra in [
        &["--json", "--http3"][..],
        &["--json", "--http3", "--no-udp-batching"],
    ] {
        let out = fetch(&origin, extra, "/bytes/200000");
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(v["http_version"], "HTTP/3", "{v}");
        assert_eq!(v["bytes"], 200000);
        assert_eq!(v["tls"]["alpn"], "h3", "{v}");
        assert_eq!(v["attempts"][0]["outcome"], "won", "{v}");
        assert_eq!(v["attempts"][0]["transport"], "quic", "{v}");
    }
    assert_eq!(origin.connections(), 0, "no TCP for --http3");
}

/// The output of a successful `sockhost fetch` as JSON.
fn json(out: std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// `sockhost fetch --json` of `https://www.test:PORT/` on `origin`, with
/// `data` as the data directory (where the Alt-Svc cache lives across runs).
fn fetch_json_with_data(
    data: &std::path::Path,
    origin: &TestOrigin,
    cas: &[&std::path::Path],
) -> serde_json::Value {
    let mut cmd = Command::new(sockhost_bin());
    cmd.env("XDG_DATA_HOME", data)
        .arg("fetch")
        .arg(format!("https://www.test:{}/", origin.addr.port()))
        .arg("--resolve")
        .arg(format!("www.test:{}:127.0.0.1", origin.addr.port()))
        .arg("--json");
    for ca in cas {
        cmd.arg("--ca").arg(ca);
    }
    json(cmd.output().unwrap())
}

#[test]
fn alt_svc_learned_in_one_run_upgrades_the_next_to_http3() {
    let origin = TestOrigin::start(OriginOptions {
        h3: true,
        advertise_h3: true,
        ..OriginOptions::default()
    });
    let data = tempfile::tempdir().unwrap();
    let run = || fetch_json_with_data(data.path(), &origin, &[&origin.ca_file]);
    let first = run();
    assert_eq!(first["http_version"], "HTTP/2.0", "{first}");
    let saved = std::fs::read_to_string(data.path().join("sockhost/alt-svc.json")).unwrap();
    assert!(saved.contains("\"h3\""), "{saved}");
    let second = run();
    assert_eq!(second["http_version"], "HTTP/3", "{second}");
    // QUIC led; TCP was planned behind it (a head start) and not needed.
    let attempts = second["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["transport"], "quic", "{second}");
    assert_eq!(attempts[0]["outcome"], "won", "{second}");
    assert!(
        second["winner"]
            .as_str()
            .unwrap()
            .starts_with("the first QUIC attempt"),
        "{second}"
    );
    assert!(attempts.iter().any(|a| a["transport"] == "tcp"), "{second}");
    assert_eq!(origin.quic_connections(), 1);
}

/// Both upgrade paths end at aioquic's HTTP/3 server, an implementation
/// nobody here wrote: an HTTPS record with `alpn=h3` makes the very first
/// connection QUIC to it; an `Alt-Svc` header from the in-repo origin
/// (pointing at aioquic's port on the same host) makes the next run QUIC.
#[test]
fn both_upgrade_paths_reach_aioquics_http3() {
    use sockhost_tests::dns::{TestDns, TestRecord};
    let Some(aio) = sockhost_tests::aioquic::start_or_skip() else {
        return;
    };
    let aio_at = format!("127.0.0.1:{}", aio.addr.port());

    // HTTPS record: www.test at 127.0.0.1, h3 on aioquic's port.
    let dns = TestDns::start(
        "test.",
        300,
        &[
            TestRecord::A("www.test.", std::net::Ipv4Addr::LOCALHOST),
            TestRecord::Https {
                name: "www.test.",
                priority: 1,
                alpn: vec!["h3"],
                port: Some(aio.addr.port()),
                ipv4_hints: vec![],
                ipv6_hints: vec![],
            },
        ],
    );
    let data = tempfile::tempdir().unwrap();
    let v = json(
        Command::new(sockhost_bin())
            .env("XDG_DATA_HOME", data.path())
            .args(["fetch", "https://www.test/", "--json", "--dns-server"])
            .arg(dns.addr.to_string())
            .arg("--ca")
            .arg(&aio.ca_file)
            .output()
            .unwrap(),
    );
    assert_eq!(v["http_version"], "HTTP/3", "{v}");
    assert_eq!(v["remote_address"], aio_at.as_str(), "{v}");
    assert_eq!(v["bytes"], "hello from aioquic\n".len(), "{v}");

    // Alt-Svc: the in-repo origin (h2) names aioquic's port.
    let origin = TestOrigin::start(OriginOptions {
        alt_svc: Some(format!("h3=\":{}\"; ma=3600", aio.addr.port())),
        ..OriginOptions::default()
    });
    let data = tempfile::tempdir().unwrap();
    let run = || fetch_json_with_data(data.path(), &origin, &[&origin.ca_file, &aio.ca_file]);
    let first = run();
    assert_eq!(first["http_version"], "HTTP/2.0", "{first}");
    let second = run();
    assert_eq!(second["http_version"], "HTTP/3", "{second}");
    assert_eq!(second["remote_address"], aio_at.as_str(), "{second}");
    assert_eq!(second["bytes"], "hello from aioquic\n".len(), "{second}");
}

#[test]
fn congestion_is_chosen_on_the_command_line_and_reported() {
    let origin = TestOrigin::start(OriginOptions {
        h3: true,
        ..OriginOptions::default()
    });
    for (name, arg) in [
        ("native-cubic", None),
        ("cubic", Some("cubic".to_owned())),
        ("newreno", Some("newreno".to_owned())),
        (
            "newreno",
            Some(
                sockhost_tests::plugin("newreno")
                    .to_string_lossy()
                    .into_owned(),
            ),
        ),
    ] {
        let mut extra = vec!["--json", "--http3"];
        if let Some(a) = &arg {
            extra.extend(["--congestion", a.as_str()]);
        }
        let v = json(fetch(&origin, &extra, "/bytes/3000000"));
        assert_eq!(v["bytes"], 3_000_000);
        assert_eq!(v["congestion"]["controller"], name, "{v}");
        assert!(v["congestion"]["fault"].is_null(), "{v}");
    }
    // Over TCP the kernel controls congestion: nothing to report.
    let v = json(fetch(&origin, &["--json", "--http2"], "/"));
    assert!(v["congestion"].is_null(), "{v}");
    // A name that is neither built in nor a manifest: one line, exit 1.
    let out = fetch(&origin, &["--http3", "--congestion", "bbr"], "/");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--congestion: unknown controller \"bbr\"") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn a_config_file_loads_what_it_lists_and_flags_add_to_it() {
    let origin = TestOrigin::start(OriginOptions::default());
    let port = origin.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sockhost.toml");
    // No `builtin = true`: the listed probe runs, the blocklist does not.
    std::fs::write(
        &config,
        format!(
            "[plugins]\nprobes = [{:?}]\n",
            sockhost_tests::plugin("request-stats")
        ),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    let v = json(fetch(
        &origin,
        &["--json", "--metrics", "--config", config_arg],
        "/?utm_source=x",
    ));
    assert_eq!(v["plugin_actions"].as_array().unwrap().len(), 0, "{v}");
    let metrics = v["metrics"].as_str().unwrap();
    assert!(
        metrics.contains(&format!(
            "sockhost_requests_total{{origin=\"https://www.test:{port}\"}} 1"
        )),
        "{metrics}"
    );

    // --extension adds to what the file lists.
    let blocklist = sockhost_tests::plugin("blocklist");
    let v = json(fetch(
        &origin,
        &[
            "--json",
            "--config",
            config_arg,
            "--extension",
            blocklist.to_str().unwrap(),
        ],
        "/?utm_source=x&page=2",
    ));
    assert_eq!(v["url_fetched"], format!("https://www.test:{port}/?page=2"));

    // A manifest that is not there: one line naming the field and the file.
    std::fs::write(
        &config,
        "[plugins]\nextensions = [\"missing/plugin.toml\"]\n",
    )
    .unwrap();
    let out = fetch(&origin, &["--config", config_arg], "/");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let missing = dir.path().join("missing/plugin.toml");
    assert!(
        err.starts_with("error: plugins.extensions[0]: ")
            && err.contains(missing.to_str().unwrap())
            && err.lines().count() == 1,
        "{err}"
    );
}
