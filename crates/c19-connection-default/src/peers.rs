//! Choosing whom to talk to: sampling, recognising this agent itself, backing off from
//! peers that fail, and resolving names each round.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use c19_core::{Peer, peer::Host};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::time::Instant;

mod list;
mod rounds;

/// Failures in a row after which a peer is left alone: a ring successor is no longer
/// kept, and changes it did not take are no longer sent again ([`crate::debts`]).
pub(crate) const MAX_FAILURES: u32 = 3;

use list::PeerList;
use rounds::PeerRounds;

use crate::{
    config::MAX_BACKOFF,
    error::{Error, Result},
};

/// A peer chosen for one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `host:port` as dialled; the key of the peer's health record.
    pub name: String,
    /// The peer as the provider gave it.
    pub peer: Peer,
}

/// How one peer has been doing.
#[derive(Debug)]
struct Health {
    /// Failures in a row.
    failures: u32,
    /// Skip the peer until then.
    retry_at: Instant,
    /// The state head when a failure of this peer was last logged as a warning.
    logged_at: Option<u64>,
}

#[derive(Debug)]
struct Book {
    health: HashMap<String, Health>,
    /// Peers found to be this agent.
    myself: HashSet<String>,
    /// Draws the random peers: seeded from the system, or from the simulator's seed.
    rng: StdRng,
    /// The provider's list as last seen.
    list: PeerList,
    /// Scratch room for sampling: indices into `list.targets`.
    order: Vec<usize>,
    /// When peers push next, as they said.
    rounds: PeerRounds,
}

/// What this connection knows about its peers.
#[derive(Debug)]
pub(crate) struct PeerBook {
    /// The port the own peer server listens on.
    own_port: u16,
    /// The address the own peer server is bound to.
    bind_ip: IpAddr,
    /// The port dialled on peers given without one.
    dial_port: u16,
    /// The first back-off; doubles with each failure in a row.
    backoff: Duration,
    book: Mutex<Book>,
}

impl PeerBook {
    /// A book for an agent listening on `bind_ip:own_port`.
    pub fn new(bind_ip: IpAddr, own_port: u16, dial_port: u16, backoff: Duration) -> Self {
        Self::with_rng(
            bind_ip,
            own_port,
            dial_port,
            backoff,
            StdRng::from_rng(&mut rand::rng()),
        )
    }

    /// [`PeerBook::new`], drawing peers from `rng` (the simulator seeds it).
    pub fn with_rng(
        bind_ip: IpAddr,
        own_port: u16,
        dial_port: u16,
        backoff: Duration,
        rng: StdRng,
    ) -> Self {
        Self {
            own_port,
            bind_ip,
            dial_port,
            backoff,
            book: Mutex::new(Book {
                health: HashMap::new(),
                myself: HashSet::new(),
                rng,
                list: PeerList::default(),
                order: Vec::new(),
                rounds: PeerRounds::default(),
            }),
        }
    }

    /// Lets pushes go to the peers whose next round comes soonest, as their answers said
    /// ([`crate::cadence`]), measuring their phases with this agent's `interval`.
    pub fn with_push_interval(mut self, interval: Duration) -> Self {
        let book = self
            .book
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        book.rounds.interval = Some(interval);
        self
    }

    /// A random delay below `up_to`, drawn as the peers are (seeded in the simulator).
    pub fn random_delay(&self, up_to: Duration) -> Duration {
        if up_to.is_zero() {
            return Duration::ZERO;
        }
        self.book().rng.random_range(Duration::ZERO..up_to)
    }

