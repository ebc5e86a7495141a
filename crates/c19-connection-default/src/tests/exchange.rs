//! The publisher and the receiver, one round at a time.

use std::{sync::atomic::Ordering, time::Duration};

use c19_core::State;
use c19_peer_provider_static::StaticPeerProvider;
use serde_json::json;

use super::{Recorder, config, gossip, mem_state, start_server, start_server_at};
use crate::{
    client::PeerClient,
    publisher::{PUSH_ROUNDS, Publisher},
    push::publish,
    receiver::pull,
};

fn provider(peers: &[String]) -> StaticPeerProvider {
    StaticPeerProvider {
        peers: peers.iter().map(|peer| peer.parse().unwrap()).collect(),
    }
}

#[tokio::test]
async fn publishes_new_and_updated_keys_in_pages_of_max_push_bytes() {
    let (recorder, addr) = Recorder::start().await;
    let peers = [addr.to_string()];
    let mut config = config(&peers);
    config.max_push_bytes = 300.try_into().unwrap();
    let provider = provider(&peers);
    let (state, shared) = mem_state();
    let gossip = gossip(&config, &provider, shared, 1);

    for i in 0..20 {
        state.put(
            &format!("key-{i:02}"),
            json!(format!("value number {i}")),
            1000 + i,
        );
    }
    assert_eq!(publish(&gossip, 0).await, Some(state.head()));
    let bodies = recorder.bodies.lock().unwrap().clone();
    assert!(
        bodies.len() >= 4,
        "20 entries of ~50 bytes in pages of 300: {} pages",
        bodies.len()
    );
    assert!(
        bodies.iter().all(|body| body.len() <= 300),
        "a page exceeds max_push_bytes"
    );
    assert_eq!(recorder.entries().len(), 20);

    // An update to an existing key is pushed, and only it, in two rounds.
    let mut publisher = Publisher::new(state.head());
    let before = bodies.len();
    state.put("key-07", json!("updated"), 5000);
    for _ in 0..PUSH_ROUNDS {
        publisher.round(&gossip).await;
    }
    let bodies = recorder.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), before + PUSH_ROUNDS);
    for body in &bodies[before..] {
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        // The entry as the state holds it (the Default format: `ttl` included).
        assert_eq!(
            body,
            json!({"key-07": {"value": "updated", "ts": 5000, "ttl": null}})
        );
    }

    // Nothing new: nothing sent.
    publisher.round(&gossip).await;
    assert_eq!(publisher.since(), state.head());
    assert_eq!(recorder.bodies.lock().unwrap().len(), bodies.len());
    assert_eq!(gossip.stats.snapshot().pushes as usize, bodies.len());
}

#[tokio::test]
async fn keeps_changes_until_a_peer_takes_them() {
    let (recorder, addr) = Recorder::start().await;
    let peers = [addr.to_string()];
    let config = config(&peers);
    let provider = provider(&peers);
    let (state, shared) = mem_state();
    let gossip = gossip(&config, &provider, shared, 1);
    state.put("written-during-the-cut", json!(1), 1);

    let mut publisher = Publisher::new(0);
    recorder.down.store(true, Ordering::SeqCst);
    publisher.round(&gossip).await;
    assert_eq!(publisher.since(), 0, "nobody took the change");
    assert_eq!(gossip.stats.snapshot().push_errors, 1);
    // One failure is not enough to skip a peer: tried again.
    assert_eq!(publish(&gossip, 0).await, None);
    assert_eq!(gossip.stats.snapshot().push_errors, 2);
    // Two in a row: backed off, not even tried.
    assert_eq!(publish(&gossip, 0).await, None);
    assert_eq!(gossip.stats.snapshot().push_errors, 2);

    recorder.down.store(false, Ordering::SeqCst);
    for _ in 0..250 {
        publisher.round(&gossip).await;
        if publisher.since() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        publisher.since(),
        1,
        "the change went out once the peer was back"
    );
    assert_eq!(recorder.bodies.lock().unwrap().len(), PUSH_ROUNDS);
    assert!(recorder.entries().contains_key("written-during-the-cut"));
}

#[tokio::test]
async fn pulls_the_state_then_gets_nothing_once_equal() {
    let (remote, remote_shared) = mem_state();
    remote.put("a", json!("from the peer"), 7);
    remote.put("b", json!([1, 2]), 8);
    let server = start_server(remote_shared, 1 << 20, Duration::from_secs(1)).await;
    let peers = [server.addr.to_string()];
    let config = config(&peers);
    let provider = provider(&peers);
    let (local, shared) = mem_state();
    let gossip = gossip(&config, &provider, shared, 1);

    assert!(pull(&gossip).await);
    assert_eq!(local.value("a"), Some(json!("from the peer")));
    assert_eq!(local.version(), remote.version());
    assert!(pull(&gossip).await, "an up-to-date answer is an answer");
    assert_eq!(
        server.stats.snapshot().pulls_served,
        1,
        "the second pull got 204"
    );
    let stats = gossip.stats.snapshot();
    assert_eq!((stats.pulls, stats.pull_errors), (2, 0));
    assert!(stats.bytes_received > 0);
}

