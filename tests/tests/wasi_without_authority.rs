//! A component importing the WASI interfaces every wasip1-adapted module
//! has (filesystem, environment) loads, and sees nothing through them.

use sockhost::plugins::extension::{ExtensionPlugin, HeaderChange, RequestVerdict};
use sockhost_policy::ImportDecision;
use sockhost_tests::{fixture, request, runtime};

#[test]
fn wasi_filesystem_and_environment_are_linked_without_authority() {
    let (rt, _data) = runtime();
    let loaded = rt
        .load(&fixture("wasi-without-authority"))
        .expect("a component with no-authority WASI imports loads");
    let wasi: Vec<(&str, &ImportDecision)> = loaded
        .imports()
        .iter()
        .filter(|i| i.name.starts_with("wasi:"))
        .map(|i| (i.name.as_str(), &i.decision))
        .collect();
    assert_eq!(wasi.len(), 3, "{wasi:?}");
    for (name, decision) in &wasi {
        assert!(
            matches!(decision, ImportDecision::NoAuthority { .. }),
            "{name}: {decision:?}"
        );
    }

    let mut p = ExtensionPlugin::start(loaded).unwrap();
    let r = p.on_request(&request(1, "https://www.example.com/"));
    assert!(r.error.is_none(), "{:?}", r.error);
    let RequestVerdict::Proceed(changes) = r.verdict else {
        panic!("expected proceed, got {:?}", r.verdict);
    };
    let seen = changes
        .iter()
        .find_map(|c| match c {
            HeaderChange::Set(h) if h.name == "x-wasi-view" => {
                Some(String::from_utf8_lossy(&h.value).into_owned())
            }
            _ => None,
        })
        .expect("the fixture reports what WASI showed it");
    assert_eq!(seen, "preopens=0 env=0 args=0 cwd=none");
}
