//! Restart accounting for one plugin: sans-IO, so it is tested without
//! instances or clocks. Every decision takes the time it is made at.
//!
//! The fault budget is a rate: `restart-limit` faults within
//! `restart-window` are restarted; the next one disables the plugin. A
//! disabled plugin is either retried after a backoff (1 s, doubling up to
//! [`MAX_BACKOFF`], as Envoy's FAIL_RELOAD does) or stays disabled until
//! the plugins are reloaded, as its manifest says. A retried plugin starts
//! with its whole budget; disabled again, it waits twice as long, unless it
//! had run a whole window without a fault since it came back.
//!
//! The operator may disable a plugin too, whatever its faults: calls are
//! refused as for a plugin disabled after faults, until the operator
//! enables it again. Enabling also ends a disable after faults, at once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sockhost_policy::{Limits, OnDisable};

/// The first backoff of a disabled plugin.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The longest a disabled plugin waits before it is tried again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What happens to a plugin after a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFault {
    /// The faulted instance is dropped; the next call gets a fresh one.
    Restart,
    /// The plugin is over its budget: calls do not enter it before `until`;
    /// the first call after gets a fresh instance.
    DisableUntil {
        /// When it is tried again.
        until: Instant,
        /// How long it waits (`until` less the time of the fault).
        backoff: Duration,
    },
    /// The plugin is over its budget and its manifest says to stay
    /// disabled: calls no longer enter it until the plugins are reloaded.
    DisableUntilReload,
}

/// Whether calls enter a plugin, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Calls enter it (a plugin whose backoff is over is active: its next
    /// call brings it back).
    Active,
    /// Disabled after faults until `until`.
    BackingOff {
        /// When it is tried again.
        until: Instant,
    },
    /// Disabled after faults until the plugins are reloaded.
    DisabledByFaults,
    /// Disabled by the operator until the operator enables it.
    DisabledByOperator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Enabled,
    DisabledUntil(Instant),
    DisabledUntilReload,
}

/// Counts faults against a plugin's budget and decides when it runs.
#[derive(Debug, Clone)]
pub struct Supervisor {
    restart_limit: u32,
    window: Duration,
    on_disable: OnDisable,
    state: State,
    // The faults that were restarted within the current window, oldest
    // first. Invariant: len() <= restart_limit.
    recent: VecDeque<Instant>,
    // Times the plugin was disabled since it last ran a clean window: the
    // next backoff is FIRST_BACKOFF doubled this many times, up to the cap.
    streak: u32,
    // Since when the plugin has run without a fault: its last fault or its
    // comeback, whichever is later.
    quiet_since: Option<Instant>,
    restarts: u32,
    disables: u64,
    faults: u64,
    // Set by the operator; refuses calls whatever `state` says.
    operator_disabled: bool,
    // Instances replaced because their memory crept toward the limit; not
    // faults, and not counted against the budget.
    recycles: u64,
}

impl Supervisor {
    /// A supervisor enforcing `limits`' restart limit, window and on-disable
    /// rule.
    pub fn new(limits: &Limits) -> Self {
        Self::with(
            limits.restart_limit,
            limits.restart_window,
            limits.on_disable,
        )
    }

    /// A supervisor allowing `restart_limit` restarts within `window`.
    pub fn with(restart_limit: u32, window: Duration, on_disable: OnDisable) -> Self {
        Self {
            restart_limit,
            window,
            on_disable,
            state: State::Enabled,
            recent: VecDeque::new(),
            streak: 0,
            quiet_since: None,
            restarts: 0,
            disables: 0,
            faults: 0,
            operator_disabled: false,
            recycles: 0,
        }
    }

    /// Records a fault at `now` and says what to do about it.
    pub fn on_fault(&mut self, now: Instant) -> AfterFault {
        self.faults += 1;
        match self.state {
            // A call that entered before the plugin was disabled: the
            // plugin is off already and the backoff is not extended.
            State::DisabledUntil(until) if now < until => {
                return AfterFault::DisableUntil {
                    until,
                    backoff: until.saturating_duration_since(now),
                }
            }
            State::DisabledUntilReload => return AfterFault::DisableUntilReload,
            State::DisabledUntil(_) => self.resume(now),
            State::Enabled => {}
        }
        if self
            .quiet_since
            .is_some_and(|q| now.saturating_duration_since(q) >= self.window)
        {
            self.streak = 0;
        }
        self.quiet_since = Some(now);
        while self
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= self.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() < self.restart_limit as usize {
            self.recent.push_back(now);
            self.restarts += 1;
            return AfterFault::Restart;
        }
        self.recent.clear();
        self.disables += 1;
        match self.on_disable {
            OnDisable::StayDisabled => {
                self.state = State::DisabledUntilReload;
                AfterFault::DisableUntilReload
            }
            OnDisable::Retry => {
                let backoff = backoff(self.streak);
                self.streak = self.streak.saturating_add(1);
                let until = now + backoff;
                self.state = State::DisabledUntil(until);
                AfterFault::DisableUntil { until, backoff }
            }
        }
    }

