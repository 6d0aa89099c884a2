//! `sockhost serve` with unchanged clients nobody here wrote: curl through
//! the daemon as an HTTP proxy (absolute form), over its Unix socket with
//! an https request target, and with h2c prior knowledge, to nginx; and
//! the statuses a client gets when the daemon cannot or will not forward.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use sockhost_tests::daemon::Daemon;
use sockhost_tests::nginx::Nginx;
use sockhost_tests::sockhost_bin;

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs")
}

/// `curl -w` status, headers (`-D -` is mixed into stdout) and body.
fn fetch(args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("h");
    let body = dir.path().join("b");
    let out = curl(
        &[
            args,
            &[
                "-D",
                headers.to_str().unwrap(),
                "-o",
                body.to_str().unwrap(),
                "-w",
                "%{http_code}",
            ],
        ]
        .concat(),
    );
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (
        code,
        std::fs::read_to_string(headers)
            .unwrap_or_default()
            .to_lowercase(),
        std::fs::read(body).unwrap_or_default(),
    )
}

fn small() -> Vec<u8> {
    (0..1000)
        .map(sockhost_tests::origin::pattern_byte)
        .collect()
}

#[test]
fn curl_fetches_http_and_https_from_nginx_through_the_daemon() {
    let nginx = Nginx::start(&[("small.txt", 1000)]);
    let (http_port, https_port) = (nginx.http_addr.port(), nginx.addr.port());
    let mut daemon = Daemon::start(&[
        "--resolve".into(),
        format!("nginx.test:{http_port}:127.0.0.1"),
        "--resolve".into(),
        format!("nginx.test:{https_port}:127.0.0.1"),
        "--ca".into(),
        nginx.ca_file.display().to_string(),
    ]);
    let plain = format!("http://nginx.test:{http_port}/small.txt");

    // curl -x: an absolute-form request over HTTP/1.1.
    let (code, headers, body) = fetch(&["-x", &daemon.proxy(), &plain]);
    assert_eq!(code, 200, "{headers}");
    assert_eq!(body, small());
    assert!(headers.contains("via: 1.1 sockhost"), "{headers}");
    assert!(headers.contains("server-timing: dns;dur="), "{headers}");

    // Two requests on one client connection: kept alive.
    let out = curl(&[
        "-v",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-x",
        &daemon.proxy(),
        &plain,
        &plain,
    ]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.to_lowercase().contains("re-using existing connection"),
        "{log}"
    );

    // h2c with prior knowledge: curl connects to the daemon and names the
    // origin in :scheme and :authority, which is an absolute URL in HTTP/2.
    let to_daemon = format!(
        "nginx.test:{http_port}:{}:{}",
        daemon.addr.ip(),
        daemon.addr.port()
    );
    let (code, headers, body) = fetch(&[
        "--http2-prior-knowledge",
        "--connect-to",
        &to_daemon,
        &plain,
    ]);
    assert_eq!(code, 200, "{headers}");
    assert!(headers.starts_with("http/2 200"), "{headers}");
    // Via names the protocol the daemon received the response in.
    assert!(headers.contains("via: 1.1 sockhost"), "{headers}");
    assert_eq!(body, small());

    // The Unix socket, with an https target: the daemon makes the TLS
    // connection (HTTP/2 to nginx by ALPN) and answers in cleartext.
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let secure = format!("https://nginx.test:{https_port}/small.txt");
    let socket = daemon.socket.display().to_string();
    let (code, headers, body) = fetch(&[
        "--unix-socket",
        &socket,
        "--request-target",
        &secure,
        "http://localhost/",
    ]);
    assert_eq!(code, 200, "{headers}");
    assert_eq!(body, small());
    assert!(headers.contains("via: 2 sockhost"), "{headers}");

    // SIGTERM: a clean exit that removes the socket.
    assert!(daemon.stop().success());
    assert!(!daemon.socket.exists());
}

#[test]
fn what_cannot_be_forwarded_gets_a_status_and_a_reason() {
    let nginx = Nginx::start(&[("small.txt", 1000)]);
    let port = nginx.http_addr.port();
    let daemon = Daemon::start(&["--resolve".into(), format!("ads.example:{port}:127.0.0.1")]);
    let proxy = daemon.proxy();
    let cases: Vec<(Vec<String>, u16, &str)> = vec![
        // DNS failure.
        (
            vec![
                "-x".into(),
                proxy.clone(),
                "http://nonexistent.invalid/".into(),
            ],
            502,
            "could not resolve nonexistent.invalid",
        ),
        // Refused: nothing listens on port 1.
        (
            vec!["-x".into(), proxy.clone(), "http://127.0.0.1:1/".into()],
            502,
            "could not connect",
        ),
        // The built-in blocklist cancels an ad host, before connecting.
        (
            vec![
                "-x".into(),
                proxy.clone(),
                format!("http://ads.example:{port}/ad.js"),
            ],
            403,
            "blocked by extension blocklist",
        ),
        // Origin form, sent to the proxy as if it were a server.
        (vec![format!("{proxy}/index.html")], 400, "absolute URL"),
        // A request for the proxy itself.
        (
            vec!["-x".into(), proxy.clone(), format!("{proxy}/")],
            508,
            "proxy itself",
        ),
    ];
    for (args, status, words) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, headers, body) = fetch(&args);
        let body = String::from_utf8_lossy(&body);
        assert_eq!(code, status, "{args:?}: {headers}{body}");
        assert_eq!(body.lines().count(), 1, "{args:?}: {body}");
        assert!(body.contains(words), "{args:?}: {body}");
    }
    // JSON for a client that asks for it.
    let (code, _, body) = fetch(&[
        "-H",
        "Accept: application/json",
        "-x",
        &proxy,
        "http://nonexistent.invalid/",
    ]);
    assert_eq!(code, 502);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], 502);
    assert!(
        v["error"].as_str().unwrap().contains("could not resolve"),
        "{v}"
    );
}

