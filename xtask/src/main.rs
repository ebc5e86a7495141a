//! Repository tasks, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! - `ci`: everything CI checks (formatting, lints, tests, feature builds, packaging).
//! - `cluster`: a local cluster of agents for trying things out.
//! - `bench`: the benchmark suite, built in release (`--quick` for CI).
//! - `sim`: the deterministic simulator of large clusters (`c19-sim`).
//!
//! It has few dependencies on purpose: it must build fast on a fresh machine.

use std::process::ExitCode;

mod bench;
mod ci;
mod cluster;
mod sim;
mod util;

const HELP: &str = "\
cargo xtask <task>

tasks:
  ci                                   formatting, clippy, tests, feature builds, packaging
  cluster --nodes N [--push MS] [--pull MS] [--r0 N] [--release]
          [--agent-port P] [--peer-port P] [--telemetry-port P]   (first node; +1 per node)
                                       run N agents on 127.0.0.1 until Ctrl-C
  bench [--quick] [--only LIST] [--built-in-load] [--no-netns]
                                       build in release and run the benchmark suite;
                                       reports in target/bench/
  sim --agents N[,N...] --seed S[,S...] [--loss P] [--latency MS|MIN-MAX]
      [--partition MS[:WRITES]] [--writes K] [--push-interval MS] [--pull-interval MS] [--r0 N]
                                       simulate clusters on a virtual clock (c19-sim, release);
                                       one JSON line per run
  help                                 this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::run(&args[1..]),
        Some("cluster") => cluster::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("sim") => sim::run(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}
