//! The local CA end to end in memory: stored, loaded, rotated, refused when
//! damaged, and its leaves accepted by a rustls client trusting only it.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::{CertificateDer, ServerName};

use super::*;

fn client_trusting(ca: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Moves what `from` has to send into `to`, and lets `to` process it.
fn carry(from: &mut rustls::Connection, to: &mut rustls::Connection) -> Result<(), rustls::Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut slice = &buf[..];
    while !slice.is_empty() {
        to.read_tls(&mut slice).unwrap();
    }
    to.process_new_packets().map(drop)
}

/// A full TLS handshake between the two configurations, bytes carried in
/// memory; the ALPN protocol agreed on.
fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<Option<Vec<u8>>, rustls::Error> {
    connect(server, client, name).map(|c| c.alpn_protocol().map(<[u8]>::to_vec))
}

/// The client's side of a finished handshake.
fn connect(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<rustls::Connection, rustls::Error> {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut client = rustls::Connection::from(rustls::ClientConnection::new(client, name)?);
    let mut server = rustls::Connection::from(rustls::ServerConnection::new(server)?);
    for _ in 0..10 {
        carry(&mut client, &mut server)?;
        carry(&mut server, &mut client)?;
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(client);
        }
    }
    panic!("the handshake did not finish");
}

#[test]
fn the_handshake_presents_the_ca_after_the_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::create(dir.path()).unwrap();
    let leaf = ca.issue(&LeafHost::parse("www.test").unwrap()).unwrap();
    let client = connect(leaf.config, client_trusting(ca.cert_der()), "www.test").unwrap();
    assert_eq!(
        client.peer_certificates().unwrap(),
        [leaf.cert, ca.cert_der().clone()]
    );
}

#[test]
fn leaves_for_names_and_addresses_verify_against_the_ca_only() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, origin) = LocalCa::load_or_create(dir.path()).unwrap();
    assert_eq!(origin, Origin::Created);
    let client = client_trusting(ca.cert_der());
    let cache = LeafCache::new(Arc::new(ca));
    for host in ["www.test", "127.0.0.1", "[::1]"] {
        let server = cache.server_config(host).unwrap();
        let alpn = handshake(server, Arc::clone(&client), host.trim_matches(['[', ']']))
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "{host}");
    }
    // The leaf certifies its host only.
    let server = cache.server_config("www.test").unwrap();
    let err = handshake(server, Arc::clone(&client), "other.test").unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    // And only clients trusting this CA accept it.
    let other = LocalCa::create(&dir.path().join("other")).unwrap();
    let server = cache.server_config("www.test").unwrap();
    let err = handshake(server, client_trusting(other.cert_der()), "www.test").unwrap_err();
    // (Same name, other key: the signature does not verify.)
    assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err}");
}

#[test]
fn a_leaf_is_a_short_lived_server_certificate_for_its_host() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::create(dir.path()).unwrap();
    let now = SystemTime::now();
    let leaf = ca
        .issue_at(&LeafHost::parse("WWW.Test.").unwrap(), now)
        .unwrap();
    let (_, x509) = x509_parser::parse_x509_certificate(&leaf.cert).unwrap();
    assert!(!x509.is_ca());
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    let san = x509.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        format!("{:?}", san.general_names),
        r#"[DNSName("www.test")]"#
    );
    let validity = x509.validity();
    assert_eq!(
        validity.not_after.timestamp() - check::unix_seconds(now),
        leaf::LEAF_VALIDITY.as_secs() as i64
    );
    assert_eq!(
        leaf.config.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    // The CA's own shape.
    let (_, ca_x509) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
    let bc = ca_x509.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = ca_x509.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    assert!(ca_x509.subject().to_string().contains(CA_COMMON_NAME));
}

#[test]
fn bad_hosts_are_refused() {
    for host in ["", "a b", "exa_mple..test", "[www.test]", "-"] {
        let err = LeafHost::parse(host).unwrap_err();
        assert!(matches!(err, CaError::InvalidHost { .. }), "{host}: {err}");
    }
    assert_eq!(
        LeafHost::parse("[::1]").unwrap(),
        LeafHost::Ip("::1".parse().unwrap())
    );
}

