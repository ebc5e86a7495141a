//! The publisher: when the state changed, sends the changes not yet published (new
//! keys, updates, tombstones) to `r0` random peers, at most once per `push_interval`.
//!
//! Pushes are on the leading edge: a publisher that has not pushed during the last
//! `push_interval` pushes a change at once (a local write, or a change learned from a
//! peer, which it so forwards at once); changes made within an interval of its last
//! round wait for that interval's end and go together. However fast the writes come,
//! an agent pushes at most once per interval, so its cost does not follow the write
//! rate. A state that cannot say when its head moves ([`c19_core::State::watch_head`])
//! is looked at every `push_interval` instead.
//!
//! "Changes" come from [`c19_core::State::diff`], so they include what this agent
//! learned from peers: news spreads epidemically. A merge that changes nothing does not
//! advance the state's head, so nothing is echoed back and forth.
//!
//! Each change goes out in [`PUSH_ROUNDS`] rounds that reached some peer, each to a new
//! random sample. With one round per agent, a change misses a given agent with
//! probability about `e^-r0` (5% of the agents at `r0: 3`), which then waits for a
//! pull; with two rounds about `e^-2·r0` (0.25%).
//!
//! Each answer to a push tells the pusher when this agent's next round goes
//! ([`crate::cadence`]), and pushers prefer peers about to push ([`crate::peers`]).
//!
//! What an agent pulls while catching up after start is not pushed when nothing else
//! is pending (see [`Gossip::take_pulled`]): it is old news to its peers.
//!
//! Changes are only counted as published once some peer took them: while no peer is
//! reachable (a network cut), local writes wait and go out when one is again.
//!
//! On shutdown the publisher pushes what is still pending once more (see
//! [`crate::final_push`]), so a write acknowledged just before does not die with the
//! agent.

use std::{collections::VecDeque, sync::atomic::Ordering};

use c19_core::Shutdown;
use tokio::time::{self, MissedTickBehavior};

use crate::{
    final_push,
    gossip::Gossip,
    push::{self, Stragglers},
};

/// In how many rounds each change is pushed.
pub(crate) const PUSH_ROUNDS: usize = 2;

/// Publishes until `shutdown` is cancelled, then pushes what is still pending.
pub(crate) async fn run(gossip: &Gossip<'_>, shutdown: &Shutdown) {
    // What the state held at start is known to peers or reaches them by pulls.
    let mut publisher = Publisher::new(gossip.state.head());
    let (stragglers, left) = Stragglers::new();
    let publishing = async {
        match gossip.state.watch_head() {
            Some(heads) => {
                leading_edge(gossip, shutdown, &mut publisher, heads, &stragglers).await;
            }
            None => ticking(gossip, shutdown, &mut publisher, &stragglers).await,
        }
        // The pushes left under way end (each within its timeout) before the last push.
        drop(stragglers);
    };
    tokio::join!(publishing, push::run_stragglers(left));
    publisher.settle(gossip);
    final_push::flush(gossip, publisher.since()).await;
}

/// Rounds as soon as something is pending, at most one with new changes per
/// `push_interval`; a peer owed changes it did not take is sent them again at most once
/// an interval, in a round of new changes when there is one.
async fn leading_edge<'a>(
    gossip: &'a Gossip<'_>,
    shutdown: &Shutdown,
    publisher: &mut Publisher,
    mut heads: tokio::sync::watch::Receiver<u64>,
    stragglers: &Stragglers<'a>,
) {
    let interval = gossip.settings.push_interval;
    let started = time::Instant::now();
    // The last round with new changes, and the last round of any kind.
    let mut last_fresh: Option<time::Instant> = None;
    let mut last_round = started;
    // How much later than one interval after `last_fresh` the next round goes when it has
    // changes newer than the last round's: a random part of an interval after a round
    // that went at once, none otherwise. A round that only repeats the last one's changes
    // (their second round) is not held back.
    let mut offset = time::Duration::ZERO;
    loop {
        // Seen before looking, so that a move after the look wakes the waits below.
        heads.borrow_and_update();
        let fresh = publisher.fresh(gossip);
        if !fresh && !gossip.debts.any() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = gossip.debts.recorded() => continue,
                changed = heads.changed() => {
                    if changed.is_err() {
                        // The state went away: nothing will move any more.
                        return ticking(gossip, shutdown, publisher, stragglers).await;
                    }
                    continue;
                }
            }
        }
        let news = fresh && publisher.news(gossip);
        let due = if fresh {
            // While catching up after start, the news is mostly what the pull under way
            // brings, which peers have: look once an interval, as a ticking publisher does.
            let catching_up = gossip.catching_up.load(Ordering::Acquire);
            let offset = if news { offset } else { time::Duration::ZERO };
            match last_fresh {
                Some(last) => Some(last + interval + offset),
                None if catching_up => Some(started + interval),
                None => None,
            }
        } else {
            Some(last_round + interval)
        };
        let at_once = fresh && due.is_none_or(|due| due <= time::Instant::now());
        if let Some(due) = due {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = time::sleep_until(due) => {}
                // New changes while only debts or a second round wait: they may go at
                // once, or later than the second round would.
                changed = heads.changed(), if !news => {
                    if changed.is_ok() {
                        continue;
                    }
                }
            }
        }
        last_round = time::Instant::now();
        if publisher.fresh(gossip) {
            // A round that went at once, on the leading edge, most likely went in step with
            // the agent whose change woke this one: agents that a wave woke together would
            // then push in step for as long as the load lasts, and a change forwarded to
            // any of them would wait a whole interval at each hop. The next round goes a
            // random part of an interval late, once, so that each keeps its own phase
            // (and pushes sooner to peers about to push, see `crate::peers`).
            offset = if at_once {
                gossip.book.random_delay(interval)
            } else {
                time::Duration::ZERO
            };
            last_fresh = Some(last_round);
            // What arrives from now on waits for the next round: peers are told when.
            gossip.cadence.set(last_round + interval + offset);
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = publisher.round_leaving(gossip, stragglers) => {}
        }
    }
}

