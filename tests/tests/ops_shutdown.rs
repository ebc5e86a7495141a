//! Graceful shutdown: a write acknowledged just before SIGTERM reaches a peer although
//! gossip rounds are a minute apart, and an agent whose peers are gone still exits within
//! its grace period.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops;

use c19_tests::{ClusterBuilder, agent_bin, wait_until};
use ops::DEADLINE;
use serde_json::json;

#[tokio::test]
async fn a_write_acknowledged_just_before_sigterm_is_readable_on_a_peer() {
    // Neither a push nor a pull comes round during the test: only the last push on
    // shutdown can carry the write.
    let mut cluster = ClusterBuilder::new(agent_bin!(), 2)
        .push_ms(60_000)
        .pull_ms(60_000)
        .start()
        .await;
    cluster.nodes[0]
        .set("last-words", json!("pushed on the way out"))
        .await;
    cluster.nodes[0].signal("TERM");

    let code = cluster.nodes[0].wait_exit(DEADLINE).await;
    assert_eq!(code, Some(0), "logs:\n{}", cluster.logs());
    let b = &cluster.nodes[1];
    let arrived = wait_until(DEADLINE, || async {
        b.value("last-words").await == Some(json!("pushed on the way out"))
    })
    .await;
    assert!(
        arrived,
        "the write did not reach the peer; logs:\n{}",
        cluster.logs()
    );
    assert!(
        cluster.nodes[0]
            .logs()
            .contains("pushed the changes not yet published before exiting"),
        "{}",
        cluster.logs()
    );
}

#[tokio::test]
async fn without_a_reachable_peer_the_agent_still_exits_within_its_grace_period() {
    let mut cluster = ClusterBuilder::new(agent_bin!(), 2)
        .push_ms(60_000)
        .pull_ms(60_000)
        .build();
    cluster.nodes[0].env("C19_SPEC__GRACE_PERIOD", "500");
    cluster.nodes[0].start().await;
    // The peer never runs: the last push has nowhere to go.
    cluster.nodes[0].set("stranded", json!(1)).await;
    cluster.nodes[0].signal("TERM");
    let code = cluster.nodes[0].wait_exit(DEADLINE).await;
    assert_eq!(code, Some(0), "logs:\n{}", cluster.logs());
    assert!(
        cluster.nodes[0]
            .logs()
            .contains("did not stop within the grace period"),
        "{}",
        cluster.logs()
    );
}
