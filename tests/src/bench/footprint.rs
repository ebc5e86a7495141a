//! Scenario 7: what an agent holds in memory where it runs in every pod — a fresh idle
//! agent, the same agent with 10,000 small keys, and three agents after a burst of
//! overwrites (how much memory comes back once the burst is over).

use std::time::{Duration, Instant};

use super::{
    Outcome, Solo,
    client::{Api, base, batch_body},
    convergence::{PULL_MS, PUSH_MS, R0},
    error::{Error, Result},
    machine::{rss_bytes, rss_parts},
    report::{Figure, Target, Unit},
};
use crate::{ClusterBuilder, Node};

const SCENARIO: &str = "footprint";
/// Time for a fresh or loaded agent to settle before its RSS is read.
const SETTLE: Duration = Duration::from_secs(2);
/// Keys of the loaded agent.
const SMALL_KEYS: usize = 10_000;
/// The burst: overwrites of `BURST_KEYS` keys over `BURST_TIME`, `PER_PUT` keys a PUT.
const BURST_WRITES: usize = 300_000;
const BURST_KEYS: usize = 5_000;
const BURST_TIME: Duration = Duration::from_secs(30);
const PER_PUT: usize = 10;
/// How long after the burst memory must have come back.
const AFTER_BURST: Duration = Duration::from_secs(30);

/// The resident memory of `node`.
fn rss(node: &Node) -> Result<u64> {
    node.pid().and_then(rss_bytes).ok_or_else(|| Error::Io {
        what: format!("reading the resident memory of {}", node.name),
        source: std::io::Error::other("no VmRSS (has the agent exited?)"),
    })
}

/// Measures the idle and loaded agent, then the burst.
pub async fn run(binary: &std::path::Path) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    let api = Api::new()?;

    let solo = Solo::start(binary).await?;
    tokio::time::sleep(SETTLE).await;
    let idle = rss(&solo.node)?;
    let parts = solo.node.pid().and_then(rss_parts);
    let agent = base(solo.node.agent_port);
    api.load(&format!("{agent}/"), "small", "s", 0..SMALL_KEYS, 1_000)
        .await?;
    tokio::time::sleep(SETTLE).await;
    let loaded = rss(&solo.node)?;
    drop(solo);
    outcome.figures.extend([
        Figure::new(
            SCENARIO,
            "idle RSS, fresh agent",
            Some(idle as f64),
            Unit::Bytes,
        )
        .target(Target::at_most(12e6, "issue 15"))
        .note("0.1: about 7 MB; Serf documents 5-10 MB"),
        Figure::new(
            SCENARIO,
            "idle RSS, anonymous part",
            parts.map(|(anon, _)| anon as f64),
            Unit::Bytes,
        )
        .note("heap, stacks, relocated data: what the agent itself allocated"),
        Figure::new(
            SCENARIO,
            "idle RSS, file-backed part",
            parts.map(|(_, file)| file as f64),
            Unit::Bytes,
        )
        .note("pages of the binary and libc that start-up ran, mapped 64 KB at a time by the kernel; clean, shared by agents of one binary"),
        Figure::new(
            SCENARIO,
            "RSS holding 10,000 small keys",
            Some(loaded as f64),
            Unit::Bytes,
        )
        .target(Target::at_most(20e6, "issue 15"))
        .note("~60-byte values, loaded in PUTs of 1,000"),
    ]);
    outcome.figures.extend(burst(binary, &api).await?);
    Ok(outcome)
}

/// Three agents take the burst, spread over them; their RSS at the end and after.
async fn burst(binary: &std::path::Path, api: &Api) -> Result<Vec<Figure>> {
    let cluster = ClusterBuilder::new(binary, 3)
        .push_ms(PUSH_MS)
        .pull_ms(PULL_MS)
        .r0(R0)
        .start()
        .await;
    let puts = BURST_WRITES / PER_PUT;
    let writers = cluster.nodes.len();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, node) in cluster.nodes.iter().enumerate() {
        let url = format!("{}/", base(node.agent_port));
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            // Each writer paces its share of the PUTs evenly over the burst.
            let share = puts / writers;
            let pace = BURST_TIME / share as u32;
            let mut tick = tokio::time::interval(pace);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for i in 0..share {
                tick.tick().await;
                let first = ((i * writers + w) * PER_PUT) % BURST_KEYS;
                let tag = format!("b{i}");
                api.put(&url, batch_body("burst", &tag, first..first + PER_PUT))
                    .await?;
            }
            Ok::<(), Error>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|error| Error::Timeout(format!("a burst writer failed: {error}")))??;
    }
    let took = started.elapsed();
    let at_end = max_rss(&cluster.nodes)?;
    let mut after = at_end;
    let ended = Instant::now();
    while ended.elapsed() < AFTER_BURST {
        tokio::time::sleep(Duration::from_secs(1)).await;
        after = max_rss(&cluster.nodes)?;
    }
    let note = format!(
        "{BURST_WRITES} overwrites of {BURST_KEYS} keys in {:.1} s, {PER_PUT} keys a PUT, spread over 3 agents; largest RSS of the three",
        took.as_secs_f64()
    );
    Ok(vec![
        Figure::new(
            SCENARIO,
            "RSS at the end of a burst, 3 agents",
            Some(at_end as f64),
            Unit::Bytes,
        )
        .note(note.clone()),
        Figure::new(
            SCENARIO,
            "RSS 30 s after the burst, 3 agents",
            Some(after as f64),
            Unit::Bytes,
        )
        .target(Target::at_most(24e6, "issue 15"))
        .note(format!("{note}; before this work about 60 MB")),
    ])
}

fn max_rss(nodes: &[Node]) -> Result<u64> {
    let mut max = 0;
    for node in nodes {
        max = max.max(rss(node)?);
    }
    Ok(max)
}
