//! What one simulated run does: the cluster, its settings, the network, and the events
//! (writes, a partition, a restart) whose effects it measures.

use serde::Serialize;

/// A 50/50 partition: the agents split into two random halves that cannot reach each
/// other for `duration_ms`, while `writes_per_side` new keys are written on each side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Partition {
    /// How long the halves stay apart, in virtual ms.
    pub duration_ms: u64,
    /// New keys written on each side meanwhile.
    pub writes_per_side: usize,
}

/// One machine that every agent runs on, as the real processes of `cargo xtask bench`
/// do: each push takes one of its cores for `push_cpu_us`, and pushes that find every
/// core busy queue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SharedHost {
    /// Cores the agents share.
    pub cores: usize,
    /// CPU time of one push, µs (on a real cluster: all the agents' CPU time over the
    /// pushes they took).
    pub push_cpu_us: f64,
}

/// The keys a steady load overwrites.
pub const LOAD_KEYS: usize = 1000;

/// One run's settings. [`Scenario::default`] is the reference cluster: push
/// 200 ms, pull 2 s, `r0` 3, 1 ms links, no loss.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// Agents in the cluster.
    pub agents: usize,
    /// Seeds every random draw of the run: the same seed, the same run.
    pub seed: u64,
    /// The connection's `push_interval`, ms.
    pub push_interval_ms: u64,
    /// The connection's `pull_interval`, ms.
    pub pull_interval_ms: u64,
    /// The connection's `r0`.
    pub r0: usize,
    /// One-way latency of every link, ms (the low end when `latency_max_ms` is set).
    pub latency_ms: f64,
    /// When set, each message's one-way latency is drawn uniformly up to this, ms.
    pub latency_max_ms: Option<f64>,
    /// Probability that one way of a message is lost.
    pub loss: f64,
    /// New keys written, one at a time on a random agent, whose spread is timed.
    pub writes: usize,
    /// Virtual ms between two of those writes (past a change's two push rounds, so each
    /// lands on an idle cluster).
    pub write_gap_ms: u64,
    /// Writes per second of a steady load on random agents (overwrites of
    /// [`LOAD_KEYS`] keys) while the timed keys are written: 0, none. Under load every
    /// agent pushes once a push interval, and a change waits for each forwarder's round.
    pub load_per_s: u32,
    /// Pull intervals at rest over which the traffic at rest is measured.
    pub rest_intervals: u32,
    /// A partition after the rest measure, if any.
    pub partition: Option<Partition>,
    /// Whether an agent is stopped and restarted empty at the end, and its catch-up timed.
    pub restart: bool,
    /// When set, the agents share one machine's CPU; otherwise CPU time is left out.
    pub host: Option<SharedHost>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            agents: 10,
            seed: 1,
            push_interval_ms: 200,
            pull_interval_ms: 2000,
            r0: 3,
            latency_ms: 1.0,
            latency_max_ms: None,
            loss: 0.0,
            writes: 50,
            write_gap_ms: 600,
            load_per_s: 0,
            rest_intervals: 3,
            partition: None,
            restart: true,
            host: None,
        }
    }
}

impl Scenario {
    /// Refuses settings no run can have, naming the setting.
    pub fn check(&self) -> Result<(), crate::Error> {
        let bad = |setting: &'static str, expected: &'static str| {
            Err(crate::Error::Setting { setting, expected })
        };
        if self.agents == 0 {
            return bad("agents", "at least 1");
        }
        if self.r0 == 0 {
            return bad("r0", "at least 1");
        }
        if self.push_interval_ms == 0 || self.pull_interval_ms == 0 {
            return bad("push and pull intervals", "at least 1 ms");
        }
        if !(0.0..1.0).contains(&self.loss) {
            return bad("loss", "a probability from 0 to below 1");
        }
        if !(self.latency_ms >= 0.0 && self.latency_ms.is_finite()) {
            return bad("latency", "a number of ms, 0 or more");
        }
        if self
            .latency_max_ms
            .is_some_and(|max| !(max >= self.latency_ms && max.is_finite()))
        {
            return bad("latency_max", "a number of ms, at least the latency");
        }
        if self.load_per_s > 1_000_000 {
            return bad("load", "at most 1,000,000 writes per second");
        }
        if self.partition.as_ref().is_some_and(|p| p.duration_ms == 0) {
            return bad("partition", "a duration of at least 1 ms");
        }
        if let Some(host) = self.host {
            if host.cores == 0 {
                return bad("cores", "at least 1");
            }
            if !(host.push_cpu_us >= 0.0 && host.push_cpu_us.is_finite()) {
                return bad("push_cpu", "a number of µs, 0 or more");
            }
        }
        Ok(())
    }
}
