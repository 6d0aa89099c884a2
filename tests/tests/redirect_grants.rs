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
use sockhost_tests::{fixture, manifest_with, rt, runtime, set_key};

/// The in-repo origin answering for `www.t.test`, `other.test` and
/// `127.0.0.1`; a loopback port nothing answers on (the trap), which the
/// test proves nobody connected to; the plugin runtime whose fault log
/// the test reads.
struct Setup {
    origin: TestOrigin,
    trap: TcpListener,
    runtime: PluginRuntime,
    _data: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let origin = TestOrigin::start(OriginOptions {
            names: vec!["www.t.test".into(), "other.test".into(), "127.0.0.1".into()],
            ..OriginOptions::default()
        });
        let trap = TcpListener::bind("127.0.0.1:0").unwrap();
        trap.set_nonblocking(true).unwrap();
        let (runtime, _data) = runtime();
        Setup {
            origin,
            trap,
            runtime,
            _data,
        }
    }

    fn port(&self) -> u16 {
        self.origin.addr.port()
    }

    fn trap_port(&self) -> u16 {
        self.trap.local_addr().unwrap().port()
    }

    /// The fixture granted only `www.t.test`, plus `edit` to its manifest.
    fn absurd(&self, edit: impl FnOnce(String) -> String) -> ExtensionPlugin {
        let m = manifest_with(&fixture("absurd-extension"), |t| {
            edit(set_key(t, "capabilities", "hosts", "[\"www.t.test\"]"))
        });
        ExtensionPlugin::start(self.runtime.load_manifest(m).unwrap()).unwrap()
    }

    /// A host with `extension`; `other.test` on the trap's port would reach
    /// the trap if a redirect there were followed.
    fn host(&self, extension: ExtensionPlugin) -> Host {
        let resolve = |name: &str, port: u16| {
            format!("{name}:{port}:127.0.0.1")
                .parse::<ResolveOverride>()
                .unwrap()
        };
        Host::builder()
            .resolve(resolve("www.t.test", self.port()))
            .resolve(resolve("other.test", self.port()))
            .resolve(resolve("other.test", self.trap_port()))
            .ca_file(self.origin.ca_file.clone())
            .no_platform_roots()
            .extension(extension)
            .build()
            .unwrap()
    }

    /// A request the fixture redirects to `target`.
    fn url(&self, target: &str) -> String {
        format!("https://www.t.test:{}/?redirect-to={target}", self.port())
    }

    fn invalid_results(&self) -> u64 {
        self.runtime
            .faults()
            .count("absurd-extension", FaultKind::InvalidResult)
    }

    fn assert_trap_untouched(&self) {
        match self.trap.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("the refused redirect target was contacted from {peer}"),
            Err(e) => panic!("accept on the trap failed: {e}"),
        }
    }
}

/// Whether the fixture's hook did `action` in a fetch.
fn did(r: &sockhost::host::FetchResponse, action: &str) -> bool {
    r.actions
        .iter()
        .any(|a| a.plugin == "absurd-extension" && a.action == action)
}

#[test]
fn ungranted_redirects_are_refused_and_the_request_goes_on_unredirected() {
    let s = Setup::new();
    let tport = s.trap_port();
    // Each refusal is a fault; enough restarts that none disables it.
    let ext = s.absurd(|t| set_key(t, "limits", "restart-limit", "10"));
    let targets = [
        format!("http://127.0.0.1:{tport}/secret"),
        format!("http://other.test:{tport}/"),
        format!("http://[::1]:{tport}/"),
        format!("http://localhost:{tport}/"),
    ];
    rt().block_on(async {
        let h = s.host(ext);
        for target in &targets {
            let url = s.url(target);
            let r = h.fetch(FetchRequest::get(url.clone())).await.unwrap();
            assert_eq!(r.status, 200, "{target}");
            assert_eq!(r.url, url, "fail-open goes on to the original URL");
            assert!(did(&r, "fault"), "{:?}", r.actions);
            assert!(!did(&r, "hook-redirect"), "{:?}", r.actions);
            read_all(r.body).await.unwrap();
        }
    });
    s.assert_trap_untouched();
    assert_eq!(s.invalid_results(), targets.len() as u64);
    let recent = s.runtime.faults().recent();
    for (fault, target) in recent.iter().zip(&targets) {
        let line = fault.to_string();
        assert!(line.contains("plugin absurd-extension"), "{line}");
        assert!(line.contains(&format!("{target:?}")), "{line}");
        assert!(line.contains("capabilities.redirect-hosts"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
    let message = |i: usize| recent[i].message.as_str();
    assert!(
        message(0).contains("127.0.0.1 is a loopback address"),
        "{}",
        message(0)
    );
    assert!(
        message(1).contains("other.test is in neither capabilities.hosts"),
        "{}",
        message(1)
    );
}

#[test]
fn fail_closed_refuses_the_request_without_contacting_anything() {
    let s = Setup::new();
    let ext = s.absurd(|t| set_key(t, "limits", "on-fault", "\"fail-closed\""));
    let url = s.url(&format!("http://127.0.0.1:{}/secret", s.trap_port()));
    rt().block_on(async {
        let e = s.host(ext).fetch(FetchRequest::get(url)).await.unwrap_err();
        assert!(
            matches!(&e, FetchError::Blocked { extension, .. } if extension == "absurd-extension"),
            "{e}"
        );
    });
    s.assert_trap_untouched();
    assert_eq!(s.origin.connections(), 0, "a refused request was fetched");
    assert_eq!(s.invalid_results(), 1);
}

#[test]
fn redirects_the_manifest_grants_by_name_are_followed() {
    let s = Setup::new();
    let ext = s.absurd(|t| {
        set_key(
            t,
            "capabilities",
            "redirect-hosts",
            "[\"127.0.0.1\", \"other.test\"]",
        )
    });
    let port = s.port();
    rt().block_on(async {
        let h = s.host(ext);
        for target in [
            format!("https://127.0.0.1:{port}/?granted"),
            format!("https://other.test:{port}/?granted"),
        ] {
            let r = h.fetch(FetchRequest::get(s.url(&target))).await.unwrap();
            assert_eq!(r.status, 200, "{target}");
            assert_eq!(r.url, target);
            assert!(did(&r, "hook-redirect"), "{:?}", r.actions);
            read_all(r.body).await.unwrap();
        }
    });
    s.assert_trap_untouched();
    assert_eq!(s.invalid_results(), 0);
}
