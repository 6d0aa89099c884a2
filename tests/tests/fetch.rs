//! `Host::fetch` through the whole stack (override → race → TLS → hyper →
//! connection manager) against the in-repo HTTPS origin.

use std::time::Duration;

use sockhost::host::{read_all, FetchRequest, Host};
use sockhost::net::connection::VersionPref;
use sockhost::net::dns::ResolveOverride;
use sockhost_tests::origin::{pattern_byte, OriginOptions, TestOrigin};
use sockhost_tests::{origin_host, rt};

fn host(origin: &TestOrigin, version: VersionPref) -> Host {
    origin_host(origin).version(version).build().unwrap()
}

/// A host that finds `www.test` at 127.0.0.2 first, then at the origin's
/// 127.0.0.1 (same port).
fn first_127_0_0_2(origin: &TestOrigin) -> sockhost::host::HostBuilder {
    Host::builder()
        .resolve(
            format!("www.test:{}:127.0.0.2,127.0.0.1", origin.addr.port())
                .parse::<ResolveOverride>()
                .unwrap(),
        )
        .ca_file(origin.ca_file.clone())
        .no_platform_roots()
}

fn url(origin: &TestOrigin, path: &str) -> String {
    format!("https://www.test:{}{path}", origin.addr.port())
}

#[test]
fn h2_and_h1_fetches_return_the_right_bodies_and_versions() {
    let origin = TestOrigin::start(OriginOptions::default());
    rt().block_on(async {
        for (pref, want) in [
            (VersionPref::Auto, http::Version::HTTP_2),
            (VersionPref::Http2, http::Version::HTTP_2),
            (VersionPref::Http1, http::Version::HTTP_11),
        ] {
            let h = host(&origin, pref);
            let r = h.fetch(FetchRequest::get(url(&origin, "/"))).await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.version, want, "{pref:?}");
            assert_eq!(
                read_all(r.body).await.unwrap(),
                "hello from the test origin\n"
            );
            // A streamed body of 3 MiB arrives whole and in order.
            let r = h
                .fetch(FetchRequest::get(url(&origin, "/bytes/3145728")))
                .await
                .unwrap();
            let mut body = r.body;
            let mut n = 0usize;
            while let Some(chunk) = body.chunk().await.unwrap() {
                for (i, b) in chunk.iter().enumerate() {
                    assert_eq!(*b, pattern_byte(n + i), "byte {}", n + i);
                }
                n += chunk.len();
            }
            assert_eq!(n, 3 << 20);
            // The connection was reused for the second request.
            let r = h.fetch(FetchRequest::get(url(&origin, "/"))).await.unwrap();
            assert!(r.reused, "{pref:?}");
            read_all(r.body).await.unwrap();
        }
    });
}

