//! sockhost's resolver against a real DNS server on loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use sockhost::net::dns::{AddressSource, DnsConfig, DnsError, ResolveOverride, Resolver};
use sockhost_tests::dns::{TestDns, TestRecord};

fn server(ttl: u32) -> TestDns {
    TestDns::start(
        "test.",
        ttl,
        &[
            TestRecord::A("www.test.", Ipv4Addr::new(127, 0, 0, 1)),
            TestRecord::A("www.test.", Ipv4Addr::new(127, 0, 0, 2)),
            TestRecord::Aaaa("www.test.", Ipv6Addr::LOCALHOST),
            TestRecord::Https {
                name: "www.test.",
                priority: 1,
                alpn: vec!["h3", "h2"],
                port: Some(8443),
                ipv4_hints: vec![Ipv4Addr::new(127, 0, 0, 1)],
                ipv6_hints: vec![Ipv6Addr::LOCALHOST],
            },
            TestRecord::A("v4only.test.", Ipv4Addr::new(127, 0, 0, 3)),
        ],
    )
}

fn resolver(dns: SocketAddr, timeout: Duration) -> Resolver {
    Resolver::new(&DnsConfig {
        name_servers: vec![dns],
        overrides: vec!["pinned.test:443:127.0.0.9"
            .parse::<ResolveOverride>()
            .unwrap()],
        timeout: Some(timeout),
    })
    .expect("resolver")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_aaaa_and_https_records_are_resolved_together() {
    let dns = server(300);
    rt().block_on(async {
        let r = resolver(dns.addr, Duration::from_secs(2));
        let res = r.resolve("WWW.test.", 443).await.unwrap();
        assert_eq!(res.host, "www.test");
        let ips: Vec<(IpAddr, AddressSource)> =
            res.addrs.iter().map(|a| (a.ip, a.source)).collect();
        assert_eq!(
            ips[0],
            (IpAddr::V6(Ipv6Addr::LOCALHOST), AddressSource::Aaaa)
        );
        let mut v4: Vec<IpAddr> = ips[1..].iter().map(|(ip, _)| *ip).collect();
        v4.sort();
        assert_eq!(
            v4,
            vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2])]
        );
        assert_eq!(res.https.len(), 1);
        let h = &res.https[0];
        assert_eq!(h.priority, 1);
        assert_eq!(h.target, "www.test");
        assert_eq!(h.alpn, vec!["h3", "h2"]);
        assert_eq!(h.port, Some(8443));
        assert_eq!(h.ipv4_hints, vec![Ipv4Addr::new(127, 0, 0, 1)]);
        assert_eq!(h.ipv6_hints, vec![Ipv6Addr::LOCALHOST]);
        let types: Vec<&str> = res.queries.iter().map(|q| q.record_type).collect();
        assert_eq!(types, vec!["AAAA", "A", "HTTPS"]);

        // A name with only A records and no HTTPS record is fine.
        let res = r.resolve("v4only.test", 443).await.unwrap();
        assert_eq!(res.addrs.len(), 1);
        assert!(res.https.is_empty());
        assert!(
            res.queries.iter().all(|q| q.error.is_none()),
            "{:?}",
            res.queries
        );
    });
}

#[test]
fn unknown_names_timeouts_and_bad_names_are_clear_errors() {
    let dns = server(300);
    rt().block_on(async {
        let r = resolver(dns.addr, Duration::from_secs(2));
        let e = r.resolve("nope.test", 443).await.unwrap_err();
        assert!(matches!(e, DnsError::NotFound { .. }), "{e}");
        assert_eq!(e.to_string(), "could not resolve nope.test: no such host");

        let e = r.resolve("bad name.test", 443).await.unwrap_err();
        assert!(matches!(e, DnsError::InvalidName { .. }), "{e}");

        // A name server that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let r = resolver(silent.local_addr().unwrap(), Duration::from_millis(300));
        let started = std::time::Instant::now();
        let e = r.resolve("www.test", 443).await.unwrap_err();
        assert!(matches!(e, DnsError::Timeout { .. }), "{e:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    });
}

#[test]
fn overrides_and_literals_skip_dns() {
    // No server at all: these must not query.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    rt().block_on(async {
        let r = resolver(silent.local_addr().unwrap(), Duration::from_millis(200));
        let res = r.resolve("pinned.test", 443).await.unwrap();
        assert_eq!(res.addrs[0].ip, IpAddr::from([127, 0, 0, 9]));
        assert_eq!(res.addrs[0].source, AddressSource::Override);
        assert!(res.queries.is_empty());
        // The override is for port 443 only.
        assert!(r.resolve("pinned.test", 8443).await.is_err());
        let res = r.resolve("[::1]", 443).await.unwrap();
        assert_eq!(res.addrs[0].ip, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(res.addrs[0].source, AddressSource::Literal);
        let res = r.resolve("10.0.0.1", 80).await.unwrap();
        assert_eq!(res.addrs[0].source, AddressSource::Literal);
    });
}

#[test]
fn answers_are_cached_for_their_ttl_and_no_longer() {
    let long = server(300);
    let short = TestDns::start(
        "test.",
        1,
        &[TestRecord::A("brief.test.", Ipv4Addr::new(127, 0, 0, 4))],
    );
    rt().block_on(async {
        let r = Resolver::new(&DnsConfig {
            name_servers: vec![long.addr],
            overrides: vec![],
            timeout: Some(Duration::from_millis(500)),
        })
        .unwrap();
        let fresh = r.resolve("www.test", 443).await.unwrap();
        assert!(fresh.queries.iter().all(|q| !q.cached), "{fresh:?}");
        let r_short = resolver(short.addr, Duration::from_millis(500));
        r_short.resolve("brief.test", 443).await.unwrap();
        // Both servers go away.
        drop(long);
        drop(short);
        // Within its 300 s TTL, the answer comes from the cache.
        let res = r.resolve("www.test", 443).await.unwrap();
        assert_eq!(res.addrs.len(), 3);
        assert!(res.queries.iter().all(|q| q.cached), "{res:?}");
        let counts = r.counts();
        assert_eq!(
            (counts.lookups, counts.cache_hits, counts.cache_entries),
            (6, 3, 3)
        );
        // Past its 1 s TTL, it is asked again, and nobody answers.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(r_short.counts().cache_entries, 0, "every TTL ran out");
        assert!(r_short.resolve("brief.test", 443).await.is_err());
        assert_eq!(r_short.counts().cache_hits, 0);
    });
}
