//! Congestion-policy plugins driving sockhost's own QUIC connections:
//! HTTP/3 uploads to the in-repo origin (sockhost sends, so its controller
//! is the one at work), some through a relay that drops 1% of datagrams.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sockhost::host::{FetchRequest, Host, HostBuilder};
use sockhost::net::connection::{ConnectionInfo, VersionPref};
use sockhost::plugins::congestion::{
    wasm_calls, CongestionChoice, CongestionPlugin, CongestionPolicy, ControllerKind,
};
use sockhost::plugins::telemetry::{MetricValue, TelemetryPlugin};
use sockhost::plugins::{FaultKind, PluginRuntime};
use sockhost_policy::HostPattern;
use sockhost_tests::origin::{OriginOptions, TestOrigin};
use sockhost_tests::udp_relay::LossyRelay;
use sockhost_tests::{fixture, plugin, rt, runtime};

const MIB: usize = 1 << 20;
static ZEROS: [u8; 16 * MIB] = [0; 16 * MIB];

fn origin() -> TestOrigin {
    TestOrigin::start(OriginOptions {
        h3: true,
        names: [
            "www.test",
            "cubic.test",
            "newreno.test",
            "one.test",
            "two.test",
        ]
        .map(String::from)
        .to_vec(),
        ..OriginOptions::default()
    })
}

/// A host reaching `name` (any port) at 127.0.0.1 over HTTP/3 only.
fn host(origin: &TestOrigin, names: &[&str], ports: &[u16]) -> HostBuilder {
    let mut b = Host::builder()
        .ca_file(origin.ca_file.clone())
        .no_platform_roots()
        .version(VersionPref::Http3);
    for name in names {
        for port in ports {
            b = b.resolve(format!("{name}:{port}:127.0.0.1").parse().unwrap());
        }
    }
    b
}

fn kind(rt: &PluginRuntime, manifest: &std::path::Path) -> ControllerKind {
    let p = CongestionPlugin::new(rt.load(manifest).unwrap()).unwrap();
    ControllerKind::Plugin(Arc::new(CongestionPolicy::new(p)))
}

/// POSTs `bytes` to `/sink` at `authority`; returns the connection's info
/// and whether it was reused.
async fn upload_on(host: &Host, authority: &str, bytes: usize) -> (Arc<ConnectionInfo>, bool) {
    let mut req = FetchRequest::get(format!("https://{authority}/sink"));
    req.method = http::Method::POST;
    // Bytes::from_static: 16 MiB slices of one static buffer, no copy.
    let mut body = Vec::with_capacity(bytes);
    let mut left = bytes;
    while left > 0 {
        let n = left.min(ZEROS.len());
        body.extend_from_slice(&ZEROS[..n]);
        left -= n;
    }
    req.body = Bytes::from(body).into();
    let r = host.fetch(req).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_3);
    let mut body = r.body;
    let mut text = Vec::new();
    while let Some(c) = body.chunk().await.unwrap() {
        text.extend_from_slice(&c);
    }
    assert_eq!(
        String::from_utf8(text).unwrap(),
        format!("received {bytes} bytes\n")
    );
    (r.connection, r.reused)
}

async fn upload(host: &Host, authority: &str, bytes: usize) -> Arc<ConnectionInfo> {
    upload_on(host, authority, bytes).await.0
}

fn controller(info: &ConnectionInfo) -> (String, Option<String>) {
    let s = info.congestion.as_ref().expect("a QUIC connection");
    (s.controller().to_owned(), s.fault())
}

#[test]
fn both_plugins_drive_real_uploads_through_a_lossy_path() {
    let (runtime, _dir) = runtime();
    let origin = origin();
    let relay = LossyRelay::start(origin.addr, 0.01, 3);
    let port = relay.addr.port();
    let choice = CongestionChoice {
        rules: vec![
            (
                vec![HostPattern::parse("cubic.test").unwrap()],
                kind(&runtime, &plugin("cubic")),
            ),
            (
                vec![HostPattern::parse("newreno.test").unwrap()],
                kind(&runtime, &plugin("newreno")),
            ),
        ],
        ..CongestionChoice::default()
    };
    let host = host(
        &origin,
        &["cubic.test", "newreno.test", "www.test"],
        &[port],
    );
    rt().block_on(async {
        let host = host.congestion(choice).build().unwrap();
        for name in ["cubic", "newreno"] {
            let calls = wasm_calls();
            let info = upload(&host, &format!("{name}.test:{port}"), 32 * MIB).await;
            assert_eq!(controller(&info), (name.to_owned(), None));
            let calls = wasm_calls() - calls;
            // One call per ACK frame: thousands for 32 MiB, not one per packet.
            assert!(calls > 500, "{name}: {calls} calls");
        }
        // Hosts no rule names keep quinn's Cubic.
        let info = upload(&host, &format!("www.test:{port}"), MIB).await;
        assert_eq!(controller(&info), ("native-cubic".to_owned(), None));
    });
    assert!(relay.up_loss() > 0.005, "{}", relay.up_loss());
}

