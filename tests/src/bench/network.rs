//! Scenario 2: what gossip costs on the network for a large state, while it spreads,
//! at rest and after one key changes; then scenario 5 ([`catch_up`]) on the same cluster.
//!
//! Bytes are counted twice: the connection layer's own counters of HTTP body bytes
//! (`GET /_c19/stats`, summed over agents) and, when `c19-bench` runs in a private
//! network namespace, the loopback interface's byte counter (headers, TCP/IP and
//! handshakes included: the bytes on the wire).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{
    Outcome, catch_up,
    client::{Api, PeerStats, base, key, value_text},
    convergence::{PULL_MS, PUSH_MS, R0},
    error::Result,
    guard::MemoryGuard,
    machine,
    report::{Figure, Target, Unit},
};
use crate::{ClusterBuilder, Node, wait_until};

/// The prefix of the keys the network scenario loads.
pub(super) const PREFIX: &str = "net";
/// Keys per `PUT` while loading.
const BATCH: usize = 2000;

/// A cluster size and state size to measure.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Agents.
    pub agents: usize,
    /// Keys of ~60-byte values.
    pub keys: usize,
}

impl Setup {
    /// Whether the issues' targets apply (10 agents, 20,000 keys).
    fn has_targets(self) -> bool {
        self.agents == 10 && self.keys == 20_000
    }
}

/// Bytes counted at one moment, cluster-wide.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counters {
    /// The connection layers' counters.
    pub(super) body: PeerStats,
    /// The loopback interface's bytes, when in a private namespace.
    pub(super) wire: Option<u64>,
}

/// Loads the state into one agent and measures how it spreads, then the network at
/// rest, after one change, and a restarted agent's catch-up. When the state does not
/// reach every agent in time, or the agents' memory passes the guard's limit, the cost
/// of spreading is reported and the rest is skipped.
pub async fn run(binary: &Path, setup: Setup) -> Result<Outcome> {
    let mut cluster = ClusterBuilder::new(binary, setup.agents)
        .push_ms(PUSH_MS)
        .pull_ms(PULL_MS)
        .r0(R0)
        .start()
        .await;
    let api = Api::new()?;
    // Probes of overloaded agents fail instead of waiting for the bulk timeout.
    let probe = Api::with_timeout(Duration::from_secs(5))?;
    let peers: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| base(node.peer_port))
        .collect();
    let agents: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| base(node.agent_port))
        .collect();
    let scenario = format!("network {} agents, {} keys", setup.agents, setup.keys);
    let pull = Duration::from_millis(PULL_MS);
    let guard = MemoryGuard::start(
        cluster.nodes.iter().filter_map(Node::pid).collect(),
        MemoryGuard::default_limit(),
    );

    let before = counters(&api, &peers).await?;
    let start = Instant::now();
    let loading = api
        .load(
            &format!("{}/", agents[0]),
            PREFIX,
            "net",
            0..setup.keys,
            BATCH,
        )
        .await;
    let loaded = start.elapsed();
    let deadline = Duration::from_secs(60 + setup.keys as u64 / 2000);
    let (held, phase) = match loading {
        Ok(()) => {
            let held = spread(&probe, &agents, setup.keys, start + deadline, &guard).await;
            (held, "after the load")
        }
        Err(_) if guard.exceeded() => (0, "during the load"),
        Err(error) => return Err(error),
    };
    let spread_time = start.elapsed();
    let complete = held == agents.len() && !guard.exceeded();
    let mut outcome = Outcome::default();
    let why = if guard.exceeded() {
        format!(
            "stopped after {:.0} s, {phase}: the agents' summed RSS passed {:.1} GB (a quarter \
             of RAM) when {held} of {} agents read every sampled key",
            spread_time.as_secs_f64(),
            guard.limit() as f64 / 1e9,
            agents.len()
        )
    } else if held < agents.len() {
        format!(
            "agent {} of {} did not read every sampled key within {} s",
            held + 1,
            agents.len(),
            deadline.as_secs()
        )
    } else {
        format!("loading through one agent took {:.0} ms", ms(loaded))
    };
    outcome.figures.push(
        Figure::new(
            &scenario,
            &format!(
                "{} keys loaded into 1 agent, until every agent reads them",
                setup.keys
            ),
            complete.then(|| ms(spread_time)),
            Unit::Ms,
        )
        .note(why),
    );
    if !guard.exceeded() {
        // Counters are not read from agents past the memory limit: the point is to stop.
        let after = counters(&api, &peers).await?;
        let (body, wire) = delta(before, after, 1.0);
        outcome.figures.extend([
            Figure::new(
                &scenario,
                "sent while spreading (body)",
                Some(body),
                Unit::Bytes,
            )
            .note("sum of bytes_sent over agents, load to last agent holding the keys"),
            Figure::new(&scenario, "sent while spreading (wire)", wire, Unit::Bytes)
                .note(wire_note()),
        ]);
    }
    outcome.figures.push(
        Figure::new(
            &scenario,
            "peak RSS of all agents while spreading",
            Some(guard.peak() as f64),
            Unit::Bytes,
        )
        .note(format!(
            "summed VmRSS of the {} agents, read every 200 ms",
            agents.len()
        )),
    );
    if !complete {
        outcome.figures.extend(
            [
                "at rest, per pull interval",
                "3 pull intervals after 1 change",
                "catch-up",
            ]
            .map(|name| {
                Figure::new(&scenario, name, None, Unit::Bytes)
                    .note("not measured: the state did not spread")
            }),
        );
        return Ok(outcome);
    }
    // Let the pulls that were under way when the last agent caught up finish.
    tokio::time::sleep(2 * pull).await;

    let before = counters(&api, &peers).await?;
    tokio::time::sleep(3 * pull).await;
    let after = counters(&api, &peers).await?;
    let (rest_body, rest_wire) = delta(before, after, 3.0);

    let before = counters(&api, &peers).await?;
    api.load(&format!("{}/", agents[0]), PREFIX, "changed", 0..1, 1)
        .await?;
    tokio::time::sleep(3 * pull).await;
    let after = counters(&api, &peers).await?;
    let (change_body, change_wire) = delta(before, after, 1.0);

    outcome.figures.extend(traffic_figures(
        &scenario,
        setup.has_targets(),
        (rest_body, rest_wire),
        (change_body, change_wire),
    ));
    drop(guard);

    let catch_up = catch_up::run(&api, cluster.nodes.last_mut(), &peers, setup, &scenario).await?;
    outcome.figures.extend(catch_up);
    Ok(outcome)
}

