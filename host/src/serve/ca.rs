//! The daemon's local certificate authority, for interception: when a
//! client's CONNECT is to be intercepted (opt-in, `intercept = true`), the
//! daemon terminates its TLS itself, presenting a certificate for the
//! requested host signed by this CA, so that the request runs through the
//! pipeline in the clear. Clients accept that only if the user installed the
//! CA in their trust store (`sockhost ca export`).
//!
//! The CA lives in `$XDG_DATA_HOME/sockhost/ca/` (directory mode 0700):
//! [`CA_CERT_FILE`] (PEM, public) and [`CA_KEY_FILE`] (PKCS#8 PEM, mode
//! 0600 from its creation). It is made on first use, valid for
//! [`CA_VALIDITY`], and checked whenever it is loaded (a CA, allowed to sign,
//! valid now, the key's). `sockhost ca rotate` replaces it: each file is
//! written in full to a temporary file with its final mode and renamed over
//! the old one. The key is renamed first; were the process to die between
//! the two renames, the next load reports the mismatch and another rotate
//! repairs it.
//!
//! Leaves ([`leaf`]) certify one host each (a DNS name or an IP address) for
//! [`leaf::LEAF_VALIDITY`]; [`LeafCache`] keeps the most recently used ones
//! as ready `rustls::ServerConfig`s.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

pub mod cache;
pub mod check;
pub mod files;
pub mod leaf;

pub use cache::{LeafCache, LEAF_CACHE_CAPACITY, LEAF_RENEW_BEFORE};
pub use check::CertProblem;
pub use leaf::{Leaf, LeafHost};

/// The CA's subject common name: what a trust store lists it as.
pub const CA_COMMON_NAME: &str = "sockhost local interception CA";

/// How long a new CA is valid: ten years. Installing a CA in trust stores
/// is manual work, so it should not need repeating often; `sockhost ca
/// rotate` replaces it at any time.
pub const CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 3600);

/// The CA directory's name inside the data directory.
pub const CA_DIR: &str = "ca";
/// The CA certificate's file name (PEM).
pub const CA_CERT_FILE: &str = "ca-cert.pem";
/// The CA private key's file name (PKCS#8 PEM).
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// `data_dir/ca`: where the CA lives, given sockhost's data directory.
pub fn ca_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(CA_DIR)
}

/// Why the local CA, or a leaf, could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The CA directory could not be created.
    #[error("cannot create the CA directory {}: {source}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A CA file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A CA file could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// One of the two CA files exists without the other.
    #[error("{} is missing while {} exists (run `sockhost ca rotate` for a new CA)", .missing.display(), .present.display())]
    Incomplete {
        /// The file that is missing.
        missing: PathBuf,
        /// The file that exists.
        present: PathBuf,
    },
    /// The key file holds no usable private key.
    #[error("CA key {} is not a usable private key: {source} (run `sockhost ca rotate` for a new CA)", .path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What rcgen said.
        source: rcgen::Error,
    },
    /// The key file is readable or writable by others than its owner.
    #[error("CA key {} has mode {mode:04o}; it must be accessible by its owner only (chmod 600)", .path.display())]
    KeyExposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The certificate file holds no PEM certificate.
    #[error("CA certificate {} holds no PEM certificate (run `sockhost ca rotate` for a new CA)", .path.display())]
    NotPem {
        /// The certificate file.
        path: PathBuf,
    },
    /// The certificate cannot serve as the CA.
    #[error("CA certificate {} {problem} (run `sockhost ca rotate` for a new CA)", .path.display())]
    BadCert {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        problem: CertProblem,
    },
    /// Making a key or a certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[source] rcgen::Error),
    /// The host is neither a DNS name nor an IP literal.
    #[error("cannot issue a certificate for {host:?}: not a DNS name or an IP address")]
    InvalidHost {
        /// The host as given.
        host: String,
    },
    /// rustls refused the leaf.
    #[error("cannot build a TLS server from a leaf certificate: {0}")]
    Tls(#[source] rustls::Error),
}

/// The local CA, loaded and checked: it signs leaves.
pub struct LocalCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    not_after: SystemTime,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("LocalCa")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Whether [`LocalCa::load_or_create`] found a CA or made one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The CA was on disk.
    Loaded,
    /// There was none; this one was just made and stored.
    Created,
}

