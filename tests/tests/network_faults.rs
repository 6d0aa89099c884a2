//! Happy Eyeballs v3 against broken paths: the origin sits in a network
//! namespace behind a veth pair, nftables inside drops what a broken
//! network would (UDP, IPv6 TCP, IPv4 TCP), and a DNS relay answers AAAA
//! late. With the built-in plan and with the happy-eyeballs plugin.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sockhost::host::{read_all, FetchRequest, FetchResponse, Host, HostBuilder};
use sockhost::net::pool::PoolPrefs;
use sockhost::net::race::{AttemptSummary, Outcome};
use sockhost::plugins::connect::ConnectPlugin;
use sockhost::plugins::PluginRuntime;
use sockhost_tests::dns::{TestDns, TestRecord};
use sockhost_tests::dns_relay::DelayRelay;
use sockhost_tests::netns::{netns, origin_behind, Namespace};
use sockhost_tests::origin::{OriginOptions, TestOrigin};
use sockhost_tests::rt;

const AAAA: u16 = 28;
const A: u16 = 1;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An origin for `svc.test` behind a fresh namespace dropping `drop`.
fn svc_behind(h3: bool, drop: Option<&str>) -> (Namespace, TestOrigin) {
    origin_behind(&["svc.test"], h3, drop)
}

/// `svc.test` at `ns`'s addresses (IPv6 and IPv4), and with `h3` an HTTPS
/// record offering h3 and h2 on `port`.
fn dns_for(ns: &Namespace, port: u16, h3: bool) -> TestDns {
    let mut records = vec![
        TestRecord::Aaaa("svc.test.", ns.ns_v6),
        TestRecord::A("svc.test.", ns.ns_v4),
    ];
    if h3 {
        records.push(TestRecord::Https {
            name: "svc.test.",
            priority: 1,
            alpn: vec!["h3", "h2"],
            port: Some(port),
            ipv4_hints: vec![],
            ipv6_hints: vec![],
        });
    }
    TestDns::start("test.", 300, &records)
}

/// A host asking `dns` and trusting `origin`, with idle connections
/// closing quickly (so that each fetch after a pause dials), planned by
/// the happy-eyeballs plugin when `plugin` is given.
fn host(origin: &TestOrigin, dns: SocketAddr, plugin: Option<&PluginRuntime>) -> HostBuilder {
    let mut b = Host::builder()
        .name_servers(vec![dns])
        .ca_file(origin.ca_file.clone())
        .no_platform_roots()
        .pool(PoolPrefs {
            idle_timeout: ms(100),
            ..PoolPrefs::default()
        });
    if let Some(prt) = plugin {
        let policy =
            ConnectPlugin::new(prt.load(&sockhost_tests::plugin("happy-eyeballs")).unwrap())
                .unwrap();
        b = b.connect_policy(policy);
    }
    b
}

fn url(origin: &TestOrigin) -> String {
    format!("https://svc.test:{}/", origin.addr.port())
}

/// The attempt (not a syn-retry twin) to `ip` over TCP or QUIC.
fn attempt_to(r: &FetchResponse, ip: IpAddr, tcp: bool) -> AttemptSummary {
    let c = &r.connection;
    *c.attempts
        .iter()
        .find(|a| {
            !a.twin
                && a.tcp == tcp
                && c.candidates
                    .iter()
                    .any(|(id, addr)| *id == a.candidate && addr.ip() == ip)
        })
        .unwrap_or_else(|| panic!("no attempt to {ip} (tcp {tcp}): {:?}", c.attempts))
}

/// The attempt that started first.
fn lead(r: &FetchResponse) -> AttemptSummary {
    *r.connection
        .attempts
        .iter()
        .min_by_key(|a| a.started.unwrap_or(Duration::MAX))
        .unwrap()
}

#[test]
fn a_udp_black_hole_falls_back_to_tcp_and_the_next_connection_leads_with_it() {
    black_hole_then_tcp_leads(false);
}

#[test]
fn the_happy_eyeballs_plugin_learns_the_udp_black_hole_too() {
    black_hole_then_tcp_leads(true);
}

