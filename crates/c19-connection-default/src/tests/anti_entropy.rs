//! Pulls by anti-entropy exchange between two Default states over real sockets: what
//! they repair, what they cost on the byte counters, compression, the fallback to whole
//! pulls, and what the endpoint refuses.

use std::{sync::Arc, time::Duration};

use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING};
use c19_core::{SafeState, State};
use c19_peer_provider_static::StaticPeerProvider;
use c19_state_default::DefaultState;
use serde_json::{Map, Value, json};

use super::{config, gossip, mem_state, start_server};
use crate::{client::EXCHANGE_PATH, gossip::Outcome, receiver::pull, stats::StatsSnapshot};

const LIMIT: usize = 64 << 20;
const TS: u64 = 1_700_000_000_000;

fn provider(peers: &[String]) -> StaticPeerProvider {
    StaticPeerProvider {
        peers: peers.iter().map(|peer| peer.parse().unwrap()).collect(),
    }
}

fn default_state() -> (Arc<DefaultState>, SafeState) {
    let state = Arc::new(DefaultState::default());
    (state.clone(), state)
}

/// Makes `state` one that has completed an exchange (with an empty peer, in memory), as
/// every agent in a cluster soon has: peers give it what it lacks.
fn in_touch(state: &Arc<DefaultState>) {
    let peer = DefaultState::default();
    let mut session = state.clone().sync_open(1 << 20).unwrap();
    let mut answer = None;
    while let Some(request) = session.step(answer.as_deref()).unwrap() {
        answer = Some(peer.sync_answer(&request, 1 << 20).unwrap());
    }
}

fn entries(prefix: &str, count: usize, ts: u64) -> String {
    let map: Map<String, Value> = (0..count)
        .map(|i| {
            (
                format!("{prefix}-{i:05}"),
                json!({"value": format!("the sixty-byte value of entry number {i:05}"), "ts": ts}),
            )
        })
        .collect();
    Value::Object(map).to_string()
}

fn value(state: &DefaultState, key: &str) -> Option<Value> {
    state
        .get(&key)
        .map(|entry| serde_json::from_slice::<Value>(&entry).unwrap()["value"].clone())
}

fn total(a: StatsSnapshot, b: StatsSnapshot) -> (u64, u64) {
    (
        a.bytes_sent + b.bytes_sent,
        a.bytes_received + b.bytes_received,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_repairs_both_sides_and_counts_its_bytes_on_both() {
    let (remote, remote_shared) = default_state();
    let (local, shared) = default_state();
    for state in [&remote, &local] {
        state.set(&entries("key", 5000, TS)).unwrap();
    }
    remote.set(&entries("theirs", 10, TS + 1)).unwrap();
    local.set(&entries("mine", 10, TS + 1)).unwrap();
    in_touch(&remote);
    let server = start_server(remote_shared, LIMIT, Duration::from_secs(5)).await;
    let peers = [server.addr.to_string()];
    let (config, provider) = (config(&peers), provider(&peers));
    let gossip = gossip(&config, &provider, shared, 1);

    assert!(pull(&gossip).await);
    assert_eq!(
        local.version(),
        remote.version(),
        "one exchange repairs both"
    );
    assert!(value(&remote, "mine-00009").is_some());
    assert!(value(&local, "theirs-00009").is_some());
    let (client, served) = (gossip.stats.snapshot(), server.stats.snapshot());
    assert_eq!((client.pulls, client.pull_errors), (1, 0));
    assert!(served.exchanges_served >= 3, "{served:?}");
    assert_eq!(served.pulls_served, 0, "the whole state was not sent");
    // What one side sent, the other received.
    assert_eq!(client.bytes_sent, served.bytes_received);
    assert_eq!(client.bytes_received, served.bytes_sent);
    let (sent, _) = total(client, served);
    let whole = remote.get_root().len() as u64;
    assert!(
        sent * 20 < whole,
        "{sent} bytes for 20 keys of a {whole}-byte state"
    );

    // At rest, a pull is one small message answered with 204.
    assert!(pull(&gossip).await);
    let (after, _) = total(gossip.stats.snapshot(), server.stats.snapshot());
    assert!(after - sent < 300, "{} bytes at rest", after - sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_agent_gets_the_state_compressed_in_bounded_messages() {
    let (remote, remote_shared) = default_state();
    remote.set(&entries("key", 5000, TS)).unwrap();
    let server = start_server(remote_shared, LIMIT, Duration::from_secs(5)).await;
    let peers = [server.addr.to_string()];
    let mut config = config(&peers);
    config.max_message_bytes = (32 << 10).try_into().unwrap();
    let provider = provider(&peers);
    let (local, shared) = default_state();
    let gossip = gossip(&config, &provider, shared, 1);

    assert!(pull(&gossip).await);
    assert_eq!(local.version(), remote.version());
    let received = gossip.stats.snapshot().bytes_received;
    let whole = remote.get_root().len() as u64;
    assert!(
        received * 4 < whole,
        "{received} bytes received for a {whole}-byte state: not compressed"
    );
    let pages = server.stats.snapshot().exchanges_served;
    assert!(
        pages as usize >= whole as usize / (32 << 10),
        "{pages} messages for {whole} bytes in messages of 32 KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_exchanges_is_pulled_whole_and_remembered() {
    // A peer whose state has no exchanges answers 501, as a 0.1 agent answers 404.
    let (remote, remote_shared) = mem_state();
    remote.put("old-style", json!("whole"), 5);
    let server = start_server(remote_shared, LIMIT, Duration::from_secs(5)).await;
    let peers = [server.addr.to_string()];
    let (config, provider) = (config(&peers), provider(&peers));
    let (local, shared) = default_state();
    let gossip = gossip(&config, &provider, shared, 1);

    let target = gossip.choose().remove(0);
    assert_eq!(gossip.pull(&target).await, Outcome::Done);
    assert_eq!(value(&local, "old-style"), Some(json!("whole")));
    let first = server.stats.snapshot();
    assert_eq!((first.pulls_served, first.requests_refused), (1, 1));
    // Remembered: the next pull goes straight to the whole state.
    remote.put("later", json!(2), 6);
    assert_eq!(gossip.pull(&target).await, Outcome::Done);
    let second = server.stats.snapshot();
    assert_eq!((second.pulls_served, second.requests_refused), (2, 1));
    assert_eq!(value(&local, "later"), Some(json!(2)));
}

#[tokio::test]
async fn the_endpoint_refuses_what_it_cannot_read_and_advertises_zstd() {
    let (state, shared) = default_state();
    state.set(&entries("key", 10, TS)).unwrap();
    let version = state.version();
    let server = start_server(shared, 4096, Duration::from_secs(5)).await;
    let url = format!("http://{}{EXCHANGE_PATH}", server.addr);
    let http = super::server::http();
    for (body, encoding, status, reason) in [
        (&b"not a message"[..], None, 400, "not a sync message"),
        (b"{\"step\":\"give\"}", Some("br"), 415, "\"br\""),
        (b"not zstd at all", Some("zstd"), 400, "zstd"),
        (&[b'x'; 5000][..], None, 413, "4096"),
    ] {
        let mut request = http.post(&url).body(body.to_vec());
        if let Some(encoding) = encoding {
            request = request.header(CONTENT_ENCODING, encoding);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{reason}");
        assert_eq!(
            response.headers().get(ACCEPT_ENCODING).unwrap(),
            "zstd",
            "{reason}"
        );
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(reason),
            "{reason}: {error}"
        );
    }
    assert_eq!(state.version(), version);
    let get = http.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 405);
}
