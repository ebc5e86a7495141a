//! Garbage on the peer port — malformed JSON, wrong shapes, huge bodies, slow clients —
//! is refused with a JSON error and changes nothing; the agent keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use c19_tests::{ClusterBuilder, Node, agent_bin, http};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const BODY_LIMIT: usize = 64 * 1024;

/// The whole state as the peer port serves it.
async fn whole_state(node: &Node) -> Value {
    let response = http().get(node.peer_url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

async fn push(node: &Node, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = http()
        .put(node.peer_url("/"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Sends `request` raw and returns all the server wrote until it closed the connection.
async fn raw(node: &Node, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", node.peer_port))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response)).await;
    assert!(closed.is_ok(), "the server kept a slow client for 20 s");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_peer_port_is_refused_and_changes_nothing() {
    let cluster = ClusterBuilder::new(agent_bin!(), 1)
        .connection_yaml(&format!("body_limit: {BODY_LIMIT}\ntimeout: 300"))
        .start()
        .await;
    let node = &cluster.nodes[0];
    node.set("precious", json!({"keep": "me"})).await;
    let before = whole_state(node).await;

    for body in [
        "{\"precious\": {\"value\": 1, ".to_owned(),
        "not json at all".to_owned(),
        "[1, 2, 3]".to_owned(),
        "\"a string\"".to_owned(),
        "null".to_owned(),
        json!({"precious": 5}).to_string(),
        json!({"precious": {"ts": 1}}).to_string(),
        json!({"precious": {"value": "overwritten", "ts": "yesterday"}}).to_string(),
        // One bad entry spoils the batch: the good one is not applied either.
        json!({"precious": {"value": "overwritten", "ts": 9_000_000_000_000_u64}, "bad": {"value": 1, "ttl": "long"}})
            .to_string(),
    ] {
        let (status, error) = push(node, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(error["error"].as_str().is_some_and(|message| !message.is_empty()), "{body}: {error}");
    }

    let huge = json!({"huge": {"value": "x".repeat(BODY_LIMIT)}}).to_string();
    let (status, error) = push(node, huge).await;
    assert_eq!(status, 413);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains(&BODY_LIMIT.to_string()),
        "{error}"
    );

    // A slow client: headers that never end are cut off...
    let mut stalled = TcpStream::connect(("127.0.0.1", node.peer_port))
        .await
        .unwrap();
    stalled
        .write_all(b"PUT / HTTP/1.1\r\nhost: c19\r\ncontent-length: 50\r\n")
        .await
        .unwrap();
    // ...and a body that never arrives in full is answered 408, without being merged.
    let slow = raw(
        node,
        b"PUT / HTTP/1.1\r\nhost: c19\r\ncontent-length: 64\r\n\r\n{\"slow\": {\"value\"",
    )
    .await;
    assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
    let mut rest = Vec::new();
    let cut_off =
        tokio::time::timeout(Duration::from_secs(20), stalled.read_to_end(&mut rest)).await;
    assert!(
        cut_off.is_ok(),
        "a client that never finishes its headers is kept for ever"
    );

    assert_eq!(whole_state(node).await, before, "garbage changed the state");
    assert_eq!(node.value("precious").await, Some(json!({"keep": "me"})));

    // The agent still serves peers and its application.
    let (status, _) = push(node, json!({"fine": {"value": "merged"}}).to_string()).await;
    assert_eq!(status, 204);
    assert_eq!(node.value("fine").await, Some(json!("merged")));
    let stats: Value = http()
        .get(node.peer_url("/_c19/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["requests_refused"].as_u64().unwrap() >= 11, "{stats}");
}
