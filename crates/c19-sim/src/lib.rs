//! A deterministic simulator of c19's Default connection.
//!
//! It runs N real Default states and the Default connection's real publisher and
//! receiver in one process, on one current-thread tokio runtime with paused time, over
//! the in-memory network of `c19_connection_default::sim`: links with latency (fixed or
//! uniform), message loss, a partition that opens and heals, and an agent that stops and
//! restarts empty; optionally one shared machine whose cores every push queues for
//! ([`SharedHost`]), and a steady write load beside the timed writes
//! ([`Scenario::load_per_s`]). Every random draw is seeded, so a run is exactly reproducible from
//! its seed (all figures but `wall_s`).
//!
//! `cargo xtask sim --agents N --seed S [--loss P] [--latency MS] ...` prints one JSON
//! line per run ([`Report`]); `cargo xtask bench` runs it for 10 to 1,000 agents.
//!
//! ```no_run
//! let report = c19_sim::run(&c19_sim::Scenario { agents: 50, ..Default::default() })?;
//! assert!(report.all_equal);
//! # Ok::<(), c19_sim::Error>(())
//! ```

mod report;
mod run;
mod scenario;
mod track;

pub use report::Report;
pub use run::run;
pub use scenario::{LOAD_KEYS, Partition, Scenario, SharedHost};

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting has a value no run can have.
    #[error("`{setting}`: expected {expected}")]
    Setting {
        /// The setting.
        setting: &'static str,
        /// What it takes.
        expected: &'static str,
    },
    /// The connection refused the configuration made of the settings.
    #[error("the connection's configuration: {0}")]
    Config(String),
    /// The runtime could not be built.
    #[error("cannot build the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A state refused a write of the scenario.
    #[error("a write failed: {0}")]
    Write(String),
}
