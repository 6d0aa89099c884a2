//! A faulty extension in `sockhost serve` while 8 curl clients fetch at
//! once through it from nginx. The extension (a fixture that spins forever,
//! or one that panics) is granted one host only, so it sees only the
//! requests to that host. Under fail-open no request is lost; under
//! fail-closed exactly its requests are refused, with a 403 naming it, and
//! the others succeed; either way the daemon stays up.

use std::path::{Path, PathBuf};
use std::process::Command;

use sockhost_tests::daemon::Daemon;
use sockhost_tests::nginx::Nginx;
use sockhost_tests::{fixture, set_key};

/// Clients fetching at once, each on its own connection.
const CLIENTS: usize = 8;
/// Requests per client, alternating between the two hosts.
const PER_CLIENT: usize = 24;
/// The host the faulty extension is granted, and one it is not.
const FAULTY: &str = "faulty.test";
const HEALTHY: &str = "www.site.test";
/// What nginx serves.
const FILE: (&str, u64) = ("small.txt", 1000);

/// A config loading only fixture `name`, granted [`FAULTY`] alone, with
/// `on_fault` (`fail-open` or `fail-closed`); written under `dir`.
fn config(dir: &Path, name: &str, on_fault: &str) -> PathBuf {
    let manifest = fixture(name);
    let text = std::fs::read_to_string(&manifest).expect("fixture manifest");
    // The component stays where the fixture's manifest says it is.
    let component = component_of(&manifest, &text);
    let text = set_key(text, "plugin", "component", &format!("{component:?}"));
    let text = set_key(text, "capabilities", "hosts", &format!("[{FAULTY:?}]"));
    let text = set_key(text, "limits", "on-fault", &format!("{on_fault:?}"));
    let plugin_dir = dir.join(name);
    std::fs::create_dir_all(&plugin_dir).unwrap();
    std::fs::write(plugin_dir.join("plugin.toml"), text).unwrap();
    let config = dir.join(format!("{name}-{on_fault}.toml"));
    std::fs::write(
        &config,
        format!("[plugins]\nextensions = [\"{name}/plugin.toml\"]\n"),
    )
    .unwrap();
    config
}

/// The absolute path of the component the manifest at `path` names.
fn component_of(path: &Path, text: &str) -> String {
    let manifest = sockhost_policy::Manifest::parse(text, path).expect("a valid manifest");
    let component = manifest.plugin.component;
    component
        .canonicalize()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (bash plugins/build.sh builds it)",
                component.display()
            )
        })
        .display()
        .to_string()
}

/// One request's outcome.
#[derive(Debug)]
struct Outcome {
    host: String,
    status: u16,
    body: Vec<u8>,
}

/// `CLIENTS` curl processes at once, each fetching `PER_CLIENT` URLs on one
/// kept-alive connection through `proxy`, alternating between the hosts.
fn fetch_all(proxy: &str, port: u16) -> Vec<Outcome> {
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let proxy = proxy.to_owned();
            std::thread::spawn(move || one_client(&proxy, port, client))
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().expect("a client thread"))
        .collect()
}

fn one_client(proxy: &str, port: u16, client: usize) -> Vec<Outcome> {
    let dir = tempfile::tempdir().unwrap();
    let urls: Vec<(String, PathBuf)> = (0..PER_CLIENT)
        .map(|i| {
            let host = if (i + client).is_multiple_of(2) {
                FAULTY
            } else {
                HEALTHY
            };
            let url = format!("http://{host}:{port}/{}?client={client}&i={i}", FILE.0);
            (url, dir.path().join(i.to_string()))
        })
        .collect();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "-x", proxy])
        .args(["-w", "%{http_code} %{url_effective}\\n"]);
    for (url, out) in &urls {
        cmd.arg("-o").arg(out).arg(url);
    }
    let out = cmd.output().expect("curl runs");
    let report = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines.len(),
        PER_CLIENT,
        "client {client}: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines
        .iter()
        .zip(&urls)
        .map(|(line, (url, out))| {
            let (status, effective) = line.split_once(' ').expect("status and URL");
            assert_eq!(effective, url, "curl reports in order");
            Outcome {
                host: url[7..].split(':').next().unwrap().to_owned(),
                status: status.parse().expect("a status"),
                body: std::fs::read(out).unwrap_or_default(),
            }
        })
        .collect()
}

