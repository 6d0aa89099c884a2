//! The access log (`access-log = FILE`): one JSON object per line per
//! request, e.g.
//!
//! ```json
//! {"time":"2026-12-01T03:42:07.123Z","client":"127.0.0.1:50312","method":"GET","url":"http://a.test/","status":200,"bytes_up":0,"bytes_down":1000,"duration_ms":12.5,"upstream":"HTTP/2.0","actions":["blocklist:hook-redirect"]}
//! ```
//!
//! `client` is the address, or `"unix"`; `url` is the authority for a
//! `CONNECT`, logged when its tunnel ends; `bytes_up` (the request body, or
//! what a tunnel carried to the origin) and `upstream` (the HTTP version
//! the origin answered in) are null when not known; `actions` names each
//! plugin action as `plugin:kind`. Entries are written off the request
//! path: a bounded queue to a writer task. When the writer falls behind,
//! entries are dropped and counted rather than making requests wait.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Version;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use crate::extensions::PluginAction;

/// Entries waiting for the writer at most.
pub const QUEUE: usize = 4096;

/// One request, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When it arrived.
    pub time: SystemTime,
    /// The client's address, or `unix`.
    pub client: String,
    /// The method.
    pub method: String,
    /// The URL, or the authority for `CONNECT`.
    pub url: String,
    /// The status the client got.
    pub status: u16,
    /// Bytes from the client, when known.
    pub bytes_up: Option<u64>,
    /// Bytes to the client (the body, or what a tunnel carried back).
    pub bytes_down: Option<u64>,
    /// From arrival until the response (or tunnel) ended.
    pub duration: Duration,
    /// The HTTP version the origin answered in.
    pub upstream: Option<Version>,
    /// `plugin:kind` per plugin action.
    pub actions: Vec<String>,
}

impl Entry {
    /// The names of `actions`, as [`Entry::actions`] holds them.
    pub fn action_names(actions: &[PluginAction]) -> Vec<String> {
        actions
            .iter()
            .map(|a| format!("{}:{}", a.plugin, a.action))
            .collect()
    }

    /// The entry's line, without the newline.
    pub fn line(&self) -> String {
        serde_json::json!({
            "time": rfc3339(self.time),
            "client": self.client,
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "duration_ms": (self.duration.as_secs_f64() * 1e6).round() / 1e3,
            "upstream": self.upstream.map(|v| format!("{v:?}")),
            "actions": self.actions,
        })
        .to_string()
    }
}

/// `t` in UTC as RFC 3339 with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01: counted in
/// 400-year eras from 0000-03-01, so that leap days end each year.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The access log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot open the access log: {source}")]
pub struct AccessLogError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

enum Message {
    Entry(Entry),
    Flush(oneshot::Sender<()>),
}

/// Where requests are logged; clones share the writer.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// Appends to `path` (made 0600 when new: it names what users
    /// fetched), from a writer task on the current runtime.
    pub fn open(path: &Path) -> Result<AccessLog, AccessLogError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| AccessLogError {
                path: path.to_owned(),
                source,
            })?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(rx, tokio::fs::File::from_std(file), path.to_owned()));
        Ok(AccessLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queues `entry`; never waits. A full queue drops it, counted.
    pub fn record(&self, entry: Entry) {
        if self.tx.try_send(Message::Entry(entry)).is_err() {
            let before = self.dropped.fetch_add(1, Ordering::Relaxed);
            if before.is_power_of_two() || before == 0 {
                tracing::warn!(
                    "access log: the writer is behind, {} entries dropped",
                    before + 1
                );
            }
        }
    }

    /// Entries dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until what was queued before is written.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// The writer task: entries as they come, flushed whenever the queue is
/// empty.
async fn write(mut rx: mpsc::Receiver<Message>, file: tokio::fs::File, path: PathBuf) {
    let mut out = tokio::io::BufWriter::new(file);
    let mut failed = false;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut waiting = Vec::new();
        while let Some(message) = next {
            match message {
                Message::Entry(entry) => {
                    let mut line = entry.line();
                    line.push('\n');
                    if let Err(e) = out.write_all(line.as_bytes()).await {
                        failed_once(&mut failed, &path, &e);
                    }
                }
                Message::Flush(done) => waiting.push(done),
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush().await {
            failed_once(&mut failed, &path, &e);
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}

fn failed_once(failed: &mut bool, path: &Path, e: &std::io::Error) {
    if !*failed {
        tracing::warn!("access log {}: cannot write: {e}", path.display());
        *failed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::ActionKind;

    #[test]
    fn times_are_rfc3339_in_utc() {
        let at = |s: u64, ms: u64| {
            rfc3339(UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(951_868_799, 999), "2000-02-29T23:59:59.999Z");
        assert_eq!(at(1_796_096_527, 123), "2026-12-01T03:42:07.123Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn an_entry_is_one_json_line() {
        let entry = Entry {
            time: UNIX_EPOCH + Duration::from_secs(1_796_096_527),
            client: "127.0.0.1:50312".into(),
            method: "GET".into(),
            url: "http://a.test/?q=\"\n".into(),
            status: 200,
            bytes_up: None,
            bytes_down: Some(1000),
            duration: Duration::from_micros(12_345),
            upstream: Some(Version::HTTP_2),
            actions: Entry::action_names(&[PluginAction {
                plugin: "blocklist".into(),
                action: ActionKind::HookRedirect,
                detail: "x".into(),
            }]),
        };
        let line = entry.line();
        assert!(!line.contains('\n'), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "2026-12-01T03:42:07.000Z");
        assert_eq!(v["url"], "http://a.test/?q=\"\n");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes_up"], serde_json::Value::Null);
        assert_eq!(v["bytes_down"], 1000);
        assert_eq!(v["duration_ms"], 12.345);
        assert_eq!(v["upstream"], "HTTP/2.0");
        assert_eq!(v["actions"][0], "blocklist:hook-redirect");
    }

    #[tokio::test]
    async fn entries_are_appended_and_a_full_queue_drops_rather_than_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.jsonl");
        std::fs::write(&path, "earlier\n").unwrap();
        let log = AccessLog::open(&path).unwrap();
        let entry = |n: u16| Entry {
            time: SystemTime::now(),
            client: "unix".into(),
            method: "GET".into(),
            url: format!("http://a.test/{n}"),
            status: n,
            bytes_up: Some(0),
            bytes_down: Some(0),
            duration: Duration::ZERO,
            upstream: None,
            actions: Vec::new(),
        };
        // The writer task does not run before this task yields: the
        // queue fills, the rest are counted.
        for n in 0..(QUEUE + 10) {
            log.record(entry(n as u16));
        }
        assert_eq!(log.dropped(), 10);
        log.flush().await;
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), QUEUE + 1);
        assert_eq!(lines[0], "earlier");
        let last: serde_json::Value = serde_json::from_str(lines[QUEUE]).unwrap();
        assert_eq!(last["status"], QUEUE - 1);
    }
}
