//! Each plugin's status from live plugins, and the operator's enable and
//! disable, against the in-repo origin: the blocklist's calls and call time
//! are counted as requests go through its hook; disabled, its hook is no
//! longer called and requests are answered as its on-fault rule says;
//! enabled, it is called again. The panics fixture's faults are counted by
//! kind, the last one kept with its WebAssembly backtrace.

use sockhost::control::plane::UnknownPlugin;
use sockhost::control::status::{PluginState, PluginStatus};
use std::sync::Arc;
use std::time::Duration;

use sockhost::host::{read_all, FetchError, FetchRequest, Host};
use sockhost::net::connection::VersionPref;
use sockhost::plugins::congestion::{
    CongestionChoice, CongestionPlugin, CongestionPolicy, ControllerKind,
};
use sockhost::plugins::connect::ConnectPlugin;
use sockhost::plugins::extension::ExtensionPlugin;
use sockhost::plugins::telemetry::TelemetryPlugin;
use sockhost::plugins::PluginRuntime;
use sockhost_policy::Manifest;
use sockhost_tests::origin::{OriginOptions, TestOrigin};
use sockhost_tests::{fixture, manifest_with, origin_host, plugin, rt, runtime, set_key};

fn host_with(origin: &TestOrigin, prt: &PluginRuntime, manifest: Manifest) -> Host {
    let ext = ExtensionPlugin::start(prt.load_manifest(manifest).unwrap()).unwrap();
    origin_host(origin)
        .extension(ext)
        .fault_log(prt.faults().clone())
        .build()
        .unwrap()
}

fn manifest(path: &std::path::Path) -> Manifest {
    manifest_with(path, |t| t)
}

fn the_one(h: &Host) -> PluginStatus {
    let mut all = h.plugin_statuses();
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn operator_disabled() -> PluginState {
    PluginState::Disabled {
        by: "operator".into(),
    }
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Fetches a URL with tracking parameters, which the blocklist's hook
/// strips: whether the hook ran.
async fn hook_ran(h: &Host, port: u16) -> bool {
    let r = h
        .fetch(FetchRequest::get(format!(
            "https://www.test:{port}/?utm_source=mail&id=7"
        )))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let stripped = r.url == format!("https://www.test:{port}/?id=7");
    let redirected = r.actions.iter().any(|a| a.action == "hook-redirect");
    assert_eq!(stripped, redirected, "{} {:?}", r.url, r.actions);
    read_all(r.body).await.unwrap();
    stripped
}

#[test]
fn the_blocklist_counts_its_calls_and_the_operator_stops_and_restarts_its_hook() {
    let origin = TestOrigin::start(OriginOptions::default());
    let (prt, _d) = runtime();
    let m = manifest(&plugin("blocklist"));
    let sha256 = hex_of(&m.plugin.sha256);
    let port = origin.addr.port();
    rt().block_on(async {
        let h = host_with(&origin, &prt, m);
        let s = the_one(&h);
        assert_eq!(
            (s.name.as_str(), s.world.as_str(), s.version.as_str()),
            ("blocklist", "extension", "0.1.0")
        );
        assert_eq!(s.sha256, sha256);
        assert_eq!(s.state, PluginState::Active);
        assert_eq!(s.memory_limit_bytes, 16 << 20);
        assert_eq!(s.instances, 1, "started: one instance, initialised");
        assert!(s.max_instances >= 1);
        assert_eq!(s.memory_bytes.len(), 1);
        assert!(s.memory_bytes[0] > 0 && s.memory_bytes[0] <= s.memory_limit_bytes);
        assert!(s.memory_peak_bytes >= s.memory_bytes[0]);
        assert!(s.faults.is_empty() && s.last_fault.is_none());
        let at_start = s.calls;
        assert!(at_start >= 1, "init is a call");

        for _ in 0..3 {
            assert!(hook_ran(&h, port).await);
        }
        let s = the_one(&h);
        println!(
            "blocklist: {} calls, {:?}, memory {:?} (peak {})",
            s.calls, s.call_time, s.memory_bytes, s.memory_peak_bytes
        );
        assert!(s.calls >= at_start + 3, "{} calls", s.calls);
        let t = &s.call_time;
        assert!(t.total_us > 0 && t.max_us > 0 && t.p99_us > 0, "{t:?}");
        assert!(t.p99_us <= t.max_us && t.max_us <= t.total_us + 1, "{t:?}");

        let off = h.set_plugin_enabled("blocklist", false).unwrap();
        assert_eq!(off.state, operator_disabled());
        assert_eq!(the_one(&h).state, operator_disabled());
        let calls = off.calls;
        assert!(!hook_ran(&h, port).await, "a disabled hook ran");
        assert!(!hook_ran(&h, port).await, "a disabled hook ran");
        assert_eq!(the_one(&h).calls, calls, "calls entered a disabled plugin");
        // Its declarative rules are native and still apply, as they do for
        // an extension disabled after faults.
        let e = h
            .fetch(FetchRequest::get(format!(
                "https://ads.example:{port}/banner.js"
            )))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, FetchError::Blocked { reason, .. } if reason.starts_with("blocked by rule")),
            "{e}"
        );

        let on = h.set_plugin_enabled("blocklist", true).unwrap();
        assert_eq!(on.state, PluginState::Active);
        assert!(hook_ran(&h, port).await, "an enabled hook did not run");
        assert!(the_one(&h).calls > calls);
        assert_eq!(the_one(&h).restarts, 0, "no fault, no restart");

        assert_eq!(
            h.set_plugin_enabled("no-such-plugin", false).unwrap_err(),
            UnknownPlugin("no-such-plugin".into())
        );
        assert!(h.recent_faults().is_empty());
    });
}

