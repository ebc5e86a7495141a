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

/// Failures in a row after which a peer is left alone: a ring successor is no longer
/// kept, and changes it did not take are no longer sent again ([`crate::debts`]).
pub(crate) const MAX_FAILURES: u32 = 3;

use list::PeerList;

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
            }),
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
        self.sample(book, r0, now, None)
    }

    /// Up to `r0` of the book's list, at random, skipping this agent, peers backed off at
    /// `now`, and `except`: a random order of the distinct peers, cut after `r0` of them.
    fn sample(
        &self,
        book: &mut Book,
        r0: usize,
        now: Instant,
        except: Option<&str>,
    ) -> Vec<Target> {
        let Book {
            health,
            myself,
            rng,
            list,
            order,
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
            let skipped = Some(target.name.as_str()) == except
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
    /// after [`MAX_FAILURES`] failures in a row, nor busy.
    ///
    /// Every agent that receives a change forwards it at once (on the leading edge of its
    /// push interval) and so passes it to its successor: the agents reached are closed
    /// under "successor", which on one ring is all of them, so a change reaches every
    /// agent in one wave of forwards instead of waiting a push interval for the ones the
    /// random picks missed. It needs `peers` to name this agent (a static list that every
    /// agent shares does); otherwise all `r0` are random.
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
        let Some(next) = self.successor(book, now).filter(|_| r0 > 0) else {
            return self.sample(book, r0, now, None);
        };
        let others = self.sample(book, r0 - 1, now, Some(&next.name));
        std::iter::once(next).chain(others).collect()
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
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const OWN: u16 = 4097;

    fn book() -> PeerBook {
        PeerBook::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            OWN,
            OWN,
            Duration::from_millis(100),
        )
    }

    fn peers(list: &[&str]) -> Vec<Peer> {
        list.iter().map(|peer| peer.parse().unwrap()).collect()
    }

    fn names(targets: &[Target]) -> Vec<String> {
        let mut names: Vec<String> = targets.iter().map(|target| target.name.clone()).collect();
        names.sort();
        names
    }

    fn failure() -> Error {
        Error::Status {
            status: 503,
            message: "down".into(),
        }
    }

    #[test]
    fn never_chooses_its_own_address() {
        let book = book();
        let list = peers(&[
            "127.0.0.1",
            "127.0.0.1:4097",
            "0.0.0.0:4097",
            "[::1]:4097",
            "10.0.0.2",
            "127.0.0.1:4098",
        ]);
        for _ in 0..20 {
            assert_eq!(
                names(&book.choose(&list, 10, Instant::now())),
                ["10.0.0.2:4097", "127.0.0.1:4098"]
            );
        }
        // Another node's port on loopback is a peer; the bound IP with the own port is not.
        let bound = PeerBook::new(
            "10.0.0.1".parse().unwrap(),
            OWN,
            OWN,
            Duration::from_millis(100),
        );
        assert_eq!(
            names(&bound.choose(&peers(&["10.0.0.1", "10.0.0.1:1"]), 10, Instant::now())),
            ["10.0.0.1:1"]
        );
    }

    #[test]
    fn pushes_always_include_the_successor_on_the_ring() {
        let book = book();
        // This agent is 127.0.0.1:4097 (OWN); the names in order put 127.0.0.1:4098 next.
        let list = peers(&[
            "127.0.0.1:4099",
            "10.0.0.9",
            "127.0.0.1:4097",
            "127.0.0.1:4098",
            "10.0.0.1",
        ]);
        let mut others = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let chosen = book.choose_for_push(&list, None, 2, Instant::now());
            assert_eq!(chosen.len(), 2);
            assert_eq!(chosen[0].name, "127.0.0.1:4098");
            assert_ne!(chosen[1].name, "127.0.0.1:4098");
            others.insert(chosen[1].name.clone());
        }
        assert_eq!(others.len(), 3, "the rest is random: {others:?}");
        // The last name wraps round to the first; a successor that keeps failing is
        // skipped (a failure or two are kept: lost messages).
        let last = peers(&["10.0.0.1", "127.0.0.1:4097", "10.0.0.2"]);
        let start = Instant::now();
        let first = Target {
            name: "10.0.0.1:4097".into(),
            peer: last[0].clone(),
        };
        book.failed(&first, &failure(), 1, start);
        book.failed(&first, &failure(), 1, start);
        let chosen = book.choose_for_push(&last, None, 1, start);
        assert_eq!(
            names(&chosen),
            ["10.0.0.1:4097"],
            "two failures: still the successor"
        );
        book.failed(&first, &failure(), 1, start);
        let chosen = book.choose_for_push(&last, None, 1, start);
        assert_eq!(names(&chosen), ["10.0.0.2:4097"]);
        // A list without this agent: all random, unless the provider says where it is.
        let without = peers(&["10.0.0.5", "10.0.0.7", "10.0.0.6"]);
        assert_eq!(book.choose_for_push(&without, None, 2, start).len(), 2);
        let own: Peer = "10.0.0.6".parse().unwrap();
        for _ in 0..20 {
            let chosen = book.choose_for_push(&without, Some(&own), 1, start);
            assert_eq!(names(&chosen), ["10.0.0.7:4097"]);
        }
    }

    #[test]
    fn samples_at_most_r0_distinct_peers_at_random() {
        let book = book();
        let list = peers(&[
            "10.0.0.1",
            "10.0.0.2",
            "10.0.0.3",
            "10.0.0.4",
            "10.0.0.1:4097",
        ]);
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let chosen = names(&book.choose(&list, 2, Instant::now()));
            assert_eq!(chosen.len(), 2);
            assert_ne!(chosen[0], chosen[1]);
            seen.extend(chosen);
        }
        assert_eq!(seen.len(), 4, "every peer is chosen sometimes: {seen:?}");
    }

    #[test]
    fn counts_distinct_peers_other_than_itself() {
        let book = book();
        let list = peers(&[
            "127.0.0.1",
            "10.0.0.1",
            "10.0.0.1:4097",
            "10.0.0.2",
            "name:1",
        ]);
        assert_eq!(book.count_others(&list), 3);
        let me = book
            .choose(&list, 5, Instant::now())
            .into_iter()
            .find(|t| t.name == "name:1")
            .unwrap();
        book.mark_self(&me);
        assert_eq!(book.count_others(&list), 2);
    }

    #[test]
    fn skips_peers_found_to_be_itself() {
        let book = book();
        let list = peers(&["10.0.0.1", "10.0.0.2"]);
        let me = book
            .choose(&list, 2, Instant::now())
            .into_iter()
            .find(|t| t.name == "10.0.0.1:4097")
            .unwrap();
        book.mark_self(&me);
        assert_eq!(
            names(&book.choose(&list, 2, Instant::now())),
            ["10.0.0.2:4097"]
        );
    }

    #[test]
    fn backs_off_failing_peers_exponentially_and_resets_on_success() {
        let book = book();
        let list = peers(&["10.0.0.1", "10.0.0.2"]);
        let target = Target {
            name: "10.0.0.1:4097".into(),
            peer: list[0].clone(),
        };
        let start = Instant::now();
        book.failed(&target, &failure(), 1, start);
        assert_eq!(
            book.choose(&list, 2, start).len(),
            2,
            "one failure (a lost message) is no reason to skip a peer"
        );
        book.failed(&target, &failure(), 1, start);
        assert_eq!(names(&book.choose(&list, 2, start)), ["10.0.0.2:4097"]);
        assert_eq!(
            book.choose(&list, 2, start + Duration::from_millis(100))
                .len(),
            2
        );
        book.failed(&target, &failure(), 1, start);
        book.failed(&target, &failure(), 1, start);
        // Fourth failure in a row: skipped for 400 ms.
        assert_eq!(
            book.choose(&list, 2, start + Duration::from_millis(399))
                .len(),
            1
        );
        assert_eq!(
            book.choose(&list, 2, start + Duration::from_millis(400))
                .len(),
            2
        );
        for _ in 0..40 {
            book.failed(&target, &failure(), 2, start);
        }
        assert_eq!(
            book.choose(&list, 2, start + MAX_BACKOFF - Duration::from_millis(1))
                .len(),
            1
        );
        assert_eq!(book.choose(&list, 2, start + MAX_BACKOFF).len(), 2);
        book.succeeded(&target);
        assert_eq!(book.choose(&list, 2, start).len(), 2);
    }

    #[test]
    fn a_refusal_does_not_back_off() {
        let book = book();
        let list = peers(&["10.0.0.1"]);
        let target = book.choose(&list, 1, Instant::now()).remove(0);
        book.refused(&target, &failure(), 1);
        assert_eq!(book.choose(&list, 1, Instant::now()).len(), 1);
    }

    #[tokio::test]
    async fn resolves_names_and_recognises_itself_after_resolution() {
        let book = book();
        let list = peers(&["localhost:4097", "localhost:4999", "10.0.0.9"]);
        let chosen = book.choose(&list, 3, Instant::now());
        assert_eq!(
            chosen.len(),
            3,
            "names cannot be judged before they are resolved"
        );
        for target in &chosen {
            let resolved = book.resolve(target, Duration::from_secs(5)).await;
            match target.name.as_str() {
                "localhost:4097" => assert!(
                    matches!(resolved, Err(Error::IsSelf { .. })),
                    "{resolved:?}"
                ),
                "localhost:4999" => assert!(resolved.unwrap().ip().is_loopback()),
                _ => assert_eq!(resolved.unwrap(), "10.0.0.9:4097".parse().unwrap()),
            }
        }
        assert_eq!(book.choose(&list, 3, Instant::now()).len(), 2);
        let unknown = Target {
            name: "no-such-host.invalid:1".into(),
            peer: "no-such-host.invalid:1".parse().unwrap(),
        };
        assert!(
            book.resolve(&unknown, Duration::from_secs(5))
                .await
                .is_err()
        );
    }

    #[test]
    fn a_new_list_of_peers_is_read_again_and_the_ring_follows_it() {
        let book = book();
        let first = peers(&["10.0.0.1", "10.0.0.2"]);
        let now = Instant::now();
        assert_eq!(
            names(&book.choose(&first, 5, now)),
            ["10.0.0.1:4097", "10.0.0.2:4097"]
        );
        let second = peers(&["10.0.0.3", "10.0.0.4", "10.0.0.3"]);
        assert_eq!(
            names(&book.choose(&second, 5, now)),
            ["10.0.0.3:4097", "10.0.0.4:4097"],
            "the new list, each peer once"
        );
        assert_eq!(book.count_others(&second), 2);
        let itself: Peer = "10.0.0.15:4097".parse().unwrap();
        let ring = peers(&["10.0.0.10", "10.0.0.20", "10.0.0.30"]);
        let pushed = book.choose_for_push(&ring, Some(&itself), 1, now);
        assert_eq!(
            names(&pushed),
            ["10.0.0.20:4097"],
            "the successor of 10.0.0.15 by name"
        );
        let moved: Peer = "10.0.0.25:4097".parse().unwrap();
        let pushed = book.choose_for_push(&ring, Some(&moved), 1, now);
        assert_eq!(
            names(&pushed),
            ["10.0.0.30:4097"],
            "a new itself moves on the ring"
        );
    }

    #[test]
    fn seeded_books_choose_alike() {
        let list = peers(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]);
        let seeded = |seed| {
            PeerBook::with_rng(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                OWN,
                OWN,
                Duration::from_secs(1),
                StdRng::seed_from_u64(seed),
            )
        };
        let (a, b) = (seeded(5), seeded(5));
        let now = Instant::now();
        for _ in 0..20 {
            assert_eq!(a.choose(&list, 2, now), b.choose(&list, 2, now));
        }
    }
}
