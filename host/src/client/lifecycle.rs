//! What the client does when the daemon's socket does not answer: start a
//! daemon, relaunch one that died (counting the crash), fall back to
//! networking in-process after too many crashes, or fail. Sans-IO: the
//! shell reports what happened and the time, and does what it is told.

use std::time::Instant;

use super::crash_window::CrashWindow;

/// What to do about a socket nobody answers on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Start a daemon (none was started before).
    Start,
    /// Start a daemon again, after one died or failed to start.
    Relaunch,
    /// Stop using a daemon: fetch in-process from now on.
    FallBack {
        /// The crashes within the window that led to it (zero when no
        /// daemon can be started at all).
        crashes: usize,
    },
    /// Fail this fetch: the daemon crashed too often and there is nothing
    /// to fall back to.
    GiveUp {
        /// The crashes within the window.
        crashes: usize,
    },
    /// Fail this fetch: no daemon runs and the client may not start one.
    NotRunning,
}

/// The daemon's life as the client sees it.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    crashes: CrashWindow,
    can_launch: bool,
    can_fall_back: bool,
    /// Whether the client is (or was last) connected to a live daemon.
    up: bool,
    launches: u32,
    relaunches: u32,
    crashes_total: u32,
    fallen_back: bool,
}

impl Lifecycle {
    /// A client that may start daemons if `can_launch` and may fetch
    /// in-process if `can_fall_back`; `crashes` says how many are too many.
    pub fn new(crashes: CrashWindow, can_launch: bool, can_fall_back: bool) -> Self {
        Lifecycle {
            crashes,
            can_launch,
            can_fall_back,
            up: false,
            launches: 0,
            relaunches: 0,
            crashes_total: 0,
            fallen_back: false,
        }
    }

    /// The client connected to a daemon.
    pub fn connected(&mut self) {
        self.up = true;
    }

    /// Nobody answers on the socket at `now`. Losing a daemon the client
    /// was connected to is a crash.
    pub fn unreachable(&mut self, now: Instant) -> Step {
        if self.up {
            self.up = false;
            if let Some(step) = self.crashed(now) {
                return step;
            }
        }
        self.launch_or(Step::NotRunning)
    }

    /// A daemon the client started exited or did not listen in time: a
    /// crash. `None`: fail this fetch, the next one starts a daemon again.
    pub fn launch_failed(&mut self, now: Instant) -> Option<Step> {
        self.crashed(now)
    }

    /// Whether the client fetches in-process now.
    pub fn fallen_back(&self) -> bool {
        self.fallen_back
    }

    /// Daemons started after the first.
    pub fn relaunches(&self) -> u32 {
        self.relaunches
    }

    /// Daemons started.
    pub fn launches(&self) -> u32 {
        self.launches
    }

    /// Crashes counted since the client was made.
    pub fn crashes_total(&self) -> u32 {
        self.crashes_total
    }

    /// The crash window.
    pub fn window(&self) -> &CrashWindow {
        &self.crashes
    }

    /// Counts a crash; the step it forces, if the limit is reached.
    fn crashed(&mut self, now: Instant) -> Option<Step> {
        self.crashes_total += 1;
        if !self.crashes.record(now) {
            return None;
        }
        let crashes = self.crashes.count(now);
        Some(if self.can_fall_back {
            self.fallen_back = true;
            Step::FallBack { crashes }
        } else {
            Step::GiveUp { crashes }
        })
    }

    fn launch_or(&mut self, otherwise: Step) -> Step {
        if self.can_launch {
            self.launches += 1;
            if self.launches == 1 {
                Step::Start
            } else {
                self.relaunches += 1;
                Step::Relaunch
            }
        } else if self.can_fall_back {
            self.fallen_back = true;
            Step::FallBack { crashes: 0 }
        } else {
            otherwise
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn life(can_launch: bool, can_fall_back: bool) -> Lifecycle {
        Lifecycle::new(
            CrashWindow::new(3, Duration::from_secs(60)),
            can_launch,
            can_fall_back,
        )
    }

    #[test]
    fn a_missing_daemon_is_started_and_a_dead_one_relaunched_until_the_limit() {
        let t0 = Instant::now();
        let mut l = life(true, true);
        assert_eq!(l.unreachable(t0), Step::Start);
        l.connected();
        // The daemon closed the connection but answers again: no crash.
        l.connected();
        assert_eq!(l.crashes_total(), 0);
        for i in 1..=2 {
            assert_eq!(l.unreachable(t0 + Duration::from_secs(i)), Step::Relaunch);
            l.connected();
        }
        assert_eq!(l.relaunches(), 2);
        assert!(!l.fallen_back());
        assert_eq!(
            l.unreachable(t0 + Duration::from_secs(3)),
            Step::FallBack { crashes: 3 }
        );
        assert!(l.fallen_back());
        assert_eq!(l.crashes_total(), 3);
        assert_eq!(l.launches(), 3);
    }

    #[test]
    fn crashes_spread_over_time_are_relaunched_forever() {
        let t0 = Instant::now();
        let mut l = life(true, true);
        assert_eq!(l.unreachable(t0), Step::Start);
        l.connected();
        for i in 1..=10 {
            let step = l.unreachable(t0 + Duration::from_secs(40 * i));
            assert_eq!(step, Step::Relaunch, "crash {i}");
            l.connected();
        }
        assert_eq!(l.crashes_total(), 10);
    }

    #[test]
    fn failed_starts_count_as_crashes() {
        let t0 = Instant::now();
        let mut l = life(true, false);
        assert_eq!(l.unreachable(t0), Step::Start);
        assert_eq!(l.launch_failed(t0), None);
        assert_eq!(l.unreachable(t0), Step::Relaunch);
        assert_eq!(l.launch_failed(t0), None);
        assert_eq!(l.unreachable(t0), Step::Relaunch);
        assert_eq!(l.launch_failed(t0), Some(Step::GiveUp { crashes: 3 }));
    }

    #[test]
    fn without_launching_the_client_fails_or_falls_back_at_once() {
        let t0 = Instant::now();
        let mut l = life(false, false);
        assert_eq!(l.unreachable(t0), Step::NotRunning);
        l.connected();
        assert_eq!(l.unreachable(t0), Step::NotRunning);
        assert_eq!(l.crashes_total(), 1);
        let mut l = life(false, true);
        assert_eq!(l.unreachable(t0), Step::FallBack { crashes: 0 });
        assert!(l.fallen_back());
    }
}
