//! Scenario 10: the deterministic simulator (`c19-sim`, issue 19) from 10 to 1,000
//! agents, beside the real processes of the convergence scenario.
//!
//! Every run has the convergence settings (push 200 ms, pull 2 s, r0 3) and 1 ms links;
//! each writes new keys at an idle cluster, then measures the traffic at rest, a 50/50
//! partition that heals, and an agent restarted empty. At 1,000 agents it also runs at
//! 5% message loss.
//!
//! The simulator is believable where it agrees with real processes. The number of pushes
//! a change costs depends on the protocol alone: the simulated and the real figures of 10
//! and 40 agents must agree within 10%. Time depends on the machine too: the real agents
//! share this machine's cores over loopback, where a change spreads as fast as the cores
//! handle its pushes. So the agreement runs the simulator as that machine: 0 ms links,
//! this machine's cores, and the CPU time per push the real 10 agents used (all their
//! CPU time over the writes, per accepted push). A real time also holds a fixed part
//! (the write's request, the watch events), measured as the real minus the simulated p50
//! of 3 agents. The model (fixed part + simulated p90) at 10 and 40 agents is held
//! against the real p90 within [`TOLERANCE`].

use std::{path::Path, process::Command, time::Instant};

use serde_json::Value;

use super::{
    Outcome,
    convergence::{CPU_PER_PUSH, Kind, PULL_MS, PUSH_MS, Point, R0},
    error::{Error, Result},
    report::{Figure, Simulated, Target, Unit},
};

/// Cluster sizes of the full run and of the quick one.
const SIZES: [usize; 4] = [10, 100, 300, 1000];
const QUICK_SIZES: [usize; 2] = [10, 100];
/// The seed of every run: the figures repeat from one benchmark run to the next.
const SEED: u64 = 19;
/// New keys per run.
const WRITES: usize = 40;
/// The partition: how long, and new keys on each side meanwhile.
const PARTITION: &str = "4000:5";
/// How far the modelled p90 may be from the real one: 30%, and at least 2 ms.
pub const TOLERANCE: (f64, f64) = (0.3, 2.0);
/// The real cluster whose CPU time per push the simulated machine takes.
const CALIBRATION: usize = 10;

