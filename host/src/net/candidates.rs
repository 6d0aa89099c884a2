//! The candidates of one dial, derived from what DNS and the Alt-Svc cache
//! said. Sans-IO: each answer is absorbed as it arrives (the race may have
//! started), the candidates are derived again from everything known, and
//! only those not seen before come back as new.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::dns::{HttpsService, Resolution};
use super::plan::{Candidate, CandidateSource, Transport};

/// What one dial may try, growing as answers come in.
#[derive(Debug, Default)]
pub struct CandidateSet {
    host: String,
    port: u16,
    quic_allowed: bool,
    tcp_allowed: bool,
    /// Ports of Alt-Svc h3 alternatives on the origin's own host.
    alt_ports: Vec<u16>,
    ips: Vec<IpAddr>,
    https: Vec<HttpsService>,
    /// Invariant: ids are the positions in this list.
    candidates: Vec<Candidate>,
}

impl CandidateSet {
    /// Candidates for `host:port`; QUIC ones only when `quic_allowed`, TCP
    /// ones only when `tcp_allowed` (plain addresses become QUIC
    /// candidates when TCP is not allowed: HTTP/3 forced).
    pub fn new(host: &str, port: u16, quic_allowed: bool, tcp_allowed: bool) -> Self {
        CandidateSet {
            host: host.to_owned(),
            port,
            quic_allowed,
            tcp_allowed,
            ..CandidateSet::default()
        }
    }

    /// An Alt-Svc h3 alternative on the origin's own host: its addresses,
    /// late ones too, are tried over QUIC on `port`.
    pub fn alt_svc_port(&mut self, port: u16) {
        if !self.alt_ports.contains(&port) {
            self.alt_ports.push(port);
        }
    }

    /// An Alt-Svc h3 alternative on another host, already resolved.
    pub fn alt_svc_addr(&mut self, addr: SocketAddr) -> Option<Candidate> {
        let c = self.add(addr, Transport::Quic)?;
        c.source = CandidateSource::AltSvc;
        Some(c.clone())
    }

    /// Every candidate so far.
    pub fn all(&self) -> &[Candidate] {
        &self.candidates
    }

    /// Candidate id → address.
    pub fn endpoints(&self) -> HashMap<u32, SocketAddr> {
        self.candidates.iter().map(|c| (c.id, c.addr)).collect()
    }

    /// Takes in an answer; returns the candidates it added.
    pub fn absorb(&mut self, part: &Resolution) -> Vec<Candidate> {
        let before = self.candidates.len();
        for a in &part.addrs {
            if !self.ips.contains(&a.ip) {
                self.ips.push(a.ip);
            }
        }
        self.https.extend(part.https.iter().cloned());
        self.derive_from_https();
        for port in self.alt_ports.clone() {
            for ip in self.ips.clone() {
                if let Some(c) = self.add(SocketAddr::new(ip, port), Transport::Quic) {
                    c.source = CandidateSource::AltSvc;
                }
            }
        }
        let plain = if self.tcp_allowed {
            Transport::Tcp
        } else {
            Transport::Quic
        };
        for ip in self.ips.clone() {
            self.add(SocketAddr::new(ip, self.port), plain);
        }
        self.candidates[before..].to_vec()
    }

    /// HTTPS records (RFC 9460) in service mode for this very name: the
    /// origin's addresses (or the record's hints) at the record's port,
    /// ranked by its priority, once per transport the record offers. Other
    /// target names would need another resolution.
    fn derive_from_https(&mut self) {
        let services: Vec<HttpsService> = self
            .https
            .iter()
            .filter(|s| s.priority > 0 && s.target == self.host)
            .cloned()
            .collect();
        for svc in services {
            let tcp_alpn: Vec<String> = svc
                .alpn
                .iter()
                .filter(|a| *a == "h2" || *a == "http/1.1")
                .cloned()
                .collect();
            // Without no-default-alpn a service also speaks http/1.1.
            let offers_tcp = !tcp_alpn.is_empty() || !svc.no_default_alpn;
            let offers_h3 = svc.alpn.iter().any(|a| a == "h3");
            let port = svc.port.unwrap_or(self.port);
            let mut ips = self.ips.clone();
            if ips.is_empty() {
                ips.extend(svc.ipv6_hints.iter().map(|&ip| IpAddr::V6(ip)));
                ips.extend(svc.ipv4_hints.iter().map(|&ip| IpAddr::V4(ip)));
            }
            let offered = [
                (
                    Transport::Quic,
                    self.quic_allowed && offers_h3,
                    vec!["h3".to_owned()],
                ),
                (Transport::Tcp, self.tcp_allowed && offers_tcp, tcp_alpn),
            ];
            for ip in ips {
                for (transport, _, alpn) in offered.iter().filter(|o| o.1) {
                    if let Some(c) = self.add(SocketAddr::new(ip, port), *transport) {
                        c.source = CandidateSource::HttpsRecord;
                        c.priority = svc.priority;
                        c.ech = svc.ech_config.is_some();
                        if !alpn.is_empty() {
                            c.alpn = alpn.clone();
                        }
                    }
                }
            }
        }
    }

