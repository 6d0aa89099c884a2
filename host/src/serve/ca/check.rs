//! Whether a stored CA certificate and key can serve as the local CA: the
//! certificate parses, is a CA allowed to sign certificates, is valid now,
//! and belongs to the key. Sans-IO: bytes and a time in, a verdict out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::PublicKeyData;
use rustls::pki_types::CertificateDer;
use x509_parser::time::ASN1Time;

/// Why a stored CA certificate cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertProblem {
    /// Not a DER certificate.
    #[error("is not an X.509 certificate ({0})")]
    Unparsable(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// No basicConstraints with `CA:TRUE`.
    #[error("is not a CA certificate (no basicConstraints CA:TRUE)")]
    NotACa,
    /// A keyUsage extension without keyCertSign.
    #[error("may not sign certificates (its keyUsage lacks keyCertSign)")]
    CannotSign,
    /// Its notAfter has passed.
    #[error("expired on {not_after}")]
    Expired {
        /// notAfter.
        not_after: ASN1Time,
    },
    /// Its notBefore is still to come.
    #[error("is not valid before {not_before}")]
    NotYetValid {
        /// notBefore.
        not_before: ASN1Time,
    },
    /// Parsed, but rcgen cannot sign with it as the issuer.
    #[error("cannot sign as an issuer ({0})")]
    Unusable(#[source] rcgen::Error),
    /// The public key in the certificate is not the key file's.
    #[error("does not belong to the CA key (another public key)")]
    KeyMismatch,
}

/// What the checks learned about a usable CA certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedCa {
    /// The end of its validity.
    pub not_after: SystemTime,
}

/// Checks `cert` against `key` at `now`.
pub fn check_ca(
    cert: &CertificateDer<'_>,
    key: &rcgen::KeyPair,
    now: SystemTime,
) -> Result<CheckedCa, CertProblem> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert).map_err(CertProblem::Unparsable)?;
    let is_ca = matches!(x509.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    if !is_ca {
        return Err(CertProblem::NotACa);
    }
    if let Ok(Some(ku)) = x509.key_usage() {
        if !ku.value.key_cert_sign() {
            return Err(CertProblem::CannotSign);
        }
    }
    let now_secs = unix_seconds(now);
    let validity = x509.validity();
    let (not_before, not_after) = (validity.not_before, validity.not_after);
    if now_secs > not_after.timestamp() {
        return Err(CertProblem::Expired { not_after });
    }
    if now_secs < not_before.timestamp() {
        return Err(CertProblem::NotYetValid { not_before });
    }
    if x509.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(CertProblem::KeyMismatch);
    }
    Ok(CheckedCa {
        not_after: from_unix_seconds(not_after.timestamp()),
    })
}

/// Seconds since the Unix epoch (negative before it).
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn from_unix_seconds(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(params: rcgen::CertificateParams, key: &rcgen::KeyPair) -> CertificateDer<'static> {
        params.self_signed(key).unwrap().der().clone()
    }

    fn ca_params() -> rcgen::CertificateParams {
        let mut p = rcgen::CertificateParams::default();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2030, 1, 1);
        p
    }

    fn at(year_secs: i64) -> SystemTime {
        from_unix_seconds(year_secs)
    }

    // 2025-01-01T00:00:00Z
    const IN_RANGE: i64 = 1_735_689_600;

    #[test]
    fn a_ca_certificate_of_the_key_passes() {
        let key = rcgen::KeyPair::generate().unwrap();
        let checked = check_ca(&cert(ca_params(), &key), &key, at(IN_RANGE)).unwrap();
        // 2030-01-01T00:00:00Z
        assert_eq!(unix_seconds(checked.not_after), 1_893_456_000);
    }

    #[test]
    fn each_problem_is_named() {
        let key = rcgen::KeyPair::generate().unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let ca = cert(ca_params(), &key);
        assert!(matches!(
            check_ca(&ca, &other, at(IN_RANGE)),
            Err(CertProblem::KeyMismatch)
        ));
        let expired = check_ca(&ca, &key, at(1_900_000_000)).unwrap_err();
        assert!(matches!(expired, CertProblem::Expired { .. }));
        assert_eq!(
            expired.to_string(),
            "expired on Jan  1 00:00:00 2030 +00:00"
        );
        assert!(matches!(
            check_ca(&ca, &key, at(1_500_000_000)),
            Err(CertProblem::NotYetValid { .. })
        ));
        let mut leaf = ca_params();
        leaf.is_ca = rcgen::IsCa::ExplicitNoCa;
        assert!(matches!(
            check_ca(&cert(leaf, &key), &key, at(IN_RANGE)),
            Err(CertProblem::NotACa)
        ));
        let mut no_sign = ca_params();
        no_sign.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        assert!(matches!(
            check_ca(&cert(no_sign, &key), &key, at(IN_RANGE)),
            Err(CertProblem::CannotSign)
        ));
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let err = check_ca(&garbage, &key, at(IN_RANGE)).unwrap_err();
        assert!(matches!(err, CertProblem::Unparsable(_)), "{err}");
    }
}
