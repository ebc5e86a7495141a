//! The c19 benchmark suite (issue 6), run by the `c19-bench` binary and
//! `cargo xtask bench [--quick]`: real agent processes on loopback, measured from the
//! outside through their HTTP ports and `/proc`.
//!
//! 1. Convergence: time until every agent reads a new key, an overwrite, a delete.
//! 2. Network: bytes gossiped for a 20,000-key state at rest and after one change.
//! 3. Agent: GET/PUT requests per second and latency, next to a bare HTTP server's under
//!    the same load; GET latency during a big merge.
//! 4. Memory: resident memory per key at 100k and 1M keys.
//! 5. Catch-up: a restarted empty agent until it holds the whole state (run with 2).
//! 6. TLS: plaintext and mutual TLS (`strict`) side by side on 10 agents: bytes at rest,
//!    convergence of a new key.
//!
//! 7. Footprint, 8. persistence, 9. 100 real agents, 10. steady load (see the README).
//! 11. Simulation: `c19-sim` from 10 to 1,000 agents, calibrated on the real processes.
//!
//! Every figure is printed next to the target of the issue that set it.

pub mod catch_up;
pub mod client;
pub mod convergence;
pub mod error;
pub mod floor;
pub mod footprint;
pub mod guard;
pub mod load;
pub mod machine;
pub mod memory;
pub mod network;
pub mod persistence;
pub mod report;
pub mod scale;
pub mod scale_chart;
pub mod simulation;
pub mod stats;
pub mod steady;
pub mod svg;
pub mod throughput;
pub mod tls;
pub mod watch;

use std::{
    fs,
    future::Future,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

pub use error::{Error, Result};

use self::{
    convergence::{PULL_MS, PUSH_MS, Point},
    load::Generator,
    machine::Machine,
    network::Setup,
    report::{Figure, Report},
};
use crate::{Node, free_port};

/// What one scenario measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The figures, with their targets.
    pub figures: Vec<Figure>,
    /// Convergence times for the plot.
    pub points: Vec<Point>,
}

/// The scenarios that can be selected with `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Convergence time against N.
    Convergence,
    /// Network cost and catch-up.
    Network,
    /// Agent throughput and latency.
    Agent,
    /// Memory per key.
    Memory,
    /// Mutual TLS beside plaintext.
    Tls,
    /// Resident memory idle, loaded and after a burst.
    Footprint,
    /// Persistence: throughput beside memory and Redis, start-up load.
    Persistence,
    /// 100 real agent processes: convergence and memory.
    Scale,
    /// A steady 1,000 writes/s: push rounds, bytes per change, convergence.
    Steady,
    /// The simulator from 10 to 1,000 agents, beside the real processes.
    Sim,
}

impl Scenario {
    /// Every scenario, in the order they run.
    pub const ALL: [Self; 10] = [
        Self::Convergence,
        Self::Network,
        Self::Agent,
        Self::Memory,
        Self::Tls,
        Self::Footprint,
        Self::Persistence,
        Self::Scale,
        Self::Steady,
        Self::Sim,
    ];

    /// The scenario's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Convergence => "convergence",
            Self::Network => "network",
            Self::Agent => "agent",
            Self::Memory => "memory",
            Self::Tls => "tls",
            Self::Footprint => "footprint",
            Self::Persistence => "persistence",
            Self::Scale => "scale",
            Self::Steady => "steady",
            Self::Sim => "sim",
        }
    }

    /// The scenario called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|scenario| scenario.name() == name)
    }
}

/// The sizes of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Cluster sizes for the convergence scenario.
    pub convergence: Vec<usize>,
    /// Writes of each kind per cluster size.
    pub writes: usize,
    /// Network (and catch-up) setups.
    pub network: Vec<Setup>,
    /// Duration of each throughput load.
    pub load: Duration,
    /// Keys merged while measuring GET latency.
    pub merge_keys: usize,
    /// Key counts of the memory scenario.
    pub memory: Vec<usize>,
    /// Keys the persistence scenario loads at start-up.
    pub persisted_keys: usize,
}

