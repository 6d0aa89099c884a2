//! The crash reporter: a panic anywhere in the daemon writes a report to
//! the state directory's `crashes/` and ends the process with
//! [`EXIT_CODE`], so that the client library or the service manager
//! (`Restart=on-failure`) starts it again; the next run counts the reports
//! written since its previous start ([`record_start`], [`scan`]).
//!
//! A report is a TOML file, `crash-<unix ms>-<pid>.toml`, mode 0600, e.g.
//!
//! ```toml
//! version = "0.1.0"
//! at-unix-ms = 1796108527123
//! at = "2026-12-01T08:22:07.123Z"
//! pid = 4242
//! thread = "tokio-runtime-worker"
//! message = "index out of bounds: the len is 0 but the index is 0"
//! location = "host/src/serve/proxy.rs:120:9"
//! generation = 3
//! backtrace = '''
//!    0: sockhost::control::crash::install::{{closure}}
//! …'''
//! ```
//!
//! It is written to a hidden temporary file and renamed into place, so a
//! reader sees a whole report or none. At most [`KEEP`] are kept, the
//! oldest removed first.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::panic::PanicHookInfo;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::status::{CrashSummary, CrashesStatus};
use crate::serve::access_log::rfc3339;

/// The exit status after a crash: `EX_SOFTWARE` (70, "internal software
/// error" in sysexits.h), which service managers count as a failure.
pub const EXIT_CODE: i32 = 70;

/// Reports kept at most; the oldest go first.
pub const KEEP: usize = 20;

/// The longest panic message kept in a report, in bytes.
pub const MAX_MESSAGE: usize = 4096;

/// The longest backtrace kept in a report, in bytes.
pub const MAX_BACKTRACE: usize = 64 * 1024;

/// A larger file in the crash directory is not read as a report.
const MAX_REPORT_FILE: u64 = 256 * 1024;

/// The file in the state directory holding the daemon's latest start.
pub const LAST_START_FILE: &str = "last-start";

const PREFIX: &str = "crash-";
const SUFFIX: &str = ".toml";

/// Why the state directory is unknown, or a file in it could not be
/// written.
#[derive(Debug, thiserror::Error)]
pub enum CrashError {
    /// Neither variable is set.
    #[error(
        "neither XDG_STATE_HOME nor HOME is set: no state directory for sockhost's crash reports"
    )]
    NoStateDir,
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// One crash report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    /// sockhost's version.
    pub version: String,
    /// When it crashed.
    pub at_unix_ms: u64,
    /// The same, RFC 3339, for people.
    pub at: String,
    /// The crashed process.
    pub pid: u32,
    /// The panicking thread's name, or `<unnamed>`.
    pub thread: String,
    /// The panic message.
    pub message: String,
    /// `file:line:column` of the panic.
    pub location: String,
    /// The config generation in effect.
    pub generation: u64,
    /// The backtrace, as Rust prints it.
    pub backtrace: String,
}

impl Report {
    /// The report of the panic `info`, now, in this thread.
    pub fn of_panic(info: &PanicHookInfo<'_>, generation: u64) -> Report {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(a panic payload that is not a string)");
        let now = SystemTime::now();
        Report {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            at_unix_ms: unix_ms(now),
            at: rfc3339(now),
            pid: std::process::id(),
            thread: std::thread::current()
                .name()
                .unwrap_or("<unnamed>")
                .to_owned(),
            message: truncated(message, MAX_MESSAGE),
            location: info.location().map_or_else(String::new, |l| l.to_string()),
            generation,
            backtrace: truncated(
                &std::backtrace::Backtrace::force_capture().to_string(),
                MAX_BACKTRACE,
            ),
        }
    }

    /// The report's file name: by time first, so that names sort oldest
    /// first.
    pub fn file_name(&self) -> String {
        format!("{PREFIX}{:013}-{}{SUFFIX}", self.at_unix_ms, self.pid)
    }

