//! Listing keys on a real agent: everything it holds, its own writes and its peers',
//! under a prefix and up to a limit, in the format `PUT /` takes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops;

use c19_tests::{ClusterBuilder, agent_bin, http, wait_until};
use ops::DEADLINE;
use serde_json::{Value, json};

async fn list(url: String) -> (u16, Value) {
    let response = http().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn keys(listing: &Value) -> Vec<&str> {
    listing
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn an_agent_lists_its_own_and_its_peers_keys() {
    let cluster = ClusterBuilder::new(agent_bin!(), 2).start().await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    a.set("users/1", json!({"name": "ann"})).await;
    b.set("users/2", json!({"name": "bob"})).await;
    b.set("groups/1", json!(["users/1"])).await;
    let complete = wait_until(DEADLINE, || async {
        keys(&list(a.url("/")).await.1).len() == 3
    })
    .await;
    assert!(
        complete,
        "a does not list b's keys; logs:\n{}",
        cluster.logs()
    );

    let (status, users) = list(a.url("/?prefix=users/")).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&users), ["users/1", "users/2"]);
    assert_eq!(users["users/2"]["value"], json!({"name": "bob"}));
    assert_eq!(keys(&list(a.url("/?limit=1")).await.1), ["groups/1"]);

    // The listing is a PUT body: copied to b unchanged, it changes nothing there (once
    // b has a's key: a listing all three says nothing of what b holds).
    let arrived = wait_until(DEADLINE, || async { b.get("users/1").await.is_some() }).await;
    assert!(
        arrived,
        "users/1 did not reach b; logs:\n{}",
        cluster.logs()
    );
    let version_before = b.get("users/1").await.unwrap();
    assert_eq!(b.put(list(a.url("/")).await.1).await, 204);
    assert_eq!(b.get("users/1").await.unwrap(), version_before);
}

#[tokio::test]
async fn a_bad_limit_gets_a_400_with_a_json_error() {
    let cluster = ClusterBuilder::new(agent_bin!(), 1).start().await;
    let node = &cluster.nodes[0];
    for bad in ["0", "-1", "many"] {
        let (status, body) = list(node.url(&format!("/?limit={bad}"))).await;
        assert_eq!(status, 400, "limit={bad}");
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains("limit must be a positive integer"),
            "{message}"
        );
    }
}