/// A fault ends the plugin for that connection only: it continues under
/// quinn's Cubic from the last sane window, the upload completes, the fault
/// is recorded, probes see it and keep getting samples.
fn falls_back(fixture_name: &str, kind_of_fault: FaultKind, says: &str) {
    let (runtime, _dir) = runtime();
    let origin = origin();
    let port = origin.addr.port();
    let probe = TelemetryPlugin::new(runtime.load(&plugin("congestion-stats")).unwrap()).unwrap();
    let faulty = kind(&runtime, &fixture(fixture_name));
    rt().block_on(async {
        let host = host(&origin, &["www.test"], &[port])
            .congestion(CongestionChoice::all(faulty))
            .probe(probe)
            .fault_log(runtime.faults().clone())
            .build()
            .unwrap();
        let info = upload(&host, &format!("www.test:{port}"), 32 * MIB).await;
        let (name, fault) = controller(&info);
        assert_eq!(name, fixture_name);
        let fault = fault.expect("the plugin stopped driving");
        assert!(fault.contains(says), "{fault}");
        assert_eq!(runtime.faults().count(fixture_name, kind_of_fault), 1);
        host.telemetry().flush(Duration::from_secs(5)).await;
        let metrics = host.telemetry().collect().await;
        let (_, m) = &metrics[0];
        let m = m.as_ref().unwrap();
        let faults = m
            .iter()
            .find(|m| m.name == "plugin_faults_total")
            .expect("the probe saw the fault");
        assert!(faults
            .labels
            .contains(&("plugin".into(), fixture_name.into())));
        let windows = m
            .iter()
            .find(|m| m.name == "congestion_window_bytes")
            .expect("window samples");
        match &windows.value {
            MetricValue::Histogram(h) => assert!(h.counts.iter().sum::<u64>() >= 2),
            v => panic!("{v:?}"),
        }
    });
}

#[test]
fn a_window_of_zero_falls_back_and_the_upload_completes() {
    falls_back("absurd-congestion", FaultKind::InvalidResult, "window of 0");
}

#[test]
fn a_panicking_controller_falls_back_and_the_upload_completes() {
    falls_back("congestion-panics", FaultKind::Panic, "one too many");
}

#[test]
fn a_controller_past_its_deadline_falls_back_and_the_upload_completes() {
    falls_back("congestion-spins", FaultKind::Deadline, "budget");
}

#[test]
fn a_new_choice_applies_to_new_connections_while_open_ones_keep_theirs() {
    let (runtime, _dir) = runtime();
    let origin = origin();
    let port = origin.addr.port();
    let newreno = kind(&runtime, &plugin("newreno"));
    let cubic = kind(&runtime, &plugin("cubic"));
    rt().block_on(async {
        let host = host(&origin, &["one.test", "two.test"], &[port])
            .congestion(CongestionChoice::all(newreno))
            .build()
            .unwrap();
        let (first, _) = upload_on(&host, &format!("one.test:{port}"), 8 * MIB).await;
        host.set_congestion(CongestionChoice::all(cubic));
        // The open connection carries on under the controller it has...
        let (again, reused) = upload_on(&host, &format!("one.test:{port}"), 8 * MIB).await;
        assert!(reused, "the first connection is still open");
        // ...and a new one gets the new choice.
        let (second, reused) = upload_on(&host, &format!("two.test:{port}"), 8 * MIB).await;
        assert!(!reused);
        assert_eq!(controller(&first), ("newreno".to_owned(), None));
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(controller(&second), ("cubic".to_owned(), None));
        assert_eq!(host.congestion().default.name(), "cubic");
    });
}
