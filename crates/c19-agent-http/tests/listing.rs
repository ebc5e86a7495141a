//! `GET /` and `GET /?prefix=P&limit=N`: the live keys, in the PUT format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

fn keys(body: &Value) -> Vec<&str> {
    body.as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn lists_every_live_key_or_those_under_a_prefix_in_key_order() {
    let server = start_default().await;
    let reply = server
        .put_json(json!({
            "users/2": {"value": {"name": "bob"}}, "users/1": {"value": "ann", "ttl": 60000},
            "groups/1": {"value": [1]}, "users/gone": {"value": 0},
        }))
        .await;
    assert_eq!(reply.status, 204);
    assert_eq!(server.delete("/users%2Fgone").await.status, 204);

    let all = server.get("/").await;
    assert_eq!(all.status, 200);
    assert_eq!(all.content_type.as_deref(), Some("application/json"));
    assert_eq!(keys(&all.body), ["groups/1", "users/1", "users/2"]);

    let users = server.get("/?prefix=users/").await;
    assert_eq!(keys(&users.body), ["users/1", "users/2"]);
    assert_eq!(users.body["users/1"]["value"], "ann");
    assert_eq!(users.body["users/1"]["ttl"], 60000);
    assert!(users.body["users/2"]["ts"].is_u64());

    // Percent-encoded prefixes, limits, and prefixes that match nothing.
    assert_eq!(
        keys(&server.get("/?prefix=users%2F&limit=1").await.body),
        ["users/1"]
    );
    assert_eq!(
        keys(&server.get("/?limit=2").await.body),
        ["groups/1", "users/1"]
    );
    assert_eq!(server.get("/?prefix=nobody").await.body, json!({}));
}

#[tokio::test]
async fn a_listing_can_be_put_back_as_it_is() {
    let source = start_default().await;
    source
        .put_json(json!({"a": {"value": {"deep": [1, 2]}}, "b": {"value": "x", "ttl": 60000}}))
        .await;
    let listing = source.client.get(source.url("/")).send().await.unwrap();
    let body = listing.bytes().await.unwrap();
    let copy = start_default().await;
    assert_eq!(copy.put(body).await.status, 204);
    assert_eq!(copy.snapshot(), source.snapshot());
}

#[tokio::test]
async fn a_listing_says_which_point_of_history_it_shows() {
    let server = start_default().await;
    server.put_json(json!({"a": {"value": 1}})).await;
    let response = server.client.get(server.url("/")).send().await.unwrap();
    let id = response.headers()[c19_agent_http::LISTING_POINT_HEADER]
        .to_str()
        .unwrap();
    // `<run>-<point>`, like every event id.
    let point: u64 = id.rsplit_once('-').unwrap().1.parse().unwrap();
    assert_eq!(point, server.state.head());
}

#[tokio::test]
async fn bad_parameters_get_a_400_naming_them() {
    let server = start_default().await;
    server.put_json(json!({"a": {"value": 1}})).await;
    for limit in ["0", "-3", "ten", "", "1.5"] {
        assert_error(
            &server.get(&format!("/?limit={limit}")).await,
            400,
            "limit must be a positive integer",
        );
    }
    assert_error(&server.get("/?prefx=a").await, 400, "prefx");
    assert_error(
        &server.get("/?watch=maybe").await,
        400,
        "watch must be true or false",
    );
    assert_error(&server.get("/?prefix=a&prefix=b").await, 400, "prefix");
    assert_error(&server.get("/?last_event_id=3").await, 400, "watch=true");
    assert_error(&server.get("/?watch=true&limit=3").await, 400, "limit");
}

#[tokio::test]
async fn reading_a_key_ignores_other_parameters_as_0_1_did() {
    let server = start_default().await;
    server.put_json(json!({"cat": {"value": "garfield"}})).await;
    assert_eq!(server.get("/cat?nocache=1").await.body["value"], "garfield");
    assert_eq!(
        server.get("/cat?watch=false").await.body["value"],
        "garfield"
    );
    assert_eq!(server.get("/cat?limit=0").await.body["value"], "garfield");
}
