//! `sockhost plugin check`: accepts every first-party plugin, shows what is
//! linked without authority, and refuses each broken or hostile plugin with
//! a one-line reason that names it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn check(manifest: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sockhost"))
        .args(["plugin", "check", "--no-cache"])
        .arg(manifest)
        .env("SOCKHOST_LOG", "off")
        .output()
        .expect("sockhost runs")
}

fn stderr_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    err
}

/// Writes `component` and a manifest for it (world `world`, pinned to its
/// real hash unless `sha` is given) into a fresh directory.
fn plugin_dir(component: &[u8], world: &str, sha: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.wasm"), component).unwrap();
    let sha = sha.map_or_else(|| hex::encode(Sha256::digest(component)), str::to_owned);
    let manifest = dir.path().join("plugin.toml");
    std::fs::write(
        &manifest,
        format!(
            "[plugin]\nname = \"case\"\nversion = \"0.1.0\"\nworld = \"{world}\"\ncomponent = \"c.wasm\"\nsha256 = \"{sha}\"\n"
        ),
    )
    .unwrap();
    (dir, manifest)
}

fn component(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap()
}

#[test]
fn accepts_the_first_party_plugins() {
    for (name, world) in [
        ("blocklist", "extension"),
        ("request-stats", "telemetry-probe"),
        ("newreno", "congestion-policy"),
        ("happy-eyeballs", "connect-policy"),
    ] {
        let out = check(&repo().join("plugins").join(name).join("plugin.toml"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("world      {world} (sockhost:plugin@0.1.0)")),
            "{stdout}"
        );
        assert!(
            stdout.contains("wit        built against 0.1.0, the latest"),
            "{stdout}"
        );
        assert!(stdout.contains("sockhost:plugin/log@0.1.0"), "{stdout}");
        assert!(stdout.contains("granted: "), "{stdout}");
        assert!(stdout.contains("smoke "), "{stdout}");
        assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
    }
}

#[test]
fn refuses_each_hostile_fixture_for_its_reason() {
    let fixtures = repo().join("plugins").join("fixtures");
    for (name, reason) in [
        ("spin-forever", "deadline"),
        ("alloc-unbounded", "memory limit of 4 MiB exceeded"),
        ("panics", "panic"),
        ("absurd-congestion", "window of 0"),
        ("absurd-extension", "is not a URL"),
    ] {
        let out = check(&fixtures.join(name).join("plugin.toml"));
        assert!(!out.status.success(), "{name} was accepted");
        let err = stderr_line(&out);
        assert!(
            err.contains(reason),
            "{name}: {err:?} should say {reason:?}"
        );
    }
}

#[test]
fn refuses_an_unreadable_or_invalid_manifest() {
    let out = check(Path::new("/nonexistent/plugin.toml"));
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("/nonexistent/plugin.toml"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("plugin.toml");
    std::fs::write(&bad, "[plugin\nname = ").unwrap();
    let out = check(&bad);
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("plugin.toml"));
}

#[test]
fn refuses_a_hash_mismatch() {
    let c = component(r#"(component)"#);
    let (_d, m) = plugin_dir(&c, "extension", Some(&"ab".repeat(32)));
    let out = check(&m);
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("sha256 mismatch"));
}

#[test]
fn refuses_a_core_module_and_non_wasm() {
    let (_d, m) = plugin_dir(b"\0asm\x01\0\0\0", "extension", None);
    let out = check(&m);
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("is a core module"));

    let (_d, m) = plugin_dir(b"#!/bin/sh\necho hi\n", "extension", None);
    let out = check(&m);
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("not a WebAssembly component"));
}

