//! The crash reporter on a real daemon: a panic (asked for through the
//! control API's debug endpoint, as Firefox's about:crashparent does) writes
//! a report to the state directory and ends the process with exit code 70;
//! the next daemon counts it as a crash since the last start, in its status
//! and in `sockhost status`; the one after that no longer does.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use sockhost_tests::daemon::Daemon;
use sockhost_tests::sockhost_bin;

fn crashes(daemon: &Daemon) -> serde_json::Value {
    let (code, body) = daemon.control_api("GET", "/v1/status");
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    status["process"]["crashes"].clone()
}

#[test]
fn a_panic_leaves_a_report_exits_70_and_the_next_start_tells() {
    let mut first = Daemon::start(&["--debug-crash-endpoint".into()]);
    assert_eq!(crashes(&first)["total"], 0);
    // Without the flag the endpoint does not exist (checked on the second).
    let (code, _) = first.control_api("POST", "/v1/debug/crash");
    assert_eq!(code, 0, "the daemon answered instead of crashing");
    let exit = first
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon ends after a panic");
    assert_eq!(
        exit.code(),
        Some(70),
        "{exit:?} (signal {:?})",
        exit.signal()
    );
    let log = first.log();
    let reports: Vec<_> = std::fs::read_dir(first.dir.path().join("state/sockhost/crashes"))
        .expect("the crash folder")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = std::fs::read_to_string(&reports[0]).unwrap();
    assert!(log.contains(&reports[0].display().to_string()), "{log}");
    assert_eq!(
        std::fs::metadata(&reports[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    for field in [
        "version = \"",
        "generation = 1",
        "message = \"crash requested through the control API",
        "thread = \"",
        "backtrace = ",
    ] {
        assert!(report.contains(field), "{field} missing:\n{report}");
    }

    let second = Daemon::start_in(first.into_dir(), &[]);
    let c = crashes(&second);
    assert_eq!(
        (c["since-last-start"].as_u64(), c["total"].as_u64()),
        (Some(1), Some(1)),
        "{c}"
    );
    assert!(
        c["latest"]["message"]
            .as_str()
            .unwrap()
            .starts_with("crash requested through the control API"),
        "{c}"
    );
    let (code, _) = second.control_api("POST", "/v1/debug/crash");
    assert_eq!(code, 404, "the debug endpoint is off by default");
    let shown = Command::new(sockhost_bin())
        .args(["status", "--control"])
        .arg(&second.control)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{text}");
    let section = text
        .split("Crashes")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        section.lines().any(|l| {
            l.trim_start().starts_with("since the last start") && l.trim_end().ends_with(" 1")
        }),
        "{section}"
    );
    assert!(
        section.contains("crash requested through the control API"),
        "{section}"
    );

    let mut second = second;
    assert!(second.stop().success());
    let third = Daemon::start_in(second.into_dir(), &[]);
    let c = crashes(&third);
    assert_eq!(
        (c["since-last-start"].as_u64(), c["total"].as_u64()),
        (Some(0), Some(1)),
        "{c}"
    );
}
