//! A delete whose tombstone was forgotten on one side does not come back from an agent
//! that was cut off longer than the grace period (`tombstone_ttl`): when the cut heals,
//! that agent drops what such a delete may shadow and resynchronises, and nobody serves
//! the deleted value again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sync_support;

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use c19_tests::{Cluster, ClusterBuilder, wait_until};
use serde_json::json;
use sync_support::*;

const DEADLINE: Duration = Duration::from_secs(30);
/// The grace period: short, so the test need not wait an hour.
const TOMBSTONE_TTL_MS: u64 = 2000;

/// Whether any of the first two nodes (the side that deleted) serves `doomed`.
async fn majority_serves_doomed(cluster: &Cluster) -> bool {
    for node in &cluster.nodes[..2] {
        if node.value("doomed").await.is_some() {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_delete_does_not_come_back_from_an_agent_that_was_away() {
    let cluster = ClusterBuilder::new(c19_tests::agent_bin!(), 3)
        .proxied()
        .push_ms(100)
        .pull_ms(300)
        .state_yaml(&format!(
            "tombstone_ttl: {TOMBSTONE_TTL_MS}\npurge_interval: 200"
        ))
        .start()
        .await;
    let nodes = &cluster.nodes;
    nodes[0]
        .set("doomed", json!("deleted while node 2 is away"))
        .await;
    nodes[0].set("kept", json!("written before the cut")).await;
    for key in ["doomed", "kept"] {
        assert!(
            cluster
                .converged(key, nodes[0].value(key).await, DEADLINE)
                .await,
            "{}",
            cluster.logs()
        );
    }

    cluster.cut(2);
    assert_eq!(nodes[0].delete("doomed").await, 204);
    let deleted = wait_until(DEADLINE, || async {
        !majority_serves_doomed(&cluster).await
    })
    .await;
    assert!(deleted, "{}", cluster.logs());
    // The majority forgets the tombstone: its whole state no longer mentions the key.
    let forgotten = wait_until(DEADLINE, || async {
        for node in &nodes[..2] {
            if whole_state(node).await.0.contains_key("doomed") {
                return false;
            }
        }
        true
    })
    .await;
    assert!(
        forgotten,
        "the tombstone was never swept; logs:\n{}",
        cluster.logs()
    );
    assert_eq!(
        nodes[2].value("doomed").await,
        Some(json!("deleted while node 2 is away")),
        "the cut did not isolate node 2"
    );
    nodes[0].set("written-during-the-cut", json!(1)).await;

    cluster.heal(2);
    let resurrected = AtomicBool::new(false);
    let watch = || async {
        if majority_serves_doomed(&cluster).await {
            resurrected.store(true, Ordering::SeqCst);
        }
    };
    let repaired = wait_until(DEADLINE, || async {
        watch().await;
        nodes[2].value("written-during-the-cut").await == Some(json!(1))
            && nodes[2].value("doomed").await.is_none()
            && nodes[2].value("kept").await == Some(json!("written before the cut"))
    })
    .await;
    assert!(
        repaired,
        "node 2 did not resynchronise; logs:\n{}",
        cluster.logs()
    );
    // Several more exchanges everywhere, and the key stays deleted on every node.
    let mut marks = Vec::new();
    for node in nodes {
        marks.push(counter(node, "pulls").await);
    }
    let settled = wait_until(DEADLINE, || async {
        watch().await;
        for (node, mark) in nodes.iter().zip(&marks) {
            if counter(node, "pulls").await < mark + 3 {
                return false;
            }
        }
        true
    })
    .await;
    assert!(settled, "{}", cluster.logs());
    assert!(
        !resurrected.load(Ordering::SeqCst),
        "the deleted value came back on the majority side; logs:\n{}",
        cluster.logs()
    );
    for node in nodes {
        assert_eq!(node.value("doomed").await, None, "{} serves it", node.name);
        assert!(
            !whole_state(node).await.0.contains_key("doomed"),
            "{}",
            node.name
        );
    }
    assert!(
        nodes[2]
            .logs()
            .contains("out of touch for longer than the grace period"),
        "node 2 did not say why it dropped entries"
    );
}
