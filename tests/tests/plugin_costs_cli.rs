//! What a plugin costs, as a user sees it from the command line:
//! `sockhost plugin compile` puts a component in the compile cache so that
//! `plugin check` (and start-up) loads it from there, `plugin check` says
//! where its time went, and `sockhost bench plugins --manifest` prints a
//! row of figures per plugin.

use std::path::Path;
use std::process::{Command, Output};

use sockhost_tests::{fixture, plugin, repo, sockhost_bin};

fn sockhost(args: &[&str], cache_home: &Path) -> Output {
    let out = Command::new(sockhost_bin())
        .args(args)
        .current_dir(repo())
        .env("XDG_CACHE_HOME", cache_home)
        .env("XDG_DATA_HOME", cache_home.join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sockhost {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn compile_ahead_then_check_loads_from_the_cache() {
    let home = tempfile::tempdir().unwrap();
    let manifest = plugin("blocklist");
    let manifest = manifest.to_str().unwrap();

    let compiled = stdout(&sockhost(&["plugin", "compile", manifest], home.path()));
    let cache = home.path().join("sockhost").join("wasm");
    assert!(
        compiled.contains(&format!("compile cache {}", cache.display())),
        "{compiled}"
    );
    assert!(compiled.contains("blocklist 0.1.0"), "{compiled}");
    assert!(compiled.contains("compiled in"), "{compiled}");
    assert!(compiled.contains("(cold)"), "{compiled}");
    assert!(std::fs::read_dir(&cache).unwrap().next().is_some());

    let again = stdout(&sockhost(&["plugin", "compile", manifest], home.path()));
    assert!(again.contains("already in the cache"), "{again}");

    let checked = stdout(&sockhost(&["plugin", "check", manifest], home.path()));
    let compile = checked
        .lines()
        .find(|l| l.starts_with("compile "))
        .unwrap_or_else(|| panic!("no compile line: {checked}"));
    assert!(compile.ends_with("(from cache)"), "{checked}");
    let time = checked
        .lines()
        .find(|l| l.starts_with("time "))
        .unwrap_or_else(|| panic!("no time line: {checked}"));
    for part in [
        "compile ",
        "from cache",
        "instantiate ",
        "init ",
        "smoke calls ",
    ] {
        assert!(time.contains(part), "{part:?} missing: {time}");
    }
    assert!(
        !time.contains("init -"),
        "an extension's init is timed: {time}"
    );

    // Without the cache the same check compiles cold and says so.
    let cold = stdout(&sockhost(
        &["plugin", "check", manifest, "--no-cache"],
        home.path(),
    ));
    assert!(cold.contains("(cold, no cache)"), "{cold}");
    assert!(
        cold.contains("time       compile ") && cold.contains(" cold,"),
        "{cold}"
    );
}

#[test]
fn compile_refuses_a_missing_manifest_in_one_line() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(sockhost_bin())
        .args(["plugin", "compile", "no/such/plugin.toml"])
        .env("XDG_CACHE_HOME", home.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no/such/plugin.toml"), "{err}");
}

#[test]
fn bench_prints_a_row_per_manifest_with_the_targets() {
    let home = tempfile::tempdir().unwrap();
    let out = stdout(&sockhost(
        &[
            "bench",
            "plugins",
            "--manifest",
            plugin("blocklist").to_str().unwrap(),
            "--manifest",
            plugin("request-stats").to_str().unwrap(),
            "--iterations",
            "20",
        ],
        home.path(),
    ));
    assert!(out.contains("instantiation <= 1.0 ms"), "{out}");
    assert!(out.contains("on-request hook <= 50.0 µs"), "{out}");
    let row = |name: &str| -> Vec<String> {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}: {out}"));
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let blocklist = row("blocklist");
    assert_eq!(blocklist[1], "extension", "{blocklist:?}");
    // Every figure is present: compile cold, from cache (a hit),
    // instantiate, on-request (the hook was entered), memory twice.
    assert!(
        !blocklist.iter().any(|c| c == "-" || c == "no hit"),
        "{blocklist:?}"
    );
    assert!(!out.contains("not entered"), "{out}");
    let stats = row("request-stats");
    assert_eq!(stats[1], "telemetry-probe", "{stats:?}");
    // A probe has no on-request hook, and so no memory after one.
    assert_eq!(stats.iter().filter(|c| *c == "-").count(), 2, "{stats:?}");
    // The bench leaves no cache behind in the user's cache directory.
    assert!(!home.path().join("sockhost").exists());
}

#[test]
fn bench_reports_a_faulting_plugin_as_a_row_and_measures_the_rest() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(sockhost_bin())
        .args([
            "bench",
            "plugins",
            "--iterations",
            "20",
            "--manifest",
            fixture("panics").to_str().unwrap(),
            "--manifest",
            plugin("blocklist").to_str().unwrap(),
            "--manifest",
            "no/such/plugin.toml",
        ])
        .current_dir(repo())
        .env("XDG_CACHE_HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains("2 of 3 plugins faulted") && stderr.contains("panics"),
        "{stderr}"
    );
    let line = |start: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?}: {stdout}"))
            .to_owned()
    };
    // The panicking hook was loaded and instantiated, then faulted on its
    // first call.
    let panics = line("panics ");
    assert!(
        panics.contains("extension") && panics.contains("faulted"),
        "{panics}"
    );
    assert!(
        line("  panics: faulted during an on-request call: call 1 of 20").contains("panic"),
        "{stdout}"
    );
    // The plugin after it was measured in full.
    let blocklist = line("blocklist ");
    assert!(!blocklist.contains("faulted"), "{blocklist}");
    assert!(blocklist.contains("µs"), "{blocklist}");
    // A manifest that does not exist is a row named by its path.
    assert!(line("no/such/plugin.toml ").contains("faulted"), "{stdout}");
    assert!(
        line("  no/such/plugin.toml: faulted during loading").contains("no/such/plugin.toml"),
        "{stdout}"
    );
}
