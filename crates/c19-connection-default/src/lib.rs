//! The `Default` connection layer of c19: HTTP gossip of state changes, with periodic
//! anti-entropy pulls to repair what gossip missed.
//!
//! ```yaml
//! connection:
//!   kind: Default
//!   port: 4097            # peers call this port
//!   push_interval: 1000   # ms between pushes of recent changes
//!   pull_interval: 60000  # ms between anti-entropy pulls (exchanges with c19 peers)
//!   r0: 3                 # peers per push and per pull, chosen at random
//!   timeout: 1000         # ms to connect to a peer and to complete a push
//!   max_message_bytes: 4194304  # most bytes of one anti-entropy message
//!   sync_timeout: 10000   # ms readiness waits for a first sync while no peer answers
//!   peer_provider: { kind: Static, peers: ["10.0.0.2:4097", "c19-1.c19.svc"] }
//!   tls:                  # optional: mutual TLS between agents
//!     cert: /etc/c19/tls/tls.crt
//!     key: /etc/c19/tls/tls.key
//!     ca: /etc/c19/tls/ca.crt
//!     server_name: c19
//!     mode: strict        # or permissive, to migrate
//! ```
//!
//! It speaks the 0.1 protocol, so 0.1 and c19 agents can share a cluster:
//!
//! - the **peer server** answers `GET /<version>` with the whole state (204 when the
//!   version is its own) and merges `PUT /` bodies. A body the state refuses gets 400,
//!   one over `body_limit` 413, one that arrives too slowly 408, each with
//!   `{"error": "..."}` and no change to the state;
//! - the **publisher** pushes every change (new keys, updates, deletions) made or
//!   learned since its last pushes to `r0` peers (its successor on the ring of peer
//!   names and random others), each change in two rounds, at once when it has not
//!   pushed during the last `push_interval`;
//! - the **receiver** pulls from `r0` random peers at start and every `pull_interval`:
//!   an anti-entropy exchange with a c19 peer, the whole state from a 0.1 one.
//!
//! # Readiness
//!
//! The `connection` component of `/readyz` ([`c19_core::LayerContext::readiness`]) turns ready
//! once the first pull with a peer (an exchange, or a 0.1 whole-state pull) completed:
//! an agent that reports ready holds the cluster's data. Until then it waits for
//! `first sync with a peer`, which `/readyz` names. It turns ready without a sync when
//! the peer provider offers no peer besides this agent (the first pods of a fresh
//! Kubernetes rollout see none, as the K8s provider offers only ready pods), or when
//! `sync_timeout` passed with no peer answering, with a warning; an exchange whose peer
//! answers at that moment is let finish first. The peer server serves peers meanwhile.
//!
//! # Anti-entropy between c19 agents
//!
//! Between c19 agents a pull is an anti-entropy exchange rather than a copy of the whole
//! state: a conversation of `POST /_c19/sync` messages that the state writes and reads
//! ([`c19_core::State::sync_open`], [`c19_core::State::sync_answer`]); this layer only
//! carries and counts them. With the Default state it costs a small `hello` when both
//! sides are equal, and otherwise in proportion to what differs, repairing both sides
//! (see the `c19-state-default` docs for the method). No message exceeds
//! `max_message_bytes` before compression (nor `body_limit`): an empty agent gets the
//! whole state once, in pages.
//!
//! Messages are compressed with zstd when both sides say so: each request carries
//! `Accept-Encoding: zstd` and gets its answer compressed; each answer carries
//! `Accept-Encoding: zstd` too (RFC 7694), and only then are the following requests
//! compressed. The byte counters count the compressed bodies.
//!
//! The exchange is negotiated per peer: a peer that answers it with 404 or 405 (a 0.1
//! agent), or 501 (a state without exchanges), or that cannot read the opening message
//! (400, another kind of state), is pulled whole with `GET /<version>` as in 0.1, and
//! asked again after ten minutes. A local state without exchanges pulls whole too.
//!
//! One pooled keep-alive HTTP client serves all peers, with timeouts and a bound on
//! requests in flight. A failing peer is skipped for an exponentially growing time and
//! logged once per state change. The agent never talks to itself: it recognises its own
//! address, and a random node id sent with every request and response unmasks it behind
//! any other address. Counters of the traffic are served on `GET /_c19/stats` and, as
//! `c19_connection_*` metrics, through the `metrics` facade.
//!
//! Every response of the peer server carries its clock in a `c19-clock` header; each
//! exchange thus measures this agent's clock offset to the peer, exported as the median
//! `c19_clock_offset_seconds`, and a peer further off than the state's `max_clock_skew`
//! is logged as an error (see `clock`).
//!
//! # Mutual TLS
//!
//! With `tls:` set, peers speak HTTPS with client certificates; see [`PeerTls`] and the
//! `c19-tls` crate. Without it, nothing changes on the wire.
//!
//! On shutdown the publisher pushes every change it has not published yet before the
//! layer returns, so a write acknowledged just before a rolling restart reaches peers.

