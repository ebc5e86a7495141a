//! `c19-bench`: runs the c19 benchmark suite against an agent binary and writes
//! `report.json`, `report.md` and `convergence.svg`. Usually started by
//! `cargo xtask bench [--quick]`, which builds everything in release first.
//!
//! When it may (`unshare --net` works, e.g. as root), it re-executes itself in a private
//! network namespace, so the loopback byte counter measures only the benchmark's own
//! traffic (the network figures on the wire) and no other process shares its ports.

use std::{
    path::PathBuf,
    process::{Command, ExitCode},
};

use c19_tests::bench::{self, Options, Scenario, machine};
use clap::Parser;

/// The c19 benchmark suite: convergence, network cost, agent throughput, memory, catch-up.
#[derive(Debug, Parser)]
#[command(name = "c19-bench")]
struct Args {
    /// A small run fit for CI.
    #[arg(long)]
    quick: bool,
    /// The agent binary to run (default: `c19-agent`, else `c19`, beside this binary).
    #[arg(long)]
    agent: Option<PathBuf>,
    /// Where to write the reports (default: `../bench` from this binary, i.e. `target/bench`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The simulator binary (default: `c19-sim` beside this binary).
    #[arg(long)]
    sim: Option<PathBuf>,
    /// Run only these scenarios (comma-separated: convergence, network, agent, memory, tls, footprint, persistence, scale, steady, sim).
    #[arg(long, value_delimiter = ',', value_parser = parse_scenario)]
    only: Vec<Scenario>,
    /// Use the built-in load generator even when `wrk` is installed.
    #[arg(long)]
    built_in_load: bool,
    /// Stay in the current network namespace (on-the-wire bytes are then not measured).
    #[arg(long)]
    no_netns: bool,
}

fn parse_scenario(name: &str) -> Result<Scenario, String> {
    Scenario::parse(name).ok_or_else(|| {
        let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
        format!("unknown scenario `{name}` (known: {})", names.join(", "))
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("c19-bench"));
    if !args.no_netns && !machine::in_private_netns() {
        if machine::can_unshare_net() {
            return in_private_netns(&exe);
        }
        eprintln!("c19-bench: cannot create a network namespace; wire bytes will not be measured");
    }
    let here = exe.parent().map(PathBuf::from).unwrap_or_default();
    let agent = args.agent.unwrap_or_else(|| {
        let agent = here.join("c19-agent");
        if agent.exists() {
            agent
        } else {
            here.join("c19")
        }
    });
    if !agent.exists() {
        eprintln!(
            "c19-bench: no agent binary at {} (pass --agent)",
            agent.display()
        );
        return ExitCode::FAILURE;
    }
    let out = args.out.unwrap_or_else(|| here.join("..").join("bench"));
    let sim = args.sim.unwrap_or_else(|| here.join("c19-sim"));
    let options = Options {
        quick: args.quick,
        agent,
        scenarios: if args.only.is_empty() {
            Scenario::ALL.to_vec()
        } else {
            args.only
        },
        built_in_load: args.built_in_load,
        sim,
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("c19-bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("c19-bench: agent {}", options.agent.display());
    bench::client::install_crypto_provider();
    let report = runtime.block_on(async {
        tokio::select! {
            report = bench::run(&options) => Some(report),
            // Dropping the run's future drops its clusters, which kill their agents.
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let Some(report) = report else {
        eprintln!("c19-bench: interrupted");
        return ExitCode::from(130);
    };
    println!("{}\n", report.header());
    println!("{}", report.table());
    match bench::write(&report, &out) {
        Ok(files) => {
            for file in files {
                println!("wrote {}", file.display());
            }
        }
        Err(error) => {
            eprintln!("c19-bench: {error}");
            return ExitCode::FAILURE;
        }
    }
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "c19-bench: {} scenario(s) failed (see the report)",
            report.errors.len()
        );
        ExitCode::FAILURE
    }
}

/// Runs this binary again, with the same arguments, in a new network namespace whose
/// loopback interface is up.
fn in_private_netns(exe: &std::path::Path) -> ExitCode {
    let status = Command::new("unshare")
        .args([
            "--net",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(machine::NETNS_ENV, "1")
        .status();
    match status {
        Ok(status) => match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => ExitCode::FAILURE,
        },
        Err(error) => {
            eprintln!("c19-bench: cannot run unshare: {error}");
            ExitCode::FAILURE
        }
    }
}
