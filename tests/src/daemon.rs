//! `sockhost serve` as a child process, on a free loopback port and a Unix
//! socket in a temp dir, with a data directory of its own (where
//! `--intercept` keeps its local CA). Its log (stderr) goes to a file, which
//! a failing test prints. And curl (an unchanged client nobody here
//! wrote) to talk to it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};

use sockhost::control::status::Status;

use crate::sockhost_bin;

/// A running daemon; stopped with SIGTERM when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    /// Kept open: the daemon may write more than the line read.
    _stdout: BufReader<ChildStdout>,
    /// Its loopback TCP listener.
    pub addr: SocketAddr,
    /// Its Unix socket.
    pub socket: PathBuf,
    /// Its control socket (beside the proxy's).
    pub control: PathBuf,
    /// Its temp dir: the socket's folder, `data/` (`XDG_DATA_HOME`) and
    /// `stderr.log`.
    pub dir: tempfile::TempDir,
}

impl Daemon {
    /// `sockhost serve` with `extra` arguments, once it says where it listens.
    pub fn start(extra: &[String]) -> Daemon {
        Daemon::start_in(tempfile::tempdir().expect("temp dir"), extra)
    }

    /// The same in `dir`, whose state (crash reports) and data (the local
    /// CA) an earlier daemon may have left.
    pub fn start_in(dir: tempfile::TempDir, extra: &[String]) -> Daemon {
        let socket = dir.path().join("run").join("sockhost.sock");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("stderr.log"))
            .expect("log file");
        let mut child = Command::new(sockhost_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--unix"])
            .arg(&socket)
            .args(extra)
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("sockhost serve starts");
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        stdout.read_line(&mut first).expect("the daemon's stdout");
        let addr = first
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(dir.path().join("stderr.log"));
                panic!("no address in {first:?}: {}", log.unwrap_or_default())
            });
        Daemon {
            child,
            _stdout: stdout,
            addr,
            control: socket.with_file_name("control.sock"),
            socket,
            dir,
        }
    }

    /// A control API request (`GET`, `POST`) on its control socket: the
    /// status code and the body.
    pub fn control_api(&self, method: &str, path: &str) -> (u16, String) {
        let out = curl(&[
            "--unix-socket",
            self.control.to_str().expect("a UTF-8 path"),
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            &format!("http://localhost{path}"),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// `sockhost serve` with a loopback TCP control listener on a port of
    /// the kernel's choosing, taking the token in `token_file`.
    pub fn start_with_control_port(token_file: &Path) -> Daemon {
        Daemon::start(&[
            "--control-listen".into(),
            "127.0.0.1:0".into(),
            "--control-token-file".into(),
            token_file.display().to_string(),
        ])
    }

    /// Its TCP control listener's address (`127.0.0.1:PORT`), from the
    /// status on its control socket.
    pub fn control_tcp(&self) -> String {
        let (code, body) = self.control_api("GET", "/v1/status");
        assert_eq!(code, 200, "GET /v1/status: {body}");
        let status: Status = serde_json::from_str(&body).expect("the status document");
        status
            .listeners
            .iter()
            .find_map(|l| l.strip_prefix("control+http://"))
            .expect("a control+http:// listener")
            .to_owned()
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

    /// Its URL as a proxy (`curl -x`).
    pub fn proxy(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `sockhost <args>` with the daemon's data directory, e.g. `ca export`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(sockhost_bin())
            .args(args)
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .output()
            .expect("sockhost runs")
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for the process to end by itself; its status.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<ExitStatus> {
        let until = std::time::Instant::now() + limit;
        while std::time::Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// Its folder, for a daemon started after it ([`Daemon::start_in`]);
    /// it must have ended.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        assert!(!self.is_running(), "the daemon still runs");
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, dir)
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("the daemon is our child")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.is_running() {
            self.stop();
        }
        if std::thread::panicking() {
            eprintln!("sockhost serve's log:\n{}", self.log());
        }
    }
}

/// A token file as the daemon (and Prometheus) take it: one line, mode
/// 0600.
pub fn token_file(dir: &Path, name: &str, token: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
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
