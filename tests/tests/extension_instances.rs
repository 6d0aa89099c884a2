//! Several instances per extension: two requests at once into an extension
//! whose hook takes 100 ms finish in about 100 ms with `instances = 2`, and
//! take 200 ms with `instances = 1` (the control, in the same test).
//!
//! The fixture's hook sleeps on the WASI monotonic clock its manifest
//! grants rather than spinning: a sleeping call holds its instance without
//! using a CPU, so the times measure how many calls run at once, not how
//! busy the (2-core, shared) machine is. Serialised calls can never finish
//! in less than 200 ms, so the bound of 180 ms discriminates; the best of a
//! few tries absorbs a scheduling hiccup.

use std::time::{Duration, Instant};

use sockhost::host::{FetchError, FetchRequest, Host};
use sockhost::plugins::extension::{ExtensionPlugin, Request, RequestVerdict, ResourceType};
use sockhost::plugins::PluginRuntime;
use sockhost_tests::{fixture, manifest_with, plugin, request, rt, runtime, set_key};

/// What one hook call takes.
const HOOK: Duration = Duration::from_millis(100);
const TRIES: usize = 3;

fn host(prt: &PluginRuntime, instances: u32) -> Host {
    host_with(prt, instances, |t| t)
}

fn host_with(prt: &PluginRuntime, instances: u32, edit: impl FnOnce(String) -> String) -> Host {
    let m = manifest_with(&fixture("slow-hook"), |t| {
        edit(set_key(t, "limits", "instances", &instances.to_string()))
    });
    let ext = ExtensionPlugin::start(prt.load_manifest(m).unwrap()).unwrap();
    Host::builder().extension(ext).build().unwrap()
}

/// One request through the hook, which sleeps `ms` and cancels.
async fn one(h: Host, ms: u128) {
    let url = format!("https://www.test/?sleep-ms={ms}");
    match h.fetch(FetchRequest::get(url)).await {
        Err(FetchError::Blocked { extension, reason }) => {
            assert_eq!(extension, "slow-hook");
            assert!(reason.starts_with(&format!("slept {ms} ms")), "{reason}");
        }
        Ok(r) => panic!("the hook cancels every request, got status {}", r.status),
        Err(e) => panic!("the hook cancels every request, got {e}"),
    }
}

/// The wall time of two requests started at once, each its own task (as
/// the server runs each request); the best of a few tries.
async fn two_at_once(h: &Host, ms: u128) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..TRIES {
        let started = Instant::now();
        let a = tokio::spawn(one(h.clone(), ms));
        let b = tokio::spawn(one(h.clone(), ms));
        a.await.unwrap();
        b.await.unwrap();
        best = best.min(started.elapsed());
    }
    best
}

#[test]
fn two_instances_run_two_slow_hooks_side_by_side() {
    let (prt, _data) = runtime();
    rt().block_on(async {
        let two = host(&prt, 2);
        let one_instance = host(&prt, 1);
        // Both instances of `two` are made and initialised before timing.
        two_at_once(&two, 0).await;

        let ms = HOOK.as_millis();
        let parallel = two_at_once(&two, ms).await;
        let serial = two_at_once(&one_instance, ms).await;
        eprintln!("two {ms} ms hooks at once: {parallel:?} with 2 instances, {serial:?} with 1");
        assert!(
            serial >= 2 * HOOK,
            "with one instance the hooks must wait for each other, took {serial:?}"
        );
        assert!(
            parallel >= HOOK && parallel < HOOK * 9 / 5,
            "with two instances two {ms} ms hooks took {parallel:?}, not about {HOOK:?}"
        );
    });
}

#[test]
fn instances_share_the_rules_and_one_fault_budget() {
    let (prt, _data) = runtime();

    // A further instance runs its own `init` but the rules stay the
    // plugin's: not registered again, the same version for every instance.
    let blocklist = ExtensionPlugin::start(prt.load(&plugin("blocklist")).unwrap()).unwrap();
    let (rules, version) = blocklist.shared().versioned_rules();
    assert!(!rules.is_empty());
    let mut other = blocklist.fork();
    let doc = Request {
        resource_type: ResourceType::Document,
        ..request(1, "https://www.example.com/?utm_source=x&id=7")
    };
    let r = other.on_request(&doc);
    assert!(r.called && r.error.is_none(), "{:?}", r.error);
    assert!(
        matches!(&r.verdict, RequestVerdict::Redirect(to) if to == "https://www.example.com/?id=7"),
        "{:?}",
        r.verdict
    );
    assert_eq!(other.rules_version(), version);
    assert_eq!(blocklist.rules_version(), version);

    // `panics` may restart twice: three faults in three different
    // instances disable the plugin, every instance of it.
    let first = ExtensionPlugin::start(prt.load(&fixture("panics")).unwrap()).unwrap();
    let mut instances = vec![first.fork(), first.fork(), first];
    for (i, p) in instances.iter_mut().enumerate() {
        let r = p.on_request(&request(i as u64, "https://www.example.com/"));
        assert!(r.error.is_some(), "instance {i} did not fault");
    }
    for p in &instances {
        assert!(p.is_disabled() && p.shared().is_disabled());
        assert_eq!(p.supervised().restarts(), 2);
    }
}

#[test]
fn waiting_for_a_busy_instance_is_bounded_and_fail_closed_refuses() {
    let (prt, _data) = runtime();
    // One instance with a 20 ms budget: a request waits at most 4 budgets
    // (80 ms) for it, while the first request's 200 ms hook holds it (and
    // then overruns its budget).
    rt().block_on(async {
        let h = host_with(&prt, 1, |t| {
            let t = set_key(t, "limits", "call-budget", "\"20ms\"");
            set_key(t, "limits", "on-fault", "\"fail-closed\"")
        });
        let fetch = |h: Host| async move {
            let url = "https://www.test/?sleep-ms=200".to_owned();
            match h.fetch(FetchRequest::get(url)).await {
                Err(FetchError::Blocked { extension, reason }) => {
                    assert_eq!(extension, "slow-hook");
                    reason
                }
                other => panic!("fail-closed refuses, got {:?}", other.map(|r| r.status)),
            }
        };
        let started = Instant::now();
        let a = tokio::spawn(fetch(h.clone()));
        let b = tokio::spawn(fetch(h.clone()));
        let reasons = [a.await.unwrap(), b.await.unwrap()];
        eprintln!("{reasons:?} after {:?}", started.elapsed());
        let busy = "is busy (no instance became free within 80ms) and fails closed";
        assert!(
            reasons.iter().any(|r| r.contains(busy)),
            "one request found no free instance: {reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("failed (deadline)")),
            "the other held it past its budget: {reasons:?}"
        );
    });
}