    /// Whether calls may enter the plugin at `now`, bringing it back when
    /// its backoff is over: the comeback counts as a restart, and the
    /// caller must then use a fresh instance (see [`Supervisor::disables`]).
    pub fn admit(&mut self, now: Instant) -> bool {
        if self.operator_disabled {
            return false;
        }
        match self.state {
            State::Enabled => true,
            State::DisabledUntil(until) if now >= until => {
                self.resume(now);
                true
            }
            State::DisabledUntil(_) | State::DisabledUntilReload => false,
        }
    }

    fn resume(&mut self, now: Instant) {
        self.state = State::Enabled;
        self.restarts += 1;
        self.quiet_since = Some(now);
    }

    /// Whether calls would be refused at `now`. Does not bring the plugin
    /// back: the next [`Supervisor::admit`] does.
    pub fn is_disabled(&self, now: Instant) -> bool {
        self.standing(now) != Standing::Active
    }

    /// Whether calls enter the plugin at `now`, and why not. The
    /// operator's disable is reported first: it outlasts a backoff.
    pub fn standing(&self, now: Instant) -> Standing {
        if self.operator_disabled {
            return Standing::DisabledByOperator;
        }
        match self.state {
            State::Enabled => Standing::Active,
            State::DisabledUntil(until) if now < until => Standing::BackingOff { until },
            State::DisabledUntil(_) => Standing::Active,
            State::DisabledUntilReload => Standing::DisabledByFaults,
        }
    }

    /// Whether the operator disabled the plugin.
    pub fn is_disabled_by_operator(&self) -> bool {
        self.operator_disabled
    }

    /// The operator disables the plugin, or enables it at `now`. Enabling
    /// also ends a disable after faults (a backoff, or until a reload) at
    /// once, as a restart with its whole budget and the first backoff
    /// again; the instances made before that disable are not called
    /// again (see [`Supervisor::disables`]).
    pub fn set_enabled(&mut self, enable: bool, now: Instant) {
        self.operator_disabled = !enable;
        if enable && self.state != State::Enabled {
            self.recent.clear();
            self.streak = 0;
            self.resume(now);
        }
    }

    /// When a plugin disabled with a backoff is tried again; `None` when it
    /// is enabled or disabled until a reload.
    pub fn disabled_until(&self) -> Option<Instant> {
        match self.state {
            State::DisabledUntil(until) => Some(until),
            State::Enabled | State::DisabledUntilReload => None,
        }
    }

    /// Restarts so far, comebacks after a backoff included.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Times the plugin was disabled so far. An instance made before the
    /// last disable must not be called again: the plugin's instances all
    /// start afresh when it comes back.
    pub fn disables(&self) -> u64 {
        self.disables
    }

    /// Faults recorded so far.
    pub fn faults(&self) -> u64 {
        self.faults
    }

    /// Counts an instance replaced between calls because its memory crept
    /// toward the limit ([`super::limits::crept_past_high_water`]).
    pub fn on_recycle(&mut self) {
        self.recycles += 1;
    }

    /// Instances recycled so far.
    pub fn recycles(&self) -> u64 {
        self.recycles
    }
}

