//! One push: the changes after a point of the state's history, to some peers, page by
//! page. The publisher pushes on each change and tick; the final push on shutdown
//! retries it until a peer took everything.

use futures::future::join_all;

use crate::{
    exported::Operation,
    gossip::{Gossip, Outcome},
    peers::Target,
};

/// Sends the changes after `since` to `r0` random peers, in messages of at most
/// `max_push_bytes`. Returns the point they were delivered up to, or `None` when no peer
/// took any.
pub(crate) async fn publish(gossip: &Gossip<'_>, since: u64) -> Option<u64> {
    publish_to(gossip, since, gossip.choose_push()).await
}

/// [`publish`] to `targets`.
pub(crate) async fn publish_to(
    gossip: &Gossip<'_>,
    mut since: u64,
    mut targets: Vec<Target>,
) -> Option<u64> {
    if !targets.is_empty() {
        gossip.stats.round(Operation::Push);
    }
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
            let outcomes = join_all(
                targets
                    .iter()
                    .map(|target| gossip.push(target, diff.changes.clone())),
            )
            .await;
            if outcomes.iter().all(|outcome| *outcome == Outcome::Failed) {
                // Nobody has these changes: try again next round, with other peers.
                return delivered;
            }
            // Further pages go to the peers that took this one.
            let mut outcomes = outcomes.into_iter();
            targets.retain(|_| outcomes.next() == Some(Outcome::Done));
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
