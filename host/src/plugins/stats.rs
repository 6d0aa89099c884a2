//! What one plugin costs, shared by all its instances (an extension's pool,
//! a congestion policy's per-connection forks): calls and their time, and
//! the linear memory of each live instance.
//!
//! Written on the call path, so nothing here allocates or takes a lock per
//! call: counters are atomics, and each instance writes its memory to a
//! cell of its own. The list of cells is locked only when an instance slot
//! is made or dropped, and when a status is taken.
//!
//! Call time goes into a fixed histogram of log-scale buckets (four per
//! power of two of nanoseconds), so a percentile is known to within a
//! quarter of an octave (at most 25% high) without keeping every call: the
//! 99th percentile is reported as the upper bound of the bucket it falls
//! in, or as the longest call when that is lower. An upper bound, never an
//! underestimate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Buckets per power of two.
const SUB_BUCKETS: u32 = 4;
/// Values below this many nanoseconds have a bucket each.
const EXACT_BELOW: u64 = SUB_BUCKETS as u64;
/// Powers of two covered above [`EXACT_BELOW`]: 2^2 ns up to 2^44 ns
/// (about 4.9 hours), far past any call budget; longer calls share the last
/// bucket, whose bound is the longest call.
const OCTAVES: u32 = 42;
/// Buckets in a call-time histogram.
pub const BUCKETS: usize = EXACT_BELOW as usize + (OCTAVES * SUB_BUCKETS) as usize;

/// The bucket of a call of `ns` nanoseconds.
fn bucket_of(ns: u64) -> usize {
    if ns < EXACT_BELOW {
        return ns as usize;
    }
    // The highest set bit and the SUB_BUCKETS.ilog2() bits below it.
    let top = ns.ilog2();
    let shift = top - SUB_BUCKETS.ilog2();
    let sub = (ns >> shift) as u32 - SUB_BUCKETS;
    let octave = top - SUB_BUCKETS.ilog2();
    let b = EXACT_BELOW as usize + (octave * SUB_BUCKETS + sub) as usize;
    b.min(BUCKETS - 1)
}

/// The largest value in bucket `b`, in nanoseconds (`u64::MAX` for the
/// last, open-ended one).
fn upper_bound(b: usize) -> u64 {
    if b < EXACT_BELOW as usize {
        return b as u64;
    }
    if b == BUCKETS - 1 {
        return u64::MAX;
    }
    let i = (b - EXACT_BELOW as usize) as u32;
    let (octave, sub) = (i / SUB_BUCKETS, i % SUB_BUCKETS);
    // Bucket (octave, sub) holds [(4 + sub) << octave, (5 + sub) << octave).
    ((u64::from(SUB_BUCKETS + sub + 1)) << octave) - 1
}

/// The bucket holding the `q` quantile (0 < q <= 1) of the calls counted
/// in `counts`: the first bucket by which at least `q` of them are in.
fn quantile_bucket(counts: &[u64], q: f64) -> Option<usize> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    // The rank of the quantile call, 1-based, rounded up.
    let rank = ((total as f64 * q).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    counts.iter().position(|&c| {
        seen += c;
        seen >= rank
    })
}

/// Calls and their durations.
#[derive(Debug)]
pub struct CallHistogram {
    // The calls are the buckets' sum: one counter fewer to write per call.
    buckets: [AtomicU64; BUCKETS],
    total_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for CallHistogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            total_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

/// Calls and their durations, read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallTimes {
    /// Calls counted.
    pub calls: u64,
    /// Their time in all.
    pub total: Duration,
    /// The longest.
    pub max: Duration,
    /// The 99th percentile, as an upper bound (see the module's doc).
    pub p99: Duration,
}

impl CallHistogram {
    /// Counts one call that took `took`.
    pub fn record(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        // Read first: a new maximum is rare, and a load leaves the cache
        // line shared between the threads calling in.
        if ns > self.max_ns.load(Ordering::Relaxed) {
            self.max_ns.fetch_max(ns, Ordering::Relaxed);
        }
    }