#[tokio::test]
async fn a_pulled_state_the_local_state_refuses_changes_nothing() {
    let (_recorder, addr) = Recorder::start().await;
    let peers = [addr.to_string()];
    let config = config(&peers);
    let provider = provider(&peers);
    let (local, shared) = mem_state();
    local.put("mine", json!(1), 1);
    let gossip = gossip(&config, &provider, shared, 1);
    assert!(!pull(&gossip).await);
    assert_eq!((local.len(), local.head()), (1, 1));
    assert_eq!(gossip.stats.snapshot().pull_errors, 1);
}

#[tokio::test]
async fn never_talks_to_itself_behind_an_unrecognised_address() {
    let (_, remote_shared) = mem_state();
    let server = start_server(remote_shared, 1 << 20, Duration::from_secs(1)).await;
    // The server is this very agent: same node id, on a port the book does not know as its own.
    let peers = [server.addr.to_string()];
    let config = config(&peers);
    let provider = provider(&peers);
    let (state, shared) = mem_state();
    let mut gossip = gossip(&config, &provider, shared, 1);
    gossip.transport = Box::new(PeerClient::new(&gossip.settings, server.node.clone()).unwrap());

    assert_eq!(gossip.choose().len(), 1);
    assert!(!pull(&gossip).await);
    assert!(gossip.choose().is_empty(), "recognised by its node id");
    state.put("k", json!(1), 1);
    assert_eq!(publish(&gossip, 0).await, None);
    assert_eq!(server.stats.snapshot().pulls_served, 0);
}

#[tokio::test]
async fn exchanges_with_ipv6_peers() {
    let (remote, remote_shared) = mem_state();
    remote.put("v6", json!("over [::1]"), 1);
    let server = start_server_at("[::1]:0", remote_shared, 1 << 20, Duration::from_secs(1)).await;
    let peers = [format!("[::1]:{}", server.addr.port())];
    let config = config(&peers);
    let provider = provider(&peers);
    let (local, shared) = mem_state();
    let gossip = gossip(&config, &provider, shared, 1);

    assert!(pull(&gossip).await);
    assert_eq!(local.value("v6"), Some(json!("over [::1]")));
    local.put("back", json!(true), 2);
    assert!(publish(&gossip, 1).await.is_some());
    assert_eq!(remote.value("back"), Some(json!(true)));
}

#[tokio::test]
async fn what_a_pull_brought_is_not_pushed_on_but_local_writes_are() {
    let (remote, remote_shared) = mem_state();
    remote.put("a", json!(1), 1);
    remote.put("b", json!(2), 2);
    let server = start_server(remote_shared, 1 << 20, Duration::from_secs(1)).await;
    let (recorder, recorder_addr) = Recorder::start().await;
    let peers = [server.addr.to_string(), recorder_addr.to_string()];
    let config = config(&peers);
    let provider = provider(&peers);

    // An idle agent (just restarted, say) pulls the state: it does not push it on.
    let (local, shared) = mem_state();
    let gossip = gossip(&config, &provider, shared, 1);
    let mut publisher = Publisher::new(local.head());
    assert!(pull(&gossip).await);
    assert_eq!(local.len(), 2);
    publisher.round(&gossip).await;
    assert!(recorder.bodies.lock().unwrap().is_empty());
    assert_eq!(publisher.since(), local.head());
    // Its own writes it does push.
    local.put("mine", json!("local"), 3);
    publisher.round(&gossip).await;
    assert_eq!(recorder.entries().keys().collect::<Vec<_>>(), ["mine"]);

    // Once caught up, what a pull brings is news to spread like any other.
    remote.put("fresh", json!("news"), 4);
    gossip.catching_up.store(false, Ordering::Relaxed);
    assert!(pull(&gossip).await);
    publisher.round(&gossip).await;
    assert!(recorder.entries().contains_key("fresh"));

    // An agent with a write still unpublished pushes everything after it, pulled or not.
    let (local, shared) = mem_state();
    let gossip = self::gossip(&config, &provider, shared, 1);
    let mut publisher = Publisher::new(local.head());
    local.put("pending", json!("local"), 3);
    assert!(pull(&gossip).await);
    recorder.bodies.lock().unwrap().clear();
    publisher.round(&gossip).await;
    let pushed = recorder.entries();
    for key in ["pending", "a", "b", "mine"] {
        assert!(pushed.contains_key(key), "{key} not pushed: {pushed:?}");
    }
}

#[tokio::test]
async fn a_busy_peer_is_left_alone_as_long_as_it_asks_without_counting_a_failure() {
    use axum::{
        Router,
        http::{StatusCode, header::RETRY_AFTER},
        routing::put,
    };
    let router = Router::new().route(
        "/",
        put(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(RETRY_AFTER, "5")],
                "busy",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let peers = [addr.to_string()];
    let config = config(&peers);
    let provider = provider(&peers);
    let (state, shared) = mem_state();
    let gossip = gossip(&config, &provider, shared, 1);
    state.put("cat", json!(1), 1);

    let before = tokio::time::Instant::now();
    assert_eq!(
        publish(&gossip, 0).await,
        None,
        "the busy peer took nothing"
    );
    assert_eq!(gossip.stats.snapshot().push_errors, 1);
    // A failure would back off for one push interval (50 ms); the peer asked for 5 s.
    assert!(gossip.choose_at(before + Duration::from_secs(2)).is_empty());
    let later = gossip.choose_at(before + Duration::from_secs(6));
    assert_eq!(later.len(), 1);
}
