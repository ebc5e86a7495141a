//! What a run measured: one JSON line per run.

use serde::Serialize;

use crate::scenario::Scenario;

/// The figures of one run. Times are virtual seconds; bytes are message bodies,
/// uncompressed (the simulator carries no HTTP).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Agents in the cluster.
    pub agents: usize,
    /// The run's seed.
    pub seed: u64,
    /// The settings of the run.
    pub settings: Scenario,
    /// Writes whose key reached every agent before the run stopped waiting.
    pub converged: usize,
    /// Median time from a write until its key was on every agent.
    pub converge_p50_s: Option<f64>,
    /// 90th percentile of that time.
    pub converge_p90_s: Option<f64>,
    /// 99th percentile of that time.
    pub converge_p99_s: Option<f64>,
    /// Longest of that time.
    pub converge_max_s: Option<f64>,
    /// Pushes delivered while the keys spread, per write.
    pub pushes_per_change: f64,
    /// Push body bytes delivered while the keys spread, per write.
    pub bytes_per_change: f64,
    /// Body bytes of all messages (exchanges, pushes, pulls) per agent per pull interval,
    /// with the cluster at rest after the writes.
    pub rest_bytes_per_agent_per_pull: f64,
    /// Time from the partition's end until every agent held the same state; `None`
    /// without a partition, or when they were not equal within ten pull intervals.
    pub heal_s: Option<f64>,
    /// Time until an agent restarted empty held what the others hold; `None` without a
    /// restart, or when it did not within ten pull intervals.
    pub catch_up_s: Option<f64>,
    /// Whether every agent ended with the same state.
    pub all_equal: bool,
    /// Messages lost to the loss model or cut by the partition.
    pub lost_messages: u64,
    /// Virtual time the run covered.
    pub virtual_s: f64,
    /// Real time the run took.
    pub wall_s: f64,
}

/// The `q`-quantile (0..=1) of sorted `values`, nearest rank; `None` when empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// `seconds` rounded to the millisecond, as virtual time is measured.
pub fn ms_precision(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), Some(50.0));
        assert_eq!(quantile(&values, 0.99), Some(99.0));
        assert_eq!(quantile(&values, 1.0), Some(100.0));
        assert_eq!(quantile(&[3.0], 0.5), Some(3.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
