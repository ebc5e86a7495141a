//! What the `sync_*` tests share: the peer port's counters and whole state, seed files,
//! and the time.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use c19_tests::{Node, http};
use serde_json::{Map, Value, json};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The node's traffic counters (`GET /_c19/stats` on the peer port).
pub async fn stats(node: &Node) -> Value {
    http()
        .get(node.peer_url("/_c19/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// One counter of the node's stats.
pub async fn counter(node: &Node, name: &str) -> u64 {
    stats(node).await[name].as_u64().unwrap()
}

/// The body bytes the nodes sent, summed: each byte between them is counted once.
pub async fn bytes_sent(nodes: &[&Node]) -> u64 {
    let mut total = 0;
    for node in nodes {
        total += counter(node, "bytes_sent").await;
    }
    total
}

/// The node's whole state as its peer port serves it to 0.1 peers (tombstones
/// included), and its size in bytes.
pub async fn whole_state(node: &Node) -> (Map<String, Value>, usize) {
    let body = http()
        .get(node.peer_url("/"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    (serde_json::from_slice(&body).unwrap(), body.len())
}

/// A value of about sixty bytes of JSON for entry `i`.
pub fn value_of(tag: &str, i: usize) -> Value {
    json!(format!(
        "{tag} value number {i:06} of the sixty-byte kind, padded"
    ))
}

/// `count` entries `key-000000`... with `tag` values at `ts`, as a batch.
pub fn batch(tag: &str, range: std::ops::Range<usize>, ts: u64) -> Value {
    let map: Map<String, Value> = range
        .map(|i| (key(i), json!({"value": value_of(tag, i), "ts": ts})))
        .collect();
    Value::Object(map)
}

/// The name of key `i`.
pub fn key(i: usize) -> String {
    format!("key-{i:06}")
}

/// Writes `batch` to a seed file in `dir`; returns its path.
pub fn seed_file(dir: &Path, batch: &Value) -> PathBuf {
    let path = dir.join("seed.json");
    std::fs::write(&path, batch.to_string()).unwrap();
    path
}
