//! Hostile plugins, built by plugins/build.sh like any other, against the
//! real runtime: each fault ends that call and that instance, never the
//! process; faults are recorded; restart then disable works; other plugins
//! keep answering throughout; absurd answers are refused; what a plugin
//! imports but may not reach (sockets, storage) fails at every call.

use std::time::{Duration, Instant};

use sockhost::plugins::congestion::{
    AckFrame, AckSample, CongestionCause, CongestionEvent, CongestionPlugin, ControllerConfig,
    ControllerError, RttEstimate,
};
use sockhost::plugins::extension::{ExtensionPlugin, HeaderChange, RequestVerdict, ResourceType};
use sockhost::plugins::supervisor::FIRST_BACKOFF;
use sockhost::plugins::{CallError, FaultAction, FaultKind, LoadedPlugin, PluginRuntime};
use sockhost_policy::ImportDecision;
use sockhost_tests::{fixture, manifest_with, plugin, request, runtime, set_key};

fn fault_kind(e: &Option<CallError>) -> Option<FaultKind> {
    e.as_ref().and_then(|e| e.fault()).map(|f| f.kind)
}

/// The blocklist keeps working next to a hostile plugin.
fn blocklist(rt: &PluginRuntime) -> ExtensionPlugin {
    ExtensionPlugin::start(rt.load(&plugin("blocklist")).expect("blocklist loads"))
        .expect("blocklist starts")
}

fn assert_blocklist_works(b: &mut ExtensionPlugin) {
    let r = b.on_request(&request(1, "https://www.example.com/"));
    assert!(r.error.is_none(), "blocklist faulted: {:?}", r.error);
    assert!(matches!(r.verdict, RequestVerdict::Proceed(_)));
    assert!(!b.is_disabled());
}

#[test]
fn deadline_stops_an_infinite_loop_within_its_budget() {
    let (rt, _d) = runtime();
    let loaded = rt.load(&fixture("spin-forever")).unwrap();
    let budget = loaded.manifest().limits.call_budget;
    let mut p = ExtensionPlugin::start(loaded).unwrap();
    let mut other = blocklist(&rt);
    let started = Instant::now();
    let r = p.on_request(&request(1, "https://www.example.com/"));
    let took = started.elapsed();
    assert_eq!(
        fault_kind(&r.error),
        Some(FaultKind::Deadline),
        "{:?}",
        r.error
    );
    assert!(
        took >= budget,
        "stopped after {took:?}, before its budget {budget:?}"
    );
    // The deadline fires within one epoch tick of the budget; the slack is
    // for a loaded CI machine descheduling the thread.
    assert!(
        took < budget + Duration::from_millis(250),
        "stopped after {took:?} for a budget of {budget:?}"
    );
    // fail-open: the request goes on.
    assert!(matches!(r.verdict, RequestVerdict::Proceed(_)));
    assert_blocklist_works(&mut other);
}

#[test]
fn unbounded_allocation_fails_cleanly_as_a_memory_fault() {
    let (rt, _d) = runtime();
    // The fixture's own 20 ms budget can run out before 4 MiB is touched
    // when the machine is busy; this test is about the memory limit, so the
    // deadline is moved out of its way.
    let m = manifest_with(&fixture("alloc-unbounded"), |t| {
        set_key(t, "limits", "call-budget", "\"1s\"")
    });
    let mut p = ExtensionPlugin::start(rt.load_manifest(m).unwrap()).unwrap();
    let mut other = blocklist(&rt);
    let r = p.on_request(&request(1, "https://www.example.com/"));
    assert_eq!(
        fault_kind(&r.error),
        Some(FaultKind::Memory),
        "{:?}",
        r.error
    );
    let f = r.error.as_ref().unwrap().fault().unwrap();
    assert!(f.message.contains("memory limit of 4 MiB"), "{}", f.message);
    assert_eq!(rt.faults().count("alloc-unbounded", FaultKind::Memory), 1);
    assert_blocklist_works(&mut other);
}

