//! HTTP/2 flow control against nginx: a response whose body nobody reads
//! must not stall the other requests multiplexed to the same origin. The
//! pool multiplexes requests to an h2 origin on one connection, so a
//! connection window that one unread stream can fill would hold every
//! later response on it until the request timeout. The same holds for
//! HTTP/3 (aioquic) over QUIC's windows, for the daemon's clients (curl),
//! and for sockhost's own client, whose one connection to the daemon
//! carries all its fetches.

use std::time::{Duration, Instant};

use sockhost::client::Client;
use sockhost::host::{read_all, FetchRequest};
use sockhost::net::connection::VersionPref;
use sockhost::Fetch;
use sockhost_tests::daemon::{curl, Daemon};
use sockhost_tests::nginx::Nginx;
use sockhost_tests::resolved_host;

/// Far below the 30 s request timeout, far above a loopback fetch.
const PROMPT: Duration = Duration::from_secs(5);

/// What a timeout says: `what` was stalled.
fn stalled<T>(what: String) -> impl FnOnce(tokio::time::error::Elapsed) -> T {
    move |_| panic!("{what} was stalled for {PROMPT:?}")
}

/// Fetches `large` `HELD` times without reading the bodies, as stalled
/// downloads would leave them, then `small` whole; each within [`PROMPT`].
/// Then checks the held bodies.
async fn small_after_unread_large(
    h: &impl Fetch,
    large: &str,
    large_len: usize,
    small: &str,
    version: http::Version,
) {
    const HELD: usize = 3;
    let mut held = Vec::new();
    for i in 0..HELD {
        let r = tokio::time::timeout(PROMPT, h.fetch(FetchRequest::get(large)))
            .await
            .unwrap_or_else(stalled(format!("large response {i} with {i} unread")))
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.version, version);
        held.push(r);
        // Let the origin send what the windows allow before the next one.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let started = Instant::now();
    let body = tokio::time::timeout(PROMPT, async {
        let r = h.fetch(FetchRequest::get(small)).await.unwrap();
        assert_eq!(r.status, 200);
        read_all(r.body).await.unwrap()
    })
    .await
    .unwrap_or_else(stalled(format!("the small response with {HELD} unread")));
    let elapsed = started.elapsed();
    eprintln!(
        "{version:?}: the small response came after {elapsed:?} with {HELD} large ones unread"
    );
    assert!(!body.is_empty());
    // The held responses are whole once read.
    for r in held {
        assert_eq!(read_all(r.body).await.unwrap().len(), large_len);
    }
}

#[test]
fn unread_large_responses_do_not_stall_a_small_one_on_the_same_origin() {
    let n = Nginx::start(&[("small.txt", 100), ("large.bin", 8 << 20)]);
    let base = format!("https://nginx.test:{}", n.addr.port());
    sockhost_tests::rt().block_on(async {
        small_after_unread_large(
            &resolved_host("nginx.test", n.addr.port(), &n.ca_file)
                .build()
                .unwrap(),
            &format!("{base}/large.bin"),
            8 << 20,
            &format!("{base}/small.txt"),
            http::Version::HTTP_2,
        )
        .await;
    });
}

#[test]
fn unread_large_h3_responses_do_not_stall_a_small_one_from_aioquic() {
    let Some(server) = sockhost_tests::aioquic::start_or_skip() else {
        return;
    };
    let base = format!("https://www.test:{}", server.addr.port());
    sockhost_tests::rt().block_on(async {
        let h = resolved_host("www.test", server.addr.port(), &server.ca_file)
            .version(VersionPref::Http3)
            .build()
            .unwrap();
        small_after_unread_large(
            &h,
            &format!("{base}/bytes/{}", 8 << 20),
            8 << 20,
            &format!("{base}/"),
            http::Version::HTTP_3,
        )
        .await;
    });
}

/// nginx with a small, an 8 MiB and a 256 MiB file, and a daemon that reaches it as
/// `nginx.test`.
fn nginx_and_daemon() -> (Nginx, Daemon) {
    // huge.bin is sparse: nginx sends zeros from the page cache.
    let n = Nginx::start(&[
        ("small.txt", 100),
        ("large.bin", 8 << 20),
        ("huge.bin", 256 << 20),
    ]);
    let daemon = Daemon::start(&[
        "--resolve".into(),
        format!("nginx.test:{}:127.0.0.1", n.addr.port()),
        "--ca".into(),
        n.ca_file.display().to_string(),
    ]);
    (n, daemon)
}

#[test]
fn slow_curl_downloads_through_the_daemon_neither_stall_another_client_nor_fill_memory() {
    let (n, daemon) = nginx_and_daemon();
    let port = n.addr.port();
    let socket = daemon.socket.to_str().unwrap().to_owned();
    let target = |file: &str| format!("https://nginx.test:{port}/{file}");
    let before = daemon.peak_rss_kib();
    // Clients reading 1 KiB/s: their downloads would take days, and
    // the daemon reads from nginx only as fast as it forwards, so what it
    // holds for each is bounded by the stream window, not the file.
    let mut slow: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new("curl")
                .args(["-sS", "--limit-rate", "1k", "-o", "/dev/null"])
                .args(["--unix-socket", &socket, "--request-target"])
                .arg(target("huge.bin"))
                .arg("http://localhost/")
                .spawn()
                .expect("curl runs")
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let out = curl(&[
        "--max-time",
        &PROMPT.as_secs().to_string(),
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        "--unix-socket",
        &socket,
        "--request-target",
        &target("small.txt"),
        "http://localhost/",
    ]);
    let elapsed = started.elapsed();
    let grew_mib = daemon.peak_rss_kib().saturating_sub(before) / 1024;
    for curl in &mut slow {
        let _ = curl.kill();
        let _ = curl.wait();
    }
    eprintln!(
        "another client's response came after {elapsed:?}; \
         the daemon's peak RSS grew by {grew_mib} MiB for 3 stalled 256 MiB downloads"
    );
    assert!(
        out.status.success(),
        "the second client was stalled: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    assert!(grew_mib < 64, "peak RSS grew by {grew_mib} MiB");
}

#[test]
fn unread_large_responses_through_the_daemon_do_not_stall_the_clients_next_fetch() {
    let (n, daemon) = nginx_and_daemon();
    let port = n.addr.port();
    let base = format!("https://nginx.test:{port}");
    sockhost_tests::rt().block_on(async {
        small_after_unread_large(
            &Client::new(daemon.socket.clone()),
            &format!("{base}/large.bin"),
            8 << 20,
            &format!("{base}/small.txt"),
            http::Version::HTTP_2,
        )
        .await;
    });
}
