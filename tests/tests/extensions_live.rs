//! Extensions on the live request path, against the in-repo origin: the
//! blocklist's rules cancel before any network work, its hook rewrites
//! URLs, and hostile extensions fail open or closed as their manifests say.

use sockhost::host::{read_all, FetchError, FetchRequest, Host};
use sockhost::net::dns::ResolveOverride;
use sockhost::plugins::extension::ExtensionPlugin;
use sockhost_tests::origin::{OriginOptions, TestOrigin};
use sockhost_tests::{fixture, manifest_with, plugin, runtime, set_key};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn host_with(origin: &TestOrigin, extensions: Vec<ExtensionPlugin>) -> Host {
    let port = origin.addr.port();
    let mut b = Host::builder()
        .resolve(
            format!("www.test:{port}:127.0.0.1")
                .parse::<ResolveOverride>()
                .unwrap(),
        )
        .resolve(
            format!("ads.example:{port}:127.0.0.1")
                .parse::<ResolveOverride>()
                .unwrap(),
        )
        .ca_file(origin.ca_file.clone())
        .no_platform_roots();
    for e in extensions {
        b = b.extension(e);
    }
    b.build().unwrap()
}

#[test]
fn the_blocklist_cancels_before_any_connection_and_strips_tracking_parameters() {
    let origin = TestOrigin::start(OriginOptions::default());
    let (prt, _d) = runtime();
    let blocklist = ExtensionPlugin::start(prt.load(&plugin("blocklist")).unwrap()).unwrap();
    let port = origin.addr.port();
    rt().block_on(async {
        let h = host_with(&origin, vec![blocklist]);
        let e = h
            .fetch(FetchRequest::get(format!(
                "https://ads.example:{port}/banner.js"
            )))
            .await
            .unwrap_err();
        match &e {
            FetchError::Blocked { extension, reason } => {
                assert_eq!(extension, "blocklist");
                assert!(reason.starts_with("blocked by rule"), "{reason}");
            }
            e => panic!("expected a block, got {e}"),
        }
        assert_eq!(
            origin.connections(),
            0,
            "a blocked request opened a connection"
        );

        let r = h
            .fetch(FetchRequest::get(format!(
                "https://www.test:{port}/?utm_source=mail&id=7&fbclid=x"
            )))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.url, format!("https://www.test:{port}/?id=7"));
        assert!(
            r.actions
                .iter()
                .any(|a| a.plugin == "blocklist" && a.action == "hook-redirect"),
            "{:?}",
            r.actions
        );
        read_all(r.body).await.unwrap();
    });
}

#[test]
fn hostile_extensions_fail_open_or_closed_as_their_manifests_say() {
    let origin = TestOrigin::start(OriginOptions::default());
    let (prt, _d) = runtime();
    let port = origin.addr.port();
    let url = format!("https://www.test:{port}/");
    for name in ["spin-forever", "panics"] {
        let open = ExtensionPlugin::start(prt.load(&fixture(name)).unwrap()).unwrap();
        let closed_manifest = manifest_with(&fixture(name), |t| {
            set_key(t, "limits", "on-fault", "\"fail-closed\"")
        });
        let closed = ExtensionPlugin::start(prt.load_manifest(closed_manifest).unwrap()).unwrap();
        rt().block_on(async {
            let h = host_with(&origin, vec![open]);
            let r = h.fetch(FetchRequest::get(url.clone())).await.unwrap();
            assert_eq!(r.status, 200, "{name} fail-open");
            assert!(
                r.actions.iter().any(|a| a.action == "fault"),
                "{:?}",
                r.actions
            );
            read_all(r.body).await.unwrap();

            let h = host_with(&origin, vec![closed]);
            // Past its restart limit (2) it is disabled: still refused.
            for _ in 0..4 {
                let e = h.fetch(FetchRequest::get(url.clone())).await.unwrap_err();
                assert!(
                    matches!(&e, FetchError::Blocked { extension, .. } if extension == name),
                    "{name} fail-closed: {e}"
                );
            }
        });
    }
}