#[test]
fn a_panic_is_recorded_with_its_message_then_restart_then_disable() {
    let (rt, _d) = runtime();
    let loaded = rt.load(&fixture("panics")).unwrap();
    let limit = loaded.manifest().limits.restart_limit;
    let mut p = ExtensionPlugin::start(loaded).unwrap();
    let mut other = blocklist(&rt);
    for i in 0..=limit {
        let r = p.on_request(&request(u64::from(i), "https://www.example.com/"));
        let f = r.error.as_ref().and_then(|e| e.fault()).expect("a fault");
        assert_eq!(f.kind, FaultKind::Panic);
        assert!(f.message.contains("panicked at"), "{}", f.message);
        if i < limit {
            assert_eq!(f.action, FaultAction::Restarted, "fault {i}");
        } else {
            assert!(
                matches!(f.action, FaultAction::Disabled { .. }),
                "fault {i}: {:?}",
                f.action
            );
        }
        assert_blocklist_works(&mut other);
    }
    assert!(p.is_disabled());
    // Disabled: the call never enters the plugin and the on-fault rule
    // answers.
    let r = p.on_request(&request(99, "https://www.example.com/"));
    assert!(matches!(r.error, Some(CallError::Disabled { .. })));
    assert!(matches!(r.verdict, RequestVerdict::Proceed(_)));
    assert_eq!(
        rt.faults().count("panics", FaultKind::Panic),
        u64::from(limit) + 1
    );
    let recent = rt.faults().recent();
    assert_eq!(recent.len(), limit as usize + 1);
}

/// The fault budget is a rate and disabling is not for good: over budget,
/// the plugin is off for a backoff, then the first call gets a fresh
/// instance with a fresh budget; over budget again, it is off twice as
/// long. With `on-disable = "stay-disabled"` it stays off.
#[test]
fn a_disabled_extension_is_retried_after_its_backoff_unless_it_stays_disabled() {
    let (rt, _d) = runtime();
    let panics = |on_disable: &str| {
        let m = manifest_with(&fixture("panics"), |t| {
            let t = set_key(t, "limits", "restart-limit", "1");
            let t = set_key(t, "limits", "restart-window", "\"60s\"");
            set_key(t, "limits", "on-disable", &format!("{on_disable:?}"))
        });
        ExtensionPlugin::start(rt.load_manifest(m).unwrap()).unwrap()
    };
    let mut retried = panics("retry");
    let mut stays = panics("stay-disabled");
    let www = |id| request(id, "https://www.example.com/");
    let action = |p: &mut ExtensionPlugin, id| {
        let r = p.on_request(&www(id));
        match r.error {
            Some(CallError::Fault(f)) => Some(f.action),
            Some(CallError::Disabled { .. }) => None,
            None => panic!("panics answered without a fault"),
        }
    };

    for p in [&mut retried, &mut stays] {
        assert_eq!(action(p, 1), Some(FaultAction::Restarted));
    }
    let before = std::time::SystemTime::now();
    let fault = action(&mut retried, 2);
    let after = std::time::SystemTime::now();
    match fault {
        Some(FaultAction::Disabled { backoff, until }) => {
            assert_eq!(backoff, FIRST_BACKOFF);
            // `until` is the fault's time plus the backoff.
            assert!(until >= before + backoff && until <= after + backoff);
        }
        other => panic!("expected a backoff, got {other:?}"),
    }
    assert_eq!(
        action(&mut stays, 2),
        Some(FaultAction::DisabledUntilReload)
    );
    for p in [&mut retried, &mut stays] {
        assert!(p.is_disabled() && p.shared().is_disabled());
        assert!(!p.wants_request("www.example.com", "GET", ResourceType::Document));
        assert_eq!(action(p, 3), None, "a disabled plugin was called");
        assert_eq!(p.supervised().restarts(), 1);
    }

    std::thread::sleep(FIRST_BACKOFF + Duration::from_millis(50));
    assert!(!retried.is_disabled() && !retried.shared().is_disabled());
    assert!(retried.wants_request("www.example.com", "GET", ResourceType::Document));
    // Back: a fresh instance (a restart) and a fresh budget, so its first
    // fault restarts it again.
    assert_eq!(action(&mut retried, 4), Some(FaultAction::Restarted));
    assert_eq!(retried.supervised().restarts(), 3);
    match action(&mut retried, 5) {
        Some(FaultAction::Disabled { backoff, .. }) => assert_eq!(backoff, 2 * FIRST_BACKOFF),
        other => panic!("expected a longer backoff, got {other:?}"),
    }
    assert!(retried.is_disabled());

    assert!(stays.is_disabled() && stays.shared().is_disabled());
    assert_eq!(action(&mut stays, 4), None, "stay-disabled came back");
    assert_eq!(rt.faults().count("panics", FaultKind::Panic), 4 + 2);
}