/// A round every `push_interval`.
async fn ticking<'a>(
    gossip: &'a Gossip<'_>,
    shutdown: &Shutdown,
    publisher: &mut Publisher,
    stragglers: &Stragglers<'a>,
) {
    let mut ticker = time::interval(gossip.settings.push_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        gossip
            .cadence
            .set(time::Instant::now() + gossip.settings.push_interval);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = publisher.round_leaving(gossip, stragglers) => {}
        }
    }
}

/// Where the publisher stands in the state's history.
#[derive(Debug)]
pub(crate) struct Publisher {
    /// The points published up to in the last [`PUSH_ROUNDS`] rounds that reached a
    /// peer, oldest first: a round sends the changes after the oldest.
    marks: VecDeque<u64>,
}

impl Publisher {
    /// A publisher that considers everything up to `point` published.
    pub fn new(point: u64) -> Self {
        Self {
            marks: std::iter::repeat_n(point, PUSH_ROUNDS).collect(),
        }
    }

    /// The point after which changes still have rounds to go.
    pub fn since(&self) -> u64 {
        self.marks.front().copied().unwrap_or_default()
    }

    /// Skips what a pull alone brought while catching up, when nothing else was
    /// pending (see [`Gossip::take_pulled`]).
    pub fn settle(&mut self, gossip: &Gossip<'_>) {
        if let Some((start, end)) = gossip.take_pulled()
            && self.marks.iter().all(|mark| *mark == start)
        {
            // Nothing else was pending: what the pull brought need not be pushed.
            self.marks.iter_mut().for_each(|mark| *mark = end);
        }
    }

    /// Whether changes newer than the last round's wait (not only the last round's
    /// changes, for their second round).
    pub fn news(&self, gossip: &Gossip<'_>) -> bool {
        self.marks
            .back()
            .is_some_and(|last| gossip.state.head() != *last)
    }

    /// Whether new changes wait for a round (after settling what a pull brought).
    pub fn fresh(&mut self, gossip: &Gossip<'_>) -> bool {
        self.settle(gossip);
        gossip.state.head() != self.since()
    }

    /// One round: sends the changes after [`Publisher::since`] to random peers, waiting
    /// for each.
    #[cfg(test)]
    pub async fn round(&mut self, gossip: &Gossip<'_>) {
        self.settle(gossip);
        let since = self.since();
        if gossip.state.head() == since {
            return;
        }
        let reached = push::publish(gossip, since).await;
        self.reached(reached);
    }

    /// One round, leaving pushes still under way when the next round is due to
    /// `stragglers` once some peer took the changes: the new changes to `r0` peers, and
    /// beside them what peers are owed to those peers.
    pub async fn round_leaving<'a>(&mut self, gossip: &'a Gossip<'_>, stragglers: &Stragglers<'a>) {
        self.settle(gossip);
        let since = self.since();
        let fresh = gossip.state.head() != since;
        let (debtors, owed_since) = gossip.debts.due(
            &gossip.book,
            time::Instant::now(),
            gossip.settings.push_interval,
        );
        if !fresh && debtors.is_empty() {
            return;
        }
        let mut targets = if fresh {
            gossip.choose_push()
        } else {
            Vec::new()
        };
        targets.retain(|target| !debtors.iter().any(|owed| owed.name == target.name));
        push::counted(gossip, &targets);
        let repaying = async {
            if let Some(owed_since) = owed_since {
                push::publish_to(gossip, owed_since, debtors, Some(stragglers)).await;
            }
        };
        let publishing = async {
            if fresh {
                Some(push::publish_to(gossip, since, targets, Some(stragglers)).await)
            } else {
                None
            }
        };
        let (reached, ()) = tokio::join!(publishing, repaying);
        if let Some(reached) = reached {
            self.reached(reached);
        }
    }

    /// Notes how far a round's changes reached some peer.
    fn reached(&mut self, reached: Option<u64>) {
        if let Some(reached) = reached {
            self.marks.pop_front();
            self.marks.push_back(reached);
        }
    }
}
