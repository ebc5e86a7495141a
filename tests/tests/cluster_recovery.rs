//! Agents that miss gossip catch up: one killed and restarted empty, and one cut off from
//! its peers by link-level fault injection while both sides keep taking writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use c19_tests::{ClusterBuilder, agent_bin};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restarted_empty_catches_up_without_waiting_for_a_gossip_round() {
    // Pushes and pulls a minute apart: within this test, only the pull an agent makes
    // when it starts can bring it keys written elsewhere.
    let mut cluster = ClusterBuilder::new(agent_bin!(), 3)
        .push_ms(60_000)
        .pull_ms(60_000)
        .start()
        .await;
    for i in 0..5 {
        cluster.nodes[0].set(&format!("old-{i}"), json!(i)).await;
    }
    cluster.nodes[2].kill();
    cluster.nodes[0].set("while-down", json!("missed")).await;
    cluster.nodes[2].start().await;

    let restarted = &cluster.nodes[2];
    let caught_up = c19_tests::wait_until(DEADLINE, || async {
        for i in 0..5 {
            if restarted.value(&format!("old-{i}")).await != Some(json!(i)) {
                return false;
            }
        }
        restarted.value("while-down").await == Some(json!("missed"))
    })
    .await;
    assert!(
        caught_up,
        "the restarted agent did not catch up; logs:\n{}",
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_agent_catches_up_and_writes_on_both_sides_survive() {
    let cluster = ClusterBuilder::new(agent_bin!(), 3).proxied().start().await;
    let nodes = &cluster.nodes;
    let ts = 1_700_000_000_000_u64;
    nodes[0]
        .set("doomed", json!("deleted during the cut"))
        .await;
    assert_eq!(
        nodes[0]
            .put(json!({"contested": {"value": "before the cut", "ts": ts}}))
            .await,
        204
    );
    assert!(
        cluster
            .converged("doomed", Some(json!("deleted during the cut")), DEADLINE)
            .await,
        "{}",
        cluster.logs()
    );
    assert!(
        cluster
            .converged("contested", Some(json!("before the cut")), DEADLINE)
            .await,
        "{}",
        cluster.logs()
    );

    cluster.cut(2);
    // The majority side writes...
    nodes[0].set("majority", json!("written by node 0")).await;
    assert_eq!(
        nodes[1]
            .put(json!({"contested": {"value": "older, majority", "ts": ts + 1000}}))
            .await,
        204
    );
    // ...and so does the agent cut off.
    nodes[2].set("minority", json!("written by node 2")).await;
    assert_eq!(
        nodes[2]
            .put(json!({"contested": {"value": "newer, minority", "ts": ts + 2000}}))
            .await,
        204
    );
    assert_eq!(nodes[2].delete("doomed").await, 204);

    let majority_has_it = c19_tests::wait_until(DEADLINE, || async {
        nodes[1].value("majority").await == Some(json!("written by node 0"))
    })
    .await;
    assert!(majority_has_it, "{}", cluster.logs());
    assert_eq!(
        nodes[2].value("majority").await,
        None,
        "the cut did not isolate node 2"
    );
    assert_eq!(
        nodes[0].value("minority").await,
        None,
        "the cut did not isolate node 2"
    );

    cluster.heal(2);
    for (key, expected) in [
        ("majority", Some(json!("written by node 0"))),
        ("minority", Some(json!("written by node 2"))),
        ("contested", Some(json!("newer, minority"))),
        ("doomed", None),
    ] {
        assert!(
            cluster.converged(key, expected.clone(), DEADLINE).await,
            "after the heal, `{key}` is not {expected:?} everywhere; logs:\n{}",
            cluster.logs()
        );
    }
}