#[test]
fn fail_closed_cancels_the_request_naming_the_fault() {
    let (rt, _d) = runtime();
    let path = fixture("panics");
    let m = manifest_with(&path, |t| {
        set_key(t, "limits", "on-fault", "\"fail-closed\"")
    });
    let mut p = ExtensionPlugin::start(rt.load_manifest(m).unwrap()).unwrap();
    let r = p.on_request(&request(1, "https://www.example.com/"));
    match &r.verdict {
        // The extension's name is the cancel's (FetchError::Blocked says it).
        RequestVerdict::Cancel(reason) => {
            assert_eq!(reason, "it failed (panic) and fails closed")
        }
        v => panic!("expected a cancel, got {v:?}"),
    }
}

/// Sends `n` requests through `p`; each must proceed, setting request
/// header `name`: its values, in order.
fn header_of_each(p: &mut ExtensionPlugin, name: &str, n: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let r = p.on_request(&request(i, "https://www.example.com/"));
            assert!(r.error.is_none(), "{:?}", r.error);
            let RequestVerdict::Proceed(changes) = &r.verdict else {
                panic!("expected proceed, got {:?}", r.verdict);
            };
            changes
                .iter()
                .find_map(|c| match c {
                    HeaderChange::Set(h) if h.name == name => {
                        Some(String::from_utf8_lossy(&h.value).into_owned())
                    }
                    _ => None,
                })
                .unwrap_or_else(|| panic!("request {i}: no {name} header"))
        })
        .collect()
}

/// Three requests through `loaded`: each proceeds, its hook reporting
/// `expected` in request header `name`, and the plugin stays enabled.
fn every_request_goes_on_seeing(loaded: LoadedPlugin, name: &str, expected: &str) {
    let mut p = ExtensionPlugin::start(loaded).unwrap();
    for seen in header_of_each(&mut p, name, 3) {
        assert_eq!(seen, expected);
    }
    assert!(!p.is_disabled());
}

#[test]
fn an_ungranted_storage_import_loads_and_every_write_fails_as_not_granted() {
    let (rt, data) = runtime();
    let loaded = rt
        .load(&fixture("storage-ungranted"))
        .expect("storage without a grant is linked without authority");
    let storage = loaded
        .imports()
        .iter()
        .find(|i| i.name == "sockhost:plugin/storage@0.1.0")
        .expect("the fixture imports storage");
    assert!(
        matches!(&storage.decision, ImportDecision::NoAuthority { why } if why.starts_with("storage not granted")),
        "{:?}",
        storage.decision
    );
    every_request_goes_on_seeing(
        loaded,
        "x-stored",
        "io: storage not granted: plugin.toml sets no capabilities.storage-quota",
    );
    assert!(
        !data.path().join("plugins/storage-ungranted").exists(),
        "nothing may be stored without a grant"
    );
}

#[test]
fn the_same_storage_import_loads_once_granted_and_its_quota_holds() {
    let (rt, data) = runtime();
    let path = fixture("storage-ungranted");
    let m = manifest_with(&path, |t| {
        set_key(t, "capabilities", "storage-quota", "\"64 B\"")
    });
    let mut p = ExtensionPlugin::start(rt.load_manifest(m).unwrap()).unwrap();
    let stored = header_of_each(&mut p, "x-stored", 20);
    assert_eq!(stored[0], "ok");
    assert_eq!(stored[19], "StorageError::QuotaExceeded");
    // Whatever the fixture wrote stays within its quota, in its own folder.
    let dir = data.path().join("plugins/storage-ungranted/storage");
    let used: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            e.file_name().len() as u64 + e.metadata().unwrap().len()
        })
        .sum();
    assert!(used > 0, "nothing was stored in {}", dir.display());
    assert!(used <= 64, "{used} bytes stored over a 64-byte quota");
}

#[test]
fn every_socket_and_name_lookup_is_access_denied_and_the_hook_goes_on() {
    let (rt, _d) = runtime();
    let loaded = rt
        .load(&fixture("wants-sockets"))
        .expect("wasi:sockets is linked without authority");
    let sockets: Vec<_> = loaded
        .imports()
        .iter()
        .filter(|i| i.name.starts_with("wasi:sockets/"))
        .collect();
    // network, instance-network, tcp, tcp-create-socket, udp,
    // udp-create-socket, ip-name-lookup.
    assert_eq!(sockets.len(), 7, "{sockets:?}");
    for i in &sockets {
        assert!(
            matches!(&i.decision, ImportDecision::NoAuthority { why } if why.contains("access-denied")),
            "{}: {:?}",
            i.name,
            i.decision
        );
    }
    every_request_goes_on_seeing(
        loaded,
        "x-sockets",
        "tcp=access-denied udp=access-denied lookup=access-denied",
    );
}

