//! `sockhost status`, `reload`, `plugins` and `dns` against a real daemon's
//! control listener (its Unix socket, and its loopback TCP port with a
//! bearer token), after curl fetched through the daemon from nginx; and
//! each command's one line, exit code 3, when no daemon runs.

use std::path::Path;
use std::process::{Command, Output};

use sockhost::control::status::{DnsAnswer, Status};
use sockhost_tests::daemon::{fetch, token_file, Daemon};
use sockhost_tests::nginx::Nginx;
use sockhost_tests::sockhost_bin;

fn sockhost(args: &[&str]) -> Output {
    Command::new(sockhost_bin())
        .args(args)
        .output()
        .expect("sockhost runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn each_command_says_in_one_line_that_sockhost_is_not_running_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("control.sock");
    let socket = missing.to_str().unwrap();
    let commands: [&[&str]; 7] = [
        &["status"],
        &["status", "--json"],
        &["reload"],
        &["plugins", "list"],
        &["plugins", "enable", "blocklist"],
        &["plugins", "disable", "blocklist"],
        &["dns", "localhost"],
    ];
    for command in commands {
        let out = sockhost(&[command, &["--control", socket]].concat());
        assert_eq!(out.status.code(), Some(3), "{command:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            format!("sockhost is not running (no control socket at {socket})\n"),
            "{command:?}"
        );
        assert_eq!(stdout(&out), "", "{command:?}");
    }
    // The TCP control port, closed: the same, naming the address.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let token = token_file(dir.path(), "token", "0123456789abcdefghijkl");
    let url = format!("http://{closed}");
    let out = sockhost(&[
        "status",
        "--control-url",
        &url,
        "--control-token-file",
        token.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!("sockhost is not running (nothing listens at {url})\n")
    );
}

#[test]
fn status_reload_plugins_and_dns_against_a_running_daemon() {
    let nginx = Nginx::start(&[("small.txt", 1000)]);
    let port = nginx.http_addr.port();
    let d = Daemon::start(&["--resolve".into(), format!("nginx.test:{port}:127.0.0.1")]);
    let control = d.control.to_str().unwrap();
    let (code, _, body) = fetch(&[
        "-x",
        &d.proxy(),
        &format!("http://nginx.test:{port}/small.txt"),
    ]);
    assert_eq!((code, body.len()), (200, 1000));

    let out = sockhost(&["status", "--control", control]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    print!("{text}");
    for line in [
        "Process\n".to_owned(),
        format!("  pid          {}\n", d.pid()),
        "  generation   1\n".to_owned(),
        format!("  control+unix:{control}\n"),
        format!("  http://{}\n", d.addr),
        "  requests since start  1\n".to_owned(),
    ] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    let titles: Vec<&str> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(' '))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "Process",
            "Listeners",
            "Clients",
            "Pool",
            "DNS",
            "Alt-Svc",
            "Telemetry",
            "Memory",
            "Plugins",
            "Crashes"
        ]
    );

    // --json: the document as the daemon sent it.
    let out = sockhost(&["status", "--json", "--control", control]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: Status = serde_json::from_slice(&out.stdout).expect("the status document");
    assert_eq!(status.process.pid, d.pid());
    assert!(stdout(&out).contains("\"requests-total\": 1"));

    // A reload: the next generation, shown by the next status.
    let out = sockhost(&["reload", "--control", control]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("reloaded: generation 2: "),
        "{}",
        stdout(&out)
    );
    let text = stdout(&sockhost(&["status", "--control", control]));
    assert!(text.contains("  generation   2\n"), "{text}");
    assert!(text.contains("  last reload  ok at "), "{text}");

    // What the daemon refuses: its status and one-line reason, exit 1.
    let out = sockhost(&["plugins", "disable", "no-such-plugin", "--control", control]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: the daemon answered 404: no plugin named \"no-such-plugin\" (GET /v1/status lists them)\n"
    );
    let out = sockhost(&["dns", "not a name", "--control", control]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: the daemon answered 400: bad request: \"not a name\" is not a host name\n"
    );

    // A lookup, as text and as JSON.
    let out = sockhost(&["dns", "Localhost.", "--control", control]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("localhost ("), "{}", stdout(&out));
    let out = sockhost(&["dns", "localhost", "--json", "--control", control]);
    let answer: DnsAnswer = serde_json::from_slice(&out.stdout).expect("a DNS answer");
    assert_eq!(answer.host, "localhost");
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

#[test]
fn the_tcp_control_port_takes_the_token_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let good = token_file(dir.path(), "good", "0123456789abcdefghijkl");
    let bad = token_file(dir.path(), "bad", "lkjihgfedcba9876543210");
    let d = Daemon::start_with_control_port(&good);
    // The port it took, from its status on the socket.
    let addr = d.control_tcp();
    let url = format!("http://{addr}");

    let with = |token: &Path, args: &[&str]| {
        sockhost(
            &[
                args,
                &[
                    "--control-url",
                    &url,
                    "--control-token-file",
                    token.to_str().unwrap(),
                ],
            ]
            .concat(),
        )
    };
    let out = with(&good, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("  control+{url}\n")));
    let out = with(&good, &["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = with(&bad, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: the daemon answered 401: "),
        "{}",
        stderr(&out)
    );

    // A browser, which cannot send the header: the page refuses it, then
    // lets it in once by the query, which becomes a cookie.
    let (code, headers, _) = fetch(&[&format!("{url}/")]);
    assert_eq!(code, 401, "{headers}");
    let (code, headers, _) = fetch(&[&format!("{url}/?token=lkjihgfedcba9876543210")]);
    assert_eq!(code, 401, "{headers}");
    let (code, headers, _) = fetch(&[&format!("{url}/?token=0123456789abcdefghijkl")]);
    assert_eq!(code, 303, "{headers}");
    assert!(headers.contains("location: /\r\n"), "{headers}");
    let cookie = headers
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie in {headers}"));
    assert!(
        cookie.contains("httponly") && cookie.contains("samesite=strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let (code, headers, body) = fetch(&["-b", pair, &format!("{url}/")]);
    assert_eq!(code, 200, "{headers}");
    assert!(String::from_utf8_lossy(&body).contains("<h2>Plugins</h2>"));
    let (code, _, _) = fetch(&[
        "-b",
        "sockhost-control=lkjihgfedcba9876543210",
        &format!("{url}/"),
    ]);
    assert_eq!(code, 401);
}

#[test]
fn a_reload_that_cannot_load_changes_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sockhost.toml");
    std::fs::write(&config, "[plugins]\nbuiltin = true\n").unwrap();
    let d = Daemon::start(&["--config".into(), config.display().to_string()]);
    let control = d.control.to_str().unwrap();
    std::fs::write(&config, "[plugins]\nbuiltin = true\nbogus = 1\n").unwrap();
    let out = sockhost(&["reload", "--control", control]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: the daemon answered 422: reload refused, nothing changed: "),
        "{err}"
    );
    assert!(
        err.contains(config.to_str().unwrap()) && err.contains("bogus"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let text = stdout(&sockhost(&["status", "--control", control]));
    assert!(text.contains("  generation   1\n"), "{text}");
    assert!(text.contains("  last reload  FAILED at "), "{text}");
}

#[test]
fn network_changed_drops_what_the_daemon_learned_about_alternatives() {
    let nginx = Nginx::start_with_headers(
        &[("small.txt", 1000)],
        &["nginx.test"],
        false,
        &[("Alt-Svc", "h3=\":9\"; ma=3600")],
    );
    let port = nginx.addr.port();
    let d = Daemon::start(&[
        "--resolve".into(),
        format!("nginx.test:{port}:127.0.0.1"),
        "--ca".into(),
        nginx.ca_file.display().to_string(),
    ]);
    // Absolute-form https over the Unix socket: the daemon fetches it and
    // sees the origin's Alt-Svc.
    let (code, headers, _) = fetch(&[
        "--unix-socket",
        d.socket.to_str().unwrap(),
        "--request-target",
        &format!("https://nginx.test:{port}/small.txt"),
        "http://localhost/",
    ]);
    assert_eq!(code, 200, "{headers}");
    let alternatives = |d: &Daemon| -> Vec<String> {
        let (code, body) = d.control_api("GET", "/v1/status");
        assert_eq!(code, 200, "{body}");
        let status: Status = serde_json::from_str(&body).unwrap();
        status
            .alt_svc
            .iter()
            .flat_map(|n| n.entries.iter().map(|e| e.origin.clone()))
            .collect()
    };
    let learned = alternatives(&d);
    assert!(
        learned
            .iter()
            .any(|o| o.contains(&format!("nginx.test:{port}"))),
        "{learned:?}"
    );
    let (code, body) = d.control_api("POST", "/v1/network-changed");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body.lines().count(), 1, "{body}");
    assert!(alternatives(&d).is_empty(), "{:?}", alternatives(&d));
    let (code, body) = d.control_api("GET", "/v1/network-changed");
    assert_eq!(code, 405, "{body}");
}
