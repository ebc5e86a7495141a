//! Two agents write one key with the same timestamp and different values: every agent
//! ends with the same value (0.1 left them disagreeing for ever).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use c19_tests::{ClusterBuilder, agent_bin, wait_until};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_timestamp_writes_end_with_one_value_everywhere() {
    let cluster = ClusterBuilder::new(agent_bin!(), 3).start().await;
    let nodes = &cluster.nodes;
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;

    let (first, second) = tokio::join!(
        nodes[0].put(json!({"tied": {"value": "from node 0", "ts": ts}})),
        nodes[1].put(json!({"tied": {"value": "from node 1", "ts": ts}})),
    );
    assert_eq!((first, second), (204, 204));

    let agreed = wait_until(Duration::from_secs(30), || async {
        let mut values = Vec::new();
        for node in nodes {
            values.push(node.get("tied").await);
        }
        values[0].is_some() && values.iter().all(|value| *value == values[0])
    })
    .await;
    assert!(
        agreed,
        "agents disagree on a tied key; logs:\n{}",
        cluster.logs()
    );

    let entry = nodes[2].get("tied").await.unwrap();
    assert_eq!(entry["ts"], json!(ts));
    let winner = &entry["value"];
    assert!(
        [json!("from node 0"), json!("from node 1")].contains(winner),
        "unexpected value {winner}"
    );
}
