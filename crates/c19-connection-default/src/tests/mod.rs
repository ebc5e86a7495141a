//! Tests of the connection against a small in-memory state, over real sockets on
//! 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anti_entropy;
mod cluster;
mod exchange;
mod server;
mod shutdown;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::State as Extract,
    http::StatusCode,
    routing::{get, put},
};
use bytes::Bytes;
use c19_core::{PeerProvider, SafeState, Shutdown};
use c19_peer_provider_static::StaticPeerProviderConfig;
use c19_testkit::MemState;
use tokio::net::TcpListener;

use crate::{
    DefaultConnectionConfig,
    client::PeerClient,
    gossip::Gossip,
    identity::NodeId,
    peers::PeerBook,
    server::{self as peer_server, PeerServer},
    stats::Stats,
};

pub(crate) use c19_testkit::wait_until;

/// The testkit's in-memory state, shared, without exchanges: these tests drive the
/// connection's whole-state pull (the path of 0.1 peers and of states without
/// exchanges); the exchange path runs on the Default state (`anti_entropy`).
pub(crate) fn mem_state() -> (Arc<MemState>, SafeState) {
    let state = Arc::new(MemState::new().without_exchanges());
    (state.clone(), state)
}

/// A configuration for tests: fast rounds on 127.0.0.1, the given peers.
pub(crate) fn config(peers: &[String]) -> DefaultConnectionConfig {
    let provider: StaticPeerProviderConfig =
        serde_json::from_value(serde_json::json!({ "peers": peers })).unwrap();
    let mut config: DefaultConnectionConfig = serde_json::from_value(serde_json::json!({
        "address": "127.0.0.1", "port": 0, "push_interval": 50, "pull_interval": 1000,
        "timeout": 500,
    }))
    .unwrap();
    config.peer_provider = Some(Box::new(provider));
    config
}

/// A peer server for `state` on a free port; stops when the returned token is cancelled.
pub(crate) struct TestServer {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    pub node: NodeId,
    pub stop: Shutdown,
    /// The server's turns to merge large bodies.
    pub merges: Arc<tokio::sync::Semaphore>,
    /// The server's room for pushes waiting for a turn.
    pub backlog: Arc<tokio::sync::Semaphore>,
    /// The next round its push answers announce.
    pub cadence: Arc<crate::cadence::Cadence>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub(crate) async fn start_server(
    state: SafeState,
    body_limit: usize,
    timeout: Duration,
) -> TestServer {
    start_server_at("127.0.0.1:0", state, body_limit, timeout).await
}

/// [`start_server`] bound to `bind`.
pub(crate) async fn start_server_at(
    bind: &str,
    state: SafeState,
    body_limit: usize,
    timeout: Duration,
) -> TestServer {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let node = NodeId::random();
    let merges = peer_server::merge_turns();
    let backlog = peer_server::backlog_room(body_limit);
    let cadence = Arc::new(crate::cadence::Cadence::default());
    let server = Arc::new(PeerServer {
        state,
        node: node.clone(),
        stats: stats.clone(),
        body_limit,
        body_timeout: timeout,
        max_message_bytes: body_limit,
        merges: merges.clone(),
        backlog: backlog.clone(),
        cadence: cadence.clone(),
    });
    let stop = Shutdown::new();
    tokio::spawn(peer_server::serve(
        listener,
        peer_server::router(server),
        timeout,
        stop.clone(),
        None,
    ));
    TestServer {
        addr,
        stats,
        node,
        stop,
        merges,
        backlog,
        cadence,
    }
}

/// A stand-in for a 0.1 peer: records the bodies pushed to it (`PUT /`), answers
/// `GET /<version>` with `["not a map"]`, and fails with 503 while `down`.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    pub bodies: Arc<Mutex<Vec<Bytes>>>,
    pub down: Arc<AtomicBool>,
}

impl Recorder {
    pub async fn start() -> (Recorder, SocketAddr) {
        let recorder = Recorder::default();
        let router = Router::new()
            .route(
                "/",
                put(
                    |Extract(recorder): Extract<Recorder>, body: Bytes| async move {
                        if recorder.down.load(Ordering::SeqCst) {
                            return StatusCode::SERVICE_UNAVAILABLE;
                        }
                        recorder.bodies.lock().unwrap().push(body);
                        StatusCode::NO_CONTENT
                    },
                )
                .get(|| async { r#"["not a map"]"# }),
            )
            .route("/{version}", get(|| async { r#"["not a map"]"# }))
            .with_state(recorder.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (recorder, addr)
    }

    /// The entries of every body received, merged into one map.
    pub fn entries(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut all = serde_json::Map::new();
        for body in self.bodies.lock().unwrap().iter() {
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(body).unwrap();
            all.extend(map);
        }
        all
    }
}

/// The client side of a connection with `config`, listening (notionally) on `own_port`.
pub(crate) fn gossip<'a>(
    config: &DefaultConnectionConfig,
    provider: &'a dyn PeerProvider,
    state: SafeState,
    own_port: u16,
) -> Gossip<'a> {
    let settings = config.settings(own_port);
    Gossip {
        state,
        provider: Some(provider),
        book: PeerBook::new(
            config.address,
            own_port,
            settings.dial_port,
            settings.backoff,
        ),
        transport: Box::new(PeerClient::new(&settings, NodeId::random()).unwrap()),
        offload: crate::transport::Offload::Pool,
        board: true,
        settings,
        stats: Arc::new(Stats::default()),
        pulled: Default::default(),
        catching_up: true.into(),
        dialects: Default::default(),
        first_sync: crate::first_sync::FirstSync::new(
            settings.sync_timeout,
            Shutdown::new(),
            c19_core::Readiness::for_component("connection"),
        ),
        debts: Default::default(),
        cadence: Default::default(),
    }
}
