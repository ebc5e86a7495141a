//! What the publisher and the receiver share: the state, the peers, the client, and the
//! bookkeeping of each exchange (health, logs, counters).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use bytes::Bytes;
use c19_core::{Applied, Diff, PeerProvider, Points, SafeState};
use tokio::time::Instant;

mod exchange;

pub(crate) use exchange::Dialects;

use crate::{
    cadence::Cadence,
    client::Pulled,
    config::Settings,
    debts::Debts,
    error::{Error, Result},
    first_sync::FirstSync,
    peers::{PeerBook, Target},
    report,
    stats::Stats,
    transport::{Offload, Transport},
};

/// How one exchange with a peer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The peer took the data (or answered the pull).
    Done,
    /// The peer is up but refused the data.
    Refused,
    /// The peer could not be reached, failed, or is this agent.
    Failed,
}

/// The client side of the connection.
#[derive(Debug)]
pub(crate) struct Gossip<'a> {
    /// The local state.
    pub state: SafeState,
    /// Who the peers are; `None`: nobody.
    pub provider: Option<&'a dyn PeerProvider>,
    /// Health and identity of the peers.
    pub book: PeerBook,
    /// What carries messages to peers: the HTTP client, or the simulator's network.
    pub transport: Box<dyn Transport>,
    /// Where diffs, merges and exchange steps run.
    pub offload: Offload,
    /// Whether contacts are reported to the operator's board ([`c19_core::status`], one
    /// per process): not in the simulator, whose agents share the process.
    pub board: bool,
    /// The configuration.
    pub settings: Settings,
    /// Traffic counters.
    pub stats: Arc<Stats>,
    /// The latest stretch of the state's history filled by a pull alone while catching
    /// up; see [`Gossip::take_pulled`].
    pub pulled: Mutex<Option<(u64, u64)>>,
    /// Whether no pull has been answered yet since start (the receiver clears it).
    pub catching_up: AtomicBool,
    /// Which peers are pulled whole, as they do not take part in exchanges.
    pub dialects: Dialects,
    /// The first sync, on which the connection's readiness waits.
    pub first_sync: FirstSync,
    /// The peers owed changes they did not take yet.
    pub debts: Debts,
    /// When this agent's next round of new changes may go, as its peer server tells.
    pub cadence: Arc<Cadence>,
}

