//! The last push, on shutdown: every change not yet published goes to peers before the
//! agent exits, so a write acknowledged just before a rolling restart survives it.
//!
//! The agent layer has stopped taking writes by then (the runtime stops it first). The
//! push goes to `r0` random peers, those backed off after failures included (this is
//! the last chance); if none takes it, another sample is tried after a pause, until the
//! runtime's grace period (`spec.grace_period`) runs out and it drops this future.

use std::time::Duration;

use tokio::time::Instant;

use crate::{config::MAX_BACKOFF, gossip::Gossip, push::publish_to};

/// The pause after a final push no peer took; it doubles up to [`LAST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// The longest pause between two attempts.
const LAST_RETRY: Duration = Duration::from_secs(1);

/// Pushes the changes after `since` to peers, retrying until some peer took them all.
pub(crate) async fn flush(gossip: &Gossip<'_>, mut since: u64) {
    let head = gossip.state.head();
    if head <= since {
        return;
    }
    let mut pause = FIRST_RETRY;
    loop {
        // Back-offs end before this instant: every peer may be chosen.
        let targets = gossip.choose_at(Instant::now() + MAX_BACKOFF);
        if targets.is_empty() {
            tracing::warn!(
                unpublished_after = since,
                head,
                "no peer to push the last changes to before exiting"
            );
            return;
        }
        crate::push::counted(gossip, &targets);
        match publish_to(gossip, since, targets, None).await {
            Some(reached) if reached >= head => {
                tracing::info!(
                    from = since,
                    to = reached,
                    "pushed the changes not yet published before exiting"
                );
                return;
            }
            Some(reached) => since = reached,
            None => {}
        }
        tracing::debug!(?pause, "no peer took the last changes yet; trying others");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LAST_RETRY);
    }
}
