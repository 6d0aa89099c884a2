//! Summaries of timed samples; the units figures print in are
//! [`sockhost::units`]'s.

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

pub use sockhost::units::{human_duration, human_size};

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
}
