//! Live reload of a running daemon through its control API, with curl as
//! the clients and nginx as the origin: under continuous load from 8
//! clients, 10 reloads alternating two configs (one of them by SIGHUP)
//! fail no request and switch
//! the plugins' actions at the reload; a bad config changes nothing; and
//! the daemon's memory after 1,000 reloads stays within a stated bound of
//! its memory after 10.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sockhost_tests::daemon::{curl, Daemon};
use sockhost_tests::nginx::Nginx;

/// The blocklist (and request-stats) plugged in: its hook strips
/// `utm_source`, an action the `Sockhost-Actions` header lists.
const WITH_PLUGINS: &str = "[plugins]\nbuiltin = true\n";
/// No plugins: the same request passes untouched.
const WITHOUT_PLUGINS: &str = "[plugins]\nbuiltin = false\n";

/// How far memory after 1,000 reloads may be above memory after 10.
const RSS_BOUND_KIB: u64 = 16 * 1024;

fn write_config(path: &Path, text: &str) {
    // Written whole then renamed, as an editor or config manager would, so
    // that a reload never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn reload(daemon: &Daemon) -> (u16, String) {
    daemon.control_api("POST", "/v1/reload")
}

fn generation(daemon: &Daemon) -> u64 {
    let (code, body) = daemon.control_api("GET", "/v1/status");
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    status["process"]["generation"].as_u64().unwrap()
}

/// VmRSS of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// One request a client made.
struct Done {
    started: Instant,
    ended: Instant,
    status: u16,
    blocklist_acted: bool,
}

/// A request through the daemon that the blocklist acts on when present.
fn one_request(proxy: &str, url: &str) -> Done {
    let started = Instant::now();
    let out = curl(&[
        "-x",
        proxy,
        "-H",
        "Sockhost-Actions: ?1",
        "-D",
        "-",
        "-o",
        "/dev/null",
        url,
    ]);
    let ended = Instant::now();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Done {
        started,
        ended,
        status,
        blocklist_acted: head
            .lines()
            .any(|l| l.starts_with("sockhost-actions: \"blocklist\"")),
    }
}

/// nginx, and a daemon in front of it on a config file that starts with
/// the plugins.
struct Setup {
    daemon: Daemon,
    cfg: std::path::PathBuf,
    url: String,
    _dir: tempfile::TempDir,
    _nginx: Nginx,
}

impl Setup {
    fn start() -> Setup {
        let nginx = Nginx::start(&[("small.txt", 1000)]);
        let port = nginx.http_addr.port();
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("sockhost.toml");
        write_config(&cfg, WITH_PLUGINS);
        let daemon = Daemon::start(&[
            "--config".into(),
            cfg.display().to_string(),
            "--resolve".into(),
            format!("nginx.test:{port}:127.0.0.1"),
        ]);
        Setup {
            daemon,
            cfg,
            url: format!("http://nginx.test:{port}/small.txt?utm_source=reload"),
            _dir: dir,
            _nginx: nginx,
        }
    }
}

