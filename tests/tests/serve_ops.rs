//! `sockhost serve` operated as a daemon, with curl and raw sockets as
//! clients: remote clients authenticate (407 otherwise), the access log
//! has a JSON line per request, plugin actions come back in
//! `Sockhost-Actions` when asked, the `[serve]` limits close idle clients
//! and tunnels and queue clients over `max-clients`, and a SIGTERM saves
//! the Alt-Svc cache. Every daemon listens on loopback only.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sockhost_tests::daemon::{curl, fetch, Daemon};
use sockhost_tests::nginx::Nginx;
use sockhost_tests::origin::{OriginOptions, TestOrigin};
use sockhost_tests::sockhost_bin;

/// A credentials file with `alice:s3cret`, mode `mode`.
fn credentials(dir: &Path, mode: u32) -> PathBuf {
    let path = dir.join("users");
    std::fs::write(&path, "# who may use the proxy\nalice:s3cret\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// Every client authenticates against `users`.
fn authenticating(users: &Path) -> Vec<String> {
    vec![
        "--allow-remote".into(),
        "--credentials".into(),
        users.display().to_string(),
    ]
}

/// `nginx.test` is nginx, on both its ports.
fn to_nginx(nginx: &Nginx) -> Vec<String> {
    [nginx.http_addr.port(), nginx.addr.port()]
        .iter()
        .flat_map(|port| ["--resolve".into(), format!("nginx.test:{port}:127.0.0.1")])
        .collect()
}

/// A config file at `dir/config.toml` with the built-in plugins and `serve`.
fn config(dir: &Path, serve: &str) -> String {
    let path = dir.join("config.toml");
    std::fs::write(&path, format!("[plugins]\nbuiltin = true\n{serve}")).unwrap();
    path.display().to_string()
}

/// `sockhost serve ARGS` that must not start: its one-line error.
fn refused_start(args: &[&str]) -> String {
    let out = Command::new(sockhost_bin())
        .arg("serve")
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[test]
fn remote_clients_authenticate_on_every_listener() {
    let nginx = Nginx::start(&[("small.txt", 1000)]);
    let (http_port, https_port) = (nginx.http_addr.port(), nginx.addr.port());
    let dir = tempfile::tempdir().unwrap();
    let users = credentials(dir.path(), 0o600);
    // Loopback is all a test may listen on; allow-remote still makes every
    // client authenticate.
    let daemon = Daemon::start(
        &[
            authenticating(&users),
            to_nginx(&nginx),
            vec!["--connect-port".into(), https_port.to_string()],
        ]
        .concat(),
    );
    let proxy = daemon.proxy();
    let url = format!("http://nginx.test:{http_port}/small.txt");
    let (code, headers, body) = fetch(&["-x", &proxy, &url]);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(code, 407, "{headers}{body}");
    assert!(
        headers.contains("proxy-authenticate: basic realm=\"sockhost\""),
        "{headers}"
    );
    assert_eq!(body.lines().count(), 1, "{body}");
    assert!(body.contains("proxy authentication required"), "{body}");
    let (code, _, body) = fetch(&["-x", &proxy, "--proxy-user", "alice:wrong", &url]);
    assert_eq!(code, 407);
    assert!(String::from_utf8_lossy(&body).contains("wrong user or password"));
    let (code, headers, body) = fetch(&["-x", &proxy, "--proxy-user", "alice:s3cret", &url]);
    assert_eq!(code, 200, "{headers}");
    assert_eq!(body.len(), 1000);

    // CONNECT too: curl reports the proxy's 407, then succeeds with it.
    let ca = nginx.ca_file.display().to_string();
    let secure = format!("https://nginx.test:{https_port}/small.txt");
    let out = curl(&["-v", "-x", &proxy, "--cacert", &ca, &secure]);
    let log = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("407"), "{log}");
    let (code, headers, body) = fetch(&[
        "-x",
        &proxy,
        "--proxy-user",
        "alice:s3cret",
        "--cacert",
        &ca,
        &secure,
    ]);
    assert_eq!(code, 200, "{headers}");
    assert_eq!(body.len(), 1000);

    // And the Unix socket.
    let socket = daemon.socket.display().to_string();
    let (code, _, _) = fetch(&[
        "--unix-socket",
        &socket,
        "--request-target",
        &url,
        "http://x/",
    ]);
    assert_eq!(code, 407);
    let (code, _, body) = fetch(&[
        "--unix-socket",
        &socket,
        "-H",
        "Proxy-Authorization: Basic YWxpY2U6czNjcmV0",
        "--request-target",
        &url,
        "http://x/",
    ]);
    assert_eq!(code, 200);
    assert_eq!(body.len(), 1000);
}

#[test]
fn credentials_are_never_forwarded() {
    let origin = TestOrigin::start(OriginOptions::default());
    let port = origin.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let users = credentials(dir.path(), 0o600);
    let daemon = Daemon::start(
        &[
            authenticating(&users),
            vec![
                "--resolve".into(),
                format!("www.test:{port}:127.0.0.1"),
                "--ca".into(),
                origin.ca_file.display().to_string(),
            ],
        ]
        .concat(),
    );
    // An absolute https target: the daemon fetches it, and the origin
    // echoes what it received.
    let (code, _, body) = fetch(&[
        "-x",
        &daemon.proxy(),
        "--proxy-user",
        "alice:s3cret",
        "-H",
        "Sockhost-Actions: ?1",
        "-H",
        "X-Kept: yes",
        "--request-target",
        &format!("https://www.test:{port}/headers"),
        &format!("http://www.test:{port}/"),
    ]);
    let seen = String::from_utf8_lossy(&body).to_lowercase();
    assert_eq!(code, 200, "{seen}");
    assert!(seen.contains("x-kept: yes"), "{seen}");
    assert!(!seen.contains("proxy-authorization"), "{seen}");
    assert!(!seen.contains("sockhost-actions"), "{seen}");
}

#[test]
fn a_daemon_open_to_anyone_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let open = credentials(dir.path(), 0o644);
    let err = refused_start(&["--no-unix", "--listen", "127.0.0.1:0", "--allow-remote"]);
    assert!(
        err.contains("allow-remote needs a credentials file"),
        "{err}"
    );
    let err = refused_start(&[
        "--no-unix",
        "--listen",
        "127.0.0.1:0",
        "--allow-remote",
        "--credentials",
        &open.display().to_string(),
    ]);
    assert!(
        err.contains("readable by group or others") && err.contains("chmod 600"),
        "{err}"
    );
    // The config's [serve] says the same, naming the file and field.
    let cfg = config(dir.path(), "[serve]\nlisten = [\"0.0.0.0:8128\"]\n");
    let err = refused_start(&["--config", &cfg]);
    assert!(
        err.contains("config.toml: serve.listen: 0.0.0.0:8128"),
        "{err}"
    );
    let cfg = config(dir.path(), "[serve.limits]\ntunnel-idle = \"forever\"\n");
    let err = refused_start(&["--config", &cfg]);
    assert!(
        err.contains("config.toml: serve.limits.tunnel-idle"),
        "{err}"
    );
}

/// The log's lines, once it has at least `n`.
fn log_lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_access_log_and_the_actions_header() {
    let nginx = Nginx::start(&[("small.txt", 1000)]);
    let (http_port, https_port) = (nginx.http_addr.port(), nginx.addr.port());
    let dir = tempfile::tempdir().unwrap();
    // From the config file: the log, relative to it; the connect port.
    let cfg = config(
        dir.path(),
        &format!("[serve]\naccess-log = \"access.jsonl\"\nconnect-ports = [{https_port}]\n"),
    );
    let mut daemon = Daemon::start(&[vec!["--config".into(), cfg], to_nginx(&nginx)].concat());
    let proxy = daemon.proxy();
    let log = dir.path().join("access.jsonl");
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The blocklist's hook strips utm_source: an action, listed for a
    // client that asks.
    let tracked = format!("http://nginx.test:{http_port}/small.txt?utm_source=x");
    let (code, headers, body) = fetch(&["-x", &proxy, "-H", "Sockhost-Actions: ?1", &tracked]);
    assert_eq!(code, 200, "{headers}");
    assert_eq!(body.len(), 1000);
    let actions = headers
        .lines()
        .find_map(|l| l.strip_prefix("sockhost-actions: "))
        .unwrap_or_else(|| panic!("no sockhost-actions in {headers}"));
    assert!(
        actions.starts_with("\"blocklist\";kind=hook-redirect;detail=")
            && actions.contains(&format!("nginx.test:{http_port}/small.txt\"")),
        "{actions}"
    );
    assert!(!actions.contains("utm_source"), "{actions}");
    // Not asked: not given.
    let (_, headers, _) = fetch(&["-x", &proxy, &tracked]);
    assert!(!headers.contains("sockhost-actions"), "{headers}");
    // A refusal, and a tunnel.
    let (code, _, _) = fetch(&["-x", &proxy, "http://nonexistent.invalid/"]);
    assert_eq!(code, 502);
    let (code, _, _) = fetch(&[
        "-x",
        &proxy,
        "--cacert",
        &nginx.ca_file.display().to_string(),
        &format!("https://nginx.test:{https_port}/small.txt"),
    ]);
    assert_eq!(code, 200);

    // An upload: its bytes up (nginx refuses POST to a file).
    let (code, _, _) = fetch(&["-x", &proxy, "--data", "hello", &tracked]);
    assert_eq!(code, 405);

    let lines = log_lines(&log, 5);
    assert_eq!(lines.len(), 5, "{lines:?}");
    let first = &lines[0];
    assert_eq!(first["method"], "GET");
    assert_eq!(first["url"], tracked.as_str());
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes_up"], 0);
    assert_eq!(first["bytes_down"], 1000);
    assert_eq!(first["upstream"], "HTTP/1.1");
    assert_eq!(first["actions"][0], "blocklist:hook-redirect");
    assert!(first["duration_ms"].as_f64().unwrap() > 0.0, "{first}");
    let client = first["client"].as_str().unwrap();
    assert!(
        client.parse::<SocketAddr>().unwrap().ip().is_loopback(),
        "{first}"
    );
    let time = first["time"].as_str().unwrap();
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
    assert_eq!(lines[2]["status"], 502);
    assert_eq!(lines[2]["upstream"], serde_json::Value::Null);
    let tunnel = &lines[3];
    assert_eq!(tunnel["method"], "CONNECT");
    assert_eq!(tunnel["url"], format!("nginx.test:{https_port}"));
    assert_eq!(tunnel["status"], 200);
    // TLS both ways and a 1000-byte body inside.
    assert!(tunnel["bytes_up"].as_u64().unwrap() > 200, "{tunnel}");
    assert!(tunnel["bytes_down"].as_u64().unwrap() > 1000, "{tunnel}");
    assert_eq!(lines[4]["method"], "POST");
    assert_eq!(lines[4]["status"], 405);
    assert_eq!(lines[4]["bytes_up"], 5);
    assert!(daemon.stop().success());
}

/// A raw client connection, reads bounded in time.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until the daemon closes the connection; how long that took.
fn until_closed(s: &mut TcpStream) -> Duration {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return t0.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return t0.elapsed(),
            Err(e) => panic!("not closed after {:?}: {e}", t0.elapsed()),
        }
    }
}

