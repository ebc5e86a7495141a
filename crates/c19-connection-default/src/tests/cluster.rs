//! Whole connections, in one process: changes spread through a small cluster.

use std::{sync::Arc, time::Duration};

use c19_core::{ConnectionConfig, LayerContext, Shutdown};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::{config, mem_state, wait_until};
use c19_testkit::MemState;

struct Member {
    state: Arc<MemState>,
}

/// Starts `n` connections that all list each other (and themselves) as peers.
async fn cluster(n: usize, stop: &Shutdown) -> Vec<Member> {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let peers: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let mut members = Vec::new();
    for listener in listeners {
        let (state, shared) = mem_state();
        let config = config(&peers);
        let stop = stop.clone();
        tokio::spawn(async move { config.run(listener, shared, stop).await });
        members.push(Member { state });
    }
    members
}

async fn everywhere(members: &[Member], key: &str, value: &Value) -> bool {
    wait_until(Duration::from_secs(10), || async {
        members
            .iter()
            .all(|member| member.state.value(key).as_ref() == Some(value))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_and_updated_keys_reach_every_member() {
    let stop = Shutdown::new();
    let members = cluster(4, &stop).await;
    members[0].state.put("cat", json!("garfield"), 100);
    assert!(everywhere(&members, "cat", &json!("garfield")).await);
    members[2].state.put("cat", json!("tom"), 200);
    assert!(everywhere(&members, "cat", &json!("tom")).await);
    // Same timestamp on two members: the deterministic winner everywhere.
    members[1].state.put("tie", json!("a"), 300);
    members[3].state.put("tie", json!("b"), 300);
    assert!(everywhere(&members, "tie", &json!("b")).await);
    stop.cancel();
}

#[tokio::test]
async fn start_fails_naming_the_address_when_the_port_is_taken() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut config = config(&[]);
    config.port = port;
    let (_, shared) = mem_state();
    let cx = LayerContext::new("connection", Shutdown::new());
    let error = config
        .build(&cx, shared)
        .await
        .unwrap()
        .run()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
}

#[tokio::test]
async fn stops_when_shutdown_is_cancelled() {
    let mut config = config(&[]);
    config.peer_provider = None;
    let (_, shared) = mem_state();
    let stop = Shutdown::new();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move {
            let cx = LayerContext::new("connection", stop);
            config.build(&cx, shared).await?.run().await
        }
    });
    stop.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), running).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
}
