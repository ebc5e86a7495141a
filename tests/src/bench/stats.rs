//! Summaries of measured samples: percentiles by the nearest-rank method.

use std::time::Duration;

/// The distribution of a set of samples (in the samples' own unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// How many samples there were.
    pub count: usize,
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest sample.
    pub max: f64,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none (or any is NaN).
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() || samples.iter().any(|sample| sample.is_nan()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Self {
            count: sorted.len(),
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            max: sorted[sorted.len() - 1],
        })
    }

    /// Summarises durations in milliseconds.
    pub fn of_durations_ms(samples: &[Duration]) -> Option<Self> {
        let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        Self::of(&ms)
    }
}

/// The `p`th percentile (0–100) of ascending `sorted` samples, by nearest rank:
/// the smallest sample with at least `p`% of all samples at or below it.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let summary = Summary::of(&samples).unwrap();
        assert_eq!(summary.count, 100);
        assert_eq!(summary.p50, 50.0);
        assert_eq!(summary.p90, 90.0);
        assert_eq!(summary.p99, 99.0);
        assert_eq!(summary.max, 100.0);
    }

    #[test]
    fn small_sets_use_real_samples() {
        let summary = Summary::of(&[30.0, 10.0, 20.0]).unwrap();
        assert_eq!(summary.p50, 20.0);
        assert_eq!(summary.p90, 30.0);
        assert_eq!(summary.max, 30.0);
        assert_eq!(Summary::of(&[7.0]).unwrap().p99, 7.0);
    }

    #[test]
    fn nothing_to_summarise() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn durations_in_milliseconds() {
        let summary =
            Summary::of_durations_ms(&[Duration::from_millis(5), Duration::from_micros(1500)])
                .unwrap();
        assert_eq!(summary.max, 5.0);
        assert_eq!(summary.p50, 1.5);
    }
}
