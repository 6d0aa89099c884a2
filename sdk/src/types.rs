//! Types every plugin kind shares.

pub use crate::__bindings::base::sockhost::plugin::types::{
    DurationUs, Header, InstantUs, IpAddress, Origin, SocketAddress, Transport,
};

impl Header {
    /// A header with a text value.
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The value as text, if it is UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

impl IpAddress {
    /// As a standard library address.
    pub fn to_std(&self) -> std::net::IpAddr {
        match *self {
            IpAddress::Ipv4((a, b, c, d)) => std::net::Ipv4Addr::new(a, b, c, d).into(),
            IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => {
                std::net::Ipv6Addr::new(a, b, c, d, e, f, g, h).into()
            }
        }
    }

    /// Whether this is an IPv6 address.
    pub fn is_ipv6(&self) -> bool {
        matches!(self, IpAddress::Ipv6(_))
    }
}

impl From<std::net::IpAddr> for IpAddress {
    fn from(ip: std::net::IpAddr) -> Self {
        match ip {
            std::net::IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                IpAddress::Ipv4((a, b, c, d))
            }
            std::net::IpAddr::V6(v6) => {
                let [a, b, c, d, e, f, g, h] = v6.segments();
                IpAddress::Ipv6((a, b, c, d, e, f, g, h))
            }
        }
    }
}

impl Origin {
    /// `scheme://host:port`.
    pub fn to_url_prefix(&self) -> String {
        format!("{}://{}:{}", self.scheme, self.host, self.port)
    }
}
