//! The daemon's IPC client (`sockhost::client::Client`): fetches through a
//! running `sockhost serve` over its Unix socket, from nginx and from the
//! in-repo origin; `sockhost fetch --via`; and a daemon killed with
//! SIGKILL under the client: relaunched, then given up on for in-process
//! networking after too many crashes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sockhost::client::{Client, DaemonCommand, DaemonError};
use sockhost::host::{FetchError, FetchRequest, Host};
use sockhost::wiring::WiringError;
use sockhost::Fetch;
use sockhost_tests::nginx::Nginx;
use sockhost_tests::origin::{pattern_byte, OriginOptions, TestOrigin};
use sockhost_tests::{origin_host, rt, sockhost_bin};

/// A daemon the test runs on a socket in a temp dir, without a TCP
/// listener; SIGTERM when dropped.
struct Daemon {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(args: &[String]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s.sock");
        let child = Command::new(sockhost_bin())
            .args(["serve", "--no-tcp", "--unix"])
            .arg(&socket)
            .args(args)
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .stdout(Stdio::null())
            .spawn()
            .expect("sockhost serve starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "the daemon did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon {
            child,
            socket,
            _dir: dir,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// `--resolve` and `--ca` for the daemon, so that `nginx.test` and
/// `www.test` reach the test servers.
fn network_args(nginx: Option<&Nginx>, origin: &TestOrigin) -> Vec<String> {
    let mut args = vec![
        "--resolve".into(),
        format!("www.test:{}:127.0.0.1", origin.addr.port()),
        "--ca".into(),
        origin.ca_file.display().to_string(),
    ];
    if let Some(nginx) = nginx {
        for port in [nginx.http_addr.port(), nginx.addr.port()] {
            args.push("--resolve".into());
            args.push(format!("nginx.test:{port}:127.0.0.1"));
        }
        args.push("--ca".into());
        args.push(nginx.ca_file.display().to_string());
    }
    args
}

fn small() -> Vec<u8> {
    (0..1000).map(pattern_byte).collect()
}

/// The body of `url`, fetched with either implementation of [`Fetch`].
async fn get(fetcher: &impl Fetch, url: &str) -> Result<Vec<u8>, FetchError> {
    let response = fetcher.fetch(FetchRequest::get(url)).await?;
    assert_eq!(response.status, 200, "{url}");
    Ok(response.body.bytes().await?.to_vec())
}

#[test]
fn a_client_fetches_through_a_running_daemon_from_nginx_and_the_origin() {
    let nginx = Nginx::start(&[("small.txt", 1000)]);
    let origin = TestOrigin::start(OriginOptions::default());
    let daemon = Daemon::start(&network_args(Some(&nginx), &origin));
    let plain = format!("http://nginx.test:{}/small.txt", nginx.http_addr.port());
    let secure = format!("https://nginx.test:{}/small.txt", nginx.addr.port());
    let large = 64 << 20;
    let large_url = format!("https://www.test:{}/bytes/{large}", origin.addr.port());
    rt().block_on(async {
        let client = Client::new(daemon.socket.clone());

        // nginx, cleartext: the daemon got it over HTTP/1.1 (its Via
        // says), its Server-Timing gave the connection's setup.
        let response = client.fetch(FetchRequest::get(&plain)).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.version, http::Version::HTTP_11);
        assert!(
            response.timings.connect > Duration::ZERO,
            "{:?}",
            response.timings
        );
        assert!(response.timings.first_byte > Duration::ZERO);
        assert_eq!(response.body.bytes().await.unwrap(), small());

        // nginx over TLS: HTTP/2 from the daemon to nginx.
        let response = client.fetch(FetchRequest::get(&secure)).await.unwrap();
        assert_eq!(response.version, http::Version::HTTP_2);
        assert!(
            response.timings.tls > Duration::ZERO,
            "{:?}",
            response.timings
        );
        assert_eq!(response.body.bytes().await.unwrap(), small());

        // A large body from the origin streams: many chunks, each checked
        // as it comes.
        let started = Instant::now();
        let mut response = client.fetch(FetchRequest::get(&large_url)).await.unwrap();
        let (mut at, mut chunks) = (0usize, 0usize);
        while let Some(chunk) = response.body.chunk().await.unwrap() {
            for (i, b) in chunk.iter().enumerate() {
                assert_eq!(*b, pattern_byte(at + i), "byte {}", at + i);
            }
            at += chunk.len();
            chunks += 1;
        }
        assert_eq!(at, large);
        assert!(chunks > 16, "{chunks} chunks");
        let secs = started.elapsed().as_secs_f64();
        println!(
            "64 MiB through the daemon: {chunks} chunks, {:.1} MiB/s",
            64.0 / secs
        );

        // Eight fetches at once on the one connection.
        let many: Vec<_> = (0..8)
            .map(|i| {
                let client = client.clone();
                let url = if i % 2 == 0 {
                    plain.clone()
                } else {
                    secure.clone()
                };
                tokio::spawn(async move { get(&client, &url).await })
            })
            .collect();
        for f in many {
            assert_eq!(f.await.unwrap().unwrap(), small());
        }

        // The same trait, in-process: the same bytes.
        let host: Host = origin_host(&origin).build().unwrap();
        let url = format!("https://www.test:{}/bytes/1000", origin.addr.port());
        assert_eq!(
            get(&host, &url).await.unwrap(),
            get(&client, &url).await.unwrap()
        );

        // The daemon's refusals come back as the errors a host gives, or
        // name the daemon's status and reason.
        let e = client
            .fetch(FetchRequest::get("http://ads.example/ad.js"))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, FetchError::Blocked { extension, .. } if extension == "blocklist"),
            "{e}"
        );
        let e = client
            .fetch(FetchRequest::get("http://127.0.0.1:1/"))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, FetchError::Daemon(DaemonError::Refused { status, .. }) if *status == 502),
            "{e}"
        );
        assert!(e.to_string().contains("127.0.0.1:1"), "{e}");

        let status = client.status().await;
        assert!(status.connected);
        assert_eq!((status.launches, status.crashes), (0, 0));
        assert!(!status.fallen_back);
    });

    // The command line, through the same daemon.
    let via = |extra: &[&str], url: &str| {
        Command::new(sockhost_bin())
            .args(["fetch", "--via"])
            .arg(&daemon.socket)
            .args(extra)
            .arg(url)
            .output()
            .unwrap()
    };
    let out = via(&[], &plain);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, small());
    let out = via(&["--json"], &secure);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["status"], 200);
    assert_eq!(v["http_version"], "HTTP/2.0");
    assert_eq!(v["bytes"], 1000);
    assert_eq!(v["via"], daemon.socket.display().to_string());
    // The daemon's connection to nginx is reused: no setup times.
    assert!(v["timings_ms"]["first_byte"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["timings_ms"]["tls"], 0.0, "{v}");
    assert!(
        v["remote_address"].is_null() && v["attempts"].is_null(),
        "{v}"
    );
    let out = via(&[], "http://ads.example/ad.js");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("blocked by extension blocklist"), "{err}");
    // No daemon there: one line saying so.
    let out = Command::new(sockhost_bin())
        .args(["fetch", "--via", "/nonexistent/s.sock", &plain])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no sockhost daemon listens on /nonexistent/s.sock"),
        "{err}"
    );
    // Host options have no place with --via.
    let out = via(&["--ca", "x.pem"], &plain);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

