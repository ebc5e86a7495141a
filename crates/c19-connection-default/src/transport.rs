//! The seam between what the connection says to a peer and how it is carried.
//!
//! The publisher and the receiver say three things to peers: push a batch of changes,
//! send one message of an anti-entropy exchange, and pull the whole state unless the peer
//! is at a version (the 0.1 pull). A [`Transport`] carries them: the HTTP client
//! ([`crate::client::PeerClient`], with TLS when configured) in every agent, and an
//! in-memory network in the simulator (`sim` feature), where the same gossip logic runs
//! against many states on a virtual clock.
//!
//! A transport reports failures as this crate's [`Error`]s, so the gossip judges peers the
//! same way whatever carries the messages: [`Error::Unreachable`] for a message that never
//! arrived, [`Error::Refused`] for data the peer would not take, [`Error::NoExchange`] for
//! a peer without exchanges.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::{
    client::{PeerClient, Pulled, Reply},
    codec::Coding,
    error::{Error, Result},
};

/// Carries the connection's messages to peers.
pub(crate) trait Transport: Send + Sync + std::fmt::Debug {
    /// Delivers a batch of `changes` to the peer at `to` (`PUT /` over HTTP); returns how
    /// long until the peer's next round, when it said ([`crate::cadence`]).
    fn push(&self, to: SocketAddr, changes: Bytes) -> BoxFuture<'_, Result<Option<Duration>>>;

    /// Asks the peer at `to` for its whole state unless it is at `version`
    /// (`GET /<version>` over HTTP).
    fn pull<'a>(&'a self, to: SocketAddr, version: &'a str) -> BoxFuture<'a, Result<Pulled>>;

    /// Sends one exchange `message` to the peer at `to`, compressed with `coding` when the
    /// transport compresses, and returns its answer (`POST /_c19/sync` over HTTP).
    fn exchange(
        &self,
        to: SocketAddr,
        message: Bytes,
        coding: Option<Coding>,
    ) -> BoxFuture<'_, Result<Reply>>;
}

impl Transport for PeerClient {
    fn push(&self, to: SocketAddr, changes: Bytes) -> BoxFuture<'_, Result<Option<Duration>>> {
        Box::pin(PeerClient::push(self, to, changes))
    }

    fn pull<'a>(&'a self, to: SocketAddr, version: &'a str) -> BoxFuture<'a, Result<Pulled>> {
        Box::pin(PeerClient::pull(self, to, version))
    }

    fn exchange(
        &self,
        to: SocketAddr,
        message: Bytes,
        coding: Option<Coding>,
    ) -> BoxFuture<'_, Result<Reply>> {
        Box::pin(PeerClient::exchange(self, to, message, coding))
    }
}

/// Where the gossip runs work that takes a while (diffs, merges, exchange steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offload {
    /// On tokio's blocking pool, off the async workers: what agents do.
    Pool,
    /// In place, on the calling task: the simulator, whose single thread and virtual
    /// clock make a run reproducible only if nothing runs elsewhere.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    Inline,
}

impl Offload {
    /// Runs `work` where this says.
    pub async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        match self {
            Offload::Pool => Ok(tokio::task::spawn_blocking(work).await?),
            Offload::Inline => Ok(work()),
        }
    }
}

/// What a message that never reached the peer says: used by transports other than HTTP
/// (whose failures are [`Error::Request`]).
#[cfg_attr(not(feature = "sim"), allow(dead_code))]
pub(crate) fn unreachable(to: SocketAddr, why: &str) -> Error {
    Error::Unreachable {
        peer: to.to_string(),
        reason: why.to_owned(),
    }
}