impl Gossip<'_> {
    /// Up to `r0` random peers for one round.
    pub fn choose(&self) -> Vec<Target> {
        self.choose_at(Instant::now())
    }

    /// Up to `r0` random peers among those not backed off at `now`.
    pub fn choose_at(&self, now: Instant) -> Vec<Target> {
        let Some(provider) = self.provider else {
            return Vec::new();
        };
        let peers = self.offered(provider);
        self.book.choose(&peers, self.settings.r0, now)
    }

    /// Up to `r0` peers to push to: this agent's successor and random others (see
    /// [`PeerBook::choose_for_push`]).
    pub fn choose_push(&self) -> Vec<Target> {
        let Some(provider) = self.provider else {
            return Vec::new();
        };
        let peers = self.offered(provider);
        let itself = provider.itself();
        self.book
            .choose_for_push(&peers, itself.as_ref(), self.settings.r0, Instant::now())
    }

    /// The peers `provider` offers now, counted and reported to the operator's board.
    fn offered(&self, provider: &dyn PeerProvider) -> Vec<c19_core::Peer> {
        let peers = provider.get();
        if self.board {
            let others = self.book.others(&peers);
            self.stats.peers(others.len());
            c19_core::status::offered(&others);
        } else {
            self.stats.peers(self.book.count_others(&peers));
        }
        peers
    }

    /// Whether the provider offers some peer other than this agent.
    pub fn has_peers(&self) -> bool {
        self.provider
            .is_some_and(|provider| self.book.count_others(&provider.get()) > 0)
    }

    /// The changes after `since`, at most about `max_push_bytes` of them.
    pub async fn diff(&self, since: u64) -> Result<Diff> {
        let state = self.state.clone();
        let max_bytes = self.settings.max_push_bytes;
        Ok(self
            .offload
            .run(move || state.diff(since, max_bytes))
            .await??)
    }

    /// Sends `changes` to `target`.
    pub async fn push(&self, target: &Target, changes: Bytes) -> Outcome {
        let length = changes.len();
        let result = match self.book.resolve(target, self.settings.timeout).await {
            Ok(addr) => self.transport.push(addr, changes).await,
            Err(error) => Err(error),
        };
        if let Ok(Some(wait)) = result {
            self.book
                .heard_next_round(&target.name, wait, Instant::now());
        }
        let result = result.map(drop);
        match &result {
            Ok(()) => self.stats.push_sent(length, true),
            Err(Error::Refused { .. } | Error::Busy { .. }) => self.stats.push_sent(length, false),
            Err(_) => self.stats.push_failed(),
        }
        if self.board {
            report::pushed(&target.name, &result, length);
        }
        self.judge(target, result.map(|()| None))
    }

    /// Pulls from `target` and merges what comes back: by anti-entropy exchange when both
    /// sides can, otherwise the whole state unless the peer is at our version.
    pub async fn pull(&self, target: &Target) -> Outcome {
        if let Some(outcome) = self.exchange_with(target).await {
            return outcome;
        }
        let mut traffic = (0, 0);
        let mut in_sync = None;
        let result = async {
            let addr = self.book.resolve(target, self.settings.timeout).await?;
            let version = self.state.version();
            let pulled = self.transport.pull(addr, &version).await?;
            self.first_sync.heard();
            in_sync = Some(matches!(pulled, Pulled::UpToDate));
            match pulled {
                Pulled::UpToDate => {
                    self.stats.pull_answered(0);
                    Ok(None)
                }
                Pulled::State(body) => {
                    let length = body.len();
                    traffic.1 = length;
                    let applied = self.merge(body).await;
                    // Bytes arrived either way; only a merged pull counts as one.
                    if applied.is_ok() {
                        self.stats.pull_answered(length);
                    }
                    applied.map(Some)
                }
            }
        }
        .await;
        if result.is_err() {
            self.stats.pull_failed();
        }
        if let Ok(Some(applied)) = &result {
            tracing::debug!(peer = %target.name, applied = applied.applied, "merged a pull");
        }
        if self.board {
            report::pulled(&target.name, report::LEGACY_PULL, &result, in_sync, traffic);
        }
        self.judge(target, result)
    }

    /// Merges a pulled state. While catching up, notes the stretch of history it filled.
    async fn merge(&self, body: Bytes) -> Result<Applied> {
        let state = self.state.clone();
        let applied = self.offload.run(move || state.set(&body)).await??;
        self.note_pulled(applied.points);
        Ok(applied)
    }

    /// While catching up, notes the stretch of history that a merge of pulled entries
    /// took, as the state reported it ([`Applied::points`]: consecutive points no other
    /// change shares). A state that does not say leaves nothing noted, and what it
    /// pulled is pushed on like any news.
    fn note_pulled(&self, points: Option<Points>) {
        let Some(points) = points else { return };
        if self.catching_up.load(Ordering::Relaxed) {
            let (before, after) = (points.first.saturating_sub(1), points.last);
            let mut pulled = self
                .pulled
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            *pulled = match *pulled {
                Some((start, end)) if end == before => Some((start, after)),
                _ => Some((before, after)),
            };
        }
    }

    /// The latest stretch `(after, up_to)` of the state's history that a pull alone
    /// filled while this agent was catching up after start, if any since the last call.
    ///
    /// What an agent catching up pulls is old news to its peers, so if it has nothing
    /// else to publish it need not push it: a restarted, empty agent would otherwise
    /// push the whole state it just pulled. Later pulls are pushed on like any news.
    pub fn take_pulled(&self) -> Option<(u64, u64)> {
        self.pulled
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    /// Records how an exchange with `target` went.
    fn judge(&self, target: &Target, result: Result<Option<Applied>>) -> Outcome {
        let outcome = self.judged(target, result);
        if self.board {
            let (failures, retry_at) = self.book.standing(&target.name);
            report::standing(&target.name, failures, retry_at);
        }
        outcome
    }

    fn judged(&self, target: &Target, result: Result<Option<Applied>>) -> Outcome {
        match result {
            Ok(_) => {
                self.book.succeeded(target);
                Outcome::Done
            }
            Err(Error::IsSelf { .. }) => {
                self.book.mark_self(target);
                Outcome::Failed
            }
            Err(Error::Busy { retry_after, .. }) => {
                self.book.busy(target, retry_after, Instant::now());
                Outcome::Failed
            }
            Err(error) if error.is_refusal() => {
                self.book.refused(target, &error, self.state.head());
                Outcome::Refused
            }
            Err(error) => {
                self.book
                    .failed(target, &error, self.state.head(), Instant::now());
                Outcome::Failed
            }
        }
    }
}
