//! Headless Chromium (Debian's) through `sockhost serve`, pointed at it by a
//! PAC that sends it only the test hosts: a page on nginx over https that
//! loads a first-party script, two images, a script from an ad host, and an
//! image and a frame from a tracker whose blocklist rule names scripts and
//! images only. Without interception Chromium's own TLS goes through a
//! blind CONNECT tunnel; with it, the daemon terminates TLS with its local
//! CA (trusted by its SPKI hash) and the blocklist sees each request, with
//! the resource type Chromium's `Sec-Fetch-Dest` gives.
//!
//! request-stats' counters cannot be read from a running daemon yet (no
//! metrics endpoint, no access log): what was and was not loaded is read
//! from nginx's access log instead.

use std::path::{Path, PathBuf};

use sockhost_tests::chromium::{self, spki_sha256, Browser};
use sockhost_tests::daemon::Daemon;
use sockhost_tests::nginx::Nginx;

/// The first-party host, the ad host (`||ads.example^` in the built-in
/// blocklist) and the tracker (`||metrics.example.net^$script,xhr,image`);
/// nginx's certificate names them all, so an intercepting daemon that does
/// not block a request can fetch it.
const SITE: &str = "www.site.test";
const AD_HOST: &str = "ads.example";
const TRACKER: &str = "metrics.example.net";
const HOSTS: [&str; 3] = [SITE, AD_HOST, TRACKER];
/// What the PAC sends to the daemon.
const PROXIED: &[&str] = &["*.test", AD_HOST, TRACKER];

/// nginx serving the page of tests/fixtures/browser, with an access log.
fn site() -> Nginx {
    let nginx = Nginx::start_with(&[], &HOSTS, true);
    let port = nginx.addr.port().to_string();
    let fixtures = sockhost_tests::repo().join("tests/fixtures/browser");
    let files = [
        "index.html",
        "site.js",
        "ad.js",
        "logo.svg",
        "photo.svg",
        "pixel.svg",
        "frame.html",
    ];
    for name in files {
        let text = std::fs::read_to_string(fixtures.join(name)).expect("fixture readable");
        std::fs::write(nginx.root.join(name), text.replace("{{PORT}}", &port)).unwrap();
    }
    nginx
}

/// The daemon's arguments that reach `nginx` as every host on its TLS port.
fn to_nginx(nginx: &Nginx) -> Vec<String> {
    let port = nginx.addr.port();
    let mut args = vec!["--connect-port".to_owned(), port.to_string()];
    for host in HOSTS {
        args.extend(["--resolve".to_owned(), format!("{host}:{port}:127.0.0.1")]);
    }
    args
}

fn page(nginx: &Nginx) -> String {
    format!("https://{SITE}:{}/", nginx.addr.port())
}