#[test]
fn a_disabled_fail_closed_extension_refuses_requests_until_enabled() {
    let origin = TestOrigin::start(OriginOptions::default());
    let (prt, _d) = runtime();
    let m = manifest_with(&plugin("blocklist"), |t| {
        set_key(t, "limits", "on-fault", "\"fail-closed\"")
    });
    let port = origin.addr.port();
    let url = format!("https://www.test:{port}/?utm_source=mail&id=7");
    rt().block_on(async {
        let h = host_with(&origin, &prt, m);
        h.set_plugin_enabled("blocklist", false).unwrap();
        let e = h.fetch(FetchRequest::get(url.clone())).await.unwrap_err();
        match &e {
            FetchError::Blocked { extension, reason } => {
                assert_eq!(extension, "blocklist");
                assert!(reason.contains("disabled"), "{reason}");
            }
            e => panic!("expected a refusal, got {e}"),
        }
        assert_eq!(origin.connections(), 0, "a refused request connected");
        let s = h.set_plugin_enabled("blocklist", true).unwrap();
        assert_eq!(s.state, PluginState::Active);
        assert!(hook_ran(&h, port).await);
    });
}

#[test]
fn faults_are_counted_by_kind_with_the_last_one_and_its_backtrace() {
    let origin = TestOrigin::start(OriginOptions::default());
    let (prt, _d) = runtime();
    let port = origin.addr.port();
    let url = format!("https://www.test:{port}/");
    rt().block_on(async {
        // Fail-open, restart-limit 2, retried after a backoff.
        let h = host_with(&origin, &prt, manifest(&fixture("panics")));
        let r = h.fetch(FetchRequest::get(url.clone())).await.unwrap();
        assert_eq!(r.status, 200, "fail-open");
        read_all(r.body).await.unwrap();
        let s = the_one(&h);
        assert_eq!(s.faults.get("panic"), Some(&1), "{:?}", s.faults);
        assert_eq!(s.faults.len(), 1, "{:?}", s.faults);
        assert_eq!(s.restarts, 1);
        assert_eq!(s.state, PluginState::Active);
        let last = s.last_fault.expect("the fault is kept");
        println!("last fault: {last:#?}");
        assert_eq!(
            (last.plugin.as_str(), last.world.as_str()),
            ("panics", "extension")
        );
        assert_eq!(
            (last.function.as_str(), last.kind.as_str()),
            ("on-request", "panic")
        );
        assert!(
            last.message.contains("fixture panics on request"),
            "{}",
            last.message
        );
        assert_eq!(last.action, "restarted");
        let backtrace = last.backtrace.as_deref().expect("a backtrace");
        // The frames name the component and the export that panicked.
        assert!(
            backtrace.contains("fixture_panics.wasm!") && backtrace.contains("#on-request"),
            "{backtrace}"
        );
        assert!(last.at_unix_ms > 0 && last.at_unix_ms <= now_unix_ms());
        assert_eq!(h.recent_faults(), std::slice::from_ref(&last));

        // Two more: over its budget, it backs off for a second.
        for _ in 0..2 {
            let r = h.fetch(FetchRequest::get(url.clone())).await.unwrap();
            read_all(r.body).await.unwrap();
        }
        let s = the_one(&h);
        assert_eq!(s.faults.get("panic"), Some(&3));
        let PluginState::BackingOff { until_unix_ms } = s.state else {
            panic!("expected a backoff, got {:?}", s.state)
        };
        let disabling = s.last_fault.unwrap();
        assert!(
            disabling.action.starts_with("disabled for 1s"),
            "{disabling:?}"
        );
        // A second after the fault that disabled it, give or take the two
        // clocks' readings.
        let expected = disabling.at_unix_ms + 1000;
        assert!(
            until_unix_ms.abs_diff(expected) < 100,
            "{until_unix_ms} vs {expected}"
        );
        assert_eq!(s.instances, 0, "the faulted instances are gone");

        // The operator brings it back before the backoff ends: it is
        // called (and panics) again at once.
        let s = h.set_plugin_enabled("panics", true).unwrap();
        assert_eq!(s.state, PluginState::Active);
        assert_eq!(s.restarts, 3, "two restarts, then the comeback");
        let r = h.fetch(FetchRequest::get(url.clone())).await.unwrap();
        read_all(r.body).await.unwrap();
        assert_eq!(the_one(&h).faults.get("panic"), Some(&4));
        assert_eq!(h.recent_faults().len(), 4);
    });

    // Under stay-disabled the faults disable it until a reload, or until
    // the operator enables it.
    let m = manifest_with(&fixture("panics"), |t| {
        set_key(t, "limits", "on-disable", "\"stay-disabled\"")
    });
    rt().block_on(async {
        let h = host_with(&origin, &prt, m);
        for _ in 0..3 {
            let r = h.fetch(FetchRequest::get(url.clone())).await.unwrap();
            read_all(r.body).await.unwrap();
        }
        let by_faults = PluginState::Disabled {
            by: "faults".into(),
        };
        let s = the_one(&h);
        assert_eq!(s.state, by_faults);
        // Counted from this load, though the runtime's log holds the
        // first plugin's faults under the same name too.
        assert_eq!(s.faults.get("panic"), Some(&3));
        assert_eq!(h.recent_faults().len(), 7);
        assert_eq!(
            h.set_plugin_enabled("panics", false).unwrap().state,
            operator_disabled()
        );
        assert_eq!(
            h.set_plugin_enabled("panics", true).unwrap().state,
            PluginState::Active
        );
    });
}