    fn summary(&self, path: &Path) -> CrashSummary {
        CrashSummary {
            path: path.display().to_string(),
            at_unix_ms: self.at_unix_ms,
            version: self.version.clone(),
            thread: self.thread.clone(),
            message: self.message.lines().next().unwrap_or_default().to_owned(),
            generation: self.generation,
        }
    }
}

/// The daemon's state directory from the environment:
/// `$XDG_STATE_HOME/sockhost`, else `$HOME/.local/state/sockhost`.
pub fn state_dir() -> Result<PathBuf, CrashError> {
    state_dir_from(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
}

/// [`state_dir`] from the two variables' values (an empty one counts as
/// unset, as the XDG base directory specification says).
pub fn state_dir_from(
    xdg_state_home: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf, CrashError> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(state) = set(xdg_state_home) {
        return Ok(state.join("sockhost"));
    }
    let home = set(home).ok_or(CrashError::NoStateDir)?;
    Ok(home.join(".local/state/sockhost"))
}

/// Where crash reports go in `state_dir`.
pub fn crash_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("crashes")
}

/// Set while a report is being written: a second thread panicking then
/// waits for the first to end the process.
static CRASHING: AtomicBool = AtomicBool::new(false);

/// Installs the panic hook: from now on a panic in any thread writes a
/// report to `dir` (created, mode 0700, if missing) with the generation
/// `generation` holds at that moment, prints one line to stderr naming it,
/// and exits with [`EXIT_CODE`].
pub fn install(dir: PathBuf, generation: Arc<AtomicU64>) {
    std::panic::set_hook(Box::new(move |info| {
        if CRASHING.swap(true, Ordering::SeqCst) {
            // Another thread is writing its report and will exit.
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        let report = Report::of_panic(info, generation.load(Ordering::Relaxed));
        // stderr is unbuffered and its lock reentrant: no tracing, whose
        // subscriber's lock the panicking thread may hold.
        let mut stderr = std::io::stderr();
        let line = match write_report(&dir, &report) {
            Ok(path) => format!(
                "sockhost: panicked at {}: {}; crash report: {}",
                report.location,
                report.message.lines().next().unwrap_or_default(),
                path.display()
            ),
            Err(e) => format!(
                "sockhost: panicked at {}: {}; no crash report: {e}",
                report.location, report.message
            ),
        };
        let _ = writeln!(stderr, "{line}");
        std::process::exit(EXIT_CODE);
    }));
}

/// Writes `report` into `dir` (temporary file, then renamed), then removes
/// the oldest reports beyond [`KEEP`]. Returns the report's path.
pub fn write_report(dir: &Path, report: &Report) -> Result<PathBuf, CrashError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CrashError::Io { path, source }
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let path = dir.join(report.file_name());
    let text = toml::to_string(report).unwrap_or_else(|e| format!("# unwritable report: {e}\n"));
    write_atomically(&path, text.as_bytes())?;
    rotate(dir, KEEP);
    Ok(path)
}

/// `bytes` into `path` (mode 0600) through a hidden temporary file beside
/// it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CrashError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    written.map_err(|source| {
        let _ = fs::remove_file(&tmp);
        CrashError::Io {
            path: path.to_owned(),
            source,
        }
    })
}

/// The reports in `dir`, oldest first (by name).
fn report_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            let name = name.to_str()?;
            (name.starts_with(PREFIX) && name.ends_with(SUFFIX)).then(|| dir.join(name))
        })
        .collect();
    files.sort();
    files
}

/// Removes the oldest reports beyond `keep`.
fn rotate(dir: &Path, keep: usize) {
    let files = report_files(dir);
    let extra = files.len().saturating_sub(keep);
    for old in &files[..extra] {
        let _ = fs::remove_file(old);
    }
}

