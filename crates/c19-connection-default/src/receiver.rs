//! The receiver: pulls from `r0` random peers. With a c19 peer a pull is an anti-entropy
//! exchange ([`crate::gossip`]); a 0.1 peer is sent this agent's version, answers 204 when
//! it holds the same data and its whole state otherwise, which is merged.
//!
//! It pulls at once on start, and every `push_interval` until some peer has answered (a
//! restarted, empty agent catches up without waiting); then every `pull_interval`.
//! Peers of one round are asked one after the other with the version of the moment, so
//! once one answer brought this agent up to date the others cost nothing.
//!
//! The first pull that completes turns the connection ready, as does a round that finds
//! no peer to ask (see [`crate::first_sync`]).

use std::sync::atomic::Ordering;

use c19_core::Shutdown;

use crate::{
    exported::Operation,
    first_sync::Settled,
    gossip::{Gossip, Outcome},
};

/// Pulls until `shutdown` is cancelled.
pub(crate) async fn run(gossip: &Gossip<'_>, shutdown: &Shutdown) {
    let mut synced = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            answered = pull(gossip) => synced |= answered,
        }
        if synced {
            gossip.catching_up.store(false, Ordering::Relaxed);
        }
        let pause = if synced {
            gossip.settings.pull_interval
        } else {
            gossip
                .settings
                .push_interval
                .min(gossip.settings.pull_interval)
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// One round; returns whether some peer answered.
pub(crate) async fn pull(gossip: &Gossip<'_>) -> bool {
    let mut answered = false;
    let targets = gossip.choose();
    if !targets.is_empty() {
        gossip.stats.round(Operation::Pull);
    }
    for target in targets {
        let done = gossip.pull(&target).await == Outcome::Done;
        gossip.first_sync.pulled(&target.name, done);
        answered |= done;
    }
    // No peer counts only once the provider has looked (a K8s list takes a moment).
    let looked = gossip.provider.is_none_or(|provider| provider.discovered());
    if !gossip.first_sync.is_settled() && looked && !gossip.has_peers() {
        gossip.first_sync.settle(Settled::NoPeer);
    }
    answered
}
