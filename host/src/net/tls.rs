//! TLS with rustls: the platform's roots plus `--ca` files, ALPN, session
//! resumption through one cache for every connection (rustls resumes a
//! session when the new connection offers the same ALPN list), and errors
//! that say what failed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// TLS sessions remembered for resumption.
const SESSION_CACHE_SIZE: usize = 512;

/// Which application protocols to offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlpnOffer {
    /// `h2`, then `http/1.1`.
    Any,
    /// `http/1.1` only.
    Http1,
    /// `h2` only.
    Http2,
}

impl AlpnOffer {
    fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            AlpnOffer::Any => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            AlpnOffer::Http1 => vec![b"http/1.1".to_vec()],
            AlpnOffer::Http2 => vec![b"h2".to_vec()],
        }
    }
}

/// What roots to trust.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM files of extra roots (`--ca`).
    pub ca_files: Vec<PathBuf>,
    /// Skip the platform's roots (tests that trust only their own CA).
    pub no_platform_roots: bool,
}

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A `--ca` file could not be read or holds no certificate.
    #[error("--ca {path}: {why}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// No root at all to trust.
    #[error("no trusted roots: the platform has none and no --ca was given")]
    NoRoots,
}

/// Why a TLS handshake failed, in the words a user needs.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The host is not a valid TLS server name.
    #[error("{0:?} is not a valid TLS server name")]
    InvalidName(String),
    /// The chain does not lead to a trusted root.
    #[error(
        "certificate of {host} is signed by an unknown issuer (use --ca to trust a private CA)"
    )]
    UnknownIssuer {
        /// The server name.
        host: String,
    },
    /// The certificate is for another name.
    #[error("certificate is not valid for {host}")]
    NameMismatch {
        /// The server name.
        host: String,
    },
    /// The certificate has expired.
    #[error("certificate of {host} has expired")]
    Expired {
        /// The server name.
        host: String,
    },
    /// The certificate is not valid yet.
    #[error("certificate of {host} is not valid yet")]
    NotYetValid {
        /// The server name.
        host: String,
    },
    /// The server presented a CA certificate as its own: common with a
    /// self-signed certificate made with `openssl req -x509`, which marks
    /// itself a CA. curl accepts that with `--cacert`; WebPKI does not.
    #[error(
        "certificate of {host} is a CA certificate (basicConstraints CA:TRUE) used as the server's own: \
         make a CA, sign a server certificate for {host} with it, and trust the CA with --ca"
    )]
    CaUsedAsServerCertificate {
        /// The server name.
        host: String,
    },
    /// The server sent an alert.
    #[error("{host} ended the TLS handshake with alert {alert}")]
    Alert {
        /// The server name.
        host: String,
        /// The alert.
        alert: String,
    },
    /// Anything else (protocol errors, I/O during the handshake).
    #[error("TLS handshake with {host} failed: {message}")]
    Handshake {
        /// The server name.
        host: String,
        /// What happened.
        message: String,
    },
}

/// A finished handshake.
#[derive(Debug)]
pub struct Handshake<S> {
    /// The stream.
    pub stream: TlsStream<S>,
    /// The negotiated application protocol.
    pub alpn: Option<String>,
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// Whether the session was resumed.
    pub resumed: bool,
    /// How long the handshake took.
    pub elapsed: Duration,
}

/// Client TLS for every connection of a host.
#[derive(Debug, Clone)]
pub struct Tls {
    any: Arc<ClientConfig>,
    http1: Arc<ClientConfig>,
    http2: Arc<ClientConfig>,
    /// TLS 1.3 only, ALPN `h3`: for QUIC.
    h3: Arc<ClientConfig>,
}