/// The at-rest and one-change figures, with the issue 8 targets when they apply.
fn traffic_figures(
    scenario: &str,
    targets: bool,
    rest: (f64, Option<f64>),
    change: (f64, Option<f64>),
) -> Vec<Figure> {
    let figure = |name: &str, value: Option<f64>, bound: f64, note: String| {
        let figure = Figure::new(scenario, name, value, Unit::Bytes).note(note);
        if targets {
            figure.target(Target::at_most(bound, "issue 8"))
        } else {
            figure
        }
    };
    let baseline = if targets { "; 0.1: ~63 MB" } else { "" };
    vec![
        figure(
            "at rest, per pull interval (body)",
            Some(rest.0),
            25e3,
            "sum of bytes_sent over agents, 3 pull intervals / 3".into(),
        ),
        figure(
            "at rest, per pull interval (wire)",
            rest.1,
            25e3,
            wire_note().into(),
        ),
        figure(
            "3 pull intervals after 1 change (body)",
            Some(change.0),
            200e3,
            format!("sum of bytes_sent over agents{baseline}"),
        ),
        figure(
            "3 pull intervals after 1 change (wire)",
            change.1,
            200e3,
            format!("{}; includes the one PUT on the agent port", wire_note()),
        ),
    ]
}

pub(super) fn wire_note() -> &'static str {
    if machine::in_private_netns() {
        "loopback bytes incl. HTTP/TCP/IP headers"
    } else {
        "needs a private network namespace (unshare --net)"
    }
}

/// Waits, agent after agent, until each holds the sampled keys; stops when `end`
/// passes or the guard trips. How many agents got there.
async fn spread(
    api: &Api,
    agents: &[String],
    keys: usize,
    end: Instant,
    guard: &MemoryGuard,
) -> usize {
    let mut held = 0;
    for agent in agents {
        let left = end.saturating_duration_since(Instant::now());
        let done = wait_until(left, || async {
            guard.exceeded() || holds_sample(api, agent, keys, "net").await
        })
        .await;
        if !done || guard.exceeded() {
            break;
        }
        held += 1;
    }
    held
}

/// Whether `agent` holds a sample of the `keys` keys (every twentieth, the last) and
/// key 0 with tag `first`.
pub(super) async fn holds_sample(api: &Api, agent: &str, keys: usize, first: &str) -> bool {
    let step = (keys / 20).max(1);
    let sample = (1..keys).step_by(step).chain([keys - 1]);
    let expect = |i: usize, tag: &str| Some(Value::from(value_text(tag, i)));
    if api.value(agent, &key(PREFIX, 0)).await.ok().flatten() != expect(0, first) {
        return false;
    }
    for i in sample {
        if api.value(agent, &key(PREFIX, i)).await.ok().flatten() != expect(i, "net") {
            return false;
        }
    }
    true
}

pub(super) async fn counters(api: &Api, peers: &[String]) -> Result<Counters> {
    let body = api.cluster_stats(peers).await?;
    Ok(Counters {
        body,
        wire: machine::in_private_netns()
            .then(machine::loopback_bytes)
            .flatten(),
    })
}

/// Bytes sent between two readings, divided by `per`: (body, wire).
pub(super) fn delta(before: Counters, after: Counters, per: f64) -> (f64, Option<f64>) {
    let body = after.body.bytes_sent.saturating_sub(before.body.bytes_sent) as f64 / per;
    let wire = before
        .wire
        .zip(after.wire)
        .map(|(b, a)| a.saturating_sub(b) as f64 / per);
    (body, wire)
}

pub(super) fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