fn kill9(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("SIGKILL");
}

/// Waits until daemon `pid` is dead and reaped and the client saw its
/// connection end. (A process closes its descriptors one by one as it
/// dies: until the end, its listener may still take a connection that is
/// then reset.)
async fn until_dead(client: &Client, pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.status().await.connected || !process_gone(pid) {
        assert!(Instant::now() < deadline, "daemon {pid} did not die");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn process_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_killed_daemon_is_relaunched_and_too_many_crashes_fall_back_in_process() {
    let origin = TestOrigin::start(OriginOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run").join("s.sock");
    // No plugins: what is tested is the daemon's life, and the in-process
    // fallback below has none either. (Under a loaded CPU, a debug build's
    // blocklist may also miss its init budget, and the daemon then exits.)
    let config = dir.path().join("no-plugins.toml");
    std::fs::write(&config, "[plugins]\nbuiltin = false\n").unwrap();
    let command = DaemonCommand::new(sockhost_bin())
        .args(["--config".into(), config.display().to_string()])
        .args(network_args(None, &origin))
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("XDG_CACHE_HOME", dir.path().join("cache"));
    // The in-process host reaches the origin as the daemon does.
    let (port, ca) = (origin.addr.port(), origin.ca_file.clone());
    let client = Client::builder(&socket)
        .launch(command)
        .fall_back_to(Arc::new(move || {
            Host::builder()
                .resolve(
                    format!("www.test:{port}:127.0.0.1")
                        .parse()
                        .expect("an override"),
                )
                .ca_file(ca.clone())
                .no_platform_roots()
                .build()
                .map_err(WiringError::Build)
        }))
        .crash_limit(3, Duration::from_secs(60))
        .build();
    let url = format!("https://www.test:{}/bytes/1000", origin.addr.port());
    let huge = format!(
        "https://www.test:{}/bytes/{}",
        origin.addr.port(),
        1u64 << 30
    );
    let pids = rt().block_on(async {
        // No daemon: the client starts one.
        assert!(!socket.exists());
        assert_eq!(get(&client, &url).await.unwrap(), small());
        let status = client.status().await;
        assert_eq!(
            (status.launches, status.relaunches, status.crashes),
            (1, 0, 0)
        );
        assert_eq!(status.last_failure, None);
        let first = status.daemon_pid.expect("the client started a daemon");

        // SIGKILL while a body streams: that fetch fails, naming the daemon.
        let mut response = client.fetch(FetchRequest::get(&huge)).await.unwrap();
        assert!(response.body.chunk().await.unwrap().is_some());
        kill9(first);
        let e = loop {
            match response.body.chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the body ended although the daemon was killed"),
                Err(e) => break e,
            }
        };
        assert!(
            e.to_string().contains("through the sockhost daemon at"),
            "{e}"
        );
        until_dead(&client, first).await;

        // The next fetch relaunches it, and again after a second kill.
        let mut pids = vec![first];
        for crash in 1..=2 {
            assert_eq!(get(&client, &url).await.unwrap(), small());
            let status = client.status().await;
            assert_eq!(status.relaunches, crash, "{status:?}");
            assert_eq!(status.crashes, crash, "{status:?}");
            assert!(!status.fallen_back);
            let why = status.last_failure.unwrap_or_default();
            assert!(why.contains("is gone (signal: 9"), "{why}");
            let pid = status.daemon_pid.unwrap();
            assert!(!pids.contains(&pid), "{pid} {pids:?}");
            pids.push(pid);
            kill9(pid);
            until_dead(&client, pid).await;
        }

        // The third crash within the window: the client gives up on the
        // daemon and fetches in-process; requests still succeed.
        for _ in 0..3 {
            let response = client.fetch(FetchRequest::get(&url)).await.unwrap();
            // No daemon on the way.
            assert!(response.headers.get(http::header::VIA).is_none());
            assert_eq!(response.body.bytes().await.unwrap(), small());
        }
        let status = client.status().await;
        assert!(status.fallen_back, "{status:?}");
        assert_eq!(
            (status.launches, status.relaunches, status.crashes),
            (3, 2, 3)
        );
        assert_eq!(status.daemon_pid, None);
        assert!(!status.connected);
        println!("daemons killed: {pids:?}; then {status:?}");
        pids
    });
    // Every daemon was reaped (the client waits for those it starts).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pids.iter().all(|&pid| process_gone(pid)) {
        assert!(Instant::now() < deadline, "{pids:?} not reaped");
        std::thread::sleep(Duration::from_millis(20));
    }
}