/// Reads one report; `None` when it is not one: not a regular file (a
/// FIFO would block the reader, a link could lead to `/dev/zero`), too
/// large, not TOML, a field missing.
pub fn read_report(path: &Path) -> Option<Report> {
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_REPORT_FILE {
        return None;
    }
    let mut text = String::new();
    fs::File::open(path)
        .ok()?
        .take(MAX_REPORT_FILE)
        .read_to_string(&mut text)
        .ok()?;
    toml::from_str(&text).ok()
}

/// The reports in `dir`: how many, how many were written after
/// `previous_start_unix_ms` (every one when no previous start is known),
/// and the newest. Files that are not reports are skipped.
pub fn scan(dir: &Path, previous_start_unix_ms: Option<u64>) -> CrashesStatus {
    let mut status = CrashesStatus {
        directory: Some(dir.display().to_string()),
        ..CrashesStatus::default()
    };
    let mut latest: Option<(Report, PathBuf)> = None;
    for path in report_files(dir) {
        let Some(report) = read_report(&path) else {
            continue;
        };
        status.total += 1;
        if previous_start_unix_ms.is_none_or(|start| report.at_unix_ms >= start) {
            status.since_last_start += 1;
        }
        if latest
            .as_ref()
            .is_none_or(|(l, _)| report.at_unix_ms >= l.at_unix_ms)
        {
            latest = Some((report, path));
        }
    }
    status.latest = latest.map(|(r, path)| r.summary(&path));
    status
}

/// Records `now_unix_ms` as the daemon's start in `state_dir` and answers
/// the start recorded before it, if any (unreadable counts as none).
pub fn record_start(state_dir: &Path, now_unix_ms: u64) -> Result<Option<u64>, CrashError> {
    let path = state_dir.join(LAST_START_FILE);
    let previous = fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|source| CrashError::Io {
            path: state_dir.to_owned(),
            source,
        })?;
    write_atomically(&path, format!("{now_unix_ms}\n").as_bytes())?;
    Ok(previous)
}