#[test]
fn the_cache_shares_a_hosts_leaf_and_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Arc::new(LocalCa::create(dir.path()).unwrap());
    let cache = LeafCache::with_capacity(ca, 2);
    let now = SystemTime::now();
    let a = cache.server_config_at("a.test", now).unwrap();
    assert!(Arc::ptr_eq(
        &a,
        &cache.server_config_at("A.test.", now).unwrap()
    ));
    let b = cache.server_config_at("b.test", now).unwrap();
    cache.server_config_at("a.test", now).unwrap();
    cache.server_config_at("c.test", now).unwrap();
    assert_eq!(cache.len(), 2);
    // b was the least recently used: gone; a stayed.
    assert!(Arc::ptr_eq(
        &a,
        &cache.server_config_at("a.test", now).unwrap()
    ));
    assert!(!Arc::ptr_eq(
        &b,
        &cache.server_config_at("b.test", now).unwrap()
    ));
    assert_eq!(cache.len(), 2);
    // A leaf near its end is issued anew.
    let later = now + leaf::LEAF_VALIDITY - LEAF_RENEW_BEFORE;
    assert!(!Arc::ptr_eq(
        &a,
        &cache.server_config_at("a.test", later).unwrap()
    ));
    assert_eq!(
        LeafCache::new(Arc::new(LocalCa::create(dir.path()).unwrap())).len(),
        0
    );
}

#[test]
fn the_key_is_private_from_its_creation() {
    let data = tempfile::tempdir().unwrap();
    let dir = ca_dir(data.path());
    LocalCa::create(&dir).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(CA_KEY_FILE)), 0o600);
    assert_eq!(mode(&dir.join(CA_CERT_FILE)), 0o644);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [CA_CERT_FILE, CA_KEY_FILE]);
    // A key others can read is refused, naming it.
    std::fs::set_permissions(
        dir.join(CA_KEY_FILE),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = LocalCa::load(&dir).unwrap_err();
    assert!(
        matches!(err, CaError::KeyExposed { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(CA_KEY_FILE), "{err}");
}

#[test]
fn loading_returns_the_stored_ca_and_rotating_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    assert!(LocalCa::load(dir.path()).unwrap().is_none());
    let first = LocalCa::create(dir.path()).unwrap();
    let (loaded, origin) = LocalCa::load_or_create(dir.path()).unwrap();
    assert_eq!(origin, Origin::Loaded);
    assert_eq!(loaded.cert_pem(), first.cert_pem());
    assert_eq!(loaded.cert_der(), first.cert_der());
    assert!(first.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    // A loaded CA signs leaves its clients accept.
    let server = loaded.issue(&LeafHost::parse("www.test").unwrap()).unwrap();
    handshake(server.config, client_trusting(first.cert_der()), "www.test").unwrap();
    let old_key = std::fs::read(dir.path().join(CA_KEY_FILE)).unwrap();
    let rotated = LocalCa::create(dir.path()).unwrap();
    assert_ne!(
        std::fs::read(dir.path().join(CA_KEY_FILE)).unwrap(),
        old_key
    );
    assert_ne!(rotated.cert_der(), first.cert_der());
    let reloaded = LocalCa::load(dir.path()).unwrap().unwrap();
    assert_eq!(reloaded.cert_der(), rotated.cert_der());
}

#[test]
fn a_damaged_ca_is_a_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join(CA_KEY_FILE);
    let cert_path = dir.path().join(CA_CERT_FILE);
    let write_key = |contents: &[u8]| {
        std::fs::remove_file(&key_path).ok();
        let staged = files::stage(&key_path, contents, files::KEY_MODE).unwrap();
        staged.commit().unwrap();
    };
    let first = LocalCa::create(dir.path()).unwrap();
    let good_key = std::fs::read(&key_path).unwrap();

    write_key(b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n");
    let err = LocalCa::load(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::BadKey { .. }), "{err}");
    assert!(
        err.to_string().contains(&*key_path.to_string_lossy()),
        "{err}"
    );

    // Another CA's key.
    let other = tempfile::tempdir().unwrap();
    LocalCa::create(other.path()).unwrap();
    write_key(&std::fs::read(other.path().join(CA_KEY_FILE)).unwrap());
    let err = LocalCa::load(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            CaError::BadCert {
                problem: CertProblem::KeyMismatch,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains(&*cert_path.to_string_lossy()),
        "{err}"
    );

    write_key(&good_key);
    assert_eq!(
        LocalCa::load(dir.path()).unwrap().unwrap().cert_der(),
        first.cert_der()
    );
    let expired = LocalCa::load_at(
        dir.path(),
        SystemTime::now() + CA_VALIDITY + Duration::from_secs(86_400),
    )
    .unwrap_err();
    assert!(
        matches!(
            expired,
            CaError::BadCert {
                problem: CertProblem::Expired { .. },
                ..
            }
        ),
        "{expired}"
    );

    std::fs::write(&cert_path, b"garbage").unwrap();
    let err = LocalCa::load(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::NotPem { .. }), "{err}");
    assert!(
        err.to_string().contains(&*cert_path.to_string_lossy()),
        "{err}"
    );

    std::fs::remove_file(&cert_path).unwrap();
    let err = LocalCa::load(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::Incomplete { .. }), "{err}");
}
