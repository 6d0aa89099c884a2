//! Where an extension's hook calls run. Handing a runtime worker's other
//! tasks to another thread so that the worker may block
//! (`block_in_place`) costs tens of microseconds of thread switches,
//! several times what a quick hook costs. So a call runs in place on the
//! worker while the extension's calls are quick, and off it once one of
//! them was not: one call slower than [`INLINE_LIMIT`] sends the
//! extension's calls off the worker for [`OFF_WORKER_HOLD`]. A plugin that
//! turns slow or hostile thus stalls a worker once, for at most its call
//! budget. A plugin whose budget is longer than [`INLINE_MAX_BUDGET`], or
//! that imports WASI (whose blocking calls drive tokio themselves, which a
//! worker thread may not do), never runs on a worker at all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A call that computed longer than this moves the extension's calls off
/// the worker.
pub const INLINE_LIMIT: Duration = Duration::from_millis(2);
/// How long they stay off it after a slow call.
pub const OFF_WORKER_HOLD: Duration = Duration::from_secs(30);
/// The longest call budget that may run on a worker: the most a hostile
/// plugin can stall one, once per [`OFF_WORKER_HOLD`].
pub const INLINE_MAX_BUDGET: Duration = Duration::from_millis(20);

/// One extension's recent pace (shared by its instances).
#[derive(Debug)]
pub struct CallPace {
    base: Instant,
    /// Microseconds after `base` until which calls run off the worker;
    /// `u64::MAX`: always.
    off_worker_until: AtomicU64,
}

impl CallPace {
    /// The pace of an extension whose calls may take up to `budget`;
    /// `never_in_place` for one whose calls must never run on a worker.
    pub fn new(budget: Duration, never_in_place: bool) -> CallPace {
        let always = never_in_place || budget > INLINE_MAX_BUDGET;
        CallPace {
            base: Instant::now(),
            off_worker_until: AtomicU64::new(if always { u64::MAX } else { 0 }),
        }
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_micros() as u64
    }

    /// Whether a call starting `now` may run in place.
    pub fn in_place(&self, now: Instant) -> bool {
        self.micros(now) >= self.off_worker_until.load(Ordering::Relaxed)
    }

    /// Records a call that ended `now` after computing for `took`.
    pub fn record(&self, now: Instant, took: Duration) {
        if took > INLINE_LIMIT {
            tracing::debug!("a call computed for {took:?}: calls leave the runtime's workers for {OFF_WORKER_HOLD:?}");
            let until = self.micros(now + OFF_WORKER_HOLD);
            self.off_worker_until.fetch_max(until, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_calls_stay_in_place_and_one_slow_call_moves_them_for_a_while() {
        let pace = CallPace::new(Duration::from_millis(5), false);
        let t0 = Instant::now();
        assert!(pace.in_place(t0));
        pace.record(t0, Duration::from_micros(40));
        assert!(pace.in_place(t0 + Duration::from_millis(1)));
        let slow = t0 + Duration::from_secs(1);
        pace.record(slow, Duration::from_millis(3));
        assert!(!pace.in_place(slow));
        assert!(!pace.in_place(slow + OFF_WORKER_HOLD - Duration::from_millis(1)));
        assert!(pace.in_place(slow + OFF_WORKER_HOLD));
        // A quick call meanwhile does not shorten the hold.
        pace.record(slow + Duration::from_secs(1), Duration::from_micros(10));
        assert!(!pace.in_place(slow + Duration::from_secs(2)));
    }

    #[test]
    fn a_long_budget_or_wasi_never_runs_in_place() {
        let pace = CallPace::new(INLINE_MAX_BUDGET + Duration::from_millis(1), false);
        let later = Instant::now() + Duration::from_secs(3600);
        assert!(!pace.in_place(later));
        assert!(!CallPace::new(Duration::from_millis(1), true).in_place(later));
        assert!(CallPace::new(INLINE_MAX_BUDGET, false).in_place(Instant::now()));
    }
}
