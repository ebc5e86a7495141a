//! Readiness of the connection: it is ready once its first sync with a peer completed,
//! so an agent that reports ready holds the data of the cluster.
//!
//! The `connection` component waits ([`c19_core::Readiness::waiting`], named on `/readyz`
//! as [`WAITING`]) until one of:
//!
//! - a pull (an anti-entropy exchange, or a 0.1 whole-state pull) with a peer completed;
//! - the peer provider offers no peer other than this agent: there is nothing to wait
//!   for (the first pods of a fresh Kubernetes rollout, as the K8s provider offers only
//!   ready pods);
//! - `sync_timeout` passed with no peer answering: then a warning says so. An exchange
//!   that is under way at that moment, its peer answering, is let finish first; if it
//!   fails the connection turns ready at once.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use c19_core::{Readiness, Shutdown};

/// What `/readyz` says the connection waits for.
pub(crate) const WAITING: &str = "first sync with a peer";

/// Why the connection turned ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled<'a> {
    /// A pull from this peer completed.
    Synced(&'a str),
    /// No peer other than this agent is offered.
    NoPeer,
    /// No peer answered within `sync_timeout`.
    TimedOut,
}

/// The first sync of a connection, and the readiness that follows it.
#[derive(Debug)]
pub(crate) struct FirstSync {
    /// Whether the connection turned ready.
    settled: AtomicBool,
    /// Whether a pull is under way whose peer has answered at least once.
    receiving: AtomicBool,
    /// Whether `sync_timeout` passed while a pull was under way.
    overdue: AtomicBool,
    /// The connection's shutdown: a stopping connection never turns ready.
    stopped: Shutdown,
    /// How long the first sync may go without a peer answering.
    timeout: Duration,
    /// The connection's entry on `/readyz`.
    readiness: Readiness,
}

impl FirstSync {
    /// A first sync that waits up to `timeout` for a peer to answer, for a connection
    /// that stops with `stopped`; not started yet.
    pub fn new(timeout: Duration, stopped: Shutdown, readiness: Readiness) -> Self {
        Self {
            settled: AtomicBool::new(false),
            receiving: AtomicBool::new(false),
            overdue: AtomicBool::new(false),
            stopped,
            timeout,
            readiness,
        }
    }

    /// Reports the connection as waiting for its first sync.
    pub fn begin(&self) {
        self.readiness.waiting(WAITING);
    }

    /// Whether the connection turned ready.
    pub fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    /// Notes that the peer of the pull under way answered a message.
    pub fn heard(&self) {
        if !self.is_settled() {
            self.receiving.store(true, Ordering::Release);
        }
    }

    /// Notes that a pull ended, and whether it completed (from `peer`).
    pub fn pulled(&self, peer: &str, done: bool) {
        self.receiving.store(false, Ordering::Release);
        if done {
            self.settle(Settled::Synced(peer));
        } else if self.overdue.load(Ordering::Acquire) {
            self.settle(Settled::TimedOut);
        }
    }

    /// Turns the connection ready, once, saying why; not while it is stopping.
    pub fn settle(&self, why: Settled<'_>) {
        if self.stopped.is_cancelled() || self.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        self.readiness.ready();
        match why {
            Settled::Synced(peer) => {
                tracing::info!(%peer, "first sync with a peer completed; the connection is ready");
            }
            Settled::NoPeer => {
                tracing::info!("no peer to sync with; the connection is ready");
            }
            Settled::TimedOut => {
                tracing::warn!(
                    sync_timeout_ms = self.timeout.as_millis(),
                    "no peer answered the first sync within sync_timeout; the connection is \
                     ready without it and keeps pulling"
                );
            }
        }
    }

    /// Waits the timeout, then turns the connection ready unless it is already, or a
    /// pull whose peer answers is under way (that pull's end decides then). Returns at
    /// once when `shutdown` is cancelled.
    pub async fn time_out(&self, shutdown: &Shutdown) {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(self.timeout) => {}
        }
        if self.is_settled() {
            return;
        }
        self.overdue.store(true, Ordering::Release);
        if self.receiving.load(Ordering::Acquire) {
            tracing::info!(
                sync_timeout_ms = self.timeout.as_millis(),
                "the first sync is still under way after sync_timeout; waiting for it to end"
            );
        } else {
            self.settle(Settled::TimedOut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_once_and_never_while_stopping() {
        let stop = Shutdown::new();
        let first = FirstSync::new(
            Duration::from_secs(1),
            stop.clone(),
            Readiness::for_component("connection"),
        );
        assert!(!first.is_settled());
        first.pulled("a", false);
        assert!(
            !first.is_settled(),
            "a failed pull before the timeout waits on"
        );
        first.pulled("a", true);
        assert!(first.is_settled());

        let stopping = FirstSync::new(
            Duration::from_secs(1),
            stop.clone(),
            Readiness::for_component("connection"),
        );
        stop.cancel();
        stopping.settle(Settled::NoPeer);
        assert!(!stopping.is_settled());
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_unless_a_pull_is_receiving() {
        let shutdown = Shutdown::new();
        let timeout = Duration::from_secs(10);
        let idle = FirstSync::new(
            timeout,
            Shutdown::new(),
            Readiness::for_component("connection"),
        );
        idle.time_out(&shutdown).await;
        assert!(
            idle.is_settled(),
            "nobody answered: ready after the timeout"
        );

        let busy = FirstSync::new(
            timeout,
            Shutdown::new(),
            Readiness::for_component("connection"),
        );
        busy.heard();
        busy.time_out(&shutdown).await;
        assert!(!busy.is_settled(), "a pull under way is let finish");
        busy.pulled("a", false);
        assert!(
            busy.is_settled(),
            "it failed after the timeout: ready at once"
        );
    }
}
