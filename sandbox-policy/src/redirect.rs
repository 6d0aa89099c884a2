//! Where an extension may redirect a request: the hosts its manifest
//! grants (`capabilities.hosts` and `capabilities.redirect-hosts`), with
//! loopback, private, link-local and unspecified targets only when a grant
//! names them one by one.
//!
//! The decision is about the target's host as written in the URL (a name
//! or an IP literal); it resolves nothing. A public name whose DNS answer
//! is a private address (DNS rebinding) is therefore not caught here: that
//! needs a check on the resolved address when connecting.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::manifest::Capabilities;
use crate::origin::HostPattern;

/// One entry of `capabilities.redirect-hosts`: a host pattern (as in
/// `capabilities.hosts`) or an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectGrant {
    /// `*`, `example.com` or `*.example.com`.
    Host(HostPattern),
    /// An IPv4 or IPv6 address (`127.0.0.1`, `::1` or `[::1]`).
    Ip(IpAddr),
}

/// A text is not a redirect grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a redirect host (use \"cdn.example\", \"*.example.org\", \"*\", \"localhost\" or an IP address such as \"127.0.0.1\" or \"::1\")")]
pub struct RedirectGrantError {
    /// The text.
    pub text: String,
}

impl RedirectGrant {
    /// Parses an entry; the error says what is accepted.
    pub fn parse(text: &str) -> Result<Self, RedirectGrantError> {
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(RedirectGrant::Ip(ip));
        }
        HostPattern::parse(text)
            .map(RedirectGrant::Host)
            .map_err(|_| RedirectGrantError {
                text: text.to_owned(),
            })
    }
}

impl fmt::Display for RedirectGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedirectGrant::Host(p) => p.fmt(f),
            RedirectGrant::Ip(ip) => ip.fmt(f),
        }
    }
}

/// A redirect target's host, as the URL parser read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetHost<'a> {
    /// A DNS name.
    Name(&'a str),
    /// An IP literal.
    Ip(IpAddr),
}

/// What kind of address a target names, as far as its text tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Anything not below: reached by its grants like any host.
    Public,
    /// 127.0.0.0/8, ::1, `localhost` and `*.localhost`.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, fc00::/7.
    Private,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// 0.0.0.0/8 and `::`.
    Unspecified,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Unspecified => "unspecified",
        })
    }
}

fn v4_class(ip: Ipv4Addr) -> AddressClass {
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.octets()[0] == 0 {
        AddressClass::Unspecified
    } else {
        AddressClass::Public
    }
}

fn v6_class(ip: Ipv6Addr) -> AddressClass {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_class(v4);
    }
    let first = ip.segments()[0];
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if first & 0xfe00 == 0xfc00 {
        AddressClass::Private
    } else if first & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else {
        AddressClass::Public
    }
}

impl<'a> TargetHost<'a> {
    /// Reads a host as text: an IP literal (IPv6 with or without brackets)
    /// or else a name.
    pub fn parse(text: &'a str) -> Self {
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        match bare.parse::<IpAddr>() {
            Ok(ip) => TargetHost::Ip(ip),
            Err(_) => TargetHost::Name(text),
        }
    }

    /// The kind of address it names. Names are public except `localhost`
    /// and its subdomains, which resolvers answer with loopback (RFC 6761).
    pub fn class(&self) -> AddressClass {
        match self {
            TargetHost::Ip(IpAddr::V4(ip)) => v4_class(*ip),
            TargetHost::Ip(IpAddr::V6(ip)) => v6_class(*ip),
            TargetHost::Name(name) => {
                let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    AddressClass::Loopback
                } else {
                    AddressClass::Public
                }
            }
        }
    }
}

impl fmt::Display for TargetHost<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetHost::Name(n) => f.write_str(n),
            TargetHost::Ip(ip) => ip.fmt(f),
        }
    }
}