/// The page as Chromium left it: the first-party script ran and both
/// images loaded (their onload marked them).
fn assert_first_party_loaded(dom: &str) {
    assert!(
        dom.contains(r#"<p id="first-party" class="ran">first-party script ran</p>"#),
        "the first-party script did not run: {dom}"
    );
    for img in ["logo", "photo"] {
        assert_eq!(image(dom, img), "yes", "image {img}: {dom}");
    }
}

/// What the page's handlers wrote on image `id`: "yes" (loaded), "failed",
/// or "" (neither ran).
fn image<'a>(dom: &'a str, id: &str) -> &'a str {
    let tag = dom
        .split("<img ")
        .find(|tag| tag.contains(&format!(r#"id="{id}""#)))
        .unwrap_or_else(|| panic!("no image {id}: {dom}"));
    tag.split_once(r#"data-loaded=""#)
        .and_then(|(_, rest)| rest.split('"').next())
        .unwrap_or("")
}

/// The page loaded, its first-party parts fetched from nginx, and the ad
/// script neither ran nor reached nginx.
fn assert_loaded_without_the_ad(dom: &str, nginx: &Nginx) {
    assert_first_party_loaded(dom);
    assert!(!dom.contains("AD SCRIPT RAN"), "the ad script ran: {dom}");
    let site = requests_for(nginx, SITE);
    for wanted in [
        "GET / 200",
        "GET /site.js 200",
        "GET /logo.svg 200",
        "GET /photo.svg 200",
    ] {
        assert!(
            site.iter().any(|r| r == wanted),
            "{wanted} missing: {site:?}"
        );
    }
    assert_eq!(requests_for(nginx, AD_HOST), Vec::<String>::new());
}

/// The access log's requests for `host` (`METHOD URI STATUS`), sorted
/// (the browser fetches in parallel).
fn requests_for(nginx: &Nginx, host: &str) -> Vec<String> {
    let mut requests: Vec<String> = nginx
        .requests()
        .iter()
        .filter_map(|l| l.strip_prefix(&format!("{host} ")).map(str::to_owned))
        .collect();
    requests.sort();
    requests
}

/// Chromium's own TLS to nginx through a blind tunnel (nginx's key is
/// trusted by its hash). The blocklist decides at host level: the CONNECT
/// to the ad host is refused, so its script never runs and nginx never
/// sees a request for it; the tracker's rule is for scripts and images,
/// which a CONNECT is not, so its image and frame load.
#[test]
fn chromium_loads_a_page_through_connect_tunnels() {
    let Some(bin) = chromium::available() else {
        return;
    };
    let nginx = site();
    let daemon = Daemon::start(&to_nginx(&nginx));
    let spki = spki_sha256(&nginx.cert_file());
    let browser = Browser::new(bin, daemon.addr, PROXIED, &[spki]);

    let dom = browser.dump_dom(&page(&nginx));
    assert_loaded_without_the_ad(&dom, &nginx);
    assert_eq!(image(&dom, "pixel"), "yes", "{dom}");
    assert_eq!(
        requests_for(&nginx, TRACKER),
        ["GET /frame.html 200", "GET /pixel.svg 200"]
    );
}

/// The daemon terminates Chromium's TLS with its local CA (exported with
/// `sockhost ca export`, trusted by its SPKI hash) and fetches each request
/// itself: the blocklist blocks the ad script inside the tunnel, and the
/// tracker's image (Chromium says `Sec-Fetch-Dest: image`) but not its
/// frame. The same page through a daemon without the blocklist shows the
/// ad and the image: it was the blocklist, not an unreachable host, that
/// kept them out.
#[test]
fn an_intercepting_daemon_blocks_the_ad_script_chromium_asks_for() {
    let Some(bin) = chromium::available() else {
        return;
    };
    let nginx = site();
    let trust_nginx = ["--ca".to_owned(), nginx.ca_file.display().to_string()];
    let intercept = ["--intercept".to_owned()];
    let mut daemon = Daemon::start(&[&intercept[..], &trust_nginx, &to_nginx(&nginx)].concat());
    let browser = Browser::new(bin.clone(), daemon.addr, PROXIED, &[local_ca_spki(&daemon)]);

    let dom = browser.dump_dom(&page(&nginx));
    assert_loaded_without_the_ad(&dom, &nginx);
    assert_eq!(image(&dom, "pixel"), "failed", "{dom}");
    assert_eq!(requests_for(&nginx, TRACKER), ["GET /frame.html 200"]);

    let shot = screenshot_path("serve_browser_intercepted.png");
    browser.screenshot(&page(&nginx), &shot);
    eprintln!("screenshot: {}", shot.display());

    // request-stats counted every request that was loaded, per origin, as
    // nginx served them; the ad host's, never started, is not there.
    assert!(daemon.stop().success(), "{}", daemon.log());
    let log = daemon.log();
    for host in [SITE, TRACKER] {
        let origin = format!("https://{host}:{}", nginx.addr.port());
        let served = requests_for(&nginx, host).len();
        assert_eq!(
            counted(&log, "requests", &origin),
            Some(served),
            "{host}: {log}"
        );
        // Relayed whole: hyper stops reading at the Content-Length.
        assert_eq!(counted(&log, "request_errors", &origin), Some(0), "{log}");
        eprintln!("request-stats counted {served} requests to {origin}, as nginx served");
    }
    let ad_origin = format!("https://{AD_HOST}:{}", nginx.addr.port());
    assert_eq!(counted(&log, "requests", &ad_origin), None, "{log}");

    // The control: no plugins at all (an empty config loads none).
    let empty = daemon.dir.path().join("no-plugins.toml");
    std::fs::write(&empty, "").unwrap();
    let plain = Daemon::start(
        &[
            &intercept[..],
            &trust_nginx,
            &to_nginx(&nginx),
            &["--config".to_owned(), empty.display().to_string()],
        ]
        .concat(),
    );
    let browser = Browser::new(bin, plain.addr, PROXIED, &[local_ca_spki(&plain)]);
    let dom = browser.dump_dom(&page(&nginx));
    assert_first_party_loaded(&dom);
    assert!(
        dom.contains("AD SCRIPT RAN"),
        "without the blocklist: {dom}"
    );
    assert_eq!(image(&dom, "pixel"), "yes", "{dom}");
    assert_eq!(requests_for(&nginx, AD_HOST), ["GET /ad.js 200"]);
    let shot = screenshot_path("serve_browser_without_blocklist.png");
    browser.screenshot(&page(&nginx), &shot);
    eprintln!("screenshot: {}", shot.display());
}

/// request-stats' `sockhost_{what}_total` for `origin`, from what the
/// daemon printed of its probes' metrics when it stopped.
fn counted(log: &str, what: &str, origin: &str) -> Option<usize> {
    let name = format!("sockhost_{what}_total{{origin=\"{origin}\"}} ");
    log.lines()
        .find_map(|l| l.strip_prefix(&name))
        .map(|n| n.trim().parse().expect("a count"))
}

/// The SPKI hash of the daemon's local CA, as `sockhost ca export` prints it.
fn local_ca_spki(daemon: &Daemon) -> String {
    let out = daemon.cli(&["ca", "export"]);
    assert!(
        out.status.success(),
        "sockhost ca export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = daemon.dir.path().join("local-ca.pem");
    std::fs::write(&pem, &out.stdout).unwrap();
    spki_sha256(&pem)
}

/// Where a screenshot is kept after the test, under the target directory.
fn screenshot_path(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}
