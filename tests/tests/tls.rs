//! sockhost's TLS client against the in-repo origin: ALPN, resumption, and
//! errors that name what failed.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use sockhost::net::tls::{AlpnOffer, Tls, TlsConfigError, TlsError, TlsOptions};
use sockhost_tests::origin::{OriginOptions, TestOrigin};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn trusting(origin: &TestOrigin) -> Tls {
    Tls::new(&TlsOptions {
        ca_files: vec![origin.ca_file.clone()],
        no_platform_roots: true,
    })
    .unwrap()
}

async fn handshake(
    tls: &Tls,
    origin: &TestOrigin,
    name: &str,
    alpn: AlpnOffer,
) -> Result<sockhost::net::tls::Handshake<tokio::net::TcpStream>, TlsError> {
    let tcp = tokio::net::TcpStream::connect(origin.addr).await.unwrap();
    tls.connect(name, alpn, tcp).await
}

#[test]
fn alpn_is_negotiated_and_sessions_resume() {
    let origin = TestOrigin::start(OriginOptions::default());
    let tls = trusting(&origin);
    rt().block_on(async {
        let h = handshake(&tls, &origin, "localhost", AlpnOffer::Any)
            .await
            .unwrap();
        assert_eq!(h.alpn.as_deref(), Some("h2"));
        assert_eq!(h.version, "TLSv1.3");
        assert!(!h.resumed);
        drop(h);
        // TLS 1.3 session tickets arrive after the handshake, so a client
        // only has one once it has read from the connection: make one
        // HTTP/1.1 exchange, then connect again.
        let mut h = handshake(&tls, &origin, "localhost", AlpnOffer::Http1)
            .await
            .unwrap();
        assert_eq!(h.alpn.as_deref(), Some("http/1.1"));
        h.stream
            .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        h.stream.read_to_end(&mut response).await.unwrap();
        assert!(
            response.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&response)
        );
        let again = handshake(&tls, &origin, "localhost", AlpnOffer::Http1)
            .await
            .unwrap();
        assert!(again.resumed, "the second connection did not resume");
    });
}

#[test]
fn each_failure_says_what_failed() {
    let origin = TestOrigin::start(OriginOptions::default());
    let expired = TestOrigin::start(OriginOptions {
        expired: true,
        ..OriginOptions::default()
    });
    rt().block_on(async {
        // Platform roots only: the private CA is unknown.
        let platform = Tls::new(&TlsOptions::default());
        if let Ok(platform) = platform {
            let e = handshake(&platform, &origin, "localhost", AlpnOffer::Any)
                .await
                .unwrap_err();
            assert!(matches!(e, TlsError::UnknownIssuer { .. }), "{e}");
            assert!(e.to_string().contains("--ca"), "{e}");
        }
        let tls = trusting(&origin);
        let e = handshake(&tls, &origin, "other.test", AlpnOffer::Any)
            .await
            .unwrap_err();
        assert!(matches!(e, TlsError::NameMismatch { .. }), "{e}");
        assert_eq!(e.to_string(), "certificate is not valid for other.test");

        let tls = trusting(&expired);
        let e = handshake(&tls, &expired, "localhost", AlpnOffer::Any)
            .await
            .unwrap_err();
        assert!(matches!(e, TlsError::Expired { .. }), "{e}");

        // A server that speaks only h2 refuses an http/1.1-only client.
        let h2_only = TestOrigin::start(OriginOptions {
            alpn: vec!["h2"],
            ..OriginOptions::default()
        });
        let tls = trusting(&h2_only);
        let e = handshake(&tls, &h2_only, "localhost", AlpnOffer::Http1)
            .await
            .unwrap_err();
        assert!(matches!(e, TlsError::Alert { .. }), "{e}");
        assert!(e.to_string().contains("NoApplicationProtocol"), "{e}");
    });
}

#[test]
fn bad_ca_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let e = Tls::new(&TlsOptions {
        ca_files: vec![missing.clone()],
        no_platform_roots: true,
    })
    .unwrap_err();
    assert!(matches!(e, TlsConfigError::CaFile { .. }), "{e}");
    assert!(e.to_string().contains("missing.pem"), "{e}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let e = Tls::new(&TlsOptions {
        ca_files: vec![empty],
        no_platform_roots: true,
    })
    .unwrap_err();
    assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
}

/// A certificate made as many people make one, `openssl req -x509`: it is
/// self-signed and marks itself a CA, so curl accepts it with `--cacert`
/// while WebPKI refuses a CA certificate as a server's own. The refusal is
/// right; the message must say what is wrong and what to do.
#[test]
fn an_openssl_self_signed_certificate_is_refused_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args([
            "-subj",
            "/CN=www.test",
            "-addext",
            "subjectAltName=DNS:www.test",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (scripts/setup.sh installs it)");
    assert!(made.status.success(), "{made:?}");
    rt().block_on(async {
        use rustls::pki_types::pem::PemObject;
        let chain = rustls::pki_types::CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&key).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            // The client aborts the handshake; that is the point.
            let _ = acceptor.accept(tcp).await;
        });
        let tls = Tls::new(&TlsOptions {
            ca_files: vec![cert.clone()],
            no_platform_roots: true,
        })
        .unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let e = tls
            .connect("www.test", AlpnOffer::Any, tcp)
            .await
            .unwrap_err();
        assert!(
            matches!(e, TlsError::CaUsedAsServerCertificate { .. }),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(text.contains("www.test") && text.contains("--ca"), "{text}");
        assert!(!text.contains("OtherError"), "{text}");
        server.await.unwrap();
    });
}
