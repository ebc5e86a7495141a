//! The publisher: every `push_interval`, sends the changes made since the last
//! publication (new keys, updates, tombstones) to `r0` random peers.
//!
//! "Changes" come from [`c19_core::State::diff`], so they include what this agent
//! learned from peers: news spreads epidemically. A merge that changes nothing does not
//! advance the state's head, so nothing is echoed back and forth.
//!
//! The point published up to only moves once some peer took the changes: while no peer
//! is reachable (a network cut), local writes wait and go out when one is again.

use c19_core::Shutdown;
use futures::future::join_all;
use tokio::time::{self, MissedTickBehavior};

use crate::gossip::{Gossip, Outcome};

/// Publishes until `shutdown` is cancelled.
pub(crate) async fn run(gossip: &Gossip<'_>, shutdown: &Shutdown) {
    // What the state held at start is known to peers or reaches them by pulls.
    let mut since = gossip.state.head();
    let mut ticker = time::interval(gossip.settings.push_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            published = publish(gossip, since) => since = published,
        }
    }
}

/// One round: sends the changes after `since` and returns the point they were
/// delivered up to (`since` when nothing was delivered).
pub(crate) async fn publish(gossip: &Gossip<'_>, mut since: u64) -> u64 {
    if gossip.state.head() == since {
        return since;
    }
    let mut targets = gossip.choose();
    while !targets.is_empty() {
        let diff = match gossip.diff(since).await {
            Ok(diff) => diff,
            Err(error) => {
                tracing::error!("cannot read the changes to publish: {error}");
                return since;
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
                return since;
            }
            // Further pages go to the peers that took this one.
            let mut outcomes = outcomes.into_iter();
            targets.retain(|_| outcomes.next() == Some(Outcome::Done));
        }
        if diff.complete {
            return diff.next;
        }
        if diff.next <= since {
            tracing::error!(
                since,
                next = diff.next,
                "the state's diff does not advance; publishing stopped this round"
            );
            return since;
        }
        since = diff.next;
    }
    since
}
