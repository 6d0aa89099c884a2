//! Debian's Chromium, headless, as a browser nobody here wrote: pointed at a
//! proxy by a PAC that sends it only the test hosts, so that the browser's
//! own traffic (updates, safe browsing, metrics) goes nowhere, and trusting
//! certificates by the SPKI hashes the test names.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Where Debian's `chromium` package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The longest a page may take to load and dump.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// The browser, or `None` when it is not installed outside CI (the test
/// says it skips). In CI (`CI=true`) a missing browser is a failure.
pub fn available() -> Option<PathBuf> {
    let path = PathBuf::from(CHROMIUM);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{CHROMIUM} is missing in CI: bash scripts/setup.sh installs Debian's chromium");
    }
    eprintln!("skipped: {CHROMIUM} is missing (bash scripts/setup.sh installs Debian's chromium)");
    None
}

/// A PAC that sends the hosts matching `patterns` (shell patterns such as
/// `*.test`) to `proxy` and everything else to a closed loopback port.
pub fn pac(proxy: SocketAddr, patterns: &[&str]) -> String {
    let tests: Vec<String> = patterns
        .iter()
        .map(|p| format!("shExpMatch(host, {p:?})"))
        .collect();
    format!(
        "function FindProxyForURL(url, host) {{\n  if ({}) return \"PROXY {proxy}\";\n  return \"PROXY 127.0.0.1:9\";\n}}\n",
        tests.join(" || ")
    )
}

/// The base64 of the SHA-256 of the public key (SPKI) of the first
/// certificate in the PEM file `cert`, as `--ignore-certificate-errors-spki-list`
/// takes it; computed by openssl.
pub fn spki_sha256(cert: &Path) -> String {
    let pubkey = run_openssl(&["x509", "-pubkey", "-noout", "-in"], Some(cert), None);
    let der = run_openssl(&["pkey", "-pubin", "-outform", "der"], None, Some(pubkey));
    let digest = run_openssl(&["dgst", "-sha256", "-binary"], None, Some(der));
    base64(digest)
}

/// `bytes` in base64 on one line, by openssl.
fn base64(bytes: Vec<u8>) -> String {
    let b64 = run_openssl(&["base64", "-A"], None, Some(bytes));
    String::from_utf8(b64).expect("base64 is ASCII")
}

fn run_openssl(args: &[&str], file: Option<&Path>, input: Option<Vec<u8>>) -> Vec<u8> {
    use std::io::Write;
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    if let Some(f) = file {
        cmd.arg(f);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs (bash scripts/setup.sh installs it)");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        if let Some(bytes) = input {
            let _ = stdin.write_all(&bytes);
        }
    });
    let out = child.wait_with_output().expect("openssl finishes");
    writer.join().expect("the writer does not panic");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A headless browser profile behind a proxy.
#[derive(Debug)]
pub struct Browser {
    bin: PathBuf,
    pac: String,
    spki: Vec<String>,
    profile: tempfile::TempDir,
    window: (u32, u32),
}

impl Browser {
    /// A fresh profile that sends the hosts matching `patterns` to `proxy`
    /// and ignores certificate errors of chains with a key in `spki`.
    pub fn new(bin: PathBuf, proxy: SocketAddr, patterns: &[&str], spki: &[String]) -> Browser {
        Browser {
            bin,
            pac: pac(proxy, patterns),
            spki: spki.to_vec(),
            profile: tempfile::tempdir().expect("temp dir"),
            window: (800, 600),
        }
    }

    /// The same browser with a window of `width` × `height` (800 × 600
    /// otherwise): what a screenshot shows.
    pub fn window(mut self, width: u32, height: u32) -> Browser {
        self.window = (width, height);
        self
    }

    fn command(&self) -> Command {
        let pac = base64(self.pac.as_bytes().to_vec());
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--metrics-recording-only",
            "--no-default-browser-check",
            "--hide-scrollbars",
            // Chromium otherwise sends loopback directly, past the PAC.
            "--proxy-bypass-list=<-loopback>",
        ])
        .arg(format!(
            "--proxy-pac-url=data:application/x-ns-proxy-autoconfig;base64,{pac}"
        ))
        .arg(format!("--window-size={},{}", self.window.0, self.window.1))
        .arg(format!("--user-data-dir={}", self.profile.path().display()));
        if !self.spki.is_empty() {
            cmd.arg(format!(
                "--ignore-certificate-errors-spki-list={}",
                self.spki.join(",")
            ));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// `--dump-dom URL`: the DOM once the page has loaded.
    pub fn dump_dom(&self, url: &str) -> String {
        let mut cmd = self.command();
        cmd.arg("--dump-dom").arg(url);
        let out = run(cmd);
        let dom = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !dom.trim().is_empty(),
            "chromium dumped no DOM for {url}: {}",
            errors(&out.stderr)
        );
        dom
    }

    /// `--screenshot=PATH URL`: a PNG of the page once it has loaded.
    pub fn screenshot(&self, url: &str, path: &Path) {
        let mut cmd = self.command();
        cmd.arg(format!("--screenshot={}", path.display())).arg(url);
        run(cmd);
        assert!(path.exists(), "chromium wrote no screenshot at {path:?}");
    }
}

/// The lines of Chromium's log that say why a page did not load (it logs
/// much else: D-Bus, which a test machine lacks, and the like).
fn errors(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.contains("ERR_") || l.contains("net_error") || l.contains("load failed"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the browser, killing it (by its pid) if it outlives [`PAGE_TIMEOUT`].
fn run(mut cmd: Command) -> Output {
    let child = cmd.spawn().expect("chromium starts");
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(PAGE_TIMEOUT).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    let out = child.wait_with_output().expect("chromium finishes");
    let _ = done_tx.send(());
    watchdog.join().expect("the watchdog does not panic");
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