fn small() -> Vec<u8> {
    (0..FILE.1 as usize)
        .map(sockhost_tests::origin::pattern_byte)
        .collect()
}

/// The daemon with `config`, reaching nginx's cleartext port as both hosts.
fn daemon(nginx: &Nginx, config: &Path) -> Daemon {
    let port = nginx.http_addr.port();
    Daemon::start(&[
        "--config".into(),
        config.display().to_string(),
        "--resolve".into(),
        format!("{FAULTY}:{port}:127.0.0.1"),
        "--resolve".into(),
        format!("{HEALTHY}:{port}:127.0.0.1"),
    ])
}

/// It is still running and answers a request.
fn assert_up(daemon: &mut Daemon, port: u16) {
    assert!(daemon.is_running(), "the daemon exited: {}", daemon.log());
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["-x", &daemon.proxy()])
        .arg(format!("http://{HEALTHY}:{port}/{}", FILE.0))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

/// How many faults of `plugin` the daemon logged.
fn faults_logged(daemon: &Daemon, plugin: &str) -> usize {
    daemon
        .log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(&format!("plugin={plugin}")))
        .count()
}

/// A daemon with fixture `name` under `on_fault`, and the outcomes of
/// [`fetch_all`] through it.
struct Run {
    daemon: Daemon,
    nginx: Nginx,
    outcomes: Vec<Outcome>,
    _dir: tempfile::TempDir,
}

fn under_load(name: &str, on_fault: &str) -> Run {
    let nginx = Nginx::start(&[FILE]);
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(&nginx, &config(dir.path(), name, on_fault));
    let outcomes = fetch_all(&daemon.proxy(), nginx.http_addr.port());
    assert_eq!(outcomes.len(), CLIENTS * PER_CLIENT);
    Run {
        daemon,
        nginx,
        outcomes,
        _dir: dir,
    }
}

fn fail_open_loses_nothing(name: &str) {
    let Run {
        mut daemon,
        nginx,
        outcomes,
        _dir,
    } = under_load(name, "fail-open");
    for o in &outcomes {
        assert_eq!(
            o.status,
            200,
            "{}: {}",
            o.host,
            String::from_utf8_lossy(&o.body)
        );
        assert_eq!(o.body, small(), "{}", o.host);
    }
    // The extension did see its host's requests, and failed on them.
    let faults = faults_logged(&daemon, name);
    assert!(faults > 0, "no fault of {name} logged: {}", daemon.log());
    eprintln!(
        "{name}, fail-open: {} requests, all 200; {faults} faults logged",
        outcomes.len()
    );
    assert_up(&mut daemon, nginx.http_addr.port());
}

fn fail_closed_refuses_exactly_its_requests(name: &str) {
    let Run {
        mut daemon,
        nginx,
        outcomes,
        _dir,
    } = under_load(name, "fail-closed");
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for o in &outcomes {
        let body = String::from_utf8_lossy(&o.body);
        if o.host == FAULTY {
            assert_eq!(o.status, 403, "{}: {body}", o.host);
            assert_eq!(body.lines().count(), 1, "{body}");
            assert!(
                body.contains(&format!("blocked by extension {name}: it "))
                    && body.contains("fails closed"),
                "{body}"
            );
            *reasons.entry(body.trim().to_owned()).or_default() += 1;
        } else {
            assert_eq!(o.status, 200, "{}: {body}", o.host);
            assert_eq!(o.body, small(), "{}", o.host);
        }
    }
    let refused: usize = reasons.values().sum();
    assert_eq!(refused, CLIENTS * PER_CLIENT / 2);
    eprintln!(
        "{name}, fail-closed: {} requests, {refused} refused: {reasons:?}",
        outcomes.len()
    );
    assert_up(&mut daemon, nginx.http_addr.port());
}

#[test]
fn a_spinning_extension_fails_open_without_losing_a_request() {
    fail_open_loses_nothing("spin-forever");
}

#[test]
fn a_spinning_extension_fails_closed_on_its_requests_only() {
    fail_closed_refuses_exactly_its_requests("spin-forever");
}

#[test]
fn a_panicking_extension_fails_open_without_losing_a_request() {
    fail_open_loses_nothing("panics");
}

#[test]
fn a_panicking_extension_fails_closed_on_its_requests_only() {
    fail_closed_refuses_exactly_its_requests("panics");
}
