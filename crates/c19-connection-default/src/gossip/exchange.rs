//! Pulls by anti-entropy exchange: the state writes and reads the messages, this module
//! carries them to the peer, counts them, and falls back to pulling the whole state
//! from peers that do not take part (0.1 agents, or states without exchanges).

use std::{collections::HashMap, net::SocketAddr, sync::Mutex, time::Duration};

use bytes::Bytes;
use c19_core::{Applied, StateError, SyncSession};
use tokio::time::Instant;

use super::{Gossip, Outcome};
use crate::{
    codec::Coding,
    error::{Error, Result},
    peers::Target,
    report,
};

/// How long a peer found to speak only 0.1 is pulled whole before it is asked again (it
/// may have been upgraded in between).
pub(crate) const RECHECK_LEGACY: Duration = Duration::from_secs(600);

/// The most messages of one exchange: far more than a state needs, but an end to one
/// that goes wrong.
const MAX_MESSAGES: usize = 100_000;

/// Which peers speak only the 0.1 protocol, until when.
#[derive(Debug, Default)]
pub(crate) struct Dialects {
    legacy: Mutex<HashMap<String, Instant>>,
}

impl Dialects {
    fn legacy(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A map of deadlines holds no invariant a panic could break.
        self.legacy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `peer` is to be pulled whole at `now`.
    pub fn is_legacy(&self, peer: &str, now: Instant) -> bool {
        let mut legacy = self.legacy();
        match legacy.get(peer) {
            Some(until) if *until > now => true,
            Some(_) => {
                legacy.remove(peer);
                false
            }
            None => false,
        }
    }

    /// Remembers that `peer` does not take part in exchanges, from `now` on.
    pub fn mark_legacy(&self, peer: &str, now: Instant) {
        self.legacy().insert(peer.to_owned(), now + RECHECK_LEGACY);
    }
}

/// What one exchange carried.
#[derive(Debug, Default)]
struct Traffic {
    /// Requests answered.
    messages: usize,
    /// Body bytes sent.
    sent: usize,
    /// Body bytes received.
    received: usize,
}

impl Gossip<'_> {
    /// Pulls from `target` with an anti-entropy exchange. `None` when the whole state is
    /// to be pulled instead: the local state has no exchanges, or the peer takes no part
    /// (it is then pulled whole for [`RECHECK_LEGACY`]).
    pub(super) async fn exchange_with(&self, target: &Target) -> Option<Outcome> {
        if self.dialects.is_legacy(&target.name, Instant::now()) {
            return None;
        }
        let session = match self
            .state
            .clone()
            .sync_open(self.settings.max_message_bytes)
        {
            Ok(session) => session,
            Err(StateError::Unsupported(_)) => return None,
            Err(error) => {
                tracing::warn!("cannot start an exchange; pulling the whole state: {error}");
                return None;
            }
        };
        let mut traffic = Traffic::default();
        let result = match self.book.resolve(target, self.settings.timeout).await {
            Ok(addr) => self.converse(addr, session, &mut traffic).await,
            Err(error) => Err(error),
        };
        match result {
            Err(Error::NoExchange { status }) => {
                tracing::info!(
                    peer = %target.name,
                    status,
                    "the peer does not take part in anti-entropy exchanges (a 0.1 agent?); \
                     pulling its whole state"
                );
                self.dialects.mark_legacy(&target.name, Instant::now());
                None
            }
            result => {
                // Equal versions end an exchange at its first answer.
                let in_sync = result.as_ref().ok().map(|_| traffic.messages == 1);
                if self.board {
                    report::pulled(
                        &target.name,
                        report::EXCHANGE,
                        &result,
                        in_sync,
                        (traffic.sent, traffic.received),
                    );
                }
                match &result {
                    Ok(applied) => {
                        self.stats.pull_answered(0);
                        if applied.applied > 0 {
                            tracing::debug!(peer = %target.name, applied = applied.applied, "exchange merged");
                        }
                    }
                    Err(_) => self.stats.pull_failed(),
                }
                Some(self.judge(target, result.map(Some)))
            }
        }
    }

    /// Carries the messages of `session` to the peer at `addr` until it is complete.
    async fn converse(
        &self,
        addr: SocketAddr,
        mut session: Box<dyn SyncSession>,
        traffic: &mut Traffic,
    ) -> Result<Applied> {
        let mut answer: Option<Bytes> = None;
        let mut coding: Option<Coding> = None;
        for sent in 0..MAX_MESSAGES {
            let (back, request) = self.step(session, answer.take()).await?;
            session = back;
            self.note_pulled(session.written());
            let Some(request) = request? else {
                return Ok(session.applied());
            };
            let reply = match self.transport.exchange(addr, request, coding).await {
                // A peer of another kind of state cannot read the opening message.
                Err(Error::Refused { status: 400, .. }) if sent == 0 => {
                    return Err(Error::NoExchange { status: 400 });
                }
                reply => reply?,
            };
            self.first_sync.heard();
            self.stats.exchange_made(reply.sent, reply.received);
            traffic.messages += 1;
            traffic.sent += reply.sent;
            traffic.received += reply.received;
            coding = reply.accepts.or(coding);
            answer = Some(reply.body);
        }
        tracing::warn!("an exchange ran to {MAX_MESSAGES} messages; stopped it");
        Ok(session.applied())
    }

    /// One step of `session` off the async workers (merging a page is real work); returns
    /// the session and its next request.
    async fn step(
        &self,
        mut session: Box<dyn SyncSession>,
        answer: Option<Bytes>,
    ) -> Result<(Box<dyn SyncSession>, Result<Option<Bytes>>)> {
        self.offload
            .run(move || {
                let request = session.step(answer.as_deref()).map_err(Error::State);
                (session, request)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_peers_are_asked_again_after_a_while() {
        let dialects = Dialects::default();
        let start = Instant::now();
        assert!(!dialects.is_legacy("a:1", start));
        dialects.mark_legacy("a:1", start);
        assert!(dialects.is_legacy("a:1", start + RECHECK_LEGACY / 2));
        assert!(!dialects.is_legacy("b:1", start));
        assert!(!dialects.is_legacy("a:1", start + RECHECK_LEGACY));
        assert!(!dialects.is_legacy("a:1", start));
    }
}
