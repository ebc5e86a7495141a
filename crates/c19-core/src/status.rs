//! What an operator sees of a running agent: its state (version, counts) and how each
//! peer has been doing, for the telemetry port's `GET /peers`, `c19 status` and the
//! status page.
//!
//! Like [`crate::health`], one board per process. [`crate::run_until`] registers the
//! state; a connection layer reports what it offers and learns about each peer
//! ([`offered`], [`update`]). The board holds no values and no secrets, and at most
//! [`MAX_PEERS`] peers.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError, Weak},
};

use serde::Serialize;

use crate::{SafeState, State};

/// The most peers the board remembers (the offered ones first).
pub const MAX_PEERS: usize = 4096;

/// How long (ms) a peer the provider no longer offers stays on the board.
const FORGET_AFTER_MS: u64 = 600_000;

/// One contact with a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    /// When it ended (ms since the Unix epoch, this agent's clock).
    pub at_ms: u64,
    /// `ok`, or what went wrong.
    pub outcome: String,
    /// Body bytes sent to the peer.
    pub bytes_sent: u64,
    /// Body bytes received from it.
    pub bytes_received: u64,
}

/// What this agent knows about one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerReport {
    /// The peer as the provider offers it (`host:port`).
    pub peer: String,
    /// The address it was last dialled at, when that differs or was resolved.
    pub address: Option<String>,
    /// Whether the provider offers it now.
    pub offered: bool,
    /// The last push to it.
    pub last_push: Option<Contact>,
    /// The last pull from it (anti-entropy exchange or 0.1 pull).
    pub last_exchange: Option<Contact>,
    /// Whether its state version equalled ours when the last pull began.
    pub in_sync: Option<bool>,
    /// How far this agent's clock is ahead of the peer's (ms), from the last answer.
    pub clock_offset_ms: Option<i64>,
    /// How this agent pulls from it: `exchange` or `0.1 pull`.
    pub dialect: Option<String>,
    /// `tls` or `plaintext`, as last dialled.
    pub transport: Option<String>,
    /// Failures in a row.
    pub failures: u32,
    /// Until when (ms since the Unix epoch) it is skipped after failures; 0: it is not.
    pub backoff_until_ms: u64,
}

#[derive(Default)]
struct Board {
    peers: BTreeMap<String, PeerReport>,
    /// Dialled address to peer name.
    aliases: BTreeMap<String, String>,
    state: Option<Weak<dyn State>>,
}

static BOARD: Mutex<Board> = Mutex::new(Board {
    peers: BTreeMap::new(),
    aliases: BTreeMap::new(),
    state: None,
});

fn board() -> MutexGuard<'static, Board> {
    // Every update is a small edit of one entry: the board stays usable after a panic.
    BOARD.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Registers the running agent's state (held weakly: the board never keeps it alive).
pub fn register_state(state: &SafeState) {
    board().state = Some(std::sync::Arc::downgrade(state));
}

/// The running agent's state, if one is registered and alive.
pub fn state() -> Option<SafeState> {
    board().state.as_ref()?.upgrade()
}

/// The peers the provider offers now, by name. Peers it stopped offering are kept for a
/// while (their last contacts stay visible), then forgotten.
pub fn offered(names: &[String]) {
    let now = crate::clock::now_ms();
    let mut board = board();
    for report in board.peers.values_mut() {
        report.offered = false;
    }
    for name in names {
        if board.peers.len() >= MAX_PEERS && !board.peers.contains_key(name) {
            break;
        }
        let report = board.peers.entry(name.clone()).or_default();
        report.peer.clone_from(name);
        report.offered = true;
    }
    let last_contact = |report: &PeerReport| {
        [&report.last_push, &report.last_exchange]
            .into_iter()
            .flatten()
            .map(|contact| contact.at_ms)
            .max()
            .unwrap_or_default()
    };
    board.peers.retain(|_, report| {
        report.offered || now.saturating_sub(last_contact(report)) < FORGET_AFTER_MS
    });
    let Board { peers, aliases, .. } = &mut *board;
    aliases.retain(|_, name| peers.contains_key(name));
}

/// Notes that the peer `name` was dialled at `address`.
pub fn resolved(name: &str, address: &str) {
    let mut board = board();
    if board.aliases.len() >= MAX_PEERS && !board.aliases.contains_key(address) {
        return;
    }
    board.aliases.insert(address.to_owned(), name.to_owned());
    if let Some(report) = board.peers.get_mut(name) {
        report.address = (address != name).then(|| address.to_owned());
    }
}

/// Updates what is known of the peer `key` (its name, or an address it was dialled at).
pub fn update(key: &str, edit: impl FnOnce(&mut PeerReport)) {
    let mut board = board();
    let name = board
        .aliases
        .get(key)
        .cloned()
        .unwrap_or_else(|| key.to_owned());
    if board.peers.len() >= MAX_PEERS && !board.peers.contains_key(&name) {
        return;
    }
    let report = board.peers.entry(name.clone()).or_default();
    report.peer = name;
    edit(report);
}

/// How many peers on the board `matches`, counted under the board's lock.
pub fn count(matches: impl Fn(&PeerReport) -> bool) -> usize {
    board()
        .peers
        .values()
        .filter(|report| matches(report))
        .count()
}

/// Every peer on the board, by name.
pub fn peers() -> Vec<PeerReport> {
    board().peers.values().cloned().collect()
}

/// Forgets every peer and the state (a new run starts).
pub fn reset() {
    let mut board = board();
    board.peers.clear();
    board.aliases.clear();
    board.state = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test touches the process-wide board, so no other test races it.
    #[test]
    fn peers_are_offered_updated_through_aliases_and_forgotten() {
        reset();
        offered(&["a:1".to_owned(), "b:1".to_owned()]);
        resolved("b:1", "10.0.0.2:1");
        update("10.0.0.2:1", |report| report.transport = Some("tls".into()));
        update("a:1", |report| report.failures = 2);
        let all = peers();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].failures, 2);
        assert_eq!(all[1].transport.as_deref(), Some("tls"));
        assert_eq!(all[1].address.as_deref(), Some("10.0.0.2:1"));
        // A peer no longer offered and never contacted is forgotten at once.
        offered(&["a:1".to_owned()]);
        assert_eq!(peers().len(), 1);
        reset();
        assert!(peers().is_empty());
    }
}
