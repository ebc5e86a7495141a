//! Peers owed changes: every push is owed to its peer from the moment it is sent until
//! the peer took it, so a push that was lost, timed out or failed goes to the same peer
//! again at the next round (with the changes since the older round), instead of leaving
//! that peer to the random picks of later rounds or to the next pull. The ring successor
//! of every agent is among them, which keeps the one wave of forwards that reaches every
//! agent whole when messages are lost.
//!
//! A peer stays owed while it fails fewer than [`MAX_FAILURES`] times in a row, and is
//! not sent anything while it asked to be left alone (busy, `Retry-After`); a peer that
//! failed that often is left to pulls. At most [`MAX_DEBTS`] peers are owed at once.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use crate::peers::{PeerBook, Target};

/// Failures in a row after which a peer is no longer owed.
pub(crate) const MAX_FAILURES: u32 = 3;

/// The most peers owed at once (a few rounds' worth of targets).
pub(crate) const MAX_DEBTS: usize = 16;

#[derive(Debug)]
struct Debt {
    target: Target,
    /// The peer is owed the changes after this point.
    since: u64,
}

/// The peers owed changes.
#[derive(Debug, Default)]
pub(crate) struct Debts {
    owed: Mutex<BTreeMap<String, Debt>>,
    recorded: Notify,
}

impl Debts {
    fn owed(&self) -> MutexGuard<'_, BTreeMap<String, Debt>> {
        // Plain data: a panic elsewhere cannot leave it half-changed.
        self.owed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `target` is sent the changes after `since`: owed until it took them.
    pub fn sending(&self, target: &Target, since: u64) {
        let mut owed = self.owed();
        if let Some(debt) = owed.get_mut(&target.name) {
            debt.since = debt.since.min(since);
            return;
        }
        if owed.len() >= MAX_DEBTS {
            return;
        }
        owed.insert(
            target.name.clone(),
            Debt {
                target: target.clone(),
                since,
            },
        );
        drop(owed);
        self.recorded.notify_one();
    }

    /// `name` took every change after `since`: what it was owed from then on is paid.
    pub fn took(&self, name: &str, since: u64) {
        let mut owed = self.owed();
        if owed.get(name).is_some_and(|debt| since <= debt.since) {
            owed.remove(name);
        }
    }

    /// `name` is no longer owed anything (it refused the changes: sending them again
    /// would not help).
    pub fn forget(&self, name: &str) {
        self.owed().remove(name);
    }

    /// The peers to send their changes again to now, with the oldest point owed; those
    /// that failed too often are dropped, those that asked to be left alone longer than
    /// `round` are dropped too (pulls will bring them the changes).
    pub fn due(
        &self,
        book: &PeerBook,
        now: Instant,
        round: Duration,
    ) -> (Vec<Target>, Option<u64>) {
        let mut owed = self.owed();
        owed.retain(|name, _| {
            let (failures, retry_at) = book.standing(name);
            // A back-off after failures is theirs to end; one without failures is a busy
            // peer's `Retry-After`, which is honoured.
            let busy = failures == 0 && retry_at.is_some_and(|at| at > now + round);
            failures < MAX_FAILURES && !busy
        });
        let since = owed.values().map(|debt| debt.since).min();
        (
            owed.values().map(|debt| debt.target.clone()).collect(),
            since,
        )
    }

    /// Whether some peer is owed changes.
    pub fn any(&self) -> bool {
        !self.owed().is_empty()
    }

    /// Returns once a peer is newly owed.
    pub async fn recorded(&self) {
        self.recorded.notified().await;
    }
}
