//! Every kind of write reaches every agent: a new key, an overwrite, a delete and a TTL
//! expiry, in clusters of 3 and 10 agents gossiping through the Default connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use c19_tests::{Cluster, ClusterBuilder, agent_bin, wait_until};
use serde_json::json;

/// Generous: the machine running the tests may be busy.
const DEADLINE: Duration = Duration::from_secs(30);

/// How long the expiring value lives; it must reach every agent first.
const TTL_MS: u64 = 8000;

async fn new_key_overwrite_delete_and_expiry_reach_everyone(cluster: &Cluster) {
    let nodes = &cluster.nodes;
    let last = nodes.len() - 1;

    nodes[0].set("cat", json!("garfield")).await;
    assert!(
        cluster
            .converged("cat", Some(json!("garfield")), DEADLINE)
            .await,
        "a new key did not reach every agent; logs:\n{}",
        cluster.logs()
    );

    nodes[last]
        .set("cat", json!({"name": "tom", "lives": 9}))
        .await;
    assert!(
        cluster
            .converged("cat", Some(json!({"name": "tom", "lives": 9})), DEADLINE)
            .await,
        "an overwrite did not reach every agent; logs:\n{}",
        cluster.logs()
    );

    assert_eq!(nodes[1].delete("cat").await, 204);
    assert!(
        cluster.converged("cat", None, DEADLINE).await,
        "a delete did not reach every agent; logs:\n{}",
        cluster.logs()
    );

    let status = nodes[last]
        .put(json!({"mayfly": {"value": "alive", "ttl": TTL_MS}}))
        .await;
    assert_eq!(status, 204);
    let everywhere = wait_until(Duration::from_millis(TTL_MS - 1000), || async {
        for node in nodes {
            if node.value("mayfly").await != Some(json!("alive")) {
                return false;
            }
        }
        true
    })
    .await;
    assert!(
        everywhere,
        "the expiring value did not reach every agent in time; logs:\n{}",
        cluster.logs()
    );
    assert!(
        cluster.converged("mayfly", None, DEADLINE).await,
        "an expired value is still served somewhere; logs:\n{}",
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents() {
    let cluster = ClusterBuilder::new(agent_bin!(), 3).start().await;
    new_key_overwrite_delete_and_expiry_reach_everyone(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_agents() {
    let cluster = ClusterBuilder::new(agent_bin!(), 10).start().await;
    new_key_overwrite_delete_and_expiry_reach_everyone(&cluster).await;
}

/// Pushes are on the leading edge: an idle agent pushes a change at once, and changes
/// within an interval of its last push wait for that interval's end. With a 10 s push
/// interval and a 5-minute pull interval, only the first can arrive within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_agent_pushes_at_once_and_then_once_per_interval() {
    let cluster = ClusterBuilder::new(agent_bin!(), 3)
        .push_ms(10_000)
        .pull_ms(300_000)
        .start()
        .await;
    let nodes = &cluster.nodes;
    // Let the start-up pulls end: an agent catching up pushes at its interval.
    let all_ready = wait_until(DEADLINE, || async {
        for node in nodes {
            let ready = c19_tests::http()
                .get(node.telemetry_url("/readyz"))
                .send()
                .await
                .is_ok_and(|response| response.status() == 200);
            if !ready {
                return false;
            }
        }
        true
    })
    .await;
    assert!(all_ready, "{}", cluster.logs());
    tokio::time::sleep(Duration::from_secs(11)).await;

    nodes[0].set("first", json!(1)).await;
    let written = std::time::Instant::now();
    assert!(
        cluster
            .converged("first", Some(json!(1)), Duration::from_secs(5))
            .await,
        "a change on an idle agent waited for a tick; logs:\n{}",
        cluster.logs()
    );
    nodes[0].set("second", json!(2)).await;
    assert!(
        !cluster
            .converged("second", Some(json!(2)), Duration::from_secs(5))
            .await,
        "a second change went out within the push interval of the first"
    );
    assert!(
        cluster.converged("second", Some(json!(2)), DEADLINE).await,
        "{}",
        cluster.logs()
    );
    assert!(written.elapsed() >= Duration::from_secs(9));
}