#[test]
fn curl_tunnels_https_through_connect() {
    let nginx = Nginx::start(&[("small.txt", 1000)]);
    let port = nginx.addr.port();
    let daemon = Daemon::start(&[
        "--resolve".into(),
        format!("nginx.test:{port}:127.0.0.1"),
        "--connect-port".into(),
        port.to_string(),
        "--connect-port".into(),
        "443".into(),
    ]);
    let proxy = daemon.proxy();
    let ca = nginx.ca_file.display().to_string();
    // curl's own TLS to nginx, through a blind tunnel.
    let (code, headers, body) = fetch(&[
        "-x",
        &proxy,
        "--cacert",
        &ca,
        &format!("https://nginx.test:{port}/small.txt"),
    ]);
    assert_eq!(code, 200, "{headers}");
    assert_eq!(body, small());
    assert!(!headers.contains("via: 2 sockhost"), "blind: {headers}");
    // Only the connect ports tunnel; the blocklist decides at host level
    // (ads.example:443 is a connect port: the 403 is the blocklist's, before
    // any DNS, which would have failed with 502).
    for url in [
        format!("https://nginx.test:{}/", port + 1),
        "https://ads.example/".to_owned(),
    ] {
        let out = curl(&["-v", "-x", &proxy, "--cacert", &ca, &url]);
        let log = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(!out.status.success(), "{url}: {log}");
        assert!(log.contains("403 forbidden"), "{url}: {log}");
    }
}

#[test]
fn an_intercepting_daemon_sees_the_requests_inside_https() {
    let nginx = Nginx::start(&[("small.txt", 1000)]);
    let port = nginx.addr.port();
    let connect_ports = [
        "--connect-port".to_owned(),
        port.to_string(),
        "--connect-port".into(),
        "443".into(),
    ];
    let resolve = [
        "--resolve".to_owned(),
        format!("nginx.test:{port}:127.0.0.1"),
    ];
    let trusting = ["--ca".to_owned(), nginx.ca_file.display().to_string()];
    let daemon = Daemon::start(
        &[
            &["--intercept".to_owned()][..],
            &connect_ports,
            &resolve,
            &trusting,
        ]
        .concat(),
    );
    // The local CA the daemon made on start, as `sockhost ca export` gives it.
    let local_ca = daemon.dir.path().join("data/sockhost/ca/ca-cert.pem");
    let local_ca = local_ca.display().to_string();
    let proxy = daemon.proxy();
    let url = format!("https://nginx.test:{port}/small.txt");
    let (code, headers, body) = fetch(&["-x", &proxy, "--cacert", &local_ca, &url]);
    assert_eq!(code, 200, "{headers}");
    assert_eq!(body, small());
    // The daemon fetched it (over HTTP/2 to nginx), not the client.
    assert!(headers.contains("via: 2 sockhost"), "{headers}");
    // Extensions see the full URL inside: the blocklist answers for an ad
    // host from within the tunnel.
    let (code, _, body) = fetch(&[
        "-x",
        &proxy,
        "--cacert",
        &local_ca,
        "https://ads.example/ad.js",
    ]);
    assert_eq!(code, 403);
    assert!(String::from_utf8_lossy(&body).contains("blocked by extension blocklist"));
    // A client that does not trust the local CA gets no answer at all.
    let out = curl(&[
        "-x",
        &proxy,
        "--cacert",
        &nginx.ca_file.display().to_string(),
        &url,
    ]);
    assert!(!out.status.success());

    // An upstream certificate the daemon does not trust is never hidden:
    // 502 naming the failure.
    let daemon =
        Daemon::start(&[&["--intercept".to_owned()][..], &connect_ports, &resolve].concat());
    let local_ca = daemon.dir.path().join("data/sockhost/ca/ca-cert.pem");
    let (code, _, body) = fetch(&[
        "-x",
        &daemon.proxy(),
        "--cacert",
        &local_ca.display().to_string(),
        &url,
    ]);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("unknown issuer"), "{body}");
}

#[test]
fn listeners_are_private_and_not_shared() {
    // Not loopback: refused, in one line.
    let out = Command::new(sockhost_bin())
        .args(["serve", "--no-unix", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.starts_with("error: ") && err.contains("loopback"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // A live daemon's socket is not taken over.
    let daemon = Daemon::start(&[]);
    let out = Command::new(sockhost_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--unix"])
        .arg(&daemon.socket)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("already listening"), "{err}");
}
