//! Readiness means the agent holds the data: `/readyz` turns 200 only after the first
//! sync with a peer, or when there is nothing to wait for (no peer, or `sync_timeout`
//! passed with no peer answering).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops;

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use c19_tests::{ClusterBuilder, Node, agent_bin, free_port, http, wait_until};
use ops::{DEADLINE, metric};
use serde_json::{Map, Value, json};

const KEYS: usize = 20_000;

/// `/readyz` of `node`: its status and body, or `None` while nothing answers.
async fn readyz(node: &Node) -> Option<(u16, Value)> {
    let response = http()
        .get(node.telemetry_url("/readyz"))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

/// Whether `/readyz` of `node` answers 200.
async fn is_ready(node: &Node) -> bool {
    matches!(readyz(node).await, Some((200, _)))
}

/// The number of values `node` holds (the `c19_state_keys` gauge).
async fn keys(node: &Node) -> f64 {
    metric(node, "c19_state_keys", &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_cluster_started_at_once_becomes_ready_by_syncing() {
    // Only a completed sync can make these agents ready: the timeout is far away.
    let cluster = ClusterBuilder::new(agent_bin!(), 3)
        .connection_yaml("sync_timeout: 600000")
        .start()
        .await;
    for node in &cluster.nodes {
        let ready = wait_until(DEADLINE, || is_ready(node)).await;
        assert!(
            ready,
            "{} is not ready: {:?}; logs:\n{}",
            node.name,
            readyz(node).await,
            cluster.logs()
        );
        assert!(
            node.logs().contains("first sync with a peer completed"),
            "{} turned ready otherwise; log:\n{}",
            node.name,
            node.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_agent_is_ready_only_once_it_holds_every_key() {
    // Small pages: the newcomer's catch-up takes many messages.
    let mut cluster = ClusterBuilder::new(agent_bin!(), 3)
        .push_ms(100)
        .pull_ms(1000)
        .connection_yaml("max_message_bytes: 131072\nsync_timeout: 600000")
        .build();
    for node in &mut cluster.nodes[..2] {
        node.start().await;
    }
    let (holders, newcomer) = cluster.nodes.split_at_mut(2);
    let newcomer = &mut newcomer[0];
    for start in (0..KEYS).step_by(1000) {
        let batch: Map<String, Value> = (start..start + 1000)
            .map(|i| {
                (
                    format!("key-{i:06}"),
                    json!({ "value": format!("value {i} of a cluster of twenty thousand") }),
                )
            })
            .collect();
        assert_eq!(holders[0].put(Value::Object(batch)).await, 204);
    }
    for node in holders.iter() {
        let loaded = wait_until(DEADLINE, || async { keys(node).await == KEYS as f64 }).await;
        assert!(loaded, "{} holds {} keys", node.name, keys(node).await);
    }

    newcomer.spawn();
    let mut waited_for_sync = false;
    let end = Instant::now() + DEADLINE;
    let body = loop {
        assert!(
            Instant::now() < end,
            "the newcomer never became ready; log:\n{}",
            newcomer.logs()
        );
        match readyz(newcomer).await {
            Some((200, body)) => break body,
            Some((503, body)) if body["waiting"] == "first sync with a peer" => {
                assert_eq!(body["ready"], false, "{body}");
                assert_eq!(body["components"]["connection"], false, "{body}");
                waited_for_sync = true;
            }
            Some((503, _)) => {}
            Some((status, body)) => panic!("/readyz answered {status}: {body}"),
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let held = keys(newcomer).await;
    assert_eq!(
        held,
        KEYS as f64,
        "ready ({body}) while holding {held} of {KEYS} keys; log:\n{}",
        newcomer.logs()
    );
    assert!(
        body.get("waiting").is_none(),
        "a ready agent waits for nothing: {body}"
    );
    assert!(
        waited_for_sync,
        "/readyz never said it waited for the first sync; log:\n{}",
        newcomer.logs()
    );
    assert_eq!(
        newcomer.value(&format!("key-{:06}", KEYS - 1)).await,
        Some(json!(format!(
            "value {} of a cluster of twenty thousand",
            KEYS - 1
        )))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_peer_never_answers_is_ready_after_sync_timeout() {
    // The only peer accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut connections = Vec::new();
        for stream in silent.incoming().take(64) {
            match stream {
                Ok(stream) => connections.push(stream),
                Err(_) => break,
            }
        }
        connections
    });
    let dir = tempfile::tempdir().unwrap();
    let (agent_port, peer_port) = (free_port(), free_port());
    let mut node = Node::new(&agent_bin!(), "lonely", dir.path(), agent_port, peer_port);
    let sync_timeout = Duration::from_millis(2000);
    std::fs::write(
        &node.config,
        format!(
            "version: 0.1\nspec:\n  agent: {{ kind: Default, address: 127.0.0.1, port: {agent_port} }}\n  state: {{ kind: Default }}\n  connection:\n    kind: Default\n    address: 127.0.0.1\n    port: {peer_port}\n    push_interval: 100\n    sync_timeout: {}\n    peer_provider: {{ kind: Static, peers: [\"127.0.0.1:{silent_port}\"] }}\n",
            sync_timeout.as_millis()
        ),
    )
    .unwrap();
    let started = Instant::now();
    node.start().await;
    let waiting = wait_until(DEADLINE, || async {
        matches!(readyz(&node).await, Some((503, body)) if body["waiting"] == "first sync with a peer")
    })
    .await;
    assert!(waiting, "{:?}; log:\n{}", readyz(&node).await, node.logs());
    let ready = wait_until(DEADLINE, || is_ready(&node)).await;
    assert!(ready, "{:?}; log:\n{}", readyz(&node).await, node.logs());
    assert!(
        started.elapsed() >= sync_timeout,
        "ready after {:?}, before sync_timeout",
        started.elapsed()
    );
    let logs = node.logs();
    assert!(
        logs.lines()
            .any(|line| line.contains("WARN") && line.contains("sync_timeout")),
        "no warning about sync_timeout; log:\n{logs}"
    );
    assert!(!logs.contains("first sync with a peer completed"), "{logs}");
    node.kill();
    // The accepting thread holds its connections until the test process ends.
    drop(held);
}
