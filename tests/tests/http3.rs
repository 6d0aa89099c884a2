//! HTTP/3 through the whole stack (override → QUIC race → h3 → connection
//! manager) against the in-repo origin's quinn + h3 listener.

use sockhost::host::{read_all, FetchRequest, Host};
use sockhost::net::connection::VersionPref;
use sockhost_tests::origin::{pattern_byte, OriginOptions, TestOrigin};
use sockhost_tests::{origin_host, rt};

fn host(origin: &TestOrigin, batching: bool) -> Host {
    origin_host(origin)
        .version(VersionPref::Http3)
        .udp_batching(batching)
        .build()
        .unwrap()
}

fn url(origin: &TestOrigin, path: &str) -> String {
    format!("https://www.test:{}{path}", origin.addr.port())
}

fn h3_origin() -> TestOrigin {
    TestOrigin::start(OriginOptions {
        h3: true,
        ..OriginOptions::default()
    })
}

#[test]
fn h3_fetches_stream_whole_bodies_with_and_without_batching() {
    let origin = h3_origin();
    rt().block_on(async {
        for batching in [true, false] {
            let h = host(&origin, batching);
            let r = h.fetch(FetchRequest::get(url(&origin, "/"))).await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.version, http::Version::HTTP_3);
            assert_eq!(r.connection.alpn.as_deref(), Some("h3"));
            assert_eq!(
                read_all(r.body).await.unwrap(),
                "hello from the test origin\n"
            );
            // 5 MiB streamed in order, on the same QUIC connection.
            let r = h
                .fetch(FetchRequest::get(url(&origin, "/bytes/5242880")))
                .await
                .unwrap();
            assert!(r.reused, "batching {batching}: a second QUIC connection");
            let mut body = r.body;
            let mut n = 0usize;
            while let Some(chunk) = body.chunk().await.unwrap() {
                for b in chunk.iter() {
                    assert_eq!(*b, pattern_byte(n), "byte {n}");
                    n += 1;
                }
            }
            assert_eq!(n, 5 << 20);
        }
    });
    // One QUIC connection per host, no TCP at all.
    assert_eq!(origin.quic_connections(), 2);
    assert_eq!(origin.connections(), 0);
}

#[test]
fn concurrent_h3_requests_share_one_quic_connection() {
    let origin = h3_origin();
    rt().block_on(async {
        let h = host(&origin, true);
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (h, u) = (h.clone(), url(&origin, &format!("/bytes/{}", 1000 + i)));
            tasks.push(tokio::spawn(async move {
                let r = h.fetch(FetchRequest::get(u)).await.unwrap();
                assert_eq!(r.version, http::Version::HTTP_3);
                read_all(r.body).await.unwrap().len()
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), 1000 + i);
        }
    });
    assert_eq!(origin.quic_connections(), 1);
}

/// RFC 9114 4.1.1: the origin answers `/` without reading the request body,
/// and its quinn stream, dropped, stops our sending side (STOP_SENDING 0)
/// while the 4 MiB body is still being written. The response must be read,
/// not replaced by "remote reset".
#[test]
fn a_response_sent_before_the_request_body_was_read_is_kept() {
    let origin = h3_origin();
    rt().block_on(async {
        let h = host(&origin, true);
        for _ in 0..3 {
            let mut req = FetchRequest::get(url(&origin, "/"));
            req.method = http::Method::POST;
            req.body = bytes::Bytes::from(vec![7u8; 4 << 20]).into();
            let r = h.fetch(req).await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(
                read_all(r.body).await.unwrap(),
                "hello from the test origin\n"
            );
        }
    });
    assert_eq!(origin.quic_connections(), 1);
}

#[test]
fn h3_to_an_origin_without_quic_fails_with_a_clear_error() {
    // The TCP origin listens; nothing answers on its UDP port.
    let origin = TestOrigin::start(OriginOptions::default());
    rt().block_on(async {
        let h = origin_host(&origin)
            .version(VersionPref::Http3)
            .connector(sockhost::net::connect::Connector {
                connect_timeout: std::time::Duration::from_millis(800),
                ..Default::default()
            })
            .build()
            .unwrap();
        let started = std::time::Instant::now();
        let e = h
            .fetch(FetchRequest::get(url(&origin, "/")))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("QUIC"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{e}");
    });
}

#[test]
fn an_https_record_with_h3_makes_the_first_connection_quic() {
    use sockhost_tests::dns::TestDns;
    let origin = TestOrigin::start(OriginOptions {
        names: vec!["svc.test".into()],
        h3: true,
        ..OriginOptions::default()
    });
    // No Alt-Svc and no history: only the HTTPS record says h3, at the
    // origin's port (nothing listens on the URL's port 443).
    let dns = TestDns::service(vec!["h3", "h2"], origin.addr.port());
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
        assert_eq!(r.version, http::Version::HTTP_3);
        assert_eq!(r.connection.remote, Some(origin.addr));
        read_all(r.body).await.unwrap();
    });
    assert_eq!(origin.quic_connections(), 1);
}

#[test]
fn interop_with_aioquics_http3_server() {
    let Some(server) = sockhost_tests::aioquic::start_or_skip() else {
        return;
    };
    rt().block_on(async {
        let h = Host::builder()
            .resolve(
                format!("www.test:{}:127.0.0.1", server.addr.port())
                    .parse::<sockhost::net::dns::ResolveOverride>()
                    .unwrap(),
            )
            .ca_file(server.ca_file.clone())
            .no_platform_roots()
            .version(VersionPref::Http3)
            .build()
            .unwrap();
        let base = format!("https://www.test:{}", server.addr.port());
        let r = h
            .fetch(FetchRequest::get(format!("{base}/")))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.version, http::Version::HTTP_3);
        assert_eq!(r.headers["server"], "aioquic");
        assert_eq!(read_all(r.body).await.unwrap(), "hello from aioquic\n");
        let r = h
            .fetch(FetchRequest::get(format!("{base}/bytes/1000000")))
            .await
            .unwrap();
        assert!(r.reused);
        let body = read_all(r.body).await.unwrap();
        assert_eq!(body.len(), 1_000_000);
        assert!(body.iter().enumerate().all(|(i, b)| *b == pattern_byte(i)));
        let r = h
            .fetch(FetchRequest::get(format!("{base}/nothing")))
            .await
            .unwrap();
        assert_eq!(r.status, 404);
    });
}