mod cadence;
mod client;
mod clock;
mod codec;
mod config;
mod debts;
mod error;
mod exported;
mod final_push;
mod first_sync;
mod gossip;
mod identity;
mod peers;
mod publisher;
mod push;
mod receiver;
mod report;
mod server;
#[cfg(feature = "sim")]
pub mod sim;
mod stats;
mod tls;
mod transport;

#[cfg(test)]
mod tests;

use std::{net::SocketAddr, sync::Arc};

#[cfg(test)]
use c19_core::Shutdown;
use c19_core::{
    Connection, ConnectionConfig, LayerContext, LayerError, PeerProvider, SafeState,
    reexports::futures::future::BoxFuture,
};
use tokio::net::TcpListener;

pub use config::DefaultConnectionConfig;
pub use error::{Error, Result};
pub use identity::{NODE_HEADER, NodeId};
pub use stats::{Stats, StatsSnapshot};
pub use tls::{PeerTls, TlsMode};

use crate::{
    client::PeerClient, config::Settings, first_sync::FirstSync, gossip::Gossip, peers::PeerBook,
    server::PeerServer,
};

#[typetag::serde(name = "Default")]
impl ConnectionConfig for DefaultConnectionConfig {
    fn build<'a>(
        &'a self,
        cx: &'a LayerContext,
        state: SafeState,
    ) -> BoxFuture<'a, Result<Box<dyn Connection>, LayerError>> {
        Box::pin(async move {
            let live = self.build_live(cx, state).await?;
            Ok(Box::new(live) as Box<dyn Connection>)
        })
    }

    fn check(&self) -> Result<(), LayerError> {
        self.load_tls().map(drop)
    }
}

/// The loaded TLS of a connection.
struct LoadedTls {
    identity: c19_tls::Identity,
    config: PeerTls,
}

impl DefaultConnectionConfig {
    /// Loads and checks the TLS files, when TLS is configured.
    fn load_tls(&self) -> Result<Option<LoadedTls>, LayerError> {
        let Some(config) = &self.tls else {
            return Ok(None);
        };
        let identity = config
            .identity()
            .map_err(|error| LayerError::other(format!("connection.tls: {error}")))?;
        Ok(Some(LoadedTls {
            identity,
            config: config.clone(),
        }))
    }

    /// Builds the live connection: loads the TLS files (bad ones are a start-up
    /// error, before the port is taken) and builds the peer provider.
    async fn build_live(
        &self,
        cx: &LayerContext,
        state: SafeState,
    ) -> Result<DefaultConnection, LayerError> {
        let tls = self.load_tls()?;
        let provider = match &self.peer_provider {
            Some(provider) => Some(provider.build(&cx.child("peer_provider")).await?),
            None => None,
        };
        Ok(DefaultConnection {
            cx: cx.clone(),
            state,
            addr: SocketAddr::new(self.address, self.port),
            settings: self.settings(self.port),
            dial_listen_port: self.port == 0 && self.target_port.is_none(),
            provider,
            tls,
        })
    }

    /// Builds the connection and runs it on an already bound `listener` until
    /// `shutdown` is cancelled.
    #[cfg(test)]
    async fn run(
        &self,
        listener: TcpListener,
        state: SafeState,
        shutdown: Shutdown,
    ) -> Result<(), LayerError> {
        let cx = LayerContext::new("connection", shutdown);
        self.build_live(&cx, state).await?.serve(listener).await
    }
}