impl Plan {
    /// The full run of the issue (a few minutes).
    pub fn full() -> Self {
        Self {
            convergence: vec![3, 10, 40],
            writes: 20,
            network: vec![
                Setup {
                    agents: 10,
                    keys: 20_000,
                },
                Setup {
                    agents: 30,
                    keys: 100_000,
                },
            ],
            load: Duration::from_secs(10),
            merge_keys: 100_000,
            memory: vec![100_000, 1_000_000],
            persisted_keys: 1_000_000,
        }
    }

    /// A small run for CI.
    pub fn quick() -> Self {
        Self {
            convergence: vec![3, 10],
            writes: 5,
            network: vec![Setup {
                agents: 10,
                keys: 20_000,
            }],
            load: Duration::from_secs(3),
            merge_keys: 100_000,
            memory: vec![100_000],
            persisted_keys: 100_000,
        }
    }
}

/// How to run the suite.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run the quick plan.
    pub quick: bool,
    /// The agent binary (`c19` or `c19-agent`, ideally a release build).
    pub agent: PathBuf,
    /// The scenarios to run.
    pub scenarios: Vec<Scenario>,
    /// Use the built-in load generator even when `wrk` is installed.
    pub built_in_load: bool,
    /// The simulator binary (`c19-sim`, a release build).
    pub sim: PathBuf,
}

/// Runs the selected scenarios one after the other; a failing scenario is recorded in
/// the report and the others still run.
pub async fn run(options: &Options) -> Report {
    let plan = if options.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let generator = if options.built_in_load {
        Generator::BuiltIn
    } else {
        Generator::detect()
    };
    let mut machine = Machine::detect();
    machine.load_generator = generator.describe();
    let started_unix_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    let began = Instant::now();
    let mut report = Report {
        quick: options.quick,
        machine,
        started_unix_ms,
        duration: Duration::ZERO,
        figures: Vec::new(),
        convergence: Vec::new(),
        simulated: Vec::new(),
        notes: notes(&generator),
        errors: Vec::new(),
    };
    let agent = options.agent.clone();
    for &scenario in &options.scenarios {
        match scenario {
            Scenario::Convergence => {
                for &n in &plan.convergence {
                    let (agent, writes) = (agent.clone(), plan.writes);
                    let label = format!("convergence N={n}");
                    let outcome =
                        guarded(
                            &label,
                            async move { convergence::run(&agent, n, writes).await },
                        );
                    record(&mut report, &label, outcome.await);
                }
            }
            Scenario::Network => {
                for &setup in &plan.network {
                    let agent = agent.clone();
                    let label = format!("network {} agents, {} keys", setup.agents, setup.keys);
                    let outcome = guarded(&label, async move { network::run(&agent, setup).await });
                    record(&mut report, &label, outcome.await);
                }
            }
            Scenario::Agent => {
                let (agent, generator, duration, keys) =
                    (agent.clone(), generator.clone(), plan.load, plan.merge_keys);
                let outcome = guarded("agent", async move {
                    throughput::run(&agent, &generator, duration, keys).await
                });
                record(&mut report, "agent", outcome.await);
            }
            Scenario::Memory => {
                let (agent, levels) = (agent.clone(), plan.memory.clone());
                let outcome = guarded("memory", async move { memory::run(&agent, &levels).await });
                record(&mut report, "memory", outcome.await);
            }
            Scenario::Tls => {
                let (agent, writes) = (agent.clone(), plan.writes);
                let outcome = guarded("tls", async move { tls::run(&agent, writes).await });
                record(&mut report, "tls", outcome.await);
            }
            Scenario::Footprint => {
                let agent = agent.clone();
                let outcome = guarded("footprint", async move { footprint::run(&agent).await });
                record(&mut report, "footprint", outcome.await);
            }
            Scenario::Persistence => {
                let (agent, generator, duration, keys) = (
                    agent.clone(),
                    generator.clone(),
                    plan.load,
                    plan.persisted_keys,
                );
                let outcome = guarded("persistence", async move {
                    persistence::run(&agent, &generator, duration, keys).await
                });
                record(&mut report, "persistence", outcome.await);
            }
            Scenario::Scale => {
                let (agent, writes) = (agent.clone(), plan.writes);
                let outcome = guarded("scale", async move { scale::run(&agent, writes).await });
                record(&mut report, "scale", outcome.await);
            }
            Scenario::Steady => {
                let agent = agent.clone();
                let outcome = guarded("steady", async move { steady::run(&agent).await });
                record(&mut report, "steady", outcome.await);
            }
            Scenario::Sim => {
                let (sim, quick, real) = (
                    options.sim.clone(),
                    options.quick,
                    report.convergence.clone(),
                );
                let real_figures = report.figures.clone();
                let outcome = guarded("simulation", async move {
                    tokio::task::spawn_blocking(move || {
                        simulation::run(&sim, quick, &real, &real_figures)
                    })
                    .await
                    .map_err(|error| Error::Tool(format!("simulation: {error}")))?
                });
                match outcome.await {
                    Ok((outcome, points)) => {
                        report.simulated = points;
                        record(&mut report, "simulation", Ok(outcome));
                    }
                    Err(error) => record(&mut report, "simulation", Err(error)),
                }
            }
        }
    }
    report.duration = began.elapsed();
    report
}

