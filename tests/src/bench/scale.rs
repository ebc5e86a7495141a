//! Scenario 9: 100 real agent processes on this machine (issue 19): how long a new key
//! takes to reach all of them (each agent watched, as in the convergence scenario), and
//! the memory of all 100.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use super::{
    Outcome,
    client::{Api, base, value_text},
    convergence::{self, DEADLINE, PULL_MS, PUSH_MS, R0},
    error::{Error, Result},
    machine::rss_bytes,
    report::{Figure, Unit},
    stats::Summary,
    watch::Watchers,
};

const SCENARIO: &str = "100 agents";
/// Agents started.
const AGENTS: usize = 100;
/// Quiet before each write, as in the convergence scenario.
const IDLE: Duration = Duration::from_millis(3 * PUSH_MS);

/// Starts the agents, measures `writes` new keys, then reads every agent's RSS.
pub async fn run(binary: &Path, writes: usize) -> Result<Outcome> {
    let started = Instant::now();
    let cluster = convergence::cluster(binary, AGENTS).start().await;
    let start_up = started.elapsed();
    let agents: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| base(node.agent_port))
        .collect();
    let api = Api::new()?;
    let mut watchers = Watchers::open(&agents, "scale-").await?;
    let mut times = Vec::new();
    let mut lost = 0;
    for i in 0..writes {
        let key = format!("scale-{i}");
        let value = Value::from(value_text("scale", i));
        tokio::time::sleep(IDLE).await;
        let start = Instant::now();
        let body = serde_json::to_vec(&json!({ &key: { "value": value } })).unwrap_or_default();
        api.put(&format!("{}/", agents[(i * 37) % AGENTS]), body)
            .await?;
        match watchers
            .everywhere(&key, &Some(value), start, DEADLINE)
            .await?
        {
            Some(elapsed) => times.push(elapsed),
            None => {
                lost += 1;
                times.push(DEADLINE);
            }
        }
    }
    let mut rss: Vec<u64> = cluster
        .nodes
        .iter()
        .filter_map(|node| node.pid().and_then(rss_bytes))
        .collect();
    drop(watchers);
    drop(cluster);
    if rss.len() != AGENTS {
        return Err(Error::Timeout(format!(
            "only {} of {AGENTS} agents were still running",
            rss.len()
        )));
    }
    rss.sort_unstable();
    let total: u64 = rss.iter().sum();
    let summary = Summary::of_durations_ms(&times);
    let note = format!(
        "{writes} new keys at an idle cluster, push {PUSH_MS} ms, pull {PULL_MS} ms, r0 {R0}; each agent watched; {lost} lost; all {AGENTS} started in {:.1} s",
        start_up.as_secs_f64()
    );
    Ok(Outcome {
        figures: vec![
            Figure::new(SCENARIO, "new key p50", summary.map(|s| s.p50), Unit::Ms)
                .note(note.clone()),
            Figure::new(SCENARIO, "new key p90", summary.map(|s| s.p90), Unit::Ms)
                .note(note.clone()),
            Figure::new(SCENARIO, "new key max", summary.map(|s| s.max), Unit::Ms).note(note),
            Figure::new(
                SCENARIO,
                "RSS of all 100 agents",
                Some(total as f64),
                Unit::Bytes,
            )
            .note("summed, after the writes"),
            Figure::new(
                SCENARIO,
                "RSS per agent, median",
                Some(rss[AGENTS / 2] as f64),
                Unit::Bytes,
            ),
            Figure::new(
                SCENARIO,
                "RSS per agent, largest",
                rss.last().map(|&max| max as f64),
                Unit::Bytes,
            ),
        ],
        points: Vec::new(),
    })
}