impl LocalCa {
    /// The CA in `dir`, made and stored there if there is none.
    pub fn load_or_create(dir: &Path) -> Result<(LocalCa, Origin), CaError> {
        match Self::load(dir)? {
            Some(ca) => Ok((ca, Origin::Loaded)),
            None => Ok((Self::create(dir)?, Origin::Created)),
        }
    }

    /// The CA in `dir`, checked; `None` if neither of its files exists.
    pub fn load(dir: &Path) -> Result<Option<LocalCa>, CaError> {
        Self::load_at(dir, SystemTime::now())
    }

    /// [`Self::load`], checking validity at `now`.
    pub fn load_at(dir: &Path, now: SystemTime) -> Result<Option<LocalCa>, CaError> {
        let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        let (cert, key) = match (
            files::read_if_exists(&cert_path)?,
            files::read_if_exists(&key_path)?,
        ) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(CaError::Incomplete {
                    missing: key_path,
                    present: cert_path,
                })
            }
            (None, Some(_)) => {
                return Err(CaError::Incomplete {
                    missing: cert_path,
                    present: key_path,
                })
            }
            (Some(cert), Some(key)) => (cert, key),
        };
        let mode = files::mode_of(&key_path)?;
        if mode & 0o077 != 0 {
            return Err(CaError::KeyExposed {
                path: key_path,
                mode,
            });
        }
        let bad_key = |source| CaError::BadKey {
            path: key_path.clone(),
            source,
        };
        let key = std::str::from_utf8(&key)
            .map_err(|_| rcgen::Error::CouldNotParseKeyPair)
            .and_then(rcgen::KeyPair::from_pem)
            .map_err(bad_key)?;
        let not_pem = || CaError::NotPem {
            path: cert_path.clone(),
        };
        let cert_pem = String::from_utf8(cert).map_err(|_| not_pem())?;
        let cert_der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|_| not_pem())?;
        let checked =
            check::check_ca(&cert_der, &key, now).map_err(|problem| CaError::BadCert {
                path: cert_path.clone(),
                problem,
            })?;
        let issuer =
            rcgen::Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| CaError::BadCert {
                path: cert_path.clone(),
                problem: CertProblem::Unusable(e),
            })?;
        Ok(Some(LocalCa {
            cert_pem,
            cert_der,
            issuer,
            not_after: checked.not_after,
        }))
    }

    /// A new CA (new key, new certificate), stored in `dir` in place of
    /// any there: `sockhost ca rotate`, and the first use.
    pub fn create(dir: &Path) -> Result<LocalCa, CaError> {
        Self::create_at(dir, SystemTime::now())
    }

    /// [`Self::create`], valid from `now`.
    pub fn create_at(dir: &Path, now: SystemTime) -> Result<LocalCa, CaError> {
        let key = rcgen::KeyPair::generate().map_err(CaError::Generate)?;
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, CA_COMMON_NAME);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "sockhost");
        // Signs leaves only, never another CA.
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let not_after = now + CA_VALIDITY;
        leaf::set_validity(&mut params, now - leaf::CLOCK_SKEW, not_after);
        let cert = params.self_signed(&key).map_err(CaError::Generate)?;
        files::create_private_dir(dir)?;
        let key_file = files::stage(
            &dir.join(CA_KEY_FILE),
            key.serialize_pem().as_bytes(),
            files::KEY_MODE,
        )?;
        let cert_file = files::stage(
            &dir.join(CA_CERT_FILE),
            cert.pem().as_bytes(),
            files::CERT_MODE,
        )?;
        key_file.commit()?;
        cert_file.commit()?;
        Ok(LocalCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: rcgen::Issuer::new(params, key),
            not_after,
        })
    }

    /// The CA certificate, PEM: what goes into a trust store.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The end of the CA's validity.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// A new leaf for `host`, valid from now.
    pub fn issue(&self, host: &LeafHost) -> Result<Leaf, CaError> {
        self.issue_at(host, SystemTime::now())
    }

    /// [`Self::issue`], valid from `now`.
    pub fn issue_at(&self, host: &LeafHost, now: SystemTime) -> Result<Leaf, CaError> {
        leaf::issue(&self.issuer, &self.cert_der, self.not_after, host, now)
    }
}

#[cfg(test)]
mod tests;
