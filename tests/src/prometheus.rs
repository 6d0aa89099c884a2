//! Debian's Prometheus (a real scraper nobody here wrote, installed by
//! scripts/setup.sh) as a child process: listening only on 127.0.0.1, on a
//! port the kernel chose, with its storage in a temp dir; killed by its
//! pid when dropped. And its HTTP API's instant queries.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `tool` (a program of Debian's `prometheus`), or `None`, having said on
/// stderr that `test` is skipped, when it is missing off CI; with
/// `CI=true` a missing tool fails.
pub fn installed(tool: &'static str, test: &str) -> Option<&'static str> {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(tool);
    }
    let why = format!("{tool} is not installed (run bash scripts/setup.sh: Debian's prometheus)");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}");
    }
    // Straight to stderr: libtest hides eprintln! output of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "{test}: SKIPPED: {why} (with CI=true this fails)"
    );
    None
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    /// Its web port on 127.0.0.1 (the HTTP API).
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// `prometheus` (the binary) with `config` (YAML) once it is ready.
    pub fn start(prometheus: &str, config: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        // Port 0: the kernel picks a free port, which no other process can
        // take between choosing and binding; read back from /proc.
        let mut child = Command::new(prometheus)
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus runs");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(port) = listening_port(child.id()) {
                break port;
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.path().join("prometheus.log"));
                panic!(
                    "prometheus did not listen ({exited:?}): {}",
                    log.unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// The answer to the instant query `query`: each series' labels and
    /// value (empty when nothing matches, or Prometheus is not ready yet).
    pub fn query(&self, query: &str) -> Vec<(serde_json::Value, String)> {
        let out = crate::daemon::curl(&[
            "-G",
            &format!("http://127.0.0.1:{}/api/v1/query", self.port),
            "--data-urlencode",
            &format!("query={query}"),
        ]);
        let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return Vec::new();
        };
        answer["data"]["result"]
            .as_array()
            .map(|series| {
                series
                    .iter()
                    .map(|s| {
                        let value = s["value"][1].as_str().unwrap_or_default().to_owned();
                        (s["metric"].clone(), value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The value of `query`, a single series, once it is `want(value)`,
    /// polling for up to 60 s (Prometheus scrapes, then stores); panics
    /// with what it last answered otherwise.
    pub fn wait_for(&self, query: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.query(query);
            if let [(_, value)] = got.as_slice() {
                if want(value) {
                    return value.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{query}: Prometheus answered {got:?} after 60 s"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port process `pid` listens on over TCP (IPv4), from its open
/// sockets' inodes and its network namespace's table.
fn listening_port(pid: u32) -> Option<u16> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let inodes: Vec<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_str()?.to_owned();
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string(Path::new(&format!("/proc/{pid}/net/tcp"))).ok()?;
    table.lines().skip(1).find_map(|line| {
        // sl local_address rem_address st ... inode
        let fields: Vec<&str> = line.split_whitespace().collect();
        let listening = fields.get(3) == Some(&"0A");
        if !listening || !inodes.iter().any(|i| Some(&i.as_str()) == fields.get(9)) {
            return None;
        }
        let (_, port) = fields.get(1)?.split_once(':')?;
        u16::from_str_radix(port, 16).ok()
    })
}
