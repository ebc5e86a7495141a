//! Watches: `GET /?watch=true&prefix=P` and `GET /<key>?watch=true` as Server-Sent Events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod sse;

use std::time::Duration;

use c19_agent_http::HttpAgentConfig;
use common::*;
use serde_json::json;
use sse::Events;

#[tokio::test]
async fn a_prefix_watch_streams_each_matching_change_in_order() {
    let server = start_default().await;
    server
        .put_json(json!({"users/0": {"value": "before"}}))
        .await;
    let mut events = Events::open(
        &server.client,
        &server.url("/?watch=true&prefix=users/"),
        None,
    )
    .await;

    server.put_json(json!({"users/1": {"value": "ann"}})).await;
    server
        .put_json(json!({"groups/1": {"value": "not watched"}}))
        .await;
    server
        .put_json(json!({"users/2": {"value": {"name": "bob"}, "ttl": 60000}}))
        .await;
    assert_eq!(server.delete("/users/1").await.status, 204);
    // A change from a peer goes through the same state.
    let ts = c19_state_default::now_ms();
    server
        .state
        .set(&json!({"users/3": {"value": "from a peer", "ts": ts}}).to_string())
        .unwrap();

    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(events.next_event().await.unwrap());
    }
    let data: Vec<_> = got.iter().map(sse::SseEvent::json).collect();
    assert_eq!(data[0]["key"], "users/1");
    assert_eq!(data[0]["value"], "ann");
    assert!(data[0]["ts"].is_u64());
    assert_eq!(data[1]["key"], "users/2");
    assert_eq!(data[1]["value"], json!({"name": "bob"}));
    assert_eq!(data[1]["ttl"], 60000);
    assert_eq!(data[2]["key"], "users/1");
    assert_eq!(data[2]["deleted"], true);
    assert_eq!(
        data[3],
        json!({"key": "users/3", "value": "from a peer", "ts": ts, "ttl": null})
    );
    let ids: Vec<u64> = got.iter().map(sse::SseEvent::seq).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
    assert_eq!(*ids.last().unwrap(), server.state.head());
    assert!(got.iter().all(|event| event.event.is_none()));
}

#[tokio::test]
async fn a_key_watch_streams_only_that_key() {
    let server = start_default().await;
    let mut events = Events::open(&server.client, &server.url("/a%2Fb?watch=true"), None).await;
    server
        .put_json(json!({"a/bc": {"value": 0}, "a": {"value": 0}, "a/b": {"value": 1}}))
        .await;
    server.put_json(json!({"a/b": {"value": 2}})).await;
    let first = events.next_event().await.unwrap().json();
    let second = events.next_event().await.unwrap().json();
    assert_eq!((&first["key"], &first["value"]), (&json!("a/b"), &json!(1)));
    assert_eq!(
        (&second["key"], &second["value"]),
        (&json!("a/b"), &json!(2))
    );
}

#[tokio::test]
async fn a_watch_resumes_after_the_last_event_id_without_missing_a_change() {
    let server = start_default().await;
    server.put_json(json!({"k1": {"value": 1}})).await;
    let mut events = Events::open(&server.client, &server.url("/?watch=true"), None).await;
    server.put_json(json!({"k2": {"value": 2}})).await;
    let seen = events.next_event().await.unwrap().seq();
    drop(events);

    // Changed while nobody watched: k3, k2 again, a delete of k1.
    server.put_json(json!({"k3": {"value": 3}})).await;
    server.put_json(json!({"k2": {"value": 22}})).await;
    server.delete("/k1").await;

    let mut resumed = Events::open(&server.client, &server.url("/?watch=true"), Some(seen)).await;
    server.put_json(json!({"k4": {"value": 4}})).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        let event = resumed.next_event().await.unwrap().json();
        got.push((event["key"].clone(), event["value"].clone()));
    }
    assert_eq!(
        got,
        [
            (json!("k3"), json!(3)),
            (json!("k2"), json!(22)),
            (json!("k1"), json!(null)),
            (json!("k4"), json!(4)),
        ]
    );

    // The same through the query parameter, for clients that cannot set headers.
    let url = server.url(&format!("/k2?watch=true&last_event_id={seen}"));
    let mut by_parameter = Events::open(&server.client, &url, None).await;
    assert_eq!(by_parameter.next_event().await.unwrap().json()["value"], 22);
}

