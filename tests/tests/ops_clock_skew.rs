//! Clock skew between real agents: one agent's clock runs ten minutes ahead (through the
//! testing aid `C19_TEST_CLOCK_OFFSET_MS`). Both measure it on their exchanges, export it
//! as `c19_clock_offset_seconds` and log it naming the peer; the agent API refuses a
//! `ts` beyond `max_clock_skew` in the future, while peers' entries still merge.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops;

use std::time::{SystemTime, UNIX_EPOCH};

use c19_tests::{ClusterBuilder, Node, agent_bin, http, wait_until};
use ops::{DEADLINE, metric, metrics_text};
use serde_json::json;

/// How far ahead the fast agent's clock runs.
const AHEAD_MS: u64 = 600_000;

/// How far off the measured offset may be, in seconds (loopback round trips are short,
/// but the machine may be busy).
const TOLERANCE_S: f64 = 3.0;

fn real_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Waits until `node`'s clock offset gauge is within [`TOLERANCE_S`] of `expected`.
async fn offset_reaches(node: &Node, expected: f64) -> f64 {
    let ok = wait_until(DEADLINE, || async {
        (metric(node, "c19_clock_offset_seconds", &[]).await - expected).abs() < TOLERANCE_S
    })
    .await;
    let now = metric(node, "c19_clock_offset_seconds", &[]).await;
    assert!(
        ok,
        "c19_clock_offset_seconds on {} is {now}, expected about {expected}; metrics:\n{}\nlog:\n{}",
        node.name,
        metrics_text(node).await,
        node.logs()
    );
    now
}

/// Whether `node` logged an error about the clock of the peer on `peer_port`.
fn logged_skew_of(node: &Node, peer_port: u16) -> bool {
    let peer = format!("127.0.0.1:{peer_port}");
    node.logs().lines().any(|line| {
        line.contains("ERROR") && line.contains("max_clock_skew") && line.contains(&peer)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_ten_minutes_ahead_is_measured_reported_and_bounded() {
    let mut cluster = ClusterBuilder::new(agent_bin!(), 2).pull_ms(500).build();
    cluster.nodes[1].env("C19_TEST_CLOCK_OFFSET_MS", &AHEAD_MS.to_string());
    for node in &mut cluster.nodes {
        node.spawn();
    }
    for node in &cluster.nodes {
        let ready = wait_until(DEADLINE, || node.is_ready()).await;
        assert!(ready, "{} did not start; log:\n{}", node.name, node.logs());
    }
    let (normal, fast) = (&cluster.nodes[0], &cluster.nodes[1]);

    // Both sides measure the same ten minutes, with opposite signs.
    let behind = offset_reaches(normal, -(AHEAD_MS as f64) / 1000.0).await;
    let ahead = offset_reaches(fast, AHEAD_MS as f64 / 1000.0).await;
    eprintln!("measured offsets: normal {behind} s, fast {ahead} s");

    // The skew beyond max_clock_skew (30 s by default) is logged, naming the peer.
    let logged = wait_until(DEADLINE, || async {
        logged_skew_of(normal, fast.peer_port) || logged_skew_of(fast, normal.peer_port)
    })
    .await;
    assert!(logged, "no clock skew error; logs:\n{}", cluster.logs());
    assert!(
        fast.logs().contains("C19_TEST_CLOCK_OFFSET_MS"),
        "{}",
        fast.logs()
    );

    // The agent API refuses a timestamp an hour ahead, with a message naming the key and
    // the limit, and changes nothing; a second ahead is fine.
    let response = http()
        .put(normal.url("/"))
        .json(&json!({"later": {"value": 1, "ts": real_now_ms() + 3_600_000}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let message = response.json::<serde_json::Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains(r#"key "later""#) && message.contains("max_clock_skew (30000 ms)"),
        "{message}"
    );
    assert_eq!(normal.get("later").await, None);
    let soon = real_now_ms() + 1000;
    assert_eq!(
        normal.put(json!({"soon": {"value": 2, "ts": soon}})).await,
        204
    );
    assert_eq!(normal.get("soon").await.unwrap()["ts"], soon);

    // What the fast agent writes carries its clock, and its peer still merges it: refusing
    // peers' entries would split the cluster.
    fast.set("from-the-future", json!(3)).await;
    let merged = wait_until(DEADLINE, || async {
        normal.value("from-the-future").await == Some(json!(3))
    })
    .await;
    assert!(
        merged,
        "the fast agent's write did not spread; logs:\n{}",
        cluster.logs()
    );
    let ts = normal.get("from-the-future").await.unwrap()["ts"]
        .as_u64()
        .unwrap();
    assert!(ts > real_now_ms() + AHEAD_MS - 60_000, "{ts}");
}