    /// The counts so far. Calls recorded meanwhile may be half in.
    pub fn read(&self) -> CallTimes {
        let counts: [u64; BUCKETS] =
            std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed));
        let max_ns = self.max_ns.load(Ordering::Relaxed);
        let p99_ns = quantile_bucket(&counts, 0.99).map_or(0, |b| upper_bound(b).min(max_ns));
        CallTimes {
            calls: counts.iter().sum(),
            total: Duration::from_nanos(self.total_ns.load(Ordering::Relaxed)),
            max: Duration::from_nanos(max_ns),
            p99: Duration::from_nanos(p99_ns),
        }
    }
}

/// What a memory cell holds while its slot has no live instance.
const NO_INSTANCE: u64 = u64::MAX;

/// Calls, call time and memory of every instance of one plugin.
#[derive(Debug, Default)]
pub struct PluginStats {
    calls: CallHistogram,
    /// One cell per instance slot, holding its live instance's linear
    /// memory in bytes, or [`NO_INSTANCE`].
    cells: Mutex<Vec<Arc<AtomicU64>>>,
    peak: AtomicU64,
}

/// The memory of one plugin's instances, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemoryNow {
    /// Linear memory of each live instance, in bytes, in the order their
    /// slots were made.
    pub per_instance: Vec<u64>,
    /// The most any instance of the plugin has had.
    pub peak: u64,
}

impl PluginStats {
    /// Counts one call that took `took`.
    pub fn record_call(&self, took: Duration) {
        self.calls.record(took);
    }

    /// Calls and their time so far.
    pub fn calls(&self) -> CallTimes {
        self.calls.read()
    }

    /// The memory of the live instances, and the peak.
    pub fn memory(&self) -> MemoryNow {
        let per_instance = self
            .cells()
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .filter(|&m| m != NO_INSTANCE)
            .collect();
        MemoryNow {
            per_instance,
            peak: self.peak.load(Ordering::Relaxed),
        }
    }

    fn cells(&self) -> std::sync::MutexGuard<'_, Vec<Arc<AtomicU64>>> {
        // Pushes and removals only: a panic elsewhere cannot leave it torn.
        self.cells.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One instance slot's memory cell, listed in its plugin's stats while the
/// slot exists.
#[derive(Debug)]
pub struct MemorySlot {
    cell: Arc<AtomicU64>,
    stats: Arc<PluginStats>,
}

impl MemorySlot {
    /// A slot of `stats`, with no instance yet.
    pub fn new(stats: Arc<PluginStats>) -> Self {
        let cell = Arc::new(AtomicU64::new(NO_INSTANCE));
        stats.cells().push(cell.clone());
        Self { cell, stats }
    }

    /// The slot's instance has `bytes` of linear memory now.
    pub fn set(&self, bytes: u64) {
        let bytes = bytes.min(NO_INSTANCE - 1);
        self.cell.store(bytes, Ordering::Relaxed);
        if bytes > self.stats.peak.load(Ordering::Relaxed) {
            self.stats.peak.fetch_max(bytes, Ordering::Relaxed);
        }
    }

    /// The slot's instance is gone.
    pub fn clear(&self) {
        self.cell.store(NO_INSTANCE, Ordering::Relaxed);
    }

