//! The Alt-Svc cache's file: read when the host is built, written by a
//! background thread so that no request waits on the disk. Saves coalesce
//! (a burst of changes is one write of the latest state), and the last
//! pending save is written before the writer goes away, so that a process
//! exiting right after its request keeps what it learned.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::SystemTime;

use tokio::sync::watch;

use crate::net::alt_svc::AltSvcCache;

/// Saves an Alt-Svc cache to a file, off the request path.
#[derive(Debug)]
pub struct AltSvcFile {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    cache: Arc<Mutex<AltSvcCache>>,
    state: Mutex<State>,
    wake: Condvar,
    /// How many changes the file holds (the writer's count of `asked`).
    saved: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    /// Changes asked to be saved so far.
    asked: u64,
    /// The writer is to save what is pending and stop.
    stop: bool,
}

impl AltSvcFile {
    /// The cache saved in `path`; empty when there is none or it is
    /// damaged (which costs an upgrade, not the run).
    pub fn load(path: &Path) -> AltSvcCache {
        let Ok(text) = std::fs::read_to_string(path) else {
            return AltSvcCache::default();
        };
        AltSvcCache::load(&text, SystemTime::now()).unwrap_or_else(|e| {
            tracing::warn!(
                "{}: {e}; starting with an empty Alt-Svc cache",
                path.display()
            );
            AltSvcCache::default()
        })
    }

    /// Starts the writer of `cache` to `path`.
    pub fn start(path: PathBuf, cache: Arc<Mutex<AltSvcCache>>) -> std::io::Result<AltSvcFile> {
        let shared = Arc::new(Shared {
            path,
            cache,
            state: Mutex::default(),
            wake: Condvar::new(),
            saved: watch::Sender::new(0),
        });
        let writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("alt-svc-writer".into())
            .spawn(move || writer.run())?;
        Ok(AltSvcFile {
            shared,
            thread: Some(thread),
        })
    }

    /// The cache changed: it will be saved soon.
    pub fn changed(&self) {
        self.shared.lock().asked += 1;
        self.shared.wake.notify_one();
    }

    /// Waits until the file holds every change reported so far.
    pub async fn flush(&self) {
        let asked = self.shared.lock().asked;
        let mut saved = self.shared.saved.subscribe();
        // The sender lives in `shared`, which `self` holds: never closed.
        let _ = saved.wait_for(|&n| n >= asked).await;
    }
}

impl Drop for AltSvcFile {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // Bounded: at most one small write is pending.
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer: waits for changes, saves the latest state of the cache
    /// once per wake-up, until asked to stop with nothing pending.
    fn run(&self) {
        let mut saved = 0;
        loop {
            let asked = {
                let mut state = self.lock();
                while state.asked == saved && !state.stop {
                    state = self
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if state.asked == saved {
                    return;
                }
                state.asked
            };
            self.write();
            saved = asked;
            self.saved.send_replace(saved);
        }
    }

    /// Writes the cache; a failed save costs an upgrade in the next run,
    /// nothing else.
    fn write(&self) {
        let text = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .save(SystemTime::now());
        let tmp = self.path.with_extension("tmp");
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            tracing::warn!(
                "cannot save the Alt-Svc cache to {}: {e}",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::pool::OriginKey;
    use crate::pipeline::target::Target;

    fn origin(host: &str) -> OriginKey {
        Target::parse(&format!("https://{host}/")).unwrap().origin
    }

    /// A cache shared with a writer to a fresh file, and that file.
    fn setup(dir: &tempfile::TempDir) -> (Arc<Mutex<AltSvcCache>>, PathBuf) {
        (Arc::default(), dir.path().join("alt-svc.json"))
    }

    fn learn(cache: &Mutex<AltSvcCache>, host: &str) {
        let said = crate::net::alt_svc::parse("h3=\":443\"; ma=3600").unwrap();
        let now = SystemTime::now();
        assert!(cache
            .lock()
            .unwrap()
            .update("default", &origin(host), said, now));
    }

    fn saved_h3(path: &Path, host: &str) -> usize {
        AltSvcFile::load(path)
            .h3("default", &origin(host), SystemTime::now())
            .len()
    }

    #[tokio::test]
    async fn flush_waits_for_every_change_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, path) = setup(&dir);
        let file = AltSvcFile::start(path.clone(), cache.clone()).unwrap();
        file.flush().await;
        assert!(!path.exists(), "nothing to save, nothing written");
        for host in ["a.test", "b.test", "c.test"] {
            learn(&cache, host);
            file.changed();
        }
        file.flush().await;
        for host in ["a.test", "b.test", "c.test"] {
            assert_eq!(saved_h3(&path, host), 1, "{host}");
        }
    }

    #[test]
    fn dropping_the_writer_saves_what_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, path) = setup(&dir);
        let file = AltSvcFile::start(path.clone(), cache.clone()).unwrap();
        learn(&cache, "a.test");
        file.changed();
        drop(file);
        assert_eq!(saved_h3(&path, "a.test"), 1);
    }

    #[test]
    fn a_damaged_file_loads_as_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alt-svc.json");
        std::fs::write(&path, "not json").unwrap();
        assert_eq!(saved_h3(&path, "a.test"), 0);
        assert_eq!(saved_h3(&dir.path().join("missing.json"), "a.test"), 0);
    }
}