/// nftables drops UDP to the origin's QUIC port: QUIC leads (HTTPS record
/// with h3), TCP wins after the 50 ms head start plus a handshake, the
/// next connection leads with TCP, and after a network change QUIC leads
/// again.
fn black_hole_then_tcp_leads(plugin: bool) {
    if !netns() {
        return;
    }
    let (ns, origin) = svc_behind(true, Some("udp dport {port}"));
    let port = origin.addr.port();
    let dns = dns_for(&ns, port, true);
    let (prt, _data) = sockhost_tests::runtime();
    rt().block_on(async {
        let h = host(&origin, dns.addr, plugin.then_some(&prt))
            .build()
            .unwrap();
        let first = h.fetch(FetchRequest::get(url(&origin))).await.unwrap();
        assert_eq!(first.version, http::Version::HTTP_2);
        let planner = if plugin { "happy-eyeballs" } else { "builtin" };
        assert_eq!(first.connection.planned_by, planner);
        let a = &first.connection.attempts;
        let quic = a.iter().find(|a| !a.tcp).expect("a QUIC attempt");
        let tcp = a.iter().find(|a| a.tcp).expect("a TCP attempt");
        assert_eq!(quic.started, Some(Duration::ZERO), "QUIC leads: {a:?}");
        assert_eq!(quic.outcome, Outcome::Cancelled, "{a:?}");
        assert!(
            tcp.started.unwrap() >= ms(50),
            "TCP after the head start: {a:?}"
        );
        // Head start plus a TCP + TLS handshake, not QUIC's 10 s timeout.
        assert!(
            first.timings.connect + first.timings.tls < ms(500),
            "{:?}",
            first.timings
        );
        read_all(first.body).await.unwrap();
        assert_eq!(
            origin.quic_connections(),
            0,
            "the drop rule let QUIC through"
        );

        tokio::time::sleep(ms(400)).await;
        let second = h.fetch(FetchRequest::get(url(&origin))).await.unwrap();
        assert!(!second.reused, "a new connection");
        assert_eq!(second.version, http::Version::HTTP_2);
        assert!(
            lead(&second).tcp,
            "TCP leads after the black hole: {:?}",
            second.connection.attempts
        );
        read_all(second.body).await.unwrap();

        // Another network: what was learned no longer holds.
        h.network_changed();
        tokio::time::sleep(ms(400)).await;
        let third = h.fetch(FetchRequest::get(url(&origin))).await.unwrap();
        assert!(!third.reused, "a new connection");
        assert!(
            !lead(&third).tcp,
            "QUIC leads on a new network: {:?}",
            third.connection.attempts
        );
        read_all(third.body).await.unwrap();
    });
}

#[test]
fn an_unreachable_ipv6_address_falls_back_to_ipv4_after_the_attempt_delay() {
    ipv6_black_hole(false);
}

#[test]
fn the_happy_eyeballs_plugin_falls_back_to_ipv4_too() {
    ipv6_black_hole(true);
}

/// nftables drops IPv6 TCP to the origin: the IPv6 attempt leads and hears
/// nothing, IPv4 starts after the 250 ms attempt delay and wins. The next
/// connection leads with IPv4 under the plugin, which learns, and with
/// IPv6 again under the built-in plan, which does not.
fn ipv6_black_hole(plugin: bool) {
    if !netns() {
        return;
    }
    let (ns, origin) = svc_behind(false, Some("meta nfproto ipv6 tcp dport {port}"));
    let port = origin.addr.port();
    let dns = dns_for(&ns, port, false);
    let (prt, _data) = sockhost_tests::runtime();
    rt().block_on(async {
        let h = host(&origin, dns.addr, plugin.then_some(&prt))
            .build()
            .unwrap();
        let r = h.fetch(FetchRequest::get(url(&origin))).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.connection.remote,
            Some(SocketAddr::new(ns.ns_v4.into(), port))
        );
        let v6 = attempt_to(&r, ns.ns_v6.into(), true);
        let v4 = attempt_to(&r, ns.ns_v4.into(), true);
        let a = &r.connection.attempts;
        assert_eq!(v6.started, Some(Duration::ZERO), "IPv6 leads: {a:?}");
        assert_eq!(v6.outcome, Outcome::Cancelled, "{a:?}");
        assert_eq!(v4.outcome, Outcome::Won, "{a:?}");
        let v4_start = v4.started.unwrap();
        // The attempt delay, plus at most one 10 ms spacing (the IPv6
        // attempt's syn-retry twin is due at the same instant).
        assert!(v4_start >= ms(250) && v4_start <= ms(350), "{a:?}");
        assert!(
            r.timings.connect + r.timings.tls < ms(600),
            "{:?}",
            r.timings
        );
        read_all(r.body).await.unwrap();

        // The outpaced IPv6 attempt was reported as timed out. The plugin
        // learns from it and leads with IPv4 next time; the built-in plan
        // keeps RFC 8305's order. Same host, another policy: another race.
        tokio::time::sleep(ms(400)).await;
        let r = h.fetch(FetchRequest::get(url(&origin))).await.unwrap();
        assert!(!r.reused, "a new connection");
        let first = lead(&r);
        let (_, addr) = r.connection.candidates[first.candidate as usize];
        let expected: IpAddr = if plugin {
            ns.ns_v4.into()
        } else {
            ns.ns_v6.into()
        };
        assert_eq!(addr.ip(), expected, "{:?}", r.connection.attempts);
        read_all(r.body).await.unwrap();
    });
}

