//! The network part of the status document from live state, against
//! peers nobody here wrote: nginx (HTTP/1.1 and HTTP/2, advertising
//! HTTP/3 by Alt-Svc), aioquic (HTTP/3), and hickory-server answering A,
//! AAAA and HTTPS records on loopback.

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sockhost::control::status::{ConnectionStatus, OriginStatus};
use sockhost::host::{read_all, FetchRequest, FetchResponse, Host};
use sockhost::net::dns::ResolveOverride;
use sockhost::net::pool::PoolPrefs;
use sockhost::plugins::congestion::{
    CongestionChoice, CongestionPlugin, CongestionPolicy, ControllerKind,
};
use sockhost::plugins::telemetry::TelemetryPlugin;
use sockhost_tests::dns::{TestDns, TestRecord};
use sockhost_tests::nginx::Nginx;
use sockhost_tests::{plugin, rt, runtime};

/// Polls `status` until `done` holds of it, or fails after 10 s with the
/// last one seen.
async fn until<T: std::fmt::Debug, F: Future<Output = T>>(
    what: &str,
    mut status: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status().await;
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: {s:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn origin<'a>(pool: &'a [OriginStatus], name: &str) -> Option<&'a OriginStatus> {
    pool.iter().find(|o| o.origin == name)
}

async fn get(host: &Host, url: &str) -> FetchResponse {
    let r = host.fetch(FetchRequest::get(url)).await.unwrap();
    assert_eq!(r.status, 200, "{url}");
    r
}

#[test]
fn the_pool_shows_each_origin_its_protocol_requests_and_queue() {
    let nginx = Nginx::start_with(
        &[("big.bin", 8 << 20), ("small.txt", 100)],
        &["nginx.test"],
        false,
    );
    let dns = TestDns::start(
        "test.",
        300,
        &[TestRecord::A("nginx.test.", Ipv4Addr::LOCALHOST)],
    );
    let (prt, _data) = runtime();
    let probe = TelemetryPlugin::new(prt.load(&plugin("request-stats")).unwrap()).unwrap();
    rt().block_on(async {
        let host = Host::builder()
            .name_servers(vec![dns.addr])
            .ca_file(nginx.ca_file.clone())
            .no_platform_roots()
            .pool(PoolPrefs {
                max_per_host: 1,
                ..PoolPrefs::default()
            })
            .probe(probe)
            .build()
            .unwrap();
        let h2 = format!("https://nginx.test:{}", nginx.addr.port());
        let h1 = format!("http://nginx.test:{}", nginx.http_addr.port());

        // Two h2 responses not yet read (small: an unread one holds on to
        // the connection's flow-control window): one connection carries
        // both.
        let (a, b) = (
            get(&host, &format!("{h2}/small.txt")).await,
            get(&host, &format!("{h2}/small.txt")).await,
        );
        let (pool, waiting) = host.pool_status().await;
        assert_eq!(waiting, 0);
        assert_eq!(
            origin(&pool, &h2).expect("the h2 origin is listed"),
            &OriginStatus {
                origin: h2.clone(),
                connections: vec![ConnectionStatus {
                    protocol: "h2".into(),
                    peer: nginx.addr.to_string(),
                    active: 2,
                    congestion: None,
                }],
                queued: 0,
            }
        );

        // h1, one connection per origin at most: a second request waits.
        let c = get(&host, &format!("{h1}/big.bin")).await;
        let queued = {
            let (host, url) = (host.clone(), format!("{h1}/small.txt"));
            tokio::spawn(async move { read_all(get(&host, &url).await.body).await.unwrap() })
        };
        let (pool, waiting) = until(
            "the second h1 request queues",
            || host.pool_status(),
            |(_, waiting)| *waiting == 1,
        )
        .await;
        assert_eq!(waiting, 1);
        let o = origin(&pool, &h1).expect("the h1 origin is listed");
        assert_eq!(o.queued, 1, "{o:?}");
        assert_eq!(o.connections.len(), 1, "{o:?}");
        assert_eq!(o.connections[0].protocol, "http/1.1");
        assert_eq!(o.connections[0].peer, nginx.http_addr.to_string());
        assert_eq!(o.connections[0].active, 1);

        // Read to the end, every response frees its connection: idle.
        assert_eq!(read_all(c.body).await.unwrap().len(), 8 << 20);
        assert_eq!(queued.await.unwrap().len(), 100);
        for r in [a, b] {
            assert_eq!(read_all(r.body).await.unwrap().len(), 100);
        }
        let (pool, _) = until(
            "every connection idle",
            || host.pool_status(),
            |(pool, waiting)| {
                *waiting == 0
                    && pool.len() == 2
                    && pool.iter().all(|o| {
                        o.queued == 0 && o.connections.len() == 1 && o.connections[0].active == 0
                    })
            },
        )
        .await;
        let protocols: Vec<(&str, &str)> = pool
            .iter()
            .map(|o| (o.origin.as_str(), o.connections[0].protocol.as_str()))
            .collect();
        assert_eq!(protocols, [(h1.as_str(), "http/1.1"), (h2.as_str(), "h2")]);

        // Two dials to one host: A, AAAA and HTTPS asked twice, the second
        // time answered from the cache (the "no records" answers too).
        let dns_status = host.dns_status();
        assert_eq!(
            (
                dns_status.lookups,
                dns_status.cache_hits,
                dns_status.cache_entries
            ),
            (6, 3, 3),
            "{dns_status:?}"
        );
        // The lookup endpoint goes through the same cache.
        let answer = host.dns_lookup("nginx.test").await;
        assert!(answer.cached, "{answer:?}");
        assert_eq!(answer.a, ["127.0.0.1"]);
        assert_eq!(answer.errors, ["AAAA: no records", "HTTPS: no records"]);
        assert_eq!(host.dns_status().cache_hits, 6);

        host.telemetry().flush(Duration::from_secs(5)).await;
        let t = host.telemetry_status();
        println!("telemetry after 5 fetches: {t:?}");
        assert_eq!((t.probes, t.dropped), (1, 0), "{t:?}");
        assert!(t.published >= 10, "a start and an end per request: {t:?}");
    });
}