/// Why a redirect target is not granted; the text names the host and the
/// grant it lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectRefused {
    /// A public host no grant covers.
    #[error("{host} is in neither capabilities.hosts nor capabilities.redirect-hosts")]
    NotGranted {
        /// The target host.
        host: String,
    },
    /// A loopback, private, link-local or unspecified host no grant names
    /// by itself.
    #[error("{host} is a {class} address, which only an entry naming it exactly (\"{host}\", not a wildcard) in capabilities.redirect-hosts grants")]
    NotNamed {
        /// The target host.
        host: String,
        /// What kind of address it is.
        class: AddressClass,
    },
}

/// Whether `pattern` names `target` exactly: the same name, or the same IP
/// address written as a name pattern.
fn names_exactly(pattern: &HostPattern, target: &TargetHost<'_>) -> bool {
    let HostPattern::Exact(name) = pattern else {
        return false;
    };
    match target {
        TargetHost::Name(_) => pattern.matches(&target.to_string()),
        TargetHost::Ip(ip) => name.parse::<IpAddr>().is_ok_and(|n| n == *ip),
    }
}

/// Whether `pattern` covers a public `target`: a name by any pattern, an IP
/// address by `*` or by naming it (domain patterns are for names).
fn covers_public(pattern: &HostPattern, target: &TargetHost<'_>) -> bool {
    match target {
        TargetHost::Name(name) => pattern.matches(name),
        TargetHost::Ip(_) => matches!(pattern, HostPattern::Any) || names_exactly(pattern, target),
    }
}

