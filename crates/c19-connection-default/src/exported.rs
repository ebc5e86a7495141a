//! The connection's Prometheus metrics, fed by [`crate::stats::Stats`] so that
//! `/_c19/stats` and `/metrics` count the same events once.
//!
//! `operation` is `push` or `pull`, whichever side of it this agent is on: bytes sent
//! for `push` are pushes this agent made, bytes sent for `pull` are states it served to
//! pulling peers and the messages of anti-entropy exchanges (both sides); bytes received
//! for `push` are peers' pushes, for `pull` the states it pulled and exchange messages.

use metrics::{Counter, Gauge, Unit, counter, describe_counter, describe_gauge, gauge};

/// Which exchange a number is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Sending changes (`PUT /`).
    Push,
    /// Repairing from a peer: a whole state (`GET /<version>`) or an anti-entropy
    /// exchange (`POST /_c19/sync`).
    Pull,
}

/// A counter per operation.
#[derive(Debug)]
struct PerOperation {
    push: Counter,
    pull: Counter,
}

impl PerOperation {
    fn new(name: &'static str) -> Self {
        Self {
            push: counter!(name, "operation" => "push"),
            pull: counter!(name, "operation" => "pull"),
        }
    }

    fn get(&self, operation: Operation) -> &Counter {
        match operation {
            Operation::Push => &self.push,
            Operation::Pull => &self.pull,
        }
    }
}

/// The connection's metrics, registered once.
#[derive(Debug)]
pub(crate) struct Exported {
    rounds: PerOperation,
    exchanges: PerOperation,
    errors: PerOperation,
    sent: PerOperation,
    received: PerOperation,
    served: PerOperation,
    refused: Counter,
    peers: Gauge,
}

impl Default for Exported {
    fn default() -> Self {
        describe();
        Self {
            rounds: PerOperation::new("c19_connection_rounds_total"),
            exchanges: PerOperation::new("c19_connection_exchanges_total"),
            errors: PerOperation::new("c19_connection_errors_total"),
            sent: PerOperation::new("c19_connection_sent_bytes_total"),
            received: PerOperation::new("c19_connection_received_bytes_total"),
            served: PerOperation::new("c19_connection_served_total"),
            refused: counter!("c19_connection_refused_total", "reason" => "request"),
            peers: gauge!("c19_connection_peers"),
        }
    }
}

impl Exported {
    /// A round of `operation` to a sample of peers began.
    pub fn round(&self, operation: Operation) {
        self.rounds.get(operation).increment(1);
    }

    /// An exchange this agent made with one peer succeeded.
    pub fn exchanged(&self, operation: Operation) {
        self.exchanges.get(operation).increment(1);
    }

    /// An exchange this agent made with one peer failed or was refused.
    pub fn failed(&self, operation: Operation) {
        self.errors.get(operation).increment(1);
    }

    /// `bytes` of body went out.
    pub fn sent(&self, operation: Operation, bytes: u64) {
        self.sent.get(operation).increment(bytes);
    }

    /// `bytes` of body came in.
    pub fn received(&self, operation: Operation, bytes: u64) {
        self.received.get(operation).increment(bytes);
    }

    /// A peer's request was served.
    pub fn served(&self, operation: Operation) {
        self.served.get(operation).increment(1);
    }

    /// A peer's request was refused.
    pub fn refused(&self) {
        self.refused.increment(1);
    }

    /// The peer provider offers `count` peers other than this agent.
    pub fn peers(&self, count: usize) {
        // Exact far beyond any cluster's size.
        self.peers.set(count as f64);
    }
}

fn describe() {
    let bytes = |name: &'static str, help: &'static str| describe_counter!(name, Unit::Bytes, help);
    describe_counter!(
        "c19_connection_rounds_total",
        "Rounds of pushes or pulls to a random sample of peers"
    );
    describe_counter!(
        "c19_connection_exchanges_total",
        "Pushes a peer accepted and pulls a peer answered"
    );
    describe_counter!(
        "c19_connection_errors_total",
        "Pushes and pulls to a peer that failed or were refused"
    );
    bytes(
        "c19_connection_sent_bytes_total",
        "Body bytes sent: pushes made (push) and states served to pulling peers (pull)",
    );
    bytes(
        "c19_connection_received_bytes_total",
        "Body bytes received: peers' pushes (push) and pulled states (pull)",
    );
    describe_counter!(
        "c19_connection_served_total",
        "Peers' pushes merged (push) and pulls answered with the state (pull)"
    );
    describe_counter!(
        "c19_connection_refused_total",
        "What the peer server refused, by reason: `request` (malformed, too large, too slow) or a TLS reason (plaintext, no_certificate, unknown_ca, expired_certificate, wrong_name, handshake, handshake_timeout)"
    );
    describe_gauge!(
        "c19_connection_peers",
        "Peers the peer provider offers, this agent excluded"
    );
    describe_gauge!(
        "c19_connection_peers_in_sync",
        "Offered peers whose state version equalled this agent's when it last pulled from them: equal to c19_connection_peers once the mesh has converged"
    );
}

/// Counts a connection the peer server refused before any request, for `reason`.
pub(crate) fn refused_connection(reason: c19_tls::Reason) {
    counter!("c19_connection_refused_total", "reason" => reason.as_str()).increment(1);
}
