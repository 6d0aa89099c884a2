//! An extension's redirect is followed only to hosts its manifest grants;
//! loopback, private and link-local targets need a grant naming them. A
//! hostile extension (the absurd-extension fixture, redirecting wherever
//! the request's `redirect-to=` says) granted only `www.t.test` tries a
//! loopback port and another host: neither is contacted, the fault is
//! recorded, and the request goes on or is refused as its manifest says.

use std::net::TcpListener;

use sockhost::host::{read_all, FetchError, FetchRequest, Host};
use sockhost::net::dns::ResolveOverride;
use sockhost::plugins::extension::ExtensionPlugin;
use sockhost::plugins::{FaultKind, PluginRuntime};
use sockhost_tests::origin::{OriginOptions, TestOrigin};
use sockhost_tests::{fixture, manifest_with, runtime, set_key};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The origin answers for both names; `other.test` on the trap's port
/// would reach the trap if followed.
fn host_with(origin: &TestOrigin, trap_port: u16, extension: ExtensionPlugin) -> Host {
    let port = origin.addr.port();
    let resolve = |name: &str, port: u16| {
        format!("{name}:{port}:127.0.0.1")
            .parse::<ResolveOverride>()
            .unwrap()
    };
    Host::builder()
        .resolve(resolve("www.t.test", port))
        .resolve(resolve("other.test", port))
        .resolve(resolve("other.test", trap_port))
        .ca_file(origin.ca_file.clone())
        .no_platform_roots()
        .extension(extension)
        .build()
        .unwrap()
}

fn origin() -> TestOrigin {
    TestOrigin::start(OriginOptions {
        names: vec!["www.t.test".into(), "other.test".into(), "127.0.0.1".into()],
        ..OriginOptions::default()
    })
}

/// A loopback port nothing answers on: the test asserts nobody connected.
fn trap() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    l
}

fn assert_untouched(trap: &TcpListener) {
    match trap.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("the refused redirect target was contacted from {peer}"),
        Err(e) => panic!("accept on the trap failed: {e}"),
    }
}

/// The fixture granted only `www.t.test`, plus `edit` to its manifest.
fn absurd(prt: &PluginRuntime, edit: impl FnOnce(String) -> String) -> ExtensionPlugin {
    let m = manifest_with(&fixture("absurd-extension"), |t| {
        edit(set_key(t, "capabilities", "hosts", "[\"www.t.test\"]"))
    });
    ExtensionPlugin::start(prt.load_manifest(m).unwrap()).unwrap()
}

#[test]
fn ungranted_redirects_are_refused_and_the_request_goes_on_unredirected() {
    let origin = origin();
    let trap = trap();
    let tport = trap.local_addr().unwrap().port();
    let port = origin.addr.port();
    let (prt, _d) = runtime();
    // Each refusal is a fault; enough restarts that none disables it.
    let ext = absurd(&prt, |t| set_key(t, "limits", "restart-limit", "10"));
    let targets = [
        format!("http://127.0.0.1:{tport}/secret"),
        format!("http://other.test:{tport}/"),
        format!("http://[::1]:{tport}/"),
        format!("http://localhost:{tport}/"),
    ];
    rt().block_on(async {
        let h = host_with(&origin, tport, ext);
        for target in &targets {
            let url = format!("https://www.t.test:{port}/?redirect-to={target}");
            let r = h.fetch(FetchRequest::get(url.clone())).await.unwrap();
            assert_eq!(r.status, 200, "{target}");
            assert_eq!(r.url, url, "fail-open goes on to the original URL");
            assert!(
                r.actions
                    .iter()
                    .any(|a| a.plugin == "absurd-extension" && a.action == "fault"),
                "{:?}",
                r.actions
            );
            assert!(
                !r.actions.iter().any(|a| a.action == "hook-redirect"),
                "{:?}",
                r.actions
            );
            read_all(r.body).await.unwrap();
        }
    });
    assert_untouched(&trap);
    let faults = prt.faults();
    assert_eq!(
        faults.count("absurd-extension", FaultKind::InvalidResult),
        targets.len() as u64
    );
    let recent = faults.recent();
    for (fault, target) in recent.iter().zip(&targets) {
        let line = fault.to_string();
        assert!(line.contains("plugin absurd-extension"), "{line}");
        assert!(line.contains(&format!("{target:?}")), "{line}");
        assert!(line.contains("capabilities.redirect-hosts"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
    assert!(
        recent[0]
            .message
            .contains("127.0.0.1 is a loopback address"),
        "{}",
        recent[0].message
    );
    assert!(
        recent[1]
            .message
            .contains("other.test is in neither capabilities.hosts"),
        "{}",
        recent[1].message
    );
}

#[test]
fn fail_closed_refuses_the_request_without_contacting_anything() {
    let origin = origin();
    let trap = trap();
    let tport = trap.local_addr().unwrap().port();
    let port = origin.addr.port();
    let (prt, _d) = runtime();
    let ext = absurd(&prt, |t| {
        set_key(t, "limits", "on-fault", "\"fail-closed\"")
    });
    rt().block_on(async {
        let h = host_with(&origin, tport, ext);
        let url = format!("https://www.t.test:{port}/?redirect-to=http://127.0.0.1:{tport}/secret");
        let e = h.fetch(FetchRequest::get(url)).await.unwrap_err();
        assert!(
            matches!(&e, FetchError::Blocked { extension, .. } if extension == "absurd-extension"),
            "{e}"
        );
    });
    assert_untouched(&trap);
    assert_eq!(origin.connections(), 0, "a refused request was fetched");
    assert_eq!(
        prt.faults()
            .count("absurd-extension", FaultKind::InvalidResult),
        1
    );
}

#[test]
fn redirects_the_manifest_grants_by_name_are_followed() {
    let origin = origin();
    let trap = trap();
    let tport = trap.local_addr().unwrap().port();
    let port = origin.addr.port();
    let (prt, _d) = runtime();
    let ext = absurd(&prt, |t| {
        set_key(
            t,
            "capabilities",
            "redirect-hosts",
            "[\"127.0.0.1\", \"other.test\"]",
        )
    });
    rt().block_on(async {
        let h = host_with(&origin, tport, ext);
        for target in [
            format!("https://127.0.0.1:{port}/?granted"),
            format!("https://other.test:{port}/?granted"),
        ] {
            let url = format!("https://www.t.test:{port}/?redirect-to={target}");
            let r = h.fetch(FetchRequest::get(url)).await.unwrap();
            assert_eq!(r.status, 200, "{target}");
            assert_eq!(r.url, target);
            assert!(
                r.actions
                    .iter()
                    .any(|a| a.plugin == "absurd-extension" && a.action == "hook-redirect"),
                "{:?}",
                r.actions
            );
            read_all(r.body).await.unwrap();
        }
    });
    assert_untouched(&trap);
    assert_eq!(
        prt.faults()
            .count("absurd-extension", FaultKind::InvalidResult),
        0
    );
}