impl Tls {
    /// Builds the client configurations.
    pub fn new(options: &TlsOptions) -> Result<Tls, TlsConfigError> {
        let mut roots = RootCertStore::empty();
        if !options.no_platform_roots {
            // Unreadable platform certificates are skipped, as browsers do.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
        for path in &options.ca_files {
            for cert in read_ca_file(path)? {
                roots.add(cert).map_err(|e| TlsConfigError::CaFile {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            }
        }
        if roots.is_empty() {
            return Err(TlsConfigError::NoRoots);
        }
        let roots = Arc::new(roots);
        let sessions = Arc::new(ClientSessionMemoryCache::new(SESSION_CACHE_SIZE));
        let make = |alpn: AlpnOffer| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut c = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.alpn_protocols = alpn.protocols();
            c.resumption = Resumption::store(sessions.clone());
            Arc::new(c)
        };
        let h3 = {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut c = ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("ring supports TLS 1.3")
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.alpn_protocols = vec![b"h3".to_vec()];
            c.resumption = Resumption::store(sessions.clone());
            // 0-RTT would replay requests; sockhost does not send early data.
            c.enable_early_data = false;
            Arc::new(c)
        };
        Ok(Tls {
            any: make(AlpnOffer::Any),
            http1: make(AlpnOffer::Http1),
            http2: make(AlpnOffer::Http2),
            h3,
        })
    }

    /// The configuration for QUIC: same roots and session cache, TLS 1.3,
    /// ALPN `h3`.
    pub fn h3_config(&self) -> Arc<ClientConfig> {
        self.h3.clone()
    }

    /// Runs a handshake with `host` over `io`.
    pub async fn connect<S>(
        &self,
        host: &str,
        alpn: AlpnOffer,
        io: S,
    ) -> Result<Handshake<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let started = Instant::now();
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| TlsError::InvalidName(host.to_owned()))?;
        let config = match alpn {
            AlpnOffer::Any => &self.any,
            AlpnOffer::Http1 => &self.http1,
            AlpnOffer::Http2 => &self.http2,
        };
        let stream = TlsConnector::from(config.clone())
            .connect(name, io)
            .await
            .map_err(|e| classify(host, e))?;
        let (_, conn) = stream.get_ref();
        let alpn = conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(v) => format!("{v:?}"),
            None => "unknown".to_owned(),
        };
        let resumed = matches!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        Ok(Handshake {
            stream,
            alpn,
            version,
            resumed,
            elapsed: started.elapsed(),
        })
    }
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let fail = |why: String| TlsConfigError::CaFile {
        path: path.to_owned(),
        why,
    };
    let data = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(fail("holds no CERTIFICATE block".to_owned()));
    }
    Ok(certs)
}

/// Turns the I/O error tokio-rustls reports into what went wrong.
fn classify(host: &str, e: std::io::Error) -> TlsError {
    let host = host.to_owned();
    let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return TlsError::Handshake {
            host,
            message: e.to_string(),
        };
    };
    match inner {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => TlsError::UnknownIssuer { host },
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsError::NameMismatch { host }
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsError::Expired { host }
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsError::NotYetValid { host }
            }
            CertificateError::Other(other)
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                TlsError::CaUsedAsServerCertificate { host }
            }
            other => TlsError::Handshake {
                host,
                message: format!("invalid certificate: {other:?}"),
            },
        },
        rustls::Error::AlertReceived(alert) => TlsError::Alert {
            host,
            alert: format!("{alert:?}"),
        },
        other => TlsError::Handshake {
            host,
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(e: CertificateError) -> TlsError {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(e),
        );
        classify("www.test", io)
    }

    #[test]
    fn a_ca_certificate_served_as_the_servers_own_is_explained() {
        let e = rejected(CertificateError::Other(rustls::OtherError(Arc::new(
            webpki::Error::CaUsedAsEndEntity,
        ))));
        assert!(
            matches!(&e, TlsError::CaUsedAsServerCertificate { host } if host == "www.test"),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(text.contains("CA certificate"), "{text}");
        assert!(text.contains("--ca"), "{text}");
        assert!(!text.contains("OtherError"), "{text}");
    }

    #[test]
    fn certificate_failures_are_named_by_class() {
        assert!(matches!(
            rejected(CertificateError::UnknownIssuer),
            TlsError::UnknownIssuer { .. }
        ));
        assert!(matches!(
            rejected(CertificateError::Expired),
            TlsError::Expired { .. }
        ));
        assert!(matches!(
            rejected(CertificateError::NotValidForName),
            TlsError::NameMismatch { .. }
        ));
    }
}
