//! The fault-test harness itself: an origin in a network namespace reached
//! over a veth pair on IPv4 and IPv6, nftables rules inside that break the
//! path (UDP to the QUIC port, IPv6 TCP), and a DNS relay that answers
//! AAAA late.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use sockhost::host::{read_all, FetchRequest, Host};
use sockhost::net::connection::VersionPref;
use sockhost::net::dns::ResolveOverride;
use sockhost_tests::dns::{TestDns, TestRecord};
use sockhost_tests::dns_relay::DelayRelay;
use sockhost_tests::netns::{drop_input, netns, origin_behind, Namespace};
use sockhost_tests::origin::{OriginOptions, TestOrigin};
use sockhost_tests::rt;

/// An origin in `ns` on `::` (so on both of its addresses).
fn origin_in(ns: &Namespace, h3: bool) -> TestOrigin {
    TestOrigin::start_in(
        ns,
        OriginOptions {
            listen: Ipv6Addr::UNSPECIFIED.into(),
            h3,
            ..OriginOptions::default()
        },
    )
}

/// A host that reaches `origin` as `www.test` at `ip`.
fn host_at(origin: &TestOrigin, ip: IpAddr) -> sockhost::host::HostBuilder {
    Host::builder()
        .resolve(
            format!("www.test:{}:[{ip}]", origin.addr.port())
                .parse::<ResolveOverride>()
                .expect("a valid override"),
        )
        .ca_file(origin.ca_file.clone())
        .no_platform_roots()
}

fn url(origin: &TestOrigin) -> String {
    format!("https://www.test:{}/", origin.addr.port())
}

/// Fetches `/` from `origin` at `ip` and checks who answered, how.
async fn fetch_from(origin: &TestOrigin, ip: IpAddr, version: VersionPref) -> http::Version {
    let h = host_at(origin, ip).version(version).build().unwrap();
    let r = h.fetch(FetchRequest::get(url(origin))).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.connection.remote,
        Some(SocketAddr::new(ip, origin.addr.port()))
    );
    assert_eq!(
        read_all(r.body).await.unwrap(),
        "hello from the test origin\n"
    );
    r.version
}

/// A QUIC long-header packet of an unknown version, padded to 1200 bytes:
/// a QUIC server answers it with Version Negotiation (RFC 9000 6.1).
fn unknown_version_packet() -> Vec<u8> {
    let mut p = vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 8];
    p.extend_from_slice(&[1; 8]);
    p.push(8);
    p.extend_from_slice(&[2; 8]);
    p.resize(1200, 0);
    p
}

/// Whether `to` answers [`unknown_version_packet`] with Version
/// Negotiation within `wait`.
fn quic_answers(to: SocketAddr, wait: Duration) -> bool {
    let local: SocketAddr = match to {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    socket.send_to(&unknown_version_packet(), to).unwrap();
    let mut buf = [0u8; 1500];
    match socket.recv_from(&mut buf) {
        // Long header, version 0: Version Negotiation.
        Ok((n, from)) => {
            assert_eq!(from, to);
            n >= 5 && buf[0] & 0x80 != 0 && buf[1..5] == [0; 4]
        }
        Err(_) => false,
    }
}

#[test]
fn an_origin_on_both_families_in_a_namespace_is_reached_over_the_veth_pair() {
    if !netns() {
        return;
    }
    let ns = Namespace::create().unwrap();
    // Here `::` means IPv6 only unless a socket says otherwise, as on
    // systems with net.ipv6.bindv6only=1: the origin must say so itself.
    let v6_only = ns.run(|| {
        std::fs::write("/proc/sys/net/ipv6/bindv6only", "1").unwrap();
        std::net::TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0)).unwrap()
    });
    let plain = SocketAddr::new(ns.ns_v4.into(), v6_only.local_addr().unwrap().port());
    assert_eq!(
        TcpStream::connect(plain).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    let origin = origin_in(&ns, false);
    let port = origin.addr.port();
    assert_eq!(
        origin.addr,
        SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port)
    );
    let ips: [IpAddr; 2] = [ns.ns_v4.into(), ns.ns_v6.into()];
    for ip in ips {
        TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("TCP to {ip}: {e}"));
    }
    rt().block_on(async {
        for ip in ips {
            let version = fetch_from(&origin, ip, VersionPref::Auto).await;
            assert_eq!(version, http::Version::HTTP_2);
        }
    });
    // Two probes and two fetches, all in the namespace's listener.
    assert_eq!(origin.connections(), 4);
}