/// Reads one response with a `Content-Length` body; its head.
fn response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + length {
                return head.to_owned();
            }
        }
    }
}

#[test]
fn idle_clients_and_tunnels_are_closed_and_clients_over_the_limit_wait() {
    let nginx = Nginx::start(&[("small.txt", 1000)]);
    let (http_port, https_port) = (nginx.http_addr.port(), nginx.addr.port());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[serve.limits]\nkeep-alive-idle = \"1s\"\ntunnel-idle = \"1500ms\"\nmax-clients = 2\n",
    );
    let daemon = Daemon::start(
        &[
            vec!["--config".into(), cfg],
            to_nginx(&nginx),
            vec!["--connect-port".into(), https_port.to_string()],
        ]
        .concat(),
    );
    let get = format!(
        "GET http://nginx.test:{http_port}/small.txt HTTP/1.1\r\nHost: nginx.test:{http_port}\r\n\r\n"
    );
    // HTTP/1.1 kept alive, then silent: closed after keep-alive-idle (the
    // header read timeout is 30 s).
    let mut a = connect(daemon.addr);
    a.write_all(get.as_bytes()).unwrap();
    assert!(response(&mut a).starts_with("HTTP/1.1 200"));
    let waited = until_closed(&mut a);
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // h2c: the preface and SETTINGS, then silence.
    let mut h2 = connect(daemon.addr);
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    let waited = until_closed(&mut h2);
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // A tunnel with no byte either way: closed after tunnel-idle.
    let mut t = connect(daemon.addr);
    write!(
        t,
        "CONNECT nginx.test:{https_port} HTTP/1.1\r\nHost: nginx.test:{https_port}\r\n\r\n"
    )
    .unwrap();
    assert!(response(&mut t).starts_with("HTTP/1.1 200"));
    let waited = until_closed(&mut t);
    assert!(
        waited >= Duration::from_millis(1300) && waited < Duration::from_secs(6),
        "{waited:?}"
    );

    // max-clients = 2: a third client waits until one of the two leaves.
    let mut one = connect(daemon.addr);
    let mut two = connect(daemon.addr);
    for c in [&mut one, &mut two] {
        c.write_all(get.as_bytes()).unwrap();
        assert!(response(c).starts_with("HTTP/1.1 200"));
    }
    let mut third = connect(daemon.addr);
    third.write_all(get.as_bytes()).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 1];
    let e = third.read(&mut buf).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e}"
    );
    drop(one);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(response(&mut third).starts_with("HTTP/1.1 200"));
}