impl Capabilities {
    /// Whether an extension may redirect a request to `target`: a public
    /// host when `capabilities.hosts` or `capabilities.redirect-hosts`
    /// covers it; a loopback, private, link-local or unspecified one only
    /// when an entry names it exactly (no wildcard covers those).
    pub fn may_redirect_to(&self, target: &TargetHost<'_>) -> Result<(), RedirectRefused> {
        let class = target.class();
        let by_pattern = |p: &HostPattern| {
            if class == AddressClass::Public {
                covers_public(p, target)
            } else {
                names_exactly(p, target)
            }
        };
        let granted = self.hosts.iter().any(by_pattern)
            || self.redirect_hosts.iter().any(|g| match g {
                RedirectGrant::Host(p) => by_pattern(p),
                RedirectGrant::Ip(ip) => *target == TargetHost::Ip(*ip),
            });
        match (granted, class) {
            (true, _) => Ok(()),
            (false, AddressClass::Public) => Err(RedirectRefused::NotGranted {
                host: target.to_string(),
            }),
            (false, class) => Err(RedirectRefused::NotNamed {
                host: target.to_string(),
                class,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(hosts: &[&str], redirect: &[&str]) -> Capabilities {
        Capabilities {
            hosts: hosts
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .collect(),
            redirect_hosts: redirect
                .iter()
                .map(|h| RedirectGrant::parse(h).unwrap())
                .collect(),
            ..Capabilities::default()
        }
    }

    fn allowed(c: &Capabilities, host: &str) -> bool {
        c.may_redirect_to(&TargetHost::parse(host)).is_ok()
    }

    #[test]
    fn grants_parse_names_patterns_and_ip_addresses() {
        for (text, want) in [
            ("cdn.example", "cdn.example"),
            ("*.example.org", "*.example.org"),
            ("*", "*"),
            ("localhost", "localhost"),
            ("127.0.0.1", "127.0.0.1"),
            ("::1", "::1"),
            ("[fe80::1]", "fe80::1"),
        ] {
            assert_eq!(RedirectGrant::parse(text).unwrap().to_string(), want);
        }
        assert!(matches!(
            RedirectGrant::parse("10.0.0.1"),
            Ok(RedirectGrant::Ip(_))
        ));
        for bad in ["", "http://cdn.example", "cdn.example:443", "[::1", "a.*.b"] {
            let e = RedirectGrant::parse(bad).unwrap_err();
            assert!(e.to_string().contains("is not a redirect host"), "{e}");
        }
    }

    #[test]
    fn addresses_are_classified_by_their_text() {
        use AddressClass::*;
        for (host, class) in [
            ("127.0.0.1", Loopback),
            ("127.8.9.10", Loopback),
            ("[::1]", Loopback),
            ("localhost", Loopback),
            ("LOCALHOST.", Loopback),
            ("db.localhost", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("fc00::1", Private),
            ("[fd12:3456::1]", Private),
            ("169.254.169.254", LinkLocal),
            ("fe80::1", LinkLocal),
            ("0.0.0.0", Unspecified),
            ("::", Unspecified),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:192.168.0.1", Private),
            ("172.32.0.1", Public),
            ("8.8.8.8", Public),
            ("2001:db8::1", Public),
            ("localhost.example", Public),
            ("www.t.test", Public),
        ] {
            assert_eq!(TargetHost::parse(host).class(), class, "{host}");
        }
    }

    #[test]
    fn public_hosts_need_a_host_or_redirect_grant() {
        let c = caps(&["www.t.test"], &[]);
        assert!(allowed(&c, "www.t.test"));
        assert!(allowed(&c, "WWW.T.TEST."));
        assert!(!allowed(&c, "other.test"));
        assert!(!allowed(&c, "8.8.8.8"));
        let c = caps(&["www.t.test"], &["cdn.example", "*.example.org"]);
        assert!(allowed(&c, "cdn.example"));
        assert!(allowed(&c, "example.org"));
        assert!(allowed(&c, "a.b.example.org"));
        assert!(!allowed(&c, "evil.cdn.example"));
        assert!(!allowed(&c, "other.test"));
        let c = caps(&["*"], &[]);
        assert!(allowed(&c, "other.test"));
        assert!(allowed(&c, "8.8.8.8"));
        assert!(allowed(&c, "[2001:db8::1]"));
        // A domain pattern is for names, not for the labels of an address.
        let c = caps(&["*.8.8"], &[]);
        assert!(!allowed(&c, "8.8.8.8"));
        let c = caps(&[], &["8.8.8.8"]);
        assert!(allowed(&c, "8.8.8.8"));
    }

    #[test]
    fn no_wildcard_covers_loopback_private_or_link_local_targets() {
        let c = caps(&["*"], &["*", "*.localhost", "*.0.0.1"]);
        for host in [
            "127.0.0.1",
            "[::1]",
            "localhost",
            "db.localhost",
            "10.0.0.1",
            "192.168.1.1",
            "fd00::1",
            "169.254.169.254",
            "[fe80::1]",
            "0.0.0.0",
            "[::]",
            "[::ffff:127.0.0.1]",
        ] {
            let e = c.may_redirect_to(&TargetHost::parse(host)).unwrap_err();
            assert!(matches!(e, RedirectRefused::NotNamed { .. }), "{host}: {e}");
        }
    }

    #[test]
    fn restricted_targets_are_granted_by_naming_them() {
        let c = caps(
            &["localhost", "127.0.0.1"],
            &["::1", "10.0.0.7", "[fe80::1]", "db.localhost"],
        );
        for host in [
            "localhost",
            "localhost.",
            "127.0.0.1",
            "[::1]",
            "10.0.0.7",
            "fe80::1",
            "db.localhost",
        ] {
            assert!(allowed(&c, host), "{host}");
        }
        for host in [
            "127.0.0.2",
            "10.0.0.8",
            "[::2]",
            "x.localhost",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(!allowed(&c, host), "{host}");
        }
    }

    #[test]
    fn refusals_name_the_host_and_the_missing_grant() {
        let c = caps(&["www.t.test"], &[]);
        assert_eq!(
            c.may_redirect_to(&TargetHost::parse("other.test"))
                .unwrap_err()
                .to_string(),
            "other.test is in neither capabilities.hosts nor capabilities.redirect-hosts"
        );
        assert_eq!(
            c.may_redirect_to(&TargetHost::parse("127.0.0.1"))
                .unwrap_err()
                .to_string(),
            "127.0.0.1 is a loopback address, which only an entry naming it exactly \
             (\"127.0.0.1\", not a wildcard) in capabilities.redirect-hosts grants"
        );
        assert_eq!(
            c.may_redirect_to(&TargetHost::parse("[::1]"))
                .unwrap_err()
                .to_string(),
            "::1 is a loopback address, which only an entry naming it exactly \
             (\"::1\", not a wildcard) in capabilities.redirect-hosts grants"
        );
    }
}
