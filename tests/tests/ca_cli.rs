//! `sockhost ca export|rotate` as a user runs them: the certificate they
//! print is a CA to OpenSSL, stays the same until rotated, and curl trusting
//! it accepts a leaf the daemon's CA code issues.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use sockhost::serve::ca::{self, LeafCache, LocalCa};
use sockhost_tests::sockhost_bin;

fn run(data_home: &Path, command: &str) -> Output {
    Command::new(sockhost_bin())
        .args(["ca", command])
        .env("XDG_DATA_HOME", data_home)
        .output()
        .unwrap()
}

fn ca(data_home: &Path, command: &str) -> Output {
    let out = run(data_home, command);
    assert!(
        out.status.success(),
        "sockhost ca {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn openssl_text(pem: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-text"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(pem).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl could not read the PEM");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn export_creates_once_and_rotate_replaces() {
    let home = tempfile::tempdir().unwrap();
    let first = ca(home.path(), "export");
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("created a new local CA"),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let text = openssl_text(&first.stdout);
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(text.contains(ca::CA_COMMON_NAME), "{text}");
    let dir = home.path().join("sockhost").join(ca::CA_DIR);
    assert!(dir.join(ca::CA_KEY_FILE).is_file());

    let second = ca(home.path(), "export");
    assert_eq!(second.stdout, first.stdout);
    assert!(
        second.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    let rotated = ca(home.path(), "rotate");
    assert_ne!(rotated.stdout, first.stdout);
    let after = ca(home.path(), "export");
    assert_eq!(after.stdout, rotated.stdout);
    assert!(openssl_text(&after.stdout).contains("CA:TRUE"));
}

#[test]
fn a_broken_ca_is_one_line_naming_the_file() {
    let home = tempfile::tempdir().unwrap();
    ca(home.path(), "export");
    let cert = home
        .path()
        .join("sockhost")
        .join(ca::CA_DIR)
        .join(ca::CA_CERT_FILE);
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let out = run(home.path(), "export");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&*cert.to_string_lossy()), "{stderr}");
    // rotate repairs it.
    ca(home.path(), "rotate");
    assert!(openssl_text(&ca(home.path(), "export").stdout).contains("CA:TRUE"));
}

#[test]
fn curl_trusting_the_exported_ca_accepts_a_leaf() {
    let home = tempfile::tempdir().unwrap();
    let pem = ca(home.path(), "export").stdout;
    let ca_file = home.path().join("exported.pem");
    std::fs::write(&ca_file, &pem).unwrap();
    let dir = home.path().join("sockhost").join(ca::CA_DIR);
    let local = LocalCa::load(&dir).unwrap().unwrap();
    let leaves = LeafCache::new(Arc::new(local));
    let config = leaves.server_config("www.test").unwrap();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut tls = rustls::ServerConnection::new(config).unwrap();
        let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
        // Read the request head, then answer it.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).unwrap() == 0 {
                return;
            }
            head.push(byte[0]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n")
            .unwrap();
        stream.flush().unwrap();
        tls.send_close_notify();
        tls.complete_io(&mut tcp).ok();
    });
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--http1.1", "--max-time", "20"])
        .arg("--cacert")
        .arg(&ca_file)
        .arg("--resolve")
        .arg(format!("www.test:{port}:127.0.0.1"))
        .arg(format!("https://www.test:{port}/"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"ok\n");
    server.join().unwrap();
}
