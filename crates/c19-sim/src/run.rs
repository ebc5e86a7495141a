//! One simulated run: starts the agents on a paused current-thread runtime, plays the
//! scenario's events, and measures them on the virtual clock.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use c19_connection_default::{
    DefaultConnectionConfig,
    sim::{Host, Latency, Links, Network, SimAgent, Traffic, use_virtual_clock},
};
use c19_core::SafeState;
use c19_state_default::{DefaultState, DefaultStateConfig};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use tokio::time::{Instant, sleep};

use crate::{
    Error,
    report::{Report, ms_precision, quantile},
    scenario::{LOAD_KEYS, Scenario},
    track::Tracker,
};

/// The port every simulated agent listens on (each has its own address).
const PORT: u16 = 4097;

/// How often conditions that no event announces (equal states) are looked at.
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// Runs `scenario` on a runtime of its own and reports what it measured.
pub fn run(scenario: &Scenario) -> Result<Report, Error> {
    scenario.check()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(simulate(scenario))
}

/// One agent of the cluster.
struct Member {
    state: SafeState,
    agent: SimAgent,
}

/// The cluster under simulation.
struct Cluster {
    network: Network,
    addrs: Vec<SocketAddr>,
    config: DefaultConnectionConfig,
    members: Vec<Member>,
}

impl Cluster {
    fn start(scenario: &Scenario, rng: &mut StdRng) -> Result<Self, Error> {
        let latency = Duration::from_secs_f64(scenario.latency_ms / 1000.0);
        let links = Links {
            latency: match scenario.latency_max_ms {
                Some(max) => Latency::Uniform(latency, Duration::from_secs_f64(max / 1000.0)),
                None => Latency::Fixed(latency),
            },
            loss: scenario.loss,
        };
        let network = Network::new(rng.random(), links);
        network.set_host(scenario.host.map(|host| Host {
            cores: host.cores,
            push_cpu: Duration::from_secs_f64(host.push_cpu_us / 1e6),
        }));
        let addrs: Vec<SocketAddr> = (0..scenario.agents).map(address).collect();
        let config = connection_config(scenario)?;
        let mut cluster = Self {
            network,
            addrs,
            config,
            members: Vec::with_capacity(scenario.agents),
        };
        for index in 0..scenario.agents {
            let member = cluster.member(index, rng.random());
            cluster.members.push(member);
        }
        Ok(cluster)
    }

    /// Starts agent `index` with an empty state.
    fn member(&self, index: usize, seed: u64) -> Member {
        let state: SafeState = Arc::new(DefaultState::new(&DefaultStateConfig::default()));
        let agent = SimAgent::start(
            &self.network,
            self.addrs[index],
            &self.addrs,
            state.clone(),
            &self.config,
            seed,
        );
        Member { state, agent }
    }

    fn all_ready(&self) -> bool {
        self.members.iter().all(|member| member.agent.is_ready())
    }

    fn all_equal(&self) -> bool {
        let Some(first) = self.members.first() else {
            return true;
        };
        let version = first.state.version();
        self.members
            .iter()
            .all(|member| member.state.version() == version)
    }

    /// Writes the new key `key` on agent `index`.
    fn write(&self, index: usize, key: &str) -> Result<(), Error> {
        self.write_value(index, key, "v")
    }

    /// Writes `value` under `key` on agent `index`.
    fn write_value(&self, index: usize, key: &str, value: &str) -> Result<(), Error> {
        let body = serde_json::json!({ key: { "value": value } }).to_string();
        self.members[index]
            .state
            .set_local(&body)
            .map(drop)
            .map_err(|error| Error::Write(error.to_string()))
    }
}

/// Agent `index`'s address: 10.0.0.1, 10.0.0.2, ...
fn address(index: usize) -> SocketAddr {
    let n = u32::try_from(index + 1).unwrap_or(u32::MAX);
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + n);
    SocketAddr::new(IpAddr::V4(ip), PORT)
}

/// The Default connection's configuration for the scenario's settings.
fn connection_config(scenario: &Scenario) -> Result<DefaultConnectionConfig, Error> {
    serde_json::from_value(serde_json::json!({
        "port": PORT,
        "push_interval": scenario.push_interval_ms,
        "pull_interval": scenario.pull_interval_ms,
        "r0": scenario.r0,
    }))
    .map_err(|error| Error::Config(error.to_string()))
}

/// Waits until `done` holds, looking every [`LOOK_EVERY`], at most `limit`; returns how
/// long it took.
async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if done() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        sleep(LOOK_EVERY).await;
    }
}

/// Writes `scenario.load_per_s` overwrites a second on random agents, counting them in
/// `written`, until dropped (or for ever, idle, without a load); ends only on an error.
async fn steady_load(
    cluster: &Cluster,
    scenario: &Scenario,
    written: &mut u64,
) -> Result<(), Error> {
    if scenario.load_per_s == 0 {
        return std::future::pending().await;
    }
    // Its own draws, so that a load leaves the timed writes' agents as they were.
    let mut rng = StdRng::seed_from_u64(scenario.seed ^ 0x6c6f_6164);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / scenario.load_per_s);
    loop {
        tick.tick().await;
        let by = rng.random_range(0..scenario.agents);
        let key = format!("load-{:04}", *written as usize % LOAD_KEYS);
        cluster.write_value(by, &key, &written.to_string())?;
        *written += 1;
    }
}

