//! `c19-sim`: runs simulated clusters and prints one JSON line per run (see the crate
//! docs). `cargo xtask sim` builds and runs it.

use std::process::ExitCode;

use c19_sim::{Partition, Scenario, SharedHost};
use clap::Parser;

/// Simulates c19 clusters of real Default states and gossip on a virtual clock; prints one
/// JSON line per run.
#[derive(Debug, Parser)]
#[command(name = "c19-sim", version)]
struct Args {
    /// Agents in the cluster; a comma-separated list runs each size.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    agents: Vec<usize>,
    /// Seed of every random draw; a comma-separated list runs each seed.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    seed: Vec<u64>,
    /// Probability that one way of a message is lost (0.05: 5%).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// One-way link latency in ms: `MS`, or `MIN-MAX` drawn uniformly.
    #[arg(long, default_value = "1")]
    latency: String,
    /// A 50/50 partition after the writes: `MS` long, or `MS:W` with W new keys written on
    /// each side meanwhile (default 5).
    #[arg(long)]
    partition: Option<String>,
    /// New keys written, one at a time, whose spread is timed.
    #[arg(long, default_value_t = 50)]
    writes: usize,
    /// Virtual ms between two writes.
    #[arg(long, default_value_t = 600)]
    write_gap: u64,
    /// A steady load of this many writes per second on random agents meanwhile.
    #[arg(long, default_value_t = 0)]
    load: u32,
    /// The connection's push_interval, ms.
    #[arg(long, default_value_t = 200)]
    push_interval: u64,
    /// The connection's pull_interval, ms.
    #[arg(long, default_value_t = 2000)]
    pull_interval: u64,
    /// The connection's r0.
    #[arg(long, default_value_t = 3)]
    r0: usize,
    /// Skip the restart of an empty agent at the end.
    #[arg(long)]
    no_restart: bool,
    /// Run every agent on one machine with this many cores (with --push-cpu-us).
    #[arg(long, requires = "push_cpu_us")]
    cores: Option<usize>,
    /// CPU time one push takes on that machine, µs (with --cores).
    #[arg(long, requires = "cores")]
    push_cpu_us: Option<f64>,
}

fn scenario(args: &Args, agents: usize, seed: u64) -> Result<Scenario, String> {
    let number = |text: &str, what: &str| {
        text.trim()
            .parse::<f64>()
            .map_err(|_| format!("--{what}: expected a number of ms, got `{text}`"))
    };
    let (latency_ms, latency_max_ms) = match args.latency.split_once('-') {
        Some((low, high)) => (number(low, "latency")?, Some(number(high, "latency")?)),
        None => (number(&args.latency, "latency")?, None),
    };
    let partition = match &args.partition {
        None => None,
        Some(text) => {
            let (duration, writes) = text.split_once(':').unwrap_or((text, "5"));
            let bad = || format!("--partition: expected `MS` or `MS:WRITES`, got `{text}`");
            Some(Partition {
                duration_ms: duration.trim().parse().map_err(|_| bad())?,
                writes_per_side: writes.trim().parse().map_err(|_| bad())?,
            })
        }
    };
    Ok(Scenario {
        agents,
        seed,
        push_interval_ms: args.push_interval,
        pull_interval_ms: args.pull_interval,
        r0: args.r0,
        latency_ms,
        latency_max_ms,
        loss: args.loss,
        writes: args.writes,
        write_gap_ms: args.write_gap,
        load_per_s: args.load,
        partition,
        restart: !args.no_restart,
        host: args
            .cores
            .zip(args.push_cpu_us)
            .map(|(cores, push_cpu_us)| SharedHost { cores, push_cpu_us }),
        ..Scenario::default()
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    for &agents in &args.agents {
        for &seed in &args.seed {
            let result = scenario(&args, agents, seed)
                .and_then(|scenario| c19_sim::run(&scenario).map_err(|error| error.to_string()))
                .and_then(|report| {
                    serde_json::to_string(&report).map_err(|error| error.to_string())
                });
            match result {
                Ok(line) => println!("{line}"),
                Err(error) => {
                    eprintln!("c19-sim: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}