/// Writes `report.json`, `report.md` and `convergence.svg` into `dir`.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let json = serde_json::to_string_pretty(&report.to_json()).unwrap_or_default();
    let chart = svg::convergence_chart(
        &report.convergence,
        &[
            (3.0 * PUSH_MS as f64, "p90 target, 10 agents (issue 4)"),
            (PULL_MS as f64, "max target, 10 agents (issue 4)"),
        ],
    );
    let mut files = vec![
        ("report.json", json + "\n"),
        ("report.md", report.to_markdown()),
        ("convergence.svg", chart),
    ];
    if !report.simulated.is_empty() {
        files.push(("simulation.svg", simulation_chart(report)));
    }
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        fs::write(&path, text).map_err(Error::io(format!("writing {}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

/// The simulator's curve beside the real processes' new-key times.
fn simulation_chart(report: &Report) -> String {
    use scale_chart::Series;
    let real = |pick: fn(&stats::Summary) -> f64| {
        report
            .convergence
            .iter()
            .filter(|point| point.kind == convergence::Kind::New)
            .filter_map(|point| Some((point.n as f64, pick(&point.summary?))))
            .collect::<Vec<_>>()
    };
    let simulated = |pick: fn(&report::Simulated) -> f64| {
        report
            .simulated
            .iter()
            .map(|point| (point.0 as f64, pick(point)))
            .collect::<Vec<_>>()
    };
    scale_chart::chart(
        &[
            Series {
                label: "simulated p50".into(),
                colour: "#1f77b4",
                dashed: false,
                points: simulated(|point| point.1),
            },
            Series {
                label: "simulated p99".into(),
                colour: "#d62728",
                dashed: false,
                points: simulated(|point| point.2),
            },
            Series {
                label: "real processes p50".into(),
                colour: "#1f77b4",
                dashed: true,
                points: real(|summary| summary.p50),
            },
            Series {
                label: "real processes p90".into(),
                colour: "#d62728",
                dashed: true,
                points: real(|summary| summary.p90),
            },
        ],
        &[(500.0, "p99 target, 1,000 agents (issue 19)")],
    )
}

/// One agent without peers, for the single-agent scenarios; killed on drop.
#[derive(Debug)]
pub struct Solo {
    /// The agent (dropped before its folder).
    pub node: Node,
    _dir: tempfile::TempDir,
}

impl Solo {
    /// Starts an agent with no peers and waits until it answers.
    pub async fn start(binary: &Path) -> Result<Self> {
        Self::start_with_state(binary, "").await
    }

    /// As [`Solo::start`], with extra YAML lines for the state section (indented here).
    pub async fn start_with_state(binary: &Path, state: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("c19-bench-")
            .tempdir()
            .map_err(Error::io("creating a folder for the agent"))?;
        let mut node = Node::new(binary, "solo", dir.path(), free_port(), free_port());
        let config = crate::fixtures::solo(node.agent_port, node.peer_port, state);
        fs::write(&node.config, config).map_err(Error::io("writing the agent configuration"))?;
        node.start().await;
        Ok(Self { node, _dir: dir })
    }
}

/// Runs a scenario in its own task, so a panic (the harness asserts that agents start)
/// becomes an error of that scenario; logs its start and duration on stderr.
async fn guarded<F, T>(label: &str, scenario: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    eprintln!("==> {label}");
    let began = Instant::now();
    let result = match tokio::spawn(scenario).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => {
            let panic = error.into_panic();
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(Error::Panic(message))
        }
        Err(error) => Err(Error::Tool(format!("{label}: {error}"))),
    };
    eprintln!("    ({label}: {:.1}s)", began.elapsed().as_secs_f64());
    result
}

fn record(report: &mut Report, label: &str, outcome: Result<Outcome>) {
    match outcome {
        Ok(outcome) => {
            report.figures.extend(outcome.figures);
            report.convergence.extend(outcome.points);
        }
        Err(error) => {
            let mut message = error.to_string();
            // Panics from the harness carry whole agent logs; keep the report readable.
            if message.len() > 2000 {
                let cut = (0..=2000)
                    .rev()
                    .find(|&i| message.is_char_boundary(i))
                    .unwrap_or(0);
                message.truncate(cut);
                message.push_str(" …");
            }
            eprintln!("    {label} failed: {message}");
            report.errors.push((label.to_owned(), message));
        }
    }
}

fn notes(generator: &Generator) -> Vec<String> {
    let wire = if machine::in_private_netns() {
        "Wire bytes: the loopback interface's transmit counter in the private network namespace \
         the benchmark runs in (HTTP headers, TCP/IP headers and handshakes included)."
    } else {
        "Wire bytes: not measured (the benchmark could not create a private network namespace \
         with `unshare --net`)."
    };
    vec![
        format!(
            "Convergence: push {PUSH_MS} ms, pull {PULL_MS} ms, r0 3. Each write goes to one agent \
             (a different one at each step); every agent is polled every 20 ms; a figure is the time \
             from sending the write until the last agent reads it."
        ),
        "Network: the keys are loaded into one agent; body bytes are the sum over agents of \
         `bytes_sent` from `GET /_c19/stats` on the peer port (HTTP bodies only, headers excluded). \
         A run stops early when the agents' summed RSS passes a quarter of the machine's memory."
            .to_owned(),
        wire.to_owned(),
        format!(
            "Agent: load generator {}; GET reads 1,000 keys round-robin, PUT writes one key per request \
             over 10,000 keys. GET latency during the merge is timed by the built-in generator.",
            generator.describe()
        ),
        "Memory: VmRSS of the agent before loading and after loading (and 1 s to settle), divided by \
         the keys; values are 60 bytes of JSON."
            .to_owned(),
        format!(
            "TLS: 10 agents as in Convergence, 1,000 keys; plaintext and TLS strict clusters in \
             alternating rounds ({} each, order ABBA); at-rest bytes as in Network; new keys as in \
             Convergence.",
            tls::ROUNDS
        ),
        "Catch-up: from starting the killed agent's process again until it reads every key.".to_owned(),
        "Every agent and the load generator share the machine's CPUs.".to_owned(),
    ]
}