#[test]
fn reloads_under_load_fail_no_request_and_switch_the_actions_at_the_reload() {
    let setup = Setup::start();
    let (daemon, cfg, url) = (&setup.daemon, &setup.cfg, &setup.url);
    let proxy = daemon.proxy();

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (stop, done, proxy, url) = (stop.clone(), done.clone(), proxy.clone(), url.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let d = one_request(&proxy, &url);
                    done.lock().unwrap().push(d);
                }
            })
        })
        .collect();

    // (asked, answered, plugins in effect after it)
    let mut reloads = Vec::new();
    std::thread::sleep(Duration::from_millis(400));
    for i in 0..10u64 {
        let with = i % 2 == 1;
        write_config(cfg, if with { WITH_PLUGINS } else { WITHOUT_PLUGINS });
        let asked = Instant::now();
        if i == 4 {
            // SIGHUP reloads too; the status shows when it took effect.
            let hup = std::process::Command::new("kill")
                .args(["-HUP", &daemon.pid().to_string()])
                .status()
                .unwrap();
            assert!(hup.success());
            while generation(daemon) != i + 2 {
                assert!(
                    asked.elapsed() < Duration::from_secs(10),
                    "SIGHUP did not reload"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        } else {
            let (code, body) = reload(daemon);
            assert_eq!(code, 200, "reload {i}: {body}");
            assert!(body.contains("\"ok\": true"), "{body}");
        }
        let answered = Instant::now();
        reloads.push((asked, answered, with));
        std::thread::sleep(Duration::from_millis(400));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let done = done.lock().unwrap();
    let failed: Vec<u16> = done
        .iter()
        .map(|d| d.status)
        .filter(|&s| s != 200)
        .collect();
    eprintln!(
        "{} requests by 8 clients across 10 reloads; {} failed",
        done.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "statuses other than 200: {failed:?}");
    assert_eq!(generation(daemon), 11);

    // Requests wholly between two reloads saw the config in effect then;
    // those that overlapped a reload may have seen either.
    let mut windows = vec![(None, Some(reloads[0].0), true)];
    for (i, &(_, answered, with)) in reloads.iter().enumerate() {
        windows.push((Some(answered), reloads.get(i + 1).map(|r| r.0), with));
    }
    for (i, (from, to, with)) in windows.iter().enumerate() {
        let inside: Vec<&Done> = done
            .iter()
            .filter(|d| from.is_none_or(|f| d.started > f) && to.is_none_or(|t| d.ended < t))
            .collect();
        assert!(
            !inside.is_empty(),
            "no request between reloads {i} and {}",
            i + 1
        );
        let wrong = inside.iter().filter(|d| d.blocklist_acted != *with).count();
        assert_eq!(
            wrong,
            0,
            "window {i} (plugins {}): {wrong} of {} requests saw the other config",
            if *with { "on" } else { "off" },
            inside.len()
        );
    }

    // A config that cannot be wired changes nothing, and says why.
    write_config(
        cfg,
        "[plugins]\nbuiltin = true\nextensions = [\"missing/plugin.toml\"]\n",
    );
    let (code, body) = reload(daemon);
    assert_eq!(code, 422, "{body}");
    assert_eq!(body.lines().count(), 1, "{body}");
    assert!(
        body.contains("plugins.extensions[0]") && body.contains("missing/plugin.toml"),
        "{body}"
    );
    assert_eq!(generation(daemon), 11);
    let after = one_request(&proxy, url);
    assert_eq!(after.status, 200);
    assert!(
        after.blocklist_acted,
        "the last good config (reload 9) has the blocklist"
    );
    let (_, status) = daemon.control_api("GET", "/v1/status");
    assert!(status.contains("\"ok\": false"), "{status}");
}

#[test]
fn memory_after_a_thousand_reloads_stays_near_memory_after_ten() {
    let setup = Setup::start();
    let (daemon, cfg, url) = (&setup.daemon, &setup.cfg, &setup.url);
    let proxy = daemon.proxy();
    // Each reload either drops both plugins or loads and starts them anew,
    // with a request in between that runs through what is plugged in.
    let round = |n: usize| {
        for i in 0..n {
            let with = i % 2 == 1;
            write_config(cfg, if with { WITH_PLUGINS } else { WITHOUT_PLUGINS });
            let (code, body) = reload(daemon);
            assert_eq!(code, 200, "{body}");
            assert_eq!(one_request(&proxy, url).blocklist_acted, with);
        }
    };
    round(10);
    let after_10 = rss_kib(daemon.pid());
    let started = Instant::now();
    round(990);
    let after_1000 = rss_kib(daemon.pid());
    eprintln!(
        "RSS after 10 reloads {after_10} KiB, after 1,000 {after_1000} KiB \
         ({:+} KiB; bound +{RSS_BOUND_KIB} KiB); 990 reloads in {:.1} s",
        after_1000 as i64 - after_10 as i64,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(generation(daemon), 1001);
    assert!(
        after_1000 <= after_10 + RSS_BOUND_KIB,
        "RSS grew from {after_10} KiB to {after_1000} KiB over 990 reloads"
    );
}

#[test]
fn a_reload_keeps_unchanged_plugins_with_their_state_and_applies_preferences() {
    let setup = Setup::start();
    let (daemon, cfg, url) = (&setup.daemon, &setup.cfg, &setup.url);
    let proxy = daemon.proxy();
    for _ in 0..5 {
        assert!(one_request(&proxy, url).blocklist_acted);
    }
    let calls = |name: &str| -> u64 {
        let (_, body) = daemon.control_api("GET", "/v1/status");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        status["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no plugin {name} in {body}"))["calls"]
            .as_u64()
            .unwrap()
    };
    let before = (calls("blocklist"), calls("request-stats"));
    // Only a network preference changes: both plugins stay, with their
    // instances, counts and state.
    write_config(
        cfg,
        &format!("{WITH_PLUGINS}[network]\nconnect-timeout = \"3s\"\nrequest-timeout = \"20s\"\n"),
    );
    let (code, body) = reload(daemon);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("plugins kept: blocklist, request-stats; added: none; removed: none"),
        "{body}"
    );
    let after = (calls("blocklist"), calls("request-stats"));
    assert!(
        after.0 >= before.0 && after.1 >= before.1,
        "counts went back: {before:?} then {after:?}"
    );
    assert!(one_request(&proxy, url).blocklist_acted);
    assert!(calls("blocklist") > after.0);
    // What only a restart can change is refused, naming it.
    write_config(
        cfg,
        &format!("{WITH_PLUGINS}[serve]\nconnect-ports = [443, 8443]\n"),
    );
    let (code, body) = reload(daemon);
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("serve cannot change without a restart"),
        "{body}"
    );
}