    /// The stats this slot belongs to.
    pub fn stats(&self) -> &Arc<PluginStats> {
        &self.stats
    }
}

impl Drop for MemorySlot {
    fn drop(&mut self) {
        self.stats.cells().retain(|c| !Arc::ptr_eq(c, &self.cell));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(n: u64) -> Duration {
        Duration::from_nanos(n)
    }

    #[test]
    fn buckets_are_contiguous_and_each_value_is_within_its_bound() {
        let mut previous_bound = None;
        for b in 0..BUCKETS - 1 {
            let bound = upper_bound(b);
            let low = previous_bound.map_or(0, |p: u64| p + 1);
            assert_eq!(bucket_of(low), b, "lowest value of bucket {b}");
            assert_eq!(bucket_of(bound), b, "bound of bucket {b}");
            assert_eq!(bucket_of(bound + 1), b + 1, "past bucket {b}");
            previous_bound = Some(bound);
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(upper_bound(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn a_bound_is_at_most_a_quarter_octave_above_its_values() {
        for v in [4u64, 5, 7, 8, 1000, 1023, 1024, 123_456_789, 1 << 40] {
            let bound = upper_bound(bucket_of(v));
            assert!(bound >= v, "{v}: {bound}");
            assert!(bound as f64 <= v as f64 * 1.25 + 1.0, "{v}: {bound}");
        }
    }

    #[test]
    fn the_quantile_bucket_is_the_first_holding_its_rank() {
        assert_eq!(quantile_bucket(&[0, 0, 0], 0.99), None);
        // 99 fast calls and one slow one: the p99 is fast, the p100 slow.
        assert_eq!(quantile_bucket(&[0, 99, 0, 1], 0.99), Some(1));
        assert_eq!(quantile_bucket(&[0, 99, 0, 1], 1.0), Some(3));
        // 98 fast and two slow: the 99th call is slow.
        assert_eq!(quantile_bucket(&[98, 2], 0.99), Some(1));
        assert_eq!(quantile_bucket(&[1], 0.99), Some(0));
    }

    #[test]
    fn the_histogram_reports_calls_total_max_and_p99_as_an_upper_bound() {
        let h = CallHistogram::default();
        assert_eq!(h.read(), CallTimes::default());
        for _ in 0..990 {
            h.record(Duration::from_micros(10));
        }
        for _ in 0..10 {
            h.record(Duration::from_micros(900));
        }
        let t = h.read();
        assert_eq!(t.calls, 1000);
        assert_eq!(t.total, Duration::from_micros(990 * 10 + 10 * 900));
        assert_eq!(t.max, Duration::from_micros(900));
        // 10 µs = 10 000 ns is in [4·2^11, 5·2^11) = [8192, 10240).
        assert_eq!(t.p99, ns(10_239));

        // One slow call in a hundred is the p99 when it is the 99th.
        let h = CallHistogram::default();
        for _ in 0..98 {
            h.record(ns(100));
        }
        h.record(ns(5_000_000));
        h.record(ns(5_000_000));
        assert_eq!(h.read().p99, ns(5_000_000), "capped by the longest call");
    }

    #[test]
    fn slots_report_live_instances_and_the_peak_and_leave_when_dropped() {
        let stats = Arc::new(PluginStats::default());
        let a = MemorySlot::new(stats.clone());
        let b = MemorySlot::new(stats.clone());
        assert_eq!(stats.memory(), MemoryNow::default(), "no instance yet");
        a.set(1 << 20);
        b.set(3 << 20);
        assert_eq!(stats.memory().per_instance, [1 << 20, 3 << 20]);
        b.set(2 << 20);
        b.clear();
        assert_eq!(
            stats.memory(),
            MemoryNow {
                per_instance: vec![1 << 20],
                peak: 3 << 20
            }
        );
        drop(a);
        b.set(64 << 10);
        assert_eq!(stats.memory().per_instance, [64 << 10]);
        drop(b);
        assert_eq!(stats.cells().len(), 0);
        assert_eq!(stats.memory().peak, 3 << 20, "the peak outlives instances");
    }

    #[test]
    fn calls_from_many_threads_are_all_counted() {
        let stats = Arc::new(PluginStats::default());
        std::thread::scope(|s| {
            for t in 1..=4u64 {
                let stats = &stats;
                s.spawn(move || {
                    for _ in 0..1000 {
                        stats.record_call(ns(t * 1000));
                    }
                });
            }
        });
        let c = stats.calls();
        assert_eq!(c.calls, 4000);
        assert_eq!(c.total, ns(1000 * (1000 + 2000 + 3000 + 4000)));
        assert_eq!(c.max, ns(4000));
    }
}
