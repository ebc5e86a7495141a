//! Watching changes over Server-Sent Events on real agents: local and remote changes in
//! order, one key, and a subscriber too slow to keep up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops;

use std::collections::BTreeSet;

use c19_tests::{ClusterBuilder, agent_bin, http, wait_until};
use ops::{DEADLINE, Events, take_events};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpSocket,
};

#[tokio::test]
async fn a_watch_streams_local_and_remote_changes_in_order() {
    let cluster = ClusterBuilder::new(agent_bin!(), 2).start().await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut events = Events::open(&a.url("/?watch=true&prefix=w/"), None).await;

    a.set("w/1", json!("local")).await;
    b.set("w/2", json!("remote")).await;
    // Ordered on purpose: the remote change is in before the next local one.
    let arrived = wait_until(DEADLINE, || async { a.value("w/2").await.is_some() }).await;
    assert!(arrived, "w/2 did not reach a; logs:\n{}", cluster.logs());
    a.set("other", json!("not watched")).await;
    a.set("w/3", json!("local again")).await;
    assert_eq!(b.delete("w/1").await, 204);

    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(events.next_event().await.expect("the stream ended"));
    }
    let seen: Vec<(Value, Value)> = got
        .iter()
        .map(|event| {
            let data = event.json();
            (data["key"].clone(), data["value"].clone())
        })
        .collect();
    assert_eq!(
        seen,
        [
            (json!("w/1"), json!("local")),
            (json!("w/2"), json!("remote")),
            (json!("w/3"), json!("local again")),
            (json!("w/1"), json!(null)),
        ]
    );
    assert_eq!(got[3].json()["deleted"], true);
    let ids: Vec<u64> = got.iter().map(ops::SseEvent::seq).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
}

#[tokio::test]
async fn a_key_watch_follows_one_key_across_agents() {
    let cluster = ClusterBuilder::new(agent_bin!(), 2).start().await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut events = Events::open(&b.url("/cat?watch=true"), None).await;
    a.set("cats", json!("not this one")).await;
    a.set("cat", json!("garfield")).await;
    let first = events.next_event().await.unwrap().json();
    assert_eq!(
        (&first["key"], &first["value"]),
        (&json!("cat"), &json!("garfield"))
    );
    a.set("cat", json!("tom")).await;
    let second = events.next_event().await.unwrap().json();
    assert_eq!(
        (&second["key"], &second["value"]),
        (&json!("cat"), &json!("tom"))
    );
}

/// Values this large fill the socket buffers after a few hundred events.
const VALUE_BYTES: usize = 8 * 1024;
const BATCHES: usize = 40;
const KEYS_PER_BATCH: usize = 64;

#[tokio::test]
async fn a_slow_watcher_is_dropped_with_an_error_and_resumes_without_a_gap() {
    let cluster = ClusterBuilder::new(agent_bin!(), 1)
        .state_yaml("watch_buffer: 16")
        .start()
        .await;
    let node = &cluster.nodes[0];

    // A watcher that reads nothing, with a tiny receive buffer.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket
        .connect(format!("127.0.0.1:{}", node.agent_port).parse().unwrap())
        .await
        .unwrap();
    // HTTP/1.0: the body is not chunked and ends when the agent closes the connection.
    slow.write_all(b"GET /?watch=true HTTP/1.0\r\nHost: c19\r\n\r\n")
        .await
        .unwrap();
    // The response head comes once the watcher has subscribed.
    let mut raw = Vec::new();
    let subscribed = tokio::time::timeout(DEADLINE, async {
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0; 1024];
            let n = slow.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the agent closed the watch");
            raw.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(subscribed.is_ok(), "no response to the watch");
    node.set("start", json!(0)).await;

    // About 20 MiB of changes: writers never wait for the watcher.
    let filler = "x".repeat(VALUE_BYTES);
    let mut written = BTreeSet::from(["start".to_owned()]);
    for batch in 0..BATCHES {
        let mut body = serde_json::Map::new();
        for i in 0..KEYS_PER_BATCH {
            let key = format!("k{batch:02}-{i:02}");
            body.insert(key.clone(), json!({ "value": filler }));
            written.insert(key);
        }
        assert_eq!(node.put(Value::Object(body)).await, 204, "batch {batch}");
    }

    // Now read what the watcher got: some changes, then one error event, then the end.
    let read = tokio::time::timeout(DEADLINE, slow.read_to_end(&mut raw)).await;
    assert!(read.is_ok(), "the slow watcher's stream did not end");
    let start = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&raw[..start]).to_string();
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    let mut body = raw[start..].to_vec();
    let events = take_events(&mut body);
    let (last, changes) = events.split_last().expect("no event at all");
    assert_eq!(
        last.event.as_deref(),
        Some("error"),
        "the stream did not end with an error"
    );
    let error = last.json();
    assert!(
        error["error"].as_str().unwrap().contains("watch_buffer"),
        "{error}"
    );
    let resume_at = last.seq();
    assert_eq!(error["last_event_id"].as_str(), last.id.as_deref());
    assert!(changes.iter().all(|event| event.event.is_none()));
    let mut seen: BTreeSet<String> = changes
        .iter()
        .map(|event| event.json()["key"].as_str().unwrap().to_owned())
        .collect();
    assert!(seen.len() < written.len(), "the watcher kept up after all");

    // Resuming from the error's id brings every change the first stream missed.
    let mut resumed = Events::open(&node.url("/?watch=true"), Some(resume_at)).await;
    while seen.len() < written.len() {
        let event = resumed
            .next_event()
            .await
            .expect("the resumed stream ended");
        seen.insert(event.json()["key"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, written);
}

#[tokio::test]
async fn a_listing_then_a_watch_from_its_point_misses_nothing() {
    let cluster = ClusterBuilder::new(agent_bin!(), 1).start().await;
    let node = &cluster.nodes[0];
    node.set("a", json!(1)).await;
    let listing = http().get(node.url("/")).send().await.unwrap();
    let point = listing.headers()["c19-last-event-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let listed: Value = listing.json().await.unwrap();
    assert_eq!(listed["a"]["value"], 1);
    // Changed between the listing and the watch.
    node.set("b", json!(2)).await;
    let mut events = Events::open(
        &node.url(&format!("/?watch=true&last_event_id={point}")),
        None,
    )
    .await;
    assert_eq!(events.next_event().await.unwrap().json()["key"], "b");
}

#[tokio::test]
async fn an_expiry_is_an_event_on_every_agent_and_no_delete() {
    let cluster = ClusterBuilder::new(agent_bin!(), 2)
        .state_yaml("purge_interval: 50")
        .start()
        .await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut on_a = Events::open(&a.url("/short?watch=true"), None).await;
    let mut on_b = Events::open(&b.url("/short?watch=true"), None).await;
    let put = a
        .put(json!({ "short": { "value": "soon gone", "ttl": 1500 } }))
        .await;
    assert_eq!(put, 204);
    for (name, events) in [("a", &mut on_a), ("b", &mut on_b)] {
        let written = events.next_event().await.expect("the stream ended");
        assert_eq!(written.json()["value"], "soon gone", "{name}");
        let expired = events.next_event().await.expect("the stream ended");
        let data = expired.json();
        assert_eq!(data["key"], "short", "{name}: {data}");
        assert_eq!(data["expired"], true, "{name}: {data}");
        assert_eq!(data["ttl"], 1500, "{name}: {data}");
        assert!(
            data.get("deleted").is_none(),
            "{name}: an expiry is no delete: {data}"
        );
    }
    assert_eq!(a.get("short").await, None);
    assert_eq!(b.get("short").await, None);
}