/// `t` in milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncated(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &s[..end], s.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    fn report(at_unix_ms: u64, message: &str) -> Report {
        Report {
            version: "0.1.0".into(),
            at_unix_ms,
            at: rfc3339(UNIX_EPOCH + Duration::from_millis(at_unix_ms)),
            pid: 42,
            thread: "worker".into(),
            message: message.into(),
            location: "src/x.rs:1:2".into(),
            generation: 3,
            backtrace: "   0: a\n             at src/a.rs:1\n   1: b \"quoted\" '''\n".into(),
        }
    }

    #[test]
    fn a_report_is_written_0600_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let crashes = dir.path().join("crashes");
        let r = report(1_000, "boom\nsecond line");
        let path = write_report(&crashes, &r).unwrap();
        assert_eq!(path, crashes.join("crash-0000000001000-42.toml"));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_report(&path), Some(r));
        let names: Vec<_> = fs::read_dir(&crashes).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        let status = scan(&crashes, None);
        let latest = status.latest.unwrap();
        assert_eq!(latest.message, "boom");
        assert_eq!(latest.generation, 3);
        assert_eq!(latest.path, path.display().to_string());
    }

    #[test]
    fn only_the_newest_reports_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..KEEP as u64 + 3 {
            write_report(dir.path(), &report(10_000 + i, "x")).unwrap();
        }
        let files = report_files(dir.path());
        assert_eq!(files.len(), KEEP);
        assert!(
            files[0].ends_with("crash-0000000010003-42.toml"),
            "{files:?}"
        );
    }

    #[test]
    fn corrupt_files_are_skipped_and_crashes_since_the_last_start_counted() {
        let dir = tempfile::tempdir().unwrap();
        for at in [100, 200, 300] {
            write_report(dir.path(), &report(at, &format!("at {at}"))).unwrap();
        }
        fs::write(dir.path().join("crash-0000000000400-1.toml"), "version = [").unwrap();
        fs::write(dir.path().join("crash-0000000000500-1.toml"), b"\xff\xfe").unwrap();
        fs::write(dir.path().join("notes.txt"), "not a report").unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("crash-0000000000600-1.toml"))
            .unwrap();
        let fifo = dir.path().join("crash-0000000000700-1.toml");
        assert!(Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        fs::create_dir(dir.path().join("crash-0000000000800-1.toml")).unwrap();
        let status = scan(dir.path(), Some(200));
        assert_eq!(status.total, 3);
        assert_eq!(status.since_last_start, 2);
        assert_eq!(status.latest.unwrap().message, "at 300");
        assert_eq!(scan(dir.path(), None).since_last_start, 3);
        let missing = scan(&dir.path().join("none"), Some(1));
        assert_eq!((missing.total, missing.latest), (0, None));
    }

    #[test]
    fn the_start_is_recorded_and_the_previous_one_answered() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(record_start(&state, 1_000).unwrap(), None);
        assert_eq!(record_start(&state, 2_000).unwrap(), Some(1_000));
        fs::write(state.join(LAST_START_FILE), "garbage").unwrap();
        assert_eq!(record_start(&state, 3_000).unwrap(), None);
    }

    #[test]
    fn the_state_directory_follows_xdg_then_home() {
        let dir = |x: Option<&str>, h: Option<&str>| {
            state_dir_from(x.map(OsString::from), h.map(OsString::from))
        };
        assert_eq!(
            dir(Some("/s"), Some("/h")).unwrap(),
            PathBuf::from("/s/sockhost")
        );
        assert_eq!(
            dir(Some(""), Some("/h")).unwrap(),
            PathBuf::from("/h/.local/state/sockhost")
        );
        let err = dir(None, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "neither XDG_STATE_HOME nor HOME is set: no state directory for sockhost's crash reports"
        );
        assert_eq!(crash_dir(Path::new("/s")), PathBuf::from("/s/crashes"));
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let cut = truncated(&"é".repeat(10), 5);
        assert_eq!(cut, "éé… (16 bytes cut)");
    }

    const CHILD_DIR: &str = "SOCKHOST_CRASH_TEST_DIR";
    const CHILD_TEST: &str = "control::crash::tests::panicking_child";

    /// Run by [`a_panic_in_a_real_process_writes_a_report_and_exits_70`] in
    /// a child process: installs the hook and panics in a named thread.
    #[test]
    #[ignore = "the child process of a_panic_in_a_real_process_writes_a_report_and_exits_70"]
    fn panicking_child() {
        let dir = std::env::var_os(CHILD_DIR).expect("run by the crash test, which sets the dir");
        install(PathBuf::from(dir), Arc::new(AtomicU64::new(7)));
        let worker = std::thread::Builder::new()
            .name("crash-test-worker".into())
            .spawn(|| {
                let empty: Vec<u8> = Vec::new();
                let i = empty.len() + 3;
                empty[i]
            })
            .unwrap();
        let _ = worker.join();
        unreachable!("the hook exits the process");
    }

    #[test]
    fn a_panic_in_a_real_process_writes_a_report_and_exits_70() {
        let dir = tempfile::tempdir().unwrap();
        let crashes = dir.path().join("crashes");
        let out = Command::new(std::env::current_exe().unwrap())
            .args([CHILD_TEST, "--exact", "--ignored", "--nocapture"])
            .env(CHILD_DIR, &crashes)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(EXIT_CODE), "{stderr}");
        let files = report_files(&crashes);
        assert_eq!(files.len(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("crash report: {}", files[0].display())),
            "{stderr}"
        );
        let r = read_report(&files[0]).unwrap();
        assert_eq!(r.thread, "crash-test-worker");
        assert_eq!(r.generation, 7);
        assert_eq!(r.version, env!("CARGO_PKG_VERSION"));
        assert!(r.message.contains("index out of bounds"), "{r:?}");
        assert!(r.location.contains("crash.rs"), "{r:?}");
        assert!(r.backtrace.contains("panicking_child"), "{}", r.backtrace);
        assert_ne!(r.pid, std::process::id());
        let mode = fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