fn bytes(traffic: &Traffic) -> u64 {
    traffic.push_bytes + traffic.exchange_bytes + traffic.pull_bytes
}

async fn simulate(scenario: &Scenario) -> Result<Report, Error> {
    use_virtual_clock();
    let wall = std::time::Instant::now();
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(scenario.seed);
    let mut cluster = Cluster::start(scenario, &mut rng)?;
    let pull = Duration::from_millis(scenario.pull_interval_ms);
    let push = Duration::from_millis(scenario.push_interval_ms);
    let patience = pull * 10;

    // Every agent's first sync (empty states: a hello each).
    wait_for(patience, || cluster.all_ready()).await;
    // Past the first rounds of pulls, which started with every agent.
    sleep(pull).await;

    // New keys, one at a time on a random agent, each timed until it is on every agent.
    let tracker = Tracker::new(scenario.agents);
    let watchers: Vec<_> = cluster
        .members
        .iter()
        .enumerate()
        .filter_map(|(index, member)| tracker.watch(index, member.state.clone()))
        .collect();
    let before = cluster.network.traffic();
    let timed = async {
        for write in 0..scenario.writes {
            let by = rng.random_range(0..scenario.agents);
            let key = format!("key-{write:06}");
            tracker.written(&key, by);
            cluster.write(by, &key)?;
            sleep(Duration::from_millis(scenario.write_gap_ms)).await;
        }
        wait_for(patience, || tracker.open() == 0).await;
        Ok::<(), Error>(())
    };
    let mut loaded = 0u64;
    let load = steady_load(&cluster, scenario, &mut loaded);
    tokio::select! {
        biased;
        timed = timed => timed?,
        failed = load => failed?,
    }
    // The last change's second push round.
    sleep(push * 3).await;
    let spread = cluster.network.traffic() - before;
    watchers.iter().for_each(|watcher| watcher.abort());
    let times = tracker.times();

    // At rest.
    sleep(pull * 2).await;
    let before = cluster.network.traffic();
    sleep(pull * scenario.rest_intervals).await;
    let rest = cluster.network.traffic() - before;
    let rest_per_agent =
        bytes(&rest) as f64 / (scenario.agents as f64 * f64::from(scenario.rest_intervals.max(1)));

    // A partition into two random halves, written on both sides, then healed.
    let mut heal_s = None;
    if let Some(partition) = &scenario.partition {
        let mut order = cluster.addrs.clone();
        order.shuffle(&mut rng);
        let (left, right) = order.split_at(order.len() / 2);
        let side_of = |index: usize| left.contains(&cluster.addrs[index]);
        let (left_members, right_members): (Vec<usize>, Vec<usize>) =
            (0..scenario.agents).partition(|index| side_of(*index));
        cluster.network.partition(&[left.to_vec(), right.to_vec()]);
        let writes = partition.writes_per_side.max(1);
        let gap = Duration::from_millis(partition.duration_ms)
            / u32::try_from(writes * 2).unwrap_or(u32::MAX);
        for write in 0..writes {
            for (side, members) in [(0, &left_members), (1, &right_members)] {
                if let Some(by) = members.get(rng.random_range(0..members.len().max(1))) {
                    cluster.write(*by, &format!("split-{side}-{write:04}"))?;
                }
                sleep(gap).await;
            }
        }
        cluster.network.heal();
        heal_s = wait_for(patience, || cluster.all_equal())
            .await
            .map(|took| took.as_secs_f64());
    }

    // An agent stopped and restarted empty.
    let mut catch_up_s = None;
    if scenario.restart && scenario.agents > 1 {
        sleep(pull).await;
        cluster.members.remove(0).agent.stop();
        let restarted = cluster.member(0, rng.random());
        cluster.members.insert(0, restarted);
        catch_up_s = wait_for(patience, || cluster.all_equal())
            .await
            .map(|took| took.as_secs_f64());
    }
    sleep(pull).await;
    let all_equal = cluster.all_equal();

    let writes = (scenario.writes as f64 + loaded as f64).max(1.0);
    Ok(Report {
        agents: scenario.agents,
        seed: scenario.seed,
        settings: scenario.clone(),
        converged: times.len(),
        converge_p50_s: quantile(&times, 0.5).map(ms_precision),
        converge_p90_s: quantile(&times, 0.9).map(ms_precision),
        converge_p99_s: quantile(&times, 0.99).map(ms_precision),
        converge_max_s: times.last().copied().map(ms_precision),
        pushes_per_change: spread.pushes as f64 / writes,
        bytes_per_change: spread.push_bytes as f64 / writes,
        rest_bytes_per_agent_per_pull: rest_per_agent,
        heal_s: heal_s.map(ms_precision),
        catch_up_s: catch_up_s.map(ms_precision),
        all_equal,
        lost_messages: cluster.network.traffic().lost,
        virtual_s: ms_precision(start.elapsed().as_secs_f64()),
        wall_s: ms_precision(wall.elapsed().as_secs_f64()),
    })
}
