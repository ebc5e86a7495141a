//! The simulator's network: agents' peer servers by address, and a model of the links
//! between them (latency, loss, partitions), drawn from one seeded generator.
//!
//! A message is a request and its answer. Each way takes the link's latency (fixed, or
//! drawn uniformly from a range) and may be lost with the loss probability; a lost
//! request or answer, or one across a partition, leaves the sender waiting for its
//! timeout, as a dropped TCP connection would. A message to an address where no agent
//! runs fails at once, as a refused connection does. The receiving agent handles the
//! request in place, between the two trips.
//!
//! With a [`Host`] the agents share one machine's cores: handling a push takes a core
//! for the host's CPU time per push, and a push that finds every core busy waits for
//! the first to come free. Without one, handling takes no time.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;

use crate::server::PeerServer;

/// How long a message takes one way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Always this long.
    Fixed(Duration),
    /// Uniformly between the two.
    Uniform(Duration, Duration),
}

/// The model of every link.
#[derive(Debug, Clone, PartialEq)]
pub struct Links {
    /// One-way latency.
    pub latency: Latency,
    /// Probability that one way of a message is lost.
    pub loss: f64,
}

impl Default for Links {
    fn default() -> Self {
        Self {
            latency: Latency::Fixed(Duration::from_millis(1)),
            loss: 0.0,
        }
    }
}

/// One machine that every agent of the network runs on: what handling a push costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Host {
    /// Cores the agents share.
    pub cores: usize,
    /// CPU time one push takes to handle.
    pub push_cpu: Duration,
}

/// The cores of a [`Host`]: when each comes free, in ns from the network's epoch.
#[derive(Debug)]
struct Cores {
    host: Host,
    epoch: tokio::time::Instant,
    free_at_ns: Vec<u64>,
}

/// What crossed the network since it was made: messages delivered (request and answer
/// both arrived) and body bytes of each kind, uncompressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Pushes delivered.
    pub pushes: u64,
    /// Body bytes of delivered pushes.
    pub push_bytes: u64,
    /// Exchange messages delivered (each a request and its answer).
    pub exchange_messages: u64,
    /// Body bytes of exchange requests and answers.
    pub exchange_bytes: u64,
    /// 0.1 whole-state pulls answered.
    pub pulls: u64,
    /// Body bytes of their answers.
    pub pull_bytes: u64,
    /// Requests or answers lost, or cut by a partition.
    pub lost: u64,
}

impl std::ops::Sub for Traffic {
    type Output = Traffic;

