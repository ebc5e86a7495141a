//! A fresh agent joins a cluster holding 20,000 keys: it gets the whole state once, in
//! compressed pages no larger than `max_message_bytes`, although the state is larger than
//! any body the agents accept (so the 0.1 whole-state pull could not work here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sync_support;

use std::{fs, time::Duration};

use c19_tests::{ClusterBuilder, Node, agent_bin, http, wait_until};
use sync_support::*;

const KEYS: usize = 20_000;
const TS: u64 = 1_700_000_000_000;
const BODY_LIMIT: u64 = 1 << 20;
const MAX_MESSAGE: u64 = 256 << 10;
const DEADLINE: Duration = Duration::from_secs(60);

/// Waits until both ports of `node` answer, without `GET /` (which sends the state).
async fn up(node: &Node) -> bool {
    wait_until(DEADLINE, || async {
        http()
            .get(node.peer_url("/_c19/stats"))
            .send()
            .await
            .is_ok()
            && http().get(node.url("/.c19-probe")).send().await.is_ok()
    })
    .await
}

/// Whether `node` holds a sample of the keys, the last one included.
async fn holds_sample(node: &Node) -> bool {
    for i in (0..KEYS).rev().step_by(997) {
        if node.value(&key(i)).await != Some(value_of("base", i)) {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_agent_gets_the_whole_state_once_in_bounded_compressed_pages() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed_file(dir.path(), &batch("base", 0..KEYS, TS));
    let mut cluster = ClusterBuilder::new(agent_bin!(), 3)
        .push_ms(100)
        .pull_ms(500)
        .connection_yaml(&format!(
            "body_limit: {BODY_LIMIT}\nmax_message_bytes: {MAX_MESSAGE}\nmax_push_bytes: {MAX_MESSAGE}"
        ))
        .build();
    // Nodes 0 and 1 hold the state; node 2 joins empty.
    for node in &mut cluster.nodes[..2] {
        let config = fs::read_to_string(&node.config).unwrap();
        let seeded = config.replace(
            "    kind: Default\n  connection:",
            &format!(
                "    kind: Default\n    data_seeder:\n      kind: File\n      filename: {}\n  connection:",
                seed.display()
            ),
        );
        assert_ne!(config, seeded, "the state section moved");
        fs::write(&node.config, seeded).unwrap();
        node.spawn();
    }
    for node in &cluster.nodes[..2] {
        assert!(up(node).await, "{}", cluster.logs());
        let pulled = wait_until(DEADLINE, || async { counter(node, "pulls").await > 0 }).await;
        assert!(
            pulled,
            "{} never completed a pull; logs:\n{}",
            node.name,
            cluster.logs()
        );
    }
    let (holders, newcomer) = cluster.nodes.split_at_mut(2);
    let holders: Vec<&Node> = holders.iter().collect();
    let newcomer = &mut newcomer[0];
    let sent_before = bytes_sent(&holders).await;
    let mut served_before = 0;
    for node in &holders {
        served_before += counter(node, "exchanges_served").await;
    }

    newcomer.spawn();
    let caught_up = wait_until(DEADLINE, || holds_sample(newcomer)).await;
    assert!(
        caught_up,
        "the newcomer did not catch up; logs:\n{}",
        cluster.logs()
    );
    let sent = bytes_sent(&holders).await - sent_before;
    let mut served = 0;
    for node in &holders {
        served += counter(node, "exchanges_served").await;
    }
    let (state, state_size) = whole_state(holders[0]).await;
    let (copy, _) = whole_state(newcomer).await;
    assert_eq!(copy.len(), KEYS);
    assert_eq!(copy, state, "the newcomer's copy differs");
    eprintln!(
        "catch-up: {sent} bytes sent by the holders in {} messages, for a {state_size}-byte state",
        served - served_before
    );
    assert!(
        state_size as u64 > 2 * BODY_LIMIT,
        "the state fits in one body: the test proves nothing"
    );
    assert!(
        served - served_before >= state_size as u64 / MAX_MESSAGE,
        "{} messages for {state_size} bytes in messages of at most {MAX_MESSAGE}",
        served - served_before
    );
    assert!(
        sent * 2 < state_size as u64,
        "{sent} bytes sent for a {state_size}-byte state: compressed, once, it is far less"
    );
    let newcomer_stats = stats(newcomer).await;
    assert_eq!(newcomer_stats["pull_errors"], 0, "{newcomer_stats}");
}
