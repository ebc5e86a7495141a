//! `cargo xtask bench [--quick]`: builds `c19-bench` and the agent in release, then
//! runs the benchmark suite; the table goes to stdout and the reports to
//! `<target>/bench/` (`report.json`, `report.md`, `convergence.svg`, `simulation.svg`).

use std::{
    path::PathBuf,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::util::{cargo, root, run as step};

const USAGE: &str = "cargo xtask bench [--quick] [--only convergence,network,agent,memory,tls,footprint,persistence,scale,steady,sim] \
                     [--built-in-load] [--no-netns]";

pub fn run(args: &[String]) -> Result<(), String> {
    let mut forward: Vec<String> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" | "--no-netns" | "--built-in-load" => forward.push(arg.clone()),
            "--only" => {
                let list = rest
                    .next()
                    .ok_or_else(|| format!("--only needs a value\n{USAGE}"))?;
                forward.extend(["--only".to_owned(), list.clone()]);
            }
            other => return Err(format!("bench: unknown option `{other}`\n{USAGE}")),
        }
    }
    step(
        "build c19-bench, its floor server and the agent (release)",
        cargo().args([
            "build",
            "--release",
            "-p",
            "c19-tests",
            "--bin",
            "c19-bench",
            "--bin",
            "c19-agent",
            "--bin",
            "c19-bench-floor",
        ]),
    )?;
    // On its own: its tokio has the test clock, which the agent's build must not get.
    step(
        "build the simulator (release)",
        cargo().args(["build", "--release", "-p", "c19-sim", "--bin", "c19-sim"]),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let release = target.join("release");
    let out = target.join("bench");

    // Ctrl-C reaches c19-bench too (same process group); it stops its agents and exits,
    // and we wait for it instead of dying first.
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|error| format!("cannot handle Ctrl-C: {error}"))?;
    let mut bench = Command::new(release.join("c19-bench"));
    bench
        .arg("--agent")
        .arg(release.join("c19-agent"))
        .arg("--sim")
        .arg(release.join("c19-sim"))
        .arg("--out")
        .arg(&out)
        .args(&forward)
        .current_dir(root());
    let result = step("benchmarks", &mut bench);
    if interrupted.load(Ordering::SeqCst) {
        return Err("bench: interrupted".into());
    }
    result?;
    eprintln!("\nxtask bench: reports in {}", out.display());
    Ok(())
}
