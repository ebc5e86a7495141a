//! Simulation (the `sim` feature): many agents' gossip in one process, over an in-memory
//! [`Network`], on tokio's paused (virtual) clock.
//!
//! Each [`SimAgent`] runs this crate's real publisher and receiver, against a real
//! state, with a [`Transport`](crate::transport) that carries its messages through the
//! network instead of HTTP. Run on a current-thread runtime with paused time
//! (`start_paused`), after [`use_virtual_clock`], and with every random draw seeded
//! (the network's and each agent's), a run is exactly reproducible from its seed: nothing
//! runs on other threads (diffs, merges and exchange steps run in place), time moves only
//! when every agent waits, and timestamps come from the virtual clock.
//!
//! What it leaves out: HTTP itself (headers, compression, connection reuse: the traffic
//! counts bodies, uncompressed), TLS, the 0.1 dialect negotiation's HTTP statuses, and
//! the back-pressure of the peer server (backlog, merge turns), whose limits a simulated
//! load does not reach. CPU time is left out too unless the network has a [`Host`]: then
//! the agents share its cores, and each push costs one of them the host's CPU time.

mod memory;
mod network;

use std::{
    cell::Cell,
    net::SocketAddr,
    sync::{Arc, atomic::AtomicBool},
};

use c19_core::{Peer, PeerProvider, Readiness, SafeState, Shutdown};
use rand::{SeedableRng, rngs::StdRng};
use tokio::{task::JoinHandle, time::Instant};

pub use network::{Host, Latency, Links, Network, Traffic};

use crate::{
    DefaultConnectionConfig,
    cadence::Cadence,
    first_sync::FirstSync,
    gossip::Gossip,
    identity::NodeId,
    peers::PeerBook,
    publisher, receiver,
    server::PeerServer,
    stats::{Stats, StatsSnapshot},
    transport::Offload,
};

use memory::MemoryTransport;

/// The Unix time (ms) at which every simulation's clock starts: 2027-01-15.
pub const EPOCH_MS: u64 = 1_800_000_000_000;

thread_local! {
    /// The virtual clock's start on this thread: the runtime's instant and Unix ms.
    static START: Cell<Option<(Instant, u64)>> = const { Cell::new(None) };
}

/// The agents' clock on a simulating thread: [`EPOCH_MS`] plus the virtual time since the
/// thread's [`use_virtual_clock`]; `None` on other threads (they keep the system clock).
fn virtual_now_ms() -> Option<u64> {
    START.with(Cell::get).map(|(start, epoch)| {
        let elapsed = Instant::now().saturating_duration_since(start);
        epoch.saturating_add(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
    })
}

/// Makes the agents' clock ([`c19_core::clock::now_ms`]) on this thread the runtime's
/// virtual time, starting at [`EPOCH_MS`]. Call it inside the simulation's runtime, once
/// its time is paused. Other threads of the process keep the system clock.
pub fn use_virtual_clock() {
    c19_core::clock::set_source(virtual_now_ms);
    START.with(|start| start.set(Some((Instant::now(), EPOCH_MS))));
}

/// A fixed list of peers: every simulated agent's address, this agent's included.
#[derive(Debug)]
struct Roster {
    peers: Vec<Peer>,
    itself: Peer,
}

impl PeerProvider for Roster {
    fn get(&self) -> Vec<Peer> {
        self.peers.clone()
    }

    fn itself(&self) -> Option<Peer> {
        Some(self.itself.clone())
    }
}

/// One running simulated agent's connection; it stops when dropped.
#[derive(Debug)]
pub struct SimAgent {
    addr: SocketAddr,
    network: Network,
    stats: Arc<Stats>,
    readiness: Readiness,
    task: JoinHandle<()>,
}

impl SimAgent {
    /// Starts the connection of the agent at `addr` on `network`, configured by `config`
    /// (its intervals, `r0`, timeouts and limits; the port, TLS and peer provider are not
    /// used), with `state`, among the agents at `roster`. Its random draws are seeded with
    /// `seed`. Call it inside the simulation's runtime.
    pub fn start(
        network: &Network,
        addr: SocketAddr,
        roster: &[SocketAddr],
        state: SafeState,
        config: &DefaultConnectionConfig,
        seed: u64,
    ) -> Self {
        let settings = config.settings(addr.port());
        let stats = Arc::new(Stats::default());
        // Readiness is process-wide by component: one name per agent of each network.
        let readiness = Readiness::for_component(&format!("sim {} {addr}", network.id()));
        let cadence = Arc::new(Cadence::default());
        let server = Arc::new(PeerServer::new(
            state.clone(),
            NodeId::random(),
            stats.clone(),
            cadence.clone(),
            &settings,
        ));
        network.attach(addr, server);
        let roster = Roster {
            peers: roster
                .iter()
                .map(|peer| Peer::ip(peer.ip(), Some(peer.port())))
                .collect(),
            itself: Peer::ip(addr.ip(), Some(addr.port())),
        };
        let transport = MemoryTransport {
            network: network.clone(),
            from: addr,
            push_timeout: settings.timeout,
            pull_timeout: settings.pull_interval.max(settings.server_timeout),
        };
        let shutdown = Shutdown::new();
        let first_sync = FirstSync::new(settings.sync_timeout, shutdown.clone(), readiness.clone());
        let counters = stats.clone();
        let task = tokio::spawn(async move {
            first_sync.begin();
            let gossip = Gossip {
                state,
                provider: Some(&roster),
                book: PeerBook::with_rng(
                    addr.ip(),
                    addr.port(),
                    settings.dial_port,
                    settings.backoff,
                    StdRng::seed_from_u64(seed),
                )
                .with_push_interval(settings.push_interval),
                transport: Box::new(transport),
                offload: Offload::Inline,
                board: false,
                settings,
                stats: counters,
                pulled: Default::default(),
                catching_up: AtomicBool::new(true),
                dialects: Default::default(),
                first_sync,
                debts: Default::default(),
                cadence,
            };
            tokio::join!(
                publisher::run(&gossip, &shutdown),
                receiver::run(&gossip, &shutdown),
                gossip.first_sync.time_out(&shutdown),
            );
        });
        Self {
            addr,
            network: network.clone(),
            stats,
            readiness,
            task,
        }
    }

    /// Where the agent is.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its connection's traffic counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Whether its connection turned ready (its first sync completed, or it had nobody
    /// to wait for).
    pub fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }

    /// Stops the agent at once, as a crash does: no final push; messages to its address
    /// fail from now on.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for SimAgent {
    fn drop(&mut self) {
        self.network.detach(self.addr);
        self.task.abort();
        self.readiness.forget();
    }
}