#[test]
fn a_redirect_to_a_non_url_is_refused_and_recorded() {
    let (rt, _d) = runtime();
    let mut p = ExtensionPlugin::start(rt.load(&fixture("absurd-extension")).unwrap()).unwrap();
    let r = p.on_request(&request(1, "https://www.example.com/"));
    assert_eq!(
        fault_kind(&r.error),
        Some(FaultKind::InvalidResult),
        "{:?}",
        r.error
    );
    assert!(
        matches!(r.verdict, RequestVerdict::Proceed(_)),
        "fail-open proceeds"
    );
    assert_eq!(
        rt.faults()
            .count("absurd-extension", FaultKind::InvalidResult),
        1
    );
}

fn config() -> ControllerConfig {
    ControllerConfig {
        max_datagram_size: 1200,
        initial_window: 12_000,
        minimum_window: 2400,
        maximum_window: 64 << 20,
        now: 0,
    }
}

fn frame(now: u64) -> AckFrame {
    AckFrame {
        now,
        largest_acked: 1,
        largest_sent: 1,
        rtt: RttEstimate {
            latest: 20_000,
            smoothed: 20_000,
            min: 20_000,
        },
        bytes_in_flight: 0,
        app_limited: false,
    }
}

#[test]
fn absurd_congestion_windows_are_refused_and_the_last_sane_window_kept() {
    let (rt, _d) = runtime();
    let mut p = CongestionPlugin::new(rt.load(&fixture("absurd-congestion")).unwrap()).unwrap();
    let mut h = p.new_controller(config()).unwrap();
    let sane = h.last_sane();
    assert!(sane.window >= 2400);
    let ack = [AckSample {
        sent: 0,
        bytes: 1200,
    }];
    // Window 0 from on-ack.
    let e = p.on_ack(&mut h, frame(20_000), &ack).unwrap_err();
    match e {
        ControllerError::Call(CallError::Fault(f)) => {
            assert_eq!(f.kind, FaultKind::InvalidResult);
            assert!(f.message.contains("window of 0"), "{}", f.message);
        }
        e => panic!("expected an invalid-result fault, got {e}"),
    }
    assert_eq!(
        (h.last_sane().window, h.last_sane().pacing_rate),
        (sane.window, sane.pacing_rate),
        "the last sane window is kept for the fallback"
    );
    // The instance was restarted, so the old controller is gone...
    assert!(matches!(
        p.on_ack(&mut h, frame(21_000), &ack),
        Err(ControllerError::Lost)
    ));
    // ...and a new connection gets a new one, whose u64::MAX is refused too.
    let mut h2 = p.new_controller(config()).unwrap();
    let event = CongestionEvent {
        cause: CongestionCause::Loss,
        sent: 0,
        lost_bytes: 1200,
        persistent_congestion: false,
    };
    let e = p.on_congestion_event(&mut h2, 30_000, event).unwrap_err();
    assert!(e.to_string().contains(&u64::MAX.to_string()), "{e}");
    assert_eq!(
        rt.faults()
            .count("absurd-congestion", FaultKind::InvalidResult),
        2
    );
}

#[test]
fn the_first_party_newreno_drives_a_window_sanely() {
    let (rt, _d) = runtime();
    let mut p = CongestionPlugin::new(rt.load(&plugin("newreno")).unwrap()).unwrap();
    let mut h = p.new_controller(config()).unwrap();
    assert_eq!(h.last_sane().window, 12_000);
    let acks: Vec<AckSample> = (0..10)
        .map(|i| AckSample {
            sent: 1000 + i,
            bytes: 1200,
        })
        .collect();
    // Slow start: the window grows by the bytes acknowledged.
    let w = p.on_ack(&mut h, frame(30_000), &acks).unwrap();
    assert_eq!(w.window, 24_000);
    let w = p
        .on_congestion_event(
            &mut h,
            40_000,
            CongestionEvent {
                cause: CongestionCause::Loss,
                sent: 35_000,
                lost_bytes: 1200,
                persistent_congestion: false,
            },
        )
        .unwrap();
    assert_eq!(w.window, 12_000, "halved on loss");
}