/// The live Default connection, built by [`DefaultConnectionConfig`]: its peer server,
/// publisher and receiver run from [`Connection::run`] until the context's shutdown.
pub struct DefaultConnection {
    cx: LayerContext,
    state: SafeState,
    /// Where the peer server listens.
    addr: SocketAddr,
    /// The settings (`dial_port` as configured).
    settings: Settings,
    /// Whether peers are dialled on the port the server gets (`port: 0` without
    /// `target_port`).
    dial_listen_port: bool,
    provider: Option<Arc<dyn PeerProvider>>,
    tls: Option<LoadedTls>,
}

impl std::fmt::Debug for DefaultConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultConnection")
            .field("addr", &self.addr)
            .field("provider", &self.provider)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Connection for DefaultConnection {
    fn run(self: Box<Self>) -> BoxFuture<'static, Result<(), LayerError>> {
        Box::pin(async move {
            let listener =
                TcpListener::bind(self.addr)
                    .await
                    .map_err(|source| LayerError::Bind {
                        addr: self.addr.to_string(),
                        source,
                    })?;
            self.serve(listener).await
        })
    }
}

impl DefaultConnection {
    /// Runs on an already bound `listener` until the context's shutdown.
    async fn serve(self, listener: TcpListener) -> Result<(), LayerError> {
        let shutdown = self.cx.shutdown().clone();
        let local = listener.local_addr()?;
        let mut settings = self.settings;
        if self.dial_listen_port {
            settings.dial_port = local.port();
        }
        if self.tls.is_some() {
            settings = settings.with_tls();
        }
        let node = NodeId::random();
        let stats = Arc::new(Stats::default());
        let first_sync =
            FirstSync::new(settings.sync_timeout, shutdown.clone(), self.cx.readiness());
        first_sync.begin();
        tracing::info!(%local, node = %node, "peer server listening");

        let provider = self.provider.as_deref();
        if provider.is_none() {
            tracing::warn!(
                "no peer_provider configured: this agent exchanges its state with nobody"
            );
        }
        let tls_error =
            |error: c19_tls::Error| LayerError::other(format!("connection.tls: {error}"));
        let (acceptor, client_tls) = match &self.tls {
            None => (None, None),
            Some(LoadedTls { identity, config }) => {
                c19_tls::export_expiry("connection", identity);
                let watched = identity.clone();
                let interval = std::time::Duration::from_millis(config.reload_interval.get());
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    watched
                        .watch(interval, stop.cancelled_owned(), |identity| {
                            c19_tls::export_expiry("connection", identity)
                        })
                        .await
                });
                let acceptor = c19_tls::Acceptor::new(
                    identity.server_config().map_err(tls_error)?,
                    config.mode(),
                    settings.server_timeout,
                );
                tracing::info!(mode = ?config.mode, server_name = %config.server_name, "mutual TLS between peers");
                (
                    Some(acceptor),
                    Some((identity.client_config().map_err(tls_error)?, config.mode())),
                )
            }
        };
        let state = self.state;
        let cadence = Arc::new(cadence::Cadence::default());
        let server = Arc::new(PeerServer::new(
            state.clone(),
            node.clone(),
            stats.clone(),
            cadence.clone(),
            &settings,
        ));
        let max_clock_skew = state.max_clock_skew();
        let gossip = Gossip {
            state,
            provider,
            book: PeerBook::new(
                local.ip(),
                local.port(),
                settings.dial_port,
                settings.backoff,
            )
            .with_push_interval(settings.push_interval),
            transport: Box::new(
                PeerClient::with_tls(&settings, node, client_tls)
                    .map_err(LayerError::other)?
                    .with_max_clock_skew(max_clock_skew),
            ),
            offload: transport::Offload::Pool,
            board: true,
            settings,
            stats,
            pulled: Default::default(),
            catching_up: true.into(),
            dialects: Default::default(),
            first_sync,
            debts: Default::default(),
            cadence,
        };
        tokio::join!(
            server::serve(
                listener,
                server::router(server),
                settings.server_timeout,
                shutdown.clone(),
                acceptor.map(|acceptor| (acceptor, settings.keep_alive)),
            ),
            publisher::run(&gossip, &shutdown),
            receiver::run(&gossip, &shutdown),
            gossip.first_sync.time_out(&shutdown),
        );
        Ok(())
    }
}
