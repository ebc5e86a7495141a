//! Scenario 1: how long a write takes to reach every agent of an N-agent cluster
//! (push 200 ms, pull 2 s, r0 3), for new keys, overwrites and deletes.
//!
//! An agent holds a write from the moment it sends the write's event on its watch
//! ([`Watchers`]): no polling, which would round each time up to the next poll and load
//! the machine it measures. It also records the agents' CPU time per push, which the
//! simulator's model of a shared machine takes (scenario 10).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::{
    Outcome,
    client::{Api, base, value_text},
    error::{Error, Result},
    machine::cpu_seconds,
    report::{Figure, Target, Unit},
    stats::Summary,
    watch::Watchers,
};
use crate::{ClusterBuilder, Node};

/// Push interval of the convergence and network scenarios (ms).
pub const PUSH_MS: u64 = 200;
/// Pull interval of the convergence and network scenarios (ms).
pub const PULL_MS: u64 = 2000;
/// Peers sampled per round.
pub const R0: usize = 3;
/// The quiet before each write: past the two push rounds of the previous change.
const IDLE: Duration = Duration::from_millis(3 * PUSH_MS);
/// How often the TLS scenario polls every agent for a write.
const POLL: Duration = Duration::from_millis(5);
/// The figure of the agents' CPU time per accepted push.
pub const CPU_PER_PUSH: &str = "agent CPU per push";
/// How long a write may take to reach every agent before it counts as lost.
pub(super) const DEADLINE: Duration = Duration::from_secs(15);

/// The kind of write measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A key no agent held.
    New,
    /// A new value for a key every agent holds.
    Overwrite,
    /// A delete of a key every agent holds.
    Delete,
}

impl Kind {
    /// All kinds, in the order they are measured.
    pub const ALL: [Self; 3] = [Self::New, Self::Overwrite, Self::Delete];

    /// The kind's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::New => "new key",
            Self::Overwrite => "overwrite",
            Self::Delete => "delete",
        }
    }
}

/// The convergence times of one kind of write on one cluster size.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Agents in the cluster.
    pub n: usize,
    /// The kind of write.
    pub kind: Kind,
    /// Times in ms; writes that timed out count as [`DEADLINE`].
    pub summary: Option<Summary>,
    /// Writes that did not reach every agent within the deadline.
    pub timeouts: usize,
}

impl Point {
    /// The point as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "n": self.n,
            "kind": self.kind.name(),
            "writes": self.summary.map_or(0, |s| s.count),
            "p50_ms": self.summary.map(|s| s.p50),
            "p90_ms": self.summary.map(|s| s.p90),
            "max_ms": self.summary.map(|s| s.max),
            "timeouts": self.timeouts,
        })
    }
}

/// `n` agents with the convergence settings (push [`PUSH_MS`], pull [`PULL_MS`], r0
/// [`R0`]), which the scale and steady-load scenarios share.
pub(super) fn cluster(binary: &Path, n: usize) -> ClusterBuilder {
    ClusterBuilder::new(binary, n)
        .push_ms(PUSH_MS)
        .pull_ms(PULL_MS)
        .r0(R0)
}

/// Measures `writes` writes of each kind on a cluster of `n` agents.
pub async fn run(binary: &Path, n: usize, writes: usize) -> Result<Outcome> {
    let cluster = cluster(binary, n).start().await;
    let agents: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| base(node.agent_port))
        .collect();
    let api = Api::new()?;
    let prefix = format!("conv-{n}-");
    let mut watchers = Watchers::open(&agents, &prefix).await?;
    // Accepted pushes, summed over the agents: what each change cost in messages.
    let accepted = "c19_connection_exchanges_total";
    let pushes_before = super::steady::push_total(&cluster.nodes, accepted).await?;
    let cpu_before = cluster_cpu(&cluster.nodes)?;
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut timeouts = [0usize; 3];
    for i in 0..writes {
        let key = format!("{prefix}{i}");
        for (k, kind) in Kind::ALL.into_iter().enumerate() {
            // A different writer for each step, so no write is local to the previous one.
            let writer = &agents[(i + k) % n];
            let expected = match kind {
                Kind::New => Some(Value::from(value_text("new", i))),
                Kind::Overwrite => Some(Value::from(value_text("over", i))),
                Kind::Delete => None,
            };
            // An idle cluster: the rounds of the previous change (two per agent, one
            // push interval apart) are over, so the write goes out on the leading edge.
            tokio::time::sleep(IDLE).await;
            let start = Instant::now();
            match &expected {
                Some(value) => {
                    let body = serde_json::to_vec(&json!({ &key: { "value": value } }))
                        .unwrap_or_default();
                    api.put(&format!("{writer}/"), body).await?;
                }
                None => api.delete(writer, &key).await?,
            }
            match watchers
                .everywhere(&key, &expected, start, DEADLINE)
                .await?
            {
                Some(elapsed) => times[k].push(elapsed),
                None => {
                    timeouts[k] += 1;
                    times[k].push(DEADLINE);
                }
            }
        }
    }
    // The last change's second rounds.
    tokio::time::sleep(IDLE).await;
    let pushes = super::steady::push_total(&cluster.nodes, accepted).await? - pushes_before;
    let cpu = cluster_cpu(&cluster.nodes)? - cpu_before;
    drop(watchers);
    drop(cluster);

    let scenario = format!("convergence N={n}");
    let mut outcome = Outcome::default();
    let changes = (writes * Kind::ALL.len()).max(1) as f64;
    outcome.figures.push(
        Figure::new(
            &scenario,
            "pushes per change",
            Some(pushes / changes),
            Unit::Count,
        )
        .note(format!(
            "accepted pushes of all agents over the {changes} writes; 2·r0·N = {}",
            2 * R0 * n
        )),
    );
    outcome.figures.push(
        Figure::new(
            &scenario,
            CPU_PER_PUSH,
            (pushes > 0.0).then(|| cpu * 1000.0 / pushes),
            Unit::Ms,
        )
        .note(format!(
            "user and system CPU time of all {n} agents over the writes ({cpu:.2} s), per accepted push"
        )),
    );
    for (k, kind) in Kind::ALL.into_iter().enumerate() {
        let summary = Summary::of_durations_ms(&times[k]);
        outcome.points.push(Point {
            n,
            kind,
            summary,
            timeouts: timeouts[k],
        });
        outcome
            .figures
            .extend(figures(&scenario, n, kind, summary, timeouts[k]));
    }
    if timeouts.iter().all(|&t| t == writes) {
        return Err(Error::Timeout(format!(
            "{scenario}: no write reached every agent within {} s",
            DEADLINE.as_secs()
        )));
    }
    Ok(outcome)
}