/// The backoff after `streak` earlier disables: [`FIRST_BACKOFF`] doubled
/// `streak` times, at most [`MAX_BACKOFF`].
fn backoff(streak: u32) -> Duration {
    FIRST_BACKOFF
        .checked_mul(1u32.checked_shl(streak).unwrap_or(u32::MAX))
        .map_or(MAX_BACKOFF, |b| b.min(MAX_BACKOFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn retrying(limit: u32) -> Supervisor {
        Supervisor::with(limit, WINDOW, OnDisable::Retry)
    }

    /// The backoff of the fault at `now`, which must disable `s`.
    fn disabled_for(s: &mut Supervisor, now: Instant) -> Duration {
        match s.on_fault(now) {
            AfterFault::DisableUntil { backoff, .. } => backoff,
            other => panic!("expected a backoff, got {other:?}"),
        }
    }

    /// A burst within the window restarts `limit` times then disables, as
    /// the lifetime count did; faults while disabled do not extend it.
    #[test]
    fn restarts_within_the_limit_then_disables() {
        let t0 = Instant::now();
        for limit in [0u32, 1, 3] {
            let mut s = retrying(limit);
            for i in 0..limit {
                let now = t0 + Duration::from_millis(u64::from(i));
                assert_eq!(
                    s.on_fault(now),
                    AfterFault::Restart,
                    "limit {limit}, fault {i}"
                );
            }
            let now = t0 + Duration::from_millis(u64::from(limit));
            let until = now + FIRST_BACKOFF;
            let disabled = AfterFault::DisableUntil {
                until,
                backoff: FIRST_BACKOFF,
            };
            assert_eq!(s.on_fault(now), disabled, "limit {limit}");
            assert_eq!(
                s.on_fault(now),
                disabled,
                "limit {limit}: a late fault changes nothing"
            );
            assert!(s.is_disabled(now) && !s.admit(now));
            assert_eq!(s.disabled_until(), Some(until));
            assert_eq!(s.restarts(), limit);
            assert_eq!(s.faults(), u64::from(limit) + 2);
            assert_eq!(s.disables(), 1);
        }
    }

    #[test]
    fn faults_older_than_the_window_no_longer_count() {
        let t0 = Instant::now();
        let mut s = retrying(2);
        // One fault every 31 s: never more than two within 60 s.
        for i in 0..10 {
            assert_eq!(
                s.on_fault(t0 + secs(31 * i)),
                AfterFault::Restart,
                "fault {i}"
            );
        }
        // Two within the window are allowed; a third within it disables.
        let t1 = t0 + secs(1000);
        assert_eq!(s.on_fault(t1), AfterFault::Restart);
        assert_eq!(s.on_fault(t1 + secs(59)), AfterFault::Restart);
        assert_eq!(s.on_fault(t1 + secs(60)), AfterFault::Restart);
        assert!(matches!(
            s.on_fault(t1 + secs(61)),
            AfterFault::DisableUntil { .. }
        ));
        assert_eq!(s.restarts(), 13);
    }

    #[test]
    fn a_disabled_plugin_comes_back_after_its_backoff_as_a_restart() {
        let t0 = Instant::now();
        let mut s = retrying(0);
        assert!(!s.is_disabled(t0) && s.admit(t0));
        s.on_fault(t0);
        let almost = t0 + FIRST_BACKOFF - Duration::from_nanos(1);
        assert!(s.is_disabled(almost) && !s.admit(almost));
        let back = t0 + FIRST_BACKOFF;
        assert!(!s.is_disabled(back));
        assert_eq!(s.restarts(), 0, "asking does not bring it back");
        assert!(s.admit(back));
        assert_eq!(s.restarts(), 1);
        assert_eq!(s.disabled_until(), None);
        assert!(s.admit(back) && s.restarts() == 1, "counted once");
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let t0 = Instant::now();
        let mut s = retrying(1);
        let mut now = t0;
        let mut seen = Vec::new();
        for _ in 0..12 {
            // A burst: one restart, then over budget.
            assert_eq!(s.on_fault(now), AfterFault::Restart);
            match s.on_fault(now) {
                AfterFault::DisableUntil { until, backoff } => {
                    assert_eq!(until, now + backoff);
                    seen.push(backoff.as_secs());
                    now = until;
                }
                other => panic!("expected a backoff, got {other:?}"),
            }
            assert!(s.admit(now));
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_clean_window_after_coming_back_resets_the_backoff() {
        let t0 = Instant::now();
        let mut s = retrying(0);
        assert_eq!(disabled_for(&mut s, t0), secs(1));
        assert!(s.admit(t0 + secs(1)));
        // Faulted again within a window of coming back: longer.
        assert_eq!(disabled_for(&mut s, t0 + secs(2)), secs(2));
        assert!(s.admit(t0 + secs(4)));
        assert_eq!(disabled_for(&mut s, t0 + secs(5)), secs(4));
        let back = t0 + secs(9);
        assert!(s.admit(back));
        // A whole window without a fault: back to the first backoff.
        assert_eq!(disabled_for(&mut s, back + WINDOW), secs(1));
    }

    #[test]
    fn a_clean_window_counts_from_the_last_fault_too() {
        let t0 = Instant::now();
        let mut s = retrying(1);
        s.on_fault(t0);
        assert_eq!(disabled_for(&mut s, t0), secs(1));
        assert!(s.admit(t0 + secs(1)));
        // A fault right away, then none for 59 s: not clean for a window.
        assert_eq!(s.on_fault(t0 + secs(2)), AfterFault::Restart);
        assert_eq!(disabled_for(&mut s, t0 + secs(61)), secs(2));
        assert!(s.admit(t0 + secs(63)));
        // A fault right away, then none for a whole window: reset.
        assert_eq!(s.on_fault(t0 + secs(64)), AfterFault::Restart);
        assert_eq!(s.on_fault(t0 + secs(124)), AfterFault::Restart);
        assert_eq!(disabled_for(&mut s, t0 + secs(124)), secs(1));
    }

    #[test]
    fn stay_disabled_waits_for_a_reload() {
        let t0 = Instant::now();
        let mut s = Supervisor::with(1, WINDOW, OnDisable::StayDisabled);
        assert_eq!(s.on_fault(t0), AfterFault::Restart);
        assert_eq!(s.on_fault(t0), AfterFault::DisableUntilReload);
        let much_later = t0 + secs(365 * 86_400);
        assert!(s.is_disabled(much_later) && !s.admit(much_later));
        assert_eq!(s.on_fault(much_later), AfterFault::DisableUntilReload);
        assert_eq!(s.disabled_until(), None);
        assert_eq!(s.restarts(), 1);
    }

    #[test]
    fn the_operator_disables_and_enables_whatever_the_faults() {
        let t0 = Instant::now();
        let mut s = retrying(1);
        assert_eq!(s.standing(t0), Standing::Active);
        s.set_enabled(false, t0);
        assert!(s.is_disabled(t0) && !s.admit(t0));
        assert!(s.is_disabled_by_operator());
        assert_eq!(s.standing(t0), Standing::DisabledByOperator);
        // A call already inside faults: counted, and the plugin stays off.
        assert_eq!(s.on_fault(t0), AfterFault::Restart);
        let much_later = t0 + secs(86_400);
        assert!(
            !s.admit(much_later),
            "no backoff ends an operator's disable"
        );
        s.set_enabled(true, much_later);
        assert_eq!(s.standing(much_later), Standing::Active);
        assert!(s.admit(much_later));
        assert_eq!(s.restarts(), 1, "enabling an active plugin is no restart");
        assert_eq!(s.disables(), 0);
    }

    #[test]
    fn the_operator_disable_outlasts_a_backoff_and_enabling_ends_it_at_once() {
        let t0 = Instant::now();
        let mut s = retrying(0);
        let until = t0 + FIRST_BACKOFF;
        assert_eq!(disabled_for(&mut s, t0), FIRST_BACKOFF);
        assert_eq!(s.standing(t0), Standing::BackingOff { until });
        s.set_enabled(false, t0);
        assert_eq!(s.standing(t0), Standing::DisabledByOperator);
        assert!(!s.admit(until), "the backoff ended, the operator's did not");
        assert_eq!(s.restarts(), 0);
        // Enabled before the backoff is over: back now, as a restart.
        let mut s = retrying(0);
        s.on_fault(t0);
        s.set_enabled(true, t0);
        assert_eq!(s.standing(t0), Standing::Active);
        assert!(s.admit(t0));
        assert_eq!((s.restarts(), s.disables()), (1, 1));
        // With its whole budget and the first backoff again.
        assert_eq!(disabled_for(&mut s, t0), FIRST_BACKOFF);
    }

    #[test]
    fn enabling_ends_a_disable_until_reload() {
        let t0 = Instant::now();
        let mut s = Supervisor::with(0, WINDOW, OnDisable::StayDisabled);
        assert_eq!(s.on_fault(t0), AfterFault::DisableUntilReload);
        assert_eq!(s.standing(t0), Standing::DisabledByFaults);
        s.set_enabled(false, t0);
        assert_eq!(s.standing(t0), Standing::DisabledByOperator);
        s.set_enabled(true, t0);
        assert_eq!(s.standing(t0), Standing::Active);
        assert!(s.admit(t0));
        assert_eq!(s.on_fault(t0), AfterFault::DisableUntilReload);
    }

    #[test]
    fn the_manifest_default_is_a_minute_and_retry() {
        let s = Supervisor::new(&Limits::default());
        assert_eq!(s.window, WINDOW);
        assert_eq!(s.on_disable, OnDisable::Retry);
        assert_eq!(s.restart_limit, Limits::default().restart_limit);
    }
}