#[tokio::test]
async fn an_id_of_another_run_replays_the_whole_state_even_when_its_point_exists() {
    let server = start_default().await;
    server.put_json(json!({"a": {"value": 1}})).await;
    let mut events = Events::open(&server.client, &server.url("/?watch=true"), None).await;
    server.put_json(json!({"b": {"value": 2}})).await;
    let id = events.next_event().await.unwrap().id.unwrap();
    drop(events);
    // The same point under another run's token, as a client would hold after a restart
    // once the new run has passed that point again.
    let (token, point) = id.rsplit_once('-').unwrap();
    let flipped = if token.starts_with('0') { '1' } else { '0' };
    let other = format!("{flipped}{}-{point}", &token[1..]);
    let url = server.url(&format!("/?watch=true&last_event_id={other}"));
    let mut replay = Events::open(&server.client, &url, None).await;
    let mut keys = vec![
        replay.next_event().await.unwrap().json()["key"].clone(),
        replay.next_event().await.unwrap().json()["key"].clone(),
    ];
    keys.sort_by_key(ToString::to_string);
    assert_eq!(keys, [json!("a"), json!("b")]);
}

#[tokio::test]
async fn an_id_from_before_a_restart_replays_the_whole_state() {
    let server = start_default().await;
    server
        .put_json(json!({"a": {"value": 1}, "b": {"value": 2}}))
        .await;
    let future = server.state.head() + 1000;
    let mut events = Events::open(&server.client, &server.url("/?watch=true"), Some(future)).await;
    let mut keys = vec![
        events.next_event().await.unwrap().json()["key"].clone(),
        events.next_event().await.unwrap().json()["key"].clone(),
    ];
    keys.sort_by_key(ToString::to_string);
    assert_eq!(keys, [json!("a"), json!("b")]);
}

#[tokio::test]
async fn a_silent_watch_outlives_the_idle_timeout() {
    let config: HttpAgentConfig = serde_json::from_value(json!({"idle_timeout": 200})).unwrap();
    let server = start(config).await;
    let mut events = Events::open(&server.client, &server.url("/?watch=true"), None).await;
    // Several idle timeouts without a byte either way.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.put_json(json!({"late": {"value": 1}})).await;
    assert_eq!(events.next_event().await.unwrap().json()["key"], "late");
}

#[tokio::test]
async fn shutting_the_agent_down_ends_watch_streams() {
    let server = start_default().await;
    let mut events = Events::open(&server.client, &server.url("/?watch=true"), None).await;
    server.shutdown.cancel();
    assert!(events.next_event().await.is_none());
    let stopped = tokio::time::timeout(Duration::from_secs(10), server.task).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "the agent did not stop: {stopped:?}"
    );
}

#[tokio::test]
async fn malformed_resume_points_get_a_400() {
    let server = start_default().await;
    let reply = server
        .client
        .get(server.url("/?watch=true"))
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);
    let body: serde_json::Value = serde_json::from_slice(&reply.bytes().await.unwrap()).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("Last-Event-ID"),
        "{body}"
    );
}

#[tokio::test]
async fn a_value_whose_ttl_runs_out_is_an_expired_event_when_swept() {
    let config: c19_state_default::DefaultStateConfig =
        serde_json::from_value(json!({ "purge_interval": 50 })).unwrap();
    let state_shutdown = c19_core::Shutdown::new();
    let cx = c19_core::LayerContext::new("state", state_shutdown.clone());
    let state = c19_core::StateConfig::build(&config, &cx).await.unwrap();
    let server = start_with(state, HttpAgentConfig::default()).await;
    let mut events = Events::open(&server.client, &server.url("/cat?watch=true"), None).await;
    server
        .put_json(json!({"cat": {"value": "garfield", "ttl": 100}}))
        .await;
    let written = events.next_event().await.unwrap();
    assert_eq!(written.json()["value"], "garfield");
    let ts = written.json()["ts"].as_u64().unwrap();

    // Swept within a few purge intervals of its expiry.
    let expired = events
        .next_within(Duration::from_secs(10))
        .await
        .expect("no event for the expiry");
    assert_eq!(
        expired.json(),
        json!({"key": "cat", "value": null, "ts": ts, "ttl": 100, "expired": true})
    );
    assert!(expired.seq() > written.seq());
    assert_eq!(server.get("/cat").await.status, 404);
    // Not a delete: the state holds no tombstone, and has nothing to push.
    assert_eq!(server.state.diff(written.seq(), 1 << 20).unwrap().count, 0);
    state_shutdown.cancel();
}
