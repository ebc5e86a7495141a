//! `persistence`: a whole cluster stopped and started again keeps every key and every
//! delete, TTLs keep counting from the write's `ts`, a copy of a stopped agent's data
//! directory restores it, and a persisting agent is an ordinary peer of agents that do
//! not persist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, time::Duration};

use c19_tests::{Cluster, ClusterBuilder, Node, agent_bin, http, wait_until};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);

/// Every record the node holds, tombstones included (its peer port's `GET /`).
async fn held(node: &Node) -> serde_json::Map<String, Value> {
    let response = http().get(node.peer_url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn is_tombstone(entry: Option<&Value>) -> bool {
    entry.is_some_and(|entry| entry["deleted"] == json!(true))
}

/// Stops every node with SIGTERM and checks that each exits cleanly.
async fn stop_all(cluster: &mut Cluster) {
    for node in &cluster.nodes {
        node.signal("TERM");
    }
    for node in &mut cluster.nodes {
        let code = node.wait_exit(DEADLINE).await;
        assert_eq!(code, Some(0), "{}", node.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cluster_restart_keeps_every_key_every_delete_and_every_ttl() {
    let mut cluster = ClusterBuilder::new(agent_bin!(), 3)
        .persisted(&[0, 1, 2], "sync: always")
        .start()
        .await;
    for i in 0..100 {
        cluster.nodes[i % 3]
            .set(&format!("key-{i}"), json!(i))
            .await;
    }
    for i in 0..10 {
        assert_eq!(
            cluster.nodes[(i + 1) % 3].delete(&format!("key-{i}")).await,
            204
        );
    }
    let status = cluster.nodes[0]
        .put(json!({"brief": {"value": "short-lived", "ttl": 6000}}))
        .await;
    assert_eq!(status, 204);
    let brief = cluster.nodes[0].get("brief").await.unwrap();
    let everywhere = wait_until(DEADLINE, || async {
        for node in &cluster.nodes {
            let records = held(node).await;
            if records.len() != 101 || !is_tombstone(records.get("key-9")) {
                return false;
            }
        }
        true
    })
    .await;
    assert!(
        everywhere,
        "the cluster did not converge:\n{}",
        cluster.logs()
    );

    stop_all(&mut cluster).await;
    for node in &mut cluster.nodes {
        node.spawn();
    }
    for node in &cluster.nodes {
        assert!(
            wait_until(DEADLINE, || node.is_ready()).await,
            "{}",
            node.logs()
        );
    }

    for node in &cluster.nodes {
        let records = held(node).await;
        for i in 0..10 {
            assert!(
                is_tombstone(records.get(&format!("key-{i}"))),
                "{}: the delete of key-{i} is gone after the restart: {:?}",
                node.name,
                records.get(&format!("key-{i}"))
            );
            assert_eq!(node.value(&format!("key-{i}")).await, None);
        }
        for i in 10..100 {
            assert_eq!(
                node.value(&format!("key-{i}")).await,
                Some(json!(i)),
                "{}",
                node.name
            );
        }
        // The TTL still counts from the write's ts: the entry is the one written.
        if let Some(entry) = node.get("brief").await {
            assert_eq!(
                entry, brief,
                "{}: the TTL was reset by the restart",
                node.name
            );
        }
        assert!(node.logs().contains("persistence: loaded the state"));
    }
    let expired = wait_until(DEADLINE, || async {
        let mut gone = true;
        for node in &cluster.nodes {
            gone &= node.get("brief").await.is_none();
        }
        gone
    })
    .await;
    assert!(expired, "the value with a TTL never expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_a_stopped_agents_directory_restores_it() {
    let mut cluster = ClusterBuilder::new(agent_bin!(), 1)
        .persisted(&[0], "sync: always")
        .start()
        .await;
    for i in 0..50 {
        cluster.nodes[0]
            .set(&format!("saved-{i}"), json!({"n": i}))
            .await;
    }
    assert_eq!(cluster.nodes[0].delete("saved-0").await, 204);
    stop_all(&mut cluster).await;

    // Another agent, elsewhere, started on a copy of the directory.
    let mut restored = ClusterBuilder::new(agent_bin!(), 1)
        .persisted(&[0], "sync: always")
        .build();
    copy_dir(
        &cluster.dir().join("node-0-data"),
        &restored.dir().join("node-0-data"),
    );
    restored.nodes[0].start().await;
    let node = &restored.nodes[0];
    assert_eq!(node.value("saved-0").await, None);
    for i in 1..50 {
        assert_eq!(
            node.value(&format!("saved-{i}")).await,
            Some(json!({"n": i}))
        );
    }
    assert!(is_tombstone(held(node).await.get("saved-0")));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persisting_agent_is_an_ordinary_peer_and_catches_up_after_a_restart() {
    let mut cluster = ClusterBuilder::new(agent_bin!(), 3)
        .persisted(&[1], "sync: interval\nsync_interval: 50")
        .start()
        .await;
    for (i, node) in cluster.nodes.iter().enumerate() {
        node.set(&format!("from-{i}"), json!(i)).await;
    }
    for i in 0..3 {
        let key = format!("from-{i}");
        assert!(
            cluster.converged(&key, Some(json!(i)), DEADLINE).await,
            "{}",
            cluster.logs()
        );
    }

    cluster.nodes[1].signal("TERM");
    assert_eq!(cluster.nodes[1].wait_exit(DEADLINE).await, Some(0));
    cluster.nodes[0].set("while-away", json!("missed")).await;
    assert_eq!(cluster.nodes[2].delete("from-2").await, 204);
    cluster.nodes[1].start().await;

    let node = &cluster.nodes[1];
    // What it held before comes from its disk at once ...
    assert_eq!(node.value("from-1").await, Some(json!(1)));
    // ... and what it missed from its peers.
    assert!(
        cluster
            .converged("while-away", Some(json!("missed")), DEADLINE)
            .await
    );
    assert!(
        cluster.converged("from-2", None, DEADLINE).await,
        "{}",
        cluster.logs()
    );
    assert!(cluster.converged("from-0", Some(json!(0)), DEADLINE).await);
}
