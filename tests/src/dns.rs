//! A real DNS server on loopback (hickory-server, authoritative, in
//! process) serving the records a test gives it, over UDP and TCP.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::svcb::{Alpn, IpHint, SvcParamKey, SvcParamValue, SVCB};
use hickory_proto::rr::rdata::{A, AAAA, HTTPS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use hickory_server::Server;

/// A record to serve.
#[derive(Debug, Clone)]
pub enum TestRecord {
    /// `name A ip`
    A(&'static str, Ipv4Addr),
    /// `name AAAA ip`
    Aaaa(&'static str, Ipv6Addr),
    /// `name HTTPS priority target alpn=… port=… ipv4hint=… ipv6hint=…`
    Https {
        /// Owner name.
        name: &'static str,
        /// SvcPriority.
        priority: u16,
        /// ALPN ids.
        alpn: Vec<&'static str>,
        /// Port, if any.
        port: Option<u16>,
        /// IPv4 hints.
        ipv4_hints: Vec<Ipv4Addr>,
        /// IPv6 hints.
        ipv6_hints: Vec<Ipv6Addr>,
    },
}

/// A running server; stops when dropped.
pub struct TestDns {
    /// Where it listens (UDP and TCP, same port).
    pub addr: SocketAddr,
    server: Option<Server<Catalog>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestDns {
    /// Zone `test.` where `svc.test` has an A record (127.0.0.1) and an
    /// HTTPS record (priority 1) offering `alpn` at `port`.
    pub fn service(alpn: Vec<&'static str>, port: u16) -> TestDns {
        TestDns::start(
            "test.",
            300,
            &[
                TestRecord::A("svc.test.", Ipv4Addr::LOCALHOST),
                TestRecord::Https {
                    name: "svc.test.",
                    priority: 1,
                    alpn,
                    port: Some(port),
                    ipv4_hints: vec![],
                    ipv6_hints: vec![],
                },
            ],
        )
    }

    /// Serves zone `origin` (e.g. `test.`) with `records`, each with `ttl`
    /// seconds, on its own runtime thread.
    pub fn start(origin: &str, ttl: u32, records: &[TestRecord]) -> TestDns {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let origin = Name::from_str(origin).expect("origin name");
        let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let soa = SOA::new(
            Name::from_str("ns")
                .unwrap()
                .append_domain(&origin)
                .unwrap(),
            Name::from_str("hostmaster")
                .unwrap()
                .append_domain(&origin)
                .unwrap(),
            1,
            3600,
            600,
            86400,
            ttl,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), ttl, RData::SOA(soa)), 1);
        for r in records {
            let (name, data) = match r {
                TestRecord::A(n, ip) => (*n, RData::A(A(*ip))),
                TestRecord::Aaaa(n, ip) => (*n, RData::AAAA(AAAA(*ip))),
                TestRecord::Https {
                    name,
                    priority,
                    alpn,
                    port,
                    ipv4_hints,
                    ipv6_hints,
                } => {
                    let mut params = vec![(
                        SvcParamKey::Alpn,
                        SvcParamValue::Alpn(Alpn(alpn.iter().map(|s| s.to_string()).collect())),
                    )];
                    if let Some(p) = port {
                        params.push((SvcParamKey::Port, SvcParamValue::Port(*p)));
                    }
                    if !ipv4_hints.is_empty() {
                        params.push((
                            SvcParamKey::Ipv4Hint,
                            SvcParamValue::Ipv4Hint(IpHint(
                                ipv4_hints.iter().map(|a| A(*a)).collect(),
                            )),
                        ));
                    }
                    if !ipv6_hints.is_empty() {
                        params.push((
                            SvcParamKey::Ipv6Hint,
                            SvcParamValue::Ipv6Hint(IpHint(
                                ipv6_hints.iter().map(|a| AAAA(*a)).collect(),
                            )),
                        ));
                    }
                    (
                        *name,
                        RData::HTTPS(HTTPS(SVCB::new(*priority, Name::root(), params))),
                    )
                }
            };
            let name = Name::from_str(name).expect("record name");
            zone.upsert_mut(Record::from_rdata(name, ttl, data), 1);
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);

        let (server, addr) = runtime.block_on(async {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("udp");
            let addr = udp.local_addr().unwrap();
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .expect("tcp on the same port");
            let mut server = Server::new(catalog);
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 64);
            (server, addr)
        });
        TestDns {
            addr,
            server: Some(server),
            runtime: Some(runtime),
        }
    }
}

impl std::fmt::Debug for TestDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDns").field("addr", &self.addr).finish()
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        if let (Some(mut server), Some(runtime)) = (self.server.take(), self.runtime.take()) {
            // On a thread of its own: the test may be dropping this from
            // inside its own async runtime, where blocking is not allowed.
            let _ = std::thread::spawn(move || {
                let _ = runtime.block_on(server.shutdown_gracefully());
                runtime.shutdown_background();
            })
            .join();
        }
    }
}
