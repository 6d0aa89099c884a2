//! The network stack's types as the WIT records plugins see, and back.
//! Every bridge converts through here, so a WIT change touches one file.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::bindings::types::{IpAddress, SocketAddress, Transport};
use crate::net::plan;

impl From<plan::Transport> for Transport {
    fn from(t: plan::Transport) -> Self {
        match t {
            plan::Transport::Tcp => Transport::Tcp,
            plan::Transport::Quic => Transport::Quic,
        }
    }
}

impl From<Transport> for plan::Transport {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Tcp => plan::Transport::Tcp,
            Transport::Quic => plan::Transport::Quic,
        }
    }
}

/// `addr` as a WIT socket address.
pub fn socket_address(addr: SocketAddr) -> SocketAddress {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            IpAddress::Ipv4((a, b, c, d))
        }
        IpAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.segments();
            IpAddress::Ipv6((a, b, c, d, e, f, g, h))
        }
    };
    SocketAddress {
        ip,
        port: addr.port(),
    }
}

/// A WIT socket address as the host's.
pub fn socket_addr(addr: &SocketAddress) -> SocketAddr {
    let ip = match addr.ip {
        IpAddress::Ipv4((a, b, c, d)) => IpAddr::from([a, b, c, d]),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => IpAddr::from([a, b, c, d, e, f, g, h]),
    };
    SocketAddr::new(ip, addr.port)
}

/// Microseconds, saturating, as WIT durations are.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_survive_the_round_trip() {
        for text in ["127.0.0.1:443", "[2001:db8::1]:8443", "[::1]:80"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(socket_addr(&socket_address(addr)), addr);
        }
    }
}
