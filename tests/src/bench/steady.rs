//! Scenario 10: a steady 1,000 writes/s spread over 10 agents (issue 19): push rounds
//! per agent per second (the rule: at most one per `push_interval`, plus the leading
//! edge), push bytes per change, and how long a probe key takes to reach every agent
//! meanwhile (each agent watched for the probes only, as in the convergence scenario).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::{
    Outcome,
    client::{Api, base, value_text},
    convergence::{self, DEADLINE, PULL_MS, PUSH_MS, R0},
    error::{Error, Result},
    report::{Figure, Target, Unit},
    stats::Summary,
    watch::Watchers,
};
use crate::{Node, http};

const SCENARIO: &str = "steady 1,000 writes/s, 10 agents";
const AGENTS: usize = 10;
/// Writes per second over all agents.
const RATE: u32 = 1000;
/// How long the load runs.
const LOAD: Duration = Duration::from_secs(20);
/// Keys the load overwrites.
const KEYS: usize = 1000;
/// The probes' keys: the agents' watches send these alone, not the load's changes.
const PROBE: &str = "probe-";

/// The sum over `nodes` of the sample `name{operation="push"}` in their metrics.
pub(super) async fn push_total(nodes: &[Node], name: &str) -> Result<f64> {
    let mut total = 0.0;
    for node in nodes {
        let text = http()
            .get(node.telemetry_url("/metrics"))
            .send()
            .await
            .map_err(|error| Error::Answer {
                what: format!("GET {}", node.telemetry_url("/metrics")),
                detail: error.to_string(),
            })?
            .text()
            .await
            .unwrap_or_default();
        total += text
            .lines()
            .filter(|line| {
                line.starts_with(&format!("{name}{{")) && line.contains(r#"operation="push""#)
            })
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>();
    }
    Ok(total)
}

/// Runs the load and the probes.
pub async fn run(binary: &Path) -> Result<Outcome> {
    let cluster = convergence::cluster(binary, AGENTS).start().await;
    let agents: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| base(node.agent_port))
        .collect();
    let api = Api::new()?;
    let mut watchers = Watchers::open(&agents, PROBE).await?;
    let rounds_before = push_total(&cluster.nodes, "c19_connection_rounds_total").await?;
    let bytes_before = push_total(&cluster.nodes, "c19_connection_sent_bytes_total").await?;

    let started = Instant::now();
    let mut writers = JoinSet::new();
    for (w, agent) in agents.iter().enumerate() {
        let (api, url) = (api.clone(), format!("{agent}/"));
        writers.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) * AGENTS as u32 / RATE);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut written = 0u64;
            while started.elapsed() < LOAD {
                tick.tick().await;
                let i = (written as usize * AGENTS + w) % KEYS;
                let body = serde_json::to_vec(
                    &json!({ format!("steady-{i}"): {"value": value_text("s", written as usize)} }),
                )
                .unwrap_or_default();
                api.put(&url, body).await?;
                written += 1;
            }
            Ok::<u64, Error>(written)
        });
    }
    let mut probes = Vec::new();
    let mut lost = 0;
    let mut i = 0;
    while started.elapsed() + Duration::from_secs(1) < LOAD {
        let key = format!("{PROBE}{i}");
        let value = Value::from(value_text("probe", i));
        let start = Instant::now();
        let body = serde_json::to_vec(&json!({ &key: { "value": value } })).unwrap_or_default();
        api.put(&format!("{}/", agents[(i * 3) % AGENTS]), body)
            .await?;
        match watchers
            .everywhere(&key, &Some(value), start, DEADLINE)
            .await?
        {
            Some(elapsed) => probes.push(elapsed),
            None => {
                lost += 1;
                probes.push(DEADLINE);
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut writes = 0u64;
    while let Some(done) = writers.join_next().await {
        writes += done.map_err(|error| Error::Timeout(format!("a writer failed: {error}")))??;
    }
    let elapsed = started.elapsed();
    // The last changes go out within a push interval or two.
    tokio::time::sleep(Duration::from_millis(3 * PUSH_MS)).await;
    let rounds = push_total(&cluster.nodes, "c19_connection_rounds_total").await? - rounds_before;
    let bytes = push_total(&cluster.nodes, "c19_connection_sent_bytes_total").await? - bytes_before;
    drop(watchers);
    drop(cluster);

    let seconds = elapsed.as_secs_f64() + 3.0 * PUSH_MS as f64 / 1000.0;
    let per_agent = rounds / AGENTS as f64 / seconds;
    let changes = writes as f64 + probes.len() as f64;
    let summary = Summary::of_durations_ms(&probes);
    let load = format!(
        "{writes} writes in {:.1} s ({:.0}/s) over {AGENTS} agents, {KEYS} keys, push {PUSH_MS} ms, pull {PULL_MS} ms, r0 {R0}",
        elapsed.as_secs_f64(),
        writes as f64 / elapsed.as_secs_f64()
    );
    Ok(Outcome {
        figures: vec![
            Figure::new(
                SCENARIO,
                "push rounds per agent per second",
                Some(per_agent),
                Unit::PerSec,
            )
            .target(Target::at_most(1000.0 / PUSH_MS as f64 + 1.0, "issue 19"))
            .note(load.clone()),
            Figure::new(
                SCENARIO,
                "push body bytes per change",
                Some(bytes / changes.max(1.0)),
                Unit::Bytes,
            )
            .note(format!(
                "{load}; push bodies of all agents over the changes written"
            )),
            Figure::new(
                SCENARIO,
                "probe key on every agent, p50",
                summary.map(|s| s.p50),
                Unit::Ms,
            )
            .note(format!(
                "{} probes written during the load, each agent watched; {lost} lost",
                probes.len()
            )),
            Figure::new(
                SCENARIO,
                "probe key on every agent, p90",
                summary.map(|s| s.p90),
                Unit::Ms,
            )
            .target(Target::at_most(2.0 * PUSH_MS as f64, "issue 19")),
        ],
        points: Vec::new(),
    })
}