/// The CPU time all `nodes` have used so far, in seconds.
fn cluster_cpu(nodes: &[Node]) -> Result<f64> {
    nodes
        .iter()
        .map(|node| {
            node.pid().and_then(cpu_seconds).ok_or_else(|| {
                Error::Tool(format!(
                    "no CPU time in /proc for the agent on port {}",
                    node.agent_port
                ))
            })
        })
        .sum()
}

/// Polls every agent every [`POLL`] until each reads `expected` under `key`; the time
/// from `start` until the last agent did, or `None` past the deadline. The TLS scenario
/// compares two modes measured this same way.
pub(super) async fn everywhere(
    api: &Api,
    agents: &[String],
    key: &str,
    expected: Option<Value>,
    start: Instant,
) -> Option<Duration> {
    let mut pollers = JoinSet::new();
    for agent in agents {
        let (api, agent, key, expected) =
            (api.clone(), agent.clone(), key.to_owned(), expected.clone());
        pollers.spawn(async move {
            while start.elapsed() < DEADLINE {
                if let Ok(value) = api.value(&agent, &key).await
                    && value == expected
                {
                    return Some(start.elapsed());
                }
                tokio::time::sleep(POLL).await;
            }
            None
        });
    }
    let mut slowest = Duration::ZERO;
    while let Some(result) = pollers.join_next().await {
        slowest = slowest.max(result.ok().flatten()?);
    }
    Some(slowest)
}

/// The p50/p90/max figures of one kind; targets (issue 4) apply to 10 agents.
fn figures(
    scenario: &str,
    n: usize,
    kind: Kind,
    summary: Option<Summary>,
    timeouts: usize,
) -> Vec<Figure> {
    let lost = if timeouts > 0 {
        format!(
            "{timeouts} writes did not converge within {} s (counted as {0} s); ",
            DEADLINE.as_secs()
        )
    } else {
        String::new()
    };
    let writes = summary.map_or(0, |s| s.count);
    let with_targets = n == 10 && kind != Kind::Delete;
    let baseline = match (kind, with_targets) {
        (Kind::New, true) => "0.1: p50 1.8 s",
        (Kind::Overwrite, true) => "0.1: p50 3.7 s, max 5.7 s",
        _ => "",
    };
    let note = |what: &str| {
        format!("{lost}{what} over {writes} writes; {baseline}")
            .trim_end_matches([' ', ';'])
            .to_owned()
    };
    let mut p90 = Figure::new(
        scenario,
        &format!("{} p90", kind.name()),
        summary.map(|s| s.p90),
        Unit::Ms,
    )
    .note(note("p90"));
    let mut max = Figure::new(
        scenario,
        &format!("{} max", kind.name()),
        summary.map(|s| s.max),
        Unit::Ms,
    )
    .note(note("max"));
    if with_targets {
        max = max.target(Target::below(PULL_MS as f64, "issue 4"));
    }
    // On an idle cluster a change goes out on the leading edge of each agent's interval.
    match n {
        10 => p90 = p90.target(Target::at_most(50.0, "issue 19")),
        n if n >= 30 => p90 = p90.target(Target::at_most(100.0, "issue 19, of 40 agents")),
        _ => {}
    }
    vec![
        Figure::new(
            scenario,
            &format!("{} p50", kind.name()),
            summary.map(|s| s.p50),
            Unit::Ms,
        )
        .note(note("p50")),
        p90,
        max,
    ]
}
