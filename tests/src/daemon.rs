//! `sockhost serve` as a child process for the end-to-end tests, and curl
//! (an unchanged client nobody here wrote) to talk to it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use crate::sockhost_bin;

/// A daemon on a free loopback port and a socket in a temp dir; stopped
/// with SIGTERM when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    /// Kept open: the daemon may write more than the line read.
    _stdout: BufReader<std::process::ChildStdout>,
    /// Its first TCP address.
    pub addr: SocketAddr,
    /// Its Unix socket.
    pub socket: PathBuf,
    /// Its temp dir (`data/` is its XDG_DATA_HOME).
    pub dir: tempfile::TempDir,
}

impl Daemon {
    /// `sockhost serve --listen 127.0.0.1:0 --unix …` with `extra`.
    pub fn start(extra: &[String]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run").join("sockhost.sock");
        let mut child = Command::new(sockhost_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--unix"])
            .arg(&socket)
            .args(extra)
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sockhost serve starts");
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        let addr = first
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        Daemon {
            child,
            _stdout: stdout,
            addr,
            socket,
            dir,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its peak resident memory so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the daemon's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// `http://ADDR:PORT`, for `curl -x`.
    pub fn proxy(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// curl, silent but for errors, bounded in time.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs")
}

/// `curl -w` status, headers (lower-cased) and body.
pub fn fetch(args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("h");
    let body = dir.path().join("b");
    let out = curl(
        &[
            args,
            &[
                "-D",
                headers.to_str().unwrap(),
                "-o",
                body.to_str().unwrap(),
                "-w",
                "%{http_code}",
            ],
        ]
        .concat(),
    );
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (
        code,
        std::fs::read_to_string(headers)
            .unwrap_or_default()
            .to_lowercase(),
        std::fs::read(body).unwrap_or_default(),
    )
}