#[test]
fn every_kind_of_plugin_is_listed_in_the_order_plugged_in_and_disabled_by_name() {
    let origin = TestOrigin::start(OriginOptions::default());
    let (prt, _d) = runtime();
    let load = |name: &str| prt.load(&plugin(name)).unwrap();
    let port = origin.addr.port();
    rt().block_on(async {
        let cubic = CongestionPolicy::new(CongestionPlugin::new(load("cubic")).unwrap());
        let h = origin_host(&origin)
            .extension(ExtensionPlugin::start(load("blocklist")).unwrap())
            .probe(TelemetryPlugin::new(load("request-stats")).unwrap())
            .connect_policy(ConnectPlugin::new(load("happy-eyeballs")).unwrap())
            .congestion(CongestionChoice::all(ControllerKind::Plugin(Arc::new(
                cubic,
            ))))
            .build()
            .unwrap();
        assert!(hook_ran(&h, port).await);
        h.telemetry().flush(Duration::from_secs(10)).await;

        let all = h.plugin_statuses();
        let listed: Vec<(&str, &str, u64)> = all
            .iter()
            .map(|s| (s.name.as_str(), s.world.as_str(), s.max_instances))
            .collect();
        let blocklist_instances = all[0].max_instances;
        assert_eq!(
            listed,
            [
                ("blocklist", "extension", blocklist_instances),
                ("request-stats", "telemetry-probe", 1),
                ("happy-eyeballs", "connect-policy", 1),
                ("cubic", "congestion-policy", 0),
            ]
        );
        for s in &all[..3] {
            assert!(s.calls >= 1 && s.instances == 1, "{s:?}");
            assert!(s.memory_peak_bytes > 0, "{s:?}");
        }
        assert_eq!((all[3].calls, all[3].instances), (0, 0), "no QUIC yet");

        for s in &all {
            let off = h.set_plugin_enabled(&s.name, false).unwrap();
            assert_eq!(off.state, operator_disabled(), "{}", s.name);
        }
        assert!(h
            .plugin_statuses()
            .iter()
            .all(|s| s.state == operator_disabled()));
        for s in &all {
            let on = h.set_plugin_enabled(&s.name, true).unwrap();
            assert_eq!(on.state, PluginState::Active, "{}", s.name);
        }
    });
}

#[test]
fn a_congestion_policy_has_an_instance_per_quic_connection() {
    let origin = TestOrigin::start(OriginOptions {
        h3: true,
        ..OriginOptions::default()
    });
    let (prt, _d) = runtime();
    let port = origin.addr.port();
    let cubic =
        CongestionPolicy::new(CongestionPlugin::new(prt.load(&plugin("cubic")).unwrap()).unwrap());
    let cubic = Arc::new(cubic);
    rt().block_on(async {
        let h = origin_host(&origin)
            .version(VersionPref::Http3)
            .congestion(CongestionChoice::all(ControllerKind::Plugin(cubic.clone())))
            .build()
            .unwrap();
        let r = h
            .fetch(FetchRequest::get(format!("https://www.test:{port}/")))
            .await
            .unwrap();
        assert_eq!(r.version, http::Version::HTTP_3);
        read_all(r.body).await.unwrap();
        // The connection is pooled, its controller alive.
        let s = the_one(&h);
        println!(
            "cubic: {} calls, {:?}, memory {:?}",
            s.calls, s.call_time, s.memory_bytes
        );
        assert_eq!(s.name, "cubic");
        assert_eq!((s.instances, s.max_instances), (1, 0), "{s:?}");
        assert_eq!(s.memory_bytes.len(), 1);
        assert!(s.calls >= 2, "constructor and initial window: {s:?}");
        // The host shows the policy's own status (late ACKs may add calls).
        assert!(cubic.status().calls >= s.calls);
    });
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
