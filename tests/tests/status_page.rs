//! The status page (`GET /` on the control listener) in headless Chromium,
//! a browser nobody here wrote: after curl fetched from nginx through the
//! daemon, `--dump-dom` shows the daemon's sections, the origin and the
//! plugins; the DNS form's answer is shown without the page refreshing
//! itself; a screenshot is kept under the target directory for people to
//! look at.
//!
//! Chromium speaks no Unix sockets, and the control API's TCP port asks
//! for a bearer header a browser does not send: it reaches the control
//! socket through a loopback relay, named `status.test`, which its PAC
//! sends through the daemon as every test host.

use std::path::{Path, PathBuf};

use sockhost_tests::chromium::{self, Browser};
use sockhost_tests::daemon::{fetch, Daemon};
use sockhost_tests::nginx::Nginx;
use sockhost_tests::unix_relay::UnixRelay;

const REFRESH: &str = "<meta http-equiv=\"refresh\" content=\"5\">";

/// A daemon reaching nginx as `nginx.test` and its own control socket,
/// through a relay, as `status.test`; and the page's URL.
struct Setup {
    daemon: Daemon,
    nginx: Nginx,
    page: String,
    _relay: UnixRelay,
    _dir: tempfile::TempDir,
}

fn setup(extra: &[String]) -> Setup {
    let nginx = Nginx::start(&[("small.txt", 1000)]);
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control.sock");
    let relay = UnixRelay::start(control.clone());
    let mut args = vec![
        "--control".to_owned(),
        control.display().to_string(),
        "--resolve".into(),
        format!("nginx.test:{}:127.0.0.1", nginx.http_addr.port()),
        "--resolve".into(),
        format!("status.test:{}:127.0.0.1", relay.addr.port()),
    ];
    args.extend_from_slice(extra);
    let daemon = Daemon::start(&args);
    let page = format!("http://status.test:{}/", relay.addr.port());
    Setup {
        daemon,
        nginx,
        page,
        _relay: relay,
        _dir: dir,
    }
}

impl Setup {
    fn fetch_small(&self) -> String {
        let origin = format!("http://nginx.test:{}", self.nginx.http_addr.port());
        let (code, _, body) = fetch(&["-x", &self.daemon.proxy(), &format!("{origin}/small.txt")]);
        assert_eq!((code, body.len()), (200, 1000));
        origin
    }

    fn browser(&self, bin: PathBuf) -> Browser {
        Browser::new(bin, self.daemon.addr, &["*.test"], &[]).window(1280, 1500)
    }
}

/// Where the screenshot is kept after the test.
fn kept(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn chromium_shows_the_daemon_and_a_dns_answer_that_stays() {
    let Some(bin) = chromium::available() else {
        return;
    };
    let s = setup(&[]);
    s.fetch_small();
    let browser = s.browser(bin);

    let dom = browser.dump_dom(&s.page);
    for text in [
        REFRESH.to_owned(),
        format!("pid {}", s.daemon.pid()),
        "<section id=\"process\">".into(),
        "<section id=\"pool\">".into(),
        "<section id=\"plugins\">".into(),
        "<section id=\"faults\">".into(),
        format!(
            "<td>proxy, TCP</td><td><code>http://{}</code>",
            s.daemon.addr
        ),
        "<td>control, Unix socket</td>".into(),
        "<form method=\"get\" action=\"/\"><input type=\"text\" name=\"dns\"".into(),
    ] {
        assert!(dom.contains(&text), "missing {text:?} in\n{dom}");
    }
    // curl's request is counted; Chromium's own, for this page, is in
    // flight while the daemon answers it.
    assert!(
        dom.contains("<th>requests since start</th><td>1</td>")
            || dom.contains("<th>requests since start</th><td>2</td>"),
        "{dom}"
    );

    // The form's answer, shown without a refresh that would replace it.
    let dom = browser.dump_dom(&format!("{}?dns=localhost", s.page));
    assert!(!dom.contains(REFRESH), "{dom}");
    assert!(dom.contains("name=\"dns\" value=\"localhost\""), "{dom}");
    assert!(dom.contains("<table id=\"dns-answer\">"), "{dom}");
    assert!(dom.contains("<a href=\"/\">back to the live page</a>"));

    // A name the form cannot take: the page, saying why, still paused.
    let dom = browser.dump_dom(&format!("{}?dns=not+a+name", s.page));
    assert!(!dom.contains(REFRESH), "{dom}");
    assert!(
        dom.contains("The lookup failed: \"not a name\" is not a host name"),
        "{dom}"
    );

    let shot = kept("status_page.png");
    browser.screenshot(&s.page, &shot);
    eprintln!("screenshot: {}", shot.display());
}

#[test]
fn chromium_shows_the_plugins_and_the_origin_fetched_just_before() {
    let Some(bin) = chromium::available() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sockhost.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins]\nbuiltin = false\nextensions = [{:?}]\nprobes = [{:?}]\n",
            sockhost_tests::plugin("blocklist"),
            sockhost_tests::plugin("request-stats"),
        ),
    )
    .unwrap();
    let s = setup(&["--config".into(), config.display().to_string()]);
    let origin = s.fetch_small();
    let browser = s.browser(bin);
    let dom = browser.dump_dom(&s.page);
    for text in [
        format!("<code>{origin}</code>"),
        "<tr id=\"plugin-blocklist\">".into(),
        "<tr id=\"plugin-request-stats\">".into(),
        "<div class=\"bar\"".into(),
    ] {
        assert!(dom.contains(&text), "missing {text:?} in\n{dom}");
    }
    let shot = kept("status_page_plugins.png");
    browser.screenshot(&s.page, &shot);
    eprintln!("screenshot: {}", shot.display());
}