    /// Notes that `name`, answering at `now`, said its next round goes in `wait`.
    pub fn heard_next_round(&self, name: &str, wait: Duration, now: Instant) {
        let mut book = self.book();
        let Book { list, rounds, .. } = &mut *book;
        rounds.note(name, now + wait, now);
        if !list.ring.is_empty() {
            rounds.prune(list.ring.len(), |name| list.position(name).is_some());
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // The book holds no invariant a panic could break: keep using it.
        self.book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether dialling `addr` would reach this agent's own peer server.
    pub fn is_own_address(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        addr.port() == self.own_port
            && (ip.is_loopback() || ip.is_unspecified() || ip == self.bind_ip.to_canonical())
    }

    /// Up to `r0` distinct peers from `peers`, chosen at random among those that are not
    /// this agent and not backed off at `now`.
    pub fn choose(&self, peers: &[Peer], r0: usize, now: Instant) -> Vec<Target> {
        let mut book = self.book();
        let book = &mut *book;
        book.list.refresh(peers, self.dial_port);
        self.sample(book, r0, now, &[])
    }

    /// Up to `r0` of the book's list, at random, skipping this agent, peers backed off at
    /// `now`, and `except`: a random order of the distinct peers, cut after `r0` of them.
    fn sample(&self, book: &mut Book, r0: usize, now: Instant, except: &[&str]) -> Vec<Target> {
        let Book {
            health,
            myself,
            rng,
            list,
            order,
            ..
        } = book;
        order.clear();
        order.extend(0..list.targets.len());
        let mut chosen = Vec::with_capacity(r0.min(order.len()));
        let mut left = order.len();
        while chosen.len() < r0 && left > 0 {
            let pick = rng.random_range(0..left);
            left -= 1;
            order.swap(pick, left);
            let target = &list.targets[order[left]];
            let skipped = except.contains(&target.name.as_str())
                || list.itself.as_ref() == Some(&target.name)
                || self.is_itself(myself, &target.peer, &target.name)
                || health
                    .get(&target.name)
                    .is_some_and(|health| health.retry_at > now);
            if !skipped {
                chosen.push(target.clone());
            }
        }
        chosen
    }

    /// As [`PeerBook::choose`], with one of the `r0` being this agent's successor: the
    /// first peer after this agent in the order of their names that is not backed off
    /// after [`MAX_FAILURES`] failures in a row, nor busy; and, with a push interval set
    /// ([`PeerBook::with_push_interval`]), all but one of the others being the peers whose
    /// next round comes soonest, when sooner than a random one's would.
    ///
    /// Every agent that receives a change forwards it at once (on the leading edge of its
    /// push interval) and so passes it to its successor: the agents reached are closed
    /// under "successor", which on one ring is all of them, so a change reaches every
    /// agent in one wave of forwards instead of waiting a push interval for the ones the
    /// random picks missed. It needs `peers` to name this agent (a static list that every
    /// agent shares does); otherwise the successor's place goes to a random peer.
    ///
    /// Under load, when each agent holds what it receives until its next round, peers
    /// about to push pass the change on within a fraction of an interval, where a random
    /// one takes half an interval on average.
    pub fn choose_for_push(
        &self,
        peers: &[Peer],
        itself: Option<&Peer>,
        r0: usize,
        now: Instant,
    ) -> Vec<Target> {
        let mut book = self.book();
        let book = &mut *book;
        book.list.refresh(peers, self.dial_port);
        book.list.place_itself(itself, self.dial_port);
        let mut chosen: Vec<Target> = self
            .successor(book, now)
            .filter(|_| r0 > 0)
            .into_iter()
            .collect();
        // One pick at least stays random, so the spread does not settle on the peers whose
        // hints this agent happens to hold.
        let by_rounds = (r0 - chosen.len()).saturating_sub(1);
        let soonest = {
            let except: Vec<&str> = chosen.iter().map(|target| target.name.as_str()).collect();
            self.soonest(book, by_rounds, now, &except)
        };
        chosen.extend(soonest);
        let except: Vec<&str> = chosen.iter().map(|target| target.name.as_str()).collect();
        let others = self.sample(book, r0 - chosen.len(), now, &except);
        chosen.extend(others);
        chosen
    }

    /// Up to `count` peers of the book's list whose next round comes soonest after `now`
    /// and sooner than half an interval, skipping this agent, peers backed off at `now`
    /// and `except`; equal waits in random order.
    fn soonest(&self, book: &mut Book, count: usize, now: Instant, except: &[&str]) -> Vec<Target> {
        if count == 0 {
            return Vec::new();
        }
        let Book {
            health,
            myself,
            rng,
            list,
            rounds,
            ..
        } = book;
        let mut soon: Vec<(Duration, u32, usize)> = rounds
            .soon(now)
            .into_iter()
            .filter(|(name, _)| !except.contains(name))
            .filter_map(|(name, wait)| {
                let index = list.position(name)?;
                let target = &list.targets[index];
                let skipped = list.itself.as_deref() == Some(name)
                    || self.is_itself(myself, &target.peer, &target.name)
                    || health.get(name).is_some_and(|health| health.retry_at > now);
                (!skipped).then(|| (wait, rng.random(), index))
            })
            .collect();
        soon.sort_unstable();
        soon.into_iter()
            .take(count)
            .map(|(_, _, index)| list.targets[index].clone())
            .collect()
    }

    /// The first peer after this agent on the ring of the book's list (and of the
    /// provider's `itself`) that is not this agent and not backed off at `now`; `None`
    /// when neither names this agent.
    fn successor(&self, book: &Book, now: Instant) -> Option<Target> {
        let list = &book.list;
        let is_itself = |(name, index): &(String, Option<usize>)| match index {
            None => true,
            Some(index) => {
                list.itself.as_ref() == Some(name)
                    || self.is_itself(&book.myself, &list.targets[*index].peer, name)
            }
        };
        let own = list.ring.iter().position(is_itself)?;
        let after = list.ring[own + 1..].iter().chain(&list.ring[..own]);
        after
            .filter(|entry| !is_itself(entry))
            .find(|(name, _)| {
                book.health.get(name).is_none_or(|health| {
                    // A successor that failed a few times in a row is still pushed to: a
                    // lost message or two back it off, and skipping it would leave it to
                    // random picks. One that keeps failing, or is busy, is skipped.
                    health.retry_at <= now
                        || (health.failures > 0 && health.failures < MAX_FAILURES)
                })
            })
            .and_then(|(_, index)| index.map(|index| list.targets[index].clone()))
    }

    /// The names of the distinct peers of `peers` not known to be this agent.
    pub fn others(&self, peers: &[Peer]) -> Vec<String> {
        self.with_others(peers, |others| {
            others.map(|target| target.name.clone()).collect()
        })
    }

    /// How many distinct peers of `peers` are not known to be this agent.
    pub fn count_others(&self, peers: &[Peer]) -> usize {
        self.with_others(peers, |others| others.count())
    }

    /// `take` of the distinct peers of `peers` not known to be this agent.
    fn with_others<T>(
        &self,
        peers: &[Peer],
        take: impl FnOnce(&mut dyn Iterator<Item = &Target>) -> T,
    ) -> T {
        let mut book = self.book();
        let book = &mut *book;
        book.list.refresh(peers, self.dial_port);
        let myself = &book.myself;
        take(
            &mut book
                .list
                .targets
                .iter()
                .filter(|target| !self.is_itself(myself, &target.peer, &target.name)),
        )
    }

    /// How `name` stands: its failures in a row, and until when it is skipped.
    pub fn standing(&self, name: &str) -> (u32, Option<Instant>) {
        self.book()
            .health
            .get(name)
            .map_or((0, None), |health| (health.failures, Some(health.retry_at)))
    }

    /// Whether `peer`, dialled as `name`, is known to be this agent.
    fn is_itself(&self, myself: &HashSet<String>, peer: &Peer, name: &str) -> bool {
        if myself.contains(name) {
            return true;
        }
        match peer.host {
            Host::Ip(ip) => {
                self.is_own_address(SocketAddr::new(ip, peer.port.unwrap_or(self.dial_port)))
            }
            Host::Name(_) => false,
        }
    }

    /// The socket address to dial for `target`, resolving host names now.
    pub async fn resolve(&self, target: &Target, timeout: Duration) -> Result<SocketAddr> {
        let addr = match &target.peer.host {
            Host::Ip(ip) => SocketAddr::new(*ip, target.peer.port.unwrap_or(self.dial_port)),
            Host::Name(_) => {
                let resolve_error = |source| Error::Resolve {
                    peer: target.name.clone(),
                    source,
                };
                let lookup = tokio::net::lookup_host(target.name.as_str());
                let mut addrs = tokio::time::timeout(timeout, lookup)
                    .await
                    .map_err(|elapsed| resolve_error(elapsed.into()))?
                    .map_err(resolve_error)?;
                addrs.next().ok_or_else(|| Error::NoAddress {
                    peer: target.name.clone(),
                })?
            }
        };
        if self.is_own_address(addr) {
            self.mark_self(target);
            return Err(Error::IsSelf {
                peer: target.name.clone(),
            });
        }
        c19_core::status::resolved(&target.name, &addr.to_string());
        Ok(addr)
    }

    /// Remembers that `target` is this agent, so it is never chosen again.
    pub fn mark_self(&self, target: &Target) {
        if self.book().myself.insert(target.name.clone()) {
            tracing::info!(peer = %target.name, "this peer is this agent itself; skipping it");
        }
    }

    /// Records a successful exchange with `target`: its back-off is over.
    pub fn succeeded(&self, target: &Target) {
        let removed = self.book().health.remove(&target.name);
        if let Some(health) = removed.filter(|health| health.failures > 0) {
            tracing::info!(
                peer = %target.name,
                failures = health.failures,
                "peer is reachable again"
            );
        }
    }

    /// Records that `target` failed while the state was at `head`: skips it for a
    /// growing time, and logs a warning unless one was logged at this same head.
    pub fn failed(&self, target: &Target, error: &Error, head: u64, now: Instant) {
        let mut book = self.book();
        let health = book.health.entry(target.name.clone()).or_insert(Health {
            failures: 0,
            retry_at: now,
            logged_at: None,
        });
        health.failures = health.failures.saturating_add(1);
        let backoff = self.backoff_after(health.failures);
        health.retry_at = now + backoff;
        let first_at_head = health.logged_at != Some(head);
        health.logged_at = Some(head);
        let failures = health.failures;
        drop(book);
        if first_at_head {
            tracing::warn!(peer = %target.name, failures, ?backoff, "peer failed: {error}");
        } else {
            tracing::debug!(peer = %target.name, failures, ?backoff, "peer failed: {error}");
        }
    }

    /// Records that `target` is busy and asked to be left alone for `retry_after`: it is
    /// skipped until then, without counting a failure.
    pub fn busy(&self, target: &Target, retry_after: Duration, now: Instant) {
        let mut book = self.book();
        let health = book.health.entry(target.name.clone()).or_insert(Health {
            failures: 0,
            retry_at: now,
            logged_at: None,
        });
        health.retry_at = health.retry_at.max(now + retry_after);
        drop(book);
        tracing::debug!(peer = %target.name, ?retry_after, "peer is busy");
    }

    /// Records that `target` is up but refused what was sent, at state `head`: no
    /// back-off, but a warning once per state change.
    pub fn refused(&self, target: &Target, error: &Error, head: u64) {
        let mut book = self.book();
        let now = Instant::now();
        let health = book.health.entry(target.name.clone()).or_insert(Health {
            failures: 0,
            retry_at: now,
            logged_at: None,
        });
        let first_at_head = health.logged_at != Some(head);
        health.logged_at = Some(head);
        drop(book);
        if first_at_head {
            tracing::warn!(peer = %target.name, "{error}");
        } else {
            tracing::debug!(peer = %target.name, "{error}");
        }
    }

    /// How long to skip a peer after `failures` failures in a row: not at all after one
    /// (a lost message says little, and skipping a live successor on the ring would leave
    /// it to random picks), then `backoff`, doubling.
    fn backoff_after(&self, failures: u32) -> Duration {
        if failures <= 1 {
            return Duration::ZERO;
        }
        let doublings = failures.saturating_sub(2).min(16);
        self.backoff.saturating_mul(1 << doublings).min(MAX_BACKOFF)
    }
}

#[cfg(test)]
mod tests;
