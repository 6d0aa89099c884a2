//! Summaries of timed samples and the units benchmark figures print in.

use std::time::Duration;

/// Timed samples, sorted, so that order statistics are cheap.
#[derive(Debug, Clone)]
pub struct Samples {
    sorted: Vec<Duration>,
}

impl Samples {
    /// Summarizes `samples` (any order).
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self { sorted: samples }
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The median: the mean of the two middle samples for an even count;
    /// `None` without samples.
    pub fn median(&self) -> Option<Duration> {
        let n = self.sorted.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(self.sorted[n / 2]),
            _ => Some((self.sorted[n / 2 - 1] + self.sorted[n / 2]) / 2),
        }
    }
}

/// A duration in the unit that suits it: ns, µs, ms or s.
pub fn human_duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A size in bytes, KiB or MiB.
pub fn human_size(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: &[u64]) -> Samples {
        Samples::new(v.iter().map(|&u| Duration::from_micros(u)).collect())
    }

    #[test]
    fn median_of_odd_and_even_counts_whatever_the_order() {
        assert_eq!(us(&[]).median(), None);
        assert_eq!(us(&[7]).median(), Some(Duration::from_micros(7)));
        assert_eq!(us(&[9, 1, 5]).median(), Some(Duration::from_micros(5)));
        assert_eq!(
            us(&[10, 2, 4, 1000]).median(),
            Some(Duration::from_micros(7))
        );
        assert_eq!(us(&[10, 2, 4, 1000]).len(), 4);
    }

    #[test]
    fn units_suit_the_magnitude() {
        assert_eq!(human_duration(Duration::from_nanos(640)), "640 ns");
        assert_eq!(human_duration(Duration::from_nanos(12_340)), "12.3 µs");
        assert_eq!(human_duration(Duration::from_micros(1_500)), "1.5 ms");
        assert_eq!(human_duration(Duration::from_millis(12_345)), "12.35 s");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(17_825_792), "17.0 MiB");
    }
}