/// AAAA is answered 400 ms late: the race starts on the A answer after the
/// 50 ms resolution delay instead of waiting for it. With the delay off,
/// the same fetch waits for AAAA and goes over IPv6.
#[test]
fn a_late_aaaa_answer_does_not_hold_the_race_back() {
    if !netns() {
        return;
    }
    let (ns, origin) = svc_behind(false, None);
    let dns = dns_for(&ns, origin.addr.port(), false);
    let relay = DelayRelay::start(dns.addr, vec![(AAAA, ms(400))]);
    rt().block_on(async {
        let h = host(&origin, relay.addr, None).build().unwrap();
        let r = h.fetch(FetchRequest::get(url(&origin))).await.unwrap();
        assert_eq!(r.connection.remote.unwrap().ip(), IpAddr::from(ns.ns_v4));
        assert!(
            r.timings.dns >= ms(45) && r.timings.dns < ms(300),
            "{:?}",
            r.timings
        );
        read_all(r.body).await.unwrap();

        let h = host(&origin, relay.addr, None)
            .resolution_delay(None)
            .build()
            .unwrap();
        let r = h.fetch(FetchRequest::get(url(&origin))).await.unwrap();
        assert_eq!(r.connection.remote.unwrap().ip(), IpAddr::from(ns.ns_v6));
        assert!(r.timings.dns >= ms(400), "{:?}", r.timings);
        read_all(r.body).await.unwrap();
    });
}

/// IPv4 TCP is dropped and AAAA answers 150 ms late: the race starts on
/// IPv4 (silent), and the IPv6 address joins the running race, keeping
/// the 250 ms attempt delay from the IPv4 attempt (it was not in the
/// plan), and wins — long before the IPv4 attempt would give up.
#[test]
fn a_late_aaaa_answer_joins_the_running_race() {
    if !netns() {
        return;
    }
    let (ns, origin) = svc_behind(false, Some("meta nfproto ipv4 tcp dport {port}"));
    let port = origin.addr.port();
    let dns = dns_for(&ns, port, false);
    let relay = DelayRelay::start(dns.addr, vec![(AAAA, ms(150))]);
    rt().block_on(async {
        let h = host(&origin, relay.addr, None).build().unwrap();
        let r = h.fetch(FetchRequest::get(url(&origin))).await.unwrap();
        assert_eq!(
            r.connection.remote,
            Some(SocketAddr::new(ns.ns_v6.into(), port))
        );
        let a = &r.connection.attempts;
        let v4 = attempt_to(&r, ns.ns_v4.into(), true);
        let v6 = attempt_to(&r, ns.ns_v6.into(), true);
        assert_eq!(v4.started, Some(Duration::ZERO), "{a:?}");
        assert_eq!(v4.outcome, Outcome::Cancelled, "{a:?}");
        assert_eq!(v6.outcome, Outcome::Won, "{a:?}");
        // The race started ~50 ms after A; AAAA came at ~150 ms; the
        // attempt delay from IPv4 (plus at most one 10 ms spacing behind
        // the IPv4 attempt's syn-retry twin, due at the same instant).
        let joined = v6.started.unwrap();
        assert!(joined >= ms(250) && joined <= ms(350), "{a:?}");
        read_all(r.body).await.unwrap();
    });
}

/// The HTTPS record's ipv4hint matches the address this host resolved
/// the name to before: once the cached answers expire and A/AAAA answer
/// 400 ms late, the connection starts on the hint as soon as HTTPS
/// answers. The first visit, with nothing known, waits for A.
#[test]
fn https_hints_that_match_known_addresses_start_before_a_and_aaaa() {
    let origin = TestOrigin::start(OriginOptions {
        names: vec!["svc.test".into()],
        ..OriginOptions::default()
    });
    let port = origin.addr.port();
    let localhost = std::net::Ipv4Addr::LOCALHOST;
    // TTL 1 s: hickory's cache forgets the answers between the visits.
    let dns = TestDns::start(
        "test.",
        1,
        &[
            TestRecord::A("svc.test.", localhost),
            TestRecord::Https {
                name: "svc.test.",
                priority: 1,
                alpn: vec!["h2"],
                port: Some(port),
                ipv4_hints: vec![localhost],
                ipv6_hints: vec![],
            },
        ],
    );
    let relay = DelayRelay::start(dns.addr, vec![(A, ms(400)), (AAAA, ms(400))]);
    rt().block_on(async {
        let h = host(&origin, relay.addr, None).build().unwrap();
        let first = h.fetch(FetchRequest::get(url(&origin))).await.unwrap();
        assert!(first.timings.dns >= ms(400), "{:?}", first.timings);
        read_all(first.body).await.unwrap();

        tokio::time::sleep(ms(1500)).await;
        let second = h.fetch(FetchRequest::get(url(&origin))).await.unwrap();
        assert!(!second.reused, "a new connection");
        assert_eq!(
            second.connection.remote,
            Some(SocketAddr::new(localhost.into(), port))
        );
        assert!(second.timings.dns < ms(200), "{:?}", second.timings);
        read_all(second.body).await.unwrap();
    });
}
