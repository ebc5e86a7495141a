//! The [`Transport`] of a simulated agent: its messages cross the [`Network`] to the
//! peer's server, with the link's latency and losses, on the runtime's (virtual) clock.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use futures::future::BoxFuture;

use super::network::{Network, Trip};
use crate::{
    client::{Pulled, Reply},
    codec::Coding,
    error::Result,
    server::PeerServer,
    transport::{Transport, unreachable},
};

/// What a message asks of the receiving agent's CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// A push: it takes the host's CPU time per push.
    Push,
    /// Anything else: counted as part of a push's CPU time.
    Other,
}

/// One agent's end of the network.
#[derive(Debug)]
pub(crate) struct MemoryTransport {
    pub network: Network,
    /// The agent's own address: where its messages come from.
    pub from: SocketAddr,
    /// How long a push waits for its answer.
    pub push_timeout: Duration,
    /// How long a pull or an exchange message waits for its answer.
    pub pull_timeout: Duration,
}

impl MemoryTransport {
    /// Carries one request to `to`, lets its server `handle` it (a push after the host's
    /// CPU time, see [`Network::set_host`]), and carries the answer back; a lost way
    /// costs the sender `timeout`.
    async fn call<T>(
        &self,
        to: SocketAddr,
        timeout: Duration,
        work: Work,
        handle: impl FnOnce(&PeerServer) -> Result<T>,
    ) -> Result<T> {
        if self.network.server(to).is_none() {
            return Err(unreachable(to, "connection refused: no agent runs there"));
        }
        match self.network.trip(self.from, to) {
            Trip::Lost => return self.lost(to, timeout).await,
            Trip::Arrives(latency) => tokio::time::sleep(latency).await,
        }
        if work == Work::Push {
            let cpu = self.network.handled_in();
            if !cpu.is_zero() {
                tokio::time::sleep(cpu).await;
            }
        }
        // It may have stopped in the meantime.
        let Some(server) = self.network.server(to) else {
            return Err(unreachable(to, "connection reset: the agent stopped"));
        };
        let answer = handle(&server);
        match self.network.trip(to, self.from) {
            Trip::Lost => self.lost(to, timeout).await,
            Trip::Arrives(latency) => {
                tokio::time::sleep(latency).await;
                answer
            }
        }
    }

    async fn lost<T>(&self, to: SocketAddr, timeout: Duration) -> Result<T> {
        tokio::time::sleep(timeout).await;
        Err(unreachable(
            to,
            "timed out: the message or its answer was lost",
        ))
    }
}

impl Transport for MemoryTransport {
    fn push(&self, to: SocketAddr, changes: Bytes) -> BoxFuture<'_, Result<Option<Duration>>> {
        Box::pin(async move {
            let network = self.network.clone();
            self.call(to, self.push_timeout, Work::Push, move |server| {
                network.delivered_push(changes.len());
                server.take_push(&changes)
            })
            .await
        })
    }

    fn pull<'a>(&'a self, to: SocketAddr, version: &'a str) -> BoxFuture<'a, Result<Pulled>> {
        Box::pin(async move {
            let network = self.network.clone();
            self.call(to, self.pull_timeout, Work::Other, move |server| {
                let pulled = server.answer_pull(version);
                let bytes = match &pulled {
                    Pulled::UpToDate => 0,
                    Pulled::State(body) => body.len(),
                };
                network.delivered_pull(bytes);
                Ok(pulled)
            })
            .await
        })
    }

    fn exchange(
        &self,
        to: SocketAddr,
        message: Bytes,
        _coding: Option<Coding>,
    ) -> BoxFuture<'_, Result<Reply>> {
        Box::pin(async move {
            let network = self.network.clone();
            let sent = message.len();
            self.call(to, self.pull_timeout, Work::Other, move |server| {
                let body = server.answer_exchange(&message)?;
                network.delivered_exchange(sent + body.len());
                Ok(Reply {
                    received: body.len(),
                    body,
                    sent,
                    accepts: None,
                })
            })
            .await
        })
    }
}
