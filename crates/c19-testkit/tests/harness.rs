//! The harness without an agent binary: configurations, ports and polling.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use c19_testkit::{ClusterBuilder, free_port, wait_until};

#[test]
fn a_cluster_is_written_with_static_peers_and_the_chosen_state() {
    let cluster = ClusterBuilder::new("/nonexistent/c19", 3)
        .push_ms(50)
        .state_kind("Mem")
        .state_yaml("ttl: 60000\n")
        .build();
    assert_eq!(cluster.nodes.len(), 3);
    let peer_ports: Vec<u16> = cluster.nodes.iter().map(|node| node.peer_port).collect();
    for node in &cluster.nodes {
        let yaml = std::fs::read_to_string(&node.config).unwrap();
        assert!(yaml.starts_with("version: 0.1\nspec:\n"), "{yaml}");
        assert!(
            yaml.contains("  state:\n    kind: Mem\n    ttl: 60000\n  connection:"),
            "{yaml}"
        );
        assert!(yaml.contains("push_interval: 50\n"), "{yaml}");
        for port in &peer_ports {
            assert!(yaml.contains(&format!("\"127.0.0.1:{port}\"")), "{yaml}");
        }
        assert!(node.config.starts_with(cluster.dir()));
    }
}

#[test]
fn free_ports_are_distinct_and_below_the_ephemeral_range() {
    let ports: std::collections::BTreeSet<u16> = (0..50).map(|_| free_port()).collect();
    assert_eq!(ports.len(), 50);
    if let Ok(range) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") {
        let low: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
        if low >= 12_000 {
            assert!(ports.iter().all(|&port| port < low), "{ports:?}");
        }
    }
}

#[tokio::test]
async fn wait_until_polls_until_true_or_the_deadline() {
    let mut calls = 0;
    assert!(
        wait_until(Duration::from_secs(5), || {
            calls += 1;
            let done = calls >= 3;
            async move { done }
        })
        .await
    );
    assert_eq!(calls, 3);
    assert!(!wait_until(Duration::from_millis(50), || async { false }).await);
}