/// One run's JSON line.
fn simulate(binary: &Path, args: &[String]) -> Result<Vec<Value>> {
    let output = Command::new(binary)
        .args(args)
        .output()
        .map_err(Error::io(format!("running {}", binary.display())))?;
    if !output.status.success() {
        return Err(Error::Tool(format!(
            "{} {}: {}",
            binary.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .map_err(|error| Error::Tool(format!("c19-sim printed `{line}`: {error}")))
        })
        .collect()
}

fn args(agents: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--agents",
        agents,
        "--seed",
        &SEED.to_string(),
        "--writes",
        &WRITES.to_string(),
        "--push-interval",
        &PUSH_MS.to_string(),
        "--pull-interval",
        &PULL_MS.to_string(),
        "--r0",
        &R0.to_string(),
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args
}

fn number(run: &Value, field: &str) -> Option<f64> {
    run.get(field).and_then(Value::as_f64)
}

fn seconds_as_ms(run: &Value, field: &str) -> Option<f64> {
    number(run, field).map(|seconds| seconds * 1000.0)
}

/// The simulated points of the chart: p50 and p99 of new keys per size.
fn points(runs: &[Value]) -> Vec<Simulated> {
    runs.iter()
        .filter_map(|run| {
            Some((
                usize::try_from(run.get("agents")?.as_u64()?).ok()?,
                seconds_as_ms(run, "converge_p50_s")?,
                seconds_as_ms(run, "converge_p99_s")?,
            ))
        })
        .collect()
}

/// Runs the simulator; `real`: the convergence scenario's points of this run, if any.
pub fn run(
    binary: &Path,
    quick: bool,
    real: &[Point],
    real_figures: &[Figure],
) -> Result<(Outcome, Vec<Simulated>)> {
    let sizes: Vec<String> = if quick { &QUICK_SIZES[..] } else { &SIZES[..] }
        .iter()
        .map(usize::to_string)
        .collect();
    let started = Instant::now();
    let runs = simulate(binary, &args(&sizes.join(","), &["--partition", PARTITION]))?;
    let mut figures = Vec::new();
    let scenario = |n: usize| format!("simulated N={n}");
    for run in &runs {
        let n = run.get("agents").and_then(Value::as_u64).unwrap_or(0) as usize;
        let label = scenario(n);
        let wall = number(run, "wall_s").unwrap_or(f64::NAN);
        let note = format!(
            "seed {SEED}, {WRITES} new keys, 1 ms links; {:.1} s of real time for {:.0} s simulated",
            wall,
            number(run, "virtual_s").unwrap_or(f64::NAN)
        );
        let mut p99 = Figure::new(
            &label,
            "new key p99",
            seconds_as_ms(run, "converge_p99_s"),
            Unit::Ms,
        )
        .note(note.clone());
        let mut heal = Figure::new(&label, "all equal after a 50/50 partition heals", seconds_as_ms(run, "heal_s"), Unit::Ms)
            .note("4 s apart with 5 new keys on each side; time from the heal until every agent holds the same state");
        let mut pushes = Figure::new(
            &label,
            "pushes per change",
            number(run, "pushes_per_change"),
            Unit::Count,
        )
        .note(format!("≤ 2·r0·N = {}", 2 * R0 * n));
        if n == 1000 {
            p99 = p99.target(Target::at_most(500.0, "issue 19"));
            heal = heal.target(Target::at_most(
                3.0 * PULL_MS as f64,
                "issue 19: 3 pull intervals",
            ));
            pushes = pushes.target(Target::at_most((2 * R0 * n) as f64, "issue 19"));
        }
        figures.push(
            Figure::new(
                &label,
                "new key p50",
                seconds_as_ms(run, "converge_p50_s"),
                Unit::Ms,
            )
            .note(note),
        );
        figures.push(p99);
        figures.push(heal);
        figures.push(pushes);
        figures.push(Figure::new(
            &label,
            "push body bytes per change",
            number(run, "bytes_per_change"),
            Unit::Bytes,
        ));
        figures.push(
            Figure::new(
                &label,
                "at rest, bytes per agent per pull interval",
                number(run, "rest_bytes_per_agent_per_pull"),
                Unit::Bytes,
            )
            .note("bodies of exchanges between equal agents, uncompressed"),
        );
        figures.push(Figure::new(
            &label,
            "catch-up of an agent restarted empty",
            seconds_as_ms(run, "catch_up_s"),
            Unit::Ms,
        ));
        let mut runtime = Figure::new(
            &label,
            "real time of the run",
            Some(wall * 1000.0),
            Unit::Ms,
        );
        if n == 1000 {
            runtime = runtime.target(Target::below(60_000.0, "issue 19"));
        }
        figures.push(runtime);
        if run.get("all_equal") != Some(&Value::Bool(true)) {
            figures.push(
                Figure::new(&label, "agents equal at the end", Some(0.0), Unit::Count)
                    .target(Target::at_least(1.0, "issue 19")),
            );
        }
    }
    let rest = |n: u64| {
        runs.iter()
            .find(|run| run.get("agents").and_then(Value::as_u64) == Some(n))
            .and_then(|run| number(run, "rest_bytes_per_agent_per_pull"))
    };
    if let (Some(at_100), Some(at_1000)) = (rest(100), rest(1000)) {
        figures.push(
            Figure::new(
                "simulated",
                "at rest per agent, 1,000 agents / 100 agents",
                Some(at_1000 / at_100),
                Unit::Count,
            )
            .target(Target::at_most(1.1, "issue 19: flat within 10%"))
            .note(format!(
                "{at_1000:.0} B vs {at_100:.0} B per agent per pull interval"
            )),
        );
    }
    let chart = points(&runs);
    if !quick {
        let lossy = simulate(binary, &args("1000", &["--loss", "0.05", "--no-restart"]))?;
        for run in &lossy {
            figures.push(
                Figure::new("simulated N=1000, 5% loss", "new key p99", seconds_as_ms(run, "converge_p99_s"), Unit::Ms)
                    .target(Target::at_most(1000.0, "issue 19"))
                    .note(format!(
                        "each way of each message lost with probability 0.05 (a lost one costs its sender a timeout); p50 {}",
                        seconds_as_ms(run, "converge_p50_s").map_or("-".to_owned(), |ms| format!("{ms:.0} ms"))
                    )),
            );
        }
    }
    figures.extend(agreement(binary, real, real_figures)?);
    eprintln!("    (simulations: {:.1}s)", started.elapsed().as_secs_f64());
    Ok((
        Outcome {
            figures,
            points: Vec::new(),
        },
        chart,
    ))
}

/// The real new-key p50 and p90 at `n` agents, if the convergence scenario measured them.
fn real_at(real: &[Point], n: usize) -> Option<(f64, f64)> {
    real.iter()
        .find(|point| point.n == n && point.kind == Kind::New)
        .and_then(|point| point.summary.map(|s| (s.p50, s.p90)))
}

/// A real figure of this run's convergence scenario.
fn real_figure(real: &[Figure], n: usize, name: &str) -> Option<f64> {
    let scenario = format!("convergence N={n}");
    real.iter()
        .find(|figure| figure.scenario == scenario && figure.name == name)
        .and_then(|figure| figure.value)
}

/// The simulator beside the real 3, 10 and 40 agents of this run: messages per change,
/// which depend on the protocol alone, and new-key times on a simulated machine like
/// this one (see the module docs).
fn agreement(binary: &Path, real: &[Point], real_figures: &[Figure]) -> Result<Vec<Figure>> {
    let (Some((p50_3, _)), Some(cpu_ms)) = (
        real_at(real, 3),
        real_figure(real_figures, CALIBRATION, CPU_PER_PUSH),
    ) else {
        return Ok(vec![
            Figure::new("simulated vs real", "agreement", None, Unit::Count)
                .note("needs the convergence scenario (3, 10, 40 agents) in the same run"),
        ]);
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let push_cpu_us = format!("{:.1}", cpu_ms * 1000.0);
    let cores_text = cores.to_string();
    let runs = simulate(
        binary,
        &args(
            "3,10,40",
            &[
                "--no-restart",
                "--latency",
                "0",
                "--cores",
                &cores_text,
                "--push-cpu-us",
                &push_cpu_us,
            ],
        ),
    )?;
    let at = |n: u64, field: &str| {
        runs.iter()
            .find(|run| run.get("agents").and_then(Value::as_u64) == Some(n))
            .and_then(|run| number(run, field))
    };
    let ms = |n: u64, field: &str| at(n, field).map(|seconds| seconds * 1000.0);
    let mut figures = Vec::new();
    // Time: real = fixed + simulated, the fixed part measured on the real 3 agents.
    if let Some(simulated_3) = ms(3, "converge_p50_s") {
        let fixed = p50_3 - simulated_3;
        for n in [10usize, 40] {
            let (Some((_, real_p90)), Some(simulated)) =
                (real_at(real, n), ms(n as u64, "converge_p90_s"))
            else {
                continue;
            };
            let predicted = fixed + simulated;
            let allowed = (real_p90 * TOLERANCE.0).max(TOLERANCE.1);
            let cpu_here = real_figure(real_figures, n, CPU_PER_PUSH)
                .map_or_else(|| "-".to_owned(), |ms| format!("{:.0} µs", ms * 1000.0));
            figures.push(
                Figure::new(&format!("simulated vs real N={n}"), "new key p90, |model − real|", Some((predicted - real_p90).abs()), Unit::Ms)
                    .target(Target::at_most(allowed, "stated tolerance: 30% (≥ 2 ms)"))
                    .note(format!(
                        "model {predicted:.1} ms = {fixed:.1} ms fixed (the write and the watch events: real minus simulated p50 of 3 agents) + {simulated:.1} ms simulated on {cores} cores at {push_cpu_us} µs per push (the real {CALIBRATION} agents' CPU per push; {cpu_here} at {n}), real {real_p90:.1} ms"
                    )),
            );
        }
    }
    // Messages per change.
    for n in [10usize, 40] {
        let (Some(real_pushes), Some(simulated)) = (
            real_figure(real_figures, n, "pushes per change"),
            at(n as u64, "pushes_per_change"),
        ) else {
            continue;
        };
        figures.push(
            Figure::new(&format!("simulated vs real N={n}"), "pushes per change, |simulated / real − 1|", Some((simulated / real_pushes.max(1.0) - 1.0).abs()), Unit::Count)
                .target(Target::at_most(0.1, "stated tolerance: within 10%"))
                .note(format!("simulated {simulated:.1}, real {real_pushes:.1} (accepted pushes over all agents per write)")),
        );
    }
    Ok(figures)
}
