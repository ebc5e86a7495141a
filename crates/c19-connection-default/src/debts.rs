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

pub(crate) use crate::peers::MAX_FAILURES;
use crate::peers::{PeerBook, Target};

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

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::error::Error;

    fn target(name: &str) -> Target {
        Target {
            name: name.into(),
            peer: name.parse().unwrap(),
        }
    }

    fn names(targets: &[Target]) -> Vec<&str> {
        targets.iter().map(|target| target.name.as_str()).collect()
    }

    #[test]
    fn a_peer_is_owed_from_the_oldest_push_it_did_not_take() {
        let book = PeerBook::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            1,
            1,
            Duration::from_secs(1),
        );
        let debts = Debts::default();
        let (a, b) = (target("10.0.0.1:1"), target("10.0.0.2:1"));
        debts.sending(&a, 5);
        debts.sending(&b, 5);
        debts.sending(&a, 7);
        let now = Instant::now();
        let round = Duration::from_millis(200);
        assert_eq!(
            debts.due(&book, now, round),
            (vec![a.clone(), b.clone()], Some(5))
        );
        debts.took("10.0.0.1:1", 7);
        assert_eq!(
            names(&debts.due(&book, now, round).0),
            ["10.0.0.1:1", "10.0.0.2:1"],
            "what it took after 7 does not pay what it was owed after 5"
        );
        debts.took("10.0.0.1:1", 5);
        debts.forget("10.0.0.2:1");
        assert!(!debts.any());
    }

    #[test]
    fn peers_that_keep_failing_or_are_busy_are_left_to_pulls() {
        let book = PeerBook::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            1,
            1,
            Duration::from_secs(1),
        );
        let debts = Debts::default();
        let (failing, busy, lost) = (
            target("10.0.0.1:1"),
            target("10.0.0.2:1"),
            target("10.0.0.3:1"),
        );
        for owed in [&failing, &busy, &lost] {
            debts.sending(owed, 1);
        }
        let now = Instant::now();
        let error = || Error::Decode("no".into());
        for _ in 0..MAX_FAILURES {
            book.failed(&failing, &error(), 1, now);
        }
        book.busy(&busy, Duration::from_secs(30), now);
        book.failed(&lost, &error(), 1, now);
        let (due, _) = debts.due(&book, now, Duration::from_millis(200));
        assert_eq!(names(&due), ["10.0.0.3:1"], "one lost push is sent again");
        for i in 0..MAX_DEBTS * 2 {
            debts.sending(&target(&format!("10.0.1.{i}:1")), 1);
        }
        assert!(
            debts.due(&book, now, Duration::ZERO).0.len() <= MAX_DEBTS,
            "bounded"
        );
    }
}
