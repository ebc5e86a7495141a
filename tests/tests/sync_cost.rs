//! Anti-entropy costs what changed: two agents seeded with the same 20,000 keys but for
//! k of them repair the difference with bytes in proportion to k and far below the size
//! of the state (0.1 sent the whole state on every pull between differing agents).
//!
//! Seeded data is never pushed, so only the exchanges repair it here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sync_support;

use std::{fs, time::Duration};

use c19_tests::{Cluster, ClusterBuilder, Node, agent_bin, http, wait_until};
use sync_support::*;

const KEYS: usize = 20_000;
const TS: u64 = 1_700_000_000_000;
const DEADLINE: Duration = Duration::from_secs(60);

/// Whether `node` holds `value_of(tag, i)` under every key of `range`.
async fn holds(node: &Node, tag: &str, range: std::ops::Range<usize>) -> bool {
    for i in range.rev() {
        if node.value(&key(i)).await != Some(value_of(tag, i)) {
            return false;
        }
    }
    true
}

/// Starts two agents seeded with the same keys, except that each holds newer values for
/// `k / 2` keys of its own. Readiness is polled on the counters, not on `GET /` (which
/// would send the whole state and count it).
async fn seeded_pair(k: usize, dir: &std::path::Path) -> Cluster {
    let mut cluster = ClusterBuilder::new(agent_bin!(), 2)
        .push_ms(100)
        .pull_ms(300)
        .state_yaml("data_seeder:\n  kind: File\n  filename: SEED_FILE")
        .build();
    for (i, node) in cluster.nodes.iter_mut().enumerate() {
        let mut seed = batch("base", 0..KEYS, TS);
        let own = if i == 0 { 0..k / 2 } else { k / 2..k };
        for (key, entry) in batch(&format!("node-{i}"), own, TS + 1)
            .as_object()
            .unwrap()
        {
            seed[key] = entry.clone();
        }
        let file = dir.join(format!("seed-{i}.json"));
        fs::write(&file, seed.to_string()).unwrap();
        let config = fs::read_to_string(&node.config).unwrap();
        fs::write(
            &node.config,
            config.replace("SEED_FILE", &file.display().to_string()),
        )
        .unwrap();
        node.spawn();
    }
    for node in &cluster.nodes {
        let up = wait_until(DEADLINE, || async {
            let stats = http().get(node.peer_url("/_c19/stats")).send().await;
            let agent = http().get(node.url("/.c19-probe")).send().await;
            stats.is_ok() && agent.is_ok()
        })
        .await;
        assert!(up, "{} did not start; logs:\n{}", node.name, cluster.logs());
    }
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_difference_of_k_keys_costs_bytes_in_proportion_to_k() {
    let dir = tempfile::tempdir().unwrap();
    let mut costs = Vec::new();
    let mut state_size = 0;
    for k in [10_usize, 100] {
        let cluster = seeded_pair(k, dir.path()).await;
        let nodes: Vec<&Node> = cluster.nodes.iter().collect();
        let repaired = wait_until(DEADLINE, || async {
            holds(nodes[0], "node-1", k / 2..k).await && holds(nodes[1], "node-0", 0..k / 2).await
        })
        .await;
        assert!(repaired, "k = {k} not repaired; logs:\n{}", cluster.logs());
        // Let the exchanges under way finish: each agent completes two more.
        for node in &nodes {
            let from = counter(node, "pulls").await;
            let more = wait_until(DEADLINE, || async {
                counter(node, "pulls").await >= from + 2
            })
            .await;
            assert!(
                more,
                "{} stopped pulling; logs:\n{}",
                node.name,
                cluster.logs()
            );
        }
        let cost = bytes_sent(&nodes).await;
        for node in &nodes {
            let stats = stats(node).await;
            assert_eq!(stats["pulls_served"], 0, "a whole state was sent: {stats}");
            assert!(stats["exchanges_served"].as_u64().unwrap() > 0, "{stats}");
        }
        let (state, size) = whole_state(nodes[0]).await;
        assert_eq!(
            state,
            whole_state(nodes[1]).await.0,
            "k = {k}: still different"
        );
        assert_eq!(state.len(), KEYS);
        state_size = size as u64;
        eprintln!("k = {k}: {cost} bytes on the peer ports for a {size}-byte state");
        costs.push(cost);
    }
    assert!(
        costs[0] * 100 < state_size,
        "10 keys should cost about 1% of the state or less: {costs:?} of {state_size}"
    );
    assert!(
        costs[1] * 10 < state_size,
        "100 keys should cost a small part of the state: {costs:?} of {state_size}"
    );
    assert!(
        costs[1] > 2 * costs[0],
        "ten times the difference should cost several times more: {costs:?}"
    );
}