#[test]
fn dns_lookup_answers_a_aaaa_and_https_records_fresh_then_cached() {
    let dns = TestDns::start(
        "test.",
        300,
        &[
            TestRecord::A("svc.test.", Ipv4Addr::LOCALHOST),
            TestRecord::Aaaa("svc.test.", Ipv6Addr::LOCALHOST),
            TestRecord::Https {
                name: "svc.test.",
                priority: 1,
                alpn: vec!["h3", "h2"],
                port: Some(8443),
                ipv4_hints: vec![Ipv4Addr::LOCALHOST],
                ipv6_hints: vec![],
            },
            TestRecord::A("v4only.test.", Ipv4Addr::new(127, 0, 0, 3)),
        ],
    );
    rt().block_on(async {
        let host = Host::builder()
            .name_servers(vec![dns.addr])
            .resolve(
                "pinned.test:443:127.0.0.9"
                    .parse::<ResolveOverride>()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let first = host.dns_lookup("svc.test").await;
        assert_eq!(first.host, "svc.test");
        assert_eq!(first.a, ["127.0.0.1"]);
        assert_eq!(first.aaaa, ["::1"]);
        assert_eq!(first.https, ["1 . alpn=h3,h2 port=8443 ipv4hint=127.0.0.1"]);
        assert!(first.errors.is_empty(), "{first:?}");
        assert!(!first.cached, "{first:?}");
        let second = host.dns_lookup("SVC.test.").await;
        assert!(second.cached, "{second:?}");
        assert_eq!(
            (&second.host, &second.a, &second.aaaa, &second.https),
            (&first.host, &first.a, &first.aaaa, &first.https)
        );
        println!(
            "svc.test: fresh in {} µs, cached in {} µs",
            first.elapsed_us, second.elapsed_us
        );
        let s = host.dns_status();
        assert_eq!((s.lookups, s.cache_hits, s.cache_entries), (6, 3, 3));

        // What is missing is said per record type.
        let v4 = host.dns_lookup("v4only.test").await;
        assert_eq!(v4.a, ["127.0.0.3"]);
        assert_eq!(v4.errors, ["AAAA: no records", "HTTPS: no records"]);
        let missing = host.dns_lookup("missing.test").await;
        assert!(missing.a.is_empty() && missing.aaaa.is_empty());
        assert_eq!(
            missing.errors,
            [
                "A: no such host (NXDOMAIN)",
                "AAAA: no such host (NXDOMAIN)",
                "HTTPS: no such host (NXDOMAIN)"
            ]
        );

        // Overrides and literals answer without a lookup.
        let before = host.dns_status().lookups;
        let pinned = host.dns_lookup("pinned.test").await;
        assert_eq!(pinned.a, ["127.0.0.9"]);
        assert_eq!(pinned.overrides, ["pinned.test:443:127.0.0.9"]);
        assert!(!pinned.cached && pinned.errors.is_empty(), "{pinned:?}");
        assert_eq!(host.dns_lookup("127.0.0.5").await.a, ["127.0.0.5"]);
        assert_eq!(host.dns_lookup("[::1]").await.aaaa, ["::1"]);
        let bad = host.dns_lookup("bad..name").await;
        assert_eq!(bad.errors.len(), 1, "{bad:?}");
        assert!(bad.errors[0].contains("not a valid host name"), "{bad:?}");
        assert_eq!(host.dns_status().lookups, before);
    });
}

#[test]
fn alt_svc_then_h3_in_the_pool_with_its_controller() {
    let Some(aio) = sockhost_tests::aioquic::start_or_skip() else {
        return;
    };
    let alt_svc = format!("h3=\":{}\"; ma=3600", aio.addr.port());
    let nginx = Nginx::start_with_headers(
        &[("index.html", 100)],
        &["www.test"],
        false,
        &[("Alt-Svc", &alt_svc)],
    );
    let dns = TestDns::start(
        "test.",
        300,
        &[TestRecord::A("www.test.", Ipv4Addr::LOCALHOST)],
    );
    let (prt, _data) = runtime();
    let newreno = CongestionPlugin::new(prt.load(&plugin("newreno")).unwrap()).unwrap();
    let newreno = ControllerKind::Plugin(Arc::new(CongestionPolicy::new(newreno)));
    rt().block_on(async {
        let host = Host::builder()
            .name_servers(vec![dns.addr])
            .ca_file(nginx.ca_file.clone())
            .ca_file(aio.ca_file.clone())
            .no_platform_roots()
            .pool(PoolPrefs {
                idle_timeout: Duration::from_millis(300),
                ..PoolPrefs::default()
            })
            .build()
            .unwrap();
        // `/` is a file on nginx and a greeting on aioquic.
        let url = format!("https://www.test:{}/", nginx.addr.port());
        let o = format!("https://www.test:{}", nginx.addr.port());
        assert!(host.alt_svc_status().is_empty());
        let r = get(&host, &url).await;
        assert_eq!(r.version, http::Version::HTTP_2);
        read_all(r.body).await.unwrap();

        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let alt = host.alt_svc_status();
        assert_eq!(alt.len(), 1, "{alt:?}");
        assert_eq!(alt[0].network, "default");
        assert_eq!(alt[0].entries.len(), 1, "{alt:?}");
        let entry = &alt[0].entries[0];
        assert_eq!(entry.origin, o);
        let port = aio.addr.port();
        assert!(
            [3599, 3600]
                .iter()
                .any(|ma| entry.alternatives == [format!("h3=\":{port}\"; ma={ma}")]),
            "{entry:?}"
        );
        let expires_in = entry.expires_unix_ms.abs_diff(now_ms + 3_600_000);
        assert!(expires_in <= 5_000, "{entry:?}");

        // The h2 connection idles out; the next one is QUIC to aioquic.
        let h3 = |controller: &str| ConnectionStatus {
            protocol: "h3".into(),
            peer: aio.addr.to_string(),
            active: 1,
            congestion: Some(controller.into()),
        };
        assert_eq!(next_connection(&host, &url, &o).await, [h3("native-cubic")]);
        // A plugin controller chosen now is named by the next connection.
        host.set_congestion(CongestionChoice::all(newreno));
        assert_eq!(next_connection(&host, &url, &o).await, [h3("newreno")]);
    });
}

/// Once every connection to `origin` has idled out, fetches `url` (over
/// HTTP/3) and returns the origin's connections while its response is
/// being read.
async fn next_connection(host: &Host, url: &str, origin_name: &str) -> Vec<ConnectionStatus> {
    until(
        "the connection idles out",
        || host.pool_status(),
        |(pool, _)| pool.iter().all(|p| p.connections.is_empty()),
    )
    .await;
    let r = get(host, url).await;
    assert_eq!(r.version, http::Version::HTTP_3);
    let (pool, _) = host.pool_status().await;
    let connections = origin(&pool, origin_name)
        .expect("the origin is listed")
        .connections
        .clone();
    read_all(r.body).await.unwrap();
    connections
}
