//! aioquic's HTTP/3 (PyPI) as an origin nobody here wrote: starts
//! `tests/aioquic/h3_server.py` on a free UDP port with a certificate from
//! a private CA, and stops it when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running aioquic origin.
#[derive(Debug)]
pub struct AioquicOrigin {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    /// The CA that signed its certificate (`--ca`).
    pub ca_file: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

/// Whether Python can import aioquic (`scripts/setup.sh` installs it).
pub fn available() -> bool {
    Command::new("python3")
        .args(["-c", "import aioquic"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts aioquic's server for a test, or `None` when aioquic is missing
/// and `SOCKHOST_SKIP_AIOQUIC` is set. CI installs aioquic
/// (scripts/setup.sh), so without the variable a missing module fails the
/// test with what to do instead of skipping it silently.
pub fn start_or_skip() -> Option<AioquicOrigin> {
    assert!(
        available() || std::env::var_os("SOCKHOST_SKIP_AIOQUIC").is_some(),
        "aioquic is not installed: run scripts/setup.sh (or set SOCKHOST_SKIP_AIOQUIC=1)"
    );
    available().then(AioquicOrigin::start)
}

impl AioquicOrigin {
    /// Starts the server for `www.test` and waits until it listens.
    pub fn start() -> AioquicOrigin {
        let dir = tempfile::tempdir().expect("temp dir");
        let (ca, cert, key) = crate::origin::certificates(&["www.test", "localhost"]);
        let ca_file = dir.path().join("ca.pem");
        let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&ca_file, ca).expect("write CA");
        std::fs::write(&cert_file, cert).expect("write certificate");
        std::fs::write(&key_file, key).expect("write key");
        // A port the kernel just handed out is free for the server to take.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free UDP port")
            .port();
        let mut child = Command::new("python3")
            .arg(crate::repo().join("tests/aioquic/h3_server.py"))
            .args(["--port", &port.to_string()])
            .arg("--certificate")
            .arg(&cert_file)
            .arg("--private-key")
            .arg(&key_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("aioquic server output");
        assert_eq!(line.trim(), "ready", "aioquic server did not start");
        AioquicOrigin {
            addr: ([127, 0, 0, 1], port).into(),
            ca_file,
            child,
            _dir: dir,
        }
    }
}

impl Drop for AioquicOrigin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
