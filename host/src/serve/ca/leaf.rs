//! A leaf certificate for one intercepted host, signed by the local CA,
//! ready to terminate TLS: a `rustls::ServerConfig` (ring provider) that
//! offers `h2` and `http/1.1` by ALPN.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::check::unix_seconds;
use super::CaError;

/// How long a leaf is valid: a week. Short, because the daemon issues a
/// new one whenever it needs to (see [`super::LEAF_RENEW_BEFORE`]), and a
/// leaf key that leaks is worth little for long.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// How far a leaf's notBefore lies in the past, so that a client whose
/// clock is a little behind still accepts it.
pub const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// The protocols a leaf's TLS server offers, in preference order.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// What a leaf certifies: a DNS name (lower case, no trailing dot) or an IP
/// address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LeafHost {
    /// A DNS name.
    Name(String),
    /// An IP literal (IPv6 given with or without brackets).
    Ip(IpAddr),
}

impl LeafHost {
    /// Parses a host as a client names it in CONNECT or SNI.
    pub fn parse(host: &str) -> Result<Self, CaError> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(LeafHost::Ip(ip));
        }
        let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        match rustls::pki_types::DnsName::try_from(name.as_str()) {
            Ok(_) if !name.is_empty() => Ok(LeafHost::Name(name)),
            _ => Err(CaError::InvalidHost {
                host: host.to_owned(),
            }),
        }
    }

    fn san(&self) -> Result<rcgen::SanType, CaError> {
        Ok(match self {
            LeafHost::Ip(ip) => rcgen::SanType::IpAddress(*ip),
            LeafHost::Name(name) => rcgen::SanType::DnsName(
                rcgen::string::Ia5String::try_from(name.as_str())
                    .map_err(|_| CaError::InvalidHost { host: name.clone() })?,
            ),
        })
    }
}

impl std::fmt::Display for LeafHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeafHost::Name(name) => f.write_str(name),
            LeafHost::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// An issued leaf, ready for use.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The TLS server configuration presenting the leaf.
    pub config: Arc<rustls::ServerConfig>,
    /// The leaf certificate.
    pub cert: CertificateDer<'static>,
    /// The end of its validity.
    pub not_after: SystemTime,
}

/// Issues a leaf for `host` at `now`, signed by `issuer`, valid for
/// [`LEAF_VALIDITY`] but never beyond the CA's own `ca_not_after`. The
/// handshake presents the CA (`ca_cert`) after the leaf: a browser that
/// trusts the CA by its key's hash (Chromium's
/// `--ignore-certificate-errors-spki-list`) looks for it in the chain the
/// server sends.
pub fn issue(
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
    ca_cert: &CertificateDer<'static>,
    ca_not_after: SystemTime,
    host: &LeafHost,
    now: SystemTime,
) -> Result<Leaf, CaError> {
    let not_after = (now + LEAF_VALIDITY).min(ca_not_after);
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![host.san()?];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host.to_string());
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    set_validity(&mut params, now - CLOCK_SKEW, not_after);
    params.use_authority_key_identifier_extension = true;
    let key = rcgen::KeyPair::generate().map_err(CaError::Generate)?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(CaError::Generate)?
        .der()
        .clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(CaError::Tls)?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.clone(), ca_cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(CaError::Tls)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Leaf {
        config: Arc::new(config),
        cert,
        not_after,
    })
}

/// Sets `params`' validity (whole seconds: certificates hold no less).
pub fn set_validity(params: &mut rcgen::CertificateParams, from: SystemTime, to: SystemTime) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let at = |t: SystemTime| {
        let secs = unix_seconds(t);
        let delta = Duration::from_secs(secs.unsigned_abs());
        if secs >= 0 {
            epoch + delta
        } else {
            epoch - delta
        }
    };
    params.not_before = at(from);
    params.not_after = at(to);
}
