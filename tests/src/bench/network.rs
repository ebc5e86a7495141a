//! Scenario 2 and 5: what gossip costs on the network for a large state, at rest and
//! after one key changes, and how long a restarted empty agent takes to catch up.
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
    Outcome,
    client::{Api, PeerStats, base, key, value_text},
    convergence::{PULL_MS, PUSH_MS, R0},
    error::{Error, Result},
    machine,
    report::{Figure, Target, Unit},
};
use crate::{ClusterBuilder, Node, wait_until};

const PREFIX: &str = "net";
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
struct Counters {
    body: PeerStats,
    wire: Option<u64>,
}

/// Loads the state, then measures the network at rest, after one change, and a
/// restarted agent's catch-up.
pub async fn run(binary: &Path, setup: Setup) -> Result<Outcome> {
    let mut cluster = ClusterBuilder::new(binary, setup.agents)
        .push_ms(PUSH_MS)
        .pull_ms(PULL_MS)
        .r0(R0)
        .start()
        .await;
    let api = Api::new()?;
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

    api.load(
        &format!("{}/", agents[0]),
        PREFIX,
        "net",
        0..setup.keys,
        BATCH,
    )
    .await?;
    let spread = Duration::from_secs(60 + setup.keys as u64 / 1000);
    for agent in &agents {
        if !holds_sample(&api, agent, setup.keys, "net").await {
            let held = wait_until(spread, || holds_sample(&api, agent, setup.keys, "net")).await;
            if !held {
                return Err(Error::Timeout(format!(
                    "{scenario}: {agent} did not receive the {} keys within {} s",
                    setup.keys,
                    spread.as_secs()
                )));
            }
        }
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

    let mut outcome = Outcome::default();
    let targets = setup.has_targets();
    let with = |figure: Figure, bound: f64| {
        if targets {
            figure.target(Target::at_most(bound, "issue 8"))
        } else {
            figure
        }
    };
    let wire_note = if machine::in_private_netns() {
        "loopback bytes incl. HTTP/TCP/IP headers"
    } else {
        "needs a private network namespace (unshare --net)"
    };
    outcome.figures.extend([
        with(
            Figure::new(
                &scenario,
                "at rest, per pull interval (body)",
                Some(rest_body),
                Unit::Bytes,
            ),
            25e3,
        )
        .note("sum of bytes_sent over agents, 3 pull intervals / 3"),
        with(
            Figure::new(
                &scenario,
                "at rest, per pull interval (wire)",
                rest_wire,
                Unit::Bytes,
            ),
            25e3,
        )
        .note(wire_note),
        with(
            Figure::new(
                &scenario,
                "3 pull intervals after 1 change (body)",
                Some(change_body),
                Unit::Bytes,
            ),
            200e3,
        )
        .note(if targets {
            "sum of bytes_sent over agents; 0.1: ~63 MB"
        } else {
            "sum of bytes_sent over agents"
        }),
        with(
            Figure::new(
                &scenario,
                "3 pull intervals after 1 change (wire)",
                change_wire,
                Unit::Bytes,
            ),
            200e3,
        )
        .note(format!(
            "{wire_note}; includes the one PUT on the agent port"
        )),
    ]);

    let catch_up = catch_up(&api, cluster.nodes.last_mut(), &peers, setup, &scenario).await?;
    outcome.figures.extend(catch_up);
    Ok(outcome)
}

/// Kills the last agent, starts it again empty and times until it holds every key.
async fn catch_up(
    api: &Api,
    node: Option<&mut Node>,
    peers: &[String],
    setup: Setup,
    scenario: &str,
) -> Result<Vec<Figure>> {
    let Some(node) = node else {
        return Ok(Vec::new());
    };
    let agent = base(node.agent_port);
    node.kill();
    let others = &peers[..peers.len() - 1];
    let before = counters(api, others).await?;
    let start = Instant::now();
    node.spawn();
    let deadline = Duration::from_secs(30 + setup.keys as u64 / 2000);
    let ready = wait_until(deadline, || node.is_ready())
        .await
        .then(|| start.elapsed());
    let sampled = wait_until(deadline, || {
        holds_sample(api, &agent, setup.keys, "changed")
    })
    .await;
    if !sampled {
        return Err(Error::Timeout(format!(
            "{scenario}: the restarted agent did not catch up within {} s",
            deadline.as_secs()
        )));
    }
    let mut caught_up = start.elapsed();
    let mut missing = missing_keys(api, &agent, setup.keys).await;
    while missing > 0 && start.elapsed() < deadline {
        missing = missing_keys(api, &agent, setup.keys).await;
        caught_up = start.elapsed();
    }
    let after = counters(api, others).await?;
    let bytes = after.body.bytes_sent.saturating_sub(before.body.bytes_sent);
    let name = format!("catch-up {} keys", setup.keys);
    let mut time = Figure::new(
        scenario,
        &format!("{name}, from process start"),
        Some(ms(caught_up)),
        Unit::Ms,
    )
    .note(if missing == 0 {
        "every key read back".to_owned()
    } else {
        format!("{missing} keys still missing at the deadline")
    });
    if setup.keys == 20_000 {
        time = time.target(Target::at_most(1000.0, "issue 6/8"));
    }
    Ok(vec![
        Figure::new(
            scenario,
            "restarted agent ready (both ports answer)",
            ready.map(ms),
            Unit::Ms,
        ),
        time,
        Figure::new(
            scenario,
            &format!("{name}, body bytes sent by peers"),
            Some(bytes as f64),
            Unit::Bytes,
        ),
    ])
}

/// Whether `agent` holds every 1000th key, the last one, and key 0 with tag `first`.
async fn holds_sample(api: &Api, agent: &str, keys: usize, first: &str) -> bool {
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

/// How many of the `keys` keys `agent` does not hold (16 requests in flight).
async fn missing_keys(api: &Api, agent: &str, keys: usize) -> usize {
    let mut missing = 0;
    let mut next = 0;
    let mut tasks = tokio::task::JoinSet::new();
    while next < keys || !tasks.is_empty() {
        while next < keys && tasks.len() < 16 {
            let (api, agent, key) = (api.clone(), agent.to_owned(), key(PREFIX, next));
            tasks.spawn(async move { matches!(api.value(&agent, &key).await, Ok(Some(_))) });
            next += 1;
        }
        if let Some(result) = tasks.join_next().await
            && !result.unwrap_or(false)
        {
            missing += 1;
        }
    }
    missing
}

async fn counters(api: &Api, peers: &[String]) -> Result<Counters> {
    let body = api.cluster_stats(peers).await?;
    Ok(Counters {
        body,
        wire: machine::in_private_netns()
            .then(machine::loopback_bytes)
            .flatten(),
    })
}

/// Bytes sent between two readings, divided by `per`: (body, wire).
fn delta(before: Counters, after: Counters, per: f64) -> (f64, Option<f64>) {
    let body = after.body.bytes_sent.saturating_sub(before.body.bytes_sent) as f64 / per;
    let wire = before
        .wire
        .zip(after.wire)
        .map(|(b, a)| a.saturating_sub(b) as f64 / per);
    (body, wire)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
