//! One push: the changes after a point of the state's history, to some peers, page by
//! page. The publisher pushes on each change and tick; the final push on shutdown
//! retries it until a peer took everything.
//!
//! A round need not wait for its slowest peer. A small push still under way when the
//! next round is due (a lost message waits for its timeout) is left to finish beside the
//! publisher ([`Stragglers`]), so one unlucky peer does not hold every later change back
//! by a whole timeout. It is still judged when it ends, and its peer is owed the changes
//! until it took them ([`crate::debts`]); changes no peer took by then go again next
//! round.

use futures::{
    StreamExt,
    future::{BoxFuture, FutureExt},
    stream::FuturesUnordered,
};
use tokio::{sync::mpsc, time::Instant};

use crate::{
    exported::Operation,
    gossip::{Gossip, Outcome},
    peers::Target,
};

/// Pushes under way beyond which a round waits for its own again.
const MAX_STRAGGLERS: usize = 64;

/// Pages up to this size are small: one still under way when the next round is due was
/// most likely lost, so the round leaves it behind and the next one sends it again. A
/// larger page takes long for good reasons (the peer merges it), and is waited for:
/// sending it again would only add to the peer's work.
const SMALL_PAGE: usize = 64 << 10;

/// Where rounds leave the pushes they do not wait for.
#[derive(Debug, Clone)]
pub(crate) struct Stragglers<'a> {
    sender: mpsc::Sender<BoxFuture<'a, ()>>,
}

/// Runs what rounds left behind until every [`Stragglers`] is dropped and all of it ended.
pub(crate) async fn run_stragglers(mut left: mpsc::Receiver<BoxFuture<'_, ()>>) {
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some(()) = running.next(), if !running.is_empty() => {}
            received = left.recv() => match received {
                Some(push) => running.push(push),
                None => break,
            },
        }
    }
    while running.next().await.is_some() {}
}

impl<'a> Stragglers<'a> {
    /// A place for stragglers, and its receiving end for [`run_stragglers`].
    pub fn new() -> (Self, mpsc::Receiver<BoxFuture<'a, ()>>) {
        let (sender, receiver) = mpsc::channel(MAX_STRAGGLERS);
        (Self { sender }, receiver)
    }
}

/// Sends the changes after `since` to `r0` random peers, in messages of at most
/// `max_push_bytes`, waiting for every peer. Returns the point they were delivered up to,
/// or `None` when no peer took any.
#[cfg(test)]
pub(crate) async fn publish(gossip: &Gossip<'_>, since: u64) -> Option<u64> {
    let targets = gossip.choose_push();
    counted(gossip, &targets);
    publish_to(gossip, since, targets, None).await
}

/// Counts a round to `targets`, if there are any.
pub(crate) fn counted(gossip: &Gossip<'_>, targets: &[Target]) {
    if !targets.is_empty() {
        gossip.stats.round(Operation::Push);
    }
}

/// Sends the changes after `since` to `targets`, page by page; with `stragglers`, pushes
/// still under way when the next round is due are left to them once some peer took the
/// changes. Each target is owed the changes ([`crate::debts`]) until it took them all.
/// Returns the point they were delivered up to, or `None` when no peer took any.
pub(crate) async fn publish_to<'a>(
    gossip: &'a Gossip<'_>,
    mut since: u64,
    mut targets: Vec<Target>,
    stragglers: Option<&Stragglers<'a>>,
) -> Option<u64> {
    let round_since = since;
    let next_round = Instant::now() + gossip.settings.push_interval;
    let mut delivered = None;
    while !targets.is_empty() {
        let diff = match gossip.diff(since).await {
            Ok(diff) => diff,
            Err(error) => {
                tracing::error!("cannot read the changes to publish: {error}");
                return delivered;
            }
        };
        if diff.count > 0 {
            let last_page = diff.complete;
            let small = diff.changes.len() <= SMALL_PAGE;
            let mut pushes: FuturesUnordered<_> = targets
                .drain(..)
                .map(|target| {
                    let changes = diff.changes.clone();
                    // A small page is owed from the start, so that the next round sends
                    // it again if it was lost; a large one once it failed.
                    if small {
                        gossip.debts.sending(&target, round_since);
                    }
                    async move {
                        let outcome = gossip.push(&target, changes).await;
                        match outcome {
                            Outcome::Done if last_page => {
                                gossip.debts.took(&target.name, round_since);
                            }
                            Outcome::Refused => gossip.debts.forget(&target.name),
                            Outcome::Failed if !small => {
                                gossip.debts.sending(&target, round_since);
                            }
                            _ => {}
                        }
                        (target, outcome)
                    }
                    .boxed()
                })
                .collect();
            // Further pages go to the peers that took this one.
            loop {
                let pushed = match stragglers {
                    Some(_) if small => tokio::select! {
                        biased;
                        pushed = pushes.next() => pushed,
                        () = tokio::time::sleep_until(next_round) => break,
                    },
                    _ => pushes.next().await,
                };
                match pushed {
                    Some((target, Outcome::Done)) => targets.push(target),
                    Some(_) => {}
                    None => break,
                }
            }
            if !pushes.is_empty() {
                leave(pushes, stragglers).await;
            }
            if targets.is_empty() {
                // Nobody has these changes: try again next round, with other peers.
                return delivered;
            }
        }
        if diff.complete {
            return Some(diff.next);
        }
        if diff.next <= since {
            tracing::error!(
                since,
                next = diff.next,
                "the state's diff does not advance; publishing stopped this round"
            );
            return delivered;
        }
        since = diff.next;
        delivered = Some(since);
    }
    delivered
}

/// Leaves `pushes` to `stragglers`, or waits for them when there is no room.
async fn leave<'a, T: Send + 'a>(
    pushes: FuturesUnordered<BoxFuture<'a, T>>,
    stragglers: Option<&Stragglers<'a>>,
) {
    let rest = pushes.for_each(|_| async {}).boxed();
    let Some(stragglers) = stragglers else {
        return rest.await;
    };
    if let Err(full) = stragglers.sender.try_send(rest) {
        full.into_inner().await;
    }
}