#[test]
fn dropping_udp_to_the_quic_port_silences_quic() {
    if !netns() {
        return;
    }
    let (ns, origin) = origin_behind(&["localhost", "www.test"], true, None);
    let port = origin.addr.port();
    let ips: [IpAddr; 2] = [ns.ns_v4.into(), ns.ns_v6.into()];
    rt().block_on(async {
        for ip in ips {
            let version = fetch_from(&origin, ip, VersionPref::Http3).await;
            assert_eq!(version, http::Version::HTTP_3);
        }
    });
    assert_eq!(origin.quic_connections(), 2);
    for ip in ips {
        let to = SocketAddr::new(ip, port);
        assert!(quic_answers(to, Duration::from_secs(2)), "{to} is silent");
    }

    drop_input(&ns, &format!("udp dport {port}"));
    for ip in ips {
        let to = SocketAddr::new(ip, port);
        assert!(!quic_answers(to, Duration::from_millis(500)), "{to}");
    }
    rt().block_on(async {
        let h = host_at(&origin, ns.ns_v4.into())
            .version(VersionPref::Http3)
            .connector(sockhost::net::connect::Connector {
                connect_timeout: Duration::from_millis(800),
                ..Default::default()
            })
            .build()
            .unwrap();
        let e = h
            .fetch(FetchRequest::get(url(&origin)))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("QUIC"), "{e}");
    });
    assert_eq!(origin.quic_connections(), 2);
}

#[test]
fn dropping_ipv6_tcp_leaves_ipv4_working() {
    if !netns() {
        return;
    }
    let (ns, origin) = origin_behind(
        &["localhost", "www.test"],
        false,
        Some("meta nfproto ipv6 tcp dport {port}"),
    );
    let port = origin.addr.port();
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let e = TcpStream::connect_timeout(&SocketAddr::new(ns.ns_v6.into(), port), timeout)
        .expect_err("IPv6 TCP is dropped");
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    assert!(started.elapsed() >= timeout);
    TcpStream::connect_timeout(&SocketAddr::new(ns.ns_v4.into(), port), timeout)
        .expect("IPv4 TCP connects");
}

#[test]
fn the_relay_answers_a_at_once_and_aaaa_late() {
    use hickory_proto::rr::RecordType;
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::TokioResolver;

    // Loopback only: no namespace needed.
    let dns = TestDns::start(
        "test.",
        300,
        &[
            TestRecord::A("www.test.", Ipv4Addr::new(10, 1, 2, 3)),
            TestRecord::Aaaa("www.test.", "fd5e::1:2:3".parse().unwrap()),
        ],
    );
    let aaaa_delay = Duration::from_millis(300);
    let relay = DelayRelay::start(dns.addr, vec![(28, aaaa_delay)]);
    rt().block_on(async {
        let mut udp = ConnectionConfig::udp();
        udp.port = relay.addr.port();
        let mut server = NameServerConfig::udp(relay.addr.ip());
        server.connections = vec![udp];
        let mut b = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![server]),
            TokioRuntimeProvider::default(),
        );
        b.options_mut().timeout = Duration::from_secs(2);
        b.options_mut().attempts = 1;
        let resolver = b.build().unwrap();
        let timed = |t: RecordType| {
            let resolver = &resolver;
            async move {
                let started = Instant::now();
                let lookup = resolver.lookup("www.test.", t).await.unwrap();
                let answers: Vec<_> = lookup.answers().iter().map(|r| r.data.clone()).collect();
                (answers, started.elapsed())
            }
        };
        let ((a, a_took), (aaaa, aaaa_took)) =
            tokio::join!(timed(RecordType::A), timed(RecordType::AAAA));
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(aaaa.len(), 1, "{aaaa:?}");
        assert!(a_took < Duration::from_millis(150), "A took {a_took:?}");
        assert!(aaaa_took >= aaaa_delay, "AAAA took {aaaa_took:?}");

        // sockhost's resolver through the relay: each query's time says
        // the same.
        let r = sockhost::net::dns::Resolver::new(&sockhost::net::dns::DnsConfig {
            name_servers: vec![relay.addr],
            overrides: vec![],
            timeout: Some(Duration::from_secs(2)),
        })
        .unwrap();
        let res = r.resolve("www.test", 443).await.unwrap();
        assert_eq!(res.addrs.len(), 2, "{res:?}");
        let took = |t: &str| {
            res.queries
                .iter()
                .find(|q| q.record_type == t)
                .unwrap_or_else(|| panic!("no {t} query: {res:?}"))
                .elapsed
        };
        assert!(took("A") < Duration::from_millis(150), "{res:?}");
        assert!(took("AAAA") >= aaaa_delay, "{res:?}");
    });
}

#[test]
fn namespaces_made_at_once_get_their_own_names_and_addresses() {
    if !netns() {
        return;
    }
    let all: Vec<Namespace> = std::thread::scope(|s| {
        let made: Vec<_> = (0..4).map(|_| s.spawn(Namespace::create)).collect();
        made.into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect()
    });
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a.name(), b.name());
            assert_ne!(a.ns_v4, b.ns_v4);
            assert_ne!(a.ns_v6, b.ns_v6);
        }
    }
    let inside = all[0]
        .exec("ip", &["-o", "addr", "show", "dev", Namespace::LINK])
        .unwrap();
    assert!(inside.contains(&format!("{}/30", all[0].ns_v4)), "{inside}");
    assert!(inside.contains(&format!("{}/64", all[0].ns_v6)), "{inside}");
    // A socket made inside stays inside, used from this thread.
    let listener = all[0].run(|| std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap());
    let port = listener.local_addr().unwrap().port();
    TcpStream::connect((all[0].ns_v4, port)).unwrap();
    listener.accept().unwrap();
    let name = all[0].name().to_owned();
    drop(all);
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&name)),
        "{name} left behind: {left}"
    );
}