    /// Adds a candidate unless the same transport already has `addr`.
    fn add(&mut self, addr: SocketAddr, transport: Transport) -> Option<&mut Candidate> {
        if self
            .candidates
            .iter()
            .any(|c| c.transport == transport && c.addr == addr)
        {
            return None;
        }
        let id = self.candidates.len() as u32;
        self.candidates.push(Candidate::plain(id, addr, transport));
        self.candidates.last_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::dns::{AddressSource, ResolvedAddr};
    use std::time::Duration;

    fn answer(ips: &[&str], https: Vec<HttpsService>) -> Resolution {
        Resolution {
            host: "www.test".into(),
            addrs: ips
                .iter()
                .map(|ip| ResolvedAddr {
                    ip: ip.parse().unwrap(),
                    source: AddressSource::A,
                })
                .collect(),
            https,
            queries: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    fn service(priority: u16, alpn: &[&str], port: Option<u16>) -> HttpsService {
        HttpsService {
            priority,
            target: "www.test".into(),
            alpn: alpn.iter().map(|a| a.to_string()).collect(),
            no_default_alpn: false,
            port,
            ipv4_hints: vec!["192.0.2.7".parse().unwrap()],
            ipv6_hints: Vec::new(),
            ech_config: None,
        }
    }

    fn shown(cands: &[Candidate]) -> Vec<(u32, Transport, String)> {
        cands
            .iter()
            .map(|c| (c.id, c.transport, c.addr.to_string()))
            .collect()
    }

    #[test]
    fn each_answer_adds_only_what_is_new() {
        let mut set = CandidateSet::new("www.test", 443, true, true);
        let first = set.absorb(&answer(&["127.0.0.1"], Vec::new()));
        assert_eq!(
            shown(&first),
            vec![(0, Transport::Tcp, "127.0.0.1:443".into())]
        );
        // AAAA arrives later: only the IPv6 address is new.
        let late = set.absorb(&answer(&["::1", "127.0.0.1"], Vec::new()));
        assert_eq!(shown(&late), vec![(1, Transport::Tcp, "[::1]:443".into())]);
        assert_eq!(set.all().len(), 2);
        assert_eq!(set.endpoints()[&1], "[::1]:443".parse().unwrap());
    }

    #[test]
    fn an_https_record_offering_h3_gives_quic_candidates_at_its_port() {
        let mut set = CandidateSet::new("www.test", 443, true, true);
        let got = set.absorb(&answer(
            &["127.0.0.1"],
            vec![service(1, &["h3", "h2"], Some(8443))],
        ));
        assert_eq!(
            shown(&got),
            vec![
                (0, Transport::Quic, "127.0.0.1:8443".into()),
                (1, Transport::Tcp, "127.0.0.1:8443".into()),
                (2, Transport::Tcp, "127.0.0.1:443".into()),
            ]
        );
        assert_eq!(got[0].source, CandidateSource::HttpsRecord);
        assert_eq!(got[0].priority, 1);
        assert_eq!(got[1].alpn, vec!["h2".to_owned()]);
        assert_eq!(got[2].source, CandidateSource::A);
    }

    #[test]
    fn hints_stand_in_for_addresses_not_yet_known() {
        let mut set = CandidateSet::new("www.test", 443, false, true);
        let got = set.absorb(&answer(&[], vec![service(1, &["h3"], None)]));
        // QUIC is not allowed (http, or HTTP/1.1 forced); the record still
        // offers http/1.1 by default.
        assert_eq!(
            shown(&got),
            vec![(0, Transport::Tcp, "192.0.2.7:443".into())]
        );
    }

    #[test]
    fn alias_mode_and_other_targets_add_nothing() {
        let mut set = CandidateSet::new("www.test", 443, true, true);
        let mut other = service(1, &["h3"], None);
        other.target = "cdn.test".into();
        let got = set.absorb(&answer(&[], vec![service(0, &["h3"], None), other]));
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn alt_svc_alternatives_follow_the_origins_addresses() {
        let mut set = CandidateSet::new("www.test", 443, true, true);
        set.alt_svc_port(9443);
        let elsewhere = set.alt_svc_addr("192.0.2.9:443".parse().unwrap()).unwrap();
        assert_eq!(elsewhere.source, CandidateSource::AltSvc);
        let got = set.absorb(&answer(&["127.0.0.1"], Vec::new()));
        assert_eq!(
            shown(&got),
            vec![
                (1, Transport::Quic, "127.0.0.1:9443".into()),
                (2, Transport::Tcp, "127.0.0.1:443".into()),
            ]
        );
        assert_eq!(got[0].source, CandidateSource::AltSvc);
    }

    #[test]
    fn with_http3_forced_plain_addresses_are_quic_candidates() {
        let mut set = CandidateSet::new("www.test", 443, true, false);
        let got = set.absorb(&answer(&["127.0.0.1"], Vec::new()));
        assert_eq!(
            shown(&got),
            vec![(0, Transport::Quic, "127.0.0.1:443".into())]
        );
    }
}
