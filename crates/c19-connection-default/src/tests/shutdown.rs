//! The last push on shutdown: changes not yet published reach a peer before `run`
//! returns.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State as Extract, http::StatusCode, routing::get};
use bytes::Bytes;
use c19_core::Shutdown;
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

use super::{config, mem_state, wait_until};
use c19_testkit::MemState;

/// A peer that counts pulls, records pushes, and answers 503 while `down`.
#[derive(Clone, Default)]
struct Peer {
    pulls: Arc<AtomicUsize>,
    pushed: Arc<Mutex<Vec<Bytes>>>,
    down: Arc<AtomicBool>,
}

impl Peer {
    async fn start() -> (Peer, String) {
        let peer = Peer::default();
        let pull = |Extract(peer): Extract<Peer>| async move {
            peer.pulls.fetch_add(1, Ordering::SeqCst);
            (StatusCode::OK, "{}")
        };
        let push = |Extract(peer): Extract<Peer>, body: Bytes| async move {
            if peer.down.load(Ordering::SeqCst) {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            peer.pushed.lock().unwrap().push(body);
            StatusCode::NO_CONTENT
        };
        let router = Router::new()
            .route("/", get(pull).put(push))
            .route("/{version}", get(pull))
            .with_state(peer.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (peer, addr)
    }

    fn received(&self, key: &str) -> Option<Value> {
        self.pushed.lock().unwrap().iter().rev().find_map(|body| {
            let map: serde_json::Map<String, Value> = serde_json::from_slice(body).unwrap();
            map.get(key).map(|entry| entry["value"].clone())
        })
    }
}

/// A connection that pushes once a minute, to `peers`.
async fn start(peers: &[String]) -> (Arc<MemState>, Shutdown, JoinHandle<()>) {
    let mut config = config(peers);
    config.push_interval = std::num::NonZeroU64::new(60_000).unwrap();
    config.pull_interval = std::num::NonZeroU64::new(60_000).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (state, shared) = mem_state();
    let stop = Shutdown::new();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move { config.run(listener, shared, stop).await.unwrap() }
    });
    (state, stop, running)
}

async fn stopped(running: JoinHandle<()>) -> bool {
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .is_ok_and(|joined| joined.is_ok())
}

#[tokio::test]
async fn a_change_made_just_before_shutdown_is_pushed_before_run_returns() {
    let (peer, addr) = Peer::start().await;
    let (state, stop, running) = start(std::slice::from_ref(&addr)).await;
    // The first pull shows the publisher has started (and found nothing to push).
    assert!(
        wait_until(Duration::from_secs(10), || async {
            peer.pulls.load(Ordering::SeqCst) > 0
        })
        .await
    );
    state.put("cat", json!("garfield"), 100);
    stop.cancel();
    assert!(stopped(running).await, "the connection did not stop");
    assert_eq!(peer.received("cat"), Some(json!("garfield")));
}

#[tokio::test]
async fn the_last_push_waits_for_a_peer_that_is_down_for_a_while() {
    let (peer, addr) = Peer::start().await;
    let (state, stop, running) = start(std::slice::from_ref(&addr)).await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            peer.pulls.load(Ordering::SeqCst) > 0
        })
        .await
    );
    peer.down.store(true, Ordering::SeqCst);
    state.put("cat", json!("garfield"), 100);
    stop.cancel();
    // A few failed attempts, then the peer is back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!running.is_finished(), "gave up while the peer was down");
    peer.down.store(false, Ordering::SeqCst);
    assert!(stopped(running).await, "the connection did not stop");
    assert_eq!(peer.received("cat"), Some(json!("garfield")));
}

#[tokio::test]
async fn without_peers_shutdown_does_not_wait() {
    let (state, stop, running) = start(&[]).await;
    state.put("cat", json!("garfield"), 100);
    stop.cancel();
    assert!(stopped(running).await, "the connection did not stop");
}
