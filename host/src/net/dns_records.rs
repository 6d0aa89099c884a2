//! What one name resolves to, for people (`sockhost dns HOST`, the status
//! page): addresses, and HTTPS records in presentation form (RFC 9460
//! §2.1), written here because hickory's `Display` for SVCB is not
//! presentation form (it leaves trailing commas and `no-default-alpn=`).

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use hickory_proto::rr::rdata::svcb::{SvcParamKey, SvcParamValue, SVCB};

/// What a lookup of one name answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordsAnswer {
    /// The name asked for (lowercase, without a trailing dot).
    pub host: String,
    /// IPv4 addresses.
    pub a: Vec<Ipv4Addr>,
    /// IPv6 addresses.
    pub aaaa: Vec<Ipv6Addr>,
    /// HTTPS records in presentation form.
    pub https: Vec<String>,
    /// Whether the resolver answered every record type without asking a
    /// name server (false for literals and overrides: nothing was asked).
    pub cached: bool,
    /// How long the lookup took.
    pub elapsed: Duration,
    /// One line per record type that brought nothing (`AAAA: no records`),
    /// or for a name that cannot be asked.
    pub errors: Vec<String>,
    /// The `--resolve` overrides that answered instead of DNS, as given
    /// (`host:port:addr,addr`); connections to other ports of the host
    /// still use DNS.
    pub overrides: Vec<String>,
}

/// An HTTPS (or SVCB) record's data in presentation form:
/// `1 . alpn=h3,h2 port=8443 ipv4hint=192.0.2.1`.
pub fn presentation(svcb: &SVCB) -> String {
    let target = if svcb.target_name.is_root() {
        ".".to_owned()
    } else {
        let mut t = svcb.target_name.to_ascii();
        if !t.ends_with('.') {
            t.push('.');
        }
        t
    };
    let mut out = format!("{} {target}", svcb.svc_priority);
    for (key, value) in &svcb.svc_params {
        out.push(' ');
        out.push_str(&key_name(*key));
        let list = |items: Vec<String>| items.join(",");
        let value = match value {
            SvcParamValue::NoDefaultAlpn => continue,
            SvcParamValue::Mandatory(m) => list(m.0.iter().map(|k| key_name(*k)).collect()),
            SvcParamValue::Alpn(a) => char_string(
                &list(a.0.iter().map(|id| list_item(id.as_bytes())).collect()).into_bytes(),
            ),
            SvcParamValue::Port(p) => p.to_string(),
            SvcParamValue::Ipv4Hint(h) => list(h.0.iter().map(|a| a.0.to_string()).collect()),
            SvcParamValue::Ipv6Hint(h) => list(h.0.iter().map(|a| a.0.to_string()).collect()),
            // hickory writes the base64 quoted, which presentation allows.
            SvcParamValue::EchConfigList(e) => e.to_string(),
            SvcParamValue::Unknown(u) => char_string(&u.0),
        };
        out.push('=');
        out.push_str(&value);
    }
    out
}

/// A key's registered name, or `keyNNNNN`.
fn key_name(key: SvcParamKey) -> String {
    match key {
        SvcParamKey::Mandatory => "mandatory".into(),
        SvcParamKey::Alpn => "alpn".into(),
        SvcParamKey::NoDefaultAlpn => "no-default-alpn".into(),
        SvcParamKey::Port => "port".into(),
        SvcParamKey::Ipv4Hint => "ipv4hint".into(),
        SvcParamKey::EchConfigList => "ech".into(),
        SvcParamKey::Ipv6Hint => "ipv6hint".into(),
        other => format!("key{}", u16::from(other)),
    }
}

/// One item of a comma-separated value list: its commas and backslashes
/// escaped (RFC 9460 Appendix A.1), before the value is a char-string.
fn list_item(item: &[u8]) -> String {
    let mut out = String::new();
    for &b in item {
        if b == b',' || b == b'\\' {
            out.push('\\');
        }
        out.push(char::from(b));
    }
    out
}

/// Bytes as an unquoted char-string: what is not printable, and what
/// would end or quote the value, escaped (`\\`, `\"`, `\DDD`).
fn char_string(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            b'\\' | b'"' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'(' | b')' | b';' => {
                let _ = write!(out, "\\{b:03}");
            }
            0x21..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::rdata::svcb::{Alpn, IpHint, Mandatory, Unknown};
    use hickory_proto::rr::rdata::{A, AAAA};
    use hickory_proto::rr::Name;

    use super::*;

    #[test]
    fn https_records_are_written_in_presentation_form() {
        let svcb = SVCB::new(
            1,
            Name::root(),
            vec![
                (
                    SvcParamKey::Mandatory,
                    SvcParamValue::Mandatory(Mandatory(vec![SvcParamKey::Alpn])),
                ),
                (
                    SvcParamKey::Alpn,
                    SvcParamValue::Alpn(Alpn(vec!["h3".into(), "h2".into()])),
                ),
                (SvcParamKey::NoDefaultAlpn, SvcParamValue::NoDefaultAlpn),
                (SvcParamKey::Port, SvcParamValue::Port(8443)),
                (
                    SvcParamKey::Ipv4Hint,
                    SvcParamValue::Ipv4Hint(IpHint(vec![
                        A::new(192, 0, 2, 1),
                        A::new(192, 0, 2, 2),
                    ])),
                ),
                (
                    SvcParamKey::Ipv6Hint,
                    SvcParamValue::Ipv6Hint(IpHint(vec![AAAA::from(Ipv6Addr::LOCALHOST)])),
                ),
            ],
        );
        assert_eq!(
            presentation(&svcb),
            "1 . mandatory=alpn alpn=h3,h2 no-default-alpn port=8443 \
             ipv4hint=192.0.2.1,192.0.2.2 ipv6hint=::1"
        );
        let alias = SVCB::new(0, Name::from_str("pool.svc.test.").unwrap(), vec![]);
        assert_eq!(presentation(&alias), "0 pool.svc.test.");
        // A comma inside an ALPN id, an unknown key with odd bytes.
        let odd = SVCB::new(
            2,
            Name::root(),
            vec![
                (
                    SvcParamKey::Alpn,
                    SvcParamValue::Alpn(Alpn(vec!["a,b".into(), "c\\d".into()])),
                ),
                (
                    SvcParamKey::Key(667),
                    SvcParamValue::Unknown(Unknown(b"x y\"".to_vec())),
                ),
            ],
        );
        assert_eq!(
            presentation(&odd),
            r#"2 . alpn=a\\,b,c\\\\d key667=x\032y\""#
        );
    }
}
