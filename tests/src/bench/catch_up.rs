//! Scenario 5: a restarted empty agent, timed from its process start until it reads
//! every key of the cluster's state (run on the network scenario's cluster).

use std::time::{Duration, Instant};

use super::{
    client::{Api, base, key},
    error::{Error, Result},
    network::{PREFIX, Setup, counters, holds_sample, ms},
    report::{Figure, Target, Unit},
};
use crate::{Node, wait_until};

/// Kills the last agent, starts it again empty and times until it holds every key.
pub async fn run(
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