async fn burst(h: &Host, origin: &TestOrigin, n: usize) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let h = h.clone();
        let u = url(origin, "/slow/100");
        tasks.push(tokio::spawn(async move {
            let r = h.fetch(FetchRequest::get(u)).await.unwrap();
            assert_eq!(r.status, 200);
            read_all(r.body).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn twenty_concurrent_requests_use_six_h1_connections_or_one_h2() {
    let h1_origin = TestOrigin::start(OriginOptions {
        alpn: vec!["http/1.1"],
        ..OriginOptions::default()
    });
    let h2_origin = TestOrigin::start(OriginOptions::default());
    rt().block_on(async {
        let h = host(&h1_origin, VersionPref::Auto);
        let started = std::time::Instant::now();
        burst(&h, &h1_origin, 20).await;
        assert!(
            h1_origin.connections() <= 6,
            "{} h1 connections",
            h1_origin.connections()
        );
        assert!(
            h1_origin.connections() >= 2,
            "requests were not spread: {}",
            h1_origin.connections()
        );
        // 20 requests of 100 ms over 6 connections: at least 4 rounds.
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );

        let h = host(&h2_origin, VersionPref::Auto);
        burst(&h, &h2_origin, 20).await;
        assert_eq!(h2_origin.connections(), 1);
    });
}

#[test]
fn bad_urls_and_unreachable_hosts_are_one_line_errors() {
    let origin = TestOrigin::start(OriginOptions::default());
    rt().block_on(async {
        let h = host(&origin, VersionPref::Auto);
        let e = h
            .fetch(FetchRequest::get("ftp://www.test/"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("only http and https"), "{e}");
        let e = h.fetch(FetchRequest::get("not a url")).await.unwrap_err();
        assert!(e.to_string().starts_with("invalid URL"), "{e}");
        // Nothing listens on this port: refused.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = h
            .fetch(FetchRequest::get(format!(
                "https://127.0.0.1:{}/",
                closed.port()
            )))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("could not connect"), "{e}");
        // The origin's certificate is not for this name.
        let e = h
            .fetch(FetchRequest::get(format!(
                "https://127.0.0.2:{}/",
                origin.addr.port()
            )))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("could not connect") || e.to_string().contains("certificate"),
            "{e}"
        );
    });
}

#[test]
fn the_connect_policy_plugin_plans_the_race_and_a_refused_address_fails_over() {
    use sockhost::plugins::connect::ConnectPlugin;
    let origin = TestOrigin::start(OriginOptions::default());
    let (prt, _d) = sockhost_tests::runtime();
    let policy =
        ConnectPlugin::new(prt.load(&sockhost_tests::plugin("happy-eyeballs")).unwrap()).unwrap();
    rt().block_on(async {
        // Nothing listens on 127.0.0.2: the first candidate is refused.
        let h = first_127_0_0_2(&origin)
            .connect_policy(policy)
            .build()
            .unwrap();
        let r = h.fetch(FetchRequest::get(url(&origin, "/"))).await.unwrap();
        assert_eq!(r.connection.planned_by, "happy-eyeballs");
        let outcomes: Vec<_> = r.connection.attempts.iter().map(|a| a.outcome).collect();
        use sockhost::net::race::Outcome;
        assert_eq!(outcomes, vec![Outcome::Failed, Outcome::Won]);
        // The refused attempt did not hold the winner back by the 250 ms
        // attempt delay.
        assert!(r.connection.attempts[1].started.unwrap() < Duration::from_millis(200));
        read_all(r.body).await.unwrap();
    });
}

#[test]
fn a_freed_pooled_connection_serves_a_request_before_a_slow_new_one_is_ready() {
    let origin = TestOrigin::start(OriginOptions {
        alpn: vec!["http/1.1"],
        slow_new_connections: Some(Duration::from_millis(800)),
        ..OriginOptions::default()
    });
    rt().block_on(async {
        let h = host(&origin, VersionPref::Auto);
        // Warm one connection.
        let r = h.fetch(FetchRequest::get(url(&origin, "/"))).await.unwrap();
        read_all(r.body).await.unwrap();
        // A holds the pooled connection for 150 ms.
        let ha = h.clone();
        let ua = url(&origin, "/slow/150");
        let a = tokio::spawn(async move {
            let r = ha.fetch(FetchRequest::get(ua)).await.unwrap();
            read_all(r.body).await.unwrap();
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        // B finds no idle connection: a new one starts, but its handshake
        // is held for 800 ms. B must not wait for it.
        let started = std::time::Instant::now();
        let r = h.fetch(FetchRequest::get(url(&origin, "/"))).await.unwrap();
        let took = started.elapsed();
        read_all(r.body).await.unwrap();
        a.await.unwrap();
        assert!(r.reused, "B should have run on the freed pooled connection");
        assert!(took < Duration::from_millis(600), "B waited {took:?}");
        assert_eq!(origin.connections(), 2, "the new connection was still made");
    });
}

#[test]
fn the_global_connection_cap_holds_and_queued_requests_still_finish() {
    use sockhost::net::pool::PoolPrefs;
    let origin = TestOrigin::start(OriginOptions {
        names: vec!["a.test".into(), "b.test".into(), "c.test".into()],
        alpn: vec!["http/1.1"],
        ..OriginOptions::default()
    });
    let port = origin.addr.port();
    rt().block_on(async {
        let mut b = Host::builder()
            .ca_file(origin.ca_file.clone())
            .no_platform_roots()
            .pool(PoolPrefs {
                max_per_host: 6,
                max_total: 2,
                idle_timeout: Duration::from_secs(90),
            });
        for name in ["a.test", "b.test", "c.test"] {
            b = b.resolve(
                format!("{name}:{port}:127.0.0.1")
                    .parse::<ResolveOverride>()
                    .unwrap(),
            );
        }
        let h = b.build().unwrap();
        // Watch the pool while the requests run.
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (h, done) = (h.clone(), done.clone());
            tokio::spawn(async move {
                let mut most = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Some(s) = h.pool_stats().await {
                        most = most.max(s.connections);
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                most
            })
        };
        // Three origins (one server), two requests each, at once.
        let mut tasks = Vec::new();
        for name in ["a.test", "b.test", "c.test", "a.test", "b.test", "c.test"] {
            let (h, u) = (h.clone(), format!("https://{name}:{port}/slow/100"));
            tasks.push(tokio::spawn(async move {
                let r = h.fetch(FetchRequest::get(u)).await.unwrap();
                assert_eq!(r.status, 200);
                read_all(r.body).await.unwrap();
            }));
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("a queued request never finished")
                .unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let most = watcher.await.unwrap();
        assert!(most <= 2, "the pool held {most} connections at once");
        assert!(most >= 1);
        assert!(origin.connections() >= 3, "every origin got a connection");
        // The server saw at most the cap, give or take a close it had not
        // yet noticed when the next connection arrived.
        assert!(
            origin.max_open() <= 3,
            "{} connections open at once",
            origin.max_open()
        );
    });
}

#[test]
fn a_syn_retry_late_winner_joins_the_idle_pool() {
    let origin = TestOrigin::start(OriginOptions {
        alpn: vec!["http/1.1"],
        full_backlog_for: Some(Duration::from_millis(100)),
        ..OriginOptions::default()
    });
    rt().block_on(async {
        let h = host(&origin, VersionPref::Auto);
        let started = std::time::Instant::now();
        let r = h.fetch(FetchRequest::get(url(&origin, "/"))).await.unwrap();
        let took = started.elapsed();
        assert!(
            r.connection.attempts.iter().any(|a| a.twin),
            "{:?}",
            r.connection.attempts
        );
        assert!(took < Duration::from_millis(900), "{took:?}");
        read_all(r.body).await.unwrap();
        // The original attempt's SYN is retransmitted at about 1 s and
        // connects: it is adopted as a second, idle connection.
        let until = std::time::Instant::now() + Duration::from_secs(4);
        loop {
            let s = h.pool_stats().await.unwrap();
            if s.connections == 2 {
                break;
            }
            assert!(
                std::time::Instant::now() < until,
                "late winner not adopted: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn an_https_record_points_the_connection_at_its_port() {
    use sockhost_tests::dns::TestDns;
    let origin = TestOrigin::start(OriginOptions {
        names: vec!["svc.test".into()],
        ..OriginOptions::default()
    });
    // svc.test has an A record and an HTTPS record sending clients to the
    // origin's real port; nothing listens on the URL's port 443.
    let dns = TestDns::service(vec!["h2"], origin.addr.port());
    rt().block_on(async {
        let h = Host::builder()
            .name_servers(vec![dns.addr])
            .ca_file(origin.ca_file.clone())
            .no_platform_roots()
            .build()
            .unwrap();
        let r = h
            .fetch(FetchRequest::get("https://svc.test/"))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.connection.remote, Some(origin.addr));
        assert_eq!(r.version, http::Version::HTTP_2);
        read_all(r.body).await.unwrap();
    });
}

/// HEv3: over TCP + TLS an attempt counts as connected only after its TLS
/// handshake. The first address accepts TCP and then says nothing (a TLS
/// tarpit): the second address still starts after the attempt delay and
/// wins, and the stalled one gets no syn-retry twin (its TCP was up).
#[test]
fn a_tcp_connection_whose_tls_stalls_does_not_win_the_race() {
    use sockhost::net::race::Outcome;
    let origin = TestOrigin::start(OriginOptions::default());
    let port = origin.addr.port();
    let tarpit = std::net::TcpListener::bind(("127.0.0.2", port)).expect("127.0.0.2 free");
    // Accepted connections are kept open and never answered.
    let held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in tarpit.incoming().take(2) {
            held.push(c);
        }
        std::thread::sleep(Duration::from_secs(2));
    });
    rt().block_on(async {
        let h = first_127_0_0_2(&origin).build().unwrap();
        let r = h.fetch(FetchRequest::get(url(&origin, "/"))).await.unwrap();
        let a = &r.connection.attempts;
        assert_eq!(r.connection.remote.unwrap().ip().to_string(), "127.0.0.1");
        let outcomes: Vec<_> = a.iter().map(|a| (a.twin, a.outcome)).collect();
        assert_eq!(
            outcomes,
            vec![(false, Outcome::Cancelled), (false, Outcome::Won)],
            "{a:?}"
        );
        assert!(a[1].started.unwrap() >= Duration::from_millis(250), "{a:?}");
        // TLS is timed apart from the race.
        assert!(r.timings.tls > Duration::ZERO);
        assert!(r.timings.connect >= Duration::from_millis(250));
        read_all(r.body).await.unwrap();
    });
    drop(held);
}
