//! The agent's HTTP API against the real Default state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn the_0_1_put_example_is_stored_and_read_back() {
    let server = start_default().await;
    let reply = server
        .put(r#"{"cat": {"value": "garfield", "ttl": 20000}}"#)
        .await;
    assert_eq!(reply.status, 204);
    let reply = server.get("/cat").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    assert_eq!(reply.body["value"], "garfield");
    assert_eq!(reply.body["ttl"], 20000);
    assert!(reply.body["ts"].as_u64().unwrap() > 1_600_000_000_000);
}

#[tokio::test]
async fn several_keys_in_one_put() {
    let server = start_default().await;
    let reply = server
        .put_json(
            json!({"cat": {"value": "garfield"}, "dog": {"value": {"name": "odie", "age": 3}}}),
        )
        .await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        server.get("/dog").await.body["value"],
        json!({"name": "odie", "age": 3})
    );
    assert_eq!(server.get("/cat").await.body["value"], "garfield");
}

#[tokio::test]
async fn a_get_right_after_the_204_returns_the_write() {
    let server = start_default().await;
    for i in 0..200 {
        let reply = server.put_json(json!({"counter": {"value": i}})).await;
        assert_eq!(reply.status, 204);
        assert_eq!(server.get("/counter").await.body["value"], i);
    }
}