#[test]
fn sigterm_saves_the_alt_svc_cache() {
    let origin = TestOrigin::start(OriginOptions {
        alt_svc: Some("h3=\":1\"; ma=3600".into()),
        ..OriginOptions::default()
    });
    let port = origin.addr.port();
    let mut daemon = Daemon::start(&[
        "--resolve".into(),
        format!("www.test:{port}:127.0.0.1"),
        "--ca".into(),
        origin.ca_file.display().to_string(),
    ]);
    let socket = daemon.socket.display().to_string();
    let (code, _, _) = fetch(&[
        "--unix-socket",
        &socket,
        "--request-target",
        &format!("https://www.test:{port}/"),
        "http://localhost/",
    ]);
    assert_eq!(code, 200);
    assert!(daemon.stop().success());
    let saved = daemon.dir.path().join("data/sockhost/alt-svc.json");
    let saved = std::fs::read_to_string(&saved).unwrap_or_default();
    assert!(
        saved.contains("\"h3\"") && saved.contains("www.test"),
        "{saved}"
    );
}

#[test]
fn sigterm_lets_a_tunnel_in_flight_finish() {
    // 3 MB at 1 MB/s: the download is mid-way when SIGTERM comes.
    let nginx = Nginx::start(&[("big.bin", 3_000_000)]);
    let port = nginx.addr.port();
    let mut daemon = Daemon::start(
        &[
            to_nginx(&nginx),
            vec!["--connect-port".into(), port.to_string()],
        ]
        .concat(),
    );
    let out = daemon.dir.path().join("big.bin");
    let download = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--limit-rate", "1M", "-x"])
        .arg(daemon.proxy())
        .arg("--cacert")
        .arg(&nginx.ca_file)
        .arg("-o")
        .arg(&out)
        .arg(format!("https://nginx.test:{port}/big.bin"))
        .spawn()
        .expect("curl runs");
    std::thread::sleep(Duration::from_millis(1200));
    let stopping = Instant::now();
    assert!(daemon.stop().success(), "{}", daemon.log());
    let waited = stopping.elapsed();
    let finished = download.wait_with_output().unwrap();
    assert!(finished.status.success(), "curl: {finished:?}");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 3_000_000);
    eprintln!("the daemon waited {waited:?} for the tunnel before it exited");
}
