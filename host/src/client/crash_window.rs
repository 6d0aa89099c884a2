//! How many times the daemon crashed lately: crashes older than the window
//! are forgotten, so that a daemon that crashes once a day is relaunched
//! forever while one that crashes in a loop is given up on. Sans-IO: the
//! caller passes the time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Crashes within this many recent crashes, by default, make the client
/// give up on the daemon (as Firefox gives up on a socket process that
/// keeps crashing).
pub const DEFAULT_CRASH_LIMIT: usize = 3;
/// The window [`DEFAULT_CRASH_LIMIT`] counts crashes in.
pub const DEFAULT_CRASH_WINDOW: Duration = Duration::from_secs(60);

/// The crashes of the last `window`.
#[derive(Debug, Clone)]
pub struct CrashWindow {
    limit: usize,
    window: Duration,
    recent: VecDeque<Instant>,
}

impl CrashWindow {
    /// `limit` crashes (at least 1) within `window` are too many.
    pub fn new(limit: usize, window: Duration) -> Self {
        CrashWindow {
            limit: limit.max(1),
            window,
            recent: VecDeque::new(),
        }
    }

    /// Records a crash at `now`; whether the crashes within the window
    /// have reached the limit.
    pub fn record(&mut self, now: Instant) -> bool {
        self.forget_before(now);
        self.recent.push_back(now);
        self.recent.len() >= self.limit
    }

    /// The crashes within the window ending at `now`.
    pub fn count(&mut self, now: Instant) -> usize {
        self.forget_before(now);
        self.recent.len()
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) < self.window {
                break;
            }
            self.recent.pop_front();
        }
    }
}

impl Default for CrashWindow {
    fn default() -> Self {
        CrashWindow::new(DEFAULT_CRASH_LIMIT, DEFAULT_CRASH_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_reached_by_crashes_within_the_window_only() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = CrashWindow::new(3, s(60));
        assert!(!w.record(t0));
        assert!(!w.record(t0 + s(10)));
        // The first crash is out of the window by now: two remain.
        assert!(!w.record(t0 + s(61)));
        assert_eq!(w.count(t0 + s(61)), 2);
        assert!(w.record(t0 + s(62)));
        // Long after, all are forgotten.
        assert_eq!(w.count(t0 + s(200)), 0);
    }

    #[test]
    fn a_limit_of_zero_means_one() {
        let mut w = CrashWindow::new(0, Duration::from_secs(1));
        assert_eq!(w.limit(), 1);
        assert!(w.record(Instant::now()));
    }
}