#[test]
fn refuses_the_wrong_world_and_an_unknown_wit_version() {
    let congestion = component(
        r#"(component (instance $i) (export "sockhost:plugin/congestion@0.1.0" (instance $i)))"#,
    );
    let (_d, m) = plugin_dir(&congestion, "extension", None);
    let out = check(&m);
    assert!(!out.status.success());
    let err = stderr_line(&out);
    assert!(err.contains("does not implement world extension"), "{err}");
    assert!(err.contains("sockhost:plugin/add-on"), "{err}");

    let future = component(
        r#"(component (instance $i) (export "sockhost:plugin/add-on@9.0.0" (instance $i)))"#,
    );
    let (_d, m) = plugin_dir(&future, "extension", None);
    let out = check(&m);
    assert!(!out.status.success());
    let err = stderr_line(&out);
    assert!(err.contains("sockhost:plugin@9.0.0"), "{err}");
    assert!(err.contains("this host knows 0.1.0"), "{err}");
}

#[test]
fn refuses_a_component_that_mixes_wit_versions() {
    let mixed = component(
        r#"(component
            (import "sockhost:plugin/log@9.0.0" (instance))
            (instance $i)
            (export "sockhost:plugin/add-on@0.1.0" (instance $i)))"#,
    );
    let (_d, m) = plugin_dir(&mixed, "extension", None);
    let out = check(&m);
    assert!(!out.status.success());
    let err = stderr_line(&out);
    assert!(
        err.contains("c.wasm: mixes versions of sockhost:plugin"),
        "{err}"
    );
    assert!(
        err.contains("0.1.0 (sockhost:plugin/add-on@0.1.0)"),
        "{err}"
    );
    assert!(err.contains("9.0.0 (sockhost:plugin/log@9.0.0)"), "{err}");
}

#[test]
fn shows_what_is_linked_without_authority() {
    let fixtures = repo().join("plugins").join("fixtures");
    let no_authority = "linked without authority: ";
    let sockets = "every socket creation and name lookup fails with access-denied";
    for (name, imports) in [
        (
            "storage-ungranted",
            &[("sockhost:plugin/storage@0.1.0", "storage not granted")][..],
        ),
        (
            "wants-sockets",
            &[
                ("wasi:sockets/tcp-create-socket@0.2.0", sockets),
                ("wasi:sockets/udp-create-socket@0.2.0", sockets),
                ("wasi:sockets/ip-name-lookup@0.2.0", sockets),
                ("wasi:sockets/network@0.2.0", sockets),
            ][..],
        ),
        (
            "wasi-without-authority",
            &[("wasi:filesystem/preopens@0.2.0", "no preopened directories")][..],
        ),
    ] {
        let out = check(&fixtures.join(name).join("plugin.toml"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (import, why) in imports {
            let line = stdout
                .lines()
                .find_map(|l| l.trim_start().strip_prefix(import))
                .unwrap_or_else(|| panic!("{name}: no line for {import} in\n{stdout}"));
            assert!(
                line.trim_start()
                    .starts_with(&format!("{no_authority}{why}")),
                "{name}: {import}{line}"
            );
        }
        assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
    }
}

#[test]
fn refuses_unknown_interfaces_and_versions_from_a_hand_written_component() {
    for (import, reason) in [
        (
            "wasi:sockets/raw@0.2.0",
            "sockhost does not provide wasi:sockets/raw",
        ),
        ("wasi:sockets/tcp@0.3.0", "only WASI 0.2 is provided"),
        ("wasi:sockets/tcp", "only WASI 0.2 is provided"),
        (
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:http is never granted",
        ),
        (
            "wasi:keyvalue/store@0.2.0",
            "sockhost does not provide wasi:keyvalue/store",
        ),
        (
            "sockhost:plugin/fetch@0.1.0",
            "sockhost:plugin@0.1.0 has no interface \"fetch\"",
        ),
        (
            "acme:evil/thing@1.0.0",
            "sockhost does not provide acme:evil",
        ),
    ] {
        let c = component(&format!(
            r#"(component
                (import "{import}" (instance))
                (instance $i)
                (export "sockhost:plugin/add-on@0.1.0" (instance $i)))"#
        ));
        let (_d, m) = plugin_dir(&c, "extension", None);
        let out = check(&m);
        assert!(!out.status.success(), "{import} was accepted");
        let err = stderr_line(&out);
        assert!(
            err.contains(&format!("import {import} refused: {reason}")),
            "{err}"
        );
    }
}
