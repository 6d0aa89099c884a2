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
use sockhost::plugins::extension::ExtensionPlugin;
use sockhost::plugins::PluginRuntime;
use sockhost_tests::{fixture, manifest_with, rt, runtime, set_key};

/// What one hook call takes.
const HOOK: Duration = Duration::from_millis(100);
const TRIES: usize = 3;

fn host(prt: &PluginRuntime, instances: u32) -> Host {
    let m = manifest_with(&fixture("slow-hook"), |t| {
        set_key(t, "limits", "instances", &instances.to_string())
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
