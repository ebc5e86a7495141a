//! Counters of the connection's traffic, served as JSON on `GET /_c19/stats`.
//!
//! They are plain atomics in one struct; each event is recorded here once and fed to the
//! Prometheus metrics of [`crate::exported`] at the same time.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::exported::{Exported, Operation};

/// The traffic counters of one connection layer. All only ever grow.
#[derive(Debug, Default)]
pub struct Stats {
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    pushes: AtomicU64,
    pulls: AtomicU64,
    push_errors: AtomicU64,
    pull_errors: AtomicU64,
    pushes_received: AtomicU64,
    pulls_served: AtomicU64,
    requests_refused: AtomicU64,
    exchanges_served: AtomicU64,
    exported: Exported,
}

/// A copy of the counters at one moment, as served on `GET /_c19/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    /// HTTP body bytes sent, as a client (pushes, exchange requests) and as a server
    /// (pull responses, exchange answers), compressed as they crossed the network.
    pub bytes_sent: u64,
    /// HTTP body bytes received, as a client (pull responses, exchange answers) and as a
    /// server (pushes, exchange requests), compressed as they crossed the network.
    pub bytes_received: u64,
    /// Pushes this agent sent that a peer accepted.
    pub pushes: u64,
    /// Pulls this agent made that a peer answered (with data or "up to date"), whole or
    /// by a complete anti-entropy exchange.
    pub pulls: u64,
    /// Pushes that failed or were refused.
    pub push_errors: u64,
    /// Pulls that failed, or whose data the state refused.
    pub pull_errors: u64,
    /// Pushes from peers that were merged.
    pub pushes_received: u64,
    /// Pulls from peers that were answered with the state.
    pub pulls_served: u64,
    /// Requests from peers that were refused (bad body, too large, too slow, ...).
    pub requests_refused: u64,
    /// Messages of peers' anti-entropy exchanges this agent answered.
    #[serde(default)]
    pub exchanges_served: u64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn len(bytes: usize) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

impl Stats {
    /// Counts a push this agent sent: `bytes` of body, accepted or not.
    pub fn push_sent(&self, bytes: usize, ok: bool) {
        add(&self.bytes_sent, len(bytes));
        add(if ok { &self.pushes } else { &self.push_errors }, 1);
        self.exported.sent(Operation::Push, len(bytes));
        if ok {
            self.exported.exchanged(Operation::Push);
        } else {
            self.exported.failed(Operation::Push);
        }
    }

    /// Counts a push that failed before its body could be delivered.
    pub fn push_failed(&self) {
        add(&self.push_errors, 1);
        self.exported.failed(Operation::Push);
    }

    /// Counts a pull this agent made that a peer answered with `bytes` of body.
    pub fn pull_answered(&self, bytes: usize) {
        add(&self.bytes_received, len(bytes));
        add(&self.pulls, 1);
        self.exported.received(Operation::Pull, len(bytes));
        self.exported.exchanged(Operation::Pull);
    }

    /// Counts a pull that failed.
    pub fn pull_failed(&self) {
        add(&self.pull_errors, 1);
        self.exported.failed(Operation::Pull);
    }

    /// Counts a push from a peer that was merged (`bytes` of body).
    pub fn push_received(&self, bytes: usize) {
        add(&self.bytes_received, len(bytes));
        add(&self.pushes_received, 1);
        self.exported.received(Operation::Push, len(bytes));
        self.exported.served(Operation::Push);
    }

    /// Counts a pull from a peer answered with `bytes` of state.
    pub fn pull_served(&self, bytes: usize) {
        add(&self.bytes_sent, len(bytes));
        add(&self.pulls_served, 1);
        self.exported.sent(Operation::Pull, len(bytes));
        self.exported.served(Operation::Pull);
    }

    /// Counts a refused request from a peer, of which `bytes` of body were read.
    pub fn refused(&self, bytes: usize) {
        add(&self.bytes_received, len(bytes));
        add(&self.requests_refused, 1);
        self.exported.received(Operation::Push, len(bytes));
        self.exported.refused();
    }

    /// Counts a round of `operation` to a sample of peers (metrics only).
    pub(crate) fn round(&self, operation: Operation) {
        self.exported.round(operation);
    }

    /// Notes that the peer provider offers `count` peers besides this agent (metrics
    /// only).
    pub(crate) fn peers(&self, count: usize) {
        self.exported.peers(count);
    }

    /// Counts one message of an exchange this agent started: `sent` bytes of request,
    /// `received` bytes of answer.
    pub fn exchange_made(&self, sent: usize, received: usize) {
        add(&self.bytes_sent, len(sent));
        add(&self.bytes_received, len(received));
        self.exported.sent(Operation::Pull, len(sent));
        self.exported.received(Operation::Pull, len(received));
    }

    /// Counts a message of a peer's exchange this agent answered: `received` bytes of
    /// request, `sent` bytes of answer.
    pub fn exchange_served(&self, received: usize, sent: usize) {
        add(&self.bytes_received, len(received));
        add(&self.bytes_sent, len(sent));
        add(&self.exchanges_served, 1);
        self.exported.received(Operation::Pull, len(received));
        self.exported.sent(Operation::Pull, len(sent));
        self.exported.served(Operation::Pull);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            pushes: get(&self.pushes),
            pulls: get(&self.pulls),
            push_errors: get(&self.push_errors),
            pull_errors: get(&self.pull_errors),
            pushes_received: get(&self.pushes_received),
            pulls_served: get(&self.pulls_served),
            requests_refused: get(&self.requests_refused),
            exchanges_served: get(&self.exchanges_served),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_both_sides_into_the_byte_totals() {
        let stats = Stats::default();
        stats.push_sent(10, true);
        stats.push_sent(5, false);
        stats.pull_answered(7);
        stats.push_received(3);
        stats.pull_served(100);
        stats.refused(2);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.bytes_sent, 115);
        assert_eq!(snapshot.bytes_received, 12);
        assert_eq!((snapshot.pushes, snapshot.push_errors), (1, 1));
        assert_eq!(
            (
                snapshot.pulls,
                snapshot.pushes_received,
                snapshot.pulls_served
            ),
            (1, 1, 1)
        );
        assert_eq!(snapshot.requests_refused, 1);
        let json = serde_json::to_value(snapshot).unwrap();
        for field in [
            "bytes_sent",
            "bytes_received",
            "pushes",
            "pulls",
            "push_errors",
            "pull_errors",
        ] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
    }
}