    /// What crossed between two readings.
    fn sub(self, earlier: Traffic) -> Traffic {
        Traffic {
            pushes: self.pushes.saturating_sub(earlier.pushes),
            push_bytes: self.push_bytes.saturating_sub(earlier.push_bytes),
            exchange_messages: self
                .exchange_messages
                .saturating_sub(earlier.exchange_messages),
            exchange_bytes: self.exchange_bytes.saturating_sub(earlier.exchange_bytes),
            pulls: self.pulls.saturating_sub(earlier.pulls),
            pull_bytes: self.pull_bytes.saturating_sub(earlier.pull_bytes),
            lost: self.lost.saturating_sub(earlier.lost),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    pushes: AtomicU64,
    push_bytes: AtomicU64,
    exchange_messages: AtomicU64,
    exchange_bytes: AtomicU64,
    pulls: AtomicU64,
    pull_bytes: AtomicU64,
    lost: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// Numbers the networks of a process.
static NETWORKS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
struct Inner {
    id: u64,
    servers: Mutex<HashMap<SocketAddr, Arc<PeerServer>>>,
    links: Mutex<Links>,
    /// The side of the partition each agent is on; `None`: no partition.
    sides: Mutex<Option<HashMap<SocketAddr, usize>>>,
    rng: Mutex<StdRng>,
    counters: Counters,
    cores: Mutex<Option<Cores>>,
}

/// An in-memory network between simulated agents. Clones share it.
#[derive(Debug, Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

/// How one way of a message fares.
pub(crate) enum Trip {
    /// It arrives after this long.
    Arrives(Duration),
    /// It is lost, or cut by a partition.
    Lost,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic elsewhere leaves nothing half-changed that matters here.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Network {
    /// A network whose links follow `links`, drawing from a generator seeded with `seed`.
    pub fn new(seed: u64, links: Links) -> Self {
        Self {
            inner: Arc::new(Inner {
                id: NETWORKS.fetch_add(1, Ordering::Relaxed),
                servers: Mutex::default(),
                links: Mutex::new(links),
                sides: Mutex::default(),
                rng: Mutex::new(StdRng::seed_from_u64(seed)),
                counters: Counters::default(),
                cores: Mutex::default(),
            }),
        }
    }

    /// This network's number among those of the process.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Changes the model of every link from now on.
    pub fn set_links(&self, links: Links) {
        *lock(&self.inner.links) = links;
    }

    /// Puts every agent on one machine (`Some`), or gives each as much CPU as it needs
    /// (`None`, the default). Call it from the runtime that runs the agents.
    pub fn set_host(&self, host: Option<Host>) {
        *lock(&self.inner.cores) = host.map(|host| Cores {
            host,
            epoch: tokio::time::Instant::now(),
            free_at_ns: vec![0; host.cores.max(1)],
        });
    }

    /// How long from now until a push that arrives now has been handled: it waits for
    /// the first free core, then takes the host's CPU time per push. Zero without a host.
    pub(crate) fn handled_in(&self) -> Duration {
        let mut cores = lock(&self.inner.cores);
        let Some(cores) = cores.as_mut() else {
            return Duration::ZERO;
        };
        let now = u64::try_from(cores.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let cpu = u64::try_from(cores.host.push_cpu.as_nanos()).unwrap_or(u64::MAX);
        let Some(core) = cores.free_at_ns.iter_mut().min() else {
            return Duration::ZERO;
        };
        let end = (*core).max(now).saturating_add(cpu);
        *core = end;
        // The virtual clock's timers fire on whole ms: round the end up or down at
        // random, weighted by its fraction of a ms, so that on average a push costs
        // exactly its CPU time instead of a whole ms.
        let (whole, fraction) = (end / 1_000_000, end % 1_000_000);
        let up = fraction > 0 && lock(&self.inner.rng).random_range(0..1_000_000) < fraction;
        let at = (whole + u64::from(up)) * 1_000_000;
        Duration::from_nanos(at.saturating_sub(now))
    }

    /// Cuts the network into `sides`: messages between agents on different sides (or
    /// to an agent on none) are lost until [`Network::heal`].
    pub fn partition(&self, sides: &[Vec<SocketAddr>]) {
        let map = sides
            .iter()
            .enumerate()
            .flat_map(|(side, addrs)| addrs.iter().map(move |addr| (*addr, side)))
            .collect();
        *lock(&self.inner.sides) = Some(map);
    }

    /// Ends a partition.
    pub fn heal(&self) {
        *lock(&self.inner.sides) = None;
    }

    /// What crossed the network so far.
    pub fn traffic(&self) -> Traffic {
        let c = &self.inner.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Traffic {
            pushes: get(&c.pushes),
            push_bytes: get(&c.push_bytes),
            exchange_messages: get(&c.exchange_messages),
            exchange_bytes: get(&c.exchange_bytes),
            pulls: get(&c.pulls),
            pull_bytes: get(&c.pull_bytes),
            lost: get(&c.lost),
        }
    }

    pub(crate) fn attach(&self, addr: SocketAddr, server: Arc<PeerServer>) {
        lock(&self.inner.servers).insert(addr, server);
    }

    pub(crate) fn detach(&self, addr: SocketAddr) {
        lock(&self.inner.servers).remove(&addr);
    }

    /// The peer server at `addr`, if an agent runs there.
    pub(crate) fn server(&self, addr: SocketAddr) -> Option<Arc<PeerServer>> {
        lock(&self.inner.servers).get(&addr).cloned()
    }

    /// How one way from `from` to `to` fares.
    pub(crate) fn trip(&self, from: SocketAddr, to: SocketAddr) -> Trip {
        let cut = lock(&self.inner.sides)
            .as_ref()
            .is_some_and(|sides| sides.get(&from).is_none() || sides.get(&from) != sides.get(&to));
        let links = lock(&self.inner.links).clone();
        let mut rng = lock(&self.inner.rng);
        // Draw the same numbers whether or not the message is cut, so that a partition
        // does not shift every later draw.
        let lost = links.loss > 0.0 && rng.random_bool(links.loss.clamp(0.0, 1.0));
        let latency = match links.latency {
            Latency::Fixed(latency) => latency,
            Latency::Uniform(low, high) if high > low => {
                let span = u64::try_from((high - low).as_micros()).unwrap_or(u64::MAX);
                low + Duration::from_micros(rng.random_range(0..=span))
            }
            Latency::Uniform(low, _) => low,
        };
        if cut || lost {
            add(&self.inner.counters.lost, 1);
            Trip::Lost
        } else {
            Trip::Arrives(latency)
        }
    }

    pub(crate) fn delivered_push(&self, bytes: usize) {
        add(&self.inner.counters.pushes, 1);
        add(&self.inner.counters.push_bytes, bytes);
    }

    pub(crate) fn delivered_exchange(&self, bytes: usize) {
        add(&self.inner.counters.exchange_messages, 1);
        add(&self.inner.counters.exchange_bytes, bytes);
    }

    pub(crate) fn delivered_pull(&self, bytes: usize) {
        add(&self.inner.counters.pulls, 1);
        add(&self.inner.counters.pull_bytes, bytes);
    }
}