#[tokio::test]
async fn absent_keys_are_404_with_a_json_error() {
    let server = start_default().await;
    assert_error(&server.get("/nobody").await, 404, r#""nobody" not found"#);
    // The root lists the keys instead (see tests/listing.rs).
    assert_eq!(server.get("/").await.body, json!({}));
}

#[tokio::test]
async fn the_key_is_the_whole_percent_decoded_path() {
    let server = start_default().await;
    let reply = server
        .put_json(json!({"a/b": {"value": 1}, "users/42": {"value": 2}, "hello world": {"value": 3}, "b": {"value": 4}}))
        .await;
    assert_eq!(reply.status, 204);
    assert_eq!(server.get("/a%2Fb").await.body["value"], 1);
    assert_eq!(server.get("/a/b").await.body["value"], 1);
    assert_eq!(server.get("/users/42").await.body["value"], 2);
    assert_eq!(server.get("/users%2F42").await.body["value"], 2);
    assert_eq!(server.get("/hello%20world").await.body["value"], 3);
    // 0.1 read only the last segment: `/x/b` is not `b`.
    assert_eq!(server.get("/x/b").await.status, 404);
    assert_error(&server.get("/%FF").await, 400, "UTF-8");
}

#[tokio::test]
async fn delete_removes_the_key_and_is_idempotent() {
    let server = start_default().await;
    server.put_json(json!({"a/b": {"value": 1}})).await;
    assert_eq!(server.delete("/a%2Fb").await.status, 204);
    assert_eq!(server.get("/a/b").await.status, 404);
    assert_eq!(server.delete("/a/b").await.status, 204);
    assert_eq!(server.delete("/never-was").await.status, 204);
    // The delete of an absent key still leaves a tombstone to win over older values.
    server
        .state
        .set(&r#"{"never-was": {"value": "old", "ts": 1}}"#)
        .unwrap();
    assert_eq!(server.get("/never-was").await.status, 404);
    let (reply, allow) = server.request(reqwest::Method::DELETE, "/").await;
    assert_error(&reply, 405, "DELETE needs a key");
    assert!(allow.unwrap().contains("PUT"));
}

#[tokio::test]
async fn other_methods_and_paths_get_405_with_allow() {
    let server = start_default().await;
    let (reply, allow) = server.request(reqwest::Method::POST, "/").await;
    assert_error(&reply, 405, "PUT /");
    assert_eq!(allow.as_deref(), Some("GET, HEAD, PUT, DELETE"));
    let response = server
        .client
        .put(server.url("/cat"))
        .body(r#"{"cat": {"value": 1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(server.get("/cat").await.status, 404);
}

#[tokio::test]
async fn every_bad_body_gets_400_and_changes_nothing() {
    let server = start_default().await;
    server.put_json(json!({"kept": {"value": "before"}})).await;
    let before = server.snapshot();
    for (body, needle) in [
        ("", "the body is empty"),
        ("   ", "the body is empty"),
        ("{\"cat\": ", "the body is not JSON"),
        ("garfield", "the body is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("\"cat\"", "must be a JSON object"),
        (
            r#"{"cat": "garfield"}"#,
            r#"key "cat": the entry must be an object"#,
        ),
        (
            r#"{"cat": {"ttl": 20000}}"#,
            r#"key "cat": missing field "value""#,
        ),
        (
            r#"{"cat": {"value": 1, "ttl": "20000"}}"#,
            r#"key "cat": "ttl" must be a non-negative integer"#,
        ),
        (
            r#"{"cat": {"value": 1, "ttl": 1.5}}"#,
            r#""ttl" must be a non-negative integer"#,
        ),
        (
            r#"{"cat": {"value": 1, "ttl": -5}}"#,
            r#""ttl" must be a non-negative integer"#,
        ),
        (
            r#"{"cat": {"value": 1, "ts": 12.5}}"#,
            r#"key "cat": "ts" must be a non-negative integer"#,
        ),
        (
            r#"{"cat": {"value": 1, "ts": "now"}}"#,
            r#""ts" must be a non-negative integer"#,
        ),
        (
            r#"{"cat": {"value": 1, "tll": 5}}"#,
            r#"unknown field "tll""#,
        ),
        (r#"{"": {"value": 1}}"#, "keys must not be empty"),
        // One bad entry refuses the whole batch, the good entries included.
        (
            r#"{"kept": {"value": "after"}, "new": {"value": 1}, "bad": {"value": 2, "ttl": "x"}}"#,
            r#"key "bad""#,
        ),
    ] {
        let reply = server.put(body).await;
        assert_error(&reply, 400, needle);
        assert_eq!(server.snapshot(), before, "{body:?} changed the state");
    }
    assert_eq!(server.get("/kept").await.body["value"], "before");
    assert_eq!(server.get("/new").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_each_get_their_own_answer() {
    let server = start_default().await;
    // Small writes arriving together are applied together: a refused one must still
    // be refused alone, and every other one acknowledged only once readable.
    let replies = futures::future::join_all((0..96).map(|i| {
        let server = &server;
        async move {
            let body = if i % 8 == 3 {
                format!(r#"{{"bad-{i}": {{"value": {i}, "ttl": "x"}}}}"#)
            } else {
                json!({format!("key-{i}"): {"value": i}}).to_string()
            };
            let reply = server.put(body).await;
            let read = server.get(&format!("/key-{i}")).await;
            (i, reply, read)
        }
    }))
    .await;
    for (i, reply, read) in replies {
        if i % 8 == 3 {
            assert_error(&reply, 400, &format!(r#"key "bad-{i}""#));
            assert_eq!(server.get(&format!("/bad-{i}")).await.status, 404);
        } else {
            assert_eq!(reply.status, 204, "{}", reply.body);
            assert_eq!(
                read.body["value"], i,
                "PUT {i} was not readable after its 204"
            );
        }
    }
    assert_eq!(server.snapshot().1.len(), 84);
}

#[tokio::test]
async fn a_big_batch_is_applied() {
    let server = start_default().await;
    let mut batch = serde_json::Map::new();
    for i in 0..5000 {
        batch.insert(format!("key-{i}"), json!({"value": "v".repeat(50)}));
    }
    let body = serde_json::Value::Object(batch).to_string();
    assert!(body.len() > 64 * 1024);
    assert_eq!(server.put(body).await.status, 204);
    assert_eq!(server.get("/key-4999").await.status, 200);
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let server = start_default().await;
    server.put_json(json!({"cat": {"value": "garfield"}})).await;
    let (reply, _) = server.request(reqwest::Method::HEAD, "/cat").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, serde_json::Value::Null);
    let (reply, _) = server.request(reqwest::Method::HEAD, "/dog").await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn a_ts_beyond_max_clock_skew_in_the_future_is_refused_and_changes_nothing() {
    let server = start_default().await;
    assert_eq!(
        server.put_json(json!({"cat": {"value": 1}})).await.status,
        204
    );
    let before = server.snapshot();
    let now = c19_state_default::now_ms();

    let reply = server
        .put_json(json!({"dog": {"value": 2}, "cat": {"value": 3, "ts": now + 3_600_000}}))
        .await;
    assert_error(&reply, 400, r#"key "cat": "ts" is "#);
    assert_error(&reply, 400, "max_clock_skew (30000 ms)");
    assert_eq!(server.snapshot(), before);

    // A large batch takes another path to the state, with the same check.
    let filler = "x".repeat(100 * 1024);
    let reply = server
        .put_json(json!({"big": {"value": filler}, "cat": {"value": 4, "ts": now + 3_600_000}}))
        .await;
    assert_error(&reply, 400, "max_clock_skew");
    assert_eq!(server.snapshot(), before);

    // A clock a second ahead is well within the limit.
    let reply = server
        .put_json(json!({"cat": {"value": 5, "ts": now + 1000}}))
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert_eq!(server.get("/cat").await.body["ts"], now + 1000);
}
